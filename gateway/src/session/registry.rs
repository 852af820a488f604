//! Which devices have open WebSocket sessions on this gateway: so that
//! removing a device (or revoking its session) closes its connections at
//! once, and so that live signals (typing) reach a user's open sessions.
//! A user's requests all reach the gateway that owns the user, so the
//! removal and the sessions meet here in both modes. Sessions also hold
//! their presence subscriptions (whom they watch), indexed by watched user.
//!
//! **One writer per device.** A device that connects again replaces its
//! earlier session here: the old one is told `session_replaced` and stops
//! appending, and the two share a writer lock, held while a command is
//! being appended, which the new session takes once before its welcome. So
//! a frame the old connection still had buffered (a client that switched
//! networks leaves a half-open connection behind) can never be appended
//! after what the client sends on the new one: a device's commands reach
//! the log in the order the client sent them, across reconnects.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use missive_core::{DeviceId, UserId};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Live frames a session may have queued; beyond this they are dropped
/// (a typing indicator is worthless late).
const LIVE_QUEUE: usize = 64;

/// Most users one session may watch the presence of.
pub const MAX_WATCHED: usize = 1024;

struct Entry {
    id: u64,
    device: DeviceId,
    revoked: CancellationToken,
    /// Fires when the same device opened a newer session.
    replaced: CancellationToken,
    /// Shared by every session of the device (see the module doc).
    writer: Arc<tokio::sync::Mutex<()>>,
    live: mpsc::Sender<Arc<Value>>,
    /// Users whose presence this session watches.
    watching: HashSet<UserId>,
}

#[derive(Default)]
struct Inner {
    open: HashMap<UserId, Vec<Entry>>,
    /// Watched user -> the (watcher, session) pairs watching them.
    watchers: HashMap<UserId, HashSet<(UserId, u64)>>,
}

impl Inner {
    fn unwatch(&mut self, watcher: UserId, entry: &Entry) {
        for watched in &entry.watching {
            if let Some(set) = self.watchers.get_mut(watched) {
                set.remove(&(watcher, entry.id));
                if set.is_empty() {
                    self.watchers.remove(watched);
                }
            }
        }
    }
}

#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
    next: Arc<AtomicU64>,
}

/// Deregisters its session when dropped.
pub struct SessionGuard {
    sessions: Sessions,
    user: UserId,
    id: u64,
    pub revoked: CancellationToken,
    /// Fires when the same device opened a newer session.
    pub replaced: CancellationToken,
    /// The device's writer lock: held while a command is appended.
    pub writer: Arc<tokio::sync::Mutex<()>>,
    pub live: mpsc::Receiver<Arc<Value>>,
}

