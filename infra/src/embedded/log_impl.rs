//! The `Log` and `AtomicCommit` traits over the embedded store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use tokio::sync::oneshot;

use crate::db::{CF_GROUPS, CF_META, family};
use crate::log::Offset;
use crate::log::{
    AtomicCommit, Log, LogConsumer, LogError, OutRecord, Retention, StateWrite, TopicPartition, TopicSpec, Watermarks,
    kafka_partition,
};

use super::consumer::{Assigned, EmbeddedConsumer};
use super::keys::*;
use super::open::*;
use super::state::*;

#[async_trait]
impl Log for EmbeddedLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        if let Ok(existing) = self.topic(&spec.name) {
            if existing.spec.partitions != spec.partitions {
                return Err(LogError::PartitionMismatch {
                    topic: spec.name.clone(),
                    existing: existing.spec.partitions,
                    requested: spec.partitions,
                });
            }
            return Ok(());
        }
        let inner = self.inner.clone();
        let spec = spec.clone();
        blocking(move || {
            let _guard = inner.create_lock.lock();
            if inner.topics.read().contains_key(&spec.name) {
                return Ok(());
            }
            let id = inner.topics.read().values().map(|topic| topic.id).max().unwrap_or(0) + 1;
            let stored = StoredTopic {
                id,
                name: spec.name.clone(),
                partitions: spec.partitions.max(1),
                retention_ms: match spec.retention {
                    Retention::Forever => None,
                    Retention::Millis(ms) => Some(ms),
                },
                compacted: spec.compacted,
            };
            let bytes = serde_json::to_vec(&stored).map_err(|error| LogError::Storage(error.to_string()))?;
            let mut write_options = WriteOptions::default();
            write_options.set_sync(true);
            let mut batch = WriteBatch::default();
            batch.put_cf(family(&inner.db, CF_META), format!("topic/{}", spec.name), bytes);
            inner.db.write_opt(batch, &write_options).map_err(storage)?;
            let state = load_topic_state(&inner.db, stored)?;
            inner.topics.write().insert(spec.name.clone(), Arc::new(state));
            Ok(())
        })
        .await
    }

    async fn topics(&self) -> Result<Vec<TopicSpec>, LogError> {
        let mut specs: Vec<TopicSpec> = self.inner.topics.read().values().map(|topic| topic.spec.clone()).collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(specs)
    }

    fn atomic(&self) -> Option<&dyn AtomicCommit> {
        Some(self)
    }

    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<(u32, Offset)>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.write(records, Vec::new()).await
    }

    async fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32, LogError> {
        Ok(kafka_partition(key, self.topic(topic)?.spec.partitions))
    }

    async fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks, LogError> {
        let (topic, index) = self.partition_state(partition)?;
        let state = &topic.partitions[index];
        Ok(Watermarks {
            low: Offset(state.low.load(Ordering::Acquire)),
            high: Offset(state.high.load(Ordering::Acquire)),
        })
    }

    async fn offset_for_time(&self, partition: &TopicPartition, timestamp_ms: i64) -> Result<Offset, LogError> {
        let (topic, index) = self.partition_state(partition)?;
        let high = topic.partitions[index].high.load(Ordering::Acquire);
        let low = topic.partitions[index].low.load(Ordering::Acquire);
        let db = self.inner.db.clone();
        let topic_id = topic.id;
        let found = blocking(move || first_offset_at(&db, topic_id, partition_index(index), timestamp_ms)).await?;
        Ok(Offset(found.unwrap_or(high).clamp(low, high)))
    }

    async fn consumer(&self, assignment: Vec<(TopicPartition, Offset)>) -> Result<Box<dyn LogConsumer>, LogError> {
        let mut partitions = Vec::with_capacity(assignment.len());
        let mut watchers = Vec::with_capacity(assignment.len());
        for (partition, offset) in assignment {
            let (topic, index) = self.partition_state(&partition)?;
            watchers.push(topic.partitions[index].changed.subscribe());
            partitions.push(Assigned { partition, topic, position: offset });
        }
        Ok(Box::new(EmbeddedConsumer { db: self.inner.db.clone(), partitions, watchers, next_start: 0 }))
    }

    async fn commit_positions(&self, group: &str, positions: &[(TopicPartition, Offset)]) -> Result<(), LogError> {
        let db = self.inner.db.clone();
        let entries: Vec<(Vec<u8>, u64)> =
            positions.iter().map(|(partition, offset)| (group_key(group, partition), offset.0)).collect();
        blocking(move || {
            let mut batch = WriteBatch::default();
            for (key, offset) in entries {
                batch.put_cf(family(&db, CF_GROUPS), key, offset.to_be_bytes());
            }
            db.write(batch).map_err(storage)
        })
        .await
    }

    async fn committed_positions(&self, group: &str) -> Result<Vec<(TopicPartition, Offset)>, LogError> {
        let db = self.inner.db.clone();
        let mut prefix = group.as_bytes().to_vec();
        prefix.push(0);
        blocking(move || {
            let mut positions = Vec::new();
            for item in db.iterator_cf(family(&db, CF_GROUPS), IteratorMode::From(&prefix, Direction::Forward)) {
                let (key, value) = item.map_err(storage)?;
                if !key.starts_with(&prefix) {
                    break;
                }
                let rest = &key[prefix.len()..];
                if rest.len() < 5 {
                    continue;
                }
                let topic = String::from_utf8_lossy(&rest[..rest.len() - 5]).into_owned();
                let partition = u32::from_be_bytes(rest[rest.len() - 4..].try_into().unwrap_or_default());
                positions.push((TopicPartition::new(topic, partition), Offset(tail_u64(&value))));
            }
            Ok(positions)
        })
        .await
    }
}

impl EmbeddedLog {
    /// Queues records and state writes for the writer thread, which puts
    /// them in one WriteBatch with whatever else is queued (group commit).
    pub(super) async fn write(
        &self,
        records: Vec<OutRecord>,
        state: Vec<StateWrite>,
    ) -> Result<Vec<(u32, Offset)>, LogError> {
        let (reply, answer) = oneshot::channel();
        let appends = self.writer.appends.as_ref().ok_or(LogError::Closed)?;
        appends.send(AppendRequest { records, state, reply }).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }
}

#[async_trait]
impl AtomicCommit for EmbeddedLog {
    async fn commit(&self, state: Vec<StateWrite>, records: Vec<OutRecord>) -> Result<Vec<(u32, Offset)>, LogError> {
        if state.is_empty() && records.is_empty() {
            return Ok(Vec::new());
        }
        self.write(records, state).await
    }
}
