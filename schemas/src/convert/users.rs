//! Accounts on the wire: the users decider's commands and events.

use missive_core::users::{
    DeviceRegistered, Privacy, PrivacyChange, Profile, ProfileChange, RegisterDevice, UserCommand, UserEvent,
};
use missive_core::{DeviceId, Millis, UserId};

use crate::wire::{self, WireValue};

use super::common::*;

pub fn user_command_to_wire(command: &UserCommand) -> WireValue {
    match command {
        UserCommand::RegisterDevice(register) => WireValue::RegisterDevice(wire::RegisterDevice {
            user_id: long(register.user_id.0),
            device_id: long(register.device_id.0),
            device_name: register.device_name.clone(),
        }),
        UserCommand::RemoveDevice { user_id, device_id, reason } => WireValue::RemoveDevice(wire::RemoveDevice {
            user_id: long(user_id.0),
            device_id: long(device_id.0),
            reason: reason.clone(),
        }),
        UserCommand::UpdateProfile { user_id, change } => WireValue::UpdateProfile(wire::UpdateProfile {
            user_id: long(user_id.0),
            display_name: change.display_name.clone(),
            about: change.about.clone(),
            picture: change.picture.clone(),
        }),
        UserCommand::SetPrivacy { user_id, change } => WireValue::SetPrivacy(wire::SetPrivacy {
            user_id: long(user_id.0),
            last_seen: change.last_seen.map(audience_to_wire),
            photo: change.photo.map(audience_to_wire),
            about: change.about.map(audience_to_wire),
            read_receipts: change.read_receipts,
            groups: change.groups.map(audience_to_wire),
        }),
        UserCommand::SetBlock { user_id, target, blocked } => WireValue::BlockUser(wire::BlockUser {
            user_id: long(user_id.0),
            target: long(target.0),
            blocked: *blocked,
        }),
        UserCommand::UpdateContacts { user_id, added, removed } => WireValue::UpdateContacts(wire::UpdateContacts {
            user_id: long(user_id.0),
            added: users_to_wire(added),
            removed: users_to_wire(removed),
        }),
        UserCommand::SetPin { user_id, pin_hash } => {
            WireValue::SetPin(wire::SetPin { user_id: long(user_id.0), pin_hash: pin_hash.clone() })
        }
        UserCommand::RecordLastSeen { user_id, at } => {
            WireValue::RecordLastSeen(wire::RecordLastSeen { user_id: long(user_id.0), at: at.0 })
        }
    }
}

impl TryFrom<WireValue> for UserCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let user = |value: i64| id(value, "user_id").map(UserId);
        Ok(match value {
            WireValue::RegisterDevice(register) => UserCommand::RegisterDevice(RegisterDevice {
                user_id: user(register.user_id)?,
                device_id: DeviceId(id(register.device_id, "device_id")?),
                device_name: register.device_name,
            }),
            WireValue::RemoveDevice(remove) => UserCommand::RemoveDevice {
                user_id: user(remove.user_id)?,
                device_id: DeviceId(id(remove.device_id, "device_id")?),
                reason: remove.reason,
            },
            WireValue::UpdateProfile(update) => UserCommand::UpdateProfile {
                user_id: user(update.user_id)?,
                change: ProfileChange {
                    display_name: update.display_name,
                    about: update.about,
                    picture: update.picture,
                },
            },
            WireValue::SetPrivacy(set) => UserCommand::SetPrivacy {
                user_id: user(set.user_id)?,
                change: PrivacyChange {
                    last_seen: set.last_seen.map(audience_from_wire),
                    photo: set.photo.map(audience_from_wire),
                    about: set.about.map(audience_from_wire),
                    read_receipts: set.read_receipts,
                    groups: set.groups.map(audience_from_wire),
                },
            },
            WireValue::BlockUser(block) => UserCommand::SetBlock {
                user_id: user(block.user_id)?,
                target: UserId(id(block.target, "target")?),
                blocked: block.blocked,
            },
            WireValue::UpdateContacts(update) => UserCommand::UpdateContacts {
                user_id: user(update.user_id)?,
                added: users_from_wire(update.added, "added")?,
                removed: users_from_wire(update.removed, "removed")?,
            },
            WireValue::SetPin(set) => UserCommand::SetPin { user_id: user(set.user_id)?, pin_hash: set.pin_hash },
            WireValue::RecordLastSeen(seen) => {
                UserCommand::RecordLastSeen { user_id: user(seen.user_id)?, at: Millis(seen.at) }
            }
            other => return Err(ConvertError::WrongType { expected: "user command", found: other.record_type() }),
        })
    }
}

