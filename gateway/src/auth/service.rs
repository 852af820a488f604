//! The authenticator: its keys, stores and rate limiters, and the keyed
//! hashes every phone-derived key goes through.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use missive_core::UserId;
use missive_infra::Clock;
use parking_lot::Mutex;
use rocksdb::DB;
use sha2::Sha256;

use super::config::{AuthConfig, CURRENT_PIN_TRIES_PER_HOUR};
use super::identity::contact_hash;
use crate::protocol::ApiError;

pub(super) type Limiter<K> = DefaultKeyedRateLimiter<K>;

pub(super) struct Limiters {
    pub(super) otp_phone: Limiter<[u8; 32]>,
    pub(super) otp_address: Limiter<IpAddr>,
    pub(super) verify_phone: Limiter<[u8; 32]>,
    pub(super) verify_address: Limiter<IpAddr>,
    pub(super) contact_sync: Limiter<UserId>,
    pub(super) current_pin: Limiter<UserId>,
}

pub(super) fn per(period: Duration, count: u32) -> Quota {
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

pub(super) fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
    what: &str,
) -> Result<(), ApiError> {
    if limiter.len() > 100_000 {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::rate_limited(what, wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

pub struct Auth {
    pub(super) db: Arc<DB>,
    pub(super) config: AuthConfig,
    pub(super) encoding: EncodingKey,
    pub(super) decoding: Vec<DecodingKey>,
    pub(super) http: reqwest::Client,
    pub(super) limiters: Limiters,
    /// Serialises refresh-token exchanges so a token is never used twice concurrently.
    pub(super) refresh_lock: Arc<Mutex<()>>,
    /// Serialises every read-modify-write of an OTP challenge: two correct
    /// verifies at once register one device, and concurrent wrong guesses
    /// each count.
    pub(super) challenge_lock: Arc<Mutex<()>>,
    /// PIN hashes computed at once (each takes ~19 MiB and tens of ms).
    pub(super) pin_work: Arc<tokio::sync::Semaphore>,
    /// What tokens, codes and refresh records are stamped and checked with.
    pub(super) clock: Clock,
}

/// PIN hashes computed at once per gateway.
pub(super) const PIN_HASHES_AT_ONCE: usize = 2;

pub(super) fn storage(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(error.to_string())
}

/// Runs store work on the blocking pool, off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(storage)?
}

impl Auth {
    /// Seconds since the Unix epoch, on this authenticator's clock.
    pub(super) fn now_seconds(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    pub fn new(db: Arc<DB>, config: AuthConfig, clock: Clock) -> Auth {
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
            clock,
        }
    }

    pub(super) fn keyed_hash(&self, parts: &[&[u8]]) -> [u8; 32] {
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

    pub(super) fn phone_key(&self, phone: &str) -> [u8; 32] {
        self.keyed_hash(&[b"otp-key", phone.as_bytes()])
    }

    pub(super) fn challenge_key(&self, phone: &str) -> Vec<u8> {
        let mut key = b"otp/".to_vec();
        key.extend_from_slice(hex::encode(self.phone_key(phone)).as_bytes());
        key
    }

    pub(super) fn code_hash(&self, phone: &str, code: &str) -> String {
        hex::encode(self.keyed_hash(&[b"otp-code", phone.as_bytes(), code.as_bytes()]))
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
}
