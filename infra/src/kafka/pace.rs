//! A reader the broker starves: behind its partitions' ends, yet every
//! fetch comes back empty.
//!
//! Kafka answers a fetch as soon as records are there, whatever its wait.
//! The test broker (Tansu) does not: busy, it answered a reader far behind
//! in a long partition with nothing, fetch after fetch, when the reader
//! allowed it 10 ms; with 50 ms or more it sent the records (RELIABILITY.md,
//! "Runs that got stuck"). A reader whose polls stay empty for a while
//! therefore asks the broker where its partitions end; behind, it reopens
//! with a wide fetch wait until it has caught up, then narrows it again
//! (on such a broker a wide wait delays every record that arrives while
//! the reader is idle). [`Pace`] decides; the consumer does the I/O.

use std::time::{Duration, Instant};

/// How long a reader's polls stay empty before it asks whether it is behind.
pub(super) const STARVED_AFTER: Duration = Duration::from_secs(5);
/// How long a widened reader's polls stay empty before it asks whether it
/// has caught up.
pub(super) const CAUGHT_UP_AFTER: Duration = Duration::from_secs(1);
/// The fetch wait of a reader found starved, in ms.
pub(super) const WIDE_FETCH_WAIT_MS: u32 = 500;

/// Where a reader stands between empty polls and fetch waits.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Since when its polls have been empty (or since its last check).
    empty_since: Option<Instant>,
    /// Whether it reads with [`WIDE_FETCH_WAIT_MS`].
    wide: bool,
}

/// The fetch wait a reader should reopen with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reopen {
    /// Behind and starved: [`WIDE_FETCH_WAIT_MS`].
    Wide,
    /// Caught up: the configured wait.
    Narrow,
}

impl Pace {
    /// After a poll: whether to compare the reader's positions with its
    /// partitions' ends now.
    pub(super) fn after_poll(&mut self, now: Instant, got_records: bool) -> bool {
        if got_records {
            self.empty_since = None;
            return false;
        }
        let since = *self.empty_since.get_or_insert(now);
        now.duration_since(since) >= if self.wide { CAUGHT_UP_AFTER } else { STARVED_AFTER }
    }

    /// With the comparison's answer (`None`: the broker did not say): how
    /// to reopen, if at all. The next check comes a full period later.
    pub(super) fn judge(&mut self, now: Instant, behind: Option<bool>) -> Option<Reopen> {
        self.empty_since = Some(now);
        match (self.wide, behind?) {
            (false, true) => {
                self.wide = true;
                Some(Reopen::Wide)
            }
            (true, false) => {
                self.wide = false;
                Some(Reopen::Narrow)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_reader_getting_records_never_checks() {
        let start = Instant::now();
        let mut pace = Pace::default();
        for ms in (0..60_000).step_by(100) {
            assert!(!pace.after_poll(at(start, ms), true));
        }
    }

    #[test]
    fn an_idle_reader_checks_once_a_period_and_stays_narrow() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert!(!pace.after_poll(at(start, 0), false));
        assert!(!pace.after_poll(at(start, 4_900), false));
        assert!(pace.after_poll(at(start, 5_000), false));
        assert_eq!(pace.judge(at(start, 5_000), Some(false)), None);
        assert!(!pace.after_poll(at(start, 9_900), false));
        assert!(pace.after_poll(at(start, 10_000), false));
    }

    #[test]
    fn a_starved_reader_widens_then_narrows_once_caught_up() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.after_poll(at(start, 0), false);
        assert!(pace.after_poll(at(start, 5_000), false));
        assert_eq!(pace.judge(at(start, 5_000), Some(true)), Some(Reopen::Wide));
        // Catching up: records flow, no checks.
        for ms in (5_500..20_000).step_by(500) {
            assert!(!pace.after_poll(at(start, ms), true));
        }
        // Idle again: checked after a short while, and narrowed.
        assert!(!pace.after_poll(at(start, 20_500), false));
        assert!(pace.after_poll(at(start, 21_500), false));
        assert_eq!(pace.judge(at(start, 21_500), Some(false)), Some(Reopen::Narrow));
        assert!(!pace.after_poll(at(start, 22_000), false));
    }

    #[test]
    fn a_reader_still_behind_when_wide_stays_wide() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.after_poll(at(start, 0), false);
        pace.after_poll(at(start, 5_000), false);
        assert_eq!(pace.judge(at(start, 5_000), Some(true)), Some(Reopen::Wide));
        assert!(pace.after_poll(at(start, 6_000), false));
        assert_eq!(pace.judge(at(start, 6_000), Some(true)), None);
        assert!(!pace.after_poll(at(start, 6_500), false));
    }

    #[test]
    fn an_unanswered_check_changes_nothing_and_waits_a_period() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.after_poll(at(start, 0), false);
        assert!(pace.after_poll(at(start, 5_000), false));
        assert_eq!(pace.judge(at(start, 5_000), None), None);
        assert!(!pace.after_poll(at(start, 9_000), false));
        assert!(pace.after_poll(at(start, 10_000), false));
        assert_eq!(pace.judge(at(start, 10_000), Some(true)), Some(Reopen::Wide));
    }
}