pub fn user_event_to_wire(event: &UserEvent) -> WireValue {
    match event {
        UserEvent::DeviceRegistered(registered) => WireValue::DeviceRegistered(wire::DeviceRegistered {
            user_id: long(registered.user_id.0),
            device_id: long(registered.device_id.0),
            device_name: registered.device_name.clone(),
            new_account: registered.new_account,
            at: registered.at.0,
        }),
        UserEvent::DeviceRemoved { user_id, device_id, reason, at } => WireValue::DeviceRemoved(wire::DeviceRemoved {
            user_id: long(user_id.0),
            device_id: long(device_id.0),
            reason: reason.clone(),
            at: at.0,
        }),
        UserEvent::ProfileUpdated { user_id, profile, at } => WireValue::ProfileUpdated(wire::ProfileUpdated {
            user_id: long(user_id.0),
            display_name: profile.display_name.clone(),
            about: profile.about.clone(),
            picture: profile.picture.clone(),
            at: at.0,
        }),
        UserEvent::PrivacyChanged { user_id, privacy, at } => WireValue::PrivacyChanged(wire::PrivacyChanged {
            user_id: long(user_id.0),
            last_seen: audience_to_wire(privacy.last_seen),
            photo: audience_to_wire(privacy.photo),
            about: audience_to_wire(privacy.about),
            read_receipts: privacy.read_receipts,
            groups: audience_to_wire(privacy.groups),
            at: at.0,
        }),
        UserEvent::BlockChanged { user_id, target, blocked, at } => WireValue::BlockChanged(wire::BlockChanged {
            user_id: long(user_id.0),
            target: long(target.0),
            blocked: *blocked,
            at: at.0,
        }),
        UserEvent::ContactsChanged { user_id, added, removed, at } => {
            WireValue::ContactsChanged(wire::ContactsChanged {
                user_id: long(user_id.0),
                added: users_to_wire(added),
                removed: users_to_wire(removed),
                at: at.0,
            })
        }
        UserEvent::PinChanged { user_id, pin_hash, at } => {
            WireValue::PinChanged(wire::PinChanged { user_id: long(user_id.0), pin_hash: pin_hash.clone(), at: at.0 })
        }
        UserEvent::LastSeen { user_id, at } => {
            WireValue::LastSeen(wire::LastSeen { user_id: long(user_id.0), at: at.0 })
        }
    }
}

impl TryFrom<WireValue> for UserEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let user = |value: i64| id(value, "user_id").map(UserId);
        Ok(match value {
            WireValue::DeviceRegistered(registered) => UserEvent::DeviceRegistered(DeviceRegistered {
                user_id: user(registered.user_id)?,
                device_id: DeviceId(id(registered.device_id, "device_id")?),
                device_name: registered.device_name,
                new_account: registered.new_account,
                at: Millis(registered.at),
            }),
            WireValue::DeviceRemoved(removed) => UserEvent::DeviceRemoved {
                user_id: user(removed.user_id)?,
                device_id: DeviceId(id(removed.device_id, "device_id")?),
                reason: removed.reason,
                at: Millis(removed.at),
            },
            WireValue::ProfileUpdated(updated) => UserEvent::ProfileUpdated {
                user_id: user(updated.user_id)?,
                profile: Profile { display_name: updated.display_name, about: updated.about, picture: updated.picture },
                at: Millis(updated.at),
            },
            WireValue::PrivacyChanged(changed) => UserEvent::PrivacyChanged {
                user_id: user(changed.user_id)?,
                privacy: Privacy {
                    last_seen: audience_from_wire(changed.last_seen),
                    photo: audience_from_wire(changed.photo),
                    about: audience_from_wire(changed.about),
                    read_receipts: changed.read_receipts,
                    groups: audience_from_wire(changed.groups),
                },
                at: Millis(changed.at),
            },
            WireValue::BlockChanged(changed) => UserEvent::BlockChanged {
                user_id: user(changed.user_id)?,
                target: UserId(id(changed.target, "target")?),
                blocked: changed.blocked,
                at: Millis(changed.at),
            },
            WireValue::ContactsChanged(changed) => UserEvent::ContactsChanged {
                user_id: user(changed.user_id)?,
                added: users_from_wire(changed.added, "added")?,
                removed: users_from_wire(changed.removed, "removed")?,
                at: Millis(changed.at),
            },
            WireValue::PinChanged(changed) => UserEvent::PinChanged {
                user_id: user(changed.user_id)?,
                pin_hash: changed.pin_hash,
                at: Millis(changed.at),
            },
            WireValue::LastSeen(seen) => UserEvent::LastSeen { user_id: user(seen.user_id)?, at: Millis(seen.at) },
            other => return Err(ConvertError::WrongType { expected: "user event", found: other.record_type() }),
        })
    }
}
