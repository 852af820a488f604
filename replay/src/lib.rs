//! Tools for analysts and operators, over an embedded data directory or a
//! Kafka cluster (`--kafka`): `missive topics` lists each topic's
//! partitions with their offsets and the processors' positions; `missive
//! replay` reads a topic by offset or time, filters by key, record type,
//! user or conversation, and prints decoded records as JSON lines.
//!
//! Reading never disturbs a running server: an embedded store is opened as
//! a RocksDB secondary (a read-only follower of the server's files), and
//! Kafka is read with a plain assignment, committing nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use missive_core::conversation::ConversationEvent;
use missive_infra::{EmbeddedLog, KafkaConfig, KafkaLog, Log, Offset, Record, TopicPartition};
use missive_schemas::Codec;
use serde_json::{Value, json};

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
struct Opened {
    log: Arc<dyn Log>,
    follower: Option<EmbeddedLog>,
    /// The secondary's scratch directory; removed when done.
    scratch: Option<PathBuf>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

async fn open(source: &Source) -> anyhow::Result<Opened> {
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

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The topic to read (`missive topics` lists them).
    pub topic: String,
    #[command(flatten)]
    pub source: Source,
    /// Only this partition (default: every partition).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start at this offset in each partition read (default: the earliest kept).
    #[arg(long, conflicts_with = "from_time")]
    pub from_offset: Option<u64>,
    /// Stop before this offset.
    #[arg(long, conflicts_with = "to_time")]
    pub to_offset: Option<u64>,
    /// Start at the first record at or after this time (RFC 3339, e.g. 2026-11-28T15:00:00Z, or epoch ms).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Stop at the first record at or after this time.
    #[arg(long)]
    pub to_time: Option<String>,
    /// Only records with this key (a user or conversation id, as the topic keys them).
    #[arg(long)]
    pub key: Option<String>,
    /// Only these record types (e.g. MessageSent,GroupChanged).
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only records about this user (sender, recipient, member, actor, subject).
    #[arg(long)]
    pub user: Option<u64>,
    /// Only records of this conversation.
    #[arg(long)]
    pub conversation: Option<u64>,
    /// Stop after this many matching records.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Keep reading new records after the end (until interrupted).
    #[arg(long)]
    pub follow: bool,
}

/// Parses RFC 3339 or epoch milliseconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("{text:?} is neither RFC 3339 (2026-11-28T15:00:00Z) nor epoch milliseconds"))?;
    let since = time.duration_since(std::time::UNIX_EPOCH).context("a time before 1970")?;
    Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// Fields that name users in Missive's records.
const USER_FIELDS: [&str; 13] = [
    "from",
    "to",
    "by",
    "recipient",
    "more_recipients",
    "user_id",
    "user",
    "members",
    "audience",
    "subjects",
    "target",
    "blocker",
    "senders",
];

fn names(value: &Value, id: i64) -> bool {
    match value {
        Value::Number(number) => number.as_i64() == Some(id),
        Value::Array(items) => items.iter().any(|item| names(item, id)),
        // Nested records (a delivery's message, a group change).
        Value::Object(fields) => fields.values().any(|field| matches!(field, Value::Object(_)) && mentions(field, id)),
        _ => false,
    }
}

/// Whether a decoded record is about user `id`.
fn mentions(value: &Value, id: i64) -> bool {
    let Value::Object(fields) = value else { return false };
    fields.iter().any(|(name, field)| {
        (USER_FIELDS.contains(&name.as_str()) && names(field, id))
            || (matches!(field, Value::Object(_)) && mentions(field, id))
    })
}

/// Whether a decoded record belongs to conversation `id`.
fn in_conversation(value: &Value, id: i64) -> bool {
    let Value::Object(fields) = value else { return false };
    fields.iter().any(|(name, field)| {
        (name == "conversation_id" && field.as_i64() == Some(id))
            || (matches!(field, Value::Object(_)) && in_conversation(field, id))
    })
}

struct Filter {
    key: Option<Vec<u8>>,
    types: Vec<String>,
    user: Option<i64>,
    conversation: Option<i64>,
}

impl Filter {
    /// The JSON line for `record` if it passes, `None` otherwise.
    fn line(&self, codec: &Codec, record: &Record) -> Option<Value> {
        if self.key.as_ref().is_some_and(|key| *key != record.key) {
            return None;
        }
        let (record_type, value) = match codec.decode_json(&record.value) {
            Ok(decoded) => (decoded.0.short_name().to_string(), decoded.1),
            // Not Missive's Avro (or an unknown schema): shown raw, never guessed at.
            Err(error) => ("undecodable".to_string(), json!({"error": error.to_string(), "bytes": record.value.len()})),
        };
        if !self.types.is_empty() && !self.types.iter().any(|wanted| wanted.eq_ignore_ascii_case(&record_type)) {
            return None;
        }
        if self.user.is_some_and(|user| !mentions(&value, user)) {
            return None;
        }
        if self.conversation.is_some_and(|conversation| !in_conversation(&value, conversation)) {
            return None;
        }
        Some(json!({
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset.0,
            "timestamp": record.timestamp,
            "key": String::from_utf8_lossy(&record.key),
            "type": record_type,
            "value": value,
        }))
    }
}

/// Where to start a partition for `--from-time`, checked: the broker's time
/// index must put every earlier record before the time and this one at or
/// after it. A wrong answer is reported, never printed as data.
async fn start_for_time(log: &dyn Log, partition: &TopicPartition, at: i64) -> anyhow::Result<Offset> {
    let offset = log.offset_for_time(partition, at).await?;
    let marks = log.watermarks(partition).await?;
    let check = |from: Offset| async move {
        let mut consumer = log.consumer(vec![(partition.clone(), from)]).await?;
        let records = consumer.poll(1, Duration::from_secs(5)).await?;
        anyhow::Ok(records.into_iter().next())
    };
    if offset.0 > marks.low.0
        && let Some(before) = check(Offset(offset.0 - 1)).await?
        && before.timestamp >= at
    {
        bail!(
            "{partition}: the log says {at} starts at offset {}, but offset {} has timestamp {}: its time index is wrong; use --from-offset",
            offset.0,
            before.offset.0,
            before.timestamp
        );
    }
    if offset < marks.high
        && let Some(first) = check(offset).await?
        && first.timestamp < at
    {
        bail!(
            "{partition}: the log says {at} starts at offset {}, whose timestamp is {}: its time index is wrong; use --from-offset",
            offset.0,
            first.timestamp
        );
    }
    Ok(offset)
}

/// Which records of a topic to read.
struct Range<'a> {
    topic: &'a str,
    partition: Option<u32>,
    from_offset: Option<u64>,
    to_offset: Option<u64>,
    from_time: Option<i64>,
    to_time: Option<i64>,
    follow: bool,
}

