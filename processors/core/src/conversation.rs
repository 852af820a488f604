//! The conversation decider: 1:1 conversations, gap-free `conv_seq`,
//! idempotent sends and delivered/read watermarks.
//!
//! `decide` is a pure function of the conversation's state, the command and
//! the few facts the shell looked up for it (a prior send with the same
//! client id, the messages a receipt covers). `evolve` folds an event into the
//! state. The processor runtime owns storage; nothing here does I/O.

use std::collections::BTreeMap;

use crate::groups::{Group, GroupChanged, GroupCommand};
use crate::ids::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
use crate::media::Attachment;
use crate::operations::{MessageModified, ModifyMessage};

/// Largest message body, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 65_536;
/// Longest accepted `client_msg_id`.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 128;
/// How long `(device, client_msg_id)` is remembered for deduplication.
pub const DEDUPE_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendMessage {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub from: UserId,
    pub from_device: DeviceId,
    pub to: UserId,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<MessageId>,
    /// How many times the content was forwarded to get here (0: written by the sender).
    pub forward_count: u32,
    /// Media reference, location or contact card.
    pub attachment: Option<Attachment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReceiptStatus {
    Delivered,
    Read,
}

impl ReceiptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Read => "read",
        }
    }
}

/// A member says it has received (or read) everything up to `up_to`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MarkReceipt {
    pub conversation_id: ConversationId,
    pub by: UserId,
    pub status: ReceiptStatus,
    pub up_to: ConvSeq,
    /// False when read receipts are off for this chat (either side turned
    /// them off): the watermark moves, but senders get no read tick.
    pub notify: bool,
}

/// `blocker` blocked (or unblocked) the other member of a 1:1 conversation:
/// from now on the other member's messages are withheld from the blocker.
/// Sent by the users processor when it records a block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetBlock {
    pub conversation_id: ConversationId,
    pub blocker: UserId,
    pub target: UserId,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConversationCommand {
    Send(SendMessage),
    Receipt(MarkReceipt),
    Block(SetBlock),
    Group(GroupCommand),
    Modify(ModifyMessage),
}

impl ConversationCommand {
    pub fn conversation_id(&self) -> ConversationId {
        match self {
            ConversationCommand::Send(send) => send.conversation_id,
            ConversationCommand::Receipt(mark) => mark.conversation_id,
            ConversationCommand::Block(block) => block.conversation_id,
            ConversationCommand::Group(group) => group.conversation_id,
            ConversationCommand::Modify(modify) => modify.conversation_id,
        }
    }
}

/// A message as the conversation log records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageSent {
    pub conversation_id: ConversationId,
    pub conv_seq: ConvSeq,
    pub message_id: MessageId,
    pub from: UserId,
    pub from_device: DeviceId,
    pub members: Vec<UserId>,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<MessageId>,
    pub sent_at: Millis,
    /// Members who blocked the sender: the message is accepted (the sender
    /// sees one tick) but never reaches them, nor their history.
    pub withheld_from: Vec<UserId>,
    /// 0 for an original message; otherwise how often its content was forwarded.
    pub forward_count: u32,
    /// Media reference, location or contact card.
    pub attachment: Option<Attachment>,
}

impl MessageSent {
    /// Sent to more than one other member: its copies leave the member list
    /// out and share records per inbox partition.
    pub fn is_group(&self) -> bool {
        self.members.len() > 2
    }

    /// Members the message is for: everyone but the sender and those it is withheld from.
    pub fn recipients(&self) -> impl Iterator<Item = UserId> + '_ {
        self.members.iter().copied().filter(|member| *member != self.from && !self.withheld_from.contains(member))
    }
}

/// Which message a receipt is about, and whom to tell: `count` of its `of`
/// recipients have now reached the receipt's status (`delivered 3/5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageRef {
    pub message_id: MessageId,
    pub conv_seq: ConvSeq,
    pub from: UserId,
    pub count: u32,
    pub of: u32,
}