impl Sessions {
    /// Registers a session; its `revoked` token fires when the device is
    /// removed, and live frames for the user arrive on `live`. Earlier
    /// sessions of the same device are told they were replaced; the new
    /// one shares their writer lock.
    pub fn open(&self, user: UserId, device: DeviceId) -> SessionGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let revoked = CancellationToken::new();
        let replaced = CancellationToken::new();
        let (sender, live) = mpsc::channel(LIVE_QUEUE);
        let mut inner = self.inner.lock();
        let entries = inner.open.entry(user).or_default();
        let mut writer = None;
        for earlier in entries.iter().filter(|entry| entry.device == device) {
            earlier.replaced.cancel();
            writer = Some(earlier.writer.clone());
        }
        let writer = writer.unwrap_or_default();
        entries.push(Entry {
            id,
            device,
            revoked: revoked.clone(),
            replaced: replaced.clone(),
            writer: writer.clone(),
            live: sender,
            watching: HashSet::new(),
        });
        drop(inner);
        SessionGuard { sessions: self.clone(), user, id, revoked, replaced, writer, live }
    }

    /// Whether `user` has an open session here.
    pub fn is_open(&self, user: UserId) -> bool {
        self.inner.lock().open.contains_key(&user)
    }

    /// Users with an open session here (a presence heartbeat's list).
    pub fn users(&self) -> Vec<UserId> {
        self.inner.lock().open.keys().copied().collect()
    }

    /// Adds presence subscriptions to a session, up to [`MAX_WATCHED`];
    /// returns the users it now watches among `users`.
    pub fn watch(&self, user: UserId, session: u64, users: &[UserId]) -> Vec<UserId> {
        let mut inner = self.inner.lock();
        let Some(entry) = inner.open.get_mut(&user).and_then(|entries| entries.iter_mut().find(|e| e.id == session))
        else {
            return Vec::new();
        };
        let mut added = Vec::new();
        for watched in users {
            if entry.watching.len() >= MAX_WATCHED && !entry.watching.contains(watched) {
                break;
            }
            entry.watching.insert(*watched);
            added.push(*watched);
        }
        for watched in &added {
            inner.watchers.entry(*watched).or_default().insert((user, session));
        }
        added
    }

    /// Whom a session watches, in id order.
    pub fn watching(&self, user: UserId, session: u64) -> Vec<UserId> {
        let inner = self.inner.lock();
        let entry = inner.open.get(&user).and_then(|entries| entries.iter().find(|entry| entry.id == session));
        let mut watched: Vec<UserId> = entry.map(|entry| entry.watching.iter().copied().collect()).unwrap_or_default();
        watched.sort();
        watched
    }

    /// The (watcher, session) pairs watching `user`.
    pub fn watchers_of(&self, user: UserId) -> Vec<(UserId, u64)> {
        self.inner.lock().watchers.get(&user).map(|set| set.iter().copied().collect()).unwrap_or_default()
    }

    /// Offers a live frame to one session.
    pub fn push_to_session(&self, user: UserId, session: u64, frame: &Arc<Value>) {
        if let Some(entry) =
            self.inner.lock().open.get(&user).and_then(|entries| entries.iter().find(|e| e.id == session))
        {
            let _ = entry.live.try_send(frame.clone());
        }
    }

    /// Closes every session of the device; returns how many there were.
    pub fn revoke(&self, user: UserId, device: DeviceId) -> usize {
        let mut inner = self.inner.lock();
        let Some(entries) = inner.open.get_mut(&user) else { return 0 };
        let (closed, kept): (Vec<Entry>, Vec<Entry>) =
            std::mem::take(entries).into_iter().partition(|entry| entry.device == device);
        *entries = kept;
        if entries.is_empty() {
            inner.open.remove(&user);
        }
        for entry in &closed {
            entry.revoked.cancel();
            inner.unwatch(user, entry);
        }
        closed.len()
    }

    /// Offers a live frame to every open session of `user` on this gateway.
    pub fn push_live(&self, user: UserId, frame: &Arc<Value>) {
        if let Some(entries) = self.inner.lock().open.get(&user) {
            for entry in entries {
                let _ = entry.live.try_send(frame.clone());
            }
        }
    }
}

impl SessionGuard {
    /// This session's id among the user's sessions.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = self.sessions.inner.lock();
        let Some(entries) = inner.open.get_mut(&self.user) else { return };
        let Some(index) = entries.iter().position(|entry| entry.id == self.id) else { return };
        let entry = entries.swap_remove(index);
        if entries.is_empty() {
            inner.open.remove(&self.user);
        }
        inner.unwatch(self.user, &entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_connecting_again_replaces_only_its_own_earlier_sessions_and_shares_their_writer() {
        let sessions = Sessions::default();
        let (user, phone, laptop) = (UserId(1), DeviceId(10), DeviceId(11));
        let first = sessions.open(user, phone);
        let other_device = sessions.open(user, laptop);
        assert!(!first.replaced.is_cancelled());
        let second = sessions.open(user, phone);
        assert!(first.replaced.is_cancelled(), "the earlier session of the device is told");
        assert!(!other_device.replaced.is_cancelled(), "another device is left alone");
        assert!(!second.replaced.is_cancelled());
        assert!(Arc::ptr_eq(&first.writer, &second.writer), "one writer lock per device");
        assert!(!Arc::ptr_eq(&first.writer, &other_device.writer));
        drop((first, second));
        let third = sessions.open(user, phone);
        assert!(!Arc::ptr_eq(&third.writer, &other_device.writer));
        assert!(sessions.is_open(user));
    }
}
