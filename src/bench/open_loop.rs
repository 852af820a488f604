//! One open-loop user of `--overload` (`overload.rs`): it sends on its own
//! schedule whatever the server does, holds what is not confirmed in a
//! bounded outbox, resends refused sends in order after `retry_after`, acks
//! its feed and checks that its partner's messages arrive once and in
//! order; and the per-second timeline every user records into.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::support::{Incoming, stamp_of};

/// Sends a user has unanswered at once (while calibrating: few enough
/// that all users together stay within the gateway's pending room, so the
/// capacity is measured without refusals).
pub(super) const WINDOW: usize = 32;
pub(super) const CALIBRATION_WINDOW: usize = 4;
/// Messages a user's app holds unconfirmed; past it new ones are deferred
/// (a person does not type on while a few messages show as pending).
pub(super) const OUTBOX: usize = 32;

/// What happened in one second of the run.
#[derive(Default, Clone)]
pub(super) struct Second {
    pub(super) phase: &'static str,
    pub(super) offered: u64,
    pub(super) deferred: u64,
    pub(super) transmitted: u64,
    pub(super) refused: u64,
    pub(super) confirmed: u64,
    pub(super) delivered: u64,
    /// Probe messages: from the time they were due to their delivery (µs).
    pub(super) probe_us: Vec<u64>,
    /// ... and to their `sent` (the commit path alone, µs).
    pub(super) probe_sent_us: Vec<u64>,
    /// The server's processor lag (records behind, summed over partitions)
    /// by processor, as `/metrics` showed it this second.
    pub(super) lag: Vec<(String, u64)>,
    pub(super) rss_kib: u64,
}

pub(super) struct Timeline {
    pub(super) started: Instant,
    pub(super) seconds: Mutex<Vec<Second>>,
    pub(super) phase: Mutex<&'static str>,
}

impl Timeline {
    pub(super) fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
    pub(super) fn record(&self, change: impl FnOnce(&mut Second)) {
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
pub(super) type Pace = Arc<AtomicU64>;
pub(super) const SATURATE: u64 = u64::MAX;

/// A gap of a Poisson process whose gaps are `mean_us` on average.
fn poisson_gap(mean_us: u64) -> Duration {
    // 1 - uniform is in (0, 1]: its logarithm is finite (at most ~37 means).
    let uniform: f64 = rand::random();
    Duration::from_micros((-(1.0 - uniform).ln() * mean_us as f64) as u64)
}

pub(super) fn pace_for(total_per_second: f64, users: usize) -> u64 {
    if total_per_second <= 0.0 { 0 } else { (users as f64 * 1e6 / total_per_second).max(1.0) as u64 }
}

/// One user's account of the run.
#[derive(Default)]
pub(super) struct UserReport {
    pub(super) confirmed: u64,
    /// From its partner: distinct messages, repeats, and arrivals out of order.
    pub(super) received: u64,
    pub(super) duplicates: u64,
    pub(super) reordered: u64,
}

pub(super) struct Shared {
    pub(super) timeline: Timeline,
    /// Messages held unconfirmed by all users, and received by all users.
    pub(super) outstanding: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) confirmed: AtomicU64,
    /// Users whose run ended in an error (the bench stops).
    pub(super) failed: AtomicU64,
    pub(super) stop: AtomicBool,
}

/// One user: sends to `partner` at `pace`, answers refusals, acks and
/// checks what its own partner sends it.
pub(super) async fn user(
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
                    // Each user's messages come as a Poisson process (gaps
                    // exponential, `interval` apart on average), as a
                    // population's do: equal gaps kept the users' phases
                    // from the calibration, so all of them sent within a
                    // few ms of each other, and the bursts, not the server,
                    // set the baseline's p99. A user that fell behind (a
                    // slow turn) does not catch up in a burst.
                    due = (due + poisson_gap(interval)).max(now - Duration::from_millis(100));
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
                        } else if let Some((due_us, _)) = outbox.remove(&number) {
                            if probe {
                                let latency = timeline.now_us().saturating_sub(due_us);
                                timeline.record(|second| second.probe_sent_us.push(latency));
                            }
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
