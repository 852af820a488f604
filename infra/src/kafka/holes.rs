//! Holes in a partition's offsets (transaction markers, compaction): told
//! apart from records not yet visible before a consumer moves past them.

use std::collections::HashMap;
use std::time::Duration;

use crate::log::Offset;
use crate::log::{LogConsumer, LogError, Record, TopicPartition};

use super::client::*;

/// Longest a reader waits for a hole in a partition to fill before it
/// takes the gap as final. A hole Tansu shows while storing a batch fills
/// within milliseconds; one that stays is a batch that was never stored (a
/// producer killed mid-append, whose append was never acknowledged), and
/// every reader of the partition waits this long at each such hole.
pub(super) const HOLE_PATIENCE: Duration = Duration::from_secs(2);
/// Pause before fetching a partition with a hole again.
pub(super) const HOLE_BACKOFF: Duration = Duration::from_millis(10);

/// A reader's guard against brokers that expose an offset before the
/// record at it can be fetched. Tansu 0.6 raises a partition's high
/// watermark before it stores the batch: a reader fetching in between gets
/// the batches stored after the hole, and would skip the record (seen as
/// acknowledged sends that never reached a processor, when two producers
/// write one partition). Missive writes its topics with idempotent,
/// non-transactional producers, so offsets in a partition are contiguous
/// unless the topic is compacted or old records expired; any other gap is
/// fetched again until it fills.
pub(super) struct Holes {
    pub(super) log: KafkaLog,
    /// Per partition: the offset missing and since when.
    pub(super) waiting: HashMap<TopicPartition, (Offset, std::time::Instant)>,
}

/// What a poll does with a fetched record.
pub(super) enum Admit {
    /// The next record of its partition.
    Take(Record),
    /// Before the position (fetched before a seek): dropped.
    Drop,
    /// After a hole: fetch the partition again from its position.
    Refetch(TopicPartition, Offset),
}

impl Holes {
    pub(super) fn new(log: KafkaLog) -> Holes {
        Holes { log, waiting: HashMap::new() }
    }

    /// Places `record` against its partition's position, advancing it.
    pub(super) async fn admit(&mut self, positions: &mut HashMap<TopicPartition, Offset>, record: Record) -> Admit {
        let partition = TopicPartition::new(record.topic.as_str(), record.partition);
        let Some(position) = positions.get(&partition).copied() else { return Admit::Drop };
        if record.offset < position {
            return Admit::Drop;
        }
        if record.offset > position && !self.gap_is_final(&partition, position, record.offset).await {
            return Admit::Refetch(partition, position);
        }
        positions.insert(partition, Offset(record.offset.0 + 1));
        Admit::Take(record)
    }

    /// Whether the records `missing..found` of `partition` are gone for
    /// good (compaction, retention, or a hole that stayed past
    /// [`HOLE_PATIENCE`]) rather than not yet readable.
    pub(super) async fn gap_is_final(&mut self, partition: &TopicPartition, missing: Offset, found: Offset) -> bool {
        if self.log.compacted(&partition.topic).await == Some(true) {
            return true;
        }
        if self.log.broker_watermarks(partition).await.is_ok_and(|(start, _)| start > missing) {
            tracing::warn!(%partition, from = missing.0, to = found.0, "records expired before they were read");
            self.waiting.remove(partition);
            return true;
        }
        let now = std::time::Instant::now();
        let since = match self.waiting.get(partition) {
            Some((offset, since)) if *offset == missing => *since,
            _ => {
                self.waiting.insert(partition.clone(), (missing, now));
                tracing::debug!(%partition, missing = missing.0, found = found.0, "a hole in the partition: fetching again");
                now
            }
        };
        if now.duration_since(since) < HOLE_PATIENCE {
            return false;
        }
        tracing::warn!(
            %partition, from = missing.0, to = found.0,
            "the brokers serve no records at these offsets after {} s (an append that never completed); reading on past them",
            HOLE_PATIENCE.as_secs()
        );
        self.waiting.remove(partition);
        true
    }
}

/// A consumer that places fetched records with [`Holes`].
pub(super) trait Placing: LogConsumer {
    fn placing(&mut self) -> (&mut Holes, &mut HashMap<TopicPartition, Offset>);
}

/// Adds `record` to `records` if it is its partition's next; `false` when
/// the poll must end (a partition was sent back to fetch a hole again).
pub(super) async fn admit(
    consumer: &mut impl Placing,
    record: Record,
    records: &mut Vec<Record>,
) -> Result<bool, LogError> {
    let (holes, positions) = consumer.placing();
    match holes.admit(positions, record).await {
        Admit::Take(record) => records.push(record),
        Admit::Drop => {}
        Admit::Refetch(partition, offset) => {
            consumer.seek(&partition, offset)?;
            tokio::time::sleep(HOLE_BACKOFF).await;
            return Ok(false);
        }
    }
    Ok(true)
}
