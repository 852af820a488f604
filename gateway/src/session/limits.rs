//! Per-account allowances for the WebSocket frames that write to the log,
//! so one account cannot flood it. Each is a token bucket per account,
//! shared by the account's connections on this gateway:
//!
//! - sends and forwards are *paced*: past the bucket a connection waits
//!   for the next token before it reads on (back-pressure, no error), so a
//!   fast client is slowed down and its sends keep their order;
//! - read marks, edits, deletes and reactions past the bucket are refused
//!   `rate_limited` (nothing appended; a read mark is cumulative, so a
//!   later one covers a refused one);
//! - typing signals: 3 at once, then one a second (`rate_limited`);
//! - acks need no bucket: a connection has at most one ack append in
//!   flight and folds the others into the next (`ws::Acks`).
//!
//! Past the accounts' allowances the gateway as a whole admits at most
//! `--max-pending-sends` sends and forwards appended but not yet answered
//! (`admit_send`, shared fairly between connections: `room.rs`; with
//! `--send-queue-slack-ms`, fewer while they queue inside the pipeline:
//! `room_size.rs`). A send
//! that finds no room within `--admission-wait-ms` is refused `unavailable`
//! with `retry_after` (nothing appended), so overload turns into prompt
//! refusals the client retries instead of a queue that grows with the
//! number of connections.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use missive_core::UserId;

use super::room::{Holder, Place, SendRoom};
use crate::protocol::ApiError;

/// Sends and forwards per account per second, sustained.
pub const SENDS_PER_SECOND: u32 = 100;
/// Sends and forwards an account may make at once.
pub const SEND_BURST: u32 = 1_000;
/// Read marks, edits, deletes and reactions per account per second.
pub const WRITES_PER_SECOND: u32 = 20;
/// ... and at once.
pub const WRITE_BURST: u32 = 100;

/// Sends and forwards a gateway holds appended and unanswered, by default
/// (`--max-pending-sends`): at ~10,000 decided a second, 0.1 s of work.
pub const MAX_PENDING_SENDS: usize = 1_024;
/// How long a send waits for room among the pending ones before it is
/// refused, by default (`--admission-wait-ms`). Waiting is the cheaper
/// push-back (the connection is simply not read meanwhile, and waiters are
/// served fewest-held first); a refusal costs a frame each way and a
/// resend, so it is kept for a queue of waiting connections longer than this.
pub const ADMISSION_WAIT: Duration = Duration::from_millis(1_000);

/// How many sends and forwards a gateway holds in flight, and how long a
/// new one waits for room before it is refused.
#[derive(Clone, Copy, Debug)]
pub struct SendAdmission {
    /// The most in flight; the room adapts between a sixteenth of it (at
    /// least 16) and all of it.
    pub max_pending: usize,
    pub wait: Duration,
    /// How much longer than the quietest lately a send may take to be
    /// answered before the room lets fewer in (`--send-queue-slack-ms`;
    /// `room_size.rs`). `None`, the default: the room stays at
    /// `max_pending`. At 2,000 flooding connections a slack of 20 ms
    /// halved a person's p99 during the overload but cost 13 % of the
    /// goodput, so the backlog drained later (BENCHMARKS.md, Overload).
    pub slack: Option<Duration>,
}

impl SendAdmission {
    /// The fewest places the adaptive room keeps.
    pub fn min_pending(&self) -> usize {
        (self.max_pending / 16).max(16).min(self.max_pending)
    }
}

impl Default for SendAdmission {
    fn default() -> SendAdmission {
        SendAdmission { max_pending: MAX_PENDING_SENDS, wait: ADMISSION_WAIT, slack: None }
    }
}
/// Seconds an overloaded gateway tells a refused sender to wait, at least
/// (one to three, at random, so refused clients do not all come back at once).
pub const OVERLOAD_RETRY_AFTER: u64 = 1;

/// Buckets past this many accounts drop those that are full again.
const TRACKED_MAX: usize = 100_000;

pub struct FrameLimits {
    sends: DefaultKeyedRateLimiter<UserId>,
    writes: DefaultKeyedRateLimiter<UserId>,
    typing: DefaultKeyedRateLimiter<UserId>,
    /// Room for sends and forwards appended and not yet answered.
    pending_sends: SendRoom,
    admission_wait: Duration,
}

pub(crate) fn quota(per_second: u32, burst: u32) -> Quota {
    let nonzero = |count: u32| NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(nonzero(per_second)).allow_burst(nonzero(burst))
}

