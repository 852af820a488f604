//! Async wrappers over the read models (RocksDB reads on blocking threads),
//! and the read barrier that makes their negative answers trustworthy.
//!
//! Read models fold the log a moment after a decision, and in Kafka mode
//! each gateway folds its own copy. A positive answer ("this user exists",
//! "this user is a member") is final: accounts are never deleted and the
//! caller holds what it found. A negative answer may only mean "not folded
//! yet". So every "does X exist" question that names something created
//! elsewhere goes through a **read barrier** on a miss: take the end offset
//! of the partition holding X's records, wait (bounded by
//! [`BARRIER_WAIT`]) until this process's projection has applied the log up
//! to that offset, and ask again. Anything acknowledged before the request
//! arrived (a registration is acknowledged only once it is in the log) lies
//! below that offset, so a miss after the barrier is a real absence. A
//! barrier that runs out answers `unavailable` (retry), never `not_found`.

mod barrier;
mod fresh;
mod guards;
mod models;

pub use barrier::{BARRIER_WAIT, DIRECTORY_WAIT, Projection, poll_until};
pub use guards::{require_device, require_member, require_members};
pub use models::ReadModels;
