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
//! and after, how long after the overload their p99 took to come back
//! (within 2x the baseline's, or 25 ms of it), the server's RSS, and
//! whether every confirmed message arrived exactly once and in order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use missive_client::Account;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::args::BenchArgs;
use super::support::{Incoming, percentile, rss_kib, stamp_of};

/// Sends a user has unanswered at once (while calibrating: few enough
/// that all users together stay within the gateway's pending room, so the
/// capacity is measured without refusals).
const WINDOW: usize = 32;
const CALIBRATION_WINDOW: usize = 4;
/// Messages a user's app holds unconfirmed; past it new ones are deferred
/// (a person does not type on while a few messages show as pending).
const OUTBOX: usize = 32;
/// Probe users (in pairs) and the messages each sends a second.
const PROBES: usize = 16;
const PROBE_RATE: f64 = 10.0;
/// Phase lengths in seconds (the overload's is `--overload`).
const CALIBRATE: u64 = 10;
const BASELINE: u64 = 10;
const AFTER: u64 = 20;

/// What happened in one second of the run.
#[derive(Default, Clone)]
struct Second {
    phase: &'static str,
    offered: u64,
    deferred: u64,
    transmitted: u64,
    refused: u64,
    confirmed: u64,
    delivered: u64,
    /// Probe messages: from the time they were due to their delivery (µs).
    probe_us: Vec<u64>,
    rss_kib: u64,
}

struct Timeline {
    started: Instant,
    seconds: Mutex<Vec<Second>>,
    phase: Mutex<&'static str>,
}

impl Timeline {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
    fn record(&self, change: impl FnOnce(&mut Second)) {
        let at = self.started.elapsed().as_secs() as usize;
        let phase = *self.phase.lock().expect("phase");
        let mut seconds = self.seconds.lock().expect("timeline");
        if seconds.len() <= at {
            seconds.resize_with(at + 1, || Second { phase, ..Second::default() });
        }
        change(&mut seconds[at]);
    }
}

/// How often a group of users sends: µs between one user's messages (0:
/// not at all; [`SATURATE`]: keep the outbox full).
type Pace = Arc<AtomicU64>;
const SATURATE: u64 = u64::MAX;

fn pace_for(total_per_second: f64, users: usize) -> u64 {
    if total_per_second <= 0.0 { 0 } else { (users as f64 * 1e6 / total_per_second).max(1.0) as u64 }
}

/// One user's account of the run.
#[derive(Default)]
struct UserReport {
    confirmed: u64,
    /// From its partner: distinct messages, repeats, and arrivals out of order.
    received: u64,
    duplicates: u64,
    reordered: u64,
}

struct Shared {
    timeline: Timeline,
    /// Messages held unconfirmed by all users, and received by all users.
    outstanding: AtomicU64,
    received: AtomicU64,
    confirmed: AtomicU64,
    /// Users whose run ended in an error (the bench stops).
    failed: AtomicU64,
    stop: AtomicBool,
}

