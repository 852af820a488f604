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
//! still behind with nothing read, it reopens with a wide fetch wait for a
//! few seconds, then with the configured one again. It does not stay wide:
//! that broker holds every fetch for most of its wait even when records
//! are there, so a wide reader in a busy partition lags by half a second
//! a hop (a reader that stayed wide halved a fault run's throughput); one
//! starved again is found again. [`Pace`] decides; the consumer does the
//! I/O.

use std::time::{Duration, Instant};

/// How long a reader's polls stay empty before it asks whether it is behind.
pub(super) const STARVED_AFTER: Duration = Duration::from_secs(5);
/// How long a reader found behind may go on reading nothing before it
/// counts as starved.
pub(super) const STILL_BEHIND_AFTER: Duration = Duration::from_secs(2);
/// How long a starved reader fetches with [`WIDE_FETCH_WAIT_MS`].
pub(super) const WIDE_FOR: Duration = Duration::from_secs(5);
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
    /// [`WIDE_FETCH_WAIT_MS`] until then.
    Wide(Instant),
}

/// The fetch wait a reader should reopen with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reopen {
    /// Behind and starved: [`WIDE_FETCH_WAIT_MS`].
    Wide,
    /// Its wide spell is over: the configured wait.
    Narrow,
}

/// What a reader does after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Polls on.
    Read,
    /// Compares its positions with its partitions' ends ([`Pace::judge`]).
    Check,
    /// Reopens with another fetch wait.
    Reopen(Reopen),
}

impl Pace {
    /// After a poll that read records or not.
    pub(super) fn after_poll(&mut self, now: Instant, got_records: bool) -> Next {
        if let Stage::Wide(until) = self.stage {
            if now < until {
                return Next::Read;
            }
            self.stage = Stage::Narrow;
            self.empty_since = (!got_records).then_some(now);
            return Next::Reopen(Reopen::Narrow);
        }
        if got_records {
            self.empty_since = None;
            self.stage = Stage::Narrow;
            return Next::Read;
        }
        let since = *self.empty_since.get_or_insert(now);
        let period = if self.stage == Stage::Suspect { STILL_BEHIND_AFTER } else { STARVED_AFTER };
        if now.duration_since(since) >= period { Next::Check } else { Next::Read }
    }

    /// With the comparison's answer (`None`: the broker did not say):
    /// whether to reopen wide. The next check comes a full period later.
    pub(super) fn judge(&mut self, now: Instant, behind: Option<bool>) -> Option<Reopen> {
        self.empty_since = Some(now);
        let (stage, reopen) = match (self.stage, behind?) {
            (Stage::Narrow, true) => (Stage::Suspect, None),
            (Stage::Suspect, true) => (Stage::Wide(now + WIDE_FOR), Some(Reopen::Wide)),
            (Stage::Wide(until), _) => (Stage::Wide(until), None),
            (_, false) => (Stage::Narrow, None),
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

    /// Polls every 100 ms from `from` to `to` ms, reading records or not;
    /// each check answers `behind`. The reopenings, with when they came.
    fn polls(pace: &mut Pace, start: Instant, (from, to): (u64, u64), got: bool, behind: bool) -> Vec<(u64, Reopen)> {
        let mut reopened = Vec::new();
        for ms in (from..to).step_by(100) {
            let reopen = match pace.after_poll(at(start, ms), got) {
                Next::Read => None,
                Next::Check => pace.judge(at(start, ms), Some(behind)),
                Next::Reopen(reopen) => Some(reopen),
            };
            reopened.extend(reopen.map(|reopen| (ms, reopen)));
        }
        reopened
    }

    #[test]
    fn a_reader_getting_records_never_checks() {
        let start = Instant::now();
        let mut pace = Pace::default();
        for ms in (0..60_000).step_by(100) {
            assert_eq!(pace.after_poll(at(start, ms), true), Next::Read);
        }
    }

    #[test]
    fn an_idle_reader_checks_once_a_period_and_stays_narrow() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.after_poll(at(start, 0), false), Next::Read);
        assert_eq!(pace.after_poll(at(start, 4_900), false), Next::Read);
        assert_eq!(pace.after_poll(at(start, 5_000), false), Next::Check);
        assert_eq!(pace.judge(at(start, 5_000), Some(false)), None);
        assert_eq!(pace.after_poll(at(start, 9_900), false), Next::Read);
        assert_eq!(pace.after_poll(at(start, 10_000), false), Next::Check);
        assert_eq!(polls(&mut pace, start, (10_000, 60_000), false, false), []);
    }

    #[test]
    fn a_reader_behind_for_a_moment_reads_on_and_stays_narrow() {
        // Paused or cut off: behind at the check, then its fetch brings the records.
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.after_poll(at(start, 0), false);
        assert_eq!(pace.after_poll(at(start, 5_000), false), Next::Check);
        assert_eq!(pace.judge(at(start, 5_000), Some(true)), None);
        assert_eq!(pace.after_poll(at(start, 5_100), true), Next::Read);
        // Idle again later: a full period before the next check, as before.
        assert_eq!(pace.after_poll(at(start, 6_000), false), Next::Read);
        assert_eq!(pace.after_poll(at(start, 8_500), false), Next::Read);
        assert_eq!(pace.after_poll(at(start, 11_000), false), Next::Check);
        assert_eq!(pace.judge(at(start, 11_000), Some(true)), None);
    }

    #[test]
    fn a_starved_reader_widens_for_a_spell_then_narrows_even_while_records_flow() {
        let start = Instant::now();
        let mut pace = Pace::default();
        // Behind with nothing read: found at 5 s, starved 2 s later.
        assert_eq!(polls(&mut pace, start, (0, 8_000), false, true), [(7_000, Reopen::Wide)]);
        // Catching up, records flowing: narrow again when the spell is over.
        assert_eq!(polls(&mut pace, start, (8_000, 30_000), true, true), [(12_000, Reopen::Narrow)]);
    }

    #[test]
    fn a_reader_starved_for_good_alternates_and_is_never_left_narrow_for_long() {
        let start = Instant::now();
        let mut pace = Pace::default();
        let reopened = polls(&mut pace, start, (0, 40_000), false, true);
        assert_eq!(
            reopened,
            [
                (7_000, Reopen::Wide),
                (12_000, Reopen::Narrow),
                (19_000, Reopen::Wide),
                (24_000, Reopen::Narrow),
                (31_000, Reopen::Wide),
                (36_000, Reopen::Narrow)
            ]
        );
    }

    #[test]
    fn an_unanswered_check_changes_nothing_and_waits_a_period() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.after_poll(at(start, 0), false);
        assert_eq!(pace.after_poll(at(start, 5_000), false), Next::Check);
        assert_eq!(pace.judge(at(start, 5_000), None), None);
        assert_eq!(pace.after_poll(at(start, 9_000), false), Next::Read);
        assert_eq!(pace.after_poll(at(start, 10_000), false), Next::Check);
        assert_eq!(pace.judge(at(start, 10_000), Some(true)), None);
        assert_eq!(pace.after_poll(at(start, 12_000), false), Next::Check);
        assert_eq!(pace.judge(at(start, 12_000), Some(true)), Some(Reopen::Wide));
    }
}
