//! The processor runtime: DESIGN.md's commit protocol.
//!
//! A task owns one partition of a processor's input topic. For each batch it
//! decodes and handles the records, then writes ONE RocksDB WriteBatch
//! holding the state changes, the new input position, the dedupe marks and
//! an outbox of output records; then it relays the outbox to the log and
//! forgets it. After a crash the task reloads its position, re-relays what
//! is still in the outbox and continues. Outputs carry `(source task, sseq)`
//! headers; consumers drop any `sseq` they have already applied, so a
//! re-relayed output is never applied twice. Handlers are deterministic
//! (time comes from record timestamps), so a re-sent output is identical.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_infra::codec::{decode_out_record, encode_out_record};
use missive_infra::db::{CF_OUTBOX, CF_STATE, family};
use missive_infra::{Header, Log, LogError, Offset, OutRecord, Record, StateWrite, TopicPartition};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use tokio_util::sync::CancellationToken;

use crate::topics::{CHANGELOG_PREFIX, DEAD_LETTERS, headers};
use crate::tx::Tx;

/// How often a task refreshes its lag gauge and mirrors its position to
/// the consumer group (for lag tools).
const MIRROR_EVERY: Duration = Duration::from_secs(5);

/// Most records handled in one batch (one WriteBatch, one relay).
pub const MAX_BATCH: usize = 1024;
/// Batches up to this size are handled on the async worker itself: the
/// hand-off to a blocking thread and back costs more than they take.
const INLINE_BATCH: usize = 64;

/// What went wrong while handling one record.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record cannot be processed (undecodable, impossible values): it
    /// goes to the dead-letter topic with its original bytes and the error.
    #[error("poison record: {0}")]
    Poison(String),
    /// The store failed: the batch is abandoned and the task stops.
    #[error("state storage failed: {0}")]
    Storage(String),
}

/// A processor's logic for one partition: decode, decide, write state, emit.
pub trait Handler: Send + 'static {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError>;

    /// Runs after the batch's last record, before it commits: a handler that
    /// keeps parsed state across records writes it back here.
    fn before_commit(&mut self, _tx: &mut Tx<'_>) -> Result<(), HandleError> {
        Ok(())
    }

    /// Runs after the batch is committed and its outputs relayed.
    fn after_commit(&mut self) {}
}

/// Identity and input of a task.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub processor: &'static str,
    pub input: TopicPartition,
    /// Kafka mode: the topic every state change is also written to, so a
    /// replacement instance with an empty store can restore this task.
    pub changelog: Option<String>,
}

impl TaskSpec {
    pub fn id(&self) -> String {
        format!("{}-{}", self.processor, self.input.partition)
    }

    /// The one key of the task's bookkeeping ([`TaskMeta`]).
    fn meta_key(&self) -> Vec<u8> {
        format!("__task/{}/meta", self.id()).into_bytes()
    }

    /// Keys of the bookkeeping as stores written before [`TaskMeta`] kept
    /// it in one key: `position`, `sseq`, and `dedupe/<source>` per source.
    fn legacy_key(&self, what: &str) -> Vec<u8> {
        format!("__task/{}/{}", self.id(), what).into_bytes()
    }

    fn outbox_prefix(&self) -> Vec<u8> {
        format!("{}/", self.id()).into_bytes()
    }

    fn outbox_key(&self, sseq: u64) -> Vec<u8> {
        let mut key = self.outbox_prefix();
        key.extend_from_slice(&sseq.to_be_bytes());
        key
    }
}

#[derive(Clone)]
pub struct RuntimeMetrics {
    records: IntCounterVec,
    dead_letters: IntCounterVec,
    lag: IntGaugeVec,
}

