//! Accounts on the wire: the users decider's commands and events.

use missive_core::users::{
    DeviceRegistered, Privacy, PrivacyChange, Profile, ProfileChange, RegisterDevice, UserCommand, UserEvent,
};

use crate::wire::{self, WireValue};

use super::common::*;

impl From<&UserCommand> for WireValue {
    fn from(command: &UserCommand) -> WireValue {
        match command {
            UserCommand::RegisterDevice(register) => WireValue::RegisterDevice(wire::RegisterDevice {
                user_id: register.user_id,
                device_id: register.device_id,
                device_name: register.device_name.clone(),
            }),
            UserCommand::RemoveDevice { user_id, device_id, reason } => WireValue::RemoveDevice(wire::RemoveDevice {
                user_id: *user_id,
                device_id: *device_id,
                reason: reason.clone(),
            }),
            UserCommand::UpdateProfile { user_id, change } => WireValue::UpdateProfile(wire::UpdateProfile {
                user_id: *user_id,
                display_name: change.display_name.clone(),
                about: change.about.clone(),
                picture: change.picture.clone(),
            }),
            UserCommand::SetPrivacy { user_id, change } => WireValue::SetPrivacy(wire::SetPrivacy {
                user_id: *user_id,
                last_seen: change.last_seen.map(Into::into),
                photo: change.photo.map(Into::into),
                about: change.about.map(Into::into),
                read_receipts: change.read_receipts,
                groups: change.groups.map(Into::into),
            }),
            UserCommand::SetBlock { user_id, target, blocked } => {
                WireValue::BlockUser(wire::BlockUser { user_id: *user_id, target: *target, blocked: *blocked })
            }
            UserCommand::UpdateContacts { user_id, added, removed } => {
                WireValue::UpdateContacts(wire::UpdateContacts {
                    user_id: *user_id,
                    added: added.clone(),
                    removed: removed.clone(),
                })
            }
            UserCommand::SetPin { user_id, pin_hash } => {
                WireValue::SetPin(wire::SetPin { user_id: *user_id, pin_hash: pin_hash.clone() })
            }
            UserCommand::RecordLastSeen { user_id, at } => {
                WireValue::RecordLastSeen(wire::RecordLastSeen { user_id: *user_id, at: *at })
            }
        }
    }
}

impl TryFrom<WireValue> for UserCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        Ok(match value {
            WireValue::RegisterDevice(register) => UserCommand::RegisterDevice(RegisterDevice {
                user_id: register.user_id,
                device_id: register.device_id,
                device_name: register.device_name,
            }),
            WireValue::RemoveDevice(remove) => UserCommand::RemoveDevice {
                user_id: remove.user_id,
                device_id: remove.device_id,
                reason: remove.reason,
            },
            WireValue::UpdateProfile(update) => UserCommand::UpdateProfile {
                user_id: update.user_id,
                change: ProfileChange {
                    display_name: update.display_name,
                    about: update.about,
                    picture: update.picture,
                },
            },
            WireValue::SetPrivacy(set) => UserCommand::SetPrivacy {
                user_id: set.user_id,
                change: PrivacyChange {
                    last_seen: set.last_seen.map(Into::into),
                    photo: set.photo.map(Into::into),
                    about: set.about.map(Into::into),
                    read_receipts: set.read_receipts,
                    groups: set.groups.map(Into::into),
                },
            },
            WireValue::BlockUser(block) => {
                UserCommand::SetBlock { user_id: block.user_id, target: block.target, blocked: block.blocked }
            }
            WireValue::UpdateContacts(update) => {
                UserCommand::UpdateContacts { user_id: update.user_id, added: update.added, removed: update.removed }
            }
            WireValue::SetPin(set) => UserCommand::SetPin { user_id: set.user_id, pin_hash: set.pin_hash },
            WireValue::RecordLastSeen(seen) => UserCommand::RecordLastSeen { user_id: seen.user_id, at: seen.at },
            other => return Err(ConvertError::WrongType { expected: "user command", found: other.record_type() }),
        })
    }
}

