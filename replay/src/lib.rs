//! Tools for analysts and operators. For now: `missive topics`, which lists
//! each topic's partitions with their offsets and the processors' positions.

use std::path::PathBuf;

use missive_infra::{EmbeddedLog, Log, TopicPartition};

#[derive(clap::Args)]
pub struct TopicsArgs {
    /// Data directory of an embedded server (stop the server first: RocksDB allows one process).
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Prints one JSON line per partition.
pub async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let log = EmbeddedLog::open(db, false)?;
    for spec in log.topics().await? {
        for partition in 0..spec.partitions {
            let marks = log.watermarks(&TopicPartition::new(spec.name.clone(), partition)).await?;
            println!(
                "{}",
                serde_json::json!({
                    "topic": spec.name, "partition": partition,
                    "earliest": marks.low.0, "latest": marks.high.0, "records": marks.high.0 - marks.low.0,
                })
            );
        }
    }
    Ok(())
}