impl RuntimeMetrics {
    pub fn new(registry: &Registry) -> Result<RuntimeMetrics, prometheus::Error> {
        let records = IntCounterVec::new(
            Opts::new("missive_processor_records_total", "Input records handled by processors"),
            &["processor"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new("missive_processor_dead_letters_total", "Input records sent to the dead-letter topic"),
            &["processor"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new("missive_processor_lag_records", "Records between a task's position and its partition's end"),
            &["processor", "partition"],
        )?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        Ok(RuntimeMetrics { records, dead_letters, lag })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("log: {0}")]
    Log(#[from] LogError),
    #[error("task {task}: {source}")]
    Handle { task: String, source: HandleError },
    #[error("task {task}: store: {detail}")]
    Store { task: String, detail: String },
}

/// Durable bookkeeping of a task, loaded at start and advanced per batch:
/// its input position, its next output sequence number and the highest
/// sequence number applied per source. Every commit rewrites it whole as
/// ONE key (a few hundred bytes), instead of a key for the position, one
/// for the sequence and one per source that sent something.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskMeta {
    pub position: Offset,
    pub next_sseq: u64,
    pub dedupe: BTreeMap<String, u64>,
    /// Loaded from the older keys: the next commit deletes them.
    legacy: bool,
}

/// The version byte of [`TaskMeta`]'s encoding.
const META_V1: u8 = 1;

impl Default for TaskMeta {
    fn default() -> TaskMeta {
        TaskMeta { position: Offset(0), next_sseq: 1, dedupe: BTreeMap::new(), legacy: false }
    }
}

impl TaskMeta {
    /// `1`, position, next sseq (u64 BE), the number of sources (u16 BE),
    /// then per source: name length (u16 BE), name, highest applied sseq
    /// (u64 BE).
    fn encode(&self, next_sseq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.dedupe.keys().map(|source| source.len() + 10).sum::<usize>());
        out.push(META_V1);
        out.extend_from_slice(&self.position.0.to_be_bytes());
        out.extend_from_slice(&next_sseq.to_be_bytes());
        let sources = self.dedupe.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(sources as u16).to_be_bytes());
        for (source, seen) in self.dedupe.iter().take(sources) {
            let name = &source.as_bytes()[..source.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&seen.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<TaskMeta, String> {
        let corrupt =
            || "corrupt task bookkeeping (delete the task's __task/ keys and rebuild the projection)".to_string();
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let slice = bytes.get(at..at + n).ok_or_else(corrupt)?;
            at += n;
            Ok(slice)
        };
        let u64_of = |slice: &[u8]| u64::from_be_bytes(slice.try_into().unwrap_or_default());
        let version = take(1)?[0];
        if version != META_V1 {
            return Err(format!("task bookkeeping of version {version} is newer than this build"));
        }
        let position = Offset(u64_of(take(8)?));
        let next_sseq = u64_of(take(8)?);
        let u16_of = |slice: &[u8]| usize::from(u16::from_be_bytes(slice.try_into().unwrap_or_default()));
        let sources = u16_of(take(2)?);
        let mut dedupe = BTreeMap::new();
        for _ in 0..sources {
            let len = u16_of(take(2)?);
            let source = String::from_utf8(take(len)?.to_vec()).map_err(|_| corrupt())?;
            dedupe.insert(source, u64_of(take(8)?));
        }
        if at != bytes.len() {
            return Err(corrupt());
        }
        Ok(TaskMeta { position, next_sseq, dedupe, legacy: false })
    }
}

fn read_u64(db: &DB, key: &[u8]) -> Result<Option<u64>, String> {
    match db.get_cf(family(db, CF_STATE), key).map_err(|error| error.to_string())? {
        Some(bytes) if bytes.len() == 8 => Ok(Some(u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default()))),
        Some(_) => Err(format!("corrupt counter at {}", String::from_utf8_lossy(key))),
        None => Ok(None),
    }
}

/// The input position a task has committed (0 if it never ran here).
pub fn stored_position(db: &DB, processor: &'static str, input: TopicPartition) -> Result<u64, String> {
    let spec = TaskSpec { processor, input, changelog: None };
    Ok(stored_meta(db, &spec)?.map_or(0, |meta| meta.position.0))
}

/// A task's bookkeeping as committed, if it ever committed here.
pub fn stored_meta(db: &DB, spec: &TaskSpec) -> Result<Option<TaskMeta>, String> {
    if let Some(bytes) = db.get_cf(family(db, CF_STATE), spec.meta_key()).map_err(|error| error.to_string())? {
        return TaskMeta::decode(&bytes).map(Some);
    }
    let Some(position) = read_u64(db, &spec.legacy_key("position"))? else { return Ok(None) };
    let next_sseq = read_u64(db, &spec.legacy_key("sseq"))?.unwrap_or(1);
    let prefix = spec.legacy_key("dedupe/");
    let mut dedupe = BTreeMap::new();
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, value) = item.map_err(|error| error.to_string())?;
        if !key.starts_with(&prefix) {
            break;
        }
        let source = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        let seen = u64::from_be_bytes(value.as_ref().try_into().map_err(|_| "corrupt dedupe mark".to_string())?);
        dedupe.insert(source, seen);
    }
    Ok(Some(TaskMeta { position: Offset(position), next_sseq, dedupe, legacy: true }))
}

/// Adds to `batch` the writes that make `meta` the task's bookkeeping
/// (for tools that move positions while the task is stopped).
pub fn put_meta(db: &DB, batch: &mut WriteBatch, spec: &TaskSpec, meta: &TaskMeta) {
    let state = family(db, CF_STATE);
    for write in meta_writes(spec, meta, meta.next_sseq) {
        match write.value {
            Some(value) => batch.put_cf(state, write.key, value),
            None => batch.delete_cf(state, write.key),
        }
    }
}

/// The bookkeeping key with `next_sseq`, after deletes of the older keys
/// when `meta` was loaded from them.
fn meta_writes(spec: &TaskSpec, meta: &TaskMeta, next_sseq: u64) -> Vec<StateWrite> {
    let mut writes = legacy_deletes(spec, meta);
    writes.push(StateWrite { key: spec.meta_key(), value: Some(meta.encode(next_sseq)) });
    writes
}

/// Deletes of the older bookkeeping keys, when `meta` was loaded from them.
fn legacy_deletes(spec: &TaskSpec, meta: &TaskMeta) -> Vec<StateWrite> {
    if !meta.legacy {
        return Vec::new();
    }
    let sources = meta.dedupe.keys().map(|source| format!("dedupe/{source}"));
    ["position".to_string(), "sseq".to_string()]
        .into_iter()
        .chain(sources)
        .map(|what| StateWrite { key: spec.legacy_key(&what), value: None })
        .collect()
}

/// Folds `records` (of one input partition, in order, from the task's
/// position on) into `db` with the commit protocol of a running task:
/// state and position in one batch. For shadow rebuilds: what the handler
/// emits is dropped (a rebuild's outputs were written by the live run).
/// Returns the position after.
pub fn fold_offline(
    db: &DB,
    spec: &TaskSpec,
    handler: &mut dyn Handler,
    records: &[Record],
    metrics: &RuntimeMetrics,
) -> Result<Offset, RuntimeError> {
    let mut meta = load_meta(db, spec).map_err(|detail| RuntimeError::Store { task: spec.id(), detail })?;
    let mut prepared = prepare_batch(db, spec, &mut meta, handler, records, metrics)?;
    prepared.outputs.clear();
    // A shadow store is thrown away when a rebuild fails: no write-ahead log.
    let mut scratch = WriteOptions::default();
    scratch.disable_wal(true);
    commit_to_outbox(db, spec, prepared, Vec::new(), 0, &scratch)?;
    handler.after_commit();
    Ok(meta.position)
}

