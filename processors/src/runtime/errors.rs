//! What can go wrong: handling one record, and running a task.

use missive_infra::LogError;

/// What went wrong while handling one record.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record cannot be processed (undecodable, impossible values): it
    /// goes to the dead-letter topic with its original bytes and the error.
    #[error("poison record: {0}")]
    Poison(String),
    /// The store failed: the batch is abandoned and the task stops.
    #[error("state storage failed: {0}")]
    Storage(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("log: {0}")]
    Log(#[from] LogError),
    #[error("task {task}: {source}")]
    Handle { task: String, source: HandleError },
    #[error("task {task}: store: {detail}")]
    Store { task: String, detail: String },
}
