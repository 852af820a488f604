//! Operations on a recorded message: edit, delete for everyone, reactions and
//! delete for me. Each is decided in the message's conversation and recorded
//! as a `MessageModified` event with its own `conv_seq`, so it reaches the
//! members' feeds in order after the message it changes — offline members
//! get it on reconnect, history folds it into the message.

use crate::conversation::{ConversationEvent, ConversationState, Rejection, StoredMessage, body_limit};
use crate::ids::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};

/// How long after sending a message its sender may edit it.
pub const EDIT_WINDOW_MS: i64 = 15 * 60 * 1000;
/// How long after sending a message it may be deleted for everyone (default).
pub const DELETE_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Longest reaction (one emoji, possibly a multi-code-point sequence).
pub const MAX_REACTION_BYTES: usize = 64;
/// Largest encrypted reaction: the Megolm ciphertext of one emoji, in base64.
pub const MAX_ENCRYPTED_REACTION_BYTES: usize = 1024;

/// The time limits of operations; the delete window is configurable per deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationWindows {
    pub edit_ms: i64,
    pub delete_ms: i64,
}

impl Default for OperationWindows {
    fn default() -> OperationWindows {
        OperationWindows { edit_ms: EDIT_WINDOW_MS, delete_ms: DELETE_WINDOW_MS }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Operation {
    /// New content for the whole message (the sender, within the edit window).
    Edit { content: String },
    /// A tombstone for every member (the sender, or a group admin, within the delete window).
    DeleteForEveryone,
    /// Hides the message from the acting user's own history and devices only.
    DeleteForMe,
    /// The acting member's reaction; empty removes it. One per member: a new one replaces.
    React { emoji: String },
}

impl Operation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Edit { .. } => "edit",
            Operation::DeleteForEveryone => "delete_for_everyone",
            Operation::DeleteForMe => "delete_for_me",
            Operation::React { .. } => "react",
        }
    }
}

/// A member asks to change message `message_id`, which the gateway found
/// at `target_seq` (the decider checks the two match).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModifyMessage {
    pub conversation_id: ConversationId,
    pub by: UserId,
    pub by_device: DeviceId,
    pub message_id: MessageId,
    pub target_seq: ConvSeq,
    pub operation: Operation,
    /// Set when the edit's content or the reaction is ciphertext of this Megolm session.
    pub session_id: Option<String>,
}

/// A recorded operation: its own position, the message it changes, and who hears of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageModified {
    pub conversation_id: ConversationId,
    pub conv_seq: ConvSeq,
    pub message_id: MessageId,
    pub target_seq: ConvSeq,
    pub by: UserId,
    pub by_device: DeviceId,
    pub operation: Operation,
    /// Members whose feeds carry the change: those who received the message
    /// (only the actor for delete-for-me).
    pub audience: Vec<UserId>,
    pub at: Millis,
    /// Set when the edit's content or the reaction is ciphertext of this Megolm session.
    pub session_id: Option<String>,
}

/// What an operation needs beyond membership, visibility and time: who
/// may (the sender; for a delete for everyone also a group admin), whether
/// the message is still there, and what the new body may be. `from` and
/// `deleted` describe the target message; `encrypted` the operation's body.
/// Gateways run it before appending (so they refuse at once what the
/// decider would refuse); [`decide_modify`] runs it too.
pub fn check_operation(
    from: UserId,
    deleted: bool,
    by: UserId,
    admin: bool,
    operation: &Operation,
    encrypted: bool,
) -> Result<(), Rejection> {
    match operation {
        Operation::DeleteForMe => {}
        _ if deleted => return Err(Rejection::Deleted),
        Operation::Edit { content } => {
            if from != by {
                return Err(Rejection::Forbidden);
            }
            if content.len() > body_limit(encrypted) {
                return Err(Rejection::TooLarge);
            }
            if content.is_empty() {
                return Err(Rejection::BadRequest("an edit needs content; delete the message instead"));
            }
        }
        Operation::DeleteForEveryone => {
            if from != by && !admin {
                return Err(Rejection::Forbidden);
            }
        }
        Operation::React { emoji } if encrypted => {
            if emoji.len() > MAX_ENCRYPTED_REACTION_BYTES {
                return Err(Rejection::BadRequest("an encrypted reaction is at most 1024 bytes of ciphertext"));
            }
        }
        Operation::React { emoji } => {
            if emoji.len() > MAX_REACTION_BYTES || emoji.chars().any(char::is_control) {
                return Err(Rejection::BadRequest("a reaction is one emoji (at most 64 bytes)"));
            }
        }
    }
    Ok(())
}

