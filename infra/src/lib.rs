//! Infrastructure at the edges: the `Log` trait and its embedded RocksDB
//! backend, the process's RocksDB, and the log conformance suite every
//! backend must pass.

pub mod broker;
pub mod codec;
pub mod conformance;
pub mod db;
pub mod embedded;
pub mod kafka;
pub mod log;
pub mod objects;

pub use embedded::{EmbeddedLog, LogStatsSnapshot};
pub use kafka::{KafkaConfig, KafkaLog};
pub use log::{
    AtomicCommit, Header, Log, LogConsumer, LogError, Offset, OutRecord, Record, RecordData, Retention, StateWrite,
    TopicPartition, TopicSpec, Watermarks,
};

/// Wall-clock milliseconds since the Unix epoch. Only edges call this; the
/// pure core takes time from record timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
