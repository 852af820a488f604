//! Infrastructure at the edges: the `Log` trait and its embedded RocksDB
//! backend, the process's RocksDB, and the log conformance suite every
//! backend must pass.

pub mod broker;
pub mod clock;
pub mod codec;
pub mod conformance;
pub mod db;
pub mod embedded;
pub mod kafka;
pub mod log;
pub mod objects;

pub use clock::{Clock, cpu_of, now_ms, process_cpu};
pub use embedded::{EmbeddedLog, LogStatsSnapshot};
pub use kafka::{KafkaConfig, KafkaLog};
pub use log::{
    AtomicCommit, Header, Log, LogConsumer, LogError, Offset, OutRecord, Record, RecordData, Retention, StateWrite,
    TopicPartition, TopicSpec, Watermarks,
};
