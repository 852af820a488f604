//! Tools for analysts and operators, over an embedded data directory or a
//! Kafka cluster (`--kafka`): `missive topics` lists each topic's
//! partitions with their offsets and the processors' positions; `missive
//! replay` reads a topic by offset or time, filters by key, record type,
//! user or conversation, and prints decoded records as JSON lines.
//!
//! Reading never disturbs a running server: an embedded store is opened as
//! a RocksDB secondary (a read-only follower of the server's files), and
//! Kafka is read with a plain assignment, committing nothing.

mod dead_letters;
pub mod progress;
mod read;
mod rebuild;
mod reset;
mod scan;
mod source;
mod stats;
mod topics;

pub use dead_letters::{DeadLettersArgs, dead_letters_command};
pub use read::{ReplayArgs, replay};
pub use rebuild::{RebuildArgs, rebuild};
pub use reset::{ResetArgs, reset};
pub use scan::parse_time;
pub use source::Source;
pub use stats::{StatsArgs, stats};
pub use topics::{TopicsArgs, topics};
