//! What an operator configures of authentication: keys, the SMS sink,
//! rate limits and lifetimes.

use std::path::PathBuf;
use std::str::FromStr;

/// Codes live this long by default (`--otp-ttl-seconds`).
pub const OTP_TTL_SECONDS: i64 = 300;
/// Wrong guesses (codes or PINs) from one client address that end its
/// tries at a number's codes.
pub const OTP_MAX_ATTEMPTS: u32 = 5;
/// Access tokens live this long by default (`--access-ttl-seconds`).
pub const ACCESS_TTL_SECONDS: i64 = 3600;
/// A refresh token is good for this long, and for one use.
pub const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 3600;
pub const ISSUER: &str = "missive";
pub const AUDIENCE: &str = "missive-clients";
/// The signing key `--dev` uses when none is configured. Any other mode
/// refuses to start with it.
pub const DEV_JWT_SECRET: &str = "missive-development-signing-key-do-not-use";
/// Shortest signing key accepted outside `--dev`.
pub const MIN_SECRET_BYTES: usize = 32;

/// Tries of the current PIN (to change or remove it) per account per hour.
pub const CURRENT_PIN_TRIES_PER_HOUR: u32 = 5;

/// Where one-time codes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsSink {
    /// Printed in the server log.
    Log,
    /// One JSON line per code appended to a file.
    File(PathBuf),
    /// The same JSON POSTed to a URL.
    Webhook(String),
}

impl FromStr for SmsSink {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "log" {
            return Ok(SmsSink::Log);
        }
        if let Some(path) = text.strip_prefix("file:") {
            return Ok(SmsSink::File(PathBuf::from(path)));
        }
        if let Some(url) = text.strip_prefix("webhook:") {
            return Ok(SmsSink::Webhook(url.to_string()));
        }
        Err(format!("unknown SMS sink {text:?}: use log, file:PATH or webhook:URL"))
    }
}

/// Rate limits of the unauthenticated endpoints and of contact sync. Each
/// is a GCRA bucket: the full count may be used at once, then it refills
/// evenly over the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthLimits {
    /// Codes requested for one phone number per hour.
    pub otp_per_phone_per_hour: u32,
    /// Codes requested from one client address per hour.
    pub otp_per_address_per_hour: u32,
    /// Verify attempts (right or wrong) for one phone number per hour.
    pub verify_per_phone_per_hour: u32,
    /// Verify attempts from one client address per hour.
    pub verify_per_address_per_hour: u32,
    /// Contact-sync requests per account per day.
    pub contact_syncs_per_day: u32,
    /// Seconds a one-time code stays valid.
    pub otp_ttl_seconds: i64,
    /// Seconds an access token lives.
    pub access_ttl_seconds: i64,
}

impl Default for AuthLimits {
    fn default() -> AuthLimits {
        AuthLimits {
            otp_per_phone_per_hour: 5,
            otp_per_address_per_hour: 100,
            verify_per_phone_per_hour: 10,
            verify_per_address_per_hour: 300,
            contact_syncs_per_day: 24,
            otp_ttl_seconds: OTP_TTL_SECONDS,
            access_ttl_seconds: ACCESS_TTL_SECONDS,
        }
    }
}

#[derive(Clone)]
pub struct AuthConfig {
    /// HMAC key that signs access tokens (HS256).
    pub jwt_secret: Vec<u8>,
    /// Earlier signing keys still accepted while their tokens live out (rotation).
    pub previous_jwt_secrets: Vec<Vec<u8>>,
    /// HMAC key for user ids, OTP and PIN hashes.
    pub phone_secret: Vec<u8>,
    pub sms_sink: SmsSink,
    pub limits: AuthLimits,
}