impl From<&UserEvent> for WireValue {
    fn from(event: &UserEvent) -> WireValue {
        match event {
            UserEvent::DeviceRegistered(registered) => WireValue::DeviceRegistered(wire::DeviceRegistered {
                user_id: registered.user_id,
                device_id: registered.device_id,
                device_name: registered.device_name.clone(),
                new_account: registered.new_account,
                at: registered.at,
            }),
            UserEvent::DeviceRemoved { user_id, device_id, reason, at } => {
                WireValue::DeviceRemoved(wire::DeviceRemoved {
                    user_id: *user_id,
                    device_id: *device_id,
                    reason: reason.clone(),
                    at: *at,
                })
            }
            UserEvent::ProfileUpdated { user_id, profile, at } => WireValue::ProfileUpdated(wire::ProfileUpdated {
                user_id: *user_id,
                display_name: profile.display_name.clone(),
                about: profile.about.clone(),
                picture: profile.picture.clone(),
                at: *at,
            }),
            UserEvent::PrivacyChanged { user_id, privacy, at } => WireValue::PrivacyChanged(wire::PrivacyChanged {
                user_id: *user_id,
                last_seen: privacy.last_seen.into(),
                photo: privacy.photo.into(),
                about: privacy.about.into(),
                read_receipts: privacy.read_receipts,
                groups: privacy.groups.into(),
                at: *at,
            }),
            UserEvent::BlockChanged { user_id, target, blocked, at } => WireValue::BlockChanged(wire::BlockChanged {
                user_id: *user_id,
                target: *target,
                blocked: *blocked,
                at: *at,
            }),
            UserEvent::ContactsChanged { user_id, added, removed, at } => {
                WireValue::ContactsChanged(wire::ContactsChanged {
                    user_id: *user_id,
                    added: added.clone(),
                    removed: removed.clone(),
                    at: *at,
                })
            }
            UserEvent::PinChanged { user_id, pin_hash, at } => {
                WireValue::PinChanged(wire::PinChanged { user_id: *user_id, pin_hash: pin_hash.clone(), at: *at })
            }
            UserEvent::LastSeen { user_id, at } => WireValue::LastSeen(wire::LastSeen { user_id: *user_id, at: *at }),
            UserEvent::KeysUploaded(uploaded) => WireValue::KeysUploaded(uploaded.into()),
            UserEvent::KeyClaimed(claimed) => WireValue::KeyClaimed(claimed.into()),
        }
    }
}

impl TryFrom<WireValue> for UserEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        Ok(match value {
            WireValue::DeviceRegistered(registered) => UserEvent::DeviceRegistered(DeviceRegistered {
                user_id: registered.user_id,
                device_id: registered.device_id,
                device_name: registered.device_name,
                new_account: registered.new_account,
                at: registered.at,
            }),
            WireValue::DeviceRemoved(removed) => UserEvent::DeviceRemoved {
                user_id: removed.user_id,
                device_id: removed.device_id,
                reason: removed.reason,
                at: removed.at,
            },
            WireValue::ProfileUpdated(updated) => UserEvent::ProfileUpdated {
                user_id: updated.user_id,
                profile: Profile { display_name: updated.display_name, about: updated.about, picture: updated.picture },
                at: updated.at,
            },
            WireValue::PrivacyChanged(changed) => UserEvent::PrivacyChanged {
                user_id: changed.user_id,
                privacy: Privacy {
                    last_seen: changed.last_seen.into(),
                    photo: changed.photo.into(),
                    about: changed.about.into(),
                    read_receipts: changed.read_receipts,
                    groups: changed.groups.into(),
                },
                at: changed.at,
            },
            WireValue::BlockChanged(changed) => UserEvent::BlockChanged {
                user_id: changed.user_id,
                target: changed.target,
                blocked: changed.blocked,
                at: changed.at,
            },
            WireValue::ContactsChanged(changed) => UserEvent::ContactsChanged {
                user_id: changed.user_id,
                added: changed.added,
                removed: changed.removed,
                at: changed.at,
            },
            WireValue::PinChanged(changed) => {
                UserEvent::PinChanged { user_id: changed.user_id, pin_hash: changed.pin_hash, at: changed.at }
            }
            WireValue::LastSeen(seen) => UserEvent::LastSeen { user_id: seen.user_id, at: seen.at },
            WireValue::KeysUploaded(uploaded) => UserEvent::KeysUploaded(uploaded.into()),
            WireValue::KeyClaimed(claimed) => UserEvent::KeyClaimed(claimed.into()),
            other => return Err(ConvertError::WrongType { expected: "user event", found: other.record_type() }),
        })
    }
}