/// Decides an operation. `target` is the message the shell found at
/// `command.target_seq`, if any.
pub fn decide_modify(
    state: &ConversationState,
    command: &ModifyMessage,
    target: Option<&StoredMessage>,
    windows: OperationWindows,
    now: Millis,
) -> Result<Vec<ConversationEvent>, Rejection> {
    if state.members.binary_search(&command.by).is_err() {
        return Err(Rejection::NotMember);
    }
    let Some(target) = target.filter(|target| target.message_id == command.message_id) else {
        return Err(Rejection::NoSuchMessage);
    };
    let earlier_history = state.group.as_ref().is_some_and(|group| group.settings.history_for_new_members);
    let visible = target.from == command.by || state.received(command.by, target.conv_seq) || earlier_history;
    if target.withheld_from.contains(&command.by) || !visible {
        return Err(Rejection::NoSuchMessage);
    }
    let admin = state.group.as_ref().is_some_and(|group| group.admins.contains(&command.by));
    let encrypted = command.session_id.is_some();
    check_operation(target.from, target.deleted, command.by, admin, &command.operation, encrypted)?;
    let age = now.0 - target.sent_at.0;
    match &command.operation {
        Operation::Edit { .. } if age > windows.edit_ms => {
            return Err(Rejection::TooLate("messages can be edited for 15 minutes"));
        }
        Operation::DeleteForEveryone if age > windows.delete_ms => {
            return Err(Rejection::TooLate("the window for deleting for everyone has passed"));
        }
        _ => {}
    }
    // In a 1:1 chat, a member who blocked the actor gets none of the actor's
    // reactions and edits (a delete for everyone still removes the content
    // everywhere). In groups a blocked member stays visible, as in WhatsApp.
    let cut_off = |member: &UserId| {
        state.group.is_none()
            && *member != command.by
            && state.blocked_by.contains(member)
            && matches!(command.operation, Operation::React { .. } | Operation::Edit { .. })
    };
    let audience = match command.operation {
        Operation::DeleteForMe => vec![command.by],
        _ => state
            .members
            .iter()
            .copied()
            .filter(|member| {
                (*member == target.from
                    || (!target.withheld_from.contains(member) && state.received(*member, target.conv_seq)))
                    && !cut_off(member)
            })
            .collect(),
    };
    Ok(vec![ConversationEvent::MessageModified(MessageModified {
        conversation_id: command.conversation_id,
        conv_seq: state.last_seq.next(),
        message_id: command.message_id,
        target_seq: target.conv_seq,
        by: command.by,
        by_device: command.by_device,
        operation: command.operation.clone(),
        audience,
        at: now,
        session_id: command.session_id.clone(),
    })])
}

