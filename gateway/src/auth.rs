//! Phone registration with one-time codes, the registration PIN, JWT
//! access tokens and rotating refresh tokens, and the rate limits that make
//! guessing impractical.
//!
//! OTP challenges and refresh tokens are gateway-local credentials kept in
//! the `auth` column family, hashed; accounts, devices and PINs are events in
//! the log (`commands.user` -> `events.user`). Phone numbers are never
//! stored: every key derived from one is an HMAC with the server's secret.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use missive_core::{DeviceId, UserId};
use missive_infra::db::{CF_AUTH, family};
use parking_lot::Mutex;
use rand::Rng;
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::errors::ApiError;

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

/// A number's live codes and the wrong guesses made against them.
///
/// Nobody but the number's owner should be able to keep the owner from
/// registering: a new request adds a code instead of ending the ones
/// already sent (up to [`OTP_LIVE_CODES`], every one of them delivered to
/// the owner), and wrong guesses count per client address (5 end that
/// address's tries until it requests a code again, not the codes). Only [`OTP_MAX_WRONG_TOTAL`] wrong
/// guesses from all addresses together end every code: the bound on a
/// distributed brute force.
#[derive(Serialize, Deserialize, Default)]
struct Challenge {
    /// Live codes, oldest first.
    codes: Vec<LiveCode>,
    /// Wrong guesses per client address (its rate-limit key, as text).
    wrong: std::collections::BTreeMap<String, u32>,
    wrong_total: u32,
}

#[derive(Serialize, Deserialize)]
struct LiveCode {
    code_hash: String,
    expires_at: i64,
}

/// Codes of one number alive at once.
pub const OTP_LIVE_CODES: usize = 3;
/// Wrong guesses from all addresses together that end a number's codes.
pub const OTP_MAX_WRONG_TOTAL: u32 = 30;

impl Challenge {
    fn live(mut self, now: i64) -> Challenge {
        self.codes.retain(|code| code.expires_at >= now);
        if self.codes.is_empty() {
            return Challenge::default();
        }
        self
    }

    /// Whether the guesses from `address` may still be checked.
    fn may_guess(&self, address: &str) -> bool {
        self.wrong_total < OTP_MAX_WRONG_TOTAL && self.wrong.get(address).copied().unwrap_or(0) < OTP_MAX_ATTEMPTS
    }

    fn count_wrong(&mut self, address: &str) {
        *self.wrong.entry(address.to_string()).or_default() += 1;
        self.wrong_total += 1;
    }
}

#[derive(Serialize, Deserialize)]
struct RefreshRecord {
    user_id: u64,
    device_id: u64,
    expires_at: i64,
    /// Set when the token was exchanged; a second use is a theft signal.
    used: bool,
}

/// What exchanging a refresh token found.
pub enum Refreshed {
    /// A fresh pair for this device.
    Issued { principal: Principal, access: String, refresh: String, expires_in: i64 },
    /// The token was already used: the device's session must be revoked.
    Reused(Principal),
}

type Limiter<K> = DefaultKeyedRateLimiter<K>;

struct Limiters {
    otp_phone: Limiter<[u8; 32]>,
    otp_address: Limiter<IpAddr>,
    verify_phone: Limiter<[u8; 32]>,
    verify_address: Limiter<IpAddr>,
    contact_sync: Limiter<UserId>,
    current_pin: Limiter<UserId>,
}

fn per(period: Duration, count: u32) -> Quota {
    let count = NonZeroU32::new(count.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period / count.get()).unwrap_or_else(|| Quota::per_second(count)).allow_burst(count)
}

