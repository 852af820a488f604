//! The Kafka backend of the [`Log`] trait, through rdkafka (librdkafka).
//!
//! - Appends use one idempotent producer per process (`acks=all`,
//!   `enable.idempotence=true`); the partition of a keyed record is chosen
//!   here with Kafka's Java-client murmur2, so both modes and every Kafka
//!   client agree on where a key lives.
//! - Consumers are *assigned* exactly the partitions and positions the caller
//!   loaded from its own store; nothing is auto-committed. Positions are
//!   mirrored to consumer groups only for lag tooling (`commit_positions`).
//! - Every librdkafka call that can block (metadata, watermarks, offset
//!   lookups, commits) runs on a blocking thread, never on a tokio worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};

use crate::Offset;
use crate::log::{
    Header, Log, LogConsumer, LogError, OutRecord, Record, RecordData, Retention, TopicPartition, TopicSpec,
    Watermarks, kafka_partition,
};

/// How long a blocking librdkafka request may take before it counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings of the Kafka backend.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Replication factor of the topics Missive creates (3 on a real cluster).
    pub replication: i32,
    /// `client.id` prefix, so broker logs and lag tools name the process.
    pub client_id: String,
    /// Longest a fetch waits on the broker for new data (latency vs. requests).
    pub fetch_wait_ms: u32,
    /// Producer `linger.ms`: how long appends wait to be batched.
    pub linger_ms: u32,
    /// Extra librdkafka properties, applied last (`key=value`).
    pub extra: Vec<(String, String)>,
    /// Serve all of a process's partition readers from one librdkafka
    /// consumer (partition queues) instead of one consumer per reader.
    /// Fewer fetches, but a rare stall of a fresh cluster's first records
    /// was seen with it and is not understood yet: off by default.
    pub shared_consumer: bool,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            replication: 1,
            client_id: "missive".into(),
            fetch_wait_ms: 20,
            linger_ms: 1,
            extra: Vec::new(),
            shared_consumer: false,
        }
    }

    fn base(&self, role: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}-{role}", self.client_id))
            .set("allow.auto.create.topics", "false")
            .set("socket.nagle.disable", "true")
            // A request the broker never answers blocks its connection until
            // this timeout (librdkafka's default is 60 s); fail over sooner.
            .set("socket.timeout.ms", "5000")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    fn consumer_config(&self, group: Option<&str>) -> ClientConfig {
        let mut config = self.base("consumer");
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", self.fetch_wait_ms.to_string())
            .set("fetch.error.backoff.ms", "50")
            .set("fetch.queue.backoff.ms", "5")
            .set("queued.max.messages.kbytes", "2048")
            .set("queued.min.messages", "1000");
        // librdkafka only assigns partitions to consumers with a group id.
        // Assignment-only consumers get a private one that never joins or
        // commits: positions are owned by the caller.
        config.set("group.id", group.map_or_else(|| format!("{}-assign", self.client_id), str::to_string));
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }
}

/// Sends librdkafka's log lines and client errors to `tracing`.
#[derive(Clone, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            _ => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            return; // the probe asks for end-of-partition events on purpose
        }
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for TracingContext {}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

fn map_error(topic: &str, error: KafkaError) -> LogError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            LogError::UnknownTopic(topic.to_string())
        }
        _ => unavailable(error),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| unavailable(format!("blocking task failed: {error}")))?
}

/// The Kafka backend. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer<TracingContext>,
    admin: AdminClient<TracingContext>,
    /// A group-less consumer for metadata, watermarks and offset lookups.
    meta: Arc<BaseConsumer<TracingContext>>,
    /// A group-less consumer that reads single records to check brokers'
    /// offset answers (one user at a time).
    /// Waited for asynchronously, so queued probes hold no blocking thread.
    probe: Arc<tokio::sync::Mutex<BaseConsumer<TracingContext>>>,
    partitions: RwLock<HashMap<String, u32>>,
    groups: Mutex<HashMap<String, Arc<BaseConsumer<TracingContext>>>>,
    /// The process's shared consumer (created on first use).
    shared: Mutex<Option<Arc<SharedConsumer>>>,
    /// Whether a topic is compacted (`cleanup.policy`), as created here or
    /// described by the brokers: only there may offsets have gaps.
    compacted: Mutex<HashMap<String, bool>>,
}

