//! Connecting a role to the Kafka cluster.

use std::sync::Arc;
use std::time::Duration;

use missive_infra::{KafkaConfig, KafkaLog, Log};

/// Connection to the Kafka cluster and the schema registry.
#[derive(clap::Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,host:port`).
    #[arg(long = "kafka", env = "MISSIVE_KAFKA")]
    pub brokers: String,
    /// Replication factor for the topics Missive creates (3 on a production cluster).
    #[arg(long, env = "MISSIVE_KAFKA_REPLICATION", default_value_t = 1)]
    pub replication_factor: i32,
    /// Longest a consumer fetch waits on the broker, in ms (latency vs. broker load).
    #[arg(long, env = "MISSIVE_KAFKA_FETCH_WAIT_MS", default_value_t = 10)]
    pub fetch_wait_ms: u32,
    /// Producer linger, in ms (batching vs. latency).
    #[arg(long, env = "MISSIVE_KAFKA_LINGER_MS", default_value_t = 1)]
    pub linger_ms: u32,
    /// Extra librdkafka property `key=value` (repeatable), e.g. security settings.
    #[arg(long = "kafka-property", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// One librdkafka consumer per process with a queue per partition task
    /// (fewer broker fetches; experimental, see docs/design/kafka-mode.md).
    #[arg(long, env = "MISSIVE_KAFKA_SHARED_CONSUMER", default_value_t = false)]
    pub kafka_shared_consumer: bool,
    /// Do not write state changelogs (`changelog.<processor>`): faster, but an
    /// instance whose store is lost must then replay its inputs.
    #[arg(long, env = "MISSIVE_NO_CHANGELOG", default_value_t = false)]
    pub no_changelog: bool,
}

/// An address (one host) or a CIDR network.
pub(super) fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("expected an address or CIDR such as 10.0.0.0/8, got {text:?}"))
}

pub(super) fn parse_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

impl KafkaArgs {
    pub fn changelogs(&self) -> bool {
        !self.no_changelog
    }

    pub async fn connect(&self, client_id: &str) -> anyhow::Result<Arc<dyn Log>> {
        let mut config = KafkaConfig::new(self.brokers.clone());
        config.replication = self.replication_factor;
        config.client_id = client_id.to_string();
        config.fetch_wait_ms = self.fetch_wait_ms;
        config.linger_ms = self.linger_ms;
        config.extra = self.properties.clone();
        config.shared_consumer = self.kafka_shared_consumer;
        let log = KafkaLog::connect(config)?;
        log.wait_ready(Duration::from_secs(60)).await?;
        Ok(Arc::new(log))
    }
}