/// Folds an operation into the decider's index entry of its message.
pub fn evolve_stored(mut stored: StoredMessage, modified: &MessageModified) -> StoredMessage {
    if modified.operation == Operation::DeleteForEveryone {
        stored.deleted = true;
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{self, SendMessage};
    use crate::groups::{GroupChange, GroupCommand, GroupInfo, GroupSettings, decide_group};

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const CAROL: UserId = UserId(3);
    const GROUP: ConversationId = ConversationId(500);

    fn group_with_message() -> (ConversationState, StoredMessage) {
        let create = GroupCommand {
            conversation_id: GROUP,
            by: ALICE,
            change: GroupChange::Create {
                info: GroupInfo { name: "g".into(), ..GroupInfo::default() },
                settings: GroupSettings::default(),
                members: vec![BOB],
                max_members: 0,
            },
        };
        let events = decide_group(&ConversationState::default(), &create, Millis(0)).expect("created");
        let state = events.iter().fold(ConversationState::default(), conversation::evolve);
        let send = SendMessage {
            conversation_id: GROUP,
            message_id: MessageId(9),
            from: BOB,
            from_device: DeviceId(20),
            to: UserId(0),
            client_msg_id: "c".into(),
            content: "hi".into(),
            reply_to: None,
            forward_count: 0,
            attachment: None,
            session_id: None,
        };
        let (_, events) = conversation::decide_send(&state, &send, None, Millis(1_000)).expect("sent");
        let ConversationEvent::MessageSent(message) = &events[0] else { panic!("a message") };
        let stored = StoredMessage::of(message);
        (events.iter().fold(state, conversation::evolve), stored)
    }

    fn modify(by: UserId, operation: Operation) -> ModifyMessage {
        ModifyMessage {
            conversation_id: GROUP,
            by,
            by_device: DeviceId(by.0 * 10),
            message_id: MessageId(9),
            target_seq: ConvSeq(2),
            operation,
            session_id: None,
        }
    }

    fn decide(
        state: &ConversationState,
        stored: &StoredMessage,
        command: &ModifyMessage,
        now: i64,
    ) -> Result<MessageModified, Rejection> {
        let events = decide_modify(state, command, Some(stored), OperationWindows::default(), Millis(now))?;
        let Some(ConversationEvent::MessageModified(modified)) = events.into_iter().next() else { panic!("one event") };
        Ok(modified)
    }

    #[test]
    fn edits_belong_to_the_sender_within_fifteen_minutes() {
        let (state, stored) = group_with_message();
        let edit = |by| modify(by, Operation::Edit { content: "hello".into() });
        let modified = decide(&state, &stored, &edit(BOB), 1_000 + EDIT_WINDOW_MS).expect("in time");
        assert_eq!((modified.conv_seq, modified.target_seq), (ConvSeq(3), ConvSeq(2)));
        assert_eq!(modified.audience, vec![ALICE, BOB]);
        assert_eq!(decide(&state, &stored, &edit(ALICE), 2_000), Err(Rejection::Forbidden));
        assert!(matches!(decide(&state, &stored, &edit(BOB), 1_001 + EDIT_WINDOW_MS), Err(Rejection::TooLate(_))));
    }

    #[test]
    fn admins_and_senders_delete_for_everyone_within_the_window_and_only_once() {
        let (state, stored) = group_with_message();
        let delete = |by| modify(by, Operation::DeleteForEveryone);
        assert!(decide(&state, &stored, &delete(ALICE), 5_000).is_ok(), "alice is the admin");
        let modified = decide(&state, &stored, &delete(BOB), 5_000).expect("the sender");
        let stored = evolve_stored(stored, &modified);
        assert_eq!(decide(&state, &stored, &delete(BOB), 6_000), Err(Rejection::Deleted));
        let react = modify(ALICE, Operation::React { emoji: "👍".into() });
        assert_eq!(decide(&state, &stored, &react, 6_000), Err(Rejection::Deleted));
        let hide = decide(&state, &stored, &modify(ALICE, Operation::DeleteForMe), 6_000).expect("always");
        assert_eq!(hide.audience, vec![ALICE]);
        let (state, stored) = group_with_message();
        let late = decide(&state, &stored, &delete(BOB), 1_001 + DELETE_WINDOW_MS);
        assert!(matches!(late, Err(Rejection::TooLate(_))));
    }

    #[test]
    fn members_who_joined_later_or_never_cannot_touch_the_message() {
        let (state, stored) = group_with_message();
        let react = |by| modify(by, Operation::React { emoji: "❤️".into() });
        assert_eq!(decide(&state, &stored, &react(CAROL), 2_000), Err(Rejection::NotMember));
        let add =
            GroupCommand { conversation_id: GROUP, by: ALICE, change: GroupChange::AddMembers { users: vec![CAROL] } };
        let events = decide_group(&state, &add, Millis(2_000)).expect("added");
        let state = events.iter().fold(state, conversation::evolve);
        assert_eq!(decide(&state, &stored, &react(CAROL), 3_000), Err(Rejection::NoSuchMessage));
        let modified = decide(&state, &stored, &react(ALICE), 3_000).expect("alice got it");
        assert_eq!(modified.audience, vec![ALICE, BOB], "carol never received the message");
        let wrong = ModifyMessage { message_id: MessageId(10), ..react(ALICE) };
        assert_eq!(decide(&state, &stored, &wrong, 3_000), Err(Rejection::NoSuchMessage));
        let long = modify(ALICE, Operation::React { emoji: "x".repeat(65) });
        assert!(matches!(decide(&state, &stored, &long, 3_000), Err(Rejection::BadRequest(_))));
    }

    #[test]
    fn in_a_chat_the_blocker_gets_no_reactions_or_edits_from_the_blocked_member() {
        let chat = ConversationId::direct(ALICE, BOB);
        let send = SendMessage {
            conversation_id: chat,
            message_id: MessageId(9),
            from: BOB,
            from_device: DeviceId(20),
            to: ALICE,
            client_msg_id: "c".into(),
            content: "hi".into(),
            reply_to: None,
            forward_count: 0,
            attachment: None,
            session_id: None,
        };
        let (_, events) =
            conversation::decide_send(&ConversationState::default(), &send, None, Millis(1_000)).expect("sent");
        let ConversationEvent::MessageSent(message) = &events[0] else { panic!("a message") };
        let stored = StoredMessage::of(message);
        let state = events.iter().fold(ConversationState::default(), conversation::evolve);
        let block = conversation::SetBlock { conversation_id: chat, blocker: ALICE, target: BOB, blocked: true };
        let state = conversation::decide_block(&state, &block).expect("decided").expect("changed");
        let on_chat =
            |by, operation| ModifyMessage { conversation_id: chat, target_seq: ConvSeq(1), ..modify(by, operation) };
        let audience =
            |by, operation| decide(&state, &stored, &on_chat(by, operation), 2_000).expect("decided").audience;
        assert_eq!(audience(BOB, Operation::React { emoji: "👍".into() }), vec![BOB]);
        assert_eq!(audience(BOB, Operation::Edit { content: "hey".into() }), vec![BOB]);
        assert_eq!(audience(BOB, Operation::DeleteForEveryone), vec![ALICE, BOB], "a retraction still reaches her");
        assert_eq!(audience(ALICE, Operation::React { emoji: "👍".into() }), vec![ALICE, BOB]);
    }
}