/// One librdkafka consumer for every [`LogConsumer`] of the process: each
/// gets its own partition queues (`split_partition_queue`), so a process
/// with dozens of partition tasks sends one fetch request per broker
/// instead of one per task. A partition can be in one shared consumer only
/// once; a second reader of it gets a dedicated client.
struct SharedConsumer {
    consumer: Arc<StreamConsumer<TracingContext>>,
    assigned: Mutex<std::collections::HashSet<TopicPartition>>,
    serve: tokio::task::JoinHandle<()>,
}

impl Drop for SharedConsumer {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

fn partition_list(positions: &[(TopicPartition, Offset)]) -> Result<TopicPartitionList, LogError> {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in positions {
        list.add_partition_offset(&partition.topic, partition.partition as i32, KafkaOffset::Offset(offset.0 as i64))
            .map_err(unavailable)?;
    }
    Ok(list)
}

impl KafkaLog {
    /// Connects (lazily: librdkafka dials on first use) to the brokers.
    pub fn connect(config: KafkaConfig) -> Result<KafkaLog, LogError> {
        let mut producer_config = config.base("producer");
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            .set("message.timeout.ms", "30000")
            .set("compression.type", "lz4");
        for (key, value) in &config.extra {
            producer_config.set(key, value);
        }
        let producer = producer_config.create_with_context(TracingContext).map_err(unavailable)?;
        let admin = config.base("admin").create_with_context(TracingContext).map_err(unavailable)?;
        let meta = config.consumer_config(None).create_with_context(TracingContext).map_err(unavailable)?;
        let probe = config
            .consumer_config(None)
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10")
            .create_with_context(TracingContext)
            .map_err(unavailable)?;
        Ok(KafkaLog {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                meta: Arc::new(meta),
                probe: Arc::new(tokio::sync::Mutex::new(probe)),
                partitions: RwLock::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                shared: Mutex::new(None),
                compacted: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// Waits until the brokers answer a metadata request.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), LogError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let meta = self.inner.meta.clone();
            let answer =
                blocking(move || meta.fetch_metadata(None, Duration::from_secs(2)).map(|_| ()).map_err(unavailable))
                    .await;
            match answer {
                Ok(()) => return Ok(()),
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(LogError::Unavailable(format!(
                        "no answer from brokers {}: {error}; check --kafka and that the brokers run",
                        self.inner.config.brokers
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Partition count of a topic, from the cache or the brokers' metadata.
    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        if let Some(count) = self.inner.partitions.read().get(topic) {
            return Ok(*count);
        }
        let meta = self.inner.meta.clone();
        let name = topic.to_string();
        let count = blocking(move || {
            let metadata =
                meta.fetch_metadata(Some(&name), REQUEST_TIMEOUT).map_err(|error| map_error(&name, error))?;
            match metadata.topics().iter().find(|found| found.name() == name) {
                Some(found) if found.error().is_none() && !found.partitions().is_empty() => {
                    Ok(found.partitions().len() as u32)
                }
                _ => Err(LogError::UnknownTopic(name)),
            }
        })
        .await?;
        self.inner.partitions.write().insert(topic.to_string(), count);
        Ok(count)
    }

    /// Whether `topic` is compacted; `None` when the brokers did not say
    /// (asked again next time).
    async fn compacted(&self, topic: &str) -> Option<bool> {
        if let Some(known) = self.inner.compacted.lock().get(topic) {
            return Some(*known);
        }
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let answer = self.inner.admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options).await;
        let resource = answer.ok()?.into_iter().next()?.ok()?;
        let compacted = resource
            .get("cleanup.policy")
            .and_then(|entry| entry.value.as_deref())
            .is_some_and(|policy| policy.split(',').any(|part| part.trim() == "compact"));
        self.inner.compacted.lock().insert(topic.to_string(), compacted);
        Some(compacted)
    }

    /// The brokers' own low and high watermarks of `partition`, unverified
    /// (see [`Log::watermarks`] for the checked high one).
    async fn broker_watermarks(&self, partition: &TopicPartition) -> Result<(Offset, Offset), LogError> {
        let meta = self.inner.meta.clone();
        let target = partition.clone();
        blocking(move || {
            let (low, high) = meta
                .fetch_watermarks(&target.topic, target.partition as i32, REQUEST_TIMEOUT)
                .map_err(|error| map_error(&target.topic, error))?;
            Ok((Offset(low.max(0) as u64), Offset(high.max(0) as u64)))
        })
        .await
    }

    fn group_client(&self, group: &str) -> Result<Arc<BaseConsumer<TracingContext>>, LogError> {
        let mut groups = self.inner.groups.lock();
        if let Some(client) = groups.get(group) {
            return Ok(client.clone());
        }
        let client: BaseConsumer<TracingContext> =
            self.inner.config.consumer_config(Some(group)).create_with_context(TracingContext).map_err(unavailable)?;
        let client = Arc::new(client);
        groups.insert(group.to_string(), client.clone());
        Ok(client)
    }
}

fn retention_ms(retention: Retention) -> String {
    match retention {
        Retention::Forever => "-1".to_string(),
        Retention::Millis(millis) => millis.to_string(),
    }
}

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
                match self.inner.producer.send_result(out) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        out = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => return Err(map_error(&record.topic, error)),
                }
            };
            deliveries.push(delivery);
        }
        let mut placed = Vec::with_capacity(deliveries.len());
        for (delivery, record) in futures::future::join_all(deliveries).await.into_iter().zip(&records) {
            match delivery {
                Ok(Ok(delivered)) => placed.push((delivered.partition as u32, Offset(delivered.offset as u64))),
                Ok(Err((error, _))) => return Err(map_error(&record.topic, error)),
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
        let consumer: StreamConsumer<TracingContext> =
            self.inner.config.consumer_config(None).create_with_context(TracingContext).map_err(unavailable)?;
        let consumer =
            KafkaConsumer { consumer, positions: assignment.into_iter().collect(), holes: Holes::new(self.clone()) };
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

impl KafkaLog {
    /// Queues of the shared consumer for `assignment`, unless one of its
    /// partitions is already read through it.
    fn shared_consumer(&self, assignment: &[(TopicPartition, Offset)]) -> Result<Option<QueueConsumer>, LogError> {
        let shared = {
            let mut slot = self.inner.shared.lock();
            match slot.as_ref() {
                Some(shared) => shared.clone(),
                None => {
                    let consumer: StreamConsumer<TracingContext> = self
                        .inner
                        .config
                        .consumer_config(None)
                        .create_with_context(TracingContext)
                        .map_err(unavailable)?;
                    let consumer = Arc::new(consumer);
                    // The main queue must be served for partition queues to
                    // move; no message arrives there (every partition is split).
                    let serve = {
                        let consumer = consumer.clone();
                        tokio::spawn(async move {
                            loop {
                                match consumer.recv().await {
                                    Err(error) => tracing::debug!(%error, "shared consumer event"),
                                    Ok(message) => tracing::error!(
                                        topic = message.topic(),
                                        partition = message.partition(),
                                        offset = message.offset(),
                                        "a record reached the shared consumer's main queue (not read by any task)"
                                    ),
                                }
                            }
                        })
                    };
                    let shared = Arc::new(SharedConsumer {
                        consumer,
                        assigned: Mutex::new(std::collections::HashSet::new()),
                        serve,
                    });
                    *slot = Some(shared.clone());
                    shared
                }
            }
        };
        let mut assigned = shared.assigned.lock();
        if assignment.iter().any(|(partition, _)| assigned.contains(partition)) {
            return Ok(None);
        }
        // Split before assigning: a record fetched in between would land in
        // the main queue, which nobody reads for records.
        let mut queues = Vec::with_capacity(assignment.len());
        for (partition, _) in assignment {
            let queue = shared
                .consumer
                .split_partition_queue(&partition.topic, partition.partition as i32)
                .ok_or_else(|| LogError::Unavailable(format!("no queue for {partition}")))?;
            queues.push((partition.clone(), queue));
        }
        shared.consumer.incremental_assign(&partition_list(assignment)?).map_err(unavailable)?;
        assigned.extend(assignment.iter().map(|(partition, _)| partition.clone()));
        drop(assigned);
        Ok(Some(QueueConsumer {
            queues,
            positions: assignment.iter().cloned().collect(),
            shared,
            holes: Holes::new(self.clone()),
        }))
    }

    /// The timestamp of the record at `offset`.
    async fn timestamp_at(&self, partition: &TopicPartition, offset: Offset) -> Result<i64, LogError> {
        let probe = self.inner.probe.clone().lock_owned().await;
        let partition = partition.clone();
        blocking(move || {
            probe_assign(&probe, &partition, offset)?;
            let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
            let mut found = None;
            while found.is_none() && std::time::Instant::now() < deadline {
                if let Some(Ok(message)) = probe.poll(Duration::from_millis(100))
                    && message.offset() >= offset.0 as i64
                {
                    found = Some(message.timestamp().to_millis().unwrap_or(0));
                }
            }
            probe_release(&probe);
            found.ok_or_else(|| LogError::Unavailable(format!("record {partition}@{offset} could not be read")))
        })
        .await
    }

    async fn time_answer_holds(
        &self,
        partition: &TopicPartition,
        candidate: Offset,
        marks: Watermarks,
        timestamp_ms: i64,
    ) -> Result<bool, LogError> {
        if candidate > marks.low && self.timestamp_at(partition, Offset(candidate.0 - 1)).await? >= timestamp_ms {
            return Ok(false);
        }
        if candidate < marks.high && self.timestamp_at(partition, candidate).await? < timestamp_ms {
            return Ok(false);
        }
        Ok(true)
    }

    /// Binary search over record timestamps (they grow with offsets for
    /// Missive's producers, which stamp records with the append time or the
    /// input record's time).
    async fn search_time(
        &self,
        partition: &TopicPartition,
        marks: Watermarks,
        timestamp_ms: i64,
    ) -> Result<Offset, LogError> {
        let (mut low, mut high) = (marks.low.0, marks.high.0);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.timestamp_at(partition, Offset(middle)).await? < timestamp_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(Offset(low))
    }
}

/// Stops the probe's fetching between uses.
fn probe_release(probe: &BaseConsumer<TracingContext>) {
    let _ = probe.unassign();
}

fn probe_assign(
    probe: &BaseConsumer<TracingContext>,
    partition: &TopicPartition,
    offset: Offset,
) -> Result<(), LogError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&partition.topic, partition.partition as i32, KafkaOffset::Offset(offset.0 as i64))
        .map_err(unavailable)?;
    probe.assign(&list).map_err(unavailable)
}

/// Reads from `from` to the end of the partition; returns the offset after the last record.
fn probe_end(
    probe: &BaseConsumer<TracingContext>,
    partition: &TopicPartition,
    from: Offset,
) -> Result<Offset, LogError> {
    probe_assign(probe, partition, from)?;
    let result = read_to_end(probe, partition, from);
    probe_release(probe);
    result
}

fn read_to_end(
    probe: &BaseConsumer<TracingContext>,
    partition: &TopicPartition,
    from: Offset,
) -> Result<Offset, LogError> {
    // Ends at the end-of-partition event, or once fetches come back empty
    // for a while after reading something (some brokers' fetch responses
    // carry the same wrong high watermark, and the event never comes).
    let mut end = from;
    let mut read_any = false;
    let mut quiet = Duration::ZERO;
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    while std::time::Instant::now() < deadline {
        match probe.poll(Duration::from_millis(50)) {
            // The probe is shared: a record fetched for an earlier probe's
            // partition must not move this one's end (an end past the real
            // one has a reader wait for records that never come).
            Some(Ok(message))
                if message.topic() == partition.topic && message.partition() as u32 == partition.partition =>
            {
                end = end.max(Offset(message.offset() as u64 + 1));
                read_any = true;
                quiet = Duration::ZERO;
            }
            Some(Ok(message)) => {
                tracing::debug!(
                    topic = message.topic(),
                    partition = message.partition(),
                    "probe: a record of another partition, ignored"
                )
            }
            Some(Err(KafkaError::PartitionEOF(eof))) if eof as u32 == partition.partition => return Ok(end),
            Some(Err(error)) => tracing::debug!(%error, "probe error"),
            None => {
                quiet += Duration::from_millis(50);
                if read_any && quiet >= Duration::from_millis(300) {
                    return Ok(end);
                }
            }
        }
    }
    Err(LogError::Unavailable(format!("the end of {partition} could not be read")))
}

type PartitionQueue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<TracingContext>;

/// A reader of some partitions of the shared consumer.
struct QueueConsumer {
    queues: Vec<(TopicPartition, PartitionQueue)>,
    positions: HashMap<TopicPartition, Offset>,
    shared: Arc<SharedConsumer>,
    holes: Holes,
}

impl Drop for QueueConsumer {
    fn drop(&mut self) {
        let partitions: Vec<(TopicPartition, Offset)> =
            self.queues.drain(..).map(|(partition, _)| (partition, Offset(0))).collect();
        if let Ok(list) = partition_list(&partitions) {
            let _ = self.shared.consumer.incremental_unassign(&list);
        }
        let mut assigned = self.shared.assigned.lock();
        for (partition, _) in &partitions {
            assigned.remove(partition);
        }
    }
}

#[async_trait]
impl LogConsumer for QueueConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + max_wait;
        while records.is_empty() {
            let waits = self.queues.iter().map(|(_, queue)| Box::pin(queue.recv()));
            let record = match tokio::time::timeout_at(deadline, futures::future::select_all(waits)).await {
                Err(_) => return Ok(records),
                Ok((Ok(message), _, _)) => owned_record(&message),
                Ok((Err(error), _, _)) => {
                    tracing::debug!(%error, "consumer error");
                    continue;
                }
            };
            if !admit(self, record, &mut records).await? {
                return Ok(records);
            }
        }
        for index in 0..self.queues.len() {
            while records.len() < max_records {
                let record = match self.queues[index].1.recv().now_or_never() {
                    Some(Ok(message)) => owned_record(&message),
                    _ => break,
                };
                if !admit(self, record, &mut records).await? {
                    return Ok(records);
                }
            }
        }
        Ok(records)
    }