/// A message as the decider's index keeps it: for receipts (how many of its
/// recipients got and read it: counters, not a row per member) and for
/// operations on it (who sent it, when, whether it is deleted).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StoredMessage {
    pub message_id: MessageId,
    pub conv_seq: ConvSeq,
    pub from: UserId,
    #[serde(default)]
    pub withheld_from: Vec<UserId>,
    #[serde(default)]
    pub sent_at: Millis,
    #[serde(default)]
    pub recipients: u32,
    #[serde(default)]
    pub delivered: u32,
    #[serde(default)]
    pub read: u32,
    #[serde(default)]
    pub deleted: bool,
}

impl StoredMessage {
    pub fn of(message: &MessageSent) -> StoredMessage {
        StoredMessage {
            message_id: message.message_id,
            conv_seq: message.conv_seq,
            from: message.from,
            withheld_from: message.withheld_from.clone(),
            sent_at: message.sent_at,
            recipients: message.recipients().count() as u32,
            delivered: 0,
            read: 0,
            deleted: false,
        }
    }

    /// Takes the counts a receipt event carries for this message; returns
    /// whether the entry changed. A message with one recipient (1:1, or a
    /// group of two) keeps no counts: its recipient's watermarks already
    /// say everything, and [`decide_receipt`] never counts it past 1, so a
    /// receipt does not rewrite its index entry.
    pub fn record(&mut self, status: ReceiptStatus, count: u32) -> bool {
        if self.recipients <= 1 {
            return false;
        }
        let slot = match status {
            ReceiptStatus::Delivered => &mut self.delivered,
            ReceiptStatus::Read => &mut self.read,
        };
        let changed = count > *slot;
        *slot = (*slot).max(count);
        changed
    }
}

/// A member's delivered or read watermark moved; `messages` are the other
/// members' messages it newly covers (their senders get a receipt each).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptsAdvanced {
    pub conversation_id: ConversationId,
    pub by: UserId,
    pub status: ReceiptStatus,
    pub up_to: ConvSeq,
    pub at: Millis,
    pub messages: Vec<MessageRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConversationEvent {
    MessageSent(MessageSent),
    ReceiptsAdvanced(ReceiptsAdvanced),
    GroupChanged(GroupChanged),
    MessageModified(MessageModified),
}

impl ConversationEvent {
    pub fn conversation_id(&self) -> ConversationId {
        match self {
            ConversationEvent::MessageSent(message) => message.conversation_id,
            ConversationEvent::ReceiptsAdvanced(advanced) => advanced.conversation_id,
            ConversationEvent::GroupChanged(changed) => changed.conversation_id,
            ConversationEvent::MessageModified(modified) => modified.conversation_id,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Watermarks {
    pub delivered: ConvSeq,
    pub read: ConvSeq,
}

/// Everything the decider needs to know about one conversation.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ConversationState {
    /// Sorted; empty until the first message creates the conversation.
    pub members: Vec<UserId>,
    pub last_seq: ConvSeq,
    /// Members who blocked the other member (1:1 conversations).
    #[serde(default)]
    pub blocked_by: Vec<UserId>,
    /// Set for groups: admins, info, settings.
    #[serde(default)]
    pub group: Option<Group>,
    /// Where each group member joined (absent: from the start).
    #[serde(default)]
    pub joined: BTreeMap<UserId, ConvSeq>,
}

impl ConversationState {
    /// Whether `user` is a member who received the message at `seq`.
    pub fn received(&self, user: UserId, seq: ConvSeq) -> bool {
        self.members.binary_search(&user).is_ok() && self.joined.get(&user).is_none_or(|joined| *joined < seq)
    }
}

/// An earlier send with the same `(device, client_msg_id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PriorSend {
    pub message_id: MessageId,
    pub conv_seq: ConvSeq,
    pub at: Millis,
}

/// Why a command was refused. Codes are part of the client protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the conversation id does not belong to these two users")]
    WrongConversation,
    #[error("you are not a member of this conversation")]
    NotMember,
    #[error("message content is over {MAX_CONTENT_BYTES} bytes")]
    TooLarge,
    #[error("client_msg_id must be 1..={MAX_CLIENT_MSG_ID_BYTES} bytes")]
    BadClientMsgId,
    #[error("this conversation is not a group")]
    NotAGroup,
    #[error("this group already exists")]
    AlreadyExists,
    #[error("only group admins may do that")]
    Forbidden,
    #[error("the group is full")]
    TooManyMembers,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("no such message in this conversation")]
    NoSuchMessage,
    #[error("that message was deleted")]
    Deleted,
    #[error("too late: {0}")]
    TooLate(&'static str),
    #[error("you have no open invite to this group")]
    NoInvite,
    #[error("the invite has expired; ask an admin of the group for a new one")]
    InviteExpired,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::WrongConversation => "wrong_conversation",
            Rejection::NotMember => "not_member",
            Rejection::TooLarge => "too_large",
            Rejection::BadClientMsgId => "bad_frame",
            Rejection::NotAGroup => "not_found",
            Rejection::AlreadyExists => "conflict",
            Rejection::Forbidden => "forbidden",
            Rejection::TooManyMembers => "too_many_members",
            Rejection::BadRequest(_) => "bad_request",
            Rejection::NoSuchMessage => "not_found",
            Rejection::Deleted => "message_deleted",
            Rejection::TooLate(_) => "too_late",
            Rejection::NoInvite => "no_invite",
            Rejection::InviteExpired => "invite_expired",
        }
    }
}

