//! The registration PIN: stored as a peppered argon2id hash, checked on a
//! bounded number of blocking threads.

use missive_core::UserId;
use subtle::ConstantTimeEq;

use super::service::Auth;
use crate::protocol::ApiError;

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
}
