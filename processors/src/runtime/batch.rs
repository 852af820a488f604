//! One batch: decide every record, assemble what the batch commits, commit it.

use missive_infra::codec::encode_out_record;
use missive_infra::db::{CF_OUTBOX, CF_STATE, family};
use missive_infra::{Header, Offset, OutRecord, Record, StateWrite};
use rocksdb::{DB, WriteBatch, WriteOptions};

use crate::topics::{DEAD_LETTERS, headers};
use crate::tx::Tx;

use super::errors::{HandleError, RuntimeError};
use super::meta::*;
use super::task_spec::{Handler, RuntimeMetrics, TaskSpec};

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

/// Headers a dead letter gets anew rather than from the record it holds.
pub const DEAD_LETTER_OWN_HEADERS: [&str; 5] =
    [headers::ERROR, headers::ORIGIN, headers::SOURCE, headers::SOURCE_SEQ, headers::EVENT_ID];

/// What one batch commits: every state change (the handler's, then the
/// task's position, output sequence and dedupe marks) and the output
/// records, stamped with their `(source, sseq)` headers; in Kafka mode the
/// changelog copy of the state changes rides last among the outputs.
pub(super) struct Prepared {
    pub(super) writes: Vec<StateWrite>,
    pub(super) outputs: Vec<OutRecord>,
}

/// Handles one batch: decides every record and assembles what the batch
/// commits, without writing anything. Runs on a blocking thread.
pub(super) fn prepare_batch(
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
pub(super) fn commit_to_outbox(
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
pub(super) fn process_batch(
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

pub(super) async fn blocking<T: Send + 'static>(
    task: &str,
    work: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| RuntimeError::Store {
        task: task.to_string(),
        detail: format!("blocking task failed: {error}"),
    })?
}