/// Per partition: where to start, and where to stop (exclusive; `None`: follow forever).
type Plan = BTreeMap<TopicPartition, (Offset, Option<Offset>)>;

async fn plan(log: &dyn Log, range: &Range<'_>) -> anyhow::Result<Plan> {
    let spec = log
        .topics()
        .await?
        .into_iter()
        .find(|spec| spec.name == range.topic)
        .with_context(|| format!("no topic {:?}; `missive topics` lists them", range.topic))?;
    let partitions: Vec<u32> = match range.partition {
        Some(partition) if partition < spec.partitions => vec![partition],
        Some(partition) => bail!("{} has partitions 0..{}, not {partition}", spec.name, spec.partitions),
        None => (0..spec.partitions).collect(),
    };
    let mut plan = Plan::new();
    for partition in partitions {
        let partition = TopicPartition::new(spec.name.clone(), partition);
        let marks = log.watermarks(&partition).await?;
        let start = match (range.from_offset, range.from_time) {
            (Some(offset), _) => Offset(offset.max(marks.low.0)),
            (None, Some(at)) => start_for_time(log, &partition, at).await?,
            (None, None) => marks.low,
        };
        let end = match (range.to_offset, range.to_time) {
            (Some(offset), _) => Some(Offset(offset)),
            (None, Some(at)) => Some(log.offset_for_time(&partition, at).await?),
            (None, None) if range.follow => None,
            (None, None) => Some(marks.high),
        };
        if end.is_none_or(|end| start < end) {
            plan.insert(partition, (start, end));
        }
    }
    Ok(plan)
}

/// Reads the planned records in order per partition, handing each to
/// `each` until it says stop or every bounded partition is done. Reports
/// progress on stderr every few seconds. Returns how many records were read.
async fn scan(
    opened: &Opened,
    plan: &Plan,
    follow: bool,
    mut each: impl FnMut(&Record) -> anyhow::Result<bool>,
) -> anyhow::Result<u64> {
    if plan.is_empty() {
        return Ok(0);
    }
    // Following an embedded server: refresh the read-only view twice a second.
    let refresher = opened.follower.clone().filter(|_| follow).map(|follower| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let follower = follower.clone();
                match tokio::task::spawn_blocking(move || follower.follow_primary()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => eprintln!("missive: cannot follow the server's store: {error}"),
                    Err(_) => return,
                }
            }
        })
    });
    let total: u64 = plan.values().filter_map(|(start, end)| end.map(|end| end.0.saturating_sub(start.0))).sum();
    let assignment = plan.iter().map(|(partition, (start, _))| (partition.clone(), *start)).collect();
    let mut consumer = opened.log.consumer(assignment).await?;
    // Partitions still to read up to their end (all of them when following).
    let mut open_partitions: Vec<TopicPartition> = plan.keys().cloned().collect();
    // Counted for the progress report (not shown when following: there is no end).
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = (!follow).then(|| progress::Progress::start("missive", "records", total, counted.clone()));
    let mut read = 0u64;
    'reading: while !open_partitions.is_empty() {
        for record in consumer.poll(1024, Duration::from_millis(500)).await? {
            let Some((_, end)) = plan.get(&record.topic_partition()) else { continue };
            if end.is_some_and(|end| record.offset >= end) {
                continue;
            }
            read += 1;
            counted.store(read, std::sync::atomic::Ordering::Relaxed);
            if !each(&record)? {
                break 'reading;
            }
        }
        // Done with a partition once the reader is past its end (gaps in
        // compacted topics included).
        open_partitions.retain(|partition| {
            let end = plan.get(partition).and_then(|(_, end)| *end);
            end.is_none_or(|end| consumer.position(partition).is_none_or(|position| position < end))
        });
    }
    if let Some(progress) = progress {
        progress.finish();
    }
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    Ok(read)
}

