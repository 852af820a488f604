//! Phone registration with one-time codes, and JWT access tokens.
//!
//! OTP challenges and refresh tokens are gateway-local credentials kept in
//! the `auth` column family (hashed); accounts and devices themselves are
//! events in the log (`commands.user` -> `events.user`).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use missive_core::{DeviceId, UserId};
use missive_infra::db::{CF_AUTH, family};
use rand::Rng;
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::errors::ApiError;

/// Codes live this long.
pub const OTP_TTL_SECONDS: i64 = 300;
/// Wrong guesses that kill a code.
pub const OTP_MAX_ATTEMPTS: u32 = 5;
pub const ACCESS_TTL_SECONDS: i64 = 3600;
pub const ISSUER: &str = "missive";
pub const AUDIENCE: &str = "missive-clients";

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

#[derive(Clone)]
pub struct AuthConfig {
    /// HMAC key for access tokens (HS256).
    pub jwt_secret: Vec<u8>,
    /// HMAC key for deriving user ids and hashing codes from phone numbers.
    pub phone_secret: Vec<u8>,
    pub sms_sink: SmsSink,
}

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

#[derive(Serialize, Deserialize)]
struct Challenge {
    code_hash: String,
    expires_at: i64,
    attempts: u32,
}

#[derive(Serialize, Deserialize)]
struct RefreshRecord {
    user_id: u64,
    device_id: u64,
    issued_at: i64,
}

pub struct Auth {
    db: Arc<DB>,
    config: AuthConfig,
    encoding: EncodingKey,
    decoding: DecodingKey,
    http: reqwest::Client,
}

/// `+` then 7 to 15 digits, the first not 0 (ITU-T E.164).
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else { return false };
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

fn now_seconds() -> i64 {
    missive_infra::now_ms() / 1000
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| ApiError::internal(error.to_string()))?
}

impl Auth {
    pub fn new(db: Arc<DB>, config: AuthConfig) -> Auth {
        let encoding = EncodingKey::from_secret(&config.jwt_secret);
        let decoding = DecodingKey::from_secret(&config.jwt_secret);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Auth { db, config, encoding, decoding, http }
    }

