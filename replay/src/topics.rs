//! `missive topics`: each topic's partitions, offsets and the processors' positions.

use std::collections::BTreeMap;

use missive_infra::TopicPartition;
use serde_json::{Value, json};

use crate::source::{Source, open};

#[derive(clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub source: Source,
}

/// Prints one JSON line per partition: offsets, record count, and for each
/// processor the position it last reported for that partition and its lag.
pub async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let opened = open(&args.source).await?;
    let log = opened.log.clone();
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
            let groups: serde_json::Map<String, Value> = positions
                .get(&key)
                .into_iter()
                .flatten()
                .map(|(group, position)| {
                    let lag = marks.high.0.saturating_sub(*position);
                    (group.to_string(), json!({"position": position, "lag": lag}))
                })
                .collect();
            println!(
                "{}",
                json!({
                    "topic": spec.name, "partition": partition,
                    "earliest": marks.low.0, "latest": marks.high.0, "records": marks.high.0 - marks.low.0,
                    "groups": groups,
                })
            );
        }
    }
    Ok(())
}
