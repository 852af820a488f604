//! Finding offsets by time, checked against the records themselves, and
//! reading a partition to its end.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};

use crate::log::Offset;
use crate::log::{LogError, TopicPartition, Watermarks};

use super::client::*;
use super::config::*;
use super::consumer::*;
use super::holes::Holes;

impl KafkaLog {
    /// Queues of the shared consumer for `assignment`, unless one of its
    /// partitions is already read through it.
    pub(super) fn shared_consumer(
        &self,
        assignment: &[(TopicPartition, Offset)],
    ) -> Result<Option<QueueConsumer>, LogError> {
        let shared = {
            let mut slot = self.inner.shared.lock();
            match slot.as_ref() {
                Some(shared) => shared.clone(),
                None => {
                    let consumer: StreamConsumer<TracingContext> = self
                        .inner
                        .config
                        .consumer_config(None)
                        .create_with_context(TracingContext)
                        .map_err(unavailable)?;
                    let consumer = Arc::new(consumer);
                    // The main queue must be served for partition queues to
                    // move; no message arrives there (every partition is split).
                    let serve = {
                        let consumer = consumer.clone();
                        tokio::spawn(async move {
                            loop {
                                match consumer.recv().await {
                                    Err(error) => tracing::debug!(%error, "shared consumer event"),
                                    Ok(message) => tracing::error!(
                                        topic = message.topic(),
                                        partition = message.partition(),
                                        offset = message.offset(),
                                        "a record reached the shared consumer's main queue (not read by any task)"
                                    ),
                                }
                            }
                        })
                    };
                    let shared = Arc::new(SharedConsumer {
                        consumer,
                        assigned: Mutex::new(std::collections::HashSet::new()),
                        serve,
                    });
                    *slot = Some(shared.clone());
                    shared
                }
            }
        };
        let mut assigned = shared.assigned.lock();
        if assignment.iter().any(|(partition, _)| assigned.contains(partition)) {
            return Ok(None);
        }
        // Split before assigning: a record fetched in between would land in
        // the main queue, which nobody reads for records.
        let mut queues = Vec::with_capacity(assignment.len());
        for (partition, _) in assignment {
            let queue = shared
                .consumer
                .split_partition_queue(&partition.topic, partition.partition as i32)
                .ok_or_else(|| LogError::Unavailable(format!("no queue for {partition}")))?;
            queues.push((partition.clone(), queue));
        }
        shared.consumer.incremental_assign(&partition_list(assignment)?).map_err(unavailable)?;
        assigned.extend(assignment.iter().map(|(partition, _)| partition.clone()));
        drop(assigned);
        Ok(Some(QueueConsumer {
            queues,
            positions: assignment.iter().cloned().collect(),
            shared,
            holes: Holes::new(self.clone()),
        }))
    }

    /// The timestamp of the record at `offset`.
    pub(super) async fn timestamp_at(&self, partition: &TopicPartition, offset: Offset) -> Result<i64, LogError> {
        let probe = self.inner.probe.clone().lock_owned().await;
        let partition = partition.clone();
        blocking(move || {
            probe_assign(&probe, &partition, offset)?;
            let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
            let mut found = None;
            while found.is_none() && std::time::Instant::now() < deadline {
                if let Some(Ok(message)) = probe.poll(Duration::from_millis(100))
                    && message.offset() >= offset.0 as i64
                {
                    found = Some(message.timestamp().to_millis().unwrap_or(0));
                }
            }
            probe_release(&probe);
            found.ok_or_else(|| LogError::Unavailable(format!("record {partition}@{offset} could not be read")))
        })
        .await
    }

    pub(super) async fn time_answer_holds(
        &self,
        partition: &TopicPartition,
        candidate: Offset,
        marks: Watermarks,
        timestamp_ms: i64,
    ) -> Result<bool, LogError> {
        if candidate > marks.low && self.timestamp_at(partition, Offset(candidate.0 - 1)).await? >= timestamp_ms {
            return Ok(false);
        }
        if candidate < marks.high && self.timestamp_at(partition, candidate).await? < timestamp_ms {
            return Ok(false);
        }
        Ok(true)
    }

    /// Binary search over record timestamps (they grow with offsets for
    /// Missive's producers, which stamp records with the append time or the
    /// input record's time).
    pub(super) async fn search_time(
        &self,
        partition: &TopicPartition,
        marks: Watermarks,
        timestamp_ms: i64,
    ) -> Result<Offset, LogError> {
        let (mut low, mut high) = (marks.low.0, marks.high.0);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.timestamp_at(partition, Offset(middle)).await? < timestamp_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(Offset(low))
    }
}

/// Stops the probe's fetching between uses.
pub(super) fn probe_release(probe: &BaseConsumer<TracingContext>) {
    let _ = probe.unassign();
}

pub(super) fn probe_assign(
    probe: &BaseConsumer<TracingContext>,
    partition: &TopicPartition,
    offset: Offset,
) -> Result<(), LogError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&partition.topic, partition.partition as i32, KafkaOffset::Offset(offset.0 as i64))
        .map_err(unavailable)?;
    probe.assign(&list).map_err(unavailable)
}

/// Reads from `from` to the end of the partition; returns the offset after the last record.
pub(super) fn probe_end(
    probe: &BaseConsumer<TracingContext>,
    partition: &TopicPartition,
    from: Offset,
) -> Result<Offset, LogError> {
    probe_assign(probe, partition, from)?;
    let result = read_to_end(probe, partition, from);
    probe_release(probe);
    result
}

pub(super) fn read_to_end(
    probe: &BaseConsumer<TracingContext>,
    partition: &TopicPartition,
    from: Offset,
) -> Result<Offset, LogError> {
    // Ends at the end-of-partition event, or once fetches come back empty
    // for a while after reading something (some brokers' fetch responses
    // carry the same wrong high watermark, and the event never comes).
    let mut end = from;
    let mut read_any = false;
    let mut quiet = Duration::ZERO;
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    while std::time::Instant::now() < deadline {
        match probe.poll(Duration::from_millis(50)) {
            // The probe is shared: a record fetched for an earlier probe's
            // partition must not move this one's end (an end past the real
            // one has a reader wait for records that never come).
            Some(Ok(message))
                if message.topic() == partition.topic && message.partition() as u32 == partition.partition =>
            {
                end = end.max(Offset(message.offset() as u64 + 1));
                read_any = true;
                quiet = Duration::ZERO;
            }
            Some(Ok(message)) => {
                tracing::debug!(
                    topic = message.topic(),
                    partition = message.partition(),
                    "probe: a record of another partition, ignored"
                )
            }
            Some(Err(KafkaError::PartitionEOF(eof))) if eof as u32 == partition.partition => return Ok(end),
            Some(Err(error)) => tracing::debug!(%error, "probe error"),
            None => {
                quiet += Duration::from_millis(50);
                if read_any && quiet >= Duration::from_millis(300) {
                    return Ok(end);
                }
            }
        }
    }
    Err(LogError::Unavailable(format!("the end of {partition} could not be read")))
}
