//! `--overload SECONDS`: offered load past the server's capacity.
//!
//! Flood users send 1:1 messages open-loop (each on a schedule, whether or
//! not the server keeps up) through four phases: `calibrate` (as fast as
//! they can, to measure the capacity C in confirmed sends a second; skipped
//! with `--rate C`), `baseline` (C/3 for 10 s), `overload` (3C for
//! SECONDS) and `after` (C/3 for 20 s). Beside them a few probe users send
//! at a fixed, low rate all along: their send-to-delivery latency is what
//! a normal user sees. Each user's app holds at most [`OUTBOX`] unsent
//! messages (more are counted `deferred`, as a phone would ask its user to
//! wait) and has at most [`WINDOW`] unanswered; a send refused
//! `unavailable` is sent again, in order, after its `retry_after`.
//!
//! It prints one line a second and a JSON summary: the capacity, what each
//! phase offered, refused and confirmed, the probes' p99 before, during
//! and after (due to delivered, and due to `sent`: the commit path alone;
//! beside them the processors' lag, to show where a queue stands), how long after the overload their p99 took to come back
//! (within 2x the baseline's, or 25 ms of it), the server's RSS, and
//! whether every confirmed message arrived exactly once and in order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::SinkExt;
use missive_client::{Account, Api};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::args::BenchArgs;
use super::open_loop::{Pace, SATURATE, Second, Shared, Timeline, pace_for, user};
use super::support::{percentile, processor_lag, rss_kib};

/// Probe users (in pairs) and the messages each sends a second: a person
/// chatting, within any connection's fair share of an overloaded gateway
/// (which gives a freed place to the waiting connection holding fewest).
const PROBES: usize = 32;
const PROBE_RATE: f64 = 1.0;
/// Phase lengths in seconds (the overload's is `--overload`).
const CALIBRATE: u64 = 10;
const BASELINE: u64 = 10;
const AFTER: u64 = 20;

/// The p99 of the probes' latencies (ms) over `seconds`: due to delivered.
fn probe_p99(seconds: &[Second]) -> f64 {
    p99_of(seconds, |second| &second.probe_us)
}

fn p99_of(seconds: &[Second], samples_of: fn(&Second) -> &Vec<u64>) -> f64 {
    let mut samples: Vec<u64> = seconds.iter().flat_map(|second| samples_of(second).iter().copied()).collect();
    samples.sort_unstable();
    percentile(&samples, 0.99)
}

/// The largest lag each processor showed over `seconds`.
fn lag_max(seconds: &[Second]) -> serde_json::Map<String, serde_json::Value> {
    let mut most = std::collections::BTreeMap::<&str, u64>::new();
    for (processor, lag) in seconds.iter().flat_map(|second| second.lag.iter()) {
        let entry = most.entry(processor.as_str()).or_default();
        *entry = (*entry).max(*lag);
    }
    most.into_iter().map(|(processor, lag)| (processor.to_string(), json!(lag))).collect()
}

fn phase_figures(seconds: &[Second], phase: &str) -> serde_json::Value {
    let of: Vec<Second> = seconds.iter().filter(|second| second.phase == phase).cloned().collect();
    let sum = |field: fn(&Second) -> u64| of.iter().map(field).sum::<u64>();
    let length = of.len().max(1) as f64;
    json!({
        "seconds": of.len(),
        // Due (the schedule), and taken into the users' outboxes (the rest deferred).
        "offered_per_second": ((sum(|s| s.offered) + sum(|s| s.deferred)) as f64 / length).round(),
        "into_outboxes_per_second": (sum(|s| s.offered) as f64 / length).round(),
        "transmitted": sum(|s| s.transmitted), "refused_unavailable": sum(|s| s.refused),
        "deferred_by_full_outbox": sum(|s| s.deferred),
        "confirmed_per_second": (sum(|s| s.confirmed) as f64 / length).round(),
        "delivered_per_second": (sum(|s| s.delivered) as f64 / length).round(),
        "probe_p99_ms": probe_p99(&of),
        "probe_sent_p99_ms": p99_of(&of, |second| &second.probe_sent_us),
        "processor_lag_max": lag_max(&of),
        "server_rss_mib_max": of.iter().map(|s| s.rss_kib).max().unwrap_or(0) / 1024,
    })
}