    fn seek(&mut self, partition: &TopicPartition, offset: Offset) -> Result<(), LogError> {
        let index = self
            .queues
            .iter()
            .position(|(known, _)| known == partition)
            .ok_or_else(|| LogError::Unavailable(format!("{partition} is not assigned to this consumer")))?;
        let consumer = &self.shared.consumer;
        consumer.incremental_unassign(&partition_list(&[(partition.clone(), offset)])?).map_err(unavailable)?;
        let queue = consumer
            .split_partition_queue(&partition.topic, partition.partition as i32)
            .ok_or_else(|| LogError::Unavailable(format!("no queue for {partition}")))?;
        self.queues[index].1 = queue;
        consumer.incremental_assign(&partition_list(&[(partition.clone(), offset)])?).map_err(unavailable)?;
        self.positions.insert(partition.clone(), offset);
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Option<Offset> {
        self.positions.get(partition).copied()
    }
}

/// A consumer assigned exactly the partitions it was opened with.
struct KafkaConsumer {
    consumer: StreamConsumer<TracingContext>,
    positions: HashMap<TopicPartition, Offset>,
    holes: Holes,
}

impl KafkaConsumer {
    fn assign(&self) -> Result<(), LogError> {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &self.positions {
            list.add_partition_offset(
                &partition.topic,
                partition.partition as i32,
                KafkaOffset::Offset(offset.0 as i64),
            )
            .map_err(unavailable)?;
        }
        self.consumer.assign(&list).map_err(unavailable)
    }
}

/// A fetched message as a [`Record`].
fn owned_record(message: &BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| Header { key: header.key.to_string(), value: header.value.unwrap_or_default().to_vec() })
                .collect()
        })
        .unwrap_or_default();
    Record::from(RecordData {
        topic: message.topic().to_string(),
        partition: message.partition() as u32,
        offset: Offset(message.offset().max(0) as u64),
        timestamp: message.timestamp().to_millis().unwrap_or(0),
        key: message.key().unwrap_or_default().to_vec(),
        value: message.payload().unwrap_or_default().to_vec(),
        headers,
    })
}

