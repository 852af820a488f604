//! A message as history shows it: the message as sent, folded with every
//! operation on it (the latest edit, a delete-for-everyone tombstone, one
//! reaction per member).

use std::collections::BTreeMap;

use missive_core::conversation::MessageSent;
use missive_core::operations::{MessageModified, Operation};
use missive_core::{Millis, UserId};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryMessage {
    #[serde(flatten)]
    pub message: MessageSent,
    #[serde(default)]
    pub edited_at: Option<Millis>,
    /// Deleted for everyone: the content is gone, the place stays (a tombstone).
    #[serde(default)]
    pub deleted_at: Option<Millis>,
    #[serde(default)]
    pub reactions: BTreeMap<UserId, String>,
}

impl HistoryMessage {
    pub fn new(message: MessageSent) -> HistoryMessage {
        HistoryMessage { message, edited_at: None, deleted_at: None, reactions: BTreeMap::new() }
    }

    /// Folds an operation on this message. Delete-for-me is per reader and
    /// kept apart; it changes nothing here.
    pub fn apply(&mut self, modified: &MessageModified) {
        match &modified.operation {
            Operation::Edit { content } if self.deleted_at.is_none() => {
                self.message.content = content.clone();
                self.edited_at = Some(modified.at);
            }
            Operation::DeleteForEveryone => {
                self.message.content.clear();
                self.message.attachment = None;
                self.reactions.clear();
                self.deleted_at = Some(modified.at);
            }
            Operation::React { emoji } if self.deleted_at.is_none() => {
                if emoji.is_empty() {
                    self.reactions.remove(&modified.by);
                } else {
                    self.reactions.insert(modified.by, emoji.clone());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId};

    fn modified(by: u64, operation: Operation, at: i64) -> MessageModified {
        MessageModified {
            conversation_id: ConversationId(1),
            conv_seq: ConvSeq(9),
            message_id: MessageId(5),
            target_seq: ConvSeq(1),
            by: UserId(by),
            by_device: DeviceId(by),
            operation,
            audience: Vec::new(),
            at: Millis(at),
        }
    }

    #[test]
    fn edits_reactions_and_tombstones_fold_into_the_message() {
        let mut message = HistoryMessage::new(MessageSent {
            conversation_id: ConversationId(1),
            conv_seq: ConvSeq(1),
            message_id: MessageId(5),
            from: UserId(1),
            from_device: DeviceId(1),
            members: vec![UserId(1), UserId(2)],
            client_msg_id: "c".into(),
            content: "helo".into(),
            reply_to: None,
            sent_at: Millis(0),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
        });
        message.apply(&modified(1, Operation::Edit { content: "hello".into() }, 10));
        message.apply(&modified(2, Operation::React { emoji: "👍".into() }, 11));
        message.apply(&modified(2, Operation::React { emoji: "❤️".into() }, 12));
        message.apply(&modified(1, Operation::React { emoji: "😂".into() }, 13));
        message.apply(&modified(1, Operation::React { emoji: String::new() }, 14));
        assert_eq!((message.message.content.as_str(), message.edited_at), ("hello", Some(Millis(10))));
        assert_eq!(message.reactions, BTreeMap::from([(UserId(2), "❤️".to_string())]), "one per member, removable");
        let json = serde_json::to_string(&message).expect("serialize");
        assert_eq!(serde_json::from_str::<HistoryMessage>(&json).expect("deserialize"), message);
        message.apply(&modified(1, Operation::DeleteForEveryone, 20));
        message.apply(&modified(1, Operation::Edit { content: "again".into() }, 21));
        assert_eq!(message.message.content, "");
        assert!(message.reactions.is_empty());
        assert_eq!(message.deleted_at, Some(Millis(20)));
    }
}
