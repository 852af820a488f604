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

    /// A state value, decoded ([`crate::state_value`]).
    pub fn get_value<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, HandleError> {
        match self.get(key)? {
            Some(bytes) => crate::state_value::decode(&bytes).map(Some).map_err(|error| {
                HandleError::Storage(format!("corrupt state at {}: {error}", String::from_utf8_lossy(key)))
            }),
            None => Ok(None),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Puts a state value, encoded ([`crate::state_value`]).
    pub fn put_value<T: serde::Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), HandleError> {
        let bytes = crate::state_value::encode(value).map_err(|error| HandleError::Storage(error.to_string()))?;
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

/// Parsed state a handler reads and rewrites record after record (a feed's
/// header, a conversation's state, a summary), kept decoded across batches:
/// each value is read and parsed once while it stays cached, and serialized
/// and written once per batch that changed it, by [`StateCache::write_back`]
/// before the batch commits.
///
/// Sound because a task is the only writer of its keys and a failed batch
/// ends the task (its handler, and this cache, are dropped and rebuilt from
/// the store). Within a batch nothing else may read these keys through the
/// [`Tx`] before [`StateCache::flush`]: the cache holds their current value.
/// Bounded: past `max` entries it is emptied after a write-back.
pub struct StateCache<K, V> {
    entries: HashMap<K, Cached<V>>,
    /// Entries changed since the last write-back.
    dirty: Vec<K>,
    max: usize,
}

struct Cached<V> {
    key: Vec<u8>,
    value: Option<V>,
    dirty: bool,
}

/// Entries a [`StateCache`] holds before it is emptied.
pub const STATE_CACHE_MAX: usize = 16_384;

impl<K, V> Default for StateCache<K, V> {
    fn default() -> Self {
        StateCache { entries: HashMap::new(), dirty: Vec::new(), max: STATE_CACHE_MAX }
    }
}

impl<K: Hash + Eq + Copy, V: serde::Serialize + serde::de::DeserializeOwned> StateCache<K, V> {
    fn load(&mut self, tx: &Tx<'_>, id: K, key: impl FnOnce() -> Vec<u8>) -> Result<&mut Cached<V>, HandleError> {
        Ok(match self.entries.entry(id) {
            Entry::Occupied(occupied) => occupied.into_mut(),
            Entry::Vacant(vacant) => {
                let key = key();
                let value = tx.get_value(&key)?;
                vacant.insert(Cached { key, value, dirty: false })
            }
        })
    }

    /// The value stored at `key`, loaded on first use; reading marks nothing to write.
    pub fn get(&mut self, tx: &Tx<'_>, id: K, key: impl FnOnce() -> Vec<u8>) -> Result<Option<&V>, HandleError> {
        Ok(self.load(tx, id, key)?.value.as_ref())
    }

    /// The value stored at `key` (`None` if there is none), loaded on first
    /// use, for the caller to change: it is written back with the batch.
    pub fn entry(&mut self, tx: &Tx<'_>, id: K, key: impl FnOnce() -> Vec<u8>) -> Result<&mut Option<V>, HandleError> {
        let cached = self.load(tx, id, key)?;
        if !cached.dirty {
            cached.dirty = true;
            self.dirty.push(id);
        }
        // Reborrowed: the push above ended the first borrow's use of `self.dirty`.
        Ok(&mut self.entries.get_mut(&id).expect("just loaded").value)
    }

    /// Replaces the value at `key` without reading the store.
    pub fn set(&mut self, id: K, key: impl FnOnce() -> Vec<u8>, value: V) {
        match self.entries.entry(id) {
            Entry::Occupied(mut occupied) => {
                let cached = occupied.get_mut();
                cached.value = Some(value);
                if !cached.dirty {
                    cached.dirty = true;
                    self.dirty.push(id);
                }
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Cached { key: key(), value: Some(value), dirty: true });
                self.dirty.push(id);
            }
        }
    }

    /// Writes the changed values into the batch (values never set stay
    /// absent); the cache keeps them, so reads through the [`Tx`] (a scan)
    /// see them too.
    pub fn flush(&mut self, tx: &mut Tx<'_>) -> Result<(), HandleError> {
        for id in self.dirty.drain(..) {
            let Some(cached) = self.entries.get_mut(&id) else { continue };
            cached.dirty = false;
            if let Some(value) = &cached.value {
                tx.put_value(cached.key.clone(), value)?;
            }
        }
        Ok(())
    }

    /// [`StateCache::flush`] at the end of a batch; empties a cache grown past its bound.
    pub fn write_back(&mut self, tx: &mut Tx<'_>) -> Result<(), HandleError> {
        self.flush(tx)?;
        if self.entries.len() > self.max {
            self.entries.clear();
        }
        Ok(())
    }
}