/// Longest a reader waits for a hole in a partition to fill before it
/// takes the gap as final. A hole Tansu shows while storing a batch fills
/// within milliseconds; one that stays is a batch that was never stored (a
/// producer killed mid-append, whose append was never acknowledged), and
/// every reader of the partition waits this long at each such hole.
const HOLE_PATIENCE: Duration = Duration::from_secs(2);
/// Pause before fetching a partition with a hole again.
const HOLE_BACKOFF: Duration = Duration::from_millis(10);

/// A reader's guard against brokers that expose an offset before the
/// record at it can be fetched. Tansu 0.6 raises a partition's high
/// watermark before it stores the batch: a reader fetching in between gets
/// the batches stored after the hole, and would skip the record (seen as
/// acknowledged sends that never reached a processor, when two producers
/// write one partition). Missive writes its topics with idempotent,
/// non-transactional producers, so offsets in a partition are contiguous
/// unless the topic is compacted or old records expired; any other gap is
/// fetched again until it fills.
struct Holes {
    log: KafkaLog,
    /// Per partition: the offset missing and since when.
    waiting: HashMap<TopicPartition, (Offset, std::time::Instant)>,
}

/// What a poll does with a fetched record.
enum Admit {
    /// The next record of its partition.
    Take(Record),
    /// Before the position (fetched before a seek): dropped.
    Drop,
    /// After a hole: fetch the partition again from its position.
    Refetch(TopicPartition, Offset),
}

