//! Consumers over assigned partitions (one per caller, or queues of one
//! shared consumer per process).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};

use crate::log::Offset;
use crate::log::{Header, LogConsumer, LogError, Record, RecordData, TopicPartition};

use super::client::*;
use super::config::*;
use super::holes::*;
use super::pace::*;

pub(super) type PartitionQueue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<TracingContext>;

/// A reader of some partitions of the shared consumer.
pub(super) struct QueueConsumer {
    pub(super) queues: Vec<(TopicPartition, PartitionQueue)>,
    pub(super) positions: HashMap<TopicPartition, Offset>,
    pub(super) shared: Arc<SharedConsumer>,
    pub(super) holes: Holes,
}

impl Drop for QueueConsumer {
    fn drop(&mut self) {
        let partitions: Vec<(TopicPartition, Offset)> =
            self.queues.drain(..).map(|(partition, _)| (partition, Offset(0))).collect();
        if let Ok(list) = partition_list(&partitions) {
            let _ = self.shared.consumer.incremental_unassign(&list);
        }
        let mut assigned = self.shared.assigned.lock();
        for (partition, _) in &partitions {
            assigned.remove(partition);
        }
    }
}

#[async_trait]
impl LogConsumer for QueueConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + max_wait;
        while records.is_empty() {
            let waits = self.queues.iter().map(|(_, queue)| Box::pin(queue.recv()));
            let record = match tokio::time::timeout_at(deadline, futures::future::select_all(waits)).await {
                Err(_) => return Ok(records),
                Ok((Ok(message), _, _)) => owned_record(&message),
                Ok((Err(error), _, _)) => {
                    tracing::debug!(%error, "consumer error");
                    continue;
                }
            };
            if !admit(self, record, &mut records).await? {
                return Ok(records);
            }
        }
        for index in 0..self.queues.len() {
            while records.len() < max_records {
                let record = match self.queues[index].1.recv().now_or_never() {
                    Some(Ok(message)) => owned_record(&message),
                    _ => break,
                };
                if !admit(self, record, &mut records).await? {
                    return Ok(records);
                }
            }
        }
        Ok(records)
    }

    fn seek(&mut self, partition: &TopicPartition, offset: Offset) -> Result<(), LogError> {
        let index = self
            .queues
            .iter()
            .position(|(known, _)| known == partition)
            .ok_or_else(|| LogError::Unavailable(format!("{partition} is not assigned to this consumer")))?;
        let consumer = &self.shared.consumer;
        consumer.incremental_unassign(&partition_list(&[(partition.clone(), offset)])?).map_err(unavailable)?;
        let queue = consumer
            .split_partition_queue(&partition.topic, partition.partition as i32)
            .ok_or_else(|| LogError::Unavailable(format!("no queue for {partition}")))?;
        self.queues[index].1 = queue;
        consumer.incremental_assign(&partition_list(&[(partition.clone(), offset)])?).map_err(unavailable)?;
        self.positions.insert(partition.clone(), offset);
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Option<Offset> {
        self.positions.get(partition).copied()
    }
}

/// A consumer assigned exactly the partitions it was opened with.
pub(super) struct KafkaConsumer {
    pub(super) consumer: StreamConsumer<TracingContext>,
    pub(super) positions: HashMap<TopicPartition, Offset>,
    pub(super) holes: Holes,
    pub(super) pace: Pace,
}

