//! Access tokens (JWT, HS256, with key rotation) and rotating one-use
//! refresh tokens.

use jsonwebtoken::{Algorithm, Header, Validation};
use missive_core::{DeviceId, UserId};
use missive_infra::db::{CF_AUTH, family};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{AUDIENCE, ISSUER, REFRESH_TTL_SECONDS};
use super::identity::{Claims, Principal};
use super::service::{Auth, blocking, storage};
use crate::protocol::ApiError;

#[derive(Serialize, Deserialize)]
pub(super) struct RefreshRecord {
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

impl Auth {
    fn access_token(&self, principal: Principal) -> Result<String, ApiError> {
        let now = self.now_seconds();
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
            expires_at: self.now_seconds() + REFRESH_TTL_SECONDS,
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
        let (db, lock, now) = (self.db.clone(), self.refresh_lock.clone(), self.now_seconds());
        // Spend the token: read and mark it used under the lock, so two
        // concurrent exchanges of one token cannot both succeed.
        let (principal, reused) = blocking(move || {
            let _exchange = lock.lock();
            let family = family(&db, CF_AUTH);
            let Some(bytes) = db.get_cf(family, &key).map_err(storage)? else { return Err(invalid()) };
            let mut record: RefreshRecord = serde_json::from_slice(&bytes).map_err(storage)?;
            let principal = Principal { user: UserId(record.user_id), device: DeviceId(record.device_id) };
            if record.expires_at < now {
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
        // Expiry and not-before are checked below, on this authenticator's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let mut last_error = None;
        for key in &self.decoding {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    let now = self.now_seconds();
                    let timing = if data.claims.exp < now {
                        Some("ExpiredSignature")
                    } else if data.claims.nbf > now {
                        Some("ImmatureSignature")
                    } else {
                        None
                    };
                    if let Some(timing) = timing {
                        return Err(ApiError::unauthorized(format!(
                            "invalid access token ({timing}); refresh it or verify again"
                        )));
                    }
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
