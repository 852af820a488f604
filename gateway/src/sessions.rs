//! Which devices have open WebSocket sessions on this gateway: so that
//! removing a device (or revoking its session) closes its connections at
//! once, and so that live signals (typing) reach a user's open sessions.
//! A user's requests all reach the gateway that owns the user, so the
//! removal and the sessions meet here in both modes.

use std::collections::HashMap;
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

struct Entry {
    id: u64,
    device: DeviceId,
    revoked: CancellationToken,
    live: mpsc::Sender<Arc<Value>>,
}

#[derive(Clone, Default)]
pub struct Sessions {
    open: Arc<Mutex<HashMap<UserId, Vec<Entry>>>>,
    next: Arc<AtomicU64>,
}

/// Deregisters its session when dropped.
pub struct SessionGuard {
    sessions: Sessions,
    user: UserId,
    id: u64,
    pub revoked: CancellationToken,
    pub live: mpsc::Receiver<Arc<Value>>,
}

impl Sessions {
    /// Registers a session; its `revoked` token fires when the device is
    /// removed, and live frames for the user arrive on `live`.
    pub fn open(&self, user: UserId, device: DeviceId) -> SessionGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let revoked = CancellationToken::new();
        let (sender, live) = mpsc::channel(LIVE_QUEUE);
        self.open.lock().entry(user).or_default().push(Entry { id, device, revoked: revoked.clone(), live: sender });
        SessionGuard { sessions: self.clone(), user, id, revoked, live }
    }

    /// Closes every session of the device; returns how many there were.
    pub fn revoke(&self, user: UserId, device: DeviceId) -> usize {
        let mut open = self.open.lock();
        let Some(entries) = open.get_mut(&user) else { return 0 };
        let mut closed = 0;
        entries.retain(|entry| {
            let matches = entry.device == device;
            if matches {
                entry.revoked.cancel();
                closed += 1;
            }
            !matches
        });
        if entries.is_empty() {
            open.remove(&user);
        }
        closed
    }

    /// Offers a live frame to every open session of `user` on this gateway.
    pub fn push_live(&self, user: UserId, frame: &Arc<Value>) {
        if let Some(entries) = self.open.lock().get(&user) {
            for entry in entries {
                let _ = entry.live.try_send(frame.clone());
            }
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock();
        if let Some(entries) = open.get_mut(&self.user) {
            entries.retain(|entry| entry.id != self.id);
            if entries.is_empty() {
                open.remove(&self.user);
            }
        }
    }
}
