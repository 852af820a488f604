//! Where the log is read from: an embedded server's store, opened as a
//! read-only RocksDB secondary beside it, or a Kafka cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use missive_infra::{EmbeddedLog, KafkaConfig, KafkaLog, Log};

/// Where the log is: an embedded server's data directory, or a Kafka cluster.
#[derive(clap::Args, Clone)]
pub struct Source {
    /// Data directory of an embedded server (it may be running: the store is opened read-only beside it).
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Read a Kafka cluster instead (bootstrap servers).
    #[arg(long = "kafka", env = "MISSIVE_KAFKA", global = true)]
    pub brokers: Option<String>,
}

/// An open log and, for an embedded store, its read-only view to refresh.
pub(crate) struct Opened {
    pub(crate) log: Arc<dyn Log>,
    pub(crate) follower: Option<EmbeddedLog>,
    /// The secondary's scratch directory; removed when done.
    pub(crate) scratch: Option<PathBuf>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

pub(crate) async fn open(source: &Source) -> anyhow::Result<Opened> {
    if let Some(brokers) = &source.brokers {
        let log = KafkaLog::connect(KafkaConfig::new(brokers.clone()))?;
        log.wait_ready(Duration::from_secs(30)).await.context("the Kafka cluster did not answer; check --kafka")?;
        return Ok(Opened { log: Arc::new(log), follower: None, scratch: None });
    }
    let store = source.data_dir.join("store");
    if !store.join("CURRENT").exists() {
        bail!("no Missive store at {}; pass the server's --data-dir (or --kafka)", store.display());
    }
    let scratch = std::env::temp_dir().join(format!("missive-reader-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let db = missive_infra::db::open_db_secondary(&store, &scratch)?;
    let log = EmbeddedLog::open(db, false)?;
    Ok(Opened { log: Arc::new(log.clone()), follower: Some(log), scratch: Some(scratch) })
}
