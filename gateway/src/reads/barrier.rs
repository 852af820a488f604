//! The read barrier (see the module above): bring this process's
//! projection up to the log's end for the partitions a question names.

use std::sync::Arc;
use std::time::Duration;

use missive_infra::log::kafka_partition;
use missive_processors::history::{DIRECTORY, HISTORY};
use missive_processors::partitions_of;
use missive_processors::topics::{EVENTS_CONVERSATION, EVENTS_USER};

use crate::protocol::ApiError;

/// Longest a read barrier waits for this process's projection to reach the
/// end offset it took; past it the request is answered `unavailable`.
pub const BARRIER_WAIT: Duration = Duration::from_secs(10);

/// One partition's last looked-up end offset, and when that lookup began.
pub(super) type EndSlot = Arc<tokio::sync::Mutex<Option<(tokio::time::Instant, u64)>>>;

/// A projection a gateway folds itself, which a read barrier can bring up
/// to date: its processor name (whose stored positions say how far it got)
/// and the topic it folds, keyed by the ids it answers about.
#[derive(Clone, Copy, Debug)]
pub enum Projection {
    /// Accounts: `events.user`, keyed by user id.
    Directory,
    /// Conversations, members and messages: `events.conversation`, keyed by conversation id.
    History,
}

impl Projection {
    pub(super) fn processor(self) -> &'static str {
        match self {
            Projection::Directory => DIRECTORY,
            Projection::History => HISTORY,
        }
    }

    pub(super) fn topic(self) -> &'static str {
        match self {
            Projection::Directory => EVENTS_USER,
            Projection::History => EVENTS_CONVERSATION,
        }
    }

    /// The partition holding the records keyed by `id` (keys are decimal ids).
    pub(super) fn partition_of(self, id: u64) -> u32 {
        kafka_partition(id.to_string().as_bytes(), partitions_of(self.topic()))
    }
}

/// Asks `probe` again, with back-off (1 ms doubling to 50 ms), until it
/// answers `Some` or `wait` has passed (`None`). Read models fold the log a
/// moment after a decision, and in Kafka mode each gateway folds its own
/// copy: callers use this to wait for a change they know is coming.
pub async fn poll_until<T, Probe>(
    wait: std::time::Duration,
    mut probe: impl FnMut() -> Probe,
) -> Result<Option<T>, ApiError>
where
    Probe: std::future::Future<Output = Result<Option<T>, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if let Some(found) = probe().await? {
            return Ok(Some(found));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// How long a call waits for its change to reach this gateway's directory.
pub const DIRECTORY_WAIT: Duration = Duration::from_secs(10);