/// The rate-limit key of a client address: an IPv6 client is keyed by its
/// /64 (one subscriber's prefix: it can pick any address in it), an
/// IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(limiter: &Limiter<K>, key: &K, what: &str) -> Result<(), ApiError> {
    if limiter.len() > 100_000 {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::rate_limited(what, wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

pub struct Auth {
    db: Arc<DB>,
    config: AuthConfig,
    encoding: EncodingKey,
    decoding: Vec<DecodingKey>,
    http: reqwest::Client,
    limiters: Limiters,
    /// Serialises refresh-token exchanges so a token is never used twice concurrently.
    refresh_lock: Arc<Mutex<()>>,
    /// Serialises every read-modify-write of an OTP challenge: two correct
    /// verifies at once register one device, and concurrent wrong guesses
    /// each count.
    challenge_lock: Arc<Mutex<()>>,
    /// PIN hashes computed at once (each takes ~19 MiB and tens of ms).
    pin_work: Arc<tokio::sync::Semaphore>,
}

/// PIN hashes computed at once per gateway.
const PIN_HASHES_AT_ONCE: usize = 2;

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

fn now_seconds() -> i64 {
    missive_infra::now_ms() / 1000
}

fn storage(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(error.to_string())
}

/// Runs store work on the blocking pool, off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(storage)?
}

fn invalid_code() -> ApiError {
    ApiError::unauthorized("the code is wrong, used or expired; request a new one").with_code("invalid_code")
}

/// Whose guesses at a code these are: the client's rate-limit address.
fn guesser(client: Option<IpAddr>) -> String {
    client.map(address_key).map(|address| address.to_string()).unwrap_or_default()
}

/// What a PIN hash covers: the account and the PIN.
fn pin_password(user: UserId, pin: &str) -> Vec<u8> {
    let mut password = user.to_be_bytes().to_vec();
    password.extend_from_slice(pin.as_bytes());
    password
}

/// Argon2id with the recommended parameters (19 MiB, 2 passes) and `pepper` as its secret.
fn pin_hasher(pepper: &[u8]) -> Result<argon2::Argon2<'_>, ApiError> {
    argon2::Argon2::new_with_secret(
        pepper,
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::default(),
    )
    .map_err(|error| ApiError::internal(format!("PIN hasher: {error}")))
}

