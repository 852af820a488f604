//! The `Log` trait: Kafka's model (topics, partitions, offsets, keys,
//! timestamps, headers, consumer positions, retention) behind one interface,
//! so processors and gateways run unchanged on the embedded RocksDB log and
//! on a Kafka cluster.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// A position inside one partition: the offset of a record, or the next
/// offset to read when used as a consumer position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Vec<u8>,
}

/// A record to append. Without `partition` the key picks it (murmur2, as the
/// Java client does); without `timestamp` the log stamps the append time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub partition: Option<u32>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
    pub timestamp: Option<i64>,
}

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: Offset,
    pub timestamp: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
}

impl Record {
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers.iter().find(|header| header.key == key).map(|header| header.value.as_slice())
    }

    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Forever,
    Millis(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub retention: Retention,
    /// Keep only the latest record per key (Kafka's `cleanup.policy=compact`).
    pub compacted: bool,
}

/// Lowest readable offset and the next offset to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub low: Offset,
    pub high: Offset,
}

/// Errors of a log backend, by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown topic {0}: create it first (missive creates its topics at start-up)")]
    UnknownTopic(String),
    #[error("topic {topic} has {partitions} partitions, partition {partition} does not exist")]
    UnknownPartition { topic: String, partitions: u32, partition: u32 },
    #[error("topic {topic} exists with {existing} partitions, {requested} requested")]
    PartitionMismatch { topic: String, existing: u32, requested: u32 },
    #[error("the log is shutting down")]
    Closed,
    #[error("log storage failed: {0}; check disk space and permissions of the data directory")]
    Storage(String),
    #[error("log backend unavailable: {0}; retry")]
    Unavailable(String),
}

impl LogError {
    /// Whether retrying the same call may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, LogError::Unavailable(_))
    }
}

#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Creates a topic, or checks that an existing one has the same partition count.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError>;

    async fn topics(&self) -> Result<Vec<TopicSpec>, LogError>;

    /// Appends records; returns each one's partition and offset, in order.
    /// When it returns, the records are durable (survive `kill -9`).
    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<(u32, Offset)>, LogError>;

    /// The partition a key maps to: murmur2 like Kafka's Java client.
    async fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32, LogError>;

    async fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks, LogError>;

    /// Earliest offset whose timestamp is at or after `timestamp_ms`
    /// (the high watermark when there is none).
    async fn offset_for_time(&self, partition: &TopicPartition, timestamp_ms: i64) -> Result<Offset, LogError>;

    /// Opens a consumer reading exactly the given partitions from the given
    /// positions. There is no automatic offset commit: callers own positions.
    async fn consumer(&self, assignment: Vec<(TopicPartition, Offset)>) -> Result<Box<dyn LogConsumer>, LogError>;

    /// Records a group's positions (for lag tooling; processors keep their
    /// authoritative positions in their own store).
    async fn commit_positions(&self, group: &str, positions: &[(TopicPartition, Offset)]) -> Result<(), LogError>;

    async fn committed_positions(&self, group: &str) -> Result<Vec<(TopicPartition, Offset)>, LogError>;
}

#[async_trait]
pub trait LogConsumer: Send {
    /// Returns up to `max_records` records, waiting up to `max_wait` for the
    /// first one. Records of one partition come in offset order.
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError>;

    /// Moves the position of an assigned partition.
    fn seek(&mut self, partition: &TopicPartition, offset: Offset) -> Result<(), LogError>;

    /// The next offset this consumer will read from a partition.
    fn position(&self, partition: &TopicPartition) -> Option<Offset>;
}

/// Kafka's default partitioner: `toPositive(murmur2(key)) % partitions`.
pub fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
    hash % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's own UtilsTest.
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ];
        for (key, java) in cases {
            assert_eq!(murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32, java);
        }
        assert_eq!(kafka_partition(b"21", 8), ((-973932308i32 as u32) & 0x7fff_ffff) % 8);
    }
}

/// Compact binary form of an [`OutRecord`], used by processor outboxes.
pub fn encode_out_record(record: &OutRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + record.topic.len() + record.key.len() + record.value.len());
    out.extend_from_slice(&(record.topic.len() as u16).to_be_bytes());
    out.extend_from_slice(record.topic.as_bytes());
    match record.partition {
        Some(partition) => {
            out.push(1);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        None => out.push(0),
    }
    match record.timestamp {
        Some(timestamp) => {
            out.push(1);
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        None => out.push(0),
    }
    for field in [&record.key, &record.value] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out.extend_from_slice(&(record.headers.len() as u16).to_be_bytes());
    for header in &record.headers {
        out.extend_from_slice(&(header.key.len() as u16).to_be_bytes());
        out.extend_from_slice(header.key.as_bytes());
        out.extend_from_slice(&(header.value.len() as u32).to_be_bytes());
        out.extend_from_slice(&header.value);
    }
    out
}

/// Inverse of [`encode_out_record`]; `None` for bytes it did not write.
pub fn decode_out_record(bytes: &[u8]) -> Option<OutRecord> {
    let mut rest = bytes;
    let mut take = |count: usize| -> Option<&[u8]> {
        if rest.len() < count {
            return None;
        }
        let (head, tail) = rest.split_at(count);
        rest = tail;
        Some(head)
    };
    let topic_len = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
    let topic = String::from_utf8(take(topic_len)?.to_vec()).ok()?;
    let partition = match take(1)?[0] {
        1 => Some(u32::from_be_bytes(take(4)?.try_into().ok()?)),
        _ => None,
    };
    let timestamp = match take(1)?[0] {
        1 => Some(i64::from_be_bytes(take(8)?.try_into().ok()?)),
        _ => None,
    };
    let key_len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let key = take(key_len)?.to_vec();
    let value_len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let value = take(value_len)?.to_vec();
    let header_count = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let name_len = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        let name = String::from_utf8(take(name_len)?.to_vec()).ok()?;
        let value_len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        headers.push(Header { key: name, value: take(value_len)?.to_vec() });
    }
    Some(OutRecord { topic, partition, key, value, headers, timestamp })
}