/// What the sender is told.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SendOutcome {
    Accepted {
        message_id: MessageId,
        conv_seq: ConvSeq,
    },
    /// A retry: the original message's identity, nothing new is recorded.
    Duplicate {
        message_id: MessageId,
        conv_seq: ConvSeq,
    },
}

/// Decides a send. `prior` is the earlier send with the same
/// `(from_device, client_msg_id)` if the shell found one.
pub fn decide_send(
    state: &ConversationState,
    send: &SendMessage,
    prior: Option<PriorSend>,
    now: Millis,
) -> Result<(SendOutcome, Vec<ConversationEvent>), Rejection> {
    if send.content.len() > MAX_CONTENT_BYTES {
        return Err(Rejection::TooLarge);
    }
    if send.client_msg_id.is_empty() || send.client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(Rejection::BadClientMsgId);
    }
    if let Some(group) = &state.group {
        if state.members.binary_search(&send.from).is_err() {
            return Err(Rejection::NotMember);
        }
        if group.settings.only_admins_send && !group.admins.contains(&send.from) {
            return Err(Rejection::Forbidden);
        }
    } else if ConversationId::direct(send.from, send.to) != send.conversation_id {
        return Err(Rejection::WrongConversation);
    }
    if !state.members.is_empty() && state.members.binary_search(&send.from).is_err() {
        return Err(Rejection::NotMember);
    }
    if let Some(prior) = prior
        && now.0 - prior.at.0 <= DEDUPE_WINDOW_MS
    {
        let outcome = SendOutcome::Duplicate { message_id: prior.message_id, conv_seq: prior.conv_seq };
        return Ok((outcome, Vec::new()));
    }
    let members = if state.members.is_empty() {
        let mut members = vec![send.from, send.to];
        members.sort();
        members.dedup();
        members
    } else {
        state.members.clone()
    };
    let conv_seq = state.last_seq.next();
    let withheld_from =
        if state.blocked_by.contains(&send.to) && send.to != send.from { vec![send.to] } else { Vec::new() };
    let event = MessageSent {
        conversation_id: send.conversation_id,
        conv_seq,
        message_id: send.message_id,
        from: send.from,
        from_device: send.from_device,
        members,
        client_msg_id: send.client_msg_id.clone(),
        content: send.content.clone(),
        reply_to: send.reply_to,
        sent_at: now,
        withheld_from,
        forward_count: send.forward_count,
        attachment: send.attachment.clone(),
    };
    let outcome = SendOutcome::Accepted { message_id: send.message_id, conv_seq };
    Ok((outcome, vec![ConversationEvent::MessageSent(event)]))
}

/// A member's watermarks: the stored ones (kept beside the conversation
/// state, one small record per member, so a receipt never rewrites the
/// whole group's state), never below where the member joined — a member
/// added at N received nothing before N, and one re-added starts afresh.
pub fn member_marks(state: &ConversationState, member: UserId, stored: Option<Watermarks>) -> Watermarks {
    let joined = state.joined.get(&member).copied().unwrap_or_default();
    let stored = stored.unwrap_or_default();
    Watermarks { delivered: stored.delivered.max(joined), read: stored.read.max(joined) }
}

