//! The key directory of end-to-end encryption: each device's public identity
//! keys, its signed one-time keys and its signed fallback key. The server
//! holds public keys only; it never sees a private key or a plaintext.
//!
//! Uploads and claims are commands on `commands.user` (keyed by the owner of
//! the keys), decided here by the users processor against the device's key
//! store, so concurrent claims of one device are decided one after another:
//! a one-time key is handed out at most once, and when none is left the
//! fallback key is. Signatures are checked by the gateway before a command
//! is appended (the core has no crypto); the decider checks the rest.

use std::collections::BTreeMap;

use crate::ids::{DeviceId, Millis, UserId};

/// One-time keys in one upload.
pub const MAX_KEYS_PER_UPLOAD: usize = 100;
/// One-time keys a device may have stored at once.
pub const MAX_STORED_KEYS: usize = 200;
/// Below this many unclaimed one-time keys the owner is told to upload more.
pub const LOW_KEYS: usize = 10;
/// Longest key id a client may choose.
pub const MAX_KEY_ID_BYTES: usize = 64;

/// A device's long-term public keys (unpadded base64, as vodozemac prints them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityKeys {
    pub curve25519: String,
    pub ed25519: String,
}

/// A Curve25519 public key signed with its device's Ed25519 identity key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedKey {
    pub key_id: String,
    pub key: String,
    pub signature: String,
}

