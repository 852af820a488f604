//! Kafka mode: the platform as separate processes on a Kafka-protocol
//! cluster. `missive schema-registry` serves the Confluent REST subset over
//! `_schemas`; `missive process` runs the deciders (conversation, users) for
//! its share of partitions; `missive gateway` serves clients and runs the
//! read side beside them: the inbox of the `deliveries` partitions it owns
//! (partition affinity), history and the directory. Each process keeps its
//! state in its own RocksDB; the log is the only thing they share.

mod client_args;
mod common;
mod gateway;
mod kafka_args;
mod process;
mod registry;

pub use client_args::*;
pub use common::*;
pub use gateway::*;
pub use process::*;
pub use registry::*;
