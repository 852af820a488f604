//! Tools for analysts and operators. For now: `missive topics`, which lists
//! each topic's partitions with their offsets and the processors' positions,
//! from an embedded data directory or a Kafka cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use missive_infra::{EmbeddedLog, KafkaConfig, KafkaLog, Log, TopicPartition};

#[derive(clap::Args)]
pub struct TopicsArgs {
    /// Data directory of an embedded server (stop the server first: RocksDB allows one process).
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Read a Kafka cluster instead (bootstrap servers).
    #[arg(long = "kafka", env = "MISSIVE_KAFKA")]
    pub brokers: Option<String>,
}

/// Prints one JSON line per partition: offsets, record count, and for each
/// processor the position it last reported for that partition and its lag.
pub async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let log: Arc<dyn Log> = match &args.brokers {
        Some(brokers) => {
            let log = KafkaLog::connect(KafkaConfig::new(brokers.clone()))?;
            log.wait_ready(Duration::from_secs(30)).await?;
            Arc::new(log)
        }
        None => {
            let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
            Arc::new(EmbeddedLog::open(db, false)?)
        }
    };
    let mut positions: BTreeMap<TopicPartition, BTreeMap<&str, u64>> = BTreeMap::new();
    for group in missive_processors::PROCESSORS {
        for (partition, offset) in log.committed_positions(group).await? {
            positions.entry(partition).or_default().insert(group, offset.0);
        }
    }
    let mut specs = log.topics().await?;
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    for spec in specs {
        for partition in 0..spec.partitions {
            let key = TopicPartition::new(spec.name.clone(), partition);
            let marks = log.watermarks(&key).await?;
            let groups: serde_json::Map<String, serde_json::Value> = positions
                .get(&key)
                .into_iter()
                .flatten()
                .map(|(group, position)| {
                    let lag = marks.high.0.saturating_sub(*position);
                    (group.to_string(), serde_json::json!({"position": position, "lag": lag}))
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "topic": spec.name, "partition": partition,
                    "earliest": marks.low.0, "latest": marks.high.0, "records": marks.high.0 - marks.low.0,
                    "groups": groups,
                })
            );
        }
    }
    Ok(())
}
