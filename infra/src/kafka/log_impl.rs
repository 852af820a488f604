//! The `Log` trait over Kafka.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};

use crate::log::Offset;
use crate::log::{
    Log, LogConsumer, LogError, OutRecord, Retention, TopicPartition, TopicSpec, Watermarks, kafka_partition,
};

use super::client::*;
use super::config::*;
use super::consumer::*;
use super::holes::Holes;
use super::pace::Pace;
use super::time::*;

#[async_trait]
impl Log for KafkaLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        let retention = retention_ms(spec.retention);
        let policy = if spec.compacted { "compact" } else { "delete" };
        let topic =
            NewTopic::new(&spec.name, spec.partitions as i32, TopicReplication::Fixed(self.inner.config.replication))
                .set("cleanup.policy", policy)
                .set("retention.ms", &retention);
        // Existing topics need no admin request (and mock clusters serve none).
        self.inner.partitions.write().remove(&spec.name);
        if let Ok(existing) = self.partition_count(&spec.name).await {
            if existing != spec.partitions {
                return Err(LogError::PartitionMismatch {
                    topic: spec.name.clone(),
                    existing,
                    requested: spec.partitions,
                });
            }
            return Ok(());
        }
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self.inner.admin.create_topics([&topic], &options).await.map_err(unavailable)?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(LogError::Unavailable(format!("creating topic {name} failed: {code}")));
                }
            }
        }
        // Creation is asynchronous on the brokers: wait until metadata shows it.
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let existing = loop {
            self.inner.partitions.write().remove(&spec.name);
            match self.partition_count(&spec.name).await {
                Ok(count) => break count,
                Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        if existing != spec.partitions {
            return Err(LogError::PartitionMismatch { topic: spec.name.clone(), existing, requested: spec.partitions });
        }
        self.inner.compacted.lock().insert(spec.name.clone(), spec.compacted);
        Ok(())
    }

    async fn topics(&self) -> Result<Vec<TopicSpec>, LogError> {
        let meta = self.inner.meta.clone();
        blocking(move || {
            let metadata = meta.fetch_metadata(None, REQUEST_TIMEOUT).map_err(unavailable)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none() && !topic.name().starts_with("__"))
                .map(|topic| TopicSpec {
                    name: topic.name().to_string(),
                    partitions: topic.partitions().len() as u32,
                    // Retention and cleanup policy live in the brokers' topic
                    // configs; `kafka-configs` shows them.
                    retention: Retention::Forever,
                    compacted: topic.name() == "_schemas",
                })
                .collect())
        })
        .await
    }

    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<(u32, Offset)>, LogError> {
        let mut partitions = Vec::with_capacity(records.len());
        for record in &records {
            let count = self.partition_count(&record.topic).await?;
            let partition = match record.partition {
                Some(partition) if partition < count => partition,
                Some(partition) => {
                    return Err(LogError::UnknownPartition {
                        topic: record.topic.clone(),
                        partitions: count,
                        partition,
                    });
                }
                None => kafka_partition(&record.key, count),
            };
            partitions.push(partition);
        }
        let producer = self.inner.producer();
        let failed = |error: KafkaError, topic: &str| {
            self.inner.producer_failed(&producer, &error);
            map_error(topic, error)
        };
        let mut deliveries = Vec::with_capacity(records.len());
        for (record, partition) in records.iter().zip(&partitions) {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for header in &record.headers {
                headers = headers.insert(KafkaHeader { key: &header.key, value: Some(&header.value) });
            }
            let mut out = FutureRecord::to(&record.topic)
                .partition(*partition as i32)
                .key(&record.key)
                .payload(&record.value)
                .headers(headers);
            if let Some(timestamp) = record.timestamp {
                out = out.timestamp(timestamp);
            }
            // Waits while librdkafka's queue is full (backpressure), then
            // returns a future for the broker's acknowledgement.
            let delivery = loop {
                match producer.send_result(out) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        out = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => return Err(failed(error, &record.topic)),
                }
            };
            deliveries.push(delivery);
        }
        let mut placed = Vec::with_capacity(deliveries.len());
        for (delivery, record) in futures::future::join_all(deliveries).await.into_iter().zip(&records) {
            match delivery {
                Ok(Ok(delivered)) => placed.push((delivered.partition as u32, Offset(delivered.offset as u64))),
                Ok(Err((error, _))) => return Err(failed(error, &record.topic)),
                Err(_) => return Err(LogError::Closed),
            }
        }
        Ok(placed)
    }

    async fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32, LogError> {
        Ok(kafka_partition(key, self.partition_count(topic).await?))
    }

    async fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks, LogError> {
        let (low, high) = self.broker_watermarks(partition).await?;
        if high <= low {
            return Ok(Watermarks { low, high });
        }
        // Some Kafka-protocol brokers (Tansu 0.6) report the base offset of
        // the last batch + 1; reading from the last reported offset to the
        // end finds the true end (one fetch on a correct broker).
        let probe = self.inner.probe.clone().lock_owned().await;
        let target = partition.clone();
        let high = blocking(move || probe_end(&probe, &target, Offset(high.0 - 1))).await?;
        Ok(Watermarks { low, high })
    }

    /// The broker's own high watermark, unverified: on brokers that report
    /// the last batch's base offset + 1 this is a little early, which is
    /// what `end_hint` promises (a lower bound).
    async fn end_hint(&self, partition: &TopicPartition) -> Result<Offset, LogError> {
        Ok(self.broker_watermarks(partition).await?.1)
    }

    async fn offset_for_time(&self, partition: &TopicPartition, timestamp_ms: i64) -> Result<Offset, LogError> {
        let marks = self.watermarks(partition).await?;
        let meta = self.inner.meta.clone();
        let target = partition.clone();
        let broker_answer = blocking(move || {
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(&target.topic, target.partition as i32, KafkaOffset::Offset(timestamp_ms))
                .map_err(unavailable)?;
            let found =
                meta.offsets_for_times(list, REQUEST_TIMEOUT).map_err(|error| map_error(&target.topic, error))?;
            let offset = found
                .elements()
                .first()
                .map(|element| match element.offset() {
                    KafkaOffset::Offset(offset) => Some(offset.max(0) as u64),
                    _ => None,
                })
                .unwrap_or(None);
            Ok(offset)
        })
        .await?;
        let candidate = broker_answer.map_or(marks.high, Offset).clamp(marks.low, marks.high);
        // Trust but verify: some Kafka-protocol brokers answer time lookups
        // loosely. The answer is right when the record before it is older
        // than the timestamp and the record at it is not; otherwise search.
        if self.time_answer_holds(partition, candidate, marks, timestamp_ms).await? {
            return Ok(candidate);
        }
        self.search_time(partition, marks, timestamp_ms).await
    }

    async fn consumer(&self, assignment: Vec<(TopicPartition, Offset)>) -> Result<Box<dyn LogConsumer>, LogError> {
        for (partition, _) in &assignment {
            let count = self.partition_count(&partition.topic).await?;
            if partition.partition >= count {
                return Err(LogError::UnknownPartition {
                    topic: partition.topic.clone(),
                    partitions: count,
                    partition: partition.partition,
                });
            }
        }
        if self.inner.config.shared_consumer
            && let Some(consumer) = self.shared_consumer(&assignment)?
        {
            return Ok(Box::new(consumer));
        }
        let consumer = self.dedicated_consumer(self.inner.config.fetch_wait_ms)?;
        let consumer = KafkaConsumer {
            consumer,
            positions: assignment.into_iter().collect(),
            holes: Holes::new(self.clone()),
            pace: Pace::default(),
        };
        consumer.assign()?;
        Ok(Box::new(consumer))
    }

    async fn commit_positions(&self, group: &str, positions: &[(TopicPartition, Offset)]) -> Result<(), LogError> {
        if positions.is_empty() {
            return Ok(());
        }
        let client = self.group_client(group)?;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in positions {
            list.add_partition_offset(
                &partition.topic,
                partition.partition as i32,
                KafkaOffset::Offset(offset.0 as i64),
            )
            .map_err(unavailable)?;
        }
        blocking(move || client.commit(&list, CommitMode::Sync).map_err(unavailable)).await
    }

    async fn committed_positions(&self, group: &str) -> Result<Vec<(TopicPartition, Offset)>, LogError> {
        let client = self.group_client(group)?;
        let topics = self.topics().await?;
        blocking(move || {
            let mut list = TopicPartitionList::new();
            for topic in &topics {
                for partition in 0..topic.partitions {
                    list.add_partition(&topic.name, partition as i32);
                }
            }
            let committed = client.committed_offsets(list, REQUEST_TIMEOUT).map_err(unavailable)?;
            Ok(committed
                .elements()
                .iter()
                .filter_map(|element| match element.offset() {
                    KafkaOffset::Offset(offset) if offset >= 0 => {
                        Some((TopicPartition::new(element.topic(), element.partition() as u32), Offset(offset as u64)))
                    }
                    _ => None,
                })
                .collect())
        })
        .await
    }
}
