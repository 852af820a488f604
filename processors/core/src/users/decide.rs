//! The users decider and fold.

use std::collections::BTreeSet;

use crate::ids::{Millis, UserId};

use super::model::*;

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
                    identity: None,
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
        UserEvent::KeysUploaded(uploaded) => {
            if let Some(device) = state.devices.iter_mut().find(|info| info.device_id == uploaded.device_id) {
                device.identity = Some(uploaded.identity.clone());
            }
        }
        UserEvent::KeyClaimed(_) => {}
    }
    state
}
