//! Push notifications for users with no connected device. A message that
//! reaches the feed of a user with no open session becomes a push job: at
//! once for a 1:1 chat, batched per group and user over a 3 s window (one
//! "5 new messages in Team" rather than five buzzes). Jobs carry ids and
//! counts, never content: content is end-to-end encrypted and push
//! providers are third parties.

use std::collections::BTreeMap;

use crate::ids::{ConversationId, MessageId, Millis, UserId};

/// Group messages for one user within this window make one notification.
pub const GROUP_WINDOW_MS: i64 = 3_000;
/// Messages older than this when seen (a projection replaying old
/// deliveries) notify nobody.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// Most message ids one job lists (the count keeps counting).
pub const MAX_IDS_PER_JOB: usize = 20;
/// Most batches open at once; beyond it new group messages flush at once.
const MAX_OPEN_BATCHES: usize = 100_000;

/// A message appended to the feed of a user with no open session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    pub user: UserId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub from: UserId,
    pub group: bool,
    pub sent_at: Millis,
}

/// One notification to send to one user's devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushJob {
    pub user: UserId,
    pub conversation_id: ConversationId,
    pub group: bool,
    pub count: u32,
    pub message_ids: Vec<MessageId>,
    pub senders: Vec<UserId>,
    pub first_at: Millis,
    pub at: Millis,
}

impl PushJob {
    fn start(message: &OfflineMessage, now: Millis) -> PushJob {
        PushJob {
            user: message.user,
            conversation_id: message.conversation_id,
            group: message.group,
            count: 1,
            message_ids: vec![message.message_id],
            senders: vec![message.from],
            first_at: message.sent_at,
            at: now,
        }
    }

    fn add(&mut self, message: &OfflineMessage) {
        self.count += 1;
        if self.message_ids.len() < MAX_IDS_PER_JOB {
            self.message_ids.push(message.message_id);
        }
        if !self.senders.contains(&message.from) {
            self.senders.push(message.from);
        }
    }
}

/// Open group batches, each due at the end of its window.
#[derive(Default)]
pub struct Batcher {
    open: BTreeMap<(UserId, ConversationId), (Millis, PushJob)>,
}

impl Batcher {
    /// Takes a message; returns a job to send now (1:1 chats, or when too
    /// many batches are open), or `None` while a group batch collects.
    pub fn add(&mut self, message: &OfflineMessage, now: Millis) -> Option<PushJob> {
        if now.0 - message.sent_at.0 > MAX_AGE_MS {
            return None;
        }
        let key = (message.user, message.conversation_id);
        if let Some((_, job)) = self.open.get_mut(&key) {
            job.add(message);
            return None;
        }
        if !message.group || self.open.len() >= MAX_OPEN_BATCHES {
            return Some(PushJob::start(message, now));
        }
        self.open.insert(key, (Millis(now.0 + GROUP_WINDOW_MS), PushJob::start(message, now)));
        None
    }

    /// Batches whose window has ended, stamped `now`.
    pub fn due(&mut self, now: Millis) -> Vec<PushJob> {
        let keys: Vec<(UserId, ConversationId)> =
            self.open.iter().filter(|(_, (due, _))| *due <= now).map(|(key, _)| *key).collect();
        keys.into_iter()
            .filter_map(|key| self.open.remove(&key))
            .map(|(_, mut job)| {
                job.at = now;
                job
            })
            .collect()
    }

    /// When the next batch is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.open.values().map(|(due, _)| *due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(user: u64, conversation: u64, id: u64, from: u64, group: bool, sent_at: i64) -> OfflineMessage {
        OfflineMessage {
            user: UserId(user),
            conversation_id: ConversationId(conversation),
            message_id: MessageId(id),
            from: UserId(from),
            group,
            sent_at: Millis(sent_at),
        }
    }

    #[test]
    fn one_to_one_messages_notify_at_once_and_group_messages_batch_for_three_seconds() {
        let mut batcher = Batcher::default();
        let direct = batcher.add(&message(1, 10, 100, 2, false, 0), Millis(5)).expect("at once");
        assert_eq!((direct.count, direct.message_ids.clone()), (1, vec![MessageId(100)]));
        for (id, from, at) in [(101, 2, 10), (102, 3, 1_000), (103, 2, 2_999)] {
            assert_eq!(batcher.add(&message(1, 20, id, from, true, at), Millis(at)), None);
        }
        assert_eq!(batcher.add(&message(4, 20, 101, 2, true, 10), Millis(10)), None, "another member's own batch");
        assert_eq!(batcher.next_due(), Some(Millis(3_010)));
        assert!(batcher.due(Millis(3_009)).is_empty());
        let jobs = batcher.due(Millis(3_010));
        assert_eq!(jobs.len(), 2);
        let mine = jobs.iter().find(|job| job.user == UserId(1)).expect("user 1's batch");
        assert_eq!((mine.count, mine.senders.clone(), mine.at), (3, vec![UserId(2), UserId(3)], Millis(3_010)));
        assert_eq!(batcher.add(&message(1, 20, 104, 2, true, 4_000), Millis(4_000)), None, "a new window starts");
        assert_eq!(batcher.add(&message(1, 10, 105, 2, false, 0), Millis(MAX_AGE_MS + 1)), None, "too old: a replay");
    }
}
