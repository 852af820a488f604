//! Which devices have open WebSocket sessions on this gateway, so that
//! removing a device (or revoking its session) closes its connections at
//! once. A user's requests all reach the gateway that owns the user, so the
//! removal and the sessions meet here in both modes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use missive_core::{DeviceId, UserId};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Open sessions of each device: (session id, its revocation token).
type OpenSessions = HashMap<(UserId, DeviceId), Vec<(u64, CancellationToken)>>;

#[derive(Clone, Default)]
pub struct Sessions {
    open: Arc<Mutex<OpenSessions>>,
    next: Arc<AtomicU64>,
}

/// Deregisters its session when dropped.
pub struct SessionGuard {
    sessions: Sessions,
    key: (UserId, DeviceId),
    id: u64,
    pub revoked: CancellationToken,
}

impl Sessions {
    /// Registers a session; its `revoked` token fires when the device is removed.
    pub fn open(&self, user: UserId, device: DeviceId) -> SessionGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let revoked = CancellationToken::new();
        self.open.lock().entry((user, device)).or_default().push((id, revoked.clone()));
        SessionGuard { sessions: self.clone(), key: (user, device), id, revoked }
    }

    /// Closes every session of the device; returns how many there were.
    pub fn revoke(&self, user: UserId, device: DeviceId) -> usize {
        let removed = self.open.lock().remove(&(user, device)).unwrap_or_default();
        for (_, token) in &removed {
            token.cancel();
        }
        removed.len()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock();
        if let Some(list) = open.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                open.remove(&self.key);
            }
        }
    }
}