impl Holes {
    fn new(log: KafkaLog) -> Holes {
        Holes { log, waiting: HashMap::new() }
    }

    /// Places `record` against its partition's position, advancing it.
    async fn admit(&mut self, positions: &mut HashMap<TopicPartition, Offset>, record: Record) -> Admit {
        let partition = TopicPartition::new(record.topic.as_str(), record.partition);
        let Some(position) = positions.get(&partition).copied() else { return Admit::Drop };
        if record.offset < position {
            return Admit::Drop;
        }
        if record.offset > position && !self.gap_is_final(&partition, position, record.offset).await {
            return Admit::Refetch(partition, position);
        }
        positions.insert(partition, Offset(record.offset.0 + 1));
        Admit::Take(record)
    }

    /// Whether the records `missing..found` of `partition` are gone for
    /// good (compaction, retention, or a hole that stayed past
    /// [`HOLE_PATIENCE`]) rather than not yet readable.
    async fn gap_is_final(&mut self, partition: &TopicPartition, missing: Offset, found: Offset) -> bool {
        if self.log.compacted(&partition.topic).await == Some(true) {
            return true;
        }
        if self.log.broker_watermarks(partition).await.is_ok_and(|(start, _)| start > missing) {
            tracing::warn!(%partition, from = missing.0, to = found.0, "records expired before they were read");
            self.waiting.remove(partition);
            return true;
        }
        let now = std::time::Instant::now();
        let since = match self.waiting.get(partition) {
            Some((offset, since)) if *offset == missing => *since,
            _ => {
                self.waiting.insert(partition.clone(), (missing, now));
                tracing::debug!(%partition, missing = missing.0, found = found.0, "a hole in the partition: fetching again");
                now
            }
        };
        if now.duration_since(since) < HOLE_PATIENCE {
            return false;
        }
        tracing::warn!(
            %partition, from = missing.0, to = found.0,
            "the brokers serve no records at these offsets after {} s (an append that never completed); reading on past them",
            HOLE_PATIENCE.as_secs()
        );
        self.waiting.remove(partition);
        true
    }
}

