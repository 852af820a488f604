//! Records on `deliveries`: what an inbox folds.

use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};
use serde::{Deserialize, Serialize};

use super::ids;

use super::conversation::{MessageModified, MessageSent, ReceiptStatus};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverMessage {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    pub message: MessageSent,
    /// Further recipients of this same copy, all in `recipient`'s inbox partition.
    #[serde(default, with = "ids::many")]
    pub more_recipients: Vec<UserId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverReceipt {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub message_id: MessageId,
    pub status: ReceiptStatus,
    #[serde(with = "ids::one")]
    pub by: UserId,
    pub at: Millis,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub of: i32,
    /// The receipt covers the sender's messages up to this conv_seq (0: the named message only).
    #[serde(default, with = "ids::one")]
    pub up_to: ConvSeq,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverModification {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    pub modified: MessageModified,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverDevicesChanged {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub user: UserId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverKeysLow {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub remaining: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadSync {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub up_to: ConvSeq,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAdded {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAcked {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    #[serde(with = "ids::one")]
    pub seq: FeedSeq,
}
