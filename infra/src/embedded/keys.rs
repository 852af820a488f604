//! How the log lays records out in RocksDB: keys, the record encoding, time slots.

use rocksdb::{DB, Direction, IteratorMode};

use crate::codec::{ByteReader, encoded_len, put_field, put_headers};
use crate::db::{CF_LOG, CF_LOG_TIME, family};
use crate::log::Offset;
use crate::log::{Header, LogError, Record, RecordData, TopicPartition};

pub(super) fn storage(error: rocksdb::Error) -> LogError {
    LogError::Storage(error.to_string())
}

pub(super) fn partition_prefix(topic_id: u32, partition: u32) -> [u8; 8] {
    let mut prefix = [0u8; 8];
    prefix[..4].copy_from_slice(&topic_id.to_be_bytes());
    prefix[4..].copy_from_slice(&partition.to_be_bytes());
    prefix
}

pub(super) fn log_key(topic_id: u32, partition: u32, offset: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&partition_prefix(topic_id, partition));
    key[8..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// Timestamps sort as unsigned big-endian after flipping the sign bit.
pub(super) fn time_key(topic_id: u32, partition: u32, timestamp: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&partition_prefix(topic_id, partition));
    key[8..].copy_from_slice(&((timestamp as u64) ^ (1 << 63)).to_be_bytes());
    key
}

pub(super) fn tail_u64(key: &[u8]) -> u64 {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(tail)
}

pub(super) fn encode_record(timestamp: i64, key: &[u8], value: &[u8], headers: &[Header]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(key, value, headers));
    out.extend_from_slice(&timestamp.to_be_bytes());
    put_field(&mut out, key);
    put_field(&mut out, value);
    put_headers(&mut out, headers);
    out
}

pub(super) fn decode_record(topic: &str, partition: u32, offset: u64, bytes: &[u8]) -> Option<Record> {
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

/// The time index keeps one entry per partition per slot of this many
/// milliseconds: the first record that raised the partition's highest
/// timestamp into the slot (an entry per millisecond cost nearly a RocksDB
/// key per record).
pub(super) const TIME_SLOT_MS: i64 = 10;

pub(super) fn slot_start(timestamp: i64) -> i64 {
    timestamp.div_euclid(TIME_SLOT_MS).saturating_mul(TIME_SLOT_MS)
}

/// The first offset whose record has a timestamp at or after `timestamp`
/// (`None`: no such record). The index leads to the slot; the records of
/// that slot are read to find the exact one.
pub(super) fn first_offset_at(db: &DB, topic_id: u32, partition: u32, timestamp: i64) -> Result<Option<u64>, LogError> {
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

pub(super) fn group_key(group: &str, partition: &TopicPartition) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + partition.topic.len() + 6);
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key.extend_from_slice(partition.topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.partition.to_be_bytes());
    key
}

pub(super) fn partition_index(index: usize) -> u32 {
    index as u32
}

pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| LogError::Storage(format!("blocking task failed: {error}")))?
}
