//! A task's durable bookkeeping (position, output sequence, dedupe marks)
//! and its outbox, as stored beside its state.

use std::collections::BTreeMap;

use missive_infra::codec::decode_out_record;
use missive_infra::db::{CF_OUTBOX, CF_STATE, family};
use missive_infra::{Offset, OutRecord, Record, StateWrite, TopicPartition};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use super::task_spec::TaskSpec;

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
    pub(super) legacy: bool,
}

/// The version byte of [`TaskMeta`]'s encoding.
pub(super) const META_V1: u8 = 1;

impl Default for TaskMeta {
    fn default() -> TaskMeta {
        TaskMeta { position: Offset(0), next_sseq: 1, dedupe: BTreeMap::new(), legacy: false }
    }
}

impl TaskMeta {
    /// `1`, position, next sseq (u64 BE), the number of sources (u16 BE),
    /// then per source: name length (u16 BE), name, highest applied sseq
    /// (u64 BE).
    pub(super) fn encode(&self, next_sseq: u64) -> Vec<u8> {
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

    pub(super) fn decode(bytes: &[u8]) -> Result<TaskMeta, String> {
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

pub(super) fn read_u64(db: &DB, key: &[u8]) -> Result<Option<u64>, String> {
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
pub(super) fn meta_writes(spec: &TaskSpec, meta: &TaskMeta, next_sseq: u64) -> Vec<StateWrite> {
    let mut writes = legacy_deletes(spec, meta);
    writes.push(StateWrite { key: spec.meta_key(), value: Some(meta.encode(next_sseq)) });
    writes
}

/// Deletes of the older bookkeeping keys, when `meta` was loaded from them.
pub(super) fn legacy_deletes(spec: &TaskSpec, meta: &TaskMeta) -> Vec<StateWrite> {
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

/// The key prefix of everything a task keeps about itself (position, dedupe marks).
pub fn task_prefix(processor: &str, partition: u32) -> Vec<u8> {
    format!("__task/{processor}-{partition}/").into_bytes()
}

pub(super) fn load_meta(db: &DB, spec: &TaskSpec) -> Result<TaskMeta, String> {
    Ok(stored_meta(db, spec)?.unwrap_or_default())
}

/// Output records still in the outbox, in sseq order.
pub(super) fn load_outbox(db: &DB, spec: &TaskSpec) -> Result<Vec<(u64, OutRecord)>, String> {
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

pub(super) fn header_u64(record: &Record, name: &str) -> Option<u64> {
    record.header(name).and_then(|bytes| bytes.try_into().ok()).map(u64::from_be_bytes)
}
