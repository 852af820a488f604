//! `missive rebuild <projection>`: folds a projection from its source
//! topic into a shadow store, with the projection's own handler and the
//! runtime's commit protocol (nothing reimplemented), up to exactly the
//! input positions the live store had reached; compares the two key by key
//! (a digest of each, the first differing key); and on `--swap` replaces
//! the live projection with the shadow in one write batch, moving every
//! changed feed to a new epoch so its devices resync.
//!
//! Building and comparing read the live store as a RocksDB secondary, so
//! they run beside a serving server or gateway. The swap writes the store:
//! that step needs its process stopped (one process owns a RocksDB), and
//! the server refolds from the swapped positions when it starts again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use missive_core::Epoch;
use missive_infra::db::{CF_STATE, family};
use missive_infra::{EmbeddedLog, KafkaConfig, KafkaLog, Log, Offset, TopicPartition};
use missive_processors::runtime::{self, Handler, RuntimeMetrics, TaskSpec};
use missive_processors::{history, inbox, keys, state_value, topics};
use missive_projections::FeedState;
use missive_schemas::Codec;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::source::Source;

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// history (events.conversation), directory (events.user) or inbox (deliveries).
    pub projection: String,
    /// `--data-dir` is the live store's directory: an embedded server's, or a
    /// Kafka-mode gateway's (with `--kafka` to read the log there).
    #[command(flatten)]
    pub source: Source,
    /// Build and compare only (the default): report the first differing key.
    #[arg(long, conflicts_with_all = ["swap", "drop"])]
    pub verify_only: bool,
    /// Then make the rebuilt projection live (stop the server or gateway for this step).
    #[arg(long, conflicts_with = "drop")]
    pub swap: bool,
    /// Only drop the projection from a stopped server's store; its next start refolds it.
    #[arg(long)]
    pub drop: bool,
}

/// What each projection folds, and where its state lives.
struct Projection {
    processor: &'static str,
    topic: &'static str,
    prefix: &'static [u8],
}

fn projection(name: &str) -> anyhow::Result<Projection> {
    match name {
        "history" => {
            Ok(Projection { processor: history::HISTORY, topic: topics::EVENTS_CONVERSATION, prefix: b"hist/" })
        }
        "directory" => Ok(Projection { processor: history::DIRECTORY, topic: topics::EVENTS_USER, prefix: b"dir/" }),
        "inbox" => Ok(Projection { processor: inbox::PROCESSOR, topic: topics::DELIVERIES, prefix: b"inbox/" }),
        "media" => Ok(Projection { processor: history::MEDIA, topic: topics::EVENTS_MEDIA, prefix: b"media/" }),
        other => bail!("cannot rebuild {other:?}: choose history, directory, inbox or media"),
    }
}

fn handler(projection: &Projection, codec: Arc<Codec>) -> Box<dyn Handler> {
    match projection.processor {
        history::HISTORY => Box::new(history::HistoryHandler::new(codec)),
        history::DIRECTORY => Box::new(history::DirectoryHandler { codec, index: history::UserIndex::new(1024) }),
        history::MEDIA => Box::new(history::MediaCatalogueHandler { codec }),
        _ => Box::new(inbox::InboxHandler::new(codec, missive_processors::FeedHub::default())),
    }
}

fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// A stored key and its value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// Every key under `prefix`, in order.
fn keys_under<'a>(db: &'a DB, prefix: &'a [u8]) -> impl Iterator<Item = anyhow::Result<Entry>> + 'a {
    db.iterator_cf(family(db, CF_STATE), IteratorMode::From(prefix, Direction::Forward))
        .map(|item| item.map_err(anyhow::Error::from))
        .take_while(move |item| item.as_ref().map_or(true, |(key, _)| key.starts_with(prefix)))
}

fn printable(key: &[u8]) -> String {
    // Prefixes are text, ids big-endian bytes: show the text and the bytes in hex.
    let text: String = key.iter().take_while(|byte| byte.is_ascii_graphic()).map(|byte| *byte as char).collect();
    format!("{text}{}", hex::encode(&key[text.len()..]))
}

/// The user a key under `inbox/` belongs to.
fn inbox_user(key: &[u8]) -> Option<u64> {
    key.strip_prefix(b"inbox/").and_then(|rest| rest.get(..8)).and_then(|id| id.try_into().ok()).map(u64::from_be_bytes)
}