/// One user: sends to `partner` at `pace`, answers refusals, acks and
/// checks what its own partner sends it.
async fn user(
    socket: missive_client::Socket,
    (me, partner): (String, String),
    pace: Pace,
    probe: bool,
    shared: Arc<Shared>,
) -> anyhow::Result<UserReport> {
    let (mut sink, mut stream) = socket.split();
    let mut report = UserReport::default();
    // Unconfirmed messages: number -> (due, last transmitted), both µs.
    let mut outbox: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let (mut next, mut cursor, mut awaiting) = (0u64, 0u64, 0usize);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let (mut last_from_partner, mut highest_seq, mut acked_seq) = (None::<u64>, 0u64, 0u64);
    let mut due = tokio::time::Instant::now();
    let tick = tokio::time::sleep_until(due);
    let ack = tokio::time::sleep(Duration::from_millis(20));
    tokio::pin!(tick, ack);
    let mut ack_pending = false;
    let timeline = &shared.timeline;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(report);
        }
        // Sends again after a refusal once every earlier one is answered
        // and the hint has passed, from the first unconfirmed one.
        if retry_at.is_some_and(|at| at <= tokio::time::Instant::now()) && awaiting == 0 {
            retry_at = None;
            cursor = outbox.keys().next().copied().unwrap_or(next);
        }
        let window = if pace.load(Ordering::Relaxed) == SATURATE { CALIBRATION_WINDOW } else { WINDOW };
        if retry_at.is_none() && awaiting < window {
            let mut batch = 0;
            for (&number, (due_us, sent_us)) in outbox.range_mut(cursor..).take(window - awaiting) {
                let frame = format!(
                    r#"{{"type":"send","req":"{number}","to":{{"user":"{partner}"}},"client_msg_id":"{me}-{number}","content":"{due_us} {number}"}}"#
                );
                sink.feed(Message::text(frame)).await.context("send")?;
                *sent_us = timeline.now_us();
                cursor = number + 1;
                batch += 1;
            }
            if batch > 0 {
                sink.flush().await.context("send")?;
                awaiting += batch;
                timeline.record(|second| second.transmitted += batch as u64);
            }
        }
        let retry_wait = retry_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut tick => {
                let interval = pace.load(Ordering::Relaxed);
                let now = tokio::time::Instant::now();
                if interval == 0 {
                    due = now + Duration::from_millis(50);
                } else if interval == SATURATE {
                    let added = OUTBOX - outbox.len();
                    for _ in 0..added {
                        outbox.insert(next, (timeline.now_us(), 0));
                        next += 1;
                    }
                    shared.outstanding.fetch_add(added as u64, Ordering::Relaxed);
                    timeline.record(|second| second.offered += added as u64);
                    due = now + Duration::from_millis(10);
                } else {
                    if outbox.len() < OUTBOX {
                        outbox.insert(next, (timeline.now_us(), 0));
                        next += 1;
                        shared.outstanding.fetch_add(1, Ordering::Relaxed);
                        timeline.record(|second| second.offered += 1);
                    } else {
                        timeline.record(|second| second.deferred += 1);
                    }
                    // A user that fell behind (a slow turn) does not catch up in a burst.
                    due = (due + Duration::from_micros(interval)).max(now - Duration::from_millis(100));
                }
                tick.as_mut().reset(due);
            }
            _ = tokio::time::sleep_until(retry_wait), if retry_at.is_some() => {}
            _ = &mut ack, if ack_pending => {
                ack_pending = false;
                if highest_seq > acked_seq {
                    acked_seq = highest_seq;
                    sink.send(Message::text(format!(r#"{{"type":"ack","seq":{acked_seq}}}"#))).await.context("ack")?;
                }
            }
            incoming = stream.next() => {
                let Some(Ok(Message::Text(text))) = incoming else { bail!("the server closed {me}'s connection") };
                let frame: Incoming<'_> = serde_json::from_str(&text)?;
                match &*frame.kind {
                    "sent" | "error" => {
                        let answer: serde_json::Value = serde_json::from_str(&text)?;
                        let Some(number) = answer["req"].as_str().and_then(|req| req.parse::<u64>().ok()) else { continue };
                        awaiting = awaiting.saturating_sub(1);
                        if frame.kind == "error" {
                            let code = answer["code"].as_str().unwrap_or("");
                            if code != "unavailable" {
                                bail!("send refused {code}: {}", answer["message"]);
                            }
                            let wait = answer["retry_after"].as_u64().unwrap_or(1);
                            retry_at.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(wait));
                            timeline.record(|second| second.refused += 1);
                        } else if outbox.remove(&number).is_some() {
                            report.confirmed += 1;
                            shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                            shared.confirmed.fetch_add(1, Ordering::Relaxed);
                            timeline.record(|second| second.confirmed += 1);
                        }
                    }
                    "event" => {
                        highest_seq = highest_seq.max(frame.seq);
                        if !ack_pending {
                            ack_pending = true;
                            ack.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(20));
                        }
                        let Some(event) = frame.event else { continue };
                        if event.kind != "message" || event.from.as_deref() == Some(me.as_str()) {
                            continue;
                        }
                        // The content is `<due µs> <number>`.
                        let content = event.content.unwrap_or_default();
                        let due_us = stamp_of(&content).unwrap_or(0);
                        let number = content.split(' ').nth(1).and_then(|number| number.parse::<u64>().ok());
                        match (last_from_partner, number) {
                            (_, None) => bail!("a message without its number: {content:?}"),
                            (Some(last), Some(number)) if number == last => report.duplicates += 1,
                            (Some(last), Some(number)) if number < last => report.reordered += 1,
                            (_, Some(number)) => {
                                report.received += 1;
                                shared.received.fetch_add(1, Ordering::Relaxed);
                                last_from_partner = Some(number);
                                let latency = timeline.now_us().saturating_sub(due_us);
                                timeline.record(|second| {
                                    second.delivered += 1;
                                    if probe {
                                        second.probe_us.push(latency);
                                    }
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The p99 of the probes' latencies (ms) over `seconds`.
fn probe_p99(seconds: &[Second]) -> f64 {
    let mut samples: Vec<u64> = seconds.iter().flat_map(|second| second.probe_us.iter().copied()).collect();
    samples.sort_unstable();
    percentile(&samples, 0.99)
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
        "server_rss_mib_max": of.iter().map(|s| s.rss_kib).max().unwrap_or(0) / 1024,
    })
}

/// Runs the phases against the server at `ws_url` (its RSS read from `pid`).
pub(super) async fn run(args: &BenchArgs, ws_url: &str, accounts: &[Account], pid: Option<u32>) -> anyhow::Result<()> {
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
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut printed = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let rss = pid.and_then(rss_kib).unwrap_or(0);
                shared.timeline.record(|second| second.rss_kib = rss);
                let seconds = shared.timeline.seconds.lock().expect("timeline").clone();
                let done = seconds.len().saturating_sub(1);
                for (at, second) in seconds.iter().enumerate().take(done).skip(printed) {
                    eprintln!(
                        "bench: {at:>3}s {:<9} due {:>6} deferred {:>6} sent {:>6} refused {:>6} confirmed {:>6} delivered {:>6} probe p99 {:>8.1} ms rss {} MiB",
                        second.phase,
                        second.offered + second.deferred,
                        second.deferred,
                        second.transmitted,
                        second.refused,
                        second.confirmed,
                        second.delivered,
                        probe_p99(std::slice::from_ref(second)),
                        second.rss_kib / 1024
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
