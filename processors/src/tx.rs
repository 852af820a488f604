//! A processor's view of its store during one batch: reads see the batch's
//! own writes; nothing reaches RocksDB until the runtime commits the batch
//! (state, input positions and outbox in one WriteBatch).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::ops::Bound;

use missive_infra::OutRecord;
use missive_infra::db::{CF_STATE, family};
use rocksdb::{DB, Direction, IteratorMode, ReadOptions};

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
        // The bound lets RocksDB stop at `end` instead of reading on past it.
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(end.to_vec());
        let stored =
            self.db.iterator_cf_opt(family(self.db, CF_STATE), options, IteratorMode::From(start, Direction::Forward));
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

/// Parsed values a handler reads and rewrites many times within one batch
/// (a feed's header, a conversation summary): each is read and parsed once,
/// and serialized and written once, by [`BatchCache::write_back`] before the
/// batch commits. Nothing else in the batch may read these keys through
/// the [`Tx`]: the cache holds their current value.
pub struct BatchCache<K, V> {
    entries: HashMap<K, (Vec<u8>, Option<V>)>,
}

impl<K, V> Default for BatchCache<K, V> {
    fn default() -> Self {
        BatchCache { entries: HashMap::new() }
    }
}

impl<K: Hash + Eq, V: serde::Serialize + serde::de::DeserializeOwned> BatchCache<K, V> {
    /// The value stored at `key` (`None` if there is none), loaded on first use.
    pub fn entry(&mut self, tx: &Tx<'_>, id: K, key: impl FnOnce() -> Vec<u8>) -> Result<&mut Option<V>, HandleError> {
        let slot = match self.entries.entry(id) {
            Entry::Occupied(occupied) => occupied.into_mut(),
            Entry::Vacant(vacant) => {
                let key = key();
                let value = tx.get_json(&key)?;
                vacant.insert((key, value))
            }
        };
        Ok(&mut slot.1)
    }

    /// Writes every value held (values never set stay absent) and empties the cache.
    pub fn write_back(&mut self, tx: &mut Tx<'_>) -> Result<(), HandleError> {
        for (_, (key, value)) in self.entries.drain() {
            if let Some(value) = value {
                tx.put_json(key, &value)?;
            }
        }
        Ok(())
    }
}
