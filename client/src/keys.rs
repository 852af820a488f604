//! A device's end-to-end encryption keys, on vodozemac (Olm): its identity
//! keys, one-time keys and fallback key, signed the way the server checks
//! them, in the body of `PUT /v1/keys`. Private keys never leave the
//! [`DeviceKeys`] value.

use serde_json::{Value, json};
use vodozemac::olm::Account as OlmAccount;

/// What a device signs for each of its one-time and fallback keys (the
/// protocol's format, docs/PROTOCOL.md "Keys"): the key bound to its device.
pub fn signed_message(user_id: &str, device_id: &str, key_id: &str, key: &str) -> String {
    format!("missive/key/v1\n{user_id}\n{device_id}\n{key_id}\n{key}")
}

/// A device's Olm account.
pub struct DeviceKeys {
    pub(crate) account: OlmAccount,
}

impl Default for DeviceKeys {
    fn default() -> DeviceKeys {
        DeviceKeys::new()
    }
}

impl DeviceKeys {
    /// Fresh identity keys.
    pub fn new() -> DeviceKeys {
        DeviceKeys { account: OlmAccount::new() }
    }

    /// The public identity keys as the server lists them.
    pub fn identity_json(&self) -> Value {
        let identity = self.account.identity_keys();
        json!({"curve25519": identity.curve25519.to_base64(), "ed25519": identity.ed25519.to_base64()})
    }

    /// The Ed25519 key other devices check this device's signatures with.
    pub fn ed25519(&self) -> String {
        self.account.ed25519_key().to_base64()
    }

    fn signed(&self, user_id: &str, device_id: &str, key_id: &str, key: &str) -> Value {
        let signature = self.account.sign(signed_message(user_id, device_id, key_id, key)).to_base64();
        json!({"key_id": key_id, "key": key, "signature": signature})
    }

    /// The body of an upload: `count` new one-time keys and a new fallback
    /// key, each signed for this device; they count as published.
    pub fn upload_body(&mut self, user_id: &str, device_id: &str, count: usize) -> Value {
        self.account.generate_one_time_keys(count);
        self.account.generate_fallback_key();
        let mut one_time: Vec<(String, String)> =
            self.account.one_time_keys().into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect();
        one_time.sort();
        let one_time: Vec<Value> = one_time.iter().map(|(id, key)| self.signed(user_id, device_id, id, key)).collect();
        let fallback = self
            .account
            .fallback_key()
            .into_iter()
            .next()
            .map(|(id, key)| self.signed(user_id, device_id, &id.to_base64(), &key.to_base64()));
        self.account.mark_keys_as_published();
        json!({"identity_keys": self.identity_json(), "one_time_keys": one_time, "fallback_key": fallback})
    }

    /// Whether `signature` is `ed25519`'s signature of `key` for that device.
    pub fn verify_signed(ed25519: &str, user_id: &str, device_id: &str, signed: &Value) -> bool {
        let field = |name: &str| signed[name].as_str().unwrap_or_default().to_string();
        let (Ok(signer), Ok(signature)) = (
            vodozemac::Ed25519PublicKey::from_base64(ed25519),
            vodozemac::Ed25519Signature::from_base64(&field("signature")),
        ) else {
            return false;
        };
        let message = signed_message(user_id, device_id, &field("key_id"), &field("key"));
        signer.verify(message.as_bytes(), &signature).is_ok()
    }
}
