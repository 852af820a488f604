//! The embedded log: Kafka's model stored in RocksDB.
//!
//! Appends go through one writer thread that groups concurrent requests into
//! a single WriteBatch (group commit), assigns offsets, writes, then publishes
//! the new high watermarks and wakes consumers. Reads are RocksDB range scans
//! on blocking threads. Survives `kill -9`: a write is in the WAL before the
//! append returns (with `sync` it is also fsynced, surviving power loss).
//!
//! `state` is what the log holds in memory, `keys` how records lie in
//! RocksDB, `open` opening and retention, `writer` the group-commit thread,
//! `log_impl` the `Log` trait, `consumer` reading.

mod consumer;
mod keys;
mod log_impl;
mod open;
mod state;
mod writer;

pub use state::{EmbeddedLog, LogStats, LogStatsSnapshot};

/// Decodes `bytes` as a stored log record (the `log_record` fuzz target).
#[cfg(fuzzing)]
pub fn fuzz_decode_record(bytes: &[u8]) {
    let _ = keys::decode_record("fuzz", 0, 0, bytes);
}

#[cfg(test)]
mod tests;