    fn keyed_hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.config.phone_secret).expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The account id of a phone number: a keyed hash, so ids reveal no
    /// number and the same number always maps to the same account.
    pub fn user_id_for_phone(&self, phone: &str) -> UserId {
        let digest = self.keyed_hash(&[b"user-id", phone.as_bytes()]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // Below 2^63 (Avro long) and never 0.
        UserId((u64::from_be_bytes(first) >> 1).max(1))
    }

    fn challenge_key(&self, phone: &str) -> Vec<u8> {
        let mut key = b"otp/".to_vec();
        key.extend_from_slice(hex::encode(self.keyed_hash(&[b"otp-key", phone.as_bytes()])).as_bytes());
        key
    }

    fn code_hash(&self, phone: &str, code: &str) -> String {
        hex::encode(self.keyed_hash(&[b"otp-code", phone.as_bytes(), code.as_bytes()]))
    }

    /// Creates a fresh code for `phone`, replacing any earlier one, and sends it.
    pub async fn start_otp(&self, phone: &str) -> Result<i64, ApiError> {
        if !is_e164(phone) {
            return Err(ApiError::bad_request("invalid_phone", "phone must be E.164, like +14155550100"));
        }
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let challenge = Challenge {
            code_hash: self.code_hash(phone, &code),
            expires_at: now_seconds() + OTP_TTL_SECONDS,
            attempts: 0,
        };
        let key = self.challenge_key(phone);
        let value = serde_json::to_vec(&challenge).map_err(|error| ApiError::internal(error.to_string()))?;
        let db = self.db.clone();
        blocking(move || {
            db.put_cf(family(&db, CF_AUTH), key, value).map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
        self.deliver(phone, &code).await?;
        Ok(OTP_TTL_SECONDS)
    }

    async fn deliver(&self, phone: &str, code: &str) -> Result<(), ApiError> {
        let line = serde_json::json!({"to": phone, "code": code});
        match &self.config.sms_sink {
            SmsSink::Log => {
                tracing::info!(to = phone, code, "one-time code (sms sink: log)");
                Ok(())
            }
            SmsSink::File(path) => {
                let path = path.clone();
                blocking(move || {
                    use std::io::Write;
                    let mut file =
                        std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|error| {
                            ApiError::unavailable(format!("cannot write the SMS sink file: {error}"))
                        })?;
                    // One write per line: concurrent appends never interleave.
                    file.write_all(format!("{line}\n").as_bytes())
                        .map_err(|error| ApiError::unavailable(format!("SMS sink file: {error}")))
                })
                .await
            }
            SmsSink::Webhook(url) => {
                let response = self
                    .http
                    .post(url)
                    .json(&line)
                    .send()
                    .await
                    .map_err(|error| ApiError::unavailable(format!("SMS webhook unreachable: {error}")))?;
                if !response.status().is_success() {
                    return Err(ApiError::unavailable(format!("SMS webhook answered {}", response.status())));
                }
                Ok(())
            }
        }
    }

    /// Checks and consumes a code. Wrong guesses count; the fifth kills the code.
    pub async fn check_otp(&self, phone: &str, code: &str) -> Result<(), ApiError> {
        if !is_e164(phone) {
            return Err(ApiError::bad_request("invalid_phone", "phone must be E.164, like +14155550100"));
        }
        let key = self.challenge_key(phone);
        let expected = self.code_hash(phone, code);
        let db = self.db.clone();
        blocking(move || {
            let family = family(&db, CF_AUTH);
            let invalid = || {
                ApiError::unauthorized("the code is wrong, used or expired; request a new one")
                    .with_code("invalid_code")
            };
            let Some(bytes) = db.get_cf(family, &key).map_err(|error| ApiError::internal(error.to_string()))? else {
                return Err(invalid());
            };
            let mut challenge: Challenge =
                serde_json::from_slice(&bytes).map_err(|error| ApiError::internal(error.to_string()))?;
            if challenge.expires_at < now_seconds() {
                let _ = db.delete_cf(family, &key);
                return Err(invalid());
            }
            if bool::from(challenge.code_hash.as_bytes().ct_eq(expected.as_bytes())) {
                db.delete_cf(family, &key).map_err(|error| ApiError::internal(error.to_string()))?;
                return Ok(());
            }
            challenge.attempts += 1;
            if challenge.attempts >= OTP_MAX_ATTEMPTS {
                db.delete_cf(family, &key).map_err(|error| ApiError::internal(error.to_string()))?;
            } else {
                let value = serde_json::to_vec(&challenge).map_err(|error| ApiError::internal(error.to_string()))?;
                db.put_cf(family, &key, value).map_err(|error| ApiError::internal(error.to_string()))?;
            }
            Err(invalid())
        })
        .await
    }

    /// Access token (JWT, HS256) and a refresh token for a device.
    pub async fn issue(&self, principal: Principal) -> Result<(String, String, i64), ApiError> {
        let now = now_seconds();
        let claims = Claims {
            sub: principal.user.to_string(),
            dev: principal.device.to_string(),
            iat: now,
            nbf: now - 5,
            exp: now + ACCESS_TTL_SECONDS,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let access = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| ApiError::internal(error.to_string()))?;
        let mut secret = [0u8; 32];
        rand::rng().fill(&mut secret);
        let refresh = hex::encode(secret);
        let mut key = b"refresh/".to_vec();
        key.extend_from_slice(hex::encode(Sha256::digest(refresh.as_bytes())).as_bytes());
        let record = RefreshRecord { user_id: principal.user.0, device_id: principal.device.0, issued_at: now };
        let value = serde_json::to_vec(&record).map_err(|error| ApiError::internal(error.to_string()))?;
        let db = self.db.clone();
        blocking(move || {
            db.put_cf(family(&db, CF_AUTH), key, value).map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
        Ok((access, refresh, ACCESS_TTL_SECONDS))
    }

    /// Verifies an access token: signature, algorithm, issuer, audience, expiry, not-before.
    pub fn verify_access(&self, token: &str) -> Result<Principal, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| ApiError::unauthorized(format!("invalid access token: {error}")))?;
        let user = data.claims.sub.parse().map_err(|_| ApiError::unauthorized("invalid access token subject"))?;
        let device = data.claims.dev.parse().map_err(|_| ApiError::unauthorized("invalid access token device"))?;
        Ok(Principal { user, device })
    }
}

impl ApiError {
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_recognised() {
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1415555010012345"));
        assert!(!is_e164("+1415-555"));
        assert!(!is_e164("+123"));
    }

    #[test]
    fn sms_sinks_parse() {
        assert_eq!("log".parse::<SmsSink>(), Ok(SmsSink::Log));
        assert_eq!("file:/tmp/x".parse::<SmsSink>(), Ok(SmsSink::File("/tmp/x".into())));
        assert_eq!("webhook:http://h/p".parse::<SmsSink>(), Ok(SmsSink::Webhook("http://h/p".into())));
        assert!("smtp:x".parse::<SmsSink>().is_err());
    }
}