/// A consumer that places fetched records with [`Holes`].
trait Placing: LogConsumer {
    fn placing(&mut self) -> (&mut Holes, &mut HashMap<TopicPartition, Offset>);
}

impl Placing for KafkaConsumer {
    fn placing(&mut self) -> (&mut Holes, &mut HashMap<TopicPartition, Offset>) {
        (&mut self.holes, &mut self.positions)
    }
}

impl Placing for QueueConsumer {
    fn placing(&mut self) -> (&mut Holes, &mut HashMap<TopicPartition, Offset>) {
        (&mut self.holes, &mut self.positions)
    }
}

/// Adds `record` to `records` if it is its partition's next; `false` when
/// the poll must end (a partition was sent back to fetch a hole again).
async fn admit(consumer: &mut impl Placing, record: Record, records: &mut Vec<Record>) -> Result<bool, LogError> {
    let (holes, positions) = consumer.placing();
    match holes.admit(positions, record).await {
        Admit::Take(record) => records.push(record),
        Admit::Drop => {}
        Admit::Refetch(partition, offset) => {
            consumer.seek(&partition, offset)?;
            tokio::time::sleep(HOLE_BACKOFF).await;
            return Ok(false);
        }
    }
    Ok(true)
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + max_wait;
        while records.is_empty() {
            let record = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => return Ok(records),
                Ok(Ok(message)) => owned_record(&message),
                // Transport errors are retried inside librdkafka; they are
                // reported here for information only.
                Ok(Err(error)) => {
                    tracing::debug!(%error, "consumer error");
                    continue;
                }
            };
            if !admit(self, record, &mut records).await? {
                return Ok(records);
            }
        }
        while records.len() < max_records {
            let record = match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => owned_record(&message),
                _ => break,
            };
            if !admit(self, record, &mut records).await? {
                break;
            }
        }
        Ok(records)
    }

    fn seek(&mut self, partition: &TopicPartition, offset: Offset) -> Result<(), LogError> {
        let position = self
            .positions
            .get_mut(partition)
            .ok_or_else(|| LogError::Unavailable(format!("{partition} is not assigned to this consumer")))?;
        *position = offset;
        // Reassigning restarts fetching at the tracked positions and drops
        // whatever was prefetched; it never blocks.
        self.assign()
    }

    fn position(&self, partition: &TopicPartition) -> Option<Offset> {
        self.positions.get(partition).copied()
    }
}
