//! `--flood`: code requests from one address for fresh numbers, while the
//! service a connected user sees is timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use missive_client::{Api, Connection, code_from_sink_file};
use serde_json::json;

use super::args::BenchArgs;
use super::support::{percentile, rss_kib};

/// WebSocket ping and `GET /healthz` round trips (µs), one of each every 50 ms.
pub(super) async fn probe(
    connection: &mut Connection,
    api: &Api,
    stop: &AtomicBool,
) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
    let (mut pings, mut health) = (Vec::new(), Vec::new());
    let http = api.http.clone();
    let healthz = format!("{}/healthz", api.base);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        connection.send_json(&json!({"type": "ping"})).await?;
        connection.collect_until(Duration::from_secs(30), |frames| frames.iter().any(|f| f["type"] == "pong")).await?;
        pings.push(started.elapsed().as_micros() as u64);
        let started = Instant::now();
        let status = http.get(&healthz).send().await?.status();
        anyhow::ensure!(status.is_success(), "healthz answered {status}");
        health.push(started.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pings.sort_unstable();
    health.sort_unstable();
    Ok((pings, health))
}

pub(super) fn line(what: &str, sorted: &[u64]) -> String {
    format!(
        "{what}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        sorted.len(),
        percentile(sorted, 0.50),
        percentile(sorted, 0.99),
        percentile(sorted, 1.0)
    )
}

pub async fn run(args: &BenchArgs, base: &str, sms_file: &std::path::Path, pid: Option<u32>) -> anyhow::Result<()> {
    let api = Api::new(base);
    let tag = format!("{:03}", rand::random::<u16>() % 1000);
    let account = api
        .register(&format!("+1{tag}5550000"), "bench", |phone| async move {
            code_from_sink_file(sms_file, &phone, Duration::from_secs(30)).await
        })
        .await?;
    let ws_url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
    let mut connection = Connection::open(&ws_url, &account.access_token, None).await?;
    let rss = || pid.and_then(rss_kib).unwrap_or(0);

    eprintln!("bench: 10 s idle baseline");
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let (idle_pings, idle_health) = probe(&mut connection, &api, &stop).await?;
    stopper.await?;
    let rss_before = rss();

    eprintln!("bench: {} s of {} code requests/s from one address", args.flood, args.flood_rate);
    let (sent, accepted, refused) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let peak = Arc::new(AtomicU64::new(rss_before));
    stop.store(false, Ordering::Relaxed);
    let flooder = {
        let (stop, sent, accepted, refused, peak) =
            (stop.clone(), sent.clone(), accepted.clone(), refused.clone(), peak.clone());
        let (url, seconds, rate) = (format!("{base}/v1/auth/otp"), args.flood, args.flood_rate.max(1));
        let http = api.http.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            let mut in_flight = tokio::task::JoinSet::new();
            let mut number = 0u64;
            while started.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                number += 1;
                let (http, url) = (http.clone(), url.clone());
                let (accepted, refused) = (accepted.clone(), refused.clone());
                in_flight.spawn(async move {
                    let body = json!({"phone": format!("+1999{number:08}")});
                    match http.post(&url).json(&body).send().await.map(|response| response.status().as_u16()) {
                        Ok(202) => accepted.fetch_add(1, Ordering::Relaxed),
                        _ => refused.fetch_add(1, Ordering::Relaxed),
                    };
                });
                sent.fetch_add(1, Ordering::Relaxed);
                if number.is_multiple_of(rate) {
                    peak.fetch_max(pid.and_then(rss_kib).unwrap_or(0), Ordering::Relaxed);
                    eprintln!("bench: {} s, {} requests", started.elapsed().as_secs(), number);
                }
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
            stop.store(true, Ordering::Relaxed);
        })
    };
    let (flood_pings, flood_health) = probe(&mut connection, &api, &stop).await?;
    flooder.await?;
    let rss_after = rss();
    println!("{}", line("idle   ws ping ", &idle_pings));
    println!("{}", line("idle   healthz ", &idle_health));
    println!("{}", line("flood  ws ping ", &flood_pings));
    println!("{}", line("flood  healthz ", &flood_health));
    let ratio = |flood: &[u64], idle: &[u64]| percentile(flood, 0.99) / percentile(idle, 0.99).max(0.001);
    println!(
        "p99 flood/idle: ws ping {:.2}x, healthz {:.2}x (target <= 2x)",
        ratio(&flood_pings, &idle_pings),
        ratio(&flood_health, &idle_health)
    );
    println!(
        "code requests: {} sent, {} accepted (202), {} refused; server RSS {} MiB before, {} MiB peak, {} MiB after",
        sent.load(Ordering::Relaxed),
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        rss_before >> 10,
        peak.load(Ordering::Relaxed).max(rss_after) >> 10,
        rss_after >> 10
    );
    Ok(())
}
