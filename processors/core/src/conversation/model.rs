//! What a conversation is made of: its commands, events, state and the
//! decider's refusals.

use std::collections::BTreeMap;

use crate::groups::{Group, GroupChanged, GroupCommand};
use crate::ids::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
use crate::media::Attachment;
use crate::operations::{MessageModified, ModifyMessage};

/// Largest message body, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 65_536;
/// Largest end-to-end encrypted body: the Megolm ciphertext of the largest
/// plaintext, in base64, with room for what a client seals with it.
pub const MAX_CIPHERTEXT_BYTES: usize = 98_304;

/// How long a body may be: plaintext, or ciphertext of a session.
pub fn body_limit(encrypted: bool) -> usize {
    if encrypted { MAX_CIPHERTEXT_BYTES } else { MAX_CONTENT_BYTES }
}
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
    /// Set for an end-to-end encrypted message: the Megolm session whose
    /// ciphertext `content` is. The server never reads either.
    pub session_id: Option<String>,
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
    /// A member's set of devices changed: tell the other members.
    AnnounceDevices(AnnounceDevices),
}

/// A member's devices changed (one came or went); the other members'
/// clients show "security code changed" and refresh its device list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnnounceDevices {
    pub conversation_id: ConversationId,
    pub user: UserId,
}

impl ConversationCommand {
    pub fn conversation_id(&self) -> ConversationId {
        match self {
            ConversationCommand::Send(send) => send.conversation_id,
            ConversationCommand::Receipt(mark) => mark.conversation_id,
            ConversationCommand::Block(block) => block.conversation_id,
            ConversationCommand::Group(group) => group.conversation_id,
            ConversationCommand::Modify(modify) => modify.conversation_id,
            ConversationCommand::AnnounceDevices(announce) => announce.conversation_id,
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
    /// Set for an end-to-end encrypted message: the Megolm session whose
    /// ciphertext `content` is. The server never reads either.
    pub session_id: Option<String>,
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
