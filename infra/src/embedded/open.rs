//! Opening the log over a store, following a primary, retention.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, RwLock};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use tokio::sync::mpsc;

use crate::db::{CF_LOG, CF_LOG_TIME, CF_META, family};
use crate::log::{LogError, Retention, TopicPartition, TopicSpec};

use super::keys::*;
use super::state::*;
use super::writer::run_writer;

impl EmbeddedLog {
    /// Opens the log stored in `db` (see [`crate::db::open_db`]) and starts its writer thread.
    pub fn open(db: Arc<DB>, sync_writes: bool) -> Result<EmbeddedLog, LogError> {
        let mut topics = HashMap::new();
        for item in db.iterator_cf(family(&db, CF_META), IteratorMode::From(b"topic/", Direction::Forward)) {
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(b"topic/") {
                break;
            }
            let stored: StoredTopic = serde_json::from_slice(&value)
                .map_err(|error| LogError::Storage(format!("topic metadata: {error}")))?;
            let state = load_topic_state(&db, stored)?;
            topics.insert(state.spec.name.clone(), Arc::new(state));
        }
        let inner = Arc::new(Inner {
            db,
            topics: RwLock::new(topics),
            create_lock: Mutex::new(()),
            stats: LogStats::default(),
        });
        let (appends, requests) = mpsc::channel(APPEND_QUEUE);
        let writer_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || run_writer(writer_inner, requests, sync_writes))
            .map_err(|error| LogError::Storage(format!("cannot start the log writer thread: {error}")))?;
        Ok(EmbeddedLog { inner, writer: Arc::new(Writer { appends: Some(appends), thread: Some(thread) }) })
    }

    /// For a read-only follower of another process's store (see
    /// [`crate::db::open_db_secondary`]): catches up with the primary's
    /// files and moves each partition's watermarks to match, waking
    /// waiting consumers. Blocking: call from a blocking thread. Topics the
    /// primary created after this log was opened are not followed.
    pub fn follow_primary(&self) -> Result<(), LogError> {
        let db = &self.inner.db;
        db.try_catch_up_with_primary().map_err(storage)?;
        let topics: Vec<Arc<TopicState>> = self.inner.topics.read().values().cloned().collect();
        for topic in topics {
            let stored = StoredTopic {
                id: topic.id,
                name: topic.spec.name.clone(),
                partitions: topic.spec.partitions,
                retention_ms: match topic.spec.retention {
                    Retention::Forever => None,
                    Retention::Millis(ms) => Some(ms),
                },
                compacted: topic.spec.compacted,
            };
            let fresh = load_topic_state(db, stored)?;
            for (state, fresh) in topic.partitions.iter().zip(&fresh.partitions) {
                let high = fresh.high.load(Ordering::Acquire);
                let moved = state.high.swap(high, Ordering::AcqRel) != high;
                state.low.store(fresh.low.load(Ordering::Acquire), Ordering::Release);
                state.max_timestamp.store(fresh.max_timestamp.load(Ordering::Acquire), Ordering::Release);
                if moved {
                    state.changed.send_modify(|version| *version += 1);
                }
            }
        }
        Ok(())
    }

    /// What the writer thread has written since the log was opened.
    pub fn stats(&self) -> LogStatsSnapshot {
        let stats = &self.inner.stats;
        LogStatsSnapshot {
            records: stats.records.load(Ordering::Relaxed),
            writes: stats.writes.load(Ordering::Relaxed),
            keys: stats.keys.load(Ordering::Relaxed),
            bytes: stats.bytes.load(Ordering::Relaxed),
        }
    }

    pub(super) fn topic(&self, name: &str) -> Result<Arc<TopicState>, LogError> {
        self.inner.topics.read().get(name).cloned().ok_or_else(|| LogError::UnknownTopic(name.to_string()))
    }

    pub(super) fn partition_state(&self, partition: &TopicPartition) -> Result<(Arc<TopicState>, usize), LogError> {
        let topic = self.topic(&partition.topic)?;
        let index = partition.partition as usize;
        if index >= topic.partitions.len() {
            return Err(LogError::UnknownPartition {
                topic: partition.topic.clone(),
                partitions: topic.spec.partitions,
                partition: partition.partition,
            });
        }
        Ok((topic, index))
    }

    /// Deletes records older than each topic's retention. Returns how many
    /// partitions moved their low watermark. Blocking: call from a blocking thread.
    pub fn enforce_retention(&self, now: i64) -> Result<usize, LogError> {
        let topics: Vec<Arc<TopicState>> = self.inner.topics.read().values().cloned().collect();
        let db = &self.inner.db;
        let mut moved = 0;
        for topic in topics {
            let Retention::Millis(retention) = topic.spec.retention else { continue };
            for (index, partition) in topic.partitions.iter().enumerate() {
                let index = index as u32;
                let high = partition.high.load(Ordering::Acquire);
                let low = partition.low.load(Ordering::Acquire);
                let keep_from = first_offset_at(db, topic.id, index, now - retention)?.unwrap_or(high).min(high);
                if keep_from <= low {
                    continue;
                }
                let mut batch = WriteBatch::default();
                batch.delete_range_cf(
                    family(db, CF_LOG),
                    log_key(topic.id, index, low),
                    log_key(topic.id, index, keep_from),
                );
                // Entries of the slot holding the cutoff stay: they lead to kept records.
                batch.delete_range_cf(
                    family(db, CF_LOG_TIME),
                    time_key(topic.id, index, i64::MIN),
                    time_key(topic.id, index, slot_start(now - retention)),
                );
                db.write(batch).map_err(storage)?;
                partition.low.store(keep_from, Ordering::Release);
                moved += 1;
            }
        }
        Ok(moved)
    }
}

pub(super) fn load_topic_state(db: &DB, stored: StoredTopic) -> Result<TopicState, LogError> {
    let mut partitions = Vec::with_capacity(stored.partitions as usize);
    for partition in 0..stored.partitions {
        let prefix = partition_prefix(stored.id, partition);
        let mut last = db.iterator_cf(
            family(db, CF_LOG),
            IteratorMode::From(&log_key(stored.id, partition, u64::MAX), Direction::Reverse),
        );
        let high = match last.next() {
            Some(item) => {
                let (key, _) = item.map_err(storage)?;
                if key.starts_with(&prefix) { tail_u64(&key) + 1 } else { 0 }
            }
            None => 0,
        };
        let mut first = db.iterator_cf(family(db, CF_LOG), IteratorMode::From(&prefix, Direction::Forward));
        let low = match first.next() {
            Some(item) => {
                let (key, _) = item.map_err(storage)?;
                if key.starts_with(&prefix) { tail_u64(&key) } else { high }
            }
            None => high,
        };
        let mut last_time = db.iterator_cf(
            family(db, CF_LOG_TIME),
            IteratorMode::From(&time_key(stored.id, partition, i64::MAX), Direction::Reverse),
        );
        let max_timestamp = match last_time.next() {
            Some(item) => {
                let (key, _) = item.map_err(storage)?;
                if key.starts_with(&prefix) { (tail_u64(&key) ^ (1 << 63)) as i64 } else { i64::MIN }
            }
            None => i64::MIN,
        };
        partitions.push(PartitionState::new(high, low, max_timestamp));
    }
    let spec = TopicSpec {
        name: stored.name,
        partitions: stored.partitions,
        retention: stored.retention_ms.map_or(Retention::Forever, Retention::Millis),
        compacted: stored.compacted,
    };
    Ok(TopicState { id: stored.id, spec, partitions })
}
