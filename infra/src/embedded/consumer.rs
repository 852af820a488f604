//! Consumers: assigned partitions read from the in-memory tail when it
//! holds what they ask for, from RocksDB otherwise.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use rocksdb::{DB, Direction, IteratorMode};
use tokio::sync::watch;

use crate::db::{CF_LOG, family};
use crate::log::Offset;
use crate::log::{LogConsumer, LogError, Record, TopicPartition};

use super::keys::*;
use super::state::*;

pub(super) struct Assigned {
    pub(super) partition: TopicPartition,
    pub(super) topic: Arc<TopicState>,
    pub(super) position: Offset,
}

pub(super) struct EmbeddedConsumer {
    pub(super) db: Arc<DB>,
    pub(super) partitions: Vec<Assigned>,
    pub(super) watchers: Vec<watch::Receiver<u64>>,
    /// Round-robin start so one busy partition cannot starve the others.
    pub(super) next_start: usize,
}

pub(super) struct ReadPlan {
    pub(super) index: usize,
    pub(super) topic: Arc<TopicState>,
    pub(super) partition: u32,
    pub(super) from: u64,
    pub(super) to: u64,
}

pub(super) fn read_plans(
    plans: &[ReadPlan],
    db: &DB,
    max_records: usize,
) -> Result<Vec<(usize, Vec<Record>)>, LogError> {
    let mut out = Vec::with_capacity(plans.len());
    let mut budget = max_records;
    for plan in plans {
        if budget == 0 {
            break;
        }
        let prefix = partition_prefix(plan.topic.id, plan.partition);
        let start = log_key(plan.topic.id, plan.partition, plan.from);
        let mut records = Vec::new();
        for item in db.iterator_cf(family(db, CF_LOG), IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let offset = tail_u64(&key);
            if offset >= plan.to || budget == 0 {
                break;
            }
            let record = decode_record(&plan.topic.spec.name, plan.partition, offset, &value).ok_or_else(|| {
                LogError::Storage(format!("corrupt log record {}/{}@{}", plan.topic.spec.name, plan.partition, offset))
            })?;
            records.push(record);
            budget -= 1;
        }
        out.push((plan.index, records));
    }
    Ok(out)
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            for watcher in &mut self.watchers {
                watcher.borrow_and_update();
            }
            let count = self.partitions.len();
            let mut plans = Vec::new();
            let mut records = Vec::new();
            let mut budget = max_records.max(1);
            for step in 0..count {
                let index = (self.next_start + step) % count;
                let assigned = &self.partitions[index];
                let topic = assigned.topic.clone();
                let state = &topic.partitions[assigned.partition.partition as usize];
                let high = state.high.load(Ordering::Acquire);
                let low = state.low.load(Ordering::Acquire);
                let from = assigned.position.0.max(low);
                if from < high && budget > 0 {
                    if let Some(batch) = state.tail.lock().read(from, high, budget) {
                        budget -= batch.len();
                        if let Some(last) = batch.last() {
                            self.partitions[index].position = Offset(last.offset.0 + 1);
                        }
                        records.extend(batch);
                        continue;
                    }
                    plans.push(ReadPlan {
                        index,
                        topic: topic.clone(),
                        partition: self.partitions[index].partition.partition,
                        from,
                        to: high,
                    });
                }
            }
            if count > 0 {
                self.next_start = (self.next_start + 1) % count;
            }
            if !plans.is_empty() && budget > 0 {
                let db = self.db.clone();
                let batches = blocking(move || read_plans(&plans, &db, budget)).await?;
                for (index, batch) in batches {
                    if let Some(last) = batch.last() {
                        self.partitions[index].position = Offset(last.offset.0 + 1);
                    }
                    records.extend(batch);
                }
            }
            if !records.is_empty() {
                return Ok(records);
            }
            if self.watchers.is_empty() {
                return Ok(Vec::new());
            }
            let changes = self.watchers.iter_mut().map(|watcher| Box::pin(watcher.changed()));
            let wait = futures::future::select_all(changes);
            match tokio::time::timeout_at(deadline, wait).await {
                Ok((Ok(()), _, _)) => continue,
                Ok((Err(_), _, _)) => return Err(LogError::Closed),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    fn seek(&mut self, partition: &TopicPartition, offset: Offset) -> Result<(), LogError> {
        let assigned = self
            .partitions
            .iter_mut()
            .find(|assigned| &assigned.partition == partition)
            .ok_or_else(|| LogError::UnknownTopic(format!("{partition} is not assigned to this consumer")))?;
        assigned.position = offset;
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Option<Offset> {
        self.partitions.iter().find(|assigned| &assigned.partition == partition).map(|assigned| assigned.position)
    }
}