/// What a device has stored: its identity, unclaimed one-time keys (by id)
/// and its fallback key.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeviceKeys {
    pub identity: Option<IdentityKeys>,
    pub one_time: BTreeMap<String, SignedKey>,
    pub fallback: Option<SignedKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadKeys {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub identity: IdentityKeys,
    pub one_time: Vec<SignedKey>,
    pub fallback: Option<SignedKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimKey {
    /// The owner of the keys (the record's key).
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub by: UserId,
    pub by_device: DeviceId,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeysCommand {
    Upload(UploadKeys),
    Claim(ClaimKey),
}

impl KeysCommand {
    pub fn user_id(&self) -> UserId {
        match self {
            KeysCommand::Upload(upload) => upload.user_id,
            KeysCommand::Claim(claim) => claim.user_id,
        }
    }

    pub fn device_id(&self) -> DeviceId {
        match self {
            KeysCommand::Upload(upload) => upload.device_id,
            KeysCommand::Claim(claim) => claim.device_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeysUploaded {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub identity: IdentityKeys,
    /// The new one-time keys only (ids already stored are left out).
    pub one_time: Vec<SignedKey>,
    /// Set when the fallback key changed.
    pub fallback: Option<SignedKey>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyClaimed {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub key: SignedKey,
    /// The fallback key (no one-time key was left); it stays stored.
    pub fallback: bool,
    pub by: UserId,
    pub by_device: DeviceId,
    /// One-time keys left after this claim.
    pub remaining: u32,
    pub at: Millis,
}

/// What a decided key command changed (the users processor writes each
/// as a `UserEvent` on `events.user`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeysEvent {
    Uploaded(KeysUploaded),
    Claimed(KeyClaimed),
}

/// Why a key command was refused. Codes are part of the client protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error("no such device")]
    UnknownDevice,
    #[error("a device's identity keys never change; register a new device for new keys")]
    IdentityChanged,
    #[error("at most {MAX_KEYS_PER_UPLOAD} one-time keys per upload and {MAX_STORED_KEYS} stored per device")]
    TooManyKeys,
    #[error("a key id is empty, too long, or already names another key")]
    InvalidKey,
    #[error("this device has no keys to claim; it must upload keys first")]
    NoKeys,
}

impl KeyRejection {
    pub fn code(&self) -> &'static str {
        match self {
            KeyRejection::UnknownDevice | KeyRejection::NoKeys => "not_found",
            KeyRejection::IdentityChanged => "conflict",
            KeyRejection::TooManyKeys => "limit_reached",
            KeyRejection::InvalidKey => "invalid_key",
        }
    }
}

/// Decides an upload or a claim of a device's keys; `device_exists` says
/// whether the device is a current one of its account. `None`: a repeat.
pub fn decide(
    device_exists: bool,
    keys: &DeviceKeys,
    command: &KeysCommand,
    now: Millis,
) -> Result<Option<KeysEvent>, KeyRejection> {
    if !device_exists {
        return Err(KeyRejection::UnknownDevice);
    }
    match command {
        KeysCommand::Upload(upload) => decide_upload(keys, upload, now),
        KeysCommand::Claim(claim) => decide_claim(keys, claim, now).map(Some),
    }
}

fn decide_upload(keys: &DeviceKeys, upload: &UploadKeys, now: Millis) -> Result<Option<KeysEvent>, KeyRejection> {
    if keys.identity.as_ref().is_some_and(|identity| *identity != upload.identity) {
        return Err(KeyRejection::IdentityChanged);
    }
    if upload.one_time.len() > MAX_KEYS_PER_UPLOAD {
        return Err(KeyRejection::TooManyKeys);
    }
    let bad_id = |key: &SignedKey| key.key_id.is_empty() || key.key_id.len() > MAX_KEY_ID_BYTES;
    if upload.one_time.iter().chain(&upload.fallback).any(bad_id) {
        return Err(KeyRejection::InvalidKey);
    }
    let mut fresh: BTreeMap<&str, &SignedKey> = BTreeMap::new();
    for key in &upload.one_time {
        match keys.one_time.get(&key.key_id) {
            // A retried upload repeats keys already stored: they are skipped.
            Some(stored) if stored == key => {}
            Some(_) => return Err(KeyRejection::InvalidKey),
            None => {
                if fresh.insert(&key.key_id, key).is_some_and(|other| other != key) {
                    return Err(KeyRejection::InvalidKey);
                }
            }
        }
    }
    if keys.one_time.len() + fresh.len() > MAX_STORED_KEYS {
        return Err(KeyRejection::TooManyKeys);
    }
    let fallback = upload.fallback.clone().filter(|key| keys.fallback.as_ref() != Some(key));
    if keys.identity.is_some() && fresh.is_empty() && fallback.is_none() {
        return Ok(None);
    }
    Ok(Some(KeysEvent::Uploaded(KeysUploaded {
        user_id: upload.user_id,
        device_id: upload.device_id,
        identity: upload.identity.clone(),
        one_time: fresh.into_values().cloned().collect(),
        fallback,
        at: now,
    })))
}

fn decide_claim(keys: &DeviceKeys, claim: &ClaimKey, now: Millis) -> Result<KeysEvent, KeyRejection> {
    let (key, fallback) = match keys.one_time.values().next() {
        Some(key) => (key.clone(), false),
        None => (keys.fallback.clone().ok_or(KeyRejection::NoKeys)?, true),
    };
    let remaining = keys.one_time.len() - usize::from(!fallback);
    Ok(KeysEvent::Claimed(KeyClaimed {
        user_id: claim.user_id,
        device_id: claim.device_id,
        key,
        fallback,
        by: claim.by,
        by_device: claim.by_device,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        at: now,
    }))
}

/// Folds a key event into the device's key store.
pub fn evolve(mut keys: DeviceKeys, event: &KeysEvent) -> DeviceKeys {
    match event {
        KeysEvent::Uploaded(uploaded) => {
            keys.identity = Some(uploaded.identity.clone());
            for key in &uploaded.one_time {
                keys.one_time.insert(key.key_id.clone(), key.clone());
            }
            if let Some(fallback) = &uploaded.fallback {
                keys.fallback = Some(fallback.clone());
            }
        }
        KeysEvent::Claimed(claimed) => {
            if !claimed.fallback {
                keys.one_time.remove(&claimed.key.key_id);
            }
        }
    }
    keys
}

/// Whether a claim leaves the owner's device short of one-time keys.
pub fn runs_low(claimed: &KeyClaimed) -> bool {
    (claimed.remaining as usize) < LOW_KEYS
}

/// Whether the owner is told of a claim: when its one-time keys drop below
/// [`LOW_KEYS`] and when the last one goes; two notices per batch at most,
/// however many claims follow (fallback claims tell nothing new).
pub fn notice_due(claimed: &KeyClaimed) -> bool {
    !claimed.fallback && (claimed.remaining as usize + 1 == LOW_KEYS || claimed.remaining == 0)
}

/// The message a device signs for each of its one-time and fallback keys:
/// it binds the key to the device, so a key cannot be replayed as another's.
pub fn signed_message(user: UserId, device: DeviceId, key: &SignedKey) -> String {
    format!("missive/key/v1\n{user}\n{device}\n{}\n{}", key.key_id, key.key)
}

pub mod share;

#[cfg(test)]
mod tests;