struct Comparison {
    equal: bool,
    keys_live: u64,
    keys_shadow: u64,
    digest_live: String,
    digest_shadow: String,
    first_difference: Option<serde_json::Value>,
    /// Users whose inbox keys differ (their feeds move to a new epoch on swap).
    changed_users: std::collections::BTreeSet<u64>,
}

fn compare(live: &DB, shadow: &DB, prefix: &[u8]) -> anyhow::Result<Comparison> {
    let (mut live_keys, mut shadow_keys) = (keys_under(live, prefix).peekable(), keys_under(shadow, prefix).peekable());
    let (mut live_digest, mut shadow_digest) = (Sha256::new(), Sha256::new());
    let mut comparison = Comparison {
        equal: true,
        keys_live: 0,
        keys_shadow: 0,
        digest_live: String::new(),
        digest_shadow: String::new(),
        first_difference: None,
        changed_users: Default::default(),
    };
    let hash = |digest: &mut Sha256, key: &[u8], value: &[u8]| {
        for part in [key, value] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
    };
    loop {
        let order = match (live_keys.peek(), shadow_keys.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) | (_, Some(Err(_))) => {
                let error = live_keys.next().and_then(Result::err).or_else(|| shadow_keys.next().and_then(Result::err));
                return Err(error.unwrap_or_else(|| anyhow::anyhow!("store read failed")));
            }
            (Some(Ok((live_key, _))), Some(Ok((shadow_key, _)))) => live_key.cmp(shadow_key),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        let (live_entry, shadow_entry) = match order {
            std::cmp::Ordering::Equal => (live_keys.next().transpose()?, shadow_keys.next().transpose()?),
            std::cmp::Ordering::Less => (live_keys.next().transpose()?, None),
            std::cmp::Ordering::Greater => (None, shadow_keys.next().transpose()?),
        };
        if let Some((key, value)) = &live_entry {
            comparison.keys_live += 1;
            hash(&mut live_digest, key, value);
        }
        if let Some((key, value)) = &shadow_entry {
            comparison.keys_shadow += 1;
            hash(&mut shadow_digest, key, value);
        }
        let differs = match (&live_entry, &shadow_entry) {
            (Some((_, live_value)), Some((_, shadow_value))) => live_value != shadow_value,
            _ => true,
        };
        if differs {
            let key = live_entry.as_ref().or(shadow_entry.as_ref()).map(|(key, _)| key.clone()).unwrap_or_default();
            if let Some(user) = inbox_user(&key) {
                comparison.changed_users.insert(user);
            }
            if comparison.equal {
                let show = |entry: &Option<Entry>| {
                    entry.as_ref().map(|(_, value)| state_value::render(value).chars().take(300).collect::<String>())
                };
                comparison.first_difference =
                    Some(json!({"key": printable(&key), "live": show(&live_entry), "shadow": show(&shadow_entry)}));
            }
            comparison.equal = false;
        }
    }
    comparison.digest_live = hex::encode(live_digest.finalize());
    comparison.digest_shadow = hex::encode(shadow_digest.finalize());
    Ok(comparison)
}

/// Drops a projection and its tasks' positions from a stopped server's store.
fn drop_projection(args: &RebuildArgs, projection: &Projection) -> anyhow::Result<()> {
    let path = store_path(&args.source.data_dir);
    let db = missive_infra::db::open_db(&path)
        .with_context(|| format!("cannot open {}; stop the server using it first", path.display()))?;
    let task_prefix = format!("__task/{}-", projection.processor).into_bytes();
    let state = family(&db, CF_STATE);
    let mut batch = WriteBatch::default();
    let mut dropped = 0usize;
    for prefix in [projection.prefix, task_prefix.as_slice()] {
        for item in keys_under(&db, prefix) {
            let (key, _) = item?;
            batch.delete_cf(state, &key);
            dropped += 1;
            // Bounded batches: a directory of millions of accounts is not held in memory at once.
            if batch.len() >= 10_000 {
                db.write(std::mem::take(&mut batch))?;
            }
        }
    }
    db.write(batch)?;
    db.flush_cf(state)?;
    println!("{}: dropped {dropped} keys; the next start refolds it from the log", args.projection);
    Ok(())
}

