//! An account: its devices, profile, privacy, blocks, contacts and PIN;
//! the commands asked of it, the events decided, and the refusals.

use std::collections::BTreeSet;

use crate::ids::{DeviceId, Millis, UserId};
use crate::keys::{IdentityKeys, KeyClaimed, KeysEvent, KeysUploaded};

pub const MAX_DEVICE_NAME_BYTES: usize = 64;
/// WhatsApp's limit for "about", in characters.
pub const MAX_ABOUT_CHARS: usize = 139;
pub const MAX_DISPLAY_NAME_CHARS: usize = 25;
/// A picture is the media id of its owner's completed upload, not the bytes.
pub const MAX_PICTURE_REF_BYTES: usize = 512;
/// Contacts and blocks an account may hold (bounded state).
pub const MAX_CONTACTS: usize = 10_000;
pub const MAX_BLOCKS: usize = 10_000;
/// Devices an account may have at once (a phone plus linked devices).
pub const MAX_DEVICES: usize = 8;

/// Who may see a piece of the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    #[default]
    Everyone,
    Contacts,
    Nobody,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Everyone => "everyone",
            Audience::Contacts => "contacts",
            Audience::Nobody => "nobody",
        }
    }

    pub fn parse(text: &str) -> Option<Audience> {
        match text {
            "everyone" => Some(Audience::Everyone),
            "contacts" => Some(Audience::Contacts),
            "nobody" => Some(Audience::Nobody),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Privacy {
    pub last_seen: Audience,
    pub photo: Audience,
    pub about: Audience,
    /// Off is reciprocal: the user neither sends nor sees read ticks in 1:1 chats.
    pub read_receipts: bool,
    /// Who may add the user to a group; anyone else can only invite.
    #[serde(default)]
    pub groups: Audience,
}

impl Default for Privacy {
    fn default() -> Privacy {
        Privacy {
            last_seen: Audience::Everyone,
            photo: Audience::Everyone,
            about: Audience::Everyone,
            read_receipts: true,
            groups: Audience::Everyone,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub display_name: String,
    pub about: String,
    /// The picture's media id (checked by the gateway); empty when none.
    pub picture: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    pub device_id: DeviceId,
    pub name: String,
    pub added_at: Millis,
    /// Its public identity keys, once uploaded (end-to-end encryption).
    #[serde(default)]
    pub identity: Option<IdentityKeys>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegisterDevice {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub device_name: String,
}

/// A profile change; `None` leaves a field as it is, `Some("")` clears it.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub about: Option<String>,
    pub picture: Option<String>,
}

/// A privacy change; `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PrivacyChange {
    pub last_seen: Option<Audience>,
    pub photo: Option<Audience>,
    pub about: Option<Audience>,
    pub read_receipts: Option<bool>,
    pub groups: Option<Audience>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserCommand {
    RegisterDevice(RegisterDevice),
    RemoveDevice {
        user_id: UserId,
        device_id: DeviceId,
        reason: String,
    },
    UpdateProfile {
        user_id: UserId,
        change: ProfileChange,
    },
    SetPrivacy {
        user_id: UserId,
        change: PrivacyChange,
    },
    SetBlock {
        user_id: UserId,
        target: UserId,
        blocked: bool,
    },
    UpdateContacts {
        user_id: UserId,
        added: Vec<UserId>,
        removed: Vec<UserId>,
    },
    /// `pin_hash` is an argon2id PHC string computed by the gateway (salted,
    /// keyed with a pepper); `None` removes the PIN.
    SetPin {
        user_id: UserId,
        pin_hash: Option<String>,
    },
    RecordLastSeen {
        user_id: UserId,
        at: Millis,
    },
}

impl UserCommand {
    pub fn user_id(&self) -> UserId {
        match self {
            UserCommand::RegisterDevice(register) => register.user_id,
            UserCommand::RemoveDevice { user_id, .. }
            | UserCommand::UpdateProfile { user_id, .. }
            | UserCommand::SetPrivacy { user_id, .. }
            | UserCommand::SetBlock { user_id, .. }
            | UserCommand::UpdateContacts { user_id, .. }
            | UserCommand::SetPin { user_id, .. }
            | UserCommand::RecordLastSeen { user_id, .. } => *user_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRegistered {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub device_name: String,
    /// True for the account's first device: the account was created.
    pub new_account: bool,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserEvent {
    DeviceRegistered(DeviceRegistered),
    DeviceRemoved {
        user_id: UserId,
        device_id: DeviceId,
        reason: String,
        at: Millis,
    },
    /// The whole profile after the change.
    ProfileUpdated {
        user_id: UserId,
        profile: Profile,
        at: Millis,
    },
    /// Every setting after the change.
    PrivacyChanged {
        user_id: UserId,
        privacy: Privacy,
        at: Millis,
    },
    BlockChanged {
        user_id: UserId,
        target: UserId,
        blocked: bool,
        at: Millis,
    },
    ContactsChanged {
        user_id: UserId,
        added: Vec<UserId>,
        removed: Vec<UserId>,
        at: Millis,
    },
    PinChanged {
        user_id: UserId,
        pin_hash: Option<String>,
        at: Millis,
    },
    LastSeen {
        user_id: UserId,
        at: Millis,
    },
    /// Public keys stored for a device (`keys::decide`).
    KeysUploaded(KeysUploaded),
    /// A device's one-time (or fallback) key handed to another device.
    KeyClaimed(KeyClaimed),
}

impl UserEvent {
    pub fn user_id(&self) -> UserId {
        match self {
            UserEvent::DeviceRegistered(registered) => registered.user_id,
            UserEvent::DeviceRemoved { user_id, .. }
            | UserEvent::ProfileUpdated { user_id, .. }
            | UserEvent::PrivacyChanged { user_id, .. }
            | UserEvent::BlockChanged { user_id, .. }
            | UserEvent::ContactsChanged { user_id, .. }
            | UserEvent::PinChanged { user_id, .. }
            | UserEvent::LastSeen { user_id, .. } => *user_id,
            UserEvent::KeysUploaded(uploaded) => uploaded.user_id,
            UserEvent::KeyClaimed(claimed) => claimed.user_id,
        }
    }
}

impl From<KeysEvent> for UserEvent {
    fn from(event: KeysEvent) -> UserEvent {
        match event {
            KeysEvent::Uploaded(uploaded) => UserEvent::KeysUploaded(uploaded),
            KeysEvent::Claimed(claimed) => UserEvent::KeyClaimed(claimed),
        }
    }
}

/// An account as the users processor and every directory know it.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct UserState {
    pub user_id: UserId,
    pub devices: Vec<DeviceInfo>,
    pub created_at: Option<Millis>,
    #[serde(default)]
    pub profile: Profile,
    #[serde(default)]
    pub privacy: Privacy,
    /// Users this account blocked.
    #[serde(default)]
    pub blocked: BTreeSet<UserId>,
    /// Registered users found in this account's address book.
    #[serde(default)]
    pub contacts: BTreeSet<UserId>,
    #[serde(default)]
    pub pin_hash: Option<String>,
    #[serde(default)]
    pub last_seen: Option<Millis>,
    /// The most recently removed devices (at most `REMEMBERED_REMOVALS`), so
    /// a removed device is told apart from one a lagging reader has not
    /// seen registered yet.
    #[serde(default)]
    pub removed_devices: Vec<DeviceId>,
}

/// Removed devices an account remembers.
pub const REMEMBERED_REMOVALS: usize = 64;

impl UserState {
    pub fn has_device(&self, device: DeviceId) -> bool {
        self.devices.iter().any(|info| info.device_id == device)
    }

    pub fn was_removed(&self, device: DeviceId) -> bool {
        self.removed_devices.contains(&device)
    }
}

/// Why a user command was refused. Codes are part of the client protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserRejection {
    #[error("no such account")]
    UnknownAccount,
    #[error("no such device on this account")]
    UnknownDevice,
    #[error("an account has at most {MAX_DEVICES} devices; remove one first")]
    TooManyDevices,
    #[error("about is limited to {MAX_ABOUT_CHARS} characters")]
    AboutTooLong,
    #[error("display name is limited to {MAX_DISPLAY_NAME_CHARS} characters")]
    NameTooLong,
    #[error("picture reference is limited to {MAX_PICTURE_REF_BYTES} bytes")]
    PictureTooLong,
    #[error("display names and about texts may not contain control or bidirectional override characters")]
    UnsafeCharacters,
    #[error("you cannot block yourself")]
    BlockSelf,
    #[error("at most {MAX_BLOCKS} blocked users")]
    TooManyBlocks,
    #[error("at most {MAX_CONTACTS} contacts")]
    TooManyContacts,
}

impl UserRejection {
    pub fn code(&self) -> &'static str {
        match self {
            UserRejection::UnknownAccount | UserRejection::UnknownDevice => "not_found",
            UserRejection::TooManyDevices => "too_many_devices",
            UserRejection::TooManyBlocks | UserRejection::TooManyContacts => "limit_reached",
            UserRejection::BlockSelf | UserRejection::UnsafeCharacters => "bad_request",
            UserRejection::AboutTooLong | UserRejection::NameTooLong | UserRejection::PictureTooLong => "too_large",
        }
    }
}
