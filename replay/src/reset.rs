//! `missive reset <processor>`: moves a stopped processor's input positions
//! (to an offset, a time, or the end). Only what can be undone safely is
//! allowed: any processor may skip forward (past a poison batch, say);
//! only the idempotent folds (history, directory) may go back, since the
//! deciders would decide their commands twice and the inbox would append
//! entries twice (`missive rebuild inbox --swap` is the way back there).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use missive_infra::db::{CF_STATE, family};
use missive_infra::{EmbeddedLog, KafkaConfig, KafkaLog, Log, Offset, TopicPartition};
use missive_processors::runtime;
use missive_processors::{PROCESSORS, history, partitions_of};
use serde_json::json;

use crate::scan::parse_time;
use crate::source::Source;

#[derive(clap::Args)]
pub struct ResetArgs {
    /// conversation, users, inbox, history or directory.
    pub processor: String,
    /// `--data-dir` is the stopped store's directory (an embedded server's, a
    /// Kafka-mode gateway's or processor instance's); `--kafka` reads the log there.
    #[command(flatten)]
    pub source: Source,
    /// Move every partition to this offset (clamped to what the log holds).
    #[arg(long, conflicts_with_all = ["to_time", "to_end"])]
    pub to_offset: Option<u64>,
    /// Move every partition to the first record at or after this time (RFC 3339 or epoch ms).
    #[arg(long, conflicts_with = "to_end")]
    pub to_time: Option<String>,
    /// Move every partition to its end (skip everything not yet processed).
    #[arg(long)]
    pub to_end: bool,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<u32>,
}

fn input_topic(processor: &str) -> anyhow::Result<(&'static str, &'static str)> {
    use missive_processors::{conversation, inbox, topics, users};
    Ok(match processor {
        conversation::PROCESSOR => (conversation::PROCESSOR, topics::COMMANDS_CONVERSATION),
        users::PROCESSOR => (users::PROCESSOR, topics::COMMANDS_USER),
        inbox::PROCESSOR => (inbox::PROCESSOR, topics::DELIVERIES),
        history::HISTORY => (history::HISTORY, topics::EVENTS_CONVERSATION),
        history::DIRECTORY => (history::DIRECTORY, topics::EVENTS_USER),
        history::MEDIA => (history::MEDIA, topics::EVENTS_MEDIA),
        other => bail!("no processor {other:?}: choose one of {}", PROCESSORS.join(", ")),
    })
}

pub async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let (processor, topic) = input_topic(&args.processor)?;
    if args.to_offset.is_none() && args.to_time.is_none() && !args.to_end {
        bail!("say where to: --to-offset N, --to-time T or --to-end");
    }
    let path = args.source.data_dir.join("store");
    if !path.join("CURRENT").exists() {
        bail!("no Missive store at {}; pass the stopped store's --data-dir", path.display());
    }
    let db = missive_infra::db::open_db(&path).with_context(|| {
        format!(
            "cannot open {}: reset moves the positions of stopped processors only; stop the process using it",
            path.display()
        )
    })?;
    let log: Arc<dyn Log> = match &args.source.brokers {
        Some(brokers) => {
            let log = KafkaLog::connect(KafkaConfig::new(brokers.clone()))?;
            log.wait_ready(Duration::from_secs(30)).await.context("the Kafka cluster did not answer; check --kafka")?;
            Arc::new(log)
        }
        None => Arc::new(EmbeddedLog::open(db.clone(), false)?),
    };
    let to_time = args.to_time.as_deref().map(parse_time).transpose()?;
    let backward_allowed = matches!(processor, history::HISTORY | history::DIRECTORY | history::MEDIA);
    let mut moves = Vec::new();
    let mut batch = rocksdb::WriteBatch::default();
    for partition in (0..partitions_of(topic)).filter(|partition| args.partition.is_none_or(|only| only == *partition))
    {
        let input = TopicPartition::new(topic, partition);
        let from = runtime::stored_position(&db, processor, input.clone()).map_err(anyhow::Error::msg)?;
        // Partitions this store never processed belong to another instance.
        if from == 0 && args.partition.is_none() {
            continue;
        }
        let marks = log.watermarks(&input).await?;
        let to = match (args.to_offset, to_time) {
            (Some(offset), _) => offset.clamp(marks.low.0, marks.high.0),
            (None, Some(at)) => log.offset_for_time(&input, at).await?.0,
            (None, None) => marks.high.0,
        };
        if to < from && !backward_allowed {
            bail!(
                "{input}: moving {processor} back from {from} to {to} would process its records twice \
                 (deciders decide again, the inbox appends again); only forward moves are allowed for it \
                 (for the inbox, `missive rebuild inbox --swap`)"
            );
        }
        let spec = runtime::TaskSpec { processor, input: input.clone(), changelog: None };
        let mut meta = runtime::stored_meta(&db, &spec).map_err(anyhow::Error::msg)?.unwrap_or_default();
        meta.position = Offset(to);
        runtime::put_meta(&db, &mut batch, &spec, &meta);
        moves.push(json!({"partition": partition, "from": from, "to": to}));
    }
    db.write(batch)?;
    db.flush_cf(family(&db, CF_STATE))?;
    println!("{}", json!({"reset": processor, "topic": topic, "moves": moves}));
    Ok(())
}