/// The key prefix of everything a task keeps about itself (position, dedupe marks).
pub fn task_prefix(processor: &str, partition: u32) -> Vec<u8> {
    format!("__task/{processor}-{partition}/").into_bytes()
}

fn load_meta(db: &DB, spec: &TaskSpec) -> Result<TaskMeta, String> {
    Ok(stored_meta(db, spec)?.unwrap_or_default())
}

/// Output records still in the outbox, in sseq order.
fn load_outbox(db: &DB, spec: &TaskSpec) -> Result<Vec<(u64, OutRecord)>, String> {
    let prefix = spec.outbox_prefix();
    let mut pending = Vec::new();
    for item in db.iterator_cf(family(db, CF_OUTBOX), IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, value) = item.map_err(|error| error.to_string())?;
        if !key.starts_with(&prefix) {
            break;
        }
        let sseq = u64::from_be_bytes(key[prefix.len()..].try_into().map_err(|_| "corrupt outbox key".to_string())?);
        let record = decode_out_record(&value).ok_or_else(|| "corrupt outbox record".to_string())?;
        pending.push((sseq, record));
    }
    Ok(pending)
}

fn header_u64(record: &Record, name: &str) -> Option<u64> {
    record.header(name).and_then(|bytes| bytes.try_into().ok()).map(u64::from_be_bytes)
}

/// Handles one batch and commits it. Runs on a blocking thread.
/// Headers a dead letter gets anew rather than from the record it holds.
pub const DEAD_LETTER_OWN_HEADERS: [&str; 5] =
    [headers::ERROR, headers::ORIGIN, headers::SOURCE, headers::SOURCE_SEQ, headers::EVENT_ID];

/// What one batch commits: every state change (the handler's, then the
/// task's position, output sequence and dedupe marks) and the output
/// records, stamped with their `(source, sseq)` headers; in Kafka mode the
/// changelog copy of the state changes rides last among the outputs.
struct Prepared {
    writes: Vec<StateWrite>,
    outputs: Vec<OutRecord>,
}

/// Handles one batch: decides every record and assembles what the batch
/// commits, without writing anything. Runs on a blocking thread.
fn prepare_batch(
    db: &DB,
    spec: &TaskSpec,
    meta: &mut TaskMeta,
    handler: &mut dyn Handler,
    records: &[Record],
    metrics: &RuntimeMetrics,
) -> Result<Prepared, RuntimeError> {
    let task = spec.id();
    let mut tx = Tx::new(db);
    let mut dead = 0u64;
    for record in records {
        meta.position = Offset(record.offset.0 + 1);
        if let (Some(source), Some(sseq)) = (record.header(headers::SOURCE), header_u64(record, headers::SOURCE_SEQ)) {
            let source = String::from_utf8_lossy(source);
            // Marks are looked up by reference: a source's name is copied only when first seen.
            match meta.dedupe.get_mut(source.as_ref()) {
                Some(seen) if sseq <= *seen => continue,
                Some(seen) => *seen = sseq,
                None => {
                    meta.dedupe.insert(source.into_owned(), sseq);
                }
            }
        }
        tx.timestamp = record.timestamp;
        match handler.handle(&mut tx, record) {
            Ok(()) => {}
            Err(HandleError::Poison(reason)) => {
                dead += 1;
                tracing::warn!(task, topic = %record.topic, partition = record.partition, offset = %record.offset, %reason, "dead-lettering record");
                // The record's own headers come along (a reply address, a
                // re-drive mark), except those this output gets anew.
                let mut kept: Vec<Header> = record
                    .headers
                    .iter()
                    .filter(|header| !DEAD_LETTER_OWN_HEADERS.contains(&header.key.as_str()))
                    .cloned()
                    .collect();
                kept.push(Header { key: headers::ERROR.into(), value: reason.into_bytes() });
                kept.push(Header {
                    key: headers::ORIGIN.into(),
                    value: format!("{}/{}@{}", record.topic, record.partition, record.offset).into_bytes(),
                });
                tx.emit(OutRecord {
                    topic: DEAD_LETTERS.into(),
                    partition: None,
                    key: record.key.clone(),
                    value: record.value.clone(),
                    headers: kept,
                    timestamp: Some(record.timestamp),
                });
            }
            Err(error) => return Err(RuntimeError::Handle { task, source: error }),
        }
    }
    handler.before_commit(&mut tx).map_err(|source| RuntimeError::Handle { task: task.clone(), source })?;
    let (state_writes, mut outputs) = tx.into_parts();
    let mut writes: Vec<StateWrite> = state_writes.into_iter().map(|(key, value)| StateWrite { key, value }).collect();
    // The changelog copy of this batch's state changes goes behind the
    // outputs (relayed after them), so a restored state never claims a
    // position whose outputs were not written.
    // A batch without input only clears the outbox: nothing to log.
    let changelog = spec.changelog.as_ref().filter(|_| !records.is_empty());
    // The bookkeeping's writes are known in number before its value (which
    // holds the sequence number after the changelog copies) is.
    let mut bookkeeping = legacy_deletes(spec, meta);
    let changelog_len = changelog.map_or(0, |_| writes.len() + bookkeeping.len() + 1);
    let final_sseq = meta.next_sseq + (outputs.len() + changelog_len) as u64;
    bookkeeping.push(StateWrite { key: spec.meta_key(), value: Some(meta.encode(final_sseq)) });
    meta.legacy = false;
    if let Some(topic) = changelog {
        let timestamp = records.last().map(|record| record.timestamp);
        let change = |write: &StateWrite| OutRecord {
            topic: topic.clone(),
            partition: Some(spec.input.partition),
            key: write.key.clone(),
            // An empty value deletes the key when restored.
            value: write.value.clone().unwrap_or_default(),
            headers: Vec::new(),
            timestamp,
        };
        let changes: Vec<OutRecord> = writes.iter().chain(bookkeeping.iter()).map(change).collect();
        outputs.extend(changes);
    }
    writes.extend(bookkeeping);
    for output in &mut outputs {
        let sseq = meta.next_sseq;
        meta.next_sseq += 1;
        output.headers.push(Header { key: headers::SOURCE.into(), value: task.clone().into_bytes() });
        output.headers.push(Header { key: headers::SOURCE_SEQ.into(), value: sseq.to_be_bytes().to_vec() });
        output.headers.push(Header { key: headers::EVENT_ID.into(), value: format!("{task}:{sseq}").into_bytes() });
    }
    debug_assert_eq!(meta.next_sseq, final_sseq);
    metrics.records.with_label_values(&[spec.processor]).inc_by(records.len() as u64);
    if dead > 0 {
        metrics.dead_letters.with_label_values(&[spec.processor]).inc_by(dead);
    }
    Ok(Prepared { writes, outputs })
}

