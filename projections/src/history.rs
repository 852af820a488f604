//! A message as history shows it: the message as sent, folded with every
//! operation on it (the latest edit, a delete-for-everyone tombstone, one
//! reaction per member).

use std::collections::BTreeMap;

use missive_core::conversation::MessageSent;
use missive_core::operations::{MessageModified, Operation};
use missive_core::{ConversationId, Millis, UserId};

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
    /// The Megolm session of each encrypted reaction (its text is then ciphertext).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reaction_sessions: BTreeMap<UserId, String>,
    /// The content (and edit time) as a chat member who blocked the author
    /// last got it: the author's later edits never reached them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unedited_for: BTreeMap<UserId, (String, Option<Millis>)>,
    /// A reaction's author -> the chat members who blocked them and so never got it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reaction_withheld_from: BTreeMap<UserId, Vec<UserId>>,
}

impl HistoryMessage {
    pub fn new(message: MessageSent) -> HistoryMessage {
        HistoryMessage {
            message,
            edited_at: None,
            deleted_at: None,
            reactions: BTreeMap::new(),
            reaction_sessions: BTreeMap::new(),
            unedited_for: BTreeMap::new(),
            reaction_withheld_from: BTreeMap::new(),
        }
    }

    /// The 1:1 chat members who got the message but not this operation on
    /// it: the decider leaves a member who blocked the actor out of the
    /// audience of the actor's reactions and edits.
    fn cut_off(&self, modified: &MessageModified) -> Vec<UserId> {
        let members = &self.message.members;
        let chat = members.len() == 2 && modified.conversation_id == ConversationId::direct(members[0], members[1]);
        if !chat {
            return Vec::new();
        }
        members
            .iter()
            .copied()
            .filter(|member| {
                *member != modified.by
                    && !self.message.withheld_from.contains(member)
                    && !modified.audience.contains(member)
            })
            .collect()
    }

    /// The message as `viewer` got it: without what was withheld from them.
    pub fn seen_by(&self, viewer: UserId) -> HistoryMessage {
        let mut view = self.clone();
        if let Some((content, edited_at)) = view.unedited_for.remove(&viewer) {
            view.message.content = content;
            view.edited_at = edited_at;
        }
        view.reactions.retain(|by, _| !self.reaction_withheld_from.get(by).is_some_and(|from| from.contains(&viewer)));
        view.unedited_for.clear();
        view.reaction_withheld_from.clear();
        view
    }

    /// Folds an operation on this message. Delete-for-me is per reader and
    /// kept apart; it changes nothing here.
    pub fn apply(&mut self, modified: &MessageModified) {
        match &modified.operation {
            Operation::Edit { content } if self.deleted_at.is_none() => {
                for member in self.cut_off(modified) {
                    let seen = (self.message.content.clone(), self.edited_at);
                    self.unedited_for.entry(member).or_insert(seen);
                }
                // Unblocked since: this edit reached them.
                self.unedited_for.retain(|member, _| !modified.audience.contains(member));
                self.message.content = content.clone();
                self.message.session_id = modified.session_id.clone();
                self.edited_at = Some(modified.at);
            }
            Operation::DeleteForEveryone => {
                self.message.content.clear();
                self.message.session_id = None;
                self.message.attachment = None;
                self.reactions.clear();
                self.reaction_sessions.clear();
                self.unedited_for.clear();
                self.reaction_withheld_from.clear();
                self.deleted_at = Some(modified.at);
            }
            Operation::React { emoji } if self.deleted_at.is_none() => {
                let cut_off = self.cut_off(modified);
                if emoji.is_empty() || cut_off.is_empty() {
                    self.reaction_withheld_from.remove(&modified.by);
                } else {
                    self.reaction_withheld_from.insert(modified.by, cut_off);
                }
                if emoji.is_empty() {
                    self.reactions.remove(&modified.by);
                } else {
                    self.reactions.insert(modified.by, emoji.clone());
                }
                match &modified.session_id {
                    Some(session_id) if !emoji.is_empty() => {
                        self.reaction_sessions.insert(modified.by, session_id.clone())
                    }
                    _ => self.reaction_sessions.remove(&modified.by),
                };
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
            session_id: None,
        }
    }

    /// "helo" from `from` in a conversation of users 1 and 2.
    fn sent(conversation_id: ConversationId, from: UserId) -> MessageSent {
        MessageSent {
            conversation_id,
            conv_seq: ConvSeq(1),
            message_id: MessageId(5),
            from,
            from_device: DeviceId(from.0),
            members: vec![UserId(1), UserId(2)],
            client_msg_id: "c".into(),
            content: "helo".into(),
            reply_to: None,
            sent_at: Millis(0),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
            session_id: None,
        }
    }

    #[test]
    fn edits_reactions_and_tombstones_fold_into_the_message() {
        let mut message = HistoryMessage::new(sent(ConversationId(1), UserId(1)));
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

    #[test]
    fn a_chat_member_who_blocked_the_author_sees_the_message_as_they_got_it() {
        let (alice, bob) = (UserId(1), UserId(2));
        let chat = ConversationId::direct(alice, bob);
        let mut message = HistoryMessage::new(sent(chat, bob));
        let on_chat = |by: u64, operation, at, audience: &[UserId]| MessageModified {
            conversation_id: chat,
            audience: audience.to_vec(),
            ..modified(by, operation, at)
        };
        message.apply(&on_chat(2, Operation::Edit { content: "hello".into() }, 10, &[alice, bob]));
        // Alice blocks Bob: his next edit and reaction leave her out.
        message.apply(&on_chat(2, Operation::Edit { content: "hello!".into() }, 20, &[bob]));
        message.apply(&on_chat(2, Operation::Edit { content: "hello!!".into() }, 21, &[bob]));
        message.apply(&on_chat(2, Operation::React { emoji: "👍".into() }, 22, &[bob]));
        message.apply(&on_chat(1, Operation::React { emoji: "😂".into() }, 23, &[alice, bob]));
        let hers = message.seen_by(alice);
        assert_eq!((hers.message.content.as_str(), hers.edited_at), ("hello", Some(Millis(10))));
        assert_eq!(hers.reactions, BTreeMap::from([(alice, "😂".to_string())]));
        let his = message.seen_by(bob);
        assert_eq!((his.message.content.as_str(), his.edited_at), ("hello!!", Some(Millis(21))));
        assert_eq!(his.reactions.len(), 2);
        let json = serde_json::to_string(&message).expect("serialize");
        assert_eq!(serde_json::from_str::<HistoryMessage>(&json).expect("deserialize"), message);
        // Unblocked: the next edit reaches her, and her history shows it.
        let mut unblocked = message.clone();
        unblocked.apply(&on_chat(2, Operation::Edit { content: "hi".into() }, 25, &[alice, bob]));
        assert_eq!(unblocked.seen_by(alice).message.content, "hi");
        message.apply(&on_chat(2, Operation::DeleteForEveryone, 30, &[alice, bob]));
        assert_eq!(message.seen_by(alice).message.content, "", "a retraction reaches everyone");
    }
}
