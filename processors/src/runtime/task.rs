//! A running task: restore, then batches of records until cancelled, with
//! outputs relayed and changelogs appended behind them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_infra::db::{CF_STATE, family};
use missive_infra::{Log, Offset, OutRecord, TopicPartition};
use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio_util::sync::CancellationToken;

use crate::topics::CHANGELOG_PREFIX;

use super::batch::*;
use super::errors::RuntimeError;
use super::meta::*;
use super::task_spec::{Handler, MAX_BATCH, RuntimeMetrics, TaskSpec};

/// How often a task refreshes its lag gauge and mirrors its position to
/// the consumer group (for lag tools).
pub(super) const MIRROR_EVERY: Duration = Duration::from_secs(5);

/// Batches up to this size are handled on the async worker itself: the
/// hand-off to a blocking thread and back costs more than they take.
pub(super) const INLINE_BATCH: usize = 64;

/// Appends outputs, then the changelog records behind them.
pub(super) async fn relay(
    log: &dyn Log,
    outputs: Vec<OutRecord>,
    cancel: &CancellationToken,
) -> Result<(), RuntimeError> {
    let (changes, outputs): (Vec<OutRecord>, Vec<OutRecord>) =
        outputs.into_iter().partition(|record| record.topic.starts_with(CHANGELOG_PREFIX));
    append_retrying(log, outputs, cancel).await?;
    append_retrying(log, changes, cancel).await
}

/// Appends records, retrying transient failures until cancelled.
pub(super) async fn append_retrying(
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
pub(super) type ChangelogJob = (tokio::task::JoinHandle<Result<(), RuntimeError>>, std::ops::RangeInclusive<u64>);

/// Waits for an in-flight changelog append; returns its outbox range
/// (an empty one when nothing was in flight).
pub(super) async fn finish_changelog(
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
pub(super) async fn restore_from_changelog(
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
pub(super) fn mirror_now_and_then(
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
