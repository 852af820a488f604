//! The `Log` trait: Kafka's model (topics, partitions, offsets, keys,
//! timestamps, headers, consumer positions, retention) behind one interface,
//! so processors and gateways run unchanged on the embedded RocksDB log and
//! on a Kafka cluster.

use std::fmt;
use std::sync::Arc;
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

/// A record read back from the log: its fields are [`RecordData`]'s.
/// Cloning one is a reference count, not a copy: the embedded log keeps
/// each partition's newest records in memory and hands the same record
/// to every consumer that reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Record(Arc<RecordData>);

#[derive(Debug, PartialEq, Eq)]
pub struct RecordData {
    pub topic: String,
    pub partition: u32,
    pub offset: Offset,
    pub timestamp: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
}

impl From<RecordData> for Record {
    fn from(data: RecordData) -> Record {
        Record(Arc::new(data))
    }
}

impl std::ops::Deref for Record {
    type Target = RecordData;

    fn deref(&self) -> &RecordData {
        &self.0
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl RecordData {
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

/// A change to processor state that commits together with appended records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateWrite {
    pub key: Vec<u8>,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// A log stored beside processor state (the embedded log, in the same
/// RocksDB): a processor's state changes, input position and output records
/// commit in one durable write, with no outbox and no relay.
#[async_trait]
pub trait AtomicCommit: Send + Sync {
    /// Writes `state` (processor state family) and appends `records` in one
    /// durable write; returns each record's partition and offset, in order.
    /// Nothing is written if it fails.
    async fn commit(&self, state: Vec<StateWrite>, records: Vec<OutRecord>) -> Result<Vec<(u32, Offset)>, LogError>;
}

#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// The atomic state-and-records commit, where the log shares the
    /// processors' store (embedded mode); `None` for a remote log (Kafka),
    /// where processors commit an outbox and relay it.
    fn atomic(&self) -> Option<&dyn AtomicCommit> {
        None
    }

    /// Creates a topic, or checks that an existing one has the same partition count.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError>;

    async fn topics(&self) -> Result<Vec<TopicSpec>, LogError>;

    /// Appends records; returns each one's partition and offset, in order.
    /// When it returns, the records are durable (survive `kill -9`).
    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<(u32, Offset)>, LogError>;

    /// The partition a key maps to: murmur2 like Kafka's Java client.
    async fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32, LogError>;

    async fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks, LogError>;

    /// A quick lower bound of the partition's end, for readers that only
    /// tail new records and may read a few old ones again (reply routers,
    /// live signals): no verification round trips.
    async fn end_hint(&self, partition: &TopicPartition) -> Result<Offset, LogError> {
        Ok(self.watermarks(partition).await?.high)
    }

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
