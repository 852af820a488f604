//! The users decider: accounts, devices, profile, privacy, blocks, contacts
//! and the registration PIN. Every change is a command on `commands.user`
//! decided here into events on `events.user`; the same `evolve` folds the
//! users processor's state and the gateways' directory read model.

use std::collections::BTreeSet;

use crate::ids::{DeviceId, Millis, UserId};

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

fn truncate_bytes(text: &str, max: usize) -> String {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

/// Whether a name shown to others (a display name, an about text, a group
/// name) holds a control character (line breaks included) or one that
/// reorders the text around it (bidirectional embeddings, overrides and
/// isolates, U+202A..U+202E and U+2066..U+2069: "Trojan Source" spoofing).
pub fn has_unsafe_characters(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c))
}

/// Checks a profile change's sizes and characters (the gateway refuses the same before appending).
pub fn validate_profile(change: &ProfileChange) -> Result<(), UserRejection> {
    if [&change.display_name, &change.about].into_iter().flatten().any(|text| has_unsafe_characters(text)) {
        return Err(UserRejection::UnsafeCharacters);
    }
    if change.about.as_ref().is_some_and(|about| about.chars().count() > MAX_ABOUT_CHARS) {
        return Err(UserRejection::AboutTooLong);
    }
    if change.display_name.as_ref().is_some_and(|name| name.chars().count() > MAX_DISPLAY_NAME_CHARS) {
        return Err(UserRejection::NameTooLong);
    }
    if change.picture.as_ref().is_some_and(|picture| picture.len() > MAX_PICTURE_REF_BYTES) {
        return Err(UserRejection::PictureTooLong);
    }
    Ok(())
}

/// Decides a command; no events means nothing changed (a repeat).
pub fn decide(state: &UserState, command: &UserCommand, now: Millis) -> Result<Vec<UserEvent>, UserRejection> {
    let user_id = command.user_id();
    if state.created_at.is_none() && !matches!(command, UserCommand::RegisterDevice(_)) {
        return Err(UserRejection::UnknownAccount);
    }
    let events = match command {
        UserCommand::RegisterDevice(register) => {
            if state.has_device(register.device_id) {
                return Ok(Vec::new());
            }
            if state.devices.len() >= MAX_DEVICES {
                return Err(UserRejection::TooManyDevices);
            }
            vec![UserEvent::DeviceRegistered(DeviceRegistered {
                user_id,
                device_id: register.device_id,
                device_name: truncate_bytes(&register.device_name, MAX_DEVICE_NAME_BYTES),
                new_account: state.created_at.is_none(),
                at: now,
            })]
        }
        UserCommand::RemoveDevice { device_id, reason, .. } => {
            if !state.has_device(*device_id) {
                return Err(UserRejection::UnknownDevice);
            }
            vec![UserEvent::DeviceRemoved {
                user_id,
                device_id: *device_id,
                reason: truncate_bytes(reason, 64),
                at: now,
            }]
        }
        UserCommand::UpdateProfile { change, .. } => {
            validate_profile(change)?;
            let mut profile = state.profile.clone();
            if let Some(name) = &change.display_name {
                profile.display_name = name.clone();
            }
            if let Some(about) = &change.about {
                profile.about = about.clone();
            }
            if let Some(picture) = &change.picture {
                profile.picture = picture.clone();
            }
            if profile == state.profile {
                return Ok(Vec::new());
            }
            vec![UserEvent::ProfileUpdated { user_id, profile, at: now }]
        }
        UserCommand::SetPrivacy { change, .. } => {
            let current = state.privacy;
            let privacy = Privacy {
                last_seen: change.last_seen.unwrap_or(current.last_seen),
                photo: change.photo.unwrap_or(current.photo),
                about: change.about.unwrap_or(current.about),
                read_receipts: change.read_receipts.unwrap_or(current.read_receipts),
                groups: change.groups.unwrap_or(current.groups),
            };
            if privacy == current {
                return Ok(Vec::new());
            }
            vec![UserEvent::PrivacyChanged { user_id, privacy, at: now }]
        }
        UserCommand::SetBlock { target, blocked, .. } => {
            if *target == user_id {
                return Err(UserRejection::BlockSelf);
            }
            if state.blocked.contains(target) == *blocked {
                return Ok(Vec::new());
            }
            if *blocked && state.blocked.len() >= MAX_BLOCKS {
                return Err(UserRejection::TooManyBlocks);
            }
            vec![UserEvent::BlockChanged { user_id, target: *target, blocked: *blocked, at: now }]
        }
        UserCommand::UpdateContacts { added, removed, .. } => {
            let added: BTreeSet<UserId> =
                added.iter().copied().filter(|user| *user != user_id && !state.contacts.contains(user)).collect();
            let removed: BTreeSet<UserId> =
                removed.iter().copied().filter(|user| state.contacts.contains(user) && !added.contains(user)).collect();
            if added.is_empty() && removed.is_empty() {
                return Ok(Vec::new());
            }
            if state.contacts.len() + added.len() - removed.len() > MAX_CONTACTS {
                return Err(UserRejection::TooManyContacts);
            }
            vec![UserEvent::ContactsChanged {
                user_id,
                added: added.into_iter().collect(),
                removed: removed.into_iter().collect(),
                at: now,
            }]
        }
        UserCommand::SetPin { pin_hash, .. } => {
            if *pin_hash == state.pin_hash {
                return Ok(Vec::new());
            }
            vec![UserEvent::PinChanged { user_id, pin_hash: pin_hash.clone(), at: now }]
        }
        UserCommand::RecordLastSeen { at, .. } => {
            if state.last_seen.is_some_and(|seen| seen >= *at) {
                return Ok(Vec::new());
            }
            vec![UserEvent::LastSeen { user_id, at: *at }]
        }
    };
    Ok(events)
}