impl Auth {
    pub fn new(db: Arc<DB>, config: AuthConfig) -> Auth {
        let encoding = EncodingKey::from_secret(&config.jwt_secret);
        let decoding = std::iter::once(&config.jwt_secret)
            .chain(config.previous_jwt_secrets.iter())
            .map(|secret| DecodingKey::from_secret(secret))
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let hour = Duration::from_secs(3600);
        let limits = config.limits;
        let limiters = Limiters {
            otp_phone: RateLimiter::keyed(per(hour, limits.otp_per_phone_per_hour)),
            otp_address: RateLimiter::keyed(per(hour, limits.otp_per_address_per_hour)),
            verify_phone: RateLimiter::keyed(per(hour, limits.verify_per_phone_per_hour)),
            verify_address: RateLimiter::keyed(per(hour, limits.verify_per_address_per_hour)),
            contact_sync: RateLimiter::keyed(per(24 * hour, limits.contact_syncs_per_day)),
            current_pin: RateLimiter::keyed(per(hour, CURRENT_PIN_TRIES_PER_HOUR)),
        };
        Auth {
            db,
            config,
            encoding,
            decoding,
            http,
            limiters,
            refresh_lock: Arc::new(Mutex::new(())),
            challenge_lock: Arc::new(Mutex::new(())),
            pin_work: Arc::new(tokio::sync::Semaphore::new(PIN_HASHES_AT_ONCE)),
        }
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

    /// The account id behind a contact hash: a keyed hash, so ids reveal no
    /// number and the same number always maps to the same account.
    pub fn user_id_for_contact_hash(&self, hash: &str) -> UserId {
        let digest = self.keyed_hash(&[b"user-id", hash.as_bytes()]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // Below 2^63 (Avro long) and never 0.
        UserId((u64::from_be_bytes(first) >> 1).max(1))
    }

    pub fn user_id_for_phone(&self, phone: &str) -> UserId {
        self.user_id_for_contact_hash(&contact_hash(phone))
    }

    fn phone_key(&self, phone: &str) -> [u8; 32] {
        self.keyed_hash(&[b"otp-key", phone.as_bytes()])
    }

    fn challenge_key(&self, phone: &str) -> Vec<u8> {
        let mut key = b"otp/".to_vec();
        key.extend_from_slice(hex::encode(self.phone_key(phone)).as_bytes());
        key
    }

    fn code_hash(&self, phone: &str, code: &str) -> String {
        hex::encode(self.keyed_hash(&[b"otp-code", phone.as_bytes(), code.as_bytes()]))
    }

    /// The stored form of a PIN: an argon2id PHC string (salted, memory-hard,
    /// keyed with a pepper derived from the server secret, over the account
    /// id and the PIN), so a copy of the log alone cannot be searched.
    pub async fn pin_hash(&self, user: UserId, pin: &str) -> Result<String, ApiError> {
        let (pepper, password) = (self.pin_pepper(), pin_password(user, pin));
        self.pin_work(move || {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt_bytes: [u8; 16] = rand::random();
            let salt = SaltString::encode_b64(&salt_bytes)
                .map_err(|error| ApiError::internal(format!("PIN salt: {error}")))?;
            pin_hasher(&pepper)?
                .hash_password(&password, &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| ApiError::internal(format!("hashing the PIN failed: {error}")))
        })
        .await
    }

    /// Whether `pin` is the account's PIN stored as `stored` (argon2id, or
    /// the keyed SHA-256 form of PINs set before argon2id).
    pub async fn pin_matches(&self, user: UserId, pin: &str, stored: &str) -> Result<bool, ApiError> {
        if !stored.starts_with("$argon2") {
            let legacy = hex::encode(self.keyed_hash(&[b"pin", &user.to_be_bytes(), pin.as_bytes()]));
            return Ok(bool::from(legacy.as_bytes().ct_eq(stored.as_bytes())));
        }
        let (pepper, password, stored) = (self.pin_pepper(), pin_password(user, pin), stored.to_string());
        self.pin_work(move || {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            let parsed = PasswordHash::new(&stored)
                .map_err(|error| ApiError::internal(format!("the stored PIN hash is unreadable: {error}")))?;
            Ok(pin_hasher(&pepper)?.verify_password(&password, &parsed).is_ok())
        })
        .await
    }

    fn pin_pepper(&self) -> [u8; 32] {
        self.keyed_hash(&[b"pin-pepper"])
    }

    /// Runs PIN hashing on a blocking thread, at most [`PIN_HASHES_AT_ONCE`] at a time.
    async fn pin_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.pin_work.acquire().await.map_err(|_| ApiError::unavailable("shutting down"))?;
        tokio::task::spawn_blocking(work).await.map_err(|error| ApiError::internal(error.to_string()))?
    }

    /// Counts a try of the account's current PIN (changing or removing it)
    /// against its hourly allowance, so a stolen session cannot guess it.
    pub fn check_current_pin_try(&self, user: UserId) -> Result<(), ApiError> {
        check(&self.limiters.current_pin, &user, "current PIN tries")
    }

    /// Counts a contact sync against the account's daily allowance.
    pub fn check_contact_sync(&self, user: UserId) -> Result<(), ApiError> {
        check(&self.limiters.contact_sync, &user, "contact syncs")
    }

    /// Creates a fresh code for `phone` and sends it; the codes sent before
    /// stay good until they expire (the oldest goes past [`OTP_LIVE_CODES`]).
    pub async fn start_otp(&self, phone: &str, client: Option<IpAddr>) -> Result<i64, ApiError> {
        if !is_e164(phone) {
            return Err(ApiError::bad_request("invalid_phone", "phone must be E.164, like +14155550100"));
        }
        // The address first: a flood of fresh numbers from one address is
        // refused there and leaves no bucket per number behind.
        if let Some(address) = client {
            check(&self.limiters.otp_address, &address_key(address), "code requests from this address")?;
        }
        check(&self.limiters.otp_phone, &self.phone_key(phone), "code requests for this number")?;
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let fresh = LiveCode {
            code_hash: self.code_hash(phone, &code),
            expires_at: now_seconds() + self.config.limits.otp_ttl_seconds,
        };
        let address = guesser(client);
        self.with_challenge(phone, true, move |challenge| {
            // The requester's own wrong guesses start over with its new code
            // (5 a code; the verify limit per number and address still holds).
            challenge.wrong.remove(&address);
            challenge.codes.push(fresh);
            if challenge.codes.len() > OTP_LIVE_CODES {
                challenge.codes.remove(0);
            }
            Ok(false)
        })
        .await?;
        self.deliver(phone, &code).await?;
        Ok(self.config.limits.otp_ttl_seconds)
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

    /// Counts a verify attempt against the address's limit and the limit
    /// for the number from that address (so others' attempts never use up
    /// the owner's).
    pub fn check_verify_rate(&self, phone: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(address) = client {
            check(&self.limiters.verify_address, &address_key(address), "verify attempts from this address")?;
        }
        let from = client.map(address_key).map(|address| address.to_string()).unwrap_or_default();
        let key = self.keyed_hash(&[b"verify", phone.as_bytes(), from.as_bytes()]);
        check(&self.limiters.verify_phone, &key, "verify attempts for this number")
    }

    /// Checks a code (constant time) against the number's live codes
    /// without using it up. A wrong code counts against the client's
    /// address: its fifth ends that address's tries.
    pub async fn check_otp(&self, phone: &str, code: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        if !is_e164(phone) {
            return Err(ApiError::bad_request("invalid_phone", "phone must be E.164, like +14155550100"));
        }
        let expected = self.code_hash(phone, code);
        let address = guesser(client);
        self.with_challenge(phone, false, move |challenge| {
            if !challenge.may_guess(&address) {
                return Err(invalid_code());
            }
            // Every live code is compared, so the time does not tell which matched.
            let matched = challenge
                .codes
                .iter()
                .fold(false, |found, live| found | bool::from(live.code_hash.as_bytes().ct_eq(expected.as_bytes())));
            if matched {
                Ok(false)
            } else {
                challenge.count_wrong(&address);
                Err(invalid_code())
            }
        })
        .await
    }

    /// Counts a wrong PIN as a wrong guess from the client's address.
    pub async fn wrong_pin(&self, phone: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        let address = guesser(client);
        self.with_challenge(phone, false, move |challenge| {
            challenge.count_wrong(&address);
            Ok(false)
        })
        .await
    }

    /// Uses the number's codes up: none can verify a second device.
    pub async fn consume_otp(&self, phone: &str) -> Result<(), ApiError> {
        self.with_challenge(phone, false, |_| Ok(true)).await
    }

    /// Loads the number's live codes (`invalid_code` if there are none,
    /// unless `create`: `start_otp` adds the first), lets `update` change
    /// them (returning whether to delete them all), and stores the result.
    async fn with_challenge(
        &self,
        phone: &str,
        create: bool,
        update: impl FnOnce(&mut Challenge) -> Result<bool, ApiError> + Send + 'static,
    ) -> Result<(), ApiError> {
        let key = self.challenge_key(phone);
        let (db, lock) = (self.db.clone(), self.challenge_lock.clone());
        blocking(move || {
            let _held = lock.lock();
            let family = family(&db, CF_AUTH);
            // A record of an earlier layout reads as no codes (they live minutes).
            let stored = db.get_cf(family, &key).map_err(storage)?;
            let challenge =
                stored.and_then(|bytes| serde_json::from_slice::<Challenge>(&bytes).ok()).unwrap_or_default();
            let mut challenge = challenge.live(now_seconds());
            let result =
                if challenge.codes.is_empty() && !create { Err(invalid_code()) } else { update(&mut challenge) };
            if matches!(result, Ok(true)) || challenge.codes.is_empty() || challenge.wrong_total >= OTP_MAX_WRONG_TOTAL
            {
                db.delete_cf(family, &key).map_err(storage)?;
            } else {
                db.put_cf(family, &key, serde_json::to_vec(&challenge).map_err(storage)?).map_err(storage)?;
            }
            result.map(|_| ())
        })
        .await
    }

    fn access_token(&self, principal: Principal) -> Result<String, ApiError> {
        let now = now_seconds();
        let claims = Claims {
            sub: principal.user.to_string(),
            dev: principal.device.to_string(),
            iat: now,
            nbf: now - 5,
            exp: now + self.config.limits.access_ttl_seconds,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(storage)
    }

    fn refresh_key(token: &str) -> Vec<u8> {
        let mut key = b"refresh/".to_vec();
        key.extend_from_slice(hex::encode(Sha256::digest(token.as_bytes())).as_bytes());
        key
    }

    /// A new refresh token `rt1.<user id>.<secret>` (the user id lets any
    /// gateway route it), stored hashed.
    fn refresh_token(&self, principal: Principal) -> Result<(String, Vec<u8>, Vec<u8>), ApiError> {
        let mut secret = [0u8; 32];
        rand::rng().fill(&mut secret);
        let token = format!("rt1.{}.{}", principal.user, hex::encode(secret));
        let record = RefreshRecord {
            user_id: principal.user.0,
            device_id: principal.device.0,
            expires_at: now_seconds() + REFRESH_TTL_SECONDS,
            used: false,
        };
        Ok((token.clone(), Auth::refresh_key(&token), serde_json::to_vec(&record).map_err(storage)?))
    }

    /// Access token (JWT, HS256) and a refresh token for a device.
    pub async fn issue(&self, principal: Principal) -> Result<(String, String, i64), ApiError> {
        let access = self.access_token(principal)?;
        let (refresh, key, value) = self.refresh_token(principal)?;
        let db = self.db.clone();
        blocking(move || db.put_cf(family(&db, CF_AUTH), key, value).map_err(storage)).await?;
        Ok((access, refresh, self.config.limits.access_ttl_seconds))
    }

    /// The user a refresh token names (for routing), if it is well formed.
    pub fn refresh_token_user(token: &str) -> Option<UserId> {
        let mut parts = token.split('.');
        (parts.next() == Some("rt1")).then_some(())?;
        let user = parts.next()?.parse().ok()?;
        let secret = parts.next()?;
        (secret.len() == 64 && parts.next().is_none()).then_some(user)
    }

    /// Exchanges a refresh token for a new pair (rotation). A token used
    /// twice reports `Reused`: someone copied it.
    pub async fn refresh(&self, token: &str) -> Result<Refreshed, ApiError> {
        let invalid =
            || ApiError::unauthorized("unknown or expired refresh token; verify again").with_code("invalid_token");
        if Auth::refresh_token_user(token).is_none() {
            return Err(invalid());
        }
        let key = Auth::refresh_key(token);
        let (db, lock) = (self.db.clone(), self.refresh_lock.clone());
        // Spend the token: read and mark it used under the lock, so two
        // concurrent exchanges of one token cannot both succeed.
        let (principal, reused) = blocking(move || {
            let _exchange = lock.lock();
            let family = family(&db, CF_AUTH);
            let Some(bytes) = db.get_cf(family, &key).map_err(storage)? else { return Err(invalid()) };
            let mut record: RefreshRecord = serde_json::from_slice(&bytes).map_err(storage)?;
            let principal = Principal { user: UserId(record.user_id), device: DeviceId(record.device_id) };
            if record.expires_at < now_seconds() {
                return Err(invalid());
            }
            if record.used {
                return Ok((principal, true));
            }
            record.used = true;
            db.put_cf(family, &key, serde_json::to_vec(&record).map_err(storage)?).map_err(storage)?;
            Ok((principal, false))
        })
        .await?;
        if reused {
            return Ok(Refreshed::Reused(principal));
        }
        let (access, refresh, expires_in) = self.issue(principal).await?;
        Ok(Refreshed::Issued { principal, access, refresh, expires_in })
    }

    /// Verifies an access token's signature (HS256 only: any other `alg`
    /// is refused), issuer, audience, expiry and not-before. Whether the
    /// device still exists is the caller's second check.
    pub fn verify_access(&self, token: &str) -> Result<Principal, ApiError> {
        self.verify_access_until(token).map(|(principal, _)| principal)
    }

    /// The principal of a valid access token and when it expires (Unix seconds).
    pub fn verify_access_until(&self, token: &str) -> Result<(Principal, i64), ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let mut last_error = None;
        for key in &self.decoding {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    let user =
                        data.claims.sub.parse().map_err(|_| ApiError::unauthorized("invalid access token subject"))?;
                    let device =
                        data.claims.dev.parse().map_err(|_| ApiError::unauthorized("invalid access token device"))?;
                    return Ok((Principal { user, device }, data.claims.exp));
                }
                Err(error) => {
                    let signature = matches!(error.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature);
                    last_error = Some(error);
                    if !signature {
                        break;
                    }
                }
            }
        }
        let error = last_error.map(|error| error.to_string()).unwrap_or_default();
        Err(ApiError::unauthorized(format!("invalid access token ({error}); refresh it or verify again")))
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
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let key = |text: &str| address_key(text.parse().expect("address"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"), "one /64, one bucket");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
    }

    fn test_auth(dir: &std::path::Path, limits: AuthLimits, phone_secret: u8) -> Auth {
        let db = missive_infra::db::open_db(dir).expect("db");
        let config = AuthConfig {
            jwt_secret: vec![7; 32],
            previous_jwt_secrets: Vec::new(),
            phone_secret: vec![phone_secret; 32],
            sms_sink: SmsSink::File(dir.join("sms.jsonl")),
            limits,
        };
        Auth::new(db, config)
    }

    #[tokio::test]
    async fn pins_are_stored_as_salted_peppered_argon2id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let auth = test_auth(dir.path(), AuthLimits::default(), 8);
        let (user, other) = (UserId(41), UserId(42));
        let first = auth.pin_hash(user, "246810").await.expect("hash");
        let second = auth.pin_hash(user, "246810").await.expect("hash");
        assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert_eq!(auth.pin_matches(user, "246810", &first).await.ok(), Some(true));
        assert_eq!(auth.pin_matches(user, "246811", &first).await.ok(), Some(false));
        assert_eq!(auth.pin_matches(other, "246810", &first).await.ok(), Some(false), "bound to the account");
        let other_dir = tempfile::tempdir().expect("temp dir");
        let other_server = test_auth(other_dir.path(), AuthLimits::default(), 9);
        assert_eq!(other_server.pin_matches(user, "246810", &first).await.ok(), Some(false), "keyed by the secret");
        // PINs set before argon2id (a keyed SHA-256) still verify.
        let legacy = hex::encode(auth.keyed_hash(&[b"pin", &user.to_be_bytes(), b"135790"]));
        assert_eq!(auth.pin_matches(user, "135790", &legacy).await.ok(), Some(true));
        assert_eq!(auth.pin_matches(user, "135791", &legacy).await.ok(), Some(false));
    }

    #[tokio::test]
    async fn a_flood_of_fresh_numbers_from_one_address_stores_nothing_once_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let limits = AuthLimits { otp_per_address_per_hour: 3, ..AuthLimits::default() };
        let auth = test_auth(dir.path(), limits, 8);
        let address: IpAddr = "2001:db8::1".parse().expect("address");
        for n in 0..3 {
            auth.start_otp(&format!("+1415555{n:04}"), Some(address)).await.expect("within the allowance");
        }
        for n in 3..1_000 {
            let other_in_prefix: IpAddr = format!("2001:db8::{n:x}").parse().expect("address");
            let refused = auth.start_otp(&format!("+1415555{n:04}"), Some(other_in_prefix)).await;
            assert_eq!(refused.map_err(|error| error.code), Err("rate_limited"));
        }
        assert_eq!(auth.limiters.otp_phone.len(), 3, "refused requests left no bucket per number");
    }

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
    fn contact_hashes_are_sha256_of_the_e164_text() {
        let hash = contact_hash("+14155550100");
        assert_eq!(hash, "40d3f4e02db27d66cf4cfdda506c2c945f115a7955cc8491dda98ce5beabcda0");
        assert!(is_contact_hash(&hash));
        assert!(!is_contact_hash(&hash.to_uppercase()));
        assert!(!is_contact_hash("+14155550100"));
    }

