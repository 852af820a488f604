//! Progress of a long-running tool (`rebuild`, `replay`, `stats`, `bench`):
//! a bar with rate and time left when stderr is a terminal (indicatif), a
//! plain line every few seconds otherwise (logs, CI), so piped output stays
//! greppable and a person watching sees it move.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);
/// How often the bar reads the counter.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// Reports a shared counter until [`Progress::finish`] (or drop).
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
    done: Arc<AtomicU64>,
}

impl Progress {
    /// Starts reporting `done` of `total` as `what` under the tool's name
    /// `tool`, e.g. `rebuild: 120000 of 961000 records`.
    pub fn start(tool: &'static str, what: &'static str, total: u64, done: Arc<AtomicU64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| bar(tool, what, total));
        let task = match &bar {
            Some(bar) => {
                let (bar, done) = (bar.clone(), done.clone());
                tokio::spawn(async move {
                    loop {
                        bar.set_position(done.load(Ordering::Relaxed));
                        tokio::time::sleep(BAR_EVERY).await;
                    }
                })
            }
            None => {
                let done = done.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    loop {
                        tokio::time::sleep(LINE_EVERY).await;
                        eprintln!("{}", line(tool, what, total, done.load(Ordering::Relaxed), started.elapsed()));
                    }
                })
            }
        };
        Progress { task, bar, done }
    }

    /// Stops reporting; a bar is left at its final count.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.set_position(self.done.load(Ordering::Relaxed));
            bar.abandon();
        }
    }
}

fn bar(tool: &str, what: &str, total: u64) -> ProgressBar {
    let template = "{prefix}: [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg} ({per_sec}, {eta} left)";
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(template).expect("the template above is valid"));
    bar.set_prefix(tool.to_string());
    bar.set_message(what.to_string());
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    bar
}

/// The plain progress line: count, rate and time left.
pub fn line(tool: &str, what: &str, total: u64, done: u64, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let left = total.saturating_sub(done) as f64 / rate.max(1.0);
    format!("{tool}: {done} of {total} {what}, {rate:.0}/s, about {left:.0} s left")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_gives_count_rate_and_time_left() {
        let line = line("rebuild", "records", 1000, 250, Duration::from_secs(5));
        assert_eq!(line, "rebuild: 250 of 1000 records, 50/s, about 15 s left");
    }
}
