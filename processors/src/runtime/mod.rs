//! The processor runtime: DESIGN.md's commit protocol.
//!
//! A task owns one partition of a processor's input topic. For each batch it
//! decodes and handles the records, then writes ONE RocksDB WriteBatch
//! holding the state changes, the new input position, the dedupe marks and
//! an outbox of output records; then it relays the outbox to the log and
//! forgets it. After a crash the task reloads its position, re-relays what
//! is still in the outbox and continues. Outputs carry `(source task, sseq)`
//! headers; consumers drop any `sseq` they have already applied, so a
//! re-relayed output is never applied twice. Handlers are deterministic
//! (time comes from record timestamps), so a re-sent output is identical.
//!
//! `task_spec` says what a processor is, `meta` what a task keeps about
//! itself, `batch` how one batch is decided and committed, `task` how a
//! task runs (restore, batches, relays, changelogs).

mod batch;
mod errors;
mod meta;
mod task;
mod task_spec;

pub use batch::{DEAD_LETTER_OWN_HEADERS, fold_offline};
pub use errors::{HandleError, RuntimeError};
pub use meta::{TaskMeta, put_meta, stored_meta, stored_position, task_prefix};
pub use task::run_task;
pub use task_spec::{Handler, MAX_BATCH, RuntimeMetrics, TaskSpec};

#[cfg(test)]
mod tests;
