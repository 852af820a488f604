//! The embedded log: Kafka's model stored in RocksDB.
//!
//! Appends go through one writer thread that groups concurrent requests into
//! a single WriteBatch (group commit), assigns offsets, writes, then publishes
//! the new high watermarks and wakes consumers. Reads are RocksDB range scans
//! on blocking threads. Survives `kill -9`: a write is in the WAL before the
//! append returns (with `sync` it is also fsynced, surviving power loss).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::now_ms;
use crate::codec::{ByteReader, encoded_len, put_field, put_headers};
use crate::db::{CF_GROUPS, CF_LOG, CF_LOG_TIME, CF_META, CF_STATE, family};
use crate::log::Offset;
use crate::log::{
    AtomicCommit, Header, Log, LogConsumer, LogError, OutRecord, Record, RecordData, Retention, StateWrite,
    TopicPartition, TopicSpec, Watermarks, kafka_partition,
};

/// Bound of the append queue; producers wait when it is full.
const APPEND_QUEUE: usize = 4096;
/// Most append requests folded into one WriteBatch.
const MAX_GROUP: usize = 512;
/// Bounds of a partition's in-memory tail (whichever is reached first).
const TAIL_RECORDS: usize = 2048;
const TAIL_BYTES: usize = 2 << 20;

struct PartitionState {
    /// Next offset to be written, as published to readers.
    high: AtomicU64,
    low: AtomicU64,
    max_timestamp: AtomicI64,
    /// Bumped after every append to the partition; its consumers wait on it.
    changed: watch::Sender<u64>,
    /// The partition's latest records, so consumers at the head (nearly
    /// all of them, nearly always) read from memory: no RocksDB iterator,
    /// no blocking thread.
    tail: Mutex<Tail>,
}

impl PartitionState {
    fn new(high: u64, low: u64, max_timestamp: i64) -> PartitionState {
        PartitionState {
            high: AtomicU64::new(high),
            low: AtomicU64::new(low),
            max_timestamp: AtomicI64::new(max_timestamp),
            changed: watch::channel(0).0,
            tail: Mutex::new(Tail::default()),
        }
    }
}

/// A partition's most recent records with contiguous offsets, bounded by
/// [`TAIL_RECORDS`] and [`TAIL_BYTES`]. Written only by the writer thread,
/// before it publishes the new high watermark, so a reader that sees an
/// offset below `high` finds it here or in RocksDB.
#[derive(Default)]
struct Tail {
    records: VecDeque<Record>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, record: Record) {
        if self.records.back().is_some_and(|last| last.offset.0 + 1 != record.offset.0) {
            self.records.clear();
            self.bytes = 0;
        }
        self.bytes += record_size(&record);
        self.records.push_back(record);
        while self.records.len() > TAIL_RECORDS || (self.bytes > TAIL_BYTES && self.records.len() > 1) {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= record_size(&old);
            }
        }
    }

    /// Copies of the records `from..to` (at most `max`), or `None` when
    /// `from` is older than the tail.
    fn read(&self, from: u64, to: u64, max: usize) -> Option<Vec<Record>> {
        let first = self.records.front()?.offset.0;
        if from < first {
            return None;
        }
        let skip = (from - first) as usize;
        if skip >= self.records.len() {
            return None;
        }
        let count = (to.saturating_sub(from) as usize).min(max);
        Some(self.records.iter().skip(skip).take(count).cloned().collect())
    }
}

/// Bytes a tail entry holds: the record as the log stores it, plus the
/// `Record` around it.
fn record_size(record: &Record) -> usize {
    encoded_len(&record.key, &record.value, &record.headers) + std::mem::size_of::<Record>()
}

struct TopicState {
    id: u32,
    spec: TopicSpec,
    partitions: Vec<PartitionState>,
}

struct AppendRequest {
    records: Vec<OutRecord>,
    /// Processor state written in the same batch (an atomic commit).
    state: Vec<StateWrite>,
    reply: oneshot::Sender<Result<Vec<(u32, Offset)>, LogError>>,
}

struct Inner {
    db: Arc<DB>,
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
    create_lock: Mutex<()>,
    stats: LogStats,
}