/// Runs the phases against the server at `ws_url` (its RSS read from `pid`).
pub(super) async fn run(
    args: &BenchArgs,
    (api, ws_url): (&Api, &str),
    accounts: &[Account],
    pid: Option<u32>,
) -> anyhow::Result<()> {
    if accounts.len() < PROBES + 2 {
        bail!("--overload needs at least {} --users", PROBES + 2);
    }
    let (probes, flood) = accounts.split_at(PROBES);
    let shared = Arc::new(Shared {
        timeline: Timeline { started: Instant::now(), seconds: Mutex::new(Vec::new()), phase: Mutex::new("connect") },
        outstanding: AtomicU64::new(0),
        received: AtomicU64::new(0),
        confirmed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let (flood_pace, probe_pace): (Pace, Pace) = (Arc::default(), Arc::default());
    let mut tasks = Vec::new();
    for (group, pace, is_probe) in [(probes, &probe_pace, true), (flood, &flood_pace, false)] {
        for (index, account) in group.iter().enumerate() {
            // Probes in pairs, flood users in a ring.
            let partner = if is_probe { &group[index ^ 1] } else { &group[(index + 1) % group.len()] };
            let mut socket = missive_client::connect_socket(ws_url, &account.access_token).await?;
            socket.send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string())).await?;
            let names = (account.user_id.clone(), partner.user_id.clone());
            let (pace, shared) = (pace.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let report = user(socket, names, pace, is_probe, shared.clone()).await;
                if let Err(error) = &report {
                    eprintln!("bench: a user failed: {error:#}");
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
                report
            }));
        }
    }
    eprintln!("bench: {} flood users and {PROBES} probes connected", flood.len());
    let phase = |name: &'static str| *shared.timeline.phase.lock().expect("phase") = name;
    let sampler = {
        let (shared, api) = (shared.clone(), api.clone());
        tokio::spawn(async move {
            let mut printed = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let rss = pid.and_then(rss_kib).unwrap_or(0);
                let lag = processor_lag(&api).await;
                shared.timeline.record(|second| {
                    second.rss_kib = rss;
                    second.lag = lag;
                });
                let seconds = shared.timeline.seconds.lock().expect("timeline").clone();
                let done = seconds.len().saturating_sub(1);
                for (at, second) in seconds.iter().enumerate().take(done).skip(printed) {
                    eprintln!(
                        "bench: {at:>3}s {:<9} due {:>6} deferred {:>6} sent {:>6} refused {:>6} confirmed {:>6} delivered {:>6} probe p99 {:>8.1} ms (sent {:>7.1}) rss {} MiB lag {}",
                        second.phase,
                        second.offered + second.deferred,
                        second.deferred,
                        second.transmitted,
                        second.refused,
                        second.confirmed,
                        second.delivered,
                        probe_p99(std::slice::from_ref(second)),
                        p99_of(std::slice::from_ref(second), |second| &second.probe_sent_us),
                        second.rss_kib / 1024,
                        second
                            .lag
                            .iter()
                            .map(|(processor, lag)| format!("{processor} {lag}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                printed = printed.max(done);
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        })
    };
    probe_pace.store(pace_for(PROBE_RATE * PROBES as f64, PROBES), Ordering::Relaxed);
    let capacity = if args.rate > 0 {
        args.rate as f64
    } else {
        phase("calibrate");
        flood_pace.store(SATURATE, Ordering::Relaxed);
        let before = shared.confirmed.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(CALIBRATE)).await;
        let capacity = (shared.confirmed.load(Ordering::Relaxed) - before) as f64 / CALIBRATE as f64;
        flood_pace.store(0, Ordering::Relaxed);
        // What the calibration left unconfirmed is sent before the baseline starts.
        let drained = Instant::now() + Duration::from_secs(60);
        while shared.outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        capacity
    };
    let per_user = 3.0 * capacity / flood.len() as f64;
    eprintln!("bench: capacity {capacity:.0} confirmed sends/s; overload 3x = {per_user:.0}/s per flood user");
    if per_user > f64::from(missive_gateway::session::limits::SENDS_PER_SECOND) * 0.9 {
        eprintln!(
            "bench: warning: past the per-account allowance; use more --users to load the gateway, not the accounts"
        );
    }
    for (name, rate, seconds) in [
        ("baseline", capacity / 3.0, BASELINE),
        ("overload", 3.0 * capacity, args.overload),
        ("after", capacity / 3.0, AFTER),
    ] {
        phase(name);
        flood_pace.store(pace_for(rate, flood.len()), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        if shared.failed.load(Ordering::Relaxed) > 0 {
            shared.stop.store(true, Ordering::Relaxed);
            bail!("{} users failed (above); stopping", shared.failed.load(Ordering::Relaxed));
        }
    }
    phase("drain");
    flood_pace.store(0, Ordering::Relaxed);
    probe_pace.store(0, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (shared.outstanding.load(Ordering::Relaxed) > 0
        || shared.received.load(Ordering::Relaxed) < shared.confirmed.load(Ordering::Relaxed))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await?.context("a bench user failed")?);
    }
    let seconds = shared.timeline.seconds.lock().expect("timeline").clone();
    let baseline: Vec<Second> = seconds.iter().filter(|s| s.phase == "baseline").cloned().collect();
    let normal = probe_p99(&baseline);
    let bound = (normal * 2.0).max(normal + 25.0);
    let after: Vec<&Second> = seconds.iter().filter(|s| s.phase == "after").collect();
    // Seconds after the overload until every later second's probe p99 is within the bound.
    let recovered_after =
        (0..=after.len()).find(|&from| after[from..].iter().all(|s| probe_p99(std::slice::from_ref(*s)) <= bound));
    let confirmed: u64 = reports.iter().map(|report| report.confirmed).sum();
    let received: u64 = reports.iter().map(|report| report.received).sum();
    let duplicates: u64 = reports.iter().map(|report| report.duplicates).sum();
    let reordered: u64 = reports.iter().map(|report| report.reordered).sum();
    println!(
        "{}",
        json!({
            "overload_seconds": args.overload, "flood_users": flood.len(), "probes": PROBES,
            "capacity_per_second": capacity.round(), "offered_during_overload_per_second": (3.0 * capacity).round(),
            "phases": {
                "baseline": phase_figures(&seconds, "baseline"),
                "overload": phase_figures(&seconds, "overload"),
                "after": phase_figures(&seconds, "after"),
            },
            "probe_p99_bound_ms": bound,
            "probe_p99_back_within_bound_after_s": recovered_after,
            "server_rss_mib": {
                "baseline_max": phase_figures(&seconds, "baseline")["server_rss_mib_max"],
                "overload_max": phase_figures(&seconds, "overload")["server_rss_mib_max"],
                "after_max": phase_figures(&seconds, "after")["server_rss_mib_max"],
            },
            "confirmed": confirmed, "delivered_once": received, "duplicates": duplicates, "out_of_order": reordered,
            "lost": confirmed.saturating_sub(received),
        })
    );
    if received != confirmed || duplicates > 0 || reordered > 0 {
        bail!("{confirmed} confirmed, {received} delivered once, {duplicates} twice, {reordered} out of order");
    }
    Ok(())
}
