//! Conversation commands and events, and message operations.

use serde::{Deserialize, Serialize};

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
    pub conversation_id: i64,
    pub message_id: i64,
    pub from: i64,
    pub from_device: i64,
    pub to: i64,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<i64>,
    #[serde(default)]
    pub forward_count: i32,
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkReceipt {
    pub conversation_id: i64,
    pub by: i64,
    pub status: ReceiptStatus,
    pub up_to: i64,
    #[serde(default = "yes")]
    pub notify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyBlock {
    pub conversation_id: i64,
    pub blocker: i64,
    pub target: i64,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub conversation_id: i64,
    pub conv_seq: i64,
    pub message_id: i64,
    pub from: i64,
    pub from_device: i64,
    pub members: Vec<i64>,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<i64>,
    pub sent_at: i64,
    #[serde(default)]
    pub withheld_from: Vec<i64>,
    #[serde(default)]
    pub forward_count: i32,
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    pub message_id: i64,
    pub conv_seq: i64,
    pub from: i64,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub of: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiptsAdvanced {
    pub conversation_id: i64,
    pub by: i64,
    pub status: ReceiptStatus,
    pub up_to: i64,
    pub at: i64,
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
    pub conversation_id: i64,
    pub by: i64,
    pub by_device: i64,
    pub message_id: i64,
    pub target_seq: i64,
    pub kind: OperationKind,
    #[serde(default)]
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageModified {
    pub conversation_id: i64,
    pub conv_seq: i64,
    pub message_id: i64,
    pub target_seq: i64,
    pub by: i64,
    pub by_device: i64,
    pub kind: OperationKind,
    #[serde(default)]
    pub text: String,
    pub audience: Vec<i64>,
    pub at: i64,
}