/// Commits a prepared batch through the outbox (Kafka mode, and shadow
/// rebuilds): state, position and outputs in one WriteBatch, clearing the
/// outbox entries known to be relayed. Returns the outputs to relay.
fn commit_to_outbox(
    db: &DB,
    spec: &TaskSpec,
    prepared: Prepared,
    relayed: Vec<std::ops::RangeInclusive<u64>>,
    first_sseq: u64,
    write: &WriteOptions,
) -> Result<Vec<OutRecord>, RuntimeError> {
    let mut batch = WriteBatch::default();
    let state = family(db, CF_STATE);
    let outbox = family(db, CF_OUTBOX);
    // Point deletes, not a range delete: RocksDB re-fragments every range
    // tombstone in a memtable on each new one, which grew quadratically and
    // stalled the server under sustained load.
    for range in relayed {
        for sseq in range {
            batch.delete_cf(outbox, spec.outbox_key(sseq));
        }
    }
    for write in &prepared.writes {
        match &write.value {
            Some(value) => batch.put_cf(state, &write.key, value),
            None => batch.delete_cf(state, &write.key),
        }
    }
    for (sseq, output) in (first_sseq..).zip(&prepared.outputs) {
        batch.put_cf(outbox, spec.outbox_key(sseq), encode_out_record(output));
    }
    db.write_opt(batch, write).map_err(|error| RuntimeError::Store { task: spec.id(), detail: error.to_string() })?;
    Ok(prepared.outputs)
}

/// Handles one batch and commits it through the outbox (see
/// [`commit_to_outbox`]). Runs on a blocking thread.
#[allow(clippy::too_many_arguments)] // one call per kind of commit; a struct would only rename them
fn process_batch(
    db: &DB,
    spec: &TaskSpec,
    meta: &mut TaskMeta,
    handler: &mut dyn Handler,
    records: &[Record],
    relayed: Vec<std::ops::RangeInclusive<u64>>,
    metrics: &RuntimeMetrics,
    write: &WriteOptions,
) -> Result<Vec<OutRecord>, RuntimeError> {
    let first_sseq = meta.next_sseq;
    let prepared = prepare_batch(db, spec, meta, handler, records, metrics)?;
    commit_to_outbox(db, spec, prepared, relayed, first_sseq, write)
}

async fn blocking<T: Send + 'static>(
    task: &str,
    work: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| RuntimeError::Store {
        task: task.to_string(),
        detail: format!("blocking task failed: {error}"),
    })?
}

/// Appends outputs, then the changelog records behind them.
async fn relay(log: &dyn Log, outputs: Vec<OutRecord>, cancel: &CancellationToken) -> Result<(), RuntimeError> {
    let (changes, outputs): (Vec<OutRecord>, Vec<OutRecord>) =
        outputs.into_iter().partition(|record| record.topic.starts_with(CHANGELOG_PREFIX));
    append_retrying(log, outputs, cancel).await?;
    append_retrying(log, changes, cancel).await
}

