//! The log's in-memory state: partitions (high watermark, the tail of
//! recent records), topics, the append queue, and its figures.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use parking_lot::{Mutex, RwLock};
use rocksdb::DB;
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec::encoded_len;
use crate::log::Offset;
use crate::log::{LogError, OutRecord, Record, StateWrite, TopicSpec};

/// Bound of the append queue; producers wait when it is full.
pub(super) const APPEND_QUEUE: usize = 4096;
/// Most append requests folded into one WriteBatch.
pub(super) const MAX_GROUP: usize = 512;
/// Bounds of a partition's in-memory tail (whichever is reached first).
pub(super) const TAIL_RECORDS: usize = 2048;
pub(super) const TAIL_BYTES: usize = 2 << 20;

pub(super) struct PartitionState {
    /// Next offset to be written, as published to readers.
    pub(super) high: AtomicU64,
    pub(super) low: AtomicU64,
    pub(super) max_timestamp: AtomicI64,
    /// Bumped after every append to the partition; its consumers wait on it.
    pub(super) changed: watch::Sender<u64>,
    /// The partition's latest records, so consumers at the head (nearly
    /// all of them, nearly always) read from memory: no RocksDB iterator,
    /// no blocking thread.
    pub(super) tail: Mutex<Tail>,
}

impl PartitionState {
    pub(super) fn new(high: u64, low: u64, max_timestamp: i64) -> PartitionState {
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
pub(super) struct Tail {
    pub(super) records: VecDeque<Record>,
    pub(super) bytes: usize,
}

impl Tail {
    pub(super) fn push(&mut self, record: Record) {
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
    pub(super) fn read(&self, from: u64, to: u64, max: usize) -> Option<Vec<Record>> {
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
pub(super) fn record_size(record: &Record) -> usize {
    encoded_len(&record.key, &record.value, &record.headers) + std::mem::size_of::<Record>()
}

pub(super) struct TopicState {
    pub(super) id: u32,
    pub(super) spec: TopicSpec,
    pub(super) partitions: Vec<PartitionState>,
}

pub(super) struct AppendRequest {
    pub(super) records: Vec<OutRecord>,
    /// Processor state written in the same batch (an atomic commit).
    pub(super) state: Vec<StateWrite>,
    pub(super) reply: oneshot::Sender<Result<Vec<(u32, Offset)>, LogError>>,
}

pub(super) struct Inner {
    pub(super) db: Arc<DB>,
    pub(super) topics: RwLock<HashMap<String, Arc<TopicState>>>,
    pub(super) create_lock: Mutex<()>,
    pub(super) stats: LogStats,
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
    pub(super) inner: Arc<Inner>,
    pub(super) writer: Arc<Writer>,
}

/// The writer thread's queue and handle. When the last log handle goes, the
/// queue closes and the thread is joined, so the database is never left in
/// use by a detached thread at process exit (RocksDB aborts if its mutexes
/// are torn down under a live thread).
pub(super) struct Writer {
    pub(super) appends: Option<mpsc::Sender<AppendRequest>>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
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
pub(super) struct StoredTopic {
    pub(super) id: u32,
    pub(super) name: String,
    pub(super) partitions: u32,
    pub(super) retention_ms: Option<i64>,
    pub(super) compacted: bool,
}
