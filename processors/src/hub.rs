//! Live wake-ups for gateway sessions: the inbox publishes each user's new
//! feed head after a commit; sessions of that user wait on it and read the
//! new entries from the store. Only users with a connected session have an
//! entry, so memory follows connections, not users.

use std::collections::HashMap;
use std::sync::Arc;

use missive_core::{FeedSeq, UserId};
use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct FeedHub {
    users: Arc<Mutex<HashMap<UserId, (watch::Sender<FeedSeq>, usize)>>>,
}

/// A session's subscription; unsubscribes on drop.
pub struct FeedSubscription {
    hub: FeedHub,
    user: UserId,
    pub changes: watch::Receiver<FeedSeq>,
}

impl FeedHub {
    pub fn subscribe(&self, user: UserId) -> FeedSubscription {
        let mut users = self.users.lock();
        let entry = users.entry(user).or_insert_with(|| (watch::channel(FeedSeq(0)).0, 0));
        entry.1 += 1;
        FeedSubscription { hub: self.clone(), user, changes: entry.0.subscribe() }
    }

    /// Announces a new head for a user; a no-op when nobody listens.
    pub fn publish(&self, user: UserId, head: FeedSeq) {
        if let Some((sender, _)) = self.users.lock().get(&user) {
            sender.send_replace(head);
        }
    }

    pub fn subscribed_users(&self) -> usize {
        self.users.lock().len()
    }
}

impl Drop for FeedSubscription {
    fn drop(&mut self) {
        let mut users = self.hub.users.lock();
        if let Some(entry) = users.get_mut(&self.user) {
            entry.1 -= 1;
            if entry.1 == 0 {
                users.remove(&self.user);
            }
        }
    }
}
