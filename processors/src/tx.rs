//! A processor's view of its store during one batch: reads see the batch's
//! own writes; nothing reaches RocksDB until the runtime commits the batch
//! (state, input positions and outbox in one WriteBatch).

use std::collections::BTreeMap;
use std::ops::Bound;

use missive_infra::OutRecord;
use missive_infra::db::{CF_STATE, family};
use rocksdb::{DB, Direction, IteratorMode};

use crate::runtime::HandleError;

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);
/// A batch's writes: a value to put, or `None` to delete.
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

pub struct Tx<'a> {
    db: &'a DB,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    outputs: Vec<OutRecord>,
    /// Timestamp of the input record being handled: the only clock handlers see.
    pub timestamp: i64,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(db: &'a DB) -> Tx<'a> {
        Tx { db, writes: BTreeMap::new(), outputs: Vec::new(), timestamp: 0 }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, HandleError> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        self.db.get_cf(family(self.db, CF_STATE), key).map_err(|error| HandleError::Storage(error.to_string()))
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, HandleError> {
        match self.get(key)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                HandleError::Storage(format!("corrupt state at {}: {error}", String::from_utf8_lossy(key)))
            }),
            None => Ok(None),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn put_json<T: serde::Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), HandleError> {
        let bytes = serde_json::to_vec(value).map_err(|error| HandleError::Storage(error.to_string()))?;
        self.put(key, bytes);
        Ok(())
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Up to `limit` live entries with `start <= key < end`, in key order,
    /// merging stored data with this batch's writes.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, HandleError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let stored = self.db.iterator_cf(family(self.db, CF_STATE), IteratorMode::From(start, Direction::Forward));
        // Read enough stored entries to survive deletions pending in this batch.
        let pending = self.writes.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end))).count();
        for item in stored.take(limit.saturating_add(pending)) {
            let (key, value) = item.map_err(|error| HandleError::Storage(error.to_string()))?;
            if key.as_ref() >= end {
                break;
            }
            merged.insert(key.to_vec(), value.to_vec());
        }
        for (key, value) in self.writes.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end))) {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Queues an output record; it is written to the outbox with the batch
    /// and relayed to the log after the commit.
    pub fn emit(&mut self, record: OutRecord) {
        self.outputs.push(record);
    }

    pub(crate) fn into_parts(self) -> (Writes, Vec<OutRecord>) {
        (self.writes, self.outputs)
    }
}
