//! How many sends the room (`room.rs`) lets into the pipeline at once,
//! adapted to what the pipeline answers: a pure controller fed one sample
//! per answered send (how long it was in flight) and told how many places
//! were held then.
//!
//! The idea is TCP Vegas' and Netflix's concurrency limits': the latency
//! of a send with nothing ahead of it is the lowest latency seen lately
//! (the mean of the quietest 100 ms window of the last 10–20 s). While a
//! window's mean stays within `max(2 × quiet, quiet + slack)` and the
//! room was full, the room grows (by about its square root a window);
//! when the mean goes past it, sends are queueing inside the pipeline and
//! the room shrinks by a tenth. Under overload the queue then stands in
//! front of the room, where places go to the connection holding fewest,
//! instead of inside the pipeline, where a person's send waits behind
//! every flooding connection's: the room settles at about what the
//! pipeline decides in `quiet + slack`. It never goes below `min` or
//! above `max` (`--max-pending-sends`); with no slack it stays at `max`.

use std::time::{Duration, Instant};

/// One window of answered sends: what the controller looks at.
const WINDOW: Duration = Duration::from_millis(100);
/// A window with fewer answers says too little to act on.
const WINDOW_SAMPLES: u32 = 16;
/// How long a quiet latency is remembered (between one and two spans).
const SPAN: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RoomSize {
    min: usize,
    max: usize,
    limit: f64,
    slack: Option<Duration>,
    window: Window,
    quiet: Quiet,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    total: Duration,
    count: u32,
    peak_held: usize,
}

/// The lowest window mean of this span and of the one before.
#[derive(Debug)]
struct Quiet {
    this_span: Option<Duration>,
    last_span: Option<Duration>,
    span_started: Instant,
}

impl Quiet {
    fn lowest(&self) -> Option<Duration> {
        match (self.this_span, self.last_span) {
            (Some(this), Some(last)) => Some(this.min(last)),
            (this, last) => this.or(last),
        }
    }

    fn observe(&mut self, mean: Duration, now: Instant) {
        if now.duration_since(self.span_started) >= SPAN {
            self.last_span = self.this_span.take();
            self.span_started = now;
        }
        self.this_span = Some(self.this_span.map_or(mean, |lowest| lowest.min(mean)));
    }
}

impl RoomSize {
    /// Between `min` and `max` places, starting at `max`; `slack`: how much
    /// longer than the quiet latency a window may take before the room
    /// shrinks (`None`: always `max`).
    pub fn new(min: usize, max: usize, slack: Option<Duration>, now: Instant) -> RoomSize {
        let max = max.max(1);
        RoomSize {
            min: min.clamp(1, max),
            max,
            limit: max as f64,
            slack,
            window: Window { started: now, total: Duration::ZERO, count: 0, peak_held: 0 },
            quiet: Quiet { this_span: None, last_span: None, span_started: now },
        }
    }

    /// Places the room has now.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// A send answered after `latency`, with `held` places taken just
    /// before it (its own among them).
    pub fn answered(&mut self, latency: Duration, held: usize, now: Instant) {
        let Some(slack) = self.slack else { return };
        let window = &mut self.window;
        window.total += latency;
        window.count += 1;
        window.peak_held = window.peak_held.max(held);
        if now.duration_since(window.started) < WINDOW || window.count < WINDOW_SAMPLES {
            return;
        }
        let mean = window.total / window.count;
        let full = window.peak_held as f64 >= self.limit * 0.9;
        *window = Window { started: now, total: Duration::ZERO, count: 0, peak_held: 0 };
        self.quiet.observe(mean, now);
        let quiet = self.quiet.lowest().unwrap_or(mean);
        let bound = (quiet * 2).max(quiet + slack);
        if mean > bound {
            self.limit = (self.limit * 0.9).max(self.min as f64);
        } else if full {
            self.limit = (self.limit + self.limit.sqrt().max(1.0)).min(self.max as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: Option<Duration> = Some(Duration::from_millis(20));

    /// Feeds `windows` windows of sends answered after `latency` with the
    /// room full, starting at `now`; returns the time after them.
    fn feed(size: &mut RoomSize, latency: Duration, windows: u32, mut now: Instant) -> Instant {
        for _ in 0..windows {
            for sample in 0..WINDOW_SAMPLES {
                let at = now + WINDOW * sample / WINDOW_SAMPLES;
                size.answered(latency, size.limit(), at);
            }
            now += WINDOW;
            size.answered(latency, size.limit(), now);
        }
        now
    }

    /// A room of 64 to 1,024 places that has seen `windows` quiet windows
    /// (3 ms), from `start`; and the time after them.
    fn quiet_room(windows: u32, start: Instant) -> (RoomSize, Instant) {
        let mut size = RoomSize::new(64, 1024, SLACK, start);
        let now = feed(&mut size, Duration::from_millis(3), windows, start);
        (size, now)
    }

    #[test]
    fn a_queue_inside_the_pipeline_shrinks_the_room_to_its_floor_and_no_further() {
        let (mut size, now) = quiet_room(5, Instant::now());
        assert_eq!(size.limit(), 1024, "quiet and full: stays at the most");
        let now = feed(&mut size, Duration::from_millis(150), 5, now);
        assert!(size.limit() < 1024 * 9 / 10 * 9 / 10, "shrinks while sends queue: {}", size.limit());
        feed(&mut size, Duration::from_millis(150), 100, now);
        assert_eq!(size.limit(), 64, "never below the floor");
    }

    #[test]
    fn a_room_that_answers_quickly_again_grows_back() {
        let (mut size, now) = quiet_room(3, Instant::now());
        let now = feed(&mut size, Duration::from_millis(200), 60, now);
        assert_eq!(size.limit(), 64);
        feed(&mut size, Duration::from_millis(4), 200, now);
        assert_eq!(size.limit(), 1024, "back at the most once the queue is gone");
    }

    #[test]
    fn latency_within_the_slack_or_a_room_not_full_leaves_it_alone() {
        let (mut size, now) = quiet_room(3, Instant::now());
        let now = feed(&mut size, Duration::from_millis(20), 50, now);
        assert_eq!(size.limit(), 1024, "3 ms quiet + 20 ms slack covers 20 ms");
        let (mut shrunk, now) = quiet_room(3, now);
        let now = feed(&mut shrunk, Duration::from_millis(200), 30, now);
        let small = shrunk.limit();
        // Quick answers, but only two places held: no reason to grow.
        let mut at = now;
        for _ in 0..50 * WINDOW_SAMPLES {
            at += WINDOW / WINDOW_SAMPLES;
            shrunk.answered(Duration::from_millis(3), 2, at);
        }
        assert_eq!(shrunk.limit(), small);
    }

    #[test]
    fn the_quiet_latency_is_forgotten_after_two_spans() {
        let start = Instant::now();
        let mut size = RoomSize::new(64, 1024, SLACK, start);
        let now = feed(&mut size, Duration::from_millis(1), 3, start);
        // The pipeline got slower for good (say, a remote broker): after
        // two spans its new latency is the quiet one and the room regrows.
        let windows = (2 * SPAN.as_millis() / WINDOW.as_millis()) as u32 + 200;
        feed(&mut size, Duration::from_millis(40), windows, now);
        assert_eq!(size.limit(), 1024);
    }

    #[test]
    fn without_slack_the_room_keeps_its_size() {
        let start = Instant::now();
        let mut size = RoomSize::new(64, 1024, None, start);
        feed(&mut size, Duration::from_millis(500), 50, start);
        assert_eq!(size.limit(), 1024);
    }
}
