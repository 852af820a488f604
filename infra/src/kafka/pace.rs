//! A reader the broker starves: behind its partitions' ends, yet every
//! fetch comes back empty.
//!
//! Kafka answers a fetch as soon as records are there, whatever its wait.
//! The test broker (Tansu) does not: busy, it answered a reader far behind
//! in a long partition with nothing, fetch after fetch, when the reader
//! allowed it 10 ms; with 50 ms or more it sent the records (RELIABILITY.md,
//! "Runs that got stuck"). A reader whose polls stay empty for a while
//! therefore asks the broker where its partitions end. Behind, it asks
//! again a little later (a reader that was paused, or cut off the broker,
//! is behind for a moment too, and its next fetch brings the records);
//! still behind with nothing read, it reopens with a wide fetch wait until
//! it has caught up, then narrows it again (on such a broker a wide wait
//! delays every record that arrives while the reader is idle). [`Pace`]
//! decides; the consumer does the I/O.

use std::time::{Duration, Instant};

/// How long a reader's polls stay empty before it asks whether it is behind.
pub(super) const STARVED_AFTER: Duration = Duration::from_secs(5);
/// How long a reader found behind may go on reading nothing before it
/// counts as starved.
pub(super) const STILL_BEHIND_AFTER: Duration = Duration::from_secs(2);
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
    stage: Stage,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stage {
    /// The configured fetch wait.
    #[default]
    Narrow,
    /// The configured wait, found behind once with nothing read.
    Suspect,
    /// [`WIDE_FETCH_WAIT_MS`].
    Wide,
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
            if self.stage == Stage::Suspect {
                self.stage = Stage::Narrow;
            }
            return false;
        }
        let since = *self.empty_since.get_or_insert(now);
        let period = match self.stage {
            Stage::Narrow => STARVED_AFTER,
            Stage::Suspect => STILL_BEHIND_AFTER,
            Stage::Wide => CAUGHT_UP_AFTER,
        };
        now.duration_since(since) >= period
    }

    /// With the comparison's answer (`None`: the broker did not say): how
    /// to reopen, if at all. The next check comes a full period later.
    pub(super) fn judge(&mut self, now: Instant, behind: Option<bool>) -> Option<Reopen> {
        self.empty_since = Some(now);
        let (stage, reopen) = match (self.stage, behind?) {
            (Stage::Narrow, true) => (Stage::Suspect, None),
            (Stage::Suspect, true) => (Stage::Wide, Some(Reopen::Wide)),
            (Stage::Wide, true) => (Stage::Wide, None),
            (Stage::Narrow | Stage::Suspect, false) => (Stage::Narrow, None),
            (Stage::Wide, false) => (Stage::Narrow, Some(Reopen::Narrow)),
        };
        self.stage = stage;
        reopen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// Empty polls every 100 ms from `from` ms; at each check, `behind`
    /// answers. Returns the reopenings with when they came.
    fn idle(pace: &mut Pace, start: Instant, from: u64, to: u64, behind: bool) -> Vec<(u64, Reopen)> {
        let mut reopened = Vec::new();
        for ms in (from..to).step_by(100) {
            if pace.after_poll(at(start, ms), false)
                && let Some(reopen) = pace.judge(at(start, ms), Some(behind))
            {
                reopened.push((ms, reopen));
            }
        }
        reopened
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
        assert_eq!(idle(&mut pace, start, 10_000, 60_000, false), []);
    }

    #[test]
    fn a_reader_behind_for_a_moment_reads_on_and_stays_narrow() {
        // Paused or cut off: behind at the check, then its fetch brings the records.
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.after_poll(at(start, 0), false);
        assert!(pace.after_poll(at(start, 5_000), false));
        assert_eq!(pace.judge(at(start, 5_000), Some(true)), None);
        assert!(!pace.after_poll(at(start, 5_100), true));
        // Idle again later: a full period before the next check, as before.
        assert!(!pace.after_poll(at(start, 6_000), false));
        assert!(!pace.after_poll(at(start, 8_500), false));
        assert!(pace.after_poll(at(start, 11_000), false));
        assert_eq!(pace.judge(at(start, 11_000), Some(true)), None);
    }

    #[test]
    fn a_starved_reader_widens_then_narrows_once_caught_up() {
        let start = Instant::now();
        let mut pace = Pace::default();
        // Behind with nothing read: found at 5 s, starved 2 s later.
        assert_eq!(idle(&mut pace, start, 0, 8_000, true), [(7_000, Reopen::Wide)]);
        // Catching up: records flow, no checks.
        for ms in (8_000..20_000).step_by(500) {
            assert!(!pace.after_poll(at(start, ms), true));
        }
        // Idle again: checked after a short while, and narrowed.
        assert_eq!(idle(&mut pace, start, 20_000, 22_000, false), [(21_000, Reopen::Narrow)]);
        assert!(!pace.after_poll(at(start, 22_000), false));
    }

    #[test]
    fn a_reader_still_behind_when_wide_stays_wide() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(idle(&mut pace, start, 0, 30_000, true), [(7_000, Reopen::Wide)]);
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
        assert_eq!(pace.judge(at(start, 10_000), Some(true)), None);
        assert!(pace.after_poll(at(start, 12_000), false));
        assert_eq!(pace.judge(at(start, 12_000), Some(true)), Some(Reopen::Wide));
    }
}