/// Prints the matching records as JSON lines on stdout; a summary on stderr.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let opened = open(&args.source).await?;
    let range = Range {
        topic: &args.topic,
        partition: args.partition,
        from_offset: args.from_offset,
        to_offset: args.to_offset,
        from_time: args.from_time.as_deref().map(parse_time).transpose()?,
        to_time: args.to_time.as_deref().map(parse_time).transpose()?,
        follow: args.follow,
    };
    let plan = plan(opened.log.as_ref(), &range).await?;
    let codec = missive_schemas::registry::codec_from_log(opened.log.clone()).await?;
    let filter = Filter {
        key: args.key.map(String::into_bytes),
        types: args.types,
        user: args.user.map(|user| i64::try_from(user).unwrap_or(i64::MAX)),
        conversation: args.conversation.map(|conversation| i64::try_from(conversation).unwrap_or(i64::MAX)),
    };
    let mut matched = 0u64;
    let mut stdout = std::io::stdout().lock();
    let read = scan(&opened, &plan, args.follow, |record| {
        if let Some(line) = filter.line(&codec, record) {
            writeln!(stdout, "{line}")?;
            if args.follow {
                stdout.flush()?;
            }
            matched += 1;
        }
        Ok(args.limit.is_none_or(|limit| matched < limit))
    })
    .await?;
    stdout.flush()?;
    eprintln!("replay: {matched} of {read} records matched ({} partitions of {})", plan.len(), args.topic);
    Ok(())
}

#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub source: Source,
    /// From this time (RFC 3339 or epoch ms; default: the earliest kept).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Up to this time (default: now).
    #[arg(long)]
    pub to_time: Option<String>,
    /// How many of the busiest conversations to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// Figures computed from `events.conversation` over a time range, printed
/// as one JSON object: messages per hour, active users per day, group vs
/// 1:1 share, delivery latency percentiles (sent -> first delivered, per
/// recipient, from the receipts), the busiest conversations.
pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let opened = open(&args.source).await?;
    let range = Range {
        topic: missive_processors::topics::EVENTS_CONVERSATION,
        partition: None,
        from_offset: None,
        to_offset: None,
        from_time: args.from_time.as_deref().map(parse_time).transpose()?,
        to_time: args.to_time.as_deref().map(parse_time).transpose()?,
        follow: false,
    };
    let plan = plan(opened.log.as_ref(), &range).await?;
    let codec = missive_schemas::registry::codec_from_log(opened.log.clone()).await?;
    let mut figures = stats::Figures::default();
    let mut undecodable = 0u64;
    scan(&opened, &plan, false, |record| {
        match codec.decode(&record.value).ok().and_then(|value| ConversationEvent::try_from(value).ok()) {
            Some(event) => figures.add(&event),
            None => undecodable += 1,
        }
        Ok(true)
    })
    .await?;
    let mut report = figures.report(args.top);
    report["undecodable_records"] = json!(undecodable);
    println!("{report}");
    Ok(())
}

mod dead_letters;
pub mod progress;
mod rebuild;
mod reset;
mod stats;

pub use dead_letters::{DeadLettersArgs, dead_letters_command};
pub use rebuild::{RebuildArgs, rebuild};
pub use reset::{ResetArgs, reset};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_conversations_are_found_wherever_records_name_them() {
        let delivery = json!({"recipient": 7, "message": {"conversation_id": 9, "from": 3, "members": [3, 7]}});
        assert!(mentions(&delivery, 7) && mentions(&delivery, 3));
        assert!(!mentions(&delivery, 9), "a conversation id is not a user");
        assert!(in_conversation(&delivery, 9) && !in_conversation(&delivery, 7));
        let change = json!({"conversation_id": 4, "by": 1, "subjects": [5], "members": [1, 2]});
        assert!(mentions(&change, 5) && mentions(&change, 2) && !mentions(&change, 4));
        assert_eq!(parse_time("1795000000000").expect("ms"), 1_795_000_000_000);
        assert_eq!(parse_time("2026-11-28T00:00:00Z").expect("rfc3339"), 1_795_824_000_000);
        assert!(parse_time("yesterday").is_err());
    }
}
