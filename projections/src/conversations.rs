//! The conversation list: one summary per (user, conversation) with the last
//! message and an exact unread count.
//!
//! Unread is exact and amortised O(1): each incoming unread message leaves a
//! marker beside the summary; a read removes the markers up to its position
//! and subtracts how many it removed.

use missive_core::conversation::MessageSent;
use missive_core::{ConvSeq, ConversationId, Millis, UserId};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationSummary {
    pub conversation_id: ConversationId,
    pub peer: UserId,
    pub last_message: Option<MessageSent>,
    pub unread: u64,
    pub read_up_to: ConvSeq,
    pub last_activity: Millis,
    /// The activity time the conversation list's index holds for it (the
    /// second `last_activity` falls in); `None` in summaries written when
    /// the index held `last_activity` itself.
    #[serde(default)]
    pub indexed_at: Option<Millis>,
}

impl ConversationSummary {
    pub fn new(owner: UserId, message: &MessageSent) -> ConversationSummary {
        // Group messages reach feeds without their member list: the peer of a
        // group's summary is whoever wrote first (clients show the group).
        let others = message.members.iter().copied().chain([message.from]);
        let peer = others.into_iter().find(|member| *member != owner).unwrap_or(owner);
        ConversationSummary {
            conversation_id: message.conversation_id,
            peer,
            last_message: None,
            unread: 0,
            read_up_to: ConvSeq(0),
            last_activity: Millis(0),
            indexed_at: None,
        }
    }

    /// Folds a message in. Returns true when it left an unread marker.
    pub fn apply_message(&mut self, owner: UserId, message: &MessageSent) -> bool {
        let newer = self.last_message.as_ref().is_none_or(|last| last.conv_seq < message.conv_seq);
        if newer {
            self.last_message = Some(message.clone());
            self.last_activity = message.sent_at;
        }
        let unread = message.from != owner && message.conv_seq > self.read_up_to;
        if unread {
            self.unread += 1;
        }
        unread
    }

    /// Returns the marker range to remove if the read moved forward.
    pub fn read_range(&self, up_to: ConvSeq) -> Option<(ConvSeq, ConvSeq)> {
        (up_to > self.read_up_to).then_some((self.read_up_to.next(), up_to))
    }

    /// Folds a read that removed `markers_removed` unread markers.
    pub fn apply_read(&mut self, up_to: ConvSeq, markers_removed: u64) {
        self.read_up_to = self.read_up_to.max(up_to);
        self.unread = self.unread.saturating_sub(markers_removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::{DeviceId, MessageId};

    #[test]
    fn unread_counts_only_incoming_messages_after_the_read_position() {
        let (me, peer) = (UserId(1), UserId(2));
        let make = |from: UserId, seq: u64| MessageSent {
            conversation_id: ConversationId::direct(me, peer),
            conv_seq: ConvSeq(seq),
            message_id: MessageId(seq),
            from,
            from_device: DeviceId(0),
            members: vec![me, peer],
            client_msg_id: String::new(),
            content: String::new(),
            reply_to: None,
            sent_at: Millis(seq as i64),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
            session_id: None,
        };
        let first = make(peer, 1);
        let mut summary = ConversationSummary::new(me, &first);
        assert_eq!(summary.peer, peer);
        assert!(summary.apply_message(me, &first));
        assert!(!summary.apply_message(me, &make(me, 2)));
        assert!(summary.apply_message(me, &make(peer, 3)));
        assert_eq!(summary.unread, 2);
        assert_eq!(summary.read_range(ConvSeq(2)), Some((ConvSeq(1), ConvSeq(2))));
        summary.apply_read(ConvSeq(2), 1);
        assert_eq!(summary.unread, 1);
        assert_eq!(summary.last_message.as_ref().map(|m| m.conv_seq), Some(ConvSeq(3)));
        assert_eq!(summary.read_range(ConvSeq(1)), None);
    }
}
