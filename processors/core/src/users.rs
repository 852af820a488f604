//! The users decider: accounts and their devices.

use crate::ids::{DeviceId, Millis, UserId};

pub const MAX_DEVICE_NAME_BYTES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegisterDevice {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub device_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserCommand {
    RegisterDevice(RegisterDevice),
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
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct UserState {
    pub devices: Vec<DeviceId>,
    pub created_at: Option<Millis>,
}

pub fn decide(state: &UserState, command: &UserCommand, now: Millis) -> Vec<UserEvent> {
    match command {
        UserCommand::RegisterDevice(register) => {
            if state.devices.contains(&register.device_id) {
                return Vec::new();
            }
            let mut device_name = register.device_name.clone();
            if device_name.len() > MAX_DEVICE_NAME_BYTES {
                let mut cut = MAX_DEVICE_NAME_BYTES;
                while !device_name.is_char_boundary(cut) {
                    cut -= 1;
                }
                device_name.truncate(cut);
            }
            vec![UserEvent::DeviceRegistered(DeviceRegistered {
                user_id: register.user_id,
                device_id: register.device_id,
                device_name,
                new_account: state.created_at.is_none(),
                at: now,
            })]
        }
    }
}

pub fn evolve(mut state: UserState, event: &UserEvent) -> UserState {
    match event {
        UserEvent::DeviceRegistered(registered) => {
            state.created_at.get_or_insert(registered.at);
            if !state.devices.contains(&registered.device_id) {
                state.devices.push(registered.device_id);
            }
        }
    }
    state
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

    #[test]
    fn first_device_creates_the_account_and_a_repeat_is_idempotent() {
        let events = decide(&UserState::default(), &register(1), Millis(10));
        let UserEvent::DeviceRegistered(first) = &events[0];
        assert!(first.new_account);
        assert!(first.device_name.len() <= MAX_DEVICE_NAME_BYTES);
        let state = events.iter().fold(UserState::default(), evolve);
        assert!(decide(&state, &register(1), Millis(11)).is_empty());
        let second = decide(&state, &register(2), Millis(12));
        let UserEvent::DeviceRegistered(second) = &second[0];
        assert!(!second.new_account);
    }
}