impl KafkaConsumer {
    /// Records as they arrive, up to `max_records`, waiting up to `max_wait`
    /// for the first.
    async fn fetch(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + max_wait;
        while records.is_empty() {
            let record = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => return Ok(records),
                Ok(Ok(message)) => owned_record(&message),
                // Transport errors are retried inside librdkafka; they are
                // reported here for information only.
                Ok(Err(error)) => {
                    tracing::debug!(%error, "consumer error");
                    continue;
                }
            };
            if !admit(self, record, &mut records).await? {
                return Ok(records);
            }
        }
        while records.len() < max_records {
            let record = match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => owned_record(&message),
                _ => break,
            };
            if !admit(self, record, &mut records).await? {
                break;
            }
        }
        Ok(records)
    }

    /// Whether this reader, its polls empty for a while, is behind its
    /// partitions' ends (`None`: the broker did not say).
    async fn behind(&self) -> Option<bool> {
        for (partition, position) in &self.positions {
            match self.holes.log.broker_watermarks(partition).await {
                Ok((_, end)) if end > *position => return Some(true),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%partition, %error, "no partition end to pace the reader by");
                    return None;
                }
            }
        }
        Some(false)
    }

    /// Reopens the reader at its positions with the fetch wait [`Pace`] chose.
    fn reopen(&mut self, reopen: Reopen) -> Result<(), LogError> {
        let narrow = self.holes.log.config().fetch_wait_ms;
        let wait = match reopen {
            Reopen::Wide => {
                tracing::warn!(
                    partitions = ?self.positions,
                    "a reader behind its partitions' ends gets nothing from the broker; fetching with {WIDE_FETCH_WAIT_MS} ms waits for {WIDE_FOR:?}"
                );
                WIDE_FETCH_WAIT_MS.max(narrow)
            }
            Reopen::Narrow => {
                tracing::info!(partitions = ?self.positions, "fetching with {narrow} ms waits again");
                narrow
            }
        };
        self.consumer = self.holes.log.dedicated_consumer(wait)?;
        self.assign()
    }

    pub(super) fn assign(&self) -> Result<(), LogError> {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &self.positions {
            list.add_partition_offset(
                &partition.topic,
                partition.partition as i32,
                KafkaOffset::Offset(offset.0 as i64),
            )
            .map_err(unavailable)?;
        }
        self.consumer.assign(&list).map_err(unavailable)
    }
}

/// A fetched message as a [`Record`].
pub(super) fn owned_record(message: &BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| Header { key: header.key.to_string(), value: header.value.unwrap_or_default().to_vec() })
                .collect()
        })
        .unwrap_or_default();
    Record::from(RecordData {
        topic: message.topic().to_string(),
        partition: message.partition() as u32,
        offset: Offset(message.offset().max(0) as u64),
        timestamp: message.timestamp().to_millis().unwrap_or(0),
        key: message.key().unwrap_or_default().to_vec(),
        value: message.payload().unwrap_or_default().to_vec(),
        headers,
    })
}

impl Placing for KafkaConsumer {
    fn placing(&mut self) -> (&mut Holes, &mut HashMap<TopicPartition, Offset>) {
        (&mut self.holes, &mut self.positions)
    }
}

impl Placing for QueueConsumer {
    fn placing(&mut self) -> (&mut Holes, &mut HashMap<TopicPartition, Offset>) {
        (&mut self.holes, &mut self.positions)
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError> {
        let records = self.fetch(max_records, max_wait).await?;
        let reopen = match self.pace.after_poll(std::time::Instant::now(), !records.is_empty()) {
            Next::Read => None,
            Next::Check => {
                let behind = self.behind().await;
                self.pace.judge(std::time::Instant::now(), behind)
            }
            Next::Reopen(reopen) => Some(reopen),
        };
        if let Some(reopen) = reopen {
            self.reopen(reopen)?;
        }
        Ok(records)
    }

    fn seek(&mut self, partition: &TopicPartition, offset: Offset) -> Result<(), LogError> {
        let position = self
            .positions
            .get_mut(partition)
            .ok_or_else(|| LogError::Unavailable(format!("{partition} is not assigned to this consumer")))?;
        *position = offset;
        // Reassigning restarts fetching at the tracked positions and drops
        // whatever was prefetched; it never blocks.
        self.assign()
    }

    fn position(&self, partition: &TopicPartition) -> Option<Offset> {
        self.positions.get(partition).copied()
    }
}