pub fn evolve(mut state: UserState, event: &UserEvent) -> UserState {
    state.user_id = event.user_id();
    match event {
        UserEvent::DeviceRegistered(registered) => {
            state.created_at.get_or_insert(registered.at);
            if !state.has_device(registered.device_id) {
                state.devices.push(DeviceInfo {
                    device_id: registered.device_id,
                    name: registered.device_name.clone(),
                    added_at: registered.at,
                });
            }
        }
        UserEvent::DeviceRemoved { device_id, .. } => {
            state.devices.retain(|info| info.device_id != *device_id);
            if !state.removed_devices.contains(device_id) {
                state.removed_devices.push(*device_id);
            }
            if state.removed_devices.len() > REMEMBERED_REMOVALS {
                state.removed_devices.remove(0);
            }
        }
        UserEvent::ProfileUpdated { profile, .. } => state.profile = profile.clone(),
        UserEvent::PrivacyChanged { privacy, .. } => state.privacy = *privacy,
        UserEvent::BlockChanged { target, blocked, .. } => {
            if *blocked {
                state.blocked.insert(*target);
            } else {
                state.blocked.remove(target);
            }
        }
        UserEvent::ContactsChanged { added, removed, .. } => {
            state.contacts.extend(added.iter().copied());
            for user in removed {
                state.contacts.remove(user);
            }
        }
        UserEvent::PinChanged { pin_hash, .. } => state.pin_hash = pin_hash.clone(),
        UserEvent::LastSeen { at, .. } => state.last_seen = Some(state.last_seen.map_or(*at, |seen| seen.max(*at))),
    }
    state
}

/// How a viewer stands to a profile's owner, for visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Myself,
    /// The owner has the viewer in their contacts.
    Contact,
    NonContact,
    /// The owner blocked the viewer.
    Blocked,
}

pub fn relation(owner: &UserState, viewer: UserId) -> Relation {
    if owner.user_id == viewer {
        Relation::Myself
    } else if owner.blocked.contains(&viewer) {
        Relation::Blocked
    } else if owner.contacts.contains(&viewer) {
        Relation::Contact
    } else {
        Relation::NonContact
    }
}

/// Whether `relation` may see something shown to `audience`. A blocked
/// viewer sees none of it, whatever the setting.
pub fn visible(audience: Audience, relation: Relation) -> bool {
    match relation {
        Relation::Myself => true,
        Relation::Blocked => false,
        Relation::Contact => audience != Audience::Nobody,
        Relation::NonContact => audience == Audience::Everyone,
    }
}

/// The profile as `viewer` may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileView {
    pub user_id: UserId,
    pub display_name: String,
    pub about: Option<String>,
    pub picture: Option<String>,
    pub last_seen: Option<Option<Millis>>,
}

