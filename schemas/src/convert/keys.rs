//! The key directory on the wire: uploads and claims, and their events.

use missive_core::keys::{ClaimKey, IdentityKeys, KeyClaimed, KeysCommand, KeysUploaded, SignedKey, UploadKeys};

use crate::wire::{self, WireValue};

use super::common::*;

impl From<&SignedKey> for wire::SignedKey {
    fn from(key: &SignedKey) -> wire::SignedKey {
        wire::SignedKey { key_id: key.key_id.clone(), key: key.key.clone(), signature: key.signature.clone() }
    }
}

impl From<wire::SignedKey> for SignedKey {
    fn from(key: wire::SignedKey) -> SignedKey {
        SignedKey { key_id: key.key_id, key: key.key, signature: key.signature }
    }
}

impl From<&UploadKeys> for wire::UploadKeys {
    fn from(upload: &UploadKeys) -> wire::UploadKeys {
        wire::UploadKeys {
            user_id: upload.user_id,
            device_id: upload.device_id,
            identity_curve25519: upload.identity.curve25519.clone(),
            identity_ed25519: upload.identity.ed25519.clone(),
            one_time_keys: upload.one_time.iter().map(wire::SignedKey::from).collect(),
            fallback_key: upload.fallback.as_ref().map(wire::SignedKey::from),
        }
    }
}

impl From<wire::UploadKeys> for UploadKeys {
    fn from(upload: wire::UploadKeys) -> UploadKeys {
        UploadKeys {
            user_id: upload.user_id,
            device_id: upload.device_id,
            identity: IdentityKeys { curve25519: upload.identity_curve25519, ed25519: upload.identity_ed25519 },
            one_time: upload.one_time_keys.into_iter().map(SignedKey::from).collect(),
            fallback: upload.fallback_key.map(SignedKey::from),
        }
    }
}

impl From<&ClaimKey> for wire::ClaimKey {
    fn from(claim: &ClaimKey) -> wire::ClaimKey {
        wire::ClaimKey { user_id: claim.user_id, device_id: claim.device_id, by: claim.by, by_device: claim.by_device }
    }
}

impl From<wire::ClaimKey> for ClaimKey {
    fn from(claim: wire::ClaimKey) -> ClaimKey {
        ClaimKey { user_id: claim.user_id, device_id: claim.device_id, by: claim.by, by_device: claim.by_device }
    }
}

impl From<&KeysUploaded> for wire::KeysUploaded {
    fn from(uploaded: &KeysUploaded) -> wire::KeysUploaded {
        wire::KeysUploaded {
            user_id: uploaded.user_id,
            device_id: uploaded.device_id,
            identity_curve25519: uploaded.identity.curve25519.clone(),
            identity_ed25519: uploaded.identity.ed25519.clone(),
            one_time_keys: uploaded.one_time.iter().map(wire::SignedKey::from).collect(),
            fallback_key: uploaded.fallback.as_ref().map(wire::SignedKey::from),
            at: uploaded.at,
        }
    }
}

impl From<wire::KeysUploaded> for KeysUploaded {
    fn from(uploaded: wire::KeysUploaded) -> KeysUploaded {
        KeysUploaded {
            user_id: uploaded.user_id,
            device_id: uploaded.device_id,
            identity: IdentityKeys { curve25519: uploaded.identity_curve25519, ed25519: uploaded.identity_ed25519 },
            one_time: uploaded.one_time_keys.into_iter().map(SignedKey::from).collect(),
            fallback: uploaded.fallback_key.map(SignedKey::from),
            at: uploaded.at,
        }
    }
}

impl From<&KeyClaimed> for wire::KeyClaimed {
    fn from(claimed: &KeyClaimed) -> wire::KeyClaimed {
        wire::KeyClaimed {
            user_id: claimed.user_id,
            device_id: claimed.device_id,
            key: (&claimed.key).into(),
            fallback: claimed.fallback,
            by: claimed.by,
            by_device: claimed.by_device,
            remaining: i32::try_from(claimed.remaining).unwrap_or(i32::MAX),
            at: claimed.at,
        }
    }
}

impl From<wire::KeyClaimed> for KeyClaimed {
    fn from(claimed: wire::KeyClaimed) -> KeyClaimed {
        KeyClaimed {
            user_id: claimed.user_id,
            device_id: claimed.device_id,
            key: claimed.key.into(),
            fallback: claimed.fallback,
            by: claimed.by,
            by_device: claimed.by_device,
            remaining: count_from_wire(claimed.remaining),
            at: claimed.at,
        }
    }
}

impl From<&KeyClaimed> for wire::ClaimedKey {
    fn from(claimed: &KeyClaimed) -> wire::ClaimedKey {
        wire::ClaimedKey {
            key_id: claimed.key.key_id.clone(),
            key: claimed.key.key.clone(),
            signature: claimed.key.signature.clone(),
            fallback: claimed.fallback,
        }
    }
}

impl From<&KeysCommand> for WireValue {
    fn from(command: &KeysCommand) -> WireValue {
        match command {
            KeysCommand::Upload(upload) => WireValue::UploadKeys(upload.into()),
            KeysCommand::Claim(claim) => WireValue::ClaimKey(claim.into()),
        }
    }
}

impl TryFrom<WireValue> for KeysCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::UploadKeys(upload) => Ok(KeysCommand::Upload(upload.into())),
            WireValue::ClaimKey(claim) => Ok(KeysCommand::Claim(claim.into())),
            other => Err(ConvertError::WrongType { expected: "keys command", found: other.record_type() }),
        }
    }
}
