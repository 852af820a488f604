//! `missive process`: the deciders for a share of partitions.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use missive_processors::{Placement, ReadSide, RuntimeMetrics, conversation, users};
use tokio_util::sync::CancellationToken;

use super::common::*;
use super::kafka_args::*;
use super::registry::*;

#[derive(clap::Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryUrl,
    /// Directory for this instance's state store.
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// This instance's number, 0-based: it runs the partitions p with p % instances == instance.
    #[arg(long, env = "MISSIVE_INSTANCE", default_value_t = 0)]
    pub instance: u32,
    /// How many instances share the partitions.
    #[arg(long, env = "MISSIVE_INSTANCES", default_value_t = 1)]
    pub instances: u32,
    /// Which deciders to run (comma-separated): conversation, users.
    #[arg(long, env = "MISSIVE_PROCESSORS", value_delimiter = ',', default_value = "conversation,users")]
    pub processors: Vec<String>,
    #[command(flatten)]
    pub rules: RulesArgs,
}

/// The conversation decider's configurable rules.
#[derive(clap::Args, Clone, Copy)]
pub struct RulesArgs {
    /// How long after sending a message it may be deleted for everyone, in seconds.
    #[arg(long, env = "MISSIVE_DELETE_FOR_EVERYONE_SECONDS", default_value_t = 3600)]
    pub delete_for_everyone_seconds: u32,
}

impl RulesArgs {
    pub fn windows(&self) -> missive_core::operations::OperationWindows {
        missive_core::operations::OperationWindows {
            delete_ms: i64::from(self.delete_for_everyone_seconds) * 1000,
            ..Default::default()
        }
    }
}

pub async fn process(args: ProcessArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.instances >= 1 && args.instance < args.instances,
        "--instance must be below --instances ({} of {})",
        args.instance,
        args.instances
    );
    let mut selected: Vec<&'static str> = Vec::new();
    for name in &args.processors {
        match name.as_str() {
            "conversation" => selected.push(conversation::PROCESSOR),
            "users" => selected.push(users::PROCESSOR),
            other => anyhow::bail!(
                "unknown processor {other:?}: `missive process` runs conversation and users; inbox, history and the directory run inside `missive gateway`"
            ),
        }
    }
    create_private_dir(&args.data_dir)?;
    let log = args.kafka.connect(&format!("missive-process-{}", args.instance)).await?;
    missive_processors::create_topics(log.as_ref(), args.kafka.changelogs()).await?;
    let codec = Arc::new(args.registry.register().await?);
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let metrics = RuntimeMetrics::new(&prometheus::Registry::new())?;
    let cancel = CancellationToken::new();
    let (instance, instances) = (args.instance, args.instances);
    let place =
        |processor: &'static str, partition: u32| selected.contains(&processor) && partition % instances == instance;
    let changelogs = args.kafka.changelogs();
    let tasks = missive_processors::spawn_placed(
        log,
        db,
        codec,
        ReadSide::new(1024),
        metrics,
        cancel.clone(),
        Placement { changelogs, place: &place, windows: args.rules.windows() },
    );
    let count = tasks.len();
    let watchdog = stop_when_any_task_ends(tasks, cancel.clone(), OnTaskFailure::Stop);
    stop_on_signal(cancel.clone());
    println!("processing {count} partitions ({}) as instance {instance} of {instances}", args.processors.join(","));
    std::io::stdout().flush()?;
    cancel.cancelled().await;
    watchdog.abort();
    Ok(())
}
