//! The key directory on the wire: uploads and claims, and their events.

use missive_core::UserId;
use missive_core::keys::share::{DeviceMessage, ShareKeys, ToDevice};
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

fn olm_type_from_wire(olm_type: i32) -> u8 {
    u8::try_from(olm_type).unwrap_or(u8::MAX)
}

impl From<&ShareKeys> for wire::ShareKeys {
    fn from(share: &ShareKeys) -> wire::ShareKeys {
        wire::ShareKeys {
            user_id: share.user_id,
            from: share.from,
            from_device: share.from_device,
            messages: share
                .messages
                .iter()
                .map(|message| wire::DeviceMessage {
                    device_id: message.device_id,
                    olm_type: i32::from(message.olm_type),
                    body: message.body.clone(),
                })
                .collect(),
            group: share.group,
        }
    }
}

impl From<wire::ShareKeys> for ShareKeys {
    fn from(share: wire::ShareKeys) -> ShareKeys {
        ShareKeys {
            user_id: share.user_id,
            from: share.from,
            from_device: share.from_device,
            messages: share
                .messages
                .into_iter()
                .map(|message| DeviceMessage {
                    device_id: message.device_id,
                    olm_type: olm_type_from_wire(message.olm_type),
                    body: message.body,
                })
                .collect(),
            group: share.group,
        }
    }
}

impl From<&ShareKeys> for WireValue {
    fn from(share: &ShareKeys) -> WireValue {
        WireValue::ShareKeys(share.into())
    }
}

impl TryFrom<WireValue> for ShareKeys {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::ShareKeys(share) => Ok(share.into()),
            other => Err(ConvertError::WrongType { expected: "key share", found: other.record_type() }),
        }
    }
}

/// A device-addressed entry and its recipient, to and from the wire.
pub(super) fn to_device_to_wire(recipient: UserId, entry: &ToDevice) -> wire::DeliverToDevice {
    wire::DeliverToDevice {
        recipient,
        device_id: entry.device_id,
        from: entry.from,
        from_device: entry.from_device,
        olm_type: i32::from(entry.olm_type),
        body: entry.body.clone(),
        sent_at: entry.sent_at,
    }
}

pub(super) fn to_device_from_wire(deliver: wire::DeliverToDevice) -> (UserId, ToDevice) {
    let entry = ToDevice {
        device_id: deliver.device_id,
        from: deliver.from,
        from_device: deliver.from_device,
        olm_type: olm_type_from_wire(deliver.olm_type),
        body: deliver.body,
        sent_at: deliver.sent_at,
    };
    (deliver.recipient, entry)
}