/// Folds a receipt event into the watermarks of the member who moved them.
pub fn evolve_marks(marks: Watermarks, advanced: &ReceiptsAdvanced) -> Watermarks {
    match advanced.status {
        ReceiptStatus::Delivered => Watermarks { delivered: marks.delivered.max(advanced.up_to), ..marks },
        ReceiptStatus::Read => Watermarks { read: marks.read.max(advanced.up_to), ..marks },
    }
}

/// The range of `conv_seq` a receipt would newly cover, clamped to what exists;
/// `None` when the watermark would not move. `marks` are the marking
/// member's ([`member_marks`]). The shell loads the messages in this range
/// and hands them to [`decide_receipt`].
pub fn receipt_range(state: &ConversationState, marks: Watermarks, mark: &MarkReceipt) -> Option<(ConvSeq, ConvSeq)> {
    let current = match mark.status {
        ReceiptStatus::Delivered => marks.delivered,
        ReceiptStatus::Read => marks.read,
    };
    let up_to = ConvSeq(mark.up_to.0.min(state.last_seq.0));
    (up_to > current).then_some((current.next(), up_to))
}

/// Decides a delivered/read mark. `covered` are the messages in
/// [`receipt_range`], in order. Reading implies delivery, so a read mark
/// that passes the delivered watermark advances both.
pub fn decide_receipt(
    state: &ConversationState,
    marks: Watermarks,
    mark: &MarkReceipt,
    covered: &[StoredMessage],
    now: Millis,
) -> Result<Vec<ConversationEvent>, Rejection> {
    if state.members.binary_search(&mark.by).is_err() {
        return Err(Rejection::NotMember);
    }
    let Some((_, up_to)) = receipt_range(state, marks, mark) else {
        return Ok(Vec::new());
    };
    // The other members' messages the mark newly covers, each with how many
    // of its recipients have now reached `status` (this member included).
    let others = |after: ConvSeq, status: ReceiptStatus| -> Vec<MessageRef> {
        covered
            .iter()
            // A message withheld from the reader was never delivered to it.
            .filter(|stored| !stored.withheld_from.contains(&mark.by))
            .filter(|stored| stored.from != mark.by && stored.conv_seq > after && stored.conv_seq <= up_to)
            .map(|stored| {
                let before = match status {
                    ReceiptStatus::Delivered => stored.delivered,
                    ReceiptStatus::Read => stored.read,
                };
                MessageRef {
                    message_id: stored.message_id,
                    conv_seq: stored.conv_seq,
                    from: stored.from,
                    count: (before + 1).min(stored.recipients.max(1)),
                    of: stored.recipients,
                }
            })
            .collect()
    };
    let mut events = Vec::new();
    if mark.status == ReceiptStatus::Read && up_to > marks.delivered {
        events.push(ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
            conversation_id: mark.conversation_id,
            by: mark.by,
            status: ReceiptStatus::Delivered,
            up_to,
            at: now,
            messages: others(marks.delivered, ReceiptStatus::Delivered),
        }));
    }
    let after = match mark.status {
        ReceiptStatus::Delivered => marks.delivered,
        ReceiptStatus::Read => marks.read,
    };
    events.push(ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
        conversation_id: mark.conversation_id,
        by: mark.by,
        status: mark.status,
        up_to,
        at: now,
        messages: if mark.status == ReceiptStatus::Read && !mark.notify {
            Vec::new()
        } else {
            others(after, mark.status)
        },
    }));
    Ok(events)
}

/// Records a block in a 1:1 conversation's state; `None` when nothing changes.
pub fn decide_block(state: &ConversationState, block: &SetBlock) -> Result<Option<ConversationState>, Rejection> {
    if ConversationId::direct(block.blocker, block.target) != block.conversation_id {
        return Err(Rejection::WrongConversation);
    }
    if state.blocked_by.contains(&block.blocker) == block.blocked {
        return Ok(None);
    }
    let mut next = state.clone();
    if block.blocked {
        next.blocked_by.push(block.blocker);
        next.blocked_by.sort();
    } else {
        next.blocked_by.retain(|user| *user != block.blocker);
    }
    Ok(Some(next))
}

