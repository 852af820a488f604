//! The default scenario: every user sends 1:1 messages to a partner.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use missive_client::Api;
use missive_replay::progress::Progress;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::args::BenchArgs;
use super::fan_out::group_fan_out;
use super::scenarios::{backlog_push, media_uploads, profile_changes};
use super::support::*;
use super::{flood, overload, samples};

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.flood > 0 {
        let server = start_server(&args).await?;
        return flood::run(&args, &server.base, &server.sms_file, server.child.as_ref().and_then(|child| child.id()))
            .await;
    }
    if args.users < 2 {
        bail!("--users must be at least 2 (every user sends to a partner)");
    }
    let server = start_server(&args).await?;
    let api = Api::new(&server.base);
    let ws_url = format!("{}/v1/ws", server.base.replacen("http", "ws", 1));
    let tag = format!("{:03}", rand::random::<u16>() % 1000);
    let accounts = register_all(&api, &server.sms_file, args.users, &tag).await?;
    if args.group {
        return group_fan_out(&args, &api, &ws_url, &accounts).await;
    }
    if args.profiles {
        return profile_changes(&args, &api, &accounts).await;
    }
    if args.media {
        return media_uploads(&args, &api, &accounts).await;
    }
    if args.backlog {
        return backlog_push(&args, &ws_url, &accounts).await;
    }
    if args.overload > 0 {
        return overload::run(&args, (&api, &ws_url), &accounts, server.child.as_ref().and_then(|child| child.id()))
            .await;
    }

    if args.sealed {
        publish_keys(&api, &accounts).await?;
    }
    let epoch = Instant::now();
    let expected = (args.users * args.messages) as u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(samples::Latencies::default());
    let per_user_interval =
        if args.rate == 0 { None } else { Some(Duration::from_secs_f64(args.users as f64 / args.rate as f64)) };
    let mut sockets = Vec::new();
    for account in &accounts {
        let mut socket = missive_client::connect_socket(&ws_url, &account.access_token).await?;
        socket.send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string())).await?;
        sockets.push(socket);
    }
    eprintln!("bench: {} connections open; sending {} messages", sockets.len(), expected);
    let started = Instant::now();
    let cpu_before = missive_infra::process_cpu();
    let server_pid = server.child.as_ref().and_then(|child| child.id()).map(|pid| pid.to_string());
    let server_cpu_before = server_pid.as_deref().map(missive_infra::cpu_of);
    let mut tasks = Vec::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let me = accounts[index].user_id.clone();
        let partner_account = &accounts[(index + 1) % accounts.len()];
        let partner = partner_account.user_id.clone();
        let body =
            BodyShape { sealed_for: args.sealed.then(|| partner_account.device_id.clone()), pad: args.body_bytes };
        let delivered = delivered.clone();
        let latencies = latencies.clone();
        let messages = args.messages;
        let users = args.users;
        let window = args.window.max(1);
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = socket.split();
            let mut sent = 0usize;
            let mut confirmed = 0usize;
            let mut received = 0usize;
            let mut highest_seq = 0u64;
            let mut acked_seq = 0u64;
            // Spread users evenly over one interval so the load is steady, not bursts.
            let mut next_send = tokio::time::Instant::now()
                + per_user_interval.map_or(Duration::ZERO, |interval| interval.mul_f64(index as f64 / users as f64));
            // Two timers made once and moved, not one per loop turn: the
            // next send (fixed rate only) and the next ack, at most 20 ms
            // after the first unacked event (cumulative), so no per-user
            // timer ticks when there is nothing to ack.
            let send_timer = tokio::time::sleep_until(next_send);
            let ack_timer = tokio::time::sleep_until(next_send);
            tokio::pin!(send_timer, ack_timer);
            let mut ack_pending = false;
            let mut frame = String::with_capacity(256 + body.pad);
            loop {
                if confirmed >= messages && received >= messages {
                    return Ok::<(), anyhow::Error>(());
                }
                // Saturation: fill the window in one write.
                if per_user_interval.is_none() && sent < messages && sent - confirmed < window {
                    while sent < messages && sent - confirmed < window {
                        send_frame(&mut frame, sent, (&partner, &me), &body, epoch);
                        sink.feed(Message::text(frame.as_str())).await.map_err(|_| anyhow::anyhow!("send failed"))?;
                        sent += 1;
                    }
                    sink.flush().await.map_err(|_| anyhow::anyhow!("send failed"))?;
                }
                let timed_send = per_user_interval.is_some() && sent < messages && sent - confirmed < window;
                tokio::select! {
                    _ = &mut send_timer, if timed_send => {
                        send_frame(&mut frame, sent, (&partner, &me), &body, epoch);
                        sink.send(Message::text(frame.as_str())).await.map_err(|_| anyhow::anyhow!("send failed"))?;
                        sent += 1;
                        if let Some(interval) = per_user_interval {
                            next_send += interval;
                            send_timer.as_mut().reset(next_send);
                        }
                    }
                    _ = &mut ack_timer, if ack_pending => {
                        ack_pending = false;
                        if highest_seq > acked_seq {
                            acked_seq = highest_seq;
                            let _ = sink.send(Message::text(format!(r#"{{"type":"ack","seq":{acked_seq}}}"#))).await;
                        }
                    }
                    incoming = stream.next() => {
                        let Some(Ok(Message::Text(text))) = incoming else { return Err(anyhow::anyhow!("connection closed")) };
                        let incoming: Incoming<'_> = serde_json::from_str(&text)?;
                        match &*incoming.kind {
                            "sent" => confirmed += 1,
                            "event" => {
                                highest_seq = highest_seq.max(incoming.seq);
                                if !ack_pending {
                                    ack_pending = true;
                                    ack_timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(20));
                                }
                                if let Some(event) = incoming.event
                                    && event.kind == "message"
                                    && event.from.as_deref() != Some(me.as_str())
                                {
                                    let text = event.content.or(event.encrypted.map(|sealed| sealed.ciphertext));
                                    if let Some(stamp) = text.as_deref().and_then(stamp_of) {
                                        latencies.record(epoch.elapsed().as_micros() as u64 - stamp);
                                    }
                                    received += 1;
                                    delivered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            "error" => return Err(anyhow::anyhow!("server error: {}", &*text)),
                            _ => {}
                        }
                    }
                }
            }
        }));
    }
    let progress = Progress::start("bench", "messages delivered", expected, delivered.clone());
    let mut failures = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(600), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                failures += 1;
                eprintln!("bench: client failed: {error}");
            }
            _ => failures += 1,
        }
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = missive_infra::process_cpu().saturating_sub(cpu_before);
    let server_cpu = server_pid.as_deref().zip(server_cpu_before).map(|(pid, before)| {
        let used = missive_infra::cpu_of(pid).saturating_sub(before);
        ((used.as_secs_f64() * 1e6 / delivered.load(Ordering::Relaxed).max(1) as f64) * 10.0).round() / 10.0
    });
    let mut samples = latencies.take();
    samples.sort_unstable();
    let total = delivered.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "users": args.users, "messages_per_user": args.messages, "rate_target": args.rate,
            "delivered": total, "expected": expected, "failed_clients": failures,
            // The load generator's own cost: sending, reading and acking, per delivered message.
            "bench_cpu_us_per_message": ((cpu.as_secs_f64() * 1e6 / total.max(1) as f64) * 10.0).round() / 10.0,
            // The server's cost (its own process; only when the bench started it).
            "server_cpu_us_per_message": server_cpu,
            "body": if args.sealed { "sealed" } else { "plaintext" }, "body_bytes": args.body_bytes,
            "seconds": (elapsed * 100.0).round() / 100.0,
            "delivered_per_second": (total as f64 / elapsed).round(),
            "latency_ms": {"p50": percentile(&samples, 0.50), "p99": percentile(&samples, 0.99), "p999": percentile(&samples, 0.999), "max": percentile(&samples, 1.0)},
        })
    );
    if args.idle > 0 {
        let pid = server
            .child
            .as_ref()
            .and_then(|child| child.id())
            .context("--idle needs the bench's own server (omit --server)")?;
        let idle_accounts = register_all(&api, &server.sms_file, args.idle.min(1000), &format!("{tag}9")).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss_kib(pid).unwrap_or(0);
        let mut idle = Vec::with_capacity(args.idle);
        for index in 0..args.idle {
            let account = &idle_accounts[index % idle_accounts.len()];
            let (mut socket, _) =
                tokio_tungstenite::connect_async_with_config(&ws_url, None, true).await.context("idle connect")?;
            socket.send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string())).await?;
            let _welcome = socket.next().await;
            idle.push(socket);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid).unwrap_or(0);
        println!(
            "{}",
            json!({"idle_connections": args.idle, "server_rss_kib_before": before, "server_rss_kib_after": after,
                   "bytes_per_connection": ((after.saturating_sub(before)) * 1024) as f64 / args.idle as f64})
        );
        drop(idle);
    }
    if failures > 0 || total < expected {
        bail!("{failures} clients failed; {total} of {expected} messages delivered");
    }
    Ok(())
}
