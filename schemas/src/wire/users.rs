//! The users decider's commands and events.

use missive_core::{DeviceId, Millis, UserId};
use serde::{Deserialize, Serialize};

use super::ids;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Audience {
    #[serde(rename = "EVERYONE")]
    Everyone,
    #[serde(rename = "CONTACTS")]
    Contacts,
    #[serde(rename = "NOBODY")]
    Nobody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoveDevice {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateProfile {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub display_name: Option<String>,
    pub about: Option<String>,
    pub picture: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetPrivacy {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub last_seen: Option<Audience>,
    pub photo: Option<Audience>,
    pub about: Option<Audience>,
    pub read_receipts: Option<bool>,
    #[serde(default)]
    pub groups: Option<Audience>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockUser {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub target: UserId,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateContacts {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::many")]
    pub added: Vec<UserId>,
    #[serde(with = "ids::many")]
    pub removed: Vec<UserId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetPin {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub pin_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordLastSeen {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRemoved {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub reason: String,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub display_name: String,
    pub about: String,
    pub picture: String,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyChanged {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub last_seen: Audience,
    pub photo: Audience,
    pub about: Audience,
    pub read_receipts: bool,
    #[serde(default = "everyone")]
    pub groups: Audience,
    pub at: Millis,
}

fn everyone() -> Audience {
    Audience::Everyone
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockChanged {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub target: UserId,
    pub blocked: bool,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactsChanged {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::many")]
    pub added: Vec<UserId>,
    #[serde(with = "ids::many")]
    pub removed: Vec<UserId>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinChanged {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub pin_hash: Option<String>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastSeen {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceDropped {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterDevice {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub device_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRegistered {
    #[serde(with = "ids::one")]
    pub user_id: UserId,
    #[serde(with = "ids::one")]
    pub device_id: DeviceId,
    pub device_name: String,
    pub new_account: bool,
    pub at: Millis,
}
