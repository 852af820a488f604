//! The read barrier (see the module above): bring this process's
//! projection up to the log's end for the partitions a question names.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use missive_infra::TopicPartition;
use missive_infra::log::kafka_partition;
use missive_processors::history::{DIRECTORY, HISTORY};
use missive_processors::topics::{EVENTS_CONVERSATION, EVENTS_USER};
use missive_processors::{partitions_of, queries, runtime};

use super::models::ReadModels;
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
    fn processor(self) -> &'static str {
        match self {
            Projection::Directory => DIRECTORY,
            Projection::History => HISTORY,
        }
    }

    fn topic(self) -> &'static str {
        match self {
            Projection::Directory => EVENTS_USER,
            Projection::History => EVENTS_CONVERSATION,
        }
    }

    /// The partition holding the records keyed by `id` (keys are decimal ids).
    fn partition_of(self, id: u64) -> u32 {
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

impl ReadModels {
    /// The read barrier: waits until this process's `projection` has
    /// applied every record that the partitions of `ids` held when called.
    /// `unavailable` if it has not within [`BARRIER_WAIT`].
    pub async fn barrier(&self, projection: Projection, ids: impl IntoIterator<Item = u64>) -> Result<(), ApiError> {
        let asked_at = tokio::time::Instant::now();
        let partitions: BTreeSet<u32> = ids.into_iter().map(|id| projection.partition_of(id)).collect();
        let mut targets = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let end = self.end_since(projection.topic(), partition, asked_at).await?;
            targets.push((TopicPartition::new(projection.topic(), partition), end));
        }
        let processor = projection.processor();
        let reached = poll_until(BARRIER_WAIT, || {
            let targets = targets.clone();
            async move {
                let reached = self
                    .run(move |db| {
                        for (input, end) in targets {
                            if runtime::stored_position(db, processor, input).map_err(queries::QueryError)? < end {
                                return Ok(false);
                            }
                        }
                        Ok(true)
                    })
                    .await?;
                Ok(reached.then_some(()))
            }
        })
        .await?;
        reached.ok_or_else(|| {
            ApiError::unavailable(format!(
                "this server's {processor} view is more than {} s behind the log; retry shortly",
                BARRIER_WAIT.as_secs()
            ))
        })
    }

    /// The end offset of a partition as read at or after `asked_at`.
    /// Concurrent barriers share lookups: one that waited for another's
    /// lookup, begun after it was asked, takes that answer (in Kafka mode a
    /// verified end costs a broker round trip or two).
    async fn end_since(
        &self,
        topic: &'static str,
        partition: u32,
        asked_at: tokio::time::Instant,
    ) -> Result<u64, ApiError> {
        let slot = self.ends.lock().entry((topic, partition)).or_default().clone();
        let mut last = slot.lock().await;
        if let Some((taken_at, end)) = *last
            && taken_at >= asked_at
        {
            return Ok(end);
        }
        let taken_at = tokio::time::Instant::now();
        let input = TopicPartition::new(topic, partition);
        let end = self.log.watermarks(&input).await.map_err(|error| {
            ApiError::unavailable(format!("cannot read the end of {input} ({error}); retry shortly"))
        })?;
        *last = Some((taken_at, end.high.0));
        Ok(end.high.0)
    }
}

/// How long a call waits for its change to reach this gateway's directory.
pub const DIRECTORY_WAIT: Duration = Duration::from_secs(10);
