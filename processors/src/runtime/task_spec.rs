//! What a processor is: its logic for one partition, a task's identity and input, and its metrics.

use missive_infra::{Record, TopicPartition};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::tx::Tx;

use super::errors::HandleError;

/// Most records handled in one batch (one WriteBatch, one relay).
pub const MAX_BATCH: usize = 1024;

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
    pub(super) fn meta_key(&self) -> Vec<u8> {
        format!("__task/{}/meta", self.id()).into_bytes()
    }

    /// Keys of the bookkeeping as stores written before [`TaskMeta`] kept
    /// it in one key: `position`, `sseq`, and `dedupe/<source>` per source.
    pub(super) fn legacy_key(&self, what: &str) -> Vec<u8> {
        format!("__task/{}/{}", self.id(), what).into_bytes()
    }

    pub(super) fn outbox_prefix(&self) -> Vec<u8> {
        format!("{}/", self.id()).into_bytes()
    }

    pub(super) fn outbox_key(&self, sseq: u64) -> Vec<u8> {
        let mut key = self.outbox_prefix();
        key.extend_from_slice(&sseq.to_be_bytes());
        key
    }
}

#[derive(Clone)]
pub struct RuntimeMetrics {
    pub(super) records: IntCounterVec,
    pub(super) dead_letters: IntCounterVec,
    pub(super) lag: IntGaugeVec,
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
