//! Background workers that take a topic's records in order (push jobs,
//! thumbnails) and remember how far they got as a consumer group's
//! committed positions: after a restart a worker resumes there, so a
//! record is handled at least once. A handler error stops the worker
//! before it commits past the record; its supervisor restarts it.

use std::time::Duration;

use missive_infra::{Log, Offset, TopicPartition};
use missive_schemas::{Codec, WireValue};
use tokio_util::sync::CancellationToken;

/// Where a group with no committed position starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// Every record kept (work that must be done for all of them).
    Beginning,
    /// Only records written from now on (work that is stale when late).
    End,
}

/// Which records a worker takes.
#[derive(Clone, Debug)]
pub struct Tail {
    pub group: &'static str,
    pub topic: &'static str,
    pub partitions: Vec<u32>,
    pub start: StartAt,
    /// Records read per poll (and committed together).
    pub batch: usize,
}

/// Hands every record of `tail`, decoded as `T`, to `handle` until
/// `cancel`; records that are not a `T` are logged and skipped.
pub async fn run<T, Handled>(
    log: &dyn Log,
    codec: &Codec,
    tail: &Tail,
    cancel: &CancellationToken,
    mut handle: impl FnMut(T) -> Handled,
) -> anyhow::Result<()>
where
    T: TryFrom<WireValue>,
    T::Error: std::error::Error + Send + Sync + 'static,
    Handled: std::future::Future<Output = anyhow::Result<()>>,
{
    let committed = log.committed_positions(tail.group).await?;
    let mut assignment = Vec::with_capacity(tail.partitions.len());
    for partition in &tail.partitions {
        let partition = TopicPartition::new(tail.topic, *partition);
        let start = match (committed.iter().find(|(known, _)| *known == partition), tail.start) {
            (Some((_, offset)), _) => *offset,
            (None, StartAt::Beginning) => Offset(0),
            (None, StartAt::End) => log.end_hint(&partition).await?,
        };
        assignment.push((partition, start));
    }
    let mut consumer = log.consumer(assignment).await?;
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let records = tokio::select! {
            _ = &mut cancelled => return Ok(()),
            polled = consumer.poll(tail.batch, Duration::from_millis(500)) => polled?,
        };
        let mut positions: Vec<(TopicPartition, Offset)> = Vec::new();
        for record in records {
            match codec.decode(&record.value).map_err(anyhow::Error::from).and_then(|value| Ok(T::try_from(value)?)) {
                Ok(value) => handle(value).await?,
                Err(error) => {
                    tracing::warn!(%error, topic = tail.topic, offset = %record.offset.0, "undecodable record; skipped")
                }
            }
            let partition = record.topic_partition();
            positions.retain(|(known, _)| *known != partition);
            positions.push((partition, Offset(record.offset.0 + 1)));
        }
        if !positions.is_empty() {
            log.commit_positions(tail.group, &positions).await?;
        }
    }
}

/// Runs a background loop until `cancel`, starting it again (after a short
/// pause) whenever it fails.
pub fn restart_on_failure<Run, Loop>(
    what: &'static str,
    cancel: CancellationToken,
    mut run: Run,
) -> tokio::task::JoinHandle<()>
where
    Run: FnMut() -> Loop + Send + 'static,
    Loop: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        while !cancel.is_cancelled() {
            match run().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, what, "background loop failed; restarting it");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    })
}
