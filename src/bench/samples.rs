//! Latency samples gathered by many tasks at once.

use std::sync::Mutex;

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Latencies(Mutex<Vec<u64>>);

impl Latencies {
    pub fn record(&self, micros: u64) {
        if let Ok(mut samples) = self.0.lock() {
            samples.push(micros);
        }
    }
    pub fn take(&self) -> Vec<u64> {
        self.0.lock().map(|mut samples| std::mem::take(&mut *samples)).unwrap_or_default()
    }
}