/// What the writer thread has written since the log was opened: the cost
/// of the message path in records, RocksDB write calls, keys and bytes.
#[derive(Default)]
pub struct LogStats {
    pub records: AtomicU64,
    pub writes: AtomicU64,
    pub keys: AtomicU64,
    pub bytes: AtomicU64,
}

/// A copy of [`LogStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStatsSnapshot {
    /// Records appended (commands, events, deliveries, replies...).
    pub records: u64,
    /// RocksDB write calls (one per group commit).
    pub writes: u64,
    /// Keys put or deleted by those writes (log records, their time index, processor state).
    pub keys: u64,
    /// Bytes of those writes.
    pub bytes: u64,
}

/// Cheap to clone; every clone shares the same writer.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    writer: Arc<Writer>,
}

/// The writer thread's queue and handle. When the last log handle goes, the
/// queue closes and the thread is joined, so the database is never left in
/// use by a detached thread at process exit (RocksDB aborts if its mutexes
/// are torn down under a live thread).
struct Writer {
    appends: Option<mpsc::Sender<AppendRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.appends.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredTopic {
    id: u32,
    name: String,
    partitions: u32,
    retention_ms: Option<i64>,
    compacted: bool,
}

fn storage(error: rocksdb::Error) -> LogError {
    LogError::Storage(error.to_string())
}

fn partition_prefix(topic_id: u32, partition: u32) -> [u8; 8] {
    let mut prefix = [0u8; 8];
    prefix[..4].copy_from_slice(&topic_id.to_be_bytes());
    prefix[4..].copy_from_slice(&partition.to_be_bytes());
    prefix
}

fn log_key(topic_id: u32, partition: u32, offset: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&partition_prefix(topic_id, partition));
    key[8..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// Timestamps sort as unsigned big-endian after flipping the sign bit.
fn time_key(topic_id: u32, partition: u32, timestamp: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&partition_prefix(topic_id, partition));
    key[8..].copy_from_slice(&((timestamp as u64) ^ (1 << 63)).to_be_bytes());
    key
}

fn tail_u64(key: &[u8]) -> u64 {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(tail)
}

fn encode_record(timestamp: i64, key: &[u8], value: &[u8], headers: &[Header]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(key, value, headers));
    out.extend_from_slice(&timestamp.to_be_bytes());
    put_field(&mut out, key);
    put_field(&mut out, value);
    put_headers(&mut out, headers);
    out
}

