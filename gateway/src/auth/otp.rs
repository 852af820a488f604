//! One-time codes: issuing them to a phone number, checking guesses, and
//! the per-address and per-number bounds on guessing.

use std::net::IpAddr;

use missive_infra::db::{CF_AUTH, family};
use rand::Rng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::config::{OTP_MAX_ATTEMPTS, SmsSink};
use super::identity::is_e164;
use super::service::{Auth, address_key, blocking, check, storage};
use crate::protocol::ApiError;

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
pub(super) struct Challenge {
    /// Live codes, oldest first.
    codes: Vec<LiveCode>,
    /// Wrong guesses per client address (its rate-limit key, as text).
    wrong: std::collections::BTreeMap<String, u32>,
    wrong_total: u32,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LiveCode {
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

fn invalid_code() -> ApiError {
    ApiError::unauthorized("the code is wrong, used or expired; request a new one").with_code("invalid_code")
}

/// Whose guesses at a code these are: the client's rate-limit address.
fn guesser(client: Option<IpAddr>) -> String {
    client.map(address_key).map(|address| address.to_string()).unwrap_or_default()
}

impl Auth {
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
            expires_at: self.now_seconds() + self.config.limits.otp_ttl_seconds,
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
        let (db, lock, now) = (self.db.clone(), self.challenge_lock.clone(), self.now_seconds());
        blocking(move || {
            let _held = lock.lock();
            let family = family(&db, CF_AUTH);
            // A record of an earlier layout reads as no codes (they live minutes).
            let stored = db.get_cf(family, &key).map_err(storage)?;
            let challenge =
                stored.and_then(|bytes| serde_json::from_slice::<Challenge>(&bytes).ok()).unwrap_or_default();
            let mut challenge = challenge.live(now);
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
}
