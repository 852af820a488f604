use super::*;

const OWNER: UserId = UserId(1);
const PHONE: DeviceId = DeviceId(11);

fn identity() -> IdentityKeys {
    IdentityKeys { curve25519: "curve".into(), ed25519: "ed".into() }
}

fn key(id: u32) -> SignedKey {
    SignedKey { key_id: format!("k{id:03}"), key: format!("public-{id}"), signature: format!("sig-{id}") }
}

fn upload(one_time: Vec<SignedKey>, fallback: Option<SignedKey>) -> KeysCommand {
    KeysCommand::Upload(UploadKeys { user_id: OWNER, device_id: PHONE, identity: identity(), one_time, fallback })
}

fn claim() -> KeysCommand {
    KeysCommand::Claim(ClaimKey { user_id: OWNER, device_id: PHONE, by: UserId(2), by_device: DeviceId(21) })
}

type Outcome = Result<Option<KeysEvent>, KeyRejection>;

/// Decides and folds each command in turn; the outcome of each.
fn run(commands: &[KeysCommand]) -> (DeviceKeys, Vec<Outcome>) {
    let mut keys = DeviceKeys::default();
    let mut outcomes = Vec::new();
    for command in commands {
        let outcome = decide(true, &keys, command, Millis(5));
        if let Ok(Some(event)) = &outcome {
            keys = evolve(keys, event);
        }
        outcomes.push(outcome);
    }
    (keys, outcomes)
}

fn claimed(outcome: &Outcome) -> KeyClaimed {
    match outcome {
        Ok(Some(KeysEvent::Claimed(claimed))) => claimed.clone(),
        other => panic!("a claim, got {other:?}"),
    }
}

#[test]
fn each_one_time_key_is_handed_out_once_then_the_fallback_key() {
    let mut commands = vec![upload((0..20).map(key).collect(), Some(key(999)))];
    commands.extend((0..50).map(|_| claim()));
    let (keys, outcomes) = run(&commands);
    let claims: Vec<KeyClaimed> = outcomes[1..].iter().map(claimed).collect();
    let one_time: std::collections::BTreeSet<&str> =
        claims.iter().filter(|claim| !claim.fallback).map(|claim| claim.key.key_id.as_str()).collect();
    assert_eq!(one_time.len(), 20, "20 distinct one-time keys");
    assert_eq!(claims.iter().filter(|claim| claim.fallback).count(), 30);
    assert!(claims.iter().filter(|claim| claim.fallback).all(|claim| claim.key == key(999)));
    assert_eq!(claims[0].remaining, 19);
    assert_eq!(claims[19].remaining, 0);
    assert!(!runs_low(&claims[9]) && runs_low(&claims[10]), "below {LOW_KEYS} left");
    let notices: Vec<u32> = claims.iter().filter(|claim| notice_due(claim)).map(|claim| claim.remaining).collect();
    assert_eq!(notices, vec![LOW_KEYS as u32 - 1, 0], "the owner hears when it runs low and when it runs out");
    assert!(keys.one_time.is_empty() && keys.fallback == Some(key(999)), "the fallback key stays");
}

#[test]
fn a_device_without_keys_has_none_to_claim() {
    let (_, outcomes) = run(&[claim()]);
    assert_eq!(outcomes[0], Err(KeyRejection::NoKeys));
    let (_, outcomes) = run(&[upload(vec![key(1)], None), claim(), claim()]);
    assert_eq!(claimed(&outcomes[1]).key, key(1));
    assert_eq!(outcomes[2], Err(KeyRejection::NoKeys), "no one-time key left and no fallback");
}

#[test]
fn a_retried_upload_changes_nothing_and_an_identity_is_fixed() {
    let batch = vec![key(1), key(2)];
    let (keys, outcomes) = run(&[upload(batch.clone(), Some(key(9))), upload(batch, Some(key(9)))]);
    assert_eq!(outcomes[1], Ok(None), "a repeat is no change");
    assert_eq!(keys.one_time.len(), 2);
    let other = KeysCommand::Upload(UploadKeys {
        user_id: OWNER,
        device_id: PHONE,
        identity: IdentityKeys { curve25519: "other".into(), ed25519: "ed".into() },
        one_time: vec![key(3)],
        fallback: None,
    });
    let (_, outcomes) = run(&[upload(vec![key(1)], None), other]);
    assert_eq!(outcomes[1], Err(KeyRejection::IdentityChanged), "a new identity is a new device");
}

#[test]
fn uploads_are_bounded_and_ids_are_not_reused_for_other_keys() {
    let (_, outcomes) = run(&[upload((0..=MAX_KEYS_PER_UPLOAD as u32).map(key).collect(), None)]);
    assert_eq!(outcomes[0], Err(KeyRejection::TooManyKeys));
    let full: Vec<KeysCommand> =
        (0..2).map(|batch| upload((batch * 100..batch * 100 + 100).map(key).collect(), None)).collect();
    let mut commands = full;
    commands.push(upload(vec![key(500)], None));
    let (keys, outcomes) = run(&commands);
    assert_eq!(keys.one_time.len(), MAX_STORED_KEYS);
    assert_eq!(outcomes[2], Err(KeyRejection::TooManyKeys));
    let changed = SignedKey { key: "different".into(), ..key(1) };
    let (_, outcomes) = run(&[upload(vec![key(1)], None), upload(vec![changed], None)]);
    assert_eq!(outcomes[1], Err(KeyRejection::InvalidKey), "a stored id names one key");
    let (_, outcomes) = run(&[upload(vec![SignedKey { key_id: String::new(), ..key(1) }], None)]);
    assert_eq!(outcomes[0], Err(KeyRejection::InvalidKey));
}

#[test]
fn only_a_current_device_has_keys() {
    assert_eq!(decide(false, &DeviceKeys::default(), &claim(), Millis(5)), Err(KeyRejection::UnknownDevice));
    assert_eq!(
        decide(false, &DeviceKeys::default(), &upload(vec![key(1)], None), Millis(5)),
        Err(KeyRejection::UnknownDevice)
    );
}
