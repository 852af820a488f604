//! The key directory's commands and events (end-to-end encryption): public
//! keys only, as unpadded base64 strings the server never interprets.

use missive_core::{ConversationId, DeviceId, Millis, UserId};
use serde::{Deserialize, Serialize};

use super::ids;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedKey {
    pub key_id: String,
    pub key: String,
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadKeys {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub identity_curve25519: String,
    pub identity_ed25519: String,
    pub one_time_keys: Vec<SignedKey>,
    #[serde(default)]
    pub fallback_key: Option<SignedKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeysUploaded {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub identity_curve25519: String,
    pub identity_ed25519: String,
    pub one_time_keys: Vec<SignedKey>,
    #[serde(default)]
    pub fallback_key: Option<SignedKey>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimKey {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    #[serde(with = "ids::one")]
    pub by: UserId,
    #[serde(with = "ids::one")]
    pub by_device: DeviceId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyClaimed {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub key: SignedKey,
    pub fallback: bool,
    #[serde(with = "ids::one")]
    pub by: UserId,
    #[serde(with = "ids::one")]
    pub by_device: DeviceId,
    pub remaining: i32,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceMessage {
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub olm_type: i32,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareKeys {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub from: UserId,
    #[serde(with = "ids::one")]
    pub from_device: DeviceId,
    pub messages: Vec<DeviceMessage>,
    #[serde(default, with = "ids::maybe")]
    pub group: Option<ConversationId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverToDevice {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    #[serde(with = "ids::one")]
    pub from: UserId,
    #[serde(with = "ids::one")]
    pub from_device: DeviceId,
    pub olm_type: i32,
    pub body: String,
    pub sent_at: Millis,
}

/// The key a `ClaimKey` command handed out, in its reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimedKey {
    pub key_id: String,
    pub key: String,
    pub signature: String,
    pub fallback: bool,
}