/// How long until `limiter` has a token for `key` (zero when it took one
/// now). Past [`TRACKED_MAX`] keys, those whose buckets are full again go.
pub(crate) fn take<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: K) -> Duration {
    if limiter.len() > TRACKED_MAX {
        limiter.retain_recent();
    }
    match limiter.check_key(&key) {
        Ok(()) => Duration::ZERO,
        Err(not_until) => not_until.wait_time_from(DefaultClock::default().now()).max(Duration::from_millis(1)),
    }
}

pub(crate) fn refused(what: &str, wait: Duration) -> ApiError {
    ApiError::rate_limited(what, wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

impl Default for FrameLimits {
    fn default() -> FrameLimits {
        FrameLimits::new(SendAdmission::default())
    }
}

/// The refusal of a send the gateway has no room for.
pub fn overloaded() -> ApiError {
    let retry_after = OVERLOAD_RETRY_AFTER + rand::random_range(0..3);
    ApiError {
        retry_after: Some(retry_after),
        ..ApiError::unavailable(format!(
            "the server is busy and did not take this message; send it again in {retry_after} s with \
             the same client_msg_id (until then this connection refuses later sends the same way, so that \
             they cannot overtake it)"
        ))
    }
}

impl FrameLimits {
    /// The per-account allowances, and room for `admission.max_pending`
    /// (at least one) sends and forwards in flight on this gateway.
    pub fn new(admission: SendAdmission) -> FrameLimits {
        FrameLimits {
            sends: RateLimiter::keyed(quota(SENDS_PER_SECOND, SEND_BURST)),
            writes: RateLimiter::keyed(quota(WRITES_PER_SECOND, WRITE_BURST)),
            typing: RateLimiter::keyed(quota(1, 3)),
            pending_sends: SendRoom::adaptive(admission.min_pending(), admission.max_pending, admission.slack),
            admission_wait: admission.wait,
        }
    }

    /// Room for one more send or forward of the connection `holder` in
    /// flight, held until it is answered; waits up to the admission wait
    /// (the connection holding the fewest places is served first), then
    /// [`overloaded`].
    pub async fn admit_send(&self, holder: &Holder) -> Result<Place, ApiError> {
        self.pending_sends.enter(holder, self.admission_wait).await.ok_or_else(overloaded)
    }

    /// How many sends and forwards the room lets in at once now.
    pub fn send_room_size(&self) -> usize {
        self.pending_sends.size()
    }

    /// Waits until `user` may send another message.
    pub async fn pace_send(&self, user: UserId) {
        loop {
            let wait = take(&self.sends, user);
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// A read mark, edit, delete or reaction, or `rate_limited`.
    pub fn write(&self, user: UserId, what: &str) -> Result<(), ApiError> {
        let wait = take(&self.writes, user);
        if wait.is_zero() { Ok(()) } else { Err(refused(what, wait)) }
    }

    /// A typing signal, or `rate_limited`.
    pub fn typing(&self, user: UserId) -> Result<(), ApiError> {
        let wait = take(&self.typing, user);
        if wait.is_zero() { Ok(()) } else { Err(refused("typing signals", wait)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_past_the_burst_are_refused_and_sends_are_paced() {
        let limits = FrameLimits::default();
        let (user, other) = (UserId(1), UserId(2));
        for _ in 0..WRITE_BURST {
            limits.write(user, "read marks").expect("within the burst");
        }
        let refused = limits.write(user, "read marks").expect_err("past the burst");
        assert_eq!((refused.code, refused.retry_after), ("rate_limited", Some(1)));
        limits.write(other, "read marks").expect("another account has its own bucket");

        for _ in 0..SEND_BURST {
            limits.pace_send(user).await;
        }
        let started = std::time::Instant::now();
        for _ in 0..5 {
            limits.pace_send(user).await;
        }
        let waited = started.elapsed();
        let expected = Duration::from_secs(5) / SENDS_PER_SECOND;
        assert!(waited >= expected - Duration::from_millis(5), "5 sends past the burst wait ~{expected:?}: {waited:?}");
    }

    #[tokio::test]
    async fn a_full_gateway_refuses_sends_with_a_retry_hint_and_admits_once_room_returns() {
        let limits = FrameLimits::new(SendAdmission { max_pending: 2, wait: ADMISSION_WAIT, slack: None });
        let holder = Holder::default();
        let first = limits.admit_send(&holder).await.expect("room");
        let _second = limits.admit_send(&holder).await.expect("room");
        let started = std::time::Instant::now();
        let refused = limits.admit_send(&holder).await.expect_err("full");
        assert_eq!(refused.code, "unavailable");
        assert!(refused.retry_after.is_some_and(|seconds| (1..=3).contains(&seconds)), "{:?}", refused.retry_after);
        assert!(started.elapsed() >= ADMISSION_WAIT, "a send waits a moment for room first");
        drop(first);
        let _room = limits.admit_send(&holder).await.expect("an answered send frees its room");
    }
}