pub fn view_profile(owner: &UserState, viewer: UserId) -> ProfileView {
    let relation = relation(owner, viewer);
    let privacy = owner.privacy;
    ProfileView {
        user_id: owner.user_id,
        display_name: owner.profile.display_name.clone(),
        about: visible(privacy.about, relation).then(|| owner.profile.about.clone()),
        picture: visible(privacy.photo, relation).then(|| owner.profile.picture.clone()),
        last_seen: visible(privacy.last_seen, relation).then_some(owner.last_seen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(device: u64) -> UserCommand {
        UserCommand::RegisterDevice(RegisterDevice {
            user_id: UserId(5),
            device_id: DeviceId(device),
            device_name: "é".repeat(40),
        })
    }

    fn apply(state: UserState, command: &UserCommand) -> UserState {
        decide(&state, command, Millis(1)).expect("accepted").iter().fold(state, evolve)
    }

    #[test]
    fn first_device_creates_the_account_and_a_repeat_is_idempotent() {
        let events = decide(&UserState::default(), &register(1), Millis(10)).expect("decided");
        let UserEvent::DeviceRegistered(first) = &events[0] else { panic!("{events:?}") };
        assert!(first.new_account);
        assert!(first.device_name.len() <= MAX_DEVICE_NAME_BYTES);
        let state = events.iter().fold(UserState::default(), evolve);
        assert!(decide(&state, &register(1), Millis(11)).expect("decided").is_empty());
        let second = decide(&state, &register(2), Millis(12)).expect("decided");
        let UserEvent::DeviceRegistered(second) = &second[0] else { panic!() };
        assert!(!second.new_account);
    }

    #[test]
    fn commands_for_unknown_accounts_and_devices_are_refused() {
        let set = UserCommand::SetBlock { user_id: UserId(5), target: UserId(6), blocked: true };
        assert_eq!(decide(&UserState::default(), &set, Millis(1)), Err(UserRejection::UnknownAccount));
        let state = apply(UserState::default(), &register(1));
        let remove = UserCommand::RemoveDevice { user_id: UserId(5), device_id: DeviceId(9), reason: "x".into() };
        assert_eq!(decide(&state, &remove, Millis(1)), Err(UserRejection::UnknownDevice));
        let me = UserCommand::SetBlock { user_id: UserId(5), target: UserId(5), blocked: true };
        assert_eq!(decide(&state, &me, Millis(1)), Err(UserRejection::BlockSelf));
    }

    #[test]
    fn profile_limits_and_partial_updates() {
        let state = apply(UserState::default(), &register(1));
        let long = ProfileChange { about: Some("a".repeat(MAX_ABOUT_CHARS + 1)), ..ProfileChange::default() };
        let update = UserCommand::UpdateProfile { user_id: UserId(5), change: long };
        assert_eq!(decide(&state, &update, Millis(1)), Err(UserRejection::AboutTooLong));
        let exact = ProfileChange { about: Some("é".repeat(MAX_ABOUT_CHARS)), ..ProfileChange::default() };
        let state = apply(state, &UserCommand::UpdateProfile { user_id: UserId(5), change: exact });
        for unsafe_name in ["An\u{202E}n", "A\nB", "x\u{2066}y", "\u{7}"] {
            let change = ProfileChange { display_name: Some(unsafe_name.into()), ..ProfileChange::default() };
            assert_eq!(validate_profile(&change), Err(UserRejection::UnsafeCharacters), "{unsafe_name:?}");
            let change = ProfileChange { about: Some(unsafe_name.into()), ..ProfileChange::default() };
            assert_eq!(validate_profile(&change), Err(UserRejection::UnsafeCharacters), "{unsafe_name:?}");
        }
        let name = ProfileChange { display_name: Some("Ann".into()), ..ProfileChange::default() };
        let state = apply(state, &UserCommand::UpdateProfile { user_id: UserId(5), change: name });
        assert_eq!(state.profile.display_name, "Ann");
        assert_eq!(state.profile.about.chars().count(), MAX_ABOUT_CHARS);
    }

    #[test]
    fn visibility_follows_setting_and_relation() {
        use Audience::*;
        use Relation::*;
        let table = [
            (Everyone, [true, true, true, false]),
            (Contacts, [true, true, false, false]),
            (Nobody, [true, false, false, false]),
        ];
        for (audience, expected) in table {
            for (relation, want) in [Myself, Contact, NonContact, Blocked].into_iter().zip(expected) {
                assert_eq!(visible(audience, relation), want, "{audience:?} x {relation:?}");
            }
        }
    }
}
