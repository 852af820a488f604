//! The writer thread: concurrent appends grouped into one WriteBatch
//! (group commit), offsets assigned, watermarks published.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rocksdb::{WriteBatch, WriteOptions};
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::codec::encoded_len;
use crate::db::{CF_LOG, CF_LOG_TIME, CF_STATE, family};
use crate::log::Offset;
use crate::log::{LogError, OutRecord, Record, RecordData, kafka_partition};

use super::keys::*;
use super::state::*;

pub(super) fn run_writer(inner: Arc<Inner>, mut requests: mpsc::Receiver<AppendRequest>, sync_writes: bool) {
    let mut write_options = WriteOptions::default();
    write_options.set_sync(sync_writes);
    while let Some(first) = requests.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        write_group(&inner, group, &write_options);
    }
}

pub(super) fn write_group(inner: &Inner, group: Vec<AppendRequest>, write_options: &WriteOptions) {
    let db = &inner.db;
    let topics = inner.topics.read();
    // Sized up front: growing the batch copied it several times per write.
    let estimate: usize = group
        .iter()
        .map(|request| {
            let records: usize = request
                .records
                .iter()
                .map(|record| 32 + encoded_len(&record.key, &record.value, &record.headers))
                .sum();
            let state: usize =
                request.state.iter().map(|write| write.key.len() + write.value.as_ref().map_or(0, Vec::len) + 16).sum();
            records + state
        })
        .sum();
    let mut batch = WriteBatch::with_capacity_bytes(estimate + 64);
    // Offsets handed out in this group, per (topic, partition).
    let mut next: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut max_times: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    let mut accepted = Vec::with_capacity(group.len());
    let now = now_ms();
    for request in group {
        let mut placed = Vec::with_capacity(request.records.len());
        let mut failure = None;
        for record in &request.records {
            let Some(topic) = topics.get(&record.topic) else {
                failure = Some(LogError::UnknownTopic(record.topic.clone()));
                break;
            };
            let partition = record.partition.unwrap_or_else(|| kafka_partition(&record.key, topic.spec.partitions));
            if partition >= topic.spec.partitions {
                failure = Some(LogError::UnknownPartition {
                    topic: record.topic.clone(),
                    partitions: topic.spec.partitions,
                    partition,
                });
                break;
            }
            placed.push((Arc::clone(topic), partition));
        }
        if let Some(error) = failure {
            let _ = request.reply.send(Err(error));
            continue;
        }
        let state = family(db, CF_STATE);
        for write in &request.state {
            match &write.value {
                Some(value) => batch.put_cf(state, &write.key, value),
                None => batch.delete_cf(state, &write.key),
            }
        }
        let mut offsets = Vec::with_capacity(placed.len());
        let mut stored = Vec::with_capacity(placed.len());
        for (record, (topic, partition)) in request.records.iter().zip(placed) {
            let slot = (topic.id, partition);
            let offset =
                *next.entry(slot).or_insert_with(|| topic.partitions[partition as usize].high.load(Ordering::Acquire));
            next.insert(slot, offset + 1);
            let timestamp = record.timestamp.unwrap_or(now);
            batch.put_cf(
                family(db, CF_LOG),
                log_key(topic.id, partition, offset),
                encode_record(timestamp, &record.key, &record.value, &record.headers),
            );
            let known_max = *max_times
                .entry(slot)
                .or_insert_with(|| topic.partitions[partition as usize].max_timestamp.load(Ordering::Acquire));
            if timestamp > known_max {
                if known_max == i64::MIN || slot_start(timestamp) > slot_start(known_max) {
                    batch.put_cf(
                        family(db, CF_LOG_TIME),
                        time_key(topic.id, partition, timestamp),
                        offset.to_be_bytes(),
                    );
                }
                max_times.insert(slot, timestamp);
            }
            offsets.push((partition, Offset(offset)));
            stored.push((topic, timestamp));
        }
        accepted.push((request.reply, offsets, request.records, stored));
    }
    drop(topics);
    if accepted.is_empty() {
        return;
    }
    let records: usize = accepted.iter().map(|(_, offsets, _, _)| offsets.len()).sum();
    let (keys, bytes) = (batch.len() as u64, batch.size_in_bytes() as u64);
    if let Err(error) = db.write_opt(batch, write_options) {
        tracing::error!(%error, "log append failed");
        for (reply, _, _, _) in accepted {
            let _ = reply.send(Err(LogError::Storage(error.to_string())));
        }
        return;
    }
    let stats = &inner.stats;
    stats.records.fetch_add(records as u64, Ordering::Relaxed);
    stats.writes.fetch_add(1, Ordering::Relaxed);
    stats.keys.fetch_add(keys, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    // Into the tails first, then the new high watermarks, then wake-ups:
    // a reader that sees an offset below `high` finds its record.
    let mut touched: HashMap<(u32, u32), Arc<TopicState>> = HashMap::new();
    let mut replies = Vec::with_capacity(accepted.len());
    for (reply, offsets, records, stored) in accepted {
        for ((record, (topic, timestamp)), (partition, offset)) in records.into_iter().zip(stored).zip(&offsets) {
            let OutRecord { topic: name, key, value, headers, .. } = record;
            topic.partitions[*partition as usize].tail.lock().push(Record::from(RecordData {
                topic: name,
                partition: *partition,
                offset: *offset,
                timestamp,
                key,
                value,
                headers,
            }));
            touched.entry((topic.id, *partition)).or_insert(topic);
        }
        replies.push((reply, offsets));
    }
    for ((topic_id, partition), topic) in &touched {
        let state = &topic.partitions[*partition as usize];
        if let Some(high) = next.get(&(*topic_id, *partition)) {
            state.high.store(*high, Ordering::Release);
        }
        if let Some(max) = max_times.get(&(*topic_id, *partition)) {
            state.max_timestamp.store(*max, Ordering::Release);
        }
        state.changed.send_modify(|generation| *generation += 1);
    }
    for (reply, offsets) in replies {
        let _ = reply.send(Ok(offsets));
    }
}
