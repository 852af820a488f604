//! The users decider's commands and events.

use serde::{Deserialize, Serialize};

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
    pub user_id: i64,
    pub device_id: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateProfile {
    pub user_id: i64,
    pub display_name: Option<String>,
    pub about: Option<String>,
    pub picture: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetPrivacy {
    pub user_id: i64,
    pub last_seen: Option<Audience>,
    pub photo: Option<Audience>,
    pub about: Option<Audience>,
    pub read_receipts: Option<bool>,
    #[serde(default)]
    pub groups: Option<Audience>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockUser {
    pub user_id: i64,
    pub target: i64,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateContacts {
    pub user_id: i64,
    pub added: Vec<i64>,
    pub removed: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetPin {
    pub user_id: i64,
    pub pin_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordLastSeen {
    pub user_id: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRemoved {
    pub user_id: i64,
    pub device_id: i64,
    pub reason: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub user_id: i64,
    pub display_name: String,
    pub about: String,
    pub picture: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyChanged {
    pub user_id: i64,
    pub last_seen: Audience,
    pub photo: Audience,
    pub about: Audience,
    pub read_receipts: bool,
    #[serde(default = "everyone")]
    pub groups: Audience,
    pub at: i64,
}

fn everyone() -> Audience {
    Audience::Everyone
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockChanged {
    pub user_id: i64,
    pub target: i64,
    pub blocked: bool,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactsChanged {
    pub user_id: i64,
    pub added: Vec<i64>,
    pub removed: Vec<i64>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinChanged {
    pub user_id: i64,
    pub pin_hash: Option<String>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastSeen {
    pub user_id: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceDropped {
    pub recipient: i64,
    pub device_id: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterDevice {
    pub user_id: i64,
    pub device_id: i64,
    pub device_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRegistered {
    pub user_id: i64,
    pub device_id: i64,
    pub device_name: String,
    pub new_account: bool,
    pub at: i64,
}
