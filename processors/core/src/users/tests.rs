use crate::ids::*;

use super::decide::*;
use super::model::*;
use super::visibility::*;

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