fn decode_record(topic: &str, partition: u32, offset: u64, bytes: &[u8]) -> Option<Record> {
    let mut reader = ByteReader::new(bytes);
    let timestamp = reader.i64()?;
    let key = reader.field()?;
    let value = reader.field()?;
    let headers = reader.headers()?;
    Some(Record::from(RecordData {
        topic: topic.to_string(),
        partition,
        offset: Offset(offset),
        timestamp,
        key,
        value,
        headers,
    }))
}

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

    fn topic(&self, name: &str) -> Result<Arc<TopicState>, LogError> {
        self.inner.topics.read().get(name).cloned().ok_or_else(|| LogError::UnknownTopic(name.to_string()))
    }

    fn partition_state(&self, partition: &TopicPartition) -> Result<(Arc<TopicState>, usize), LogError> {
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

/// The time index keeps one entry per partition per slot of this many
/// milliseconds: the first record that raised the partition's highest
/// timestamp into the slot (an entry per millisecond cost nearly a RocksDB
/// key per record).
const TIME_SLOT_MS: i64 = 10;

fn slot_start(timestamp: i64) -> i64 {
    timestamp.div_euclid(TIME_SLOT_MS).saturating_mul(TIME_SLOT_MS)
}

/// The first offset whose record has a timestamp at or after `timestamp`
/// (`None`: no such record). The index leads to the slot; the records of
/// that slot are read to find the exact one.
fn first_offset_at(db: &DB, topic_id: u32, partition: u32, timestamp: i64) -> Result<Option<u64>, LogError> {
    let prefix = partition_prefix(topic_id, partition);
    let start = time_key(topic_id, partition, slot_start(timestamp));
    let mut iter = db.iterator_cf(family(db, CF_LOG_TIME), IteratorMode::From(&start, Direction::Forward));
    let from = match iter.next() {
        Some(item) => {
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(&prefix) {
                return Ok(None);
            }
            tail_u64(&value)
        }
        None => return Ok(None),
    };
    let records =
        db.iterator_cf(family(db, CF_LOG), IteratorMode::From(&log_key(topic_id, partition, from), Direction::Forward));
    for item in records {
        let (key, value) = item.map_err(storage)?;
        if !key.starts_with(&prefix) {
            break;
        }
        let at = ByteReader::new(&value).i64().ok_or_else(|| LogError::Storage("corrupt log record".into()))?;
        if at >= timestamp {
            return Ok(Some(tail_u64(&key)));
        }
    }
    Ok(None)
}

fn load_topic_state(db: &DB, stored: StoredTopic) -> Result<TopicState, LogError> {
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

fn run_writer(inner: Arc<Inner>, mut requests: mpsc::Receiver<AppendRequest>, sync_writes: bool) {
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

fn write_group(inner: &Inner, group: Vec<AppendRequest>, write_options: &WriteOptions) {
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

fn group_key(group: &str, partition: &TopicPartition) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + partition.topic.len() + 6);
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key.extend_from_slice(partition.topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.partition.to_be_bytes());
    key
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| LogError::Storage(format!("blocking task failed: {error}")))?
}

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
    async fn write(&self, records: Vec<OutRecord>, state: Vec<StateWrite>) -> Result<Vec<(u32, Offset)>, LogError> {
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

fn partition_index(index: usize) -> u32 {
    index as u32
}

struct Assigned {
    partition: TopicPartition,
    topic: Arc<TopicState>,
    position: Offset,
}

struct EmbeddedConsumer {
    db: Arc<DB>,
    partitions: Vec<Assigned>,
    watchers: Vec<watch::Receiver<u64>>,
    /// Round-robin start so one busy partition cannot starve the others.
    next_start: usize,
}

struct ReadPlan {
    index: usize,
    topic: Arc<TopicState>,
    partition: u32,
    from: u64,
    to: u64,
}

fn read_plans(plans: &[ReadPlan], db: &DB, max_records: usize) -> Result<Vec<(usize, Vec<Record>)>, LogError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, bytes: usize) -> Record {
        Record::from(RecordData {
            topic: "t".into(),
            partition: 0,
            offset: Offset(offset),
            timestamp: 0,
            key: Vec::new(),
            value: vec![0; bytes],
            headers: Vec::new(),
        })
    }

    fn offsets(records: &[Record]) -> Vec<u64> {
        records.iter().map(|record| record.offset.0).collect()
    }

    #[test]
    fn the_tail_serves_what_it_holds_and_sends_older_reads_to_the_store() {
        let mut tail = Tail::default();
        assert!(tail.read(0, 1, 10).is_none(), "an empty tail serves nothing");
        for offset in 5..10 {
            tail.push(record(offset, 10));
        }
        assert_eq!(offsets(&tail.read(5, 10, 100).expect("held")), vec![5, 6, 7, 8, 9]);
        assert_eq!(offsets(&tail.read(7, 10, 2).expect("held")), vec![7, 8], "at most max records");
        assert_eq!(offsets(&tail.read(8, 9, 100).expect("held")), vec![8], "not past the high watermark");
        assert!(tail.read(4, 10, 100).is_none(), "older than the tail: read the store");
        assert!(tail.read(10, 11, 100).is_none(), "newer than the tail: read the store");
    }

    #[test]
    fn the_tail_stays_bounded_and_contiguous() {
        let mut tail = Tail::default();
        for offset in 0..(TAIL_RECORDS as u64 + 10) {
            tail.push(record(offset, 1));
        }
        assert_eq!(tail.records.len(), TAIL_RECORDS);
        assert!(tail.read(9, 20, 100).is_none(), "the oldest records were dropped");
        let big = TAIL_BYTES / 4;
        for offset in (TAIL_RECORDS as u64 + 10)..(TAIL_RECORDS as u64 + 20) {
            tail.push(record(offset, big));
        }
        assert!(tail.bytes <= TAIL_BYTES, "bytes bounded: {}", tail.bytes);
        // A gap (never expected from the single writer) restarts the tail.
        tail.push(record(1_000_000, 1));
        assert_eq!(offsets(&tail.read(1_000_000, 1_000_001, 10).expect("held")), vec![1_000_000]);
        assert_eq!(tail.records.len(), 1);
    }
}
