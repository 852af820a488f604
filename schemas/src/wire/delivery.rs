//! Records on `deliveries`: what an inbox folds.

use serde::{Deserialize, Serialize};

use super::conversation::{MessageModified, MessageSent, ReceiptStatus};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverMessage {
    pub recipient: i64,
    pub message: MessageSent,
    /// Further recipients of this same copy, all in `recipient`'s inbox partition.
    #[serde(default)]
    pub more_recipients: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverReceipt {
    pub recipient: i64,
    pub conversation_id: i64,
    pub message_id: i64,
    pub status: ReceiptStatus,
    pub by: i64,
    pub at: i64,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub of: i32,
    /// The receipt covers the sender's messages up to this conv_seq (0: the named message only).
    #[serde(default)]
    pub up_to: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverModification {
    pub recipient: i64,
    pub modified: MessageModified,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadSync {
    pub recipient: i64,
    pub conversation_id: i64,
    pub up_to: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAdded {
    pub recipient: i64,
    pub device_id: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAcked {
    pub recipient: i64,
    pub device_id: i64,
    pub seq: i64,
}