/// Records folded per commit: larger than a live task's batches (no one
/// waits for a rebuild's single record), bounded for memory.
const FOLD_BATCH: usize = 32_768;

/// Folds one partition of the source topic into the shadow up to `until`;
/// the handler runs on a blocking thread, one batch at a time.
async fn fold_partition(
    log: Arc<dyn Log>,
    shadow: Arc<DB>,
    spec: TaskSpec,
    mut handler: Box<dyn Handler>,
    until: Offset,
    done: Arc<AtomicU64>,
    cores: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    let marks = log.watermarks(&spec.input).await?;
    if marks.low.0 > 0 {
        bail!(
            "{}: the log no longer holds offsets 0..{} (retention): {} cannot be rebuilt from it",
            spec.input,
            marks.low.0,
            spec.processor
        );
    }
    let metrics = RuntimeMetrics::new(&prometheus::Registry::new())?;
    let mut consumer = log.consumer(vec![(spec.input.clone(), Offset(0))]).await?;
    loop {
        let mut records = consumer.poll(FOLD_BATCH, Duration::from_secs(5)).await?;
        records.retain(|record| record.offset < until);
        if records.is_empty() {
            if consumer.position(&spec.input).is_some_and(|next| next >= until) {
                return Ok(());
            }
            continue;
        }
        let count = records.len() as u64;
        let (shadow, spec, metrics) = (shadow.clone(), spec.clone(), metrics.clone());
        // One folding batch per core at a time: more only contend.
        let _core = cores.acquire().await?;
        let (returned, result) = tokio::task::spawn_blocking(move || {
            let result = runtime::fold_offline(&shadow, &spec, handler.as_mut(), &records, &metrics);
            (handler, result)
        })
        .await?;
        handler = returned;
        let position = result?;
        done.fetch_add(count, Ordering::Relaxed);
        if position >= until {
            return Ok(());
        }
    }
}

pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let projection = projection(&args.projection)?;
    if args.drop {
        return drop_projection(&args, &projection);
    }
    let store = store_path(&args.source.data_dir);
    if !store.join("CURRENT").exists() {
        bail!("no Missive store at {}; pass the live store's --data-dir", store.display());
    }
    let scratch = std::env::temp_dir().join(format!("missive-rebuild-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let live = missive_infra::db::open_db_secondary(&store, &scratch)?;
    let log: Arc<dyn Log> = match &args.source.brokers {
        Some(brokers) => {
            let log = KafkaLog::connect(KafkaConfig::new(brokers.clone()))?;
            log.wait_ready(Duration::from_secs(30)).await.context("the Kafka cluster did not answer; check --kafka")?;
            Arc::new(log)
        }
        None => Arc::new(EmbeddedLog::open(live.clone(), false)?),
    };
    let codec = Arc::new(missive_registry::codec_from_log(log.clone()).await?);
    // The positions the live projection had reached, read in the same view as its state.
    let mut targets = Vec::new();
    for partition in 0..missive_processors::partitions_of(projection.topic) {
        let input = TopicPartition::new(projection.topic, partition);
        let position =
            runtime::stored_position(&live, projection.processor, input.clone()).map_err(anyhow::Error::msg)?;
        if position > 0 {
            targets.push((input, Offset(position)));
        }
    }
    let shadow_path = args.source.data_dir.join(format!("shadow-{}", args.projection));
    let _ = std::fs::remove_dir_all(&shadow_path);
    let shadow = missive_infra::db::open_scratch_db(&shadow_path)?;
    let total = targets.iter().map(|(_, until)| until.0).sum();
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let progress = crate::progress::Progress::start("rebuild", "records", total, done.clone());
    // Partitions fold in parallel, each with its own handler, as the live tasks do.
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let cores = Arc::new(tokio::sync::Semaphore::new(cores));
    let mut folds = Vec::new();
    for (input, until) in &targets {
        let spec = TaskSpec { processor: projection.processor, input: input.clone(), changelog: None };
        let handler = handler(&projection, codec.clone());
        let fold = fold_partition(log.clone(), shadow.clone(), spec, handler, *until, done.clone(), cores.clone());
        folds.push(tokio::spawn(fold));
    }
    for fold in folds {
        fold.await??;
    }
    progress.finish();
    let records = done.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    // Reading both stores whole is blocking work: off the async workers.
    let compared_from = Instant::now();
    let comparison = {
        let (live, shadow, prefix) = (live.clone(), shadow.clone(), projection.prefix);
        tokio::task::spawn_blocking(move || compare(&live, &shadow, prefix)).await??
    };
    let report = json!({
        "projection": args.projection,
        "records": records,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "records_per_second": (records as f64 / seconds.max(1e-3)).round(),
        "compare_seconds": (compared_from.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "positions": targets.iter().map(|(input, until)| json!({"partition": input.partition, "offset": until.0})).collect::<Vec<_>>(),
        "equal": comparison.equal,
        "keys": {"live": comparison.keys_live, "shadow": comparison.keys_shadow},
        "digest": {"live": comparison.digest_live, "shadow": comparison.digest_shadow},
        "first_difference": comparison.first_difference,
    });
    println!("{report}");
    drop(live);
    let _ = std::fs::remove_dir_all(&scratch);
    if args.swap {
        swap(&args, &projection, &shadow, &targets, &comparison.changed_users)?;
    } else if !comparison.equal {
        bail!(
            "the rebuilt {} differs from the live one (first difference above); --swap makes the rebuilt one live",
            args.projection
        );
    }
    drop(shadow);
    let _ = std::fs::remove_dir_all(&shadow_path);
    Ok(())
}

/// Replaces the live projection with the shadow in one write batch.
fn swap(
    args: &RebuildArgs,
    projection: &Projection,
    shadow: &DB,
    targets: &[(TopicPartition, Offset)],
    changed_users: &std::collections::BTreeSet<u64>,
) -> anyhow::Result<()> {
    let path = store_path(&args.source.data_dir);
    let live = missive_infra::db::open_db(&path).with_context(|| {
        format!(
            "cannot open {} to swap: stop the server (or gateway) using it, then run the rebuild again",
            path.display()
        )
    })?;
    let state = family(&live, CF_STATE);
    let mut batch = WriteBatch::default();
    // The tasks' positions and input dedupe marks come with the state; their
    // output sequence numbers stay the live ones (consumers deduplicate by
    // them: a restarted count would make later outputs look like repeats).
    for item in keys_under(&live, projection.prefix) {
        batch.delete_cf(state, item?.0);
    }
    for item in keys_under(shadow, projection.prefix) {
        let (key, value) = item?;
        batch.put_cf(state, &key, &value);
    }
    for (input, _) in targets {
        let spec = runtime::TaskSpec { processor: projection.processor, input: input.clone(), changelog: None };
        let Some(rebuilt) = runtime::stored_meta(shadow, &spec).map_err(anyhow::Error::msg)? else { continue };
        let mut swapped = runtime::stored_meta(&live, &spec).map_err(anyhow::Error::msg)?.unwrap_or_default();
        swapped.position = rebuilt.position;
        swapped.dedupe = rebuilt.dedupe;
        runtime::put_meta(&live, &mut batch, &spec, &swapped);
    }
    // Feeds that changed move to a new epoch: devices resuming the old one
    // are told `recovered: false` and resync.
    let salt = u64::try_from(missive_infra::now_ms()).unwrap_or(0);
    let mut bumped = 0;
    for user in changed_users {
        let key = keys::feed_header(missive_core::UserId(*user));
        if let Some(bytes) = shadow.get_cf(family(shadow, CF_STATE), &key)? {
            let mut feed: FeedState = state_value::decode(&bytes)?;
            let live_epoch = live
                .get_cf(state, &key)?
                .and_then(|bytes| state_value::decode::<FeedState>(&bytes).ok())
                .map_or(feed.epoch, |live| live.epoch);
            feed.epoch = Epoch::rebuilt(live_epoch.max(feed.epoch), salt);
            batch.put_cf(state, &key, state_value::encode(&feed)?);
            bumped += 1;
        }
    }
    live.write(batch)?;
    live.flush_cf(state)?;
    println!("{}", json!({"swapped": args.projection, "feeds_moved_to_a_new_epoch": bumped}));
    Ok(())
}
