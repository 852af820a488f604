//! Live wake-ups for gateway sessions. After each commit the inbox
//! publishes, per user whose feed grew, the new head and the entries that
//! batch appended. A session that is caught up pushes those entries straight
//! from memory; one that missed a publication (the watch keeps only the
//! latest) reads the gap from the store. Only users with a connected session
//! have an entry, so memory follows connections, not users.

use std::collections::HashMap;
use std::sync::Arc;

use missive_core::notifications::OfflineMessage;
use missive_core::{FeedSeq, UserId};
use missive_projections::FeedEntry;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

/// The newest feed change of one user.
#[derive(Clone, Debug, Default)]
pub struct FeedUpdate {
    pub head: FeedSeq,
    /// Entries appended by the batch that moved the head there, in order.
    pub entries: Arc<Vec<(FeedSeq, FeedEntry)>>,
}

type Subscribers = HashMap<UserId, (watch::Sender<FeedUpdate>, usize)>;

/// Offline messages waiting for the push notifier; beyond this many they
/// are dropped (a push is a courtesy, the feed keeps the message).
const OFFLINE_QUEUE: usize = 65_536;

#[derive(Clone, Default)]
pub struct FeedHub {
    users: Arc<Mutex<Subscribers>>,
    /// Where messages for users without a session go (the push notifier).
    offline: Arc<Mutex<Option<mpsc::Sender<OfflineMessage>>>>,
}

/// A session's subscription; unsubscribes on drop.
pub struct FeedSubscription {
    hub: FeedHub,
    user: UserId,
    pub changes: watch::Receiver<FeedUpdate>,
}

impl FeedHub {
    pub fn subscribe(&self, user: UserId) -> FeedSubscription {
        let mut users = self.users.lock();
        let entry = users.entry(user).or_insert_with(|| (watch::channel(FeedUpdate::default()).0, 0));
        entry.1 += 1;
        FeedSubscription { hub: self.clone(), user, changes: entry.0.subscribe() }
    }

    /// Whether anyone listens to `user` (publishing is skipped otherwise).
    pub fn is_subscribed(&self, user: UserId) -> bool {
        self.users.lock().contains_key(&user)
    }

    /// Messages for users without an open session arrive on the returned
    /// receiver from now on (one receiver; a second call replaces it).
    pub fn offline_messages(&self) -> mpsc::Receiver<OfflineMessage> {
        let (sender, receiver) = mpsc::channel(OFFLINE_QUEUE);
        *self.offline.lock() = Some(sender);
        receiver
    }

    /// Hands messages for users without a session to the notifier, if any.
    pub fn publish_offline(&self, messages: Vec<OfflineMessage>) {
        let Some(sender) = self.offline.lock().clone() else { return };
        for message in messages {
            if sender.try_send(message).is_err() {
                tracing::debug!("push queue full or closed; a notification is dropped");
            }
        }
    }

    /// Announces a user's new head and the entries that led there.
    pub fn publish(&self, user: UserId, update: FeedUpdate) {
        if let Some((sender, _)) = self.users.lock().get(&user) {
            sender.send_replace(update);
        }
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