    #[test]
    fn refresh_tokens_name_their_user_and_pins_are_six_digits() {
        let secret = "ab".repeat(32);
        assert_eq!(Auth::refresh_token_user(&format!("rt1.42.{secret}")), Some(UserId(42)));
        assert_eq!(Auth::refresh_token_user(&format!("rt2.42.{secret}")), None);
        assert_eq!(Auth::refresh_token_user("rt1.42.short"), None);
        assert_eq!(Auth::refresh_token_user(&format!("rt1.x.{secret}")), None);
        assert_eq!(Auth::refresh_token_user(&format!("rt1.42.{secret}.extra")), None);
        assert!(is_pin("012345"));
        assert!(!is_pin("12345") && !is_pin("1234567") && !is_pin("12a456"));
    }

    #[test]
    fn quotas_allow_the_full_count_at_once_then_refill_evenly() {
        let limiter: Limiter<u8> = RateLimiter::keyed(per(Duration::from_secs(3600), 5));
        for _ in 0..5 {
            assert!(check(&limiter, &1, "tries").is_ok());
        }
        let refused = check(&limiter, &1, "tries").expect_err("the sixth is refused");
        assert_eq!(refused.status.as_u16(), 429);
        let wait = refused.retry_after.expect("retry_after");
        assert!((700..=720).contains(&wait), "one try comes back every 12 minutes: {wait}");
        assert!(check(&limiter, &2, "tries").is_ok(), "keys are independent");
    }

    #[test]
    fn sms_sinks_parse() {
        assert_eq!("log".parse::<SmsSink>(), Ok(SmsSink::Log));
        assert_eq!("file:/tmp/x".parse::<SmsSink>(), Ok(SmsSink::File("/tmp/x".into())));
        assert_eq!("webhook:http://h/p".parse::<SmsSink>(), Ok(SmsSink::Webhook("http://h/p".into())));
        assert!("smtp:x".parse::<SmsSink>().is_err());
    }
}
