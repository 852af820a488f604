//! Conversation commands and events, and message operations.

use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
use serde::{Deserialize, Serialize};

use super::ids;

use super::media::Attachment;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptStatus {
    #[serde(rename = "DELIVERED")]
    Delivered,
    #[serde(rename = "READ")]
    Read,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub message_id: MessageId,
    #[serde(with = "ids::one")]
    pub from: UserId,
    #[serde(with = "ids::one")]
    pub from_device: DeviceId,
    #[serde(with = "ids::one")]
    pub to: UserId,
    pub client_msg_id: String,
    pub content: String,
    #[serde(with = "ids::maybe")]
    pub reply_to: Option<MessageId>,
    #[serde(default)]
    pub forward_count: i32,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkReceipt {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub by: UserId,
    pub status: ReceiptStatus,
    #[serde(with = "ids::one")]
    pub up_to: ConvSeq,
    #[serde(default = "yes")]
    pub notify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyBlock {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub blocker: UserId,
    #[serde(with = "ids::one")]
    pub target: UserId,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnnounceDevices {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub user: UserId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub conv_seq: ConvSeq,
    #[serde(with = "ids::one")]
    pub message_id: MessageId,
    #[serde(with = "ids::one")]
    pub from: UserId,
    #[serde(with = "ids::one")]
    pub from_device: DeviceId,
    #[serde(with = "ids::many")]
    pub members: Vec<UserId>,
    pub client_msg_id: String,
    pub content: String,
    #[serde(with = "ids::maybe")]
    pub reply_to: Option<MessageId>,
    pub sent_at: Millis,
    #[serde(default, with = "ids::many")]
    pub withheld_from: Vec<UserId>,
    #[serde(default)]
    pub forward_count: i32,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    #[serde(with = "ids::one")]
    pub message_id: MessageId,
    #[serde(with = "ids::one")]
    pub conv_seq: ConvSeq,
    #[serde(with = "ids::one")]
    pub from: UserId,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub of: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiptsAdvanced {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub by: UserId,
    pub status: ReceiptStatus,
    #[serde(with = "ids::one")]
    pub up_to: ConvSeq,
    pub at: Millis,
    pub messages: Vec<MessageRef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationKind {
    Edit,
    DeleteForEveryone,
    DeleteForMe,
    React,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModifyMessage {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub by: UserId,
    #[serde(with = "ids::one")]
    pub by_device: DeviceId,
    #[serde(with = "ids::one")]
    pub message_id: MessageId,
    #[serde(with = "ids::one")]
    pub target_seq: ConvSeq,
    pub kind: OperationKind,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageModified {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub conv_seq: ConvSeq,
    #[serde(with = "ids::one")]
    pub message_id: MessageId,
    #[serde(with = "ids::one")]
    pub target_seq: ConvSeq,
    #[serde(with = "ids::one")]
    pub by: UserId,
    #[serde(with = "ids::one")]
    pub by_device: DeviceId,
    pub kind: OperationKind,
    #[serde(default)]
    pub text: String,
    #[serde(with = "ids::many")]
    pub audience: Vec<UserId>,
    pub at: Millis,
    #[serde(default)]
    pub session_id: Option<String>,
}
