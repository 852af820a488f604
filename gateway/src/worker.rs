//! How the gateway's background loops read the log. [`poll_decoded`] is
//! one poll, decoded: every loop reads through it (replies, live signals,
//! presence, and the workers). [`run`] is a worker that takes a topic's
//! records in order (push jobs, thumbnails) and remembers how far it got as
//! a consumer group's committed positions: after a restart it resumes
//! there, so a record is handled at least once. A handler error stops the
//! worker before it commits past the record; [`restart_on_failure`]
//! starts it again.

use std::time::Duration;

use missive_infra::{Log, LogConsumer, LogError, Offset, TopicPartition};
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
    T::Error: std::fmt::Display,
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
        let batch = tokio::select! {
            _ = &mut cancelled => return Ok(()),
            polled = poll_decoded::<T>(consumer.as_mut(), codec, tail.batch) => polled?,
        };
        for item in batch.items {
            handle(item).await?;
        }
        if !batch.positions.is_empty() {
            log.commit_positions(tail.group, &batch.positions).await?;
        }
    }
}

/// One poll's records, decoded.
pub struct Batch<T> {
    /// The records that are a `T`, in log order.
    pub items: Vec<T>,
    /// Where each partition read stands after this poll.
    pub positions: Vec<(TopicPartition, Offset)>,
}

/// Polls `consumer` once (waiting up to half a second for records) and
/// decodes what it read as `T`; records that are not a `T` are logged and
/// skipped. Every consumer loop of the gateway reads through this.
pub async fn poll_decoded<T>(consumer: &mut dyn LogConsumer, codec: &Codec, max: usize) -> Result<Batch<T>, LogError>
where
    T: TryFrom<WireValue>,
    T::Error: std::fmt::Display,
{
    let records = consumer.poll(max, Duration::from_millis(500)).await?;
    let mut batch = Batch { items: Vec::with_capacity(records.len()), positions: Vec::new() };
    for record in records {
        match codec
            .decode(&record.value)
            .map_err(|error| error.to_string())
            .and_then(|value| T::try_from(value).map_err(|error| error.to_string()))
        {
            Ok(item) => batch.items.push(item),
            Err(error) => {
                tracing::debug!(%error, offset = %record.offset.0, "a record of another kind, or undecodable; skipped")
            }
        }
        let partition = record.topic_partition();
        batch.positions.retain(|(known, _)| *known != partition);
        batch.positions.push((partition, Offset(record.offset.0 + 1)));
    }
    Ok(batch)
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
