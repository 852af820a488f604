//! Phone registration with one-time codes, the registration PIN, JWT
//! access tokens and rotating refresh tokens, and the rate limits that make
//! guessing impractical.
//!
//! OTP challenges and refresh tokens are gateway-local credentials kept in
//! the `auth` column family, hashed; accounts, devices and PINs are events in
//! the log (`commands.user` -> `events.user`). Phone numbers are never
//! stored: every key derived from one is an HMAC with the server's secret.

mod config;
mod identity;
mod otp;
mod pin;
mod service;
mod tokens;

pub use config::*;
pub use identity::{Claims, Principal, contact_hash, is_contact_hash, is_e164, is_pin};
pub use otp::{OTP_LIVE_CODES, OTP_MAX_WRONG_TOTAL};
pub use service::{Auth, address_key, blocking};
pub use tokens::Refreshed;

#[cfg(test)]
mod tests;
