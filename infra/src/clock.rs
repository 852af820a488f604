//! Time as the edges read it: the wall clock (the pure core takes time
//! from record timestamps instead) and the process's own CPU time.

/// Wall-clock milliseconds since the Unix epoch. Only edges call this; the
/// pure core takes time from record timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// CPU time this process has used, every thread, user and system, from
/// `/proc/self/stat` (USER_HZ ticks, 100 per second on Linux); zero where
/// that file is missing. For tools that print their own cost.
pub fn process_cpu() -> std::time::Duration {
    cpu_of("self")
}

/// CPU time used so far by process `pid` (`"self"` or a number), from `/proc`.
pub fn cpu_of(pid: &str) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at "state".
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime: fields 14 and 15 of the line, 11 and 12 counted from "state".
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The wall clock as a handle the edges are given, so what they stamp and
/// compare with the time (token and URL expiry, typing signals, last seen,
/// ids) follows one clock a test can set: the system's, or a manual one.
#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    System,
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that reads `start_ms` until [`Clock::advance`] moves it (tests).
    pub fn manual(start_ms: i64) -> Clock {
        Clock(Source::Manual(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(start_ms))))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => now_ms(),
            Source::Manual(at) => at.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; the system clock moves by itself, and
    /// asking it to is a mistake.
    pub fn advance(&self, by: std::time::Duration) {
        match &self.0 {
            Source::System => panic!("the system clock cannot be moved; use Clock::manual in tests"),
            Source::Manual(at) => {
                at.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(std::time::Duration::from_millis(250));
        assert_eq!(clock.clone().now_ms(), 1_250, "clones share the clock");
        assert!(Clock::system().now_ms() > 1_700_000_000_000);
    }
}