/// Appends records, retrying transient failures until cancelled.
async fn append_retrying(
    log: &dyn Log,
    outputs: Vec<OutRecord>,
    cancel: &CancellationToken,
) -> Result<(), RuntimeError> {
    if outputs.is_empty() {
        return Ok(());
    }
    let mut delay = Duration::from_millis(50);
    loop {
        match log.append(outputs.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_retriable() && !cancel.is_cancelled() => {
                tracing::warn!(%error, "relay failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A changelog append in flight and the outbox range it carries.
type ChangelogJob = (tokio::task::JoinHandle<Result<(), RuntimeError>>, std::ops::RangeInclusive<u64>);

/// Waits for an in-flight changelog append; returns its outbox range
/// (an empty one when nothing was in flight).
async fn finish_changelog(
    task: &str,
    job: Option<ChangelogJob>,
) -> Result<std::ops::RangeInclusive<u64>, RuntimeError> {
    #[allow(clippy::reversed_empty_ranges)]
    let Some((job, range)) = job else { return Ok(1..=0) };
    job.await.map_err(|error| RuntimeError::Store {
        task: task.to_string(),
        detail: format!("changelog relay failed: {error}"),
    })??;
    Ok(range)
}

/// A task whose store has never seen it (a new instance, a lost disk)
/// rebuilds its state, position and dedupe marks from its changelog
/// partition instead of replaying its input from the beginning.
async fn restore_from_changelog(
    log: &dyn Log,
    db: &Arc<DB>,
    spec: &TaskSpec,
    topic: &str,
    cancel: &CancellationToken,
) -> Result<(), RuntimeError> {
    let task = spec.id();
    let known = {
        let (db, spec) = (db.clone(), spec.clone());
        blocking(&task, move || {
            stored_meta(&db, &spec).map_err(|detail| RuntimeError::Store { task: String::new(), detail })
        })
        .await?
    };
    if known.is_some() {
        return Ok(());
    }
    let partition = TopicPartition::new(topic, spec.input.partition);
    let marks = log.watermarks(&partition).await?;
    if marks.high <= marks.low {
        return Ok(());
    }
    tracing::info!(task, %partition, records = marks.high.0 - marks.low.0, "restoring state from the changelog");
    let mut consumer = log.consumer(vec![(partition.clone(), marks.low)]).await?;
    let mut next = marks.low;
    let mut restored = 0u64;
    let mut end = marks.high;
    while next < end && !cancel.is_cancelled() {
        let records = consumer.poll(MAX_BATCH, Duration::from_secs(5)).await?;
        let Some(last) = records.last() else {
            // Nothing for a while below the end read at the start: read the
            // end again (it is done if the partition ends here) and fetch
            // again from the position, in case the consumer missed a wake-up.
            end = log.watermarks(&partition).await?.high;
            if next < end {
                tracing::warn!(task, %partition, at = next.0, end = end.0, "restoring: no records for 5 s below the changelog's end; fetching again");
                consumer.seek(&partition, next)?;
            }
            continue;
        };
        next = Offset(last.offset.0 + 1);
        restored += records.len() as u64;
        let db = db.clone();
        blocking(&task, move || {
            let mut batch = WriteBatch::default();
            let state = family(&db, CF_STATE);
            for record in &records {
                if record.value.is_empty() {
                    batch.delete_cf(state, &record.key);
                } else {
                    batch.put_cf(state, &record.key, &record.value);
                }
            }
            db.write(batch).map_err(|error| RuntimeError::Store { task: String::new(), detail: error.to_string() })
        })
        .await?;
    }
    tracing::info!(task, restored, "state restored from the changelog");
    Ok(())
}

/// Now and then, not per batch, and off the processing path (on Kafka both
/// are broker round trips): refreshes the lag gauge and mirrors the
/// position to the consumer group for lag tools.
fn mirror_now_and_then(
    log: &Arc<dyn Log>,
    mirror: &mut Option<tokio::task::JoinHandle<()>>,
    last_mirror: &mut Instant,
    lag: &prometheus::IntGauge,
    group: &str,
    input: &TopicPartition,
    position: Offset,
) {
    if last_mirror.elapsed() <= MIRROR_EVERY || mirror.as_ref().is_some_and(|job| !job.is_finished()) {
        return;
    }
    *last_mirror = Instant::now();
    let (log, lag, group, input) = (log.clone(), lag.clone(), group.to_string(), input.clone());
    *mirror = Some(tokio::spawn(async move {
        if let Ok(marks) = log.watermarks(&input).await {
            lag.set(marks.high.0.saturating_sub(position.0) as i64);
        }
        if let Err(error) = log.commit_positions(&group, &[(input, position)]).await {
            tracing::debug!(%error, "mirroring positions failed");
        }
    }));
}

/// Runs one task until `cancel` fires or an unrecoverable error occurs.
pub async fn run_task(
    log: Arc<dyn Log>,
    db: Arc<DB>,
    spec: TaskSpec,
    mut handler: Box<dyn Handler>,
    metrics: RuntimeMetrics,
    cancel: CancellationToken,
) -> Result<(), RuntimeError> {
    let task = spec.id();
    if let Some(topic) = &spec.changelog {
        restore_from_changelog(log.as_ref(), &db, &spec, topic, &cancel).await?;
    }
    let (mut meta, pending) = {
        let db = db.clone();
        let spec = spec.clone();
        blocking(&task, move || {
            let meta = load_meta(&db, &spec).map_err(|detail| RuntimeError::Store { task: spec.id(), detail })?;
            let pending = load_outbox(&db, &spec).map_err(|detail| RuntimeError::Store { task: spec.id(), detail })?;
            Ok((meta, pending))
        })
        .await?
    };
    // Outbox entries known to be in the log, to clear with the next batch.
    let mut relayed: Vec<std::ops::RangeInclusive<u64>> = Vec::new();
    // Re-relay what a crash left in the outbox; consumers drop duplicates.
    if let (Some((first, _)), Some((last, _))) = (pending.first(), pending.last()) {
        relayed.push(*first..=*last);
        tracing::info!(task, records = pending.len(), "re-relaying outbox after restart");
        relay(log.as_ref(), pending.into_iter().map(|(_, record)| record).collect(), &cancel).await?;
        handler.after_commit();
        if log.atomic().is_some() {
            // A store written before atomic commits: clear its outbox now.
            let (db, spec, relayed) = (db.clone(), spec.clone(), std::mem::take(&mut relayed));
            blocking(&task, move || {
                let nothing = Prepared { writes: Vec::new(), outputs: Vec::new() };
                commit_to_outbox(&db, &spec, nothing, relayed, 0, &WriteOptions::default()).map(|_| ())
            })
            .await?;
        }
    }
    // The changelog append of the previous batch, still in flight: the task
    // does not wait for it before the next batch, only before the next
    // changelog append (changelog order is batch order), and its outbox
    // entries stay until it is acknowledged.
    let mut changelog: Option<ChangelogJob> = None;
    let mut consumer = log.consumer(vec![(spec.input.clone(), meta.position)]).await?;
    let lag = metrics.lag.with_label_values(&[spec.processor, &spec.input.partition.to_string()]);
    let mut last_mirror = Instant::now();
    let mut mirror: Option<tokio::task::JoinHandle<()>> = None;
    let group = spec.processor.to_string();
    tracing::debug!(task, position = %meta.position, "task started");
    // Made once: a new one per batch locks the token and registers a waiter.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let records = tokio::select! {
            _ = &mut cancelled => break,
            polled = consumer.poll(MAX_BATCH, Duration::from_millis(500)) => polled?,
        };
        if changelog.as_ref().is_some_and(|(job, _)| job.is_finished()) {
            relayed.push(finish_changelog(&task, changelog.take()).await?);
        }
        if records.is_empty() && relayed.is_empty() {
            continue;
        }
        // Embedded mode: state, position and outputs in one write through
        // the log itself; no outbox, nothing to relay.
        if let Some(atomic) = log.atomic() {
            let prepared = if records.len() <= INLINE_BATCH {
                prepare_batch(&db, &spec, &mut meta, handler.as_mut(), &records, &metrics)?
            } else {
                let moved_meta = std::mem::take(&mut meta);
                let (returned_handler, returned_meta, prepared) = {
                    let (db, spec, metrics) = (db.clone(), spec.clone(), metrics.clone());
                    blocking(&task, move || {
                        let mut meta = moved_meta;
                        let prepared = prepare_batch(&db, &spec, &mut meta, handler.as_mut(), &records, &metrics)?;
                        Ok((handler, meta, prepared))
                    })
                    .await?
                };
                (handler, meta) = (returned_handler, returned_meta);
                prepared
            };
            atomic.commit(prepared.writes, prepared.outputs).await?;
            handler.after_commit();
            mirror_now_and_then(&log, &mut mirror, &mut last_mirror, &lag, &group, &spec.input, meta.position);
            continue;
        }
        let moved_meta = std::mem::take(&mut meta);
        let (returned_handler, returned_meta, outputs) = {
            let db = db.clone();
            let spec = spec.clone();
            let metrics = metrics.clone();
            let relayed = std::mem::take(&mut relayed);
            blocking(&task, move || {
                let mut meta = moved_meta;
                let durable = WriteOptions::default();
                let outputs =
                    process_batch(&db, &spec, &mut meta, handler.as_mut(), &records, relayed, &metrics, &durable)?;
                Ok((handler, meta, outputs))
            })
            .await?
        };
        handler = returned_handler;
        meta = returned_meta;
        if !outputs.is_empty() {
            let first = meta.next_sseq - outputs.len() as u64;
            // process_batch puts the changelog records last.
            let (outputs, changes): (Vec<OutRecord>, Vec<OutRecord>) =
                outputs.into_iter().partition(|record| !record.topic.starts_with(CHANGELOG_PREFIX));
            let split = first + outputs.len() as u64;
            if !outputs.is_empty() {
                append_retrying(log.as_ref(), outputs, &cancel).await?;
                relayed.push(first..=split - 1);
            }
            if !changes.is_empty() {
                if changelog.is_some() {
                    relayed.push(finish_changelog(&task, changelog.take()).await?);
                }
                let (log, cancel) = (log.clone(), cancel.clone());
                let job = tokio::spawn(async move { append_retrying(log.as_ref(), changes, &cancel).await });
                changelog = Some((job, split..=meta.next_sseq - 1));
            }
        }
        handler.after_commit();
        mirror_now_and_then(&log, &mut mirror, &mut last_mirror, &lag, &group, &spec.input, meta.position);
    }
    if changelog.is_some() {
        let _ = finish_changelog(&task, changelog.take()).await;
    }
    let _ = log.commit_positions(&group, &[(spec.input.clone(), meta.position)]).await;
    tracing::debug!(task, position = %meta.position, "task stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The commit protocol does not depend on how records are batched: any
    //! chunking of the same input, with a reload of the task's bookkeeping
    //! between batches (a restart), yields the same state and outputs.

    use std::sync::Arc;

    use missive_core::conversation::{ConversationCommand, MarkReceipt, ReceiptStatus, SendMessage};
    use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, UserId};
    use missive_infra::db::{CF_STATE, family, open_db};
    use missive_infra::{Offset, Record, TopicPartition};
    use missive_schemas::convert::conversation_command_to_wire;
    use missive_schemas::{Codec, RecordType};
    use proptest::prelude::*;
    use rocksdb::IteratorMode;

    use super::*;
    use crate::conversation::ConversationHandler;

    fn codec() -> Arc<Codec> {
        let ids: Vec<(RecordType, u32)> = RecordType::ALL.iter().enumerate().map(|(i, t)| (*t, i as u32 + 1)).collect();
        Arc::new(Codec::new(&ids).expect("schemas parse"))
    }

    #[derive(Clone, Debug)]
    enum Op {
        Send { from_alice: bool, client_id: u8 },
        Read { by_alice: bool, up_to: u64 },
    }

    #[test]
    fn the_bookkeeping_is_one_key_and_stores_of_the_older_keys_move_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open_db(dir.path()).expect("db");
        let state = family(&db, CF_STATE);
        let spec = TaskSpec { processor: "inbox", input: TopicPartition::new("deliveries", 3), changelog: None };
        assert_eq!(stored_meta(&db, &spec).expect("read"), None, "a task that never ran has none");
        // A store written before: position, sseq and a dedupe mark per source.
        db.put_cf(state, spec.legacy_key("position"), 41u64.to_be_bytes()).expect("put");
        db.put_cf(state, spec.legacy_key("sseq"), 7u64.to_be_bytes()).expect("put");
        db.put_cf(state, spec.legacy_key("dedupe/conversation-2"), 90u64.to_be_bytes()).expect("put");
        db.put_cf(state, spec.legacy_key("dedupe/users-0"), 5u64.to_be_bytes()).expect("put");
        let mut meta = stored_meta(&db, &spec).expect("read").expect("legacy bookkeeping");
        assert_eq!((meta.position, meta.next_sseq, meta.dedupe.len()), (Offset(41), 7, 2));
        meta.position = Offset(50);
        let mut batch = WriteBatch::default();
        put_meta(&db, &mut batch, &spec, &meta);
        db.write(batch).expect("write");
        let keys: Vec<String> = db
            .iterator_cf(state, IteratorMode::Start)
            .map(|item| String::from_utf8_lossy(&item.expect("key").0).into_owned())
            .collect();
        assert_eq!(keys, vec!["__task/inbox-3/meta".to_string()], "one key left");
        let reloaded = stored_meta(&db, &spec).expect("read").expect("bookkeeping");
        assert_eq!((reloaded.position, reloaded.next_sseq), (Offset(50), 7));
        assert_eq!(reloaded.dedupe, meta.dedupe);
        assert_eq!(stored_position(&db, "inbox", TopicPartition::new("deliveries", 3)).expect("position"), 50);
        // Truncated or unknown encodings are refused, never misread.
        let bytes = reloaded.encode(7);
        assert_eq!(TaskMeta::decode(&bytes).expect("decode"), reloaded);
        for cut in 0..bytes.len() {
            assert!(TaskMeta::decode(&bytes[..cut]).is_err(), "a cut at {cut} decoded");
        }
        assert!(TaskMeta::decode(&[bytes.as_slice(), b"x"].concat()).is_err(), "trailing bytes decoded");
        assert!(TaskMeta::decode(&[2]).is_err(), "an unknown version decoded");
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), 0u8..12).prop_map(|(from_alice, client_id)| Op::Send { from_alice, client_id }),
            1 => (any::<bool>(), 0u64..40).prop_map(|(by_alice, up_to)| Op::Read { by_alice, up_to }),
        ]
    }

    /// The `index`-th input record of a partition, stamped deterministically.
    fn input_record(topic: &str, index: usize, key: u64, value: &missive_schemas::WireValue, codec: &Codec) -> Record {
        Record::from(missive_infra::RecordData {
            topic: topic.into(),
            partition: 0,
            offset: Offset(index as u64),
            timestamp: 1_800_000_000_000 + index as i64,
            key: key.to_string().into_bytes(),
            value: codec.encode_value(value).expect("encode"),
            headers: vec![],
        })
    }

    fn records(codec: &Codec, ops: &[Op]) -> Vec<Record> {
        let (alice, bob) = (UserId(11), UserId(22));
        let conversation_id = ConversationId::direct(alice, bob);
        ops.iter()
            .enumerate()
            .map(|(index, op)| {
                let command = match op {
                    Op::Send { from_alice, client_id } => {
                        let (from, to) = if *from_alice { (alice, bob) } else { (bob, alice) };
                        ConversationCommand::Send(SendMessage {
                            conversation_id,
                            message_id: MessageId(1000 + index as u64),
                            from,
                            from_device: DeviceId(from.0),
                            to,
                            client_msg_id: format!("c{client_id}"),
                            content: format!("m{index}"),
                            reply_to: None,
                            forward_count: 0,
                            attachment: None,
                        })
                    }
                    Op::Read { by_alice, up_to } => ConversationCommand::Receipt(MarkReceipt {
                        conversation_id,
                        by: if *by_alice { alice } else { bob },
                        status: ReceiptStatus::Read,
                        up_to: ConvSeq(*up_to),
                        notify: true,
                    }),
                };
                input_record(
                    "commands.conversation",
                    index,
                    conversation_id.0,
                    &conversation_command_to_wire(&command),
                    codec,
                )
            })
            .collect()
    }

    /// Runs the records in the given chunk sizes; returns (state dump, outputs).
    fn run(records: &[Record], chunks: &[usize], codec: Arc<Codec>) -> (Vec<crate::tx::KeyValue>, Vec<OutRecord>) {
        let spec = TaskSpec {
            processor: "conversation",
            input: TopicPartition::new("commands.conversation", 0),
            changelog: None,
        };
        let replies = crate::common::Replier::new(codec.clone(), Default::default());
        run_with(records, chunks, &spec, &mut ConversationHandler::new(codec, Default::default(), replies))
    }

    fn run_with(
        records: &[Record],
        chunks: &[usize],
        spec: &TaskSpec,
        handler: &mut dyn Handler,
    ) -> (Vec<crate::tx::KeyValue>, Vec<OutRecord>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open_db(dir.path()).expect("db");
        let metrics = RuntimeMetrics::new(&Registry::new()).expect("metrics");
        let mut outputs = Vec::new();
        let mut start = 0;
        let mut sizes = chunks.iter().cycle();
        while start < records.len() {
            let size = (*sizes.next().unwrap_or(&1)).max(1).min(records.len() - start);
            let mut meta = load_meta(&db, spec).expect("meta");
            outputs.extend(
                process_batch(
                    &db,
                    spec,
                    &mut meta,
                    handler,
                    &records[start..start + size],
                    Vec::new(),
                    &metrics,
                    &WriteOptions::default(),
                )
                .expect("batch"),
            );
            handler.after_commit();
            start += size;
        }
        let state = db
            .iterator_cf(family(&db, CF_STATE), IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("read"))
            .collect();
        (state, outputs)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn any_chunking_of_the_same_input_gives_the_same_state_and_outputs(
            ops in proptest::collection::vec(op(), 1..60),
            chunks in proptest::collection::vec(1usize..9, 1..6),
        ) {
            let codec = codec();
            let input = records(&codec, &ops);
            let (state_whole, outputs_whole) = run(&input, &[input.len()], codec.clone());
            let (state_chunked, outputs_chunked) = run(&input, &chunks, codec);
            prop_assert_eq!(state_whole, state_chunked);
            prop_assert_eq!(outputs_whole, outputs_chunked);
        }
    }

    #[derive(Clone, Debug)]
    enum InboxOp {
        Message { to_bob: bool, conv_seq: u64 },
        Receipt,
        Read { up_to: u64 },
        Ack { device: u64, seq: u64 },
        AddDevice { device: u64 },
    }

    fn inbox_op() -> impl Strategy<Value = InboxOp> {
        prop_oneof![
            5 => (any::<bool>(), 1u64..30).prop_map(|(to_bob, conv_seq)| InboxOp::Message { to_bob, conv_seq }),
            1 => Just(InboxOp::Receipt),
            1 => (0u64..30).prop_map(|up_to| InboxOp::Read { up_to }),
            3 => (1u64..3, 0u64..40).prop_map(|(device, seq)| InboxOp::Ack { device, seq }),
            1 => (1u64..3).prop_map(|device| InboxOp::AddDevice { device }),
        ]
    }

    fn inbox_records(codec: &Codec, ops: &[InboxOp]) -> Vec<Record> {
        use missive_core::Millis;
        use missive_core::conversation::MessageSent;
        use missive_core::delivery::{Delivery, DeliveryItem, Receipt};
        use missive_schemas::convert::delivery_to_wire;
        let (alice, bob) = (UserId(11), UserId(22));
        let conversation_id = ConversationId::direct(alice, bob);
        ops.iter()
            .enumerate()
            .map(|(index, op)| {
                let (recipient, item) = match op {
                    InboxOp::Message { to_bob, conv_seq } => (
                        if *to_bob { bob } else { alice },
                        DeliveryItem::Message(MessageSent {
                            conversation_id,
                            conv_seq: ConvSeq(*conv_seq),
                            message_id: MessageId(*conv_seq),
                            from: alice,
                            from_device: DeviceId(1),
                            members: vec![alice, bob],
                            client_msg_id: format!("c{conv_seq}"),
                            content: format!("m{index}"),
                            reply_to: None,
                            sent_at: Millis(index as i64),
                            withheld_from: Vec::new(),
                            forward_count: 0,
                            attachment: None,
                        }),
                    ),
                    InboxOp::Receipt => (
                        alice,
                        DeliveryItem::Receipt(Receipt {
                            conversation_id,
                            message_id: MessageId(index as u64),
                            status: ReceiptStatus::Delivered,
                            by: bob,
                            at: Millis(index as i64),
                            count: 1,
                            of: 1,
                            up_to: ConvSeq(index as u64),
                        }),
                    ),
                    InboxOp::Read { up_to } => {
                        (bob, DeliveryItem::ReadSync { conversation_id, up_to: ConvSeq(*up_to) })
                    }
                    InboxOp::Ack { device, seq } => (
                        bob,
                        DeliveryItem::DeviceAcked { device_id: DeviceId(*device), seq: missive_core::FeedSeq(*seq) },
                    ),
                    InboxOp::AddDevice { device } => (bob, DeliveryItem::DeviceAdded { device_id: DeviceId(*device) }),
                };
                let delivery = Delivery { recipient, item };
                input_record("deliveries", index, recipient.0, &delivery_to_wire(&delivery), codec)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn the_inbox_folds_to_the_same_feeds_and_lists_under_any_chunking(
            ops in proptest::collection::vec(inbox_op(), 1..60),
            chunks in proptest::collection::vec(1usize..9, 1..6),
        ) {
            let codec = codec();
            let input = inbox_records(&codec, &ops);
            let spec = TaskSpec {
                processor: "inbox",
                input: TopicPartition::new("deliveries", 0),
                changelog: None,
            };
            let hub = crate::hub::FeedHub::default();
            let mut whole_handler = crate::inbox::InboxHandler::new(codec.clone(), hub.clone());
            let mut chunked_handler = crate::inbox::InboxHandler::new(codec, hub);
            let whole = run_with(&input, &[input.len()], &spec, &mut whole_handler);
            let chunked = run_with(&input, &chunks, &spec, &mut chunked_handler);
            prop_assert_eq!(whole, chunked);
        }
    }
}
