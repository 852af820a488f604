//! The Kafka backend of the [`Log`] trait, through rdkafka (librdkafka).
//!
//! - Appends use one idempotent producer per process (`acks=all`,
//!   `enable.idempotence=true`); the partition of a keyed record is chosen
//!   here with Kafka's Java-client murmur2, so both modes and every Kafka
//!   client agree on where a key lives.
//! - Consumers are *assigned* exactly the partitions and positions the caller
//!   loaded from its own store; nothing is auto-committed. Positions are
//!   mirrored to consumer groups only for lag tooling (`commit_positions`).
//! - Every librdkafka call that can block (metadata, watermarks, offset
//!   lookups, commits) runs on a blocking thread, never on a tokio worker.
//!
//! `config` holds the settings and librdkafka plumbing, `client` the log's
//! handle, `log_impl` the `Log` trait, `time` offsets by time, `consumer`
//! and `holes` reading, `pace` a reader the broker starves.

mod client;
mod config;
mod consumer;
mod holes;
mod log_impl;
mod pace;
mod time;

pub use client::KafkaLog;
pub use config::{KafkaConfig, TracingContext};