/// Folds one event into the conversation state.
pub fn evolve(mut state: ConversationState, event: &ConversationEvent) -> ConversationState {
    match event {
        ConversationEvent::MessageSent(sent) => {
            if state.members.is_empty() {
                state.members = sent.members.clone();
            }
            // Watermarks stay put: sending does not mark the other side's
            // messages read; only an explicit mark (which sends receipts) does.
            state.last_seq = sent.conv_seq;
        }
        ConversationEvent::GroupChanged(changed) => return crate::groups::evolve_group(state, changed),
        ConversationEvent::MessageModified(modified) => state.last_seq = modified.conv_seq,
        // Watermarks live beside the state: see `evolve_marks`.
        ConversationEvent::ReceiptsAdvanced(_) => {}
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const MALLORY: UserId = UserId(3);

    fn send(from: UserId, to: UserId, client_msg_id: &str, message_id: u64) -> SendMessage {
        SendMessage {
            conversation_id: ConversationId::direct(from, to),
            message_id: MessageId(message_id),
            from,
            from_device: DeviceId(from.0 * 10),
            to,
            client_msg_id: client_msg_id.to_string(),
            content: format!("hello {message_id}"),
            reply_to: None,
            forward_count: 0,
            attachment: None,
        }
    }

    fn given(events: &[ConversationEvent]) -> ConversationState {
        events.iter().fold(ConversationState::default(), evolve)
    }

    fn sent(state: &ConversationState, command: &SendMessage) -> ConversationEvent {
        let (_, events) = decide_send(state, command, None, Millis(1000)).expect("accepted");
        events.into_iter().next().expect("one event")
    }

    #[test]
    fn first_send_creates_the_conversation_at_seq_one() {
        let command = send(ALICE, BOB, "c1", 100);
        let (outcome, events) = decide_send(&ConversationState::default(), &command, None, Millis(5)).expect("ok");
        assert_eq!(outcome, SendOutcome::Accepted { message_id: MessageId(100), conv_seq: ConvSeq(1) });
        let ConversationEvent::MessageSent(message) = &events[0] else { panic!("expected a message") };
        assert_eq!(message.members, vec![ALICE, BOB]);
        assert_eq!(message.sent_at, Millis(5));
    }

    #[test]
    fn sequence_is_gap_free_across_both_senders() {
        let mut state = ConversationState::default();
        for index in 0..10u64 {
            let (from, to) = if index % 3 == 0 { (BOB, ALICE) } else { (ALICE, BOB) };
            let event = sent(&state, &send(from, to, &format!("c{index}"), 100 + index));
            state = evolve(state, &event);
            assert_eq!(state.last_seq, ConvSeq(index + 1));
        }
    }

    #[test]
    fn retry_returns_the_original_identity_and_records_nothing() {
        let state = given(&[sent(&ConversationState::default(), &send(ALICE, BOB, "c1", 100))]);
        let prior = PriorSend { message_id: MessageId(100), conv_seq: ConvSeq(1), at: Millis(1000) };
        let retry = send(ALICE, BOB, "c1", 999);
        let (outcome, events) = decide_send(&state, &retry, Some(prior), Millis(2000)).expect("ok");
        assert_eq!(outcome, SendOutcome::Duplicate { message_id: MessageId(100), conv_seq: ConvSeq(1) });
        assert!(events.is_empty());
    }

    #[test]
    fn a_stale_prior_outside_the_window_is_a_new_message() {
        let state = given(&[sent(&ConversationState::default(), &send(ALICE, BOB, "c1", 100))]);
        let prior = PriorSend { message_id: MessageId(100), conv_seq: ConvSeq(1), at: Millis(0) };
        let (outcome, _) =
            decide_send(&state, &send(ALICE, BOB, "c1", 101), Some(prior), Millis(DEDUPE_WINDOW_MS + 1)).expect("ok");
        assert_eq!(outcome, SendOutcome::Accepted { message_id: MessageId(101), conv_seq: ConvSeq(2) });
    }

    #[test]
    fn refusals_carry_stable_codes() {
        let empty = ConversationState::default();
        let mut big = send(ALICE, BOB, "c1", 1);
        big.content = "x".repeat(MAX_CONTENT_BYTES + 1);
        assert_eq!(decide_send(&empty, &big, None, Millis(0)).map(|_| ()), Err(Rejection::TooLarge));
        let mut forged = send(ALICE, BOB, "c1", 1);
        forged.conversation_id = ConversationId(42);
        assert_eq!(
            decide_send(&empty, &forged, None, Millis(0)).map(|_| ()).map_err(|r| r.code()),
            Err("wrong_conversation")
        );
        let no_id = send(ALICE, BOB, "", 1);
        assert_eq!(decide_send(&empty, &no_id, None, Millis(0)).map(|_| ()), Err(Rejection::BadClientMsgId));
        let state = given(&[sent(&empty, &send(ALICE, BOB, "c1", 1))]);
        let mark = MarkReceipt {
            conversation_id: ConversationId::direct(ALICE, BOB),
            by: MALLORY,
            status: ReceiptStatus::Read,
            up_to: ConvSeq(1),
            notify: true,
        };
        assert_eq!(decide_receipt(&state, Watermarks::default(), &mark, &[], Millis(0)), Err(Rejection::NotMember));
    }

    #[test]
    fn read_covers_only_the_other_members_messages_and_implies_delivery() {
        let mut state = ConversationState::default();
        let mut refs = Vec::new();
        for (index, (from, to)) in [(ALICE, BOB), (BOB, ALICE), (ALICE, BOB)].into_iter().enumerate() {
            let event = sent(&state, &send(from, to, &format!("c{index}"), 10 + index as u64));
            if let ConversationEvent::MessageSent(message) = &event {
                refs.push(StoredMessage::of(message));
            }
            state = evolve(state, &event);
        }
        let mark = MarkReceipt {
            conversation_id: ConversationId::direct(ALICE, BOB),
            by: BOB,
            status: ReceiptStatus::Read,
            up_to: ConvSeq(99),
            notify: true,
        };
        let marks = Watermarks::default();
        assert_eq!(receipt_range(&state, marks, &mark), Some((ConvSeq(1), ConvSeq(3))));
        let events = decide_receipt(&state, marks, &mark, &refs, Millis(7)).expect("ok");
        assert_eq!(events.len(), 2, "delivered then read");
        for event in &events {
            let ConversationEvent::ReceiptsAdvanced(advanced) = event else { panic!("receipt") };
            assert_eq!(advanced.up_to, ConvSeq(3));
            let ids: Vec<u64> = advanced.messages.iter().map(|m| m.message_id.0).collect();
            assert_eq!(ids, vec![10, 12]);
        }
        let marks = events.iter().fold(marks, |marks, event| match event {
            ConversationEvent::ReceiptsAdvanced(advanced) => evolve_marks(marks, advanced),
            _ => marks,
        });
        assert_eq!(marks, Watermarks { delivered: ConvSeq(3), read: ConvSeq(3) });
        assert_eq!(receipt_range(&state, marks, &mark), None, "a repeated read changes nothing");
        let delivered = MarkReceipt { status: ReceiptStatus::Delivered, ..mark };
        assert_eq!(decide_receipt(&state, marks, &delivered, &refs, Millis(8)), Ok(Vec::new()));
    }

    #[test]
    fn a_one_recipient_message_keeps_no_counts_and_still_ticks_once_per_status() {
        let event = sent(&ConversationState::default(), &send(ALICE, BOB, "c0", 10));
        let ConversationEvent::MessageSent(message) = &event else { panic!("sent") };
        let state = evolve(ConversationState::default(), &event);
        let stored = StoredMessage::of(message);
        let mut kept = stored.clone();
        let mut marks = Watermarks::default();
        for status in [ReceiptStatus::Delivered, ReceiptStatus::Read] {
            let mark = MarkReceipt {
                conversation_id: message.conversation_id,
                by: BOB,
                status,
                up_to: ConvSeq(1),
                notify: true,
            };
            // The index entry as the shell keeps it: never rewritten by a receipt.
            let events = decide_receipt(&state, marks, &mark, std::slice::from_ref(&kept), Millis(7)).expect("ok");
            let ConversationEvent::ReceiptsAdvanced(advanced) = &events[0] else { panic!("receipt") };
            assert_eq!((advanced.messages[0].count, advanced.messages[0].of), (1, 1), "{status:?}");
            assert!(!kept.record(status, advanced.messages[0].count), "nothing to rewrite");
            marks = evolve_marks(marks, advanced);
        }
        assert_eq!(kept, stored);
        assert_eq!(marks, Watermarks { delivered: ConvSeq(1), read: ConvSeq(1) });
    }

    #[test]
    fn group_receipts_count_each_recipient_once_and_skip_members_who_joined_later() {
        use crate::groups::{GroupChange, GroupCommand, GroupInfo, GroupSettings, decide_group};
        let group = ConversationId(900);
        let change = |by, change| GroupCommand { conversation_id: group, by, change };
        let create = change(
            ALICE,
            GroupChange::Create {
                info: GroupInfo { name: "g".into(), ..GroupInfo::default() },
                settings: GroupSettings::default(),
                members: vec![BOB, MALLORY],
                max_members: 0,
            },
        );
        let state = given(&decide_group(&ConversationState::default(), &create, Millis(0)).expect("created"));
        let send = SendMessage { conversation_id: group, to: UserId(0), ..send(ALICE, BOB, "g1", 77) };
        let (_, events) = decide_send(&state, &send, None, Millis(1)).expect("sent");
        let ConversationEvent::MessageSent(message) = &events[0] else { panic!("a message") };
        let mut stored = StoredMessage::of(message);
        assert_eq!(stored.recipients, 2);
        let mut state = events.iter().fold(state, evolve);
        let mut stored_marks: BTreeMap<UserId, Watermarks> = BTreeMap::new();
        let mut tick = |state: ConversationState, by, status| {
            let mark = MarkReceipt { conversation_id: group, by, status, up_to: ConvSeq(9), notify: true };
            let marks = member_marks(&state, by, stored_marks.get(&by).copied());
            let events =
                decide_receipt(&state, marks, &mark, std::slice::from_ref(&stored), Millis(5)).expect("marked");
            let mut counts = Vec::new();
            for event in &events {
                let ConversationEvent::ReceiptsAdvanced(advanced) = event else { panic!("receipts") };
                let marks = member_marks(&state, by, stored_marks.get(&by).copied());
                stored_marks.insert(by, evolve_marks(marks, advanced));
                for reference in &advanced.messages {
                    stored.record(advanced.status, reference.count);
                    counts.push((advanced.status, reference.count, reference.of));
                }
            }
            (events.iter().fold(state, evolve), counts)
        };
        let counts;
        (state, counts) = tick(state, BOB, ReceiptStatus::Delivered);
        assert_eq!(counts, vec![(ReceiptStatus::Delivered, 1, 2)]);
        let counts;
        (state, counts) = tick(state, MALLORY, ReceiptStatus::Read);
        assert_eq!(counts, vec![(ReceiptStatus::Delivered, 2, 2), (ReceiptStatus::Read, 1, 2)]);
        let counts;
        (state, counts) = tick(state, BOB, ReceiptStatus::Read);
        assert_eq!(counts, vec![(ReceiptStatus::Read, 2, 2)]);
        let counts;
        (state, counts) = tick(state, ALICE, ReceiptStatus::Read);
        assert!(counts.is_empty(), "the sender's own read counts nothing");
        let add = change(ALICE, GroupChange::AddMembers { users: vec![UserId(4)] });
        let state = decide_group(&state, &add, Millis(6)).expect("added").iter().fold(state, evolve);
        let (_, counts) = tick(state, UserId(4), ReceiptStatus::Read);
        assert!(counts.is_empty(), "a member who joined later never received the message");
    }

    #[test]
    fn a_blocked_senders_messages_are_accepted_but_withheld_and_never_ticked() {
        let block = SetBlock {
            conversation_id: ConversationId::direct(ALICE, BOB),
            blocker: BOB,
            target: ALICE,
            blocked: true,
        };
        let state = decide_block(&ConversationState::default(), &block).expect("decided").expect("changed");
        assert_eq!(decide_block(&state, &block), Ok(None), "blocking twice changes nothing");
        let (outcome, events) = decide_send(&state, &send(ALICE, BOB, "c1", 1), None, Millis(1)).expect("decided");
        assert!(matches!(outcome, SendOutcome::Accepted { .. }));
        let ConversationEvent::MessageSent(message) = &events[0] else { panic!() };
        assert_eq!(message.withheld_from, vec![BOB]);
        let (_, reply) = decide_send(&state, &send(BOB, ALICE, "c2", 2), None, Millis(1)).expect("decided");
        let ConversationEvent::MessageSent(reply) = &reply[0] else { panic!() };
        assert!(reply.withheld_from.is_empty(), "the blocker can still write");
        let stored = StoredMessage::of(message);
        let state = evolve(state, &events[0]);
        let read = MarkReceipt {
            conversation_id: block.conversation_id,
            by: BOB,
            status: ReceiptStatus::Read,
            up_to: ConvSeq(1),
            notify: true,
        };
        for event in decide_receipt(&state, Watermarks::default(), &read, &[stored], Millis(2)).expect("decided") {
            let ConversationEvent::ReceiptsAdvanced(advanced) = event else { panic!() };
            assert!(advanced.messages.is_empty(), "no tick for a withheld message");
        }
        let forged = SetBlock { conversation_id: ConversationId::direct(ALICE, MALLORY), ..block };
        assert_eq!(decide_block(&state, &forged), Err(Rejection::WrongConversation));
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        /// Applies sends (by `(from_alice, client id)`) through decide + evolve,
        /// round-tripping the state through JSON at every chunk boundary
        /// (what a commit and reload does). Returns the state and accepted ids.
        fn apply(sends: &[(bool, u8)], chunk: usize) -> (ConversationState, Vec<(u64, u64)>) {
            let mut state = ConversationState::default();
            let mut priors: BTreeMap<(bool, u8), PriorSend> = BTreeMap::new();
            let mut accepted = Vec::new();
            for (index, (from_alice, client)) in sends.iter().enumerate() {
                if index % chunk == 0 {
                    let json = serde_json::to_string(&state).expect("serialize");
                    state = serde_json::from_str(&json).expect("deserialize");
                }
                let (from, to) = if *from_alice { (ALICE, BOB) } else { (BOB, ALICE) };
                let command = send(from, to, &format!("c{client}"), index as u64 + 1);
                let prior = priors.get(&(*from_alice, *client)).copied();
                let (outcome, events) = decide_send(&state, &command, prior, Millis(index as i64)).expect("valid");
                if let SendOutcome::Accepted { message_id, conv_seq } = outcome {
                    priors.insert((*from_alice, *client), PriorSend { message_id, conv_seq, at: Millis(index as i64) });
                    accepted.push((message_id.0, conv_seq.0));
                }
                state = events.iter().fold(state, evolve);
            }
            (state, accepted)
        }

        proptest! {
            #[test]
            fn sequences_are_gap_free_retries_are_deduplicated_and_chunking_does_not_matter(
                sends in proptest::collection::vec((any::<bool>(), 0u8..8), 1..80),
                chunk in 1usize..10,
            ) {
                let (whole, accepted) = apply(&sends, usize::MAX);
                let (chunked, accepted_chunked) = apply(&sends, chunk);
                prop_assert_eq!(&whole, &chunked);
                prop_assert_eq!(&accepted, &accepted_chunked);
                let seqs: Vec<u64> = accepted.iter().map(|(_, seq)| *seq).collect();
                prop_assert_eq!(seqs, (1..=accepted.len() as u64).collect::<Vec<u64>>());
                let distinct: std::collections::BTreeSet<(bool, u8)> = sends.iter().copied().collect();
                prop_assert_eq!(accepted.len(), distinct.len(), "one message per (device, client_msg_id)");
            }
        }
    }
}
