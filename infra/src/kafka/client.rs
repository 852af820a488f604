//! The Kafka log: one idempotent producer, shared consumers, metadata.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};

use crate::log::Offset;
use crate::log::{LogError, TopicPartition};

use super::config::*;

/// The Kafka backend. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) config: KafkaConfig,
    /// Replaced when librdkafka reports it failed for good ([`Inner::producer_failed`]).
    pub(super) producer: RwLock<Arc<FutureProducer<TracingContext>>>,
    pub(super) admin: AdminClient<TracingContext>,
    /// A group-less consumer for metadata, watermarks and offset lookups.
    pub(super) meta: Arc<BaseConsumer<TracingContext>>,
    /// A group-less consumer that reads single records to check brokers'
    /// offset answers (one user at a time).
    /// Waited for asynchronously, so queued probes hold no blocking thread.
    pub(super) probe: Arc<tokio::sync::Mutex<BaseConsumer<TracingContext>>>,
    pub(super) partitions: RwLock<HashMap<String, u32>>,
    pub(super) groups: Mutex<HashMap<String, Arc<BaseConsumer<TracingContext>>>>,
    /// The process's shared consumer (created on first use).
    pub(super) shared: Mutex<Option<Arc<SharedConsumer>>>,
    /// Whether a topic is compacted (`cleanup.policy`), as created here or
    /// described by the brokers: only there may offsets have gaps.
    pub(super) compacted: Mutex<HashMap<String, bool>>,
}

/// One librdkafka consumer for every [`LogConsumer`] of the process: each
/// gets its own partition queues (`split_partition_queue`), so a process
/// with dozens of partition tasks sends one fetch request per broker
/// instead of one per task. A partition can be in one shared consumer only
/// once; a second reader of it gets a dedicated client.
pub(super) struct SharedConsumer {
    pub(super) consumer: Arc<StreamConsumer<TracingContext>>,
    pub(super) assigned: Mutex<std::collections::HashSet<TopicPartition>>,
    pub(super) serve: tokio::task::JoinHandle<()>,
}

impl Drop for SharedConsumer {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

pub(super) fn partition_list(positions: &[(TopicPartition, Offset)]) -> Result<TopicPartitionList, LogError> {
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
        let producer = new_producer(&config)?;
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
                producer: RwLock::new(Arc::new(producer)),
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

    /// A consumer of its own for one reader, fetching with `fetch_wait_ms`.
    pub(super) fn dedicated_consumer(&self, fetch_wait_ms: u32) -> Result<StreamConsumer<TracingContext>, LogError> {
        let mut config = self.inner.config.consumer_config(None);
        if !self.inner.config.extra.iter().any(|(key, _)| key == "fetch.wait.max.ms") {
            config.set("fetch.wait.max.ms", fetch_wait_ms.to_string());
        }
        config.create_with_context(TracingContext).map_err(unavailable)
    }
}

/// The process's idempotent producer.
fn new_producer(config: &KafkaConfig) -> Result<FutureProducer<TracingContext>, LogError> {
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
    producer_config.create_with_context(TracingContext).map_err(unavailable)
}

impl Inner {
    /// The producer appends use now.
    pub(super) fn producer(&self) -> Arc<FutureProducer<TracingContext>> {
        self.producer.read().clone()
    }

    /// After an append through `failed` went wrong with `error`: if that
    /// producer cannot recover (librdkafka calls it fatal, or the broker
    /// fenced its producer id or epoch, as Tansu does once an idempotent
    /// producer's messages timed out during a network cut), a new one takes
    /// its place, so the process appends again instead of failing every
    /// append until it is restarted. The appends that failed are retried by
    /// their callers; Missive's consumers drop what a retry repeats.
    pub(super) fn producer_failed(&self, failed: &Arc<FutureProducer<TracingContext>>, error: &KafkaError) {
        use rdkafka::producer::Producer;
        use rdkafka::types::RDKafkaErrorCode as Code;
        let fenced = matches!(
            error.rdkafka_error_code(),
            Some(
                Code::ProducerFenced
                    | Code::InvalidProducerEpoch
                    | Code::OutOfOrderSequenceNumber
                    | Code::UnknownProducerId
                    | Code::Fenced
            )
        );
        let (code, reason) = match failed.client().fatal_error() {
            Some((code, reason)) => (code, reason),
            None if fenced => (error.rdkafka_error_code().unwrap_or(Code::Fenced), error.to_string()),
            None => return,
        };
        let mut current = self.producer.write();
        if !Arc::ptr_eq(&current, failed) {
            return; // another append replaced it already
        }
        match new_producer(&self.config) {
            Ok(fresh) => {
                tracing::error!(?code, %reason, "the Kafka producer failed for good; a new producer takes over");
                *current = Arc::new(fresh);
            }
            Err(error) => {
                tracing::error!(%error, %reason, "the Kafka producer failed for good and a new one cannot be made")
            }
        }
    }
}

impl KafkaLog {
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
    pub(super) async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
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
    pub(super) async fn compacted(&self, topic: &str) -> Option<bool> {
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
    pub(super) async fn broker_watermarks(&self, partition: &TopicPartition) -> Result<(Offset, Offset), LogError> {
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

    pub(super) fn group_client(&self, group: &str) -> Result<Arc<BaseConsumer<TracingContext>>, LogError> {
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
