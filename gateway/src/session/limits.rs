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

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use missive_core::UserId;

use crate::protocol::ApiError;

/// Sends and forwards per account per second, sustained.
pub const SENDS_PER_SECOND: u32 = 100;
/// Sends and forwards an account may make at once.
pub const SEND_BURST: u32 = 1_000;
/// Read marks, edits, deletes and reactions per account per second.
pub const WRITES_PER_SECOND: u32 = 20;
/// ... and at once.
pub const WRITE_BURST: u32 = 100;

/// Buckets past this many accounts drop those that are full again.
const TRACKED_MAX: usize = 100_000;

pub struct FrameLimits {
    sends: DefaultKeyedRateLimiter<UserId>,
    writes: DefaultKeyedRateLimiter<UserId>,
    typing: DefaultKeyedRateLimiter<UserId>,
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
        FrameLimits {
            sends: RateLimiter::keyed(quota(SENDS_PER_SECOND, SEND_BURST)),
            writes: RateLimiter::keyed(quota(WRITES_PER_SECOND, WRITE_BURST)),
            typing: RateLimiter::keyed(quota(1, 3)),
        }
    }
}

impl FrameLimits {
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
}
