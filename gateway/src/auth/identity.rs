//! Who a request is (the token claims and the authenticated device), and
//! the shapes of the credentials clients send: phone numbers, contact
//! hashes and PINs.

use missive_core::{DeviceId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub dev: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// An authenticated device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub device: DeviceId,
}

/// `+` then 7 to 15 digits, the first not 0 (ITU-T E.164).
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else { return false };
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// The contact hash clients send for a phone number: lowercase hex of
/// SHA-256 over the E.164 text (`+14155550100`). See docs/PROTOCOL.md.
pub fn contact_hash(phone: &str) -> String {
    hex::encode(Sha256::digest(phone.as_bytes()))
}

/// 64 lowercase hex digits.
pub fn is_contact_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Six digits.
pub fn is_pin(pin: &str) -> bool {
    pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit())
}
