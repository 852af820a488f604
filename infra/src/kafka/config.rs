//! Connection settings, librdkafka's logs and errors, and running its
//! blocking calls off the async workers.

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::log::{LogError, Retention};

/// How long a blocking librdkafka request may take before it counts as unavailable.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

    pub(super) fn base(&self, role: &str) -> ClientConfig {
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

    pub(super) fn consumer_config(&self, group: Option<&str>) -> ClientConfig {
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

pub(super) fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

pub(super) fn map_error(topic: &str, error: KafkaError) -> LogError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            LogError::UnknownTopic(topic.to_string())
        }
        _ => unavailable(error),
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| unavailable(format!("blocking task failed: {error}")))?
}

pub(super) fn retention_ms(retention: Retention) -> String {
    match retention {
        Retention::Forever => "-1".to_string(),
        Retention::Millis(millis) => millis.to_string(),
    }
}
