//! The key directory of end-to-end encryption over HTTP: a device uploads
//! its public identity keys, signed one-time keys and a signed fallback key;
//! another device claims one of them to start an Olm session; anyone signed
//! in reads a user's devices with their identity keys. The server checks
//! each key's shape and signature here, before anything is appended; the
//! users processor hands each one-time key out once (`missive_core::keys`).

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use missive_core::keys::{
    ClaimKey, IdentityKeys, KeysCommand, MAX_KEY_ID_BYTES, MAX_KEYS_PER_UPLOAD, SignedKey, UploadKeys, signed_message,
};
use missive_core::users::UserState;
use missive_core::{DeviceId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;

use crate::auth::Principal;
use crate::protocol::ApiError;
use crate::reads::DIRECTORY_WAIT;
use crate::rest::{Context, json_body, ok, parse_id, respond, with};
use crate::session::limits::{quota, refused, take};

/// Claims one device may make of another device's keys at once ...
pub const CLAIM_BURST: u32 = 10;
/// ... and then one every this many seconds.
pub const CLAIM_REFILL_SECONDS: u64 = 6;

#[derive(Deserialize)]
struct IdentityJson {
    curve25519: String,
    ed25519: String,
}

#[derive(Clone, Deserialize)]
struct SignedKeyJson {
    key_id: String,
    key: String,
    signature: String,
}

#[derive(Deserialize)]
struct UploadRequest {
    identity_keys: IdentityJson,
    #[serde(default)]
    one_time_keys: Vec<SignedKeyJson>,
    fallback_key: Option<SignedKeyJson>,
}

#[derive(Deserialize)]
struct ClaimRequest {
    user_id: String,
    device_id: String,
}

/// Claims per (claiming device, claimed device), in memory on this gateway.
#[derive(Clone)]
pub struct ClaimLimits(Arc<DefaultKeyedRateLimiter<(UserId, DeviceId, UserId, DeviceId)>>);

impl Default for ClaimLimits {
    fn default() -> ClaimLimits {
        let quota = Quota::with_period(Duration::from_secs(CLAIM_REFILL_SECONDS))
            .unwrap_or_else(|| quota(1, 1))
            .allow_burst(NonZeroU32::new(CLAIM_BURST).unwrap_or(NonZeroU32::MIN));
        ClaimLimits(Arc::new(RateLimiter::keyed(quota)))
    }
}

impl ClaimLimits {
    fn check(&self, by: Principal, user: UserId, device: DeviceId) -> Result<(), ApiError> {
        let wait = take(&self.0, (by.user, by.device, user, device));
        if wait.is_zero() { Ok(()) } else { Err(refused("key claims of this device", wait)) }
    }
}

fn invalid_key(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_key", message)
}

/// A public key: 32 bytes in unpadded base64 (as vodozemac writes them).
fn public_key(text: &str, what: &str) -> Result<[u8; 32], ApiError> {
    let bytes = STANDARD_NO_PAD.decode(text).map_err(|_| invalid_key(format!("{what} is not unpadded base64")))?;
    bytes.try_into().map_err(|_| invalid_key(format!("{what} is not a 32-byte public key")))
}

/// Checks one signed key's shape and its signature by the device's Ed25519 key.
fn checked_key(
    key: &SignedKeyJson,
    signer: &ed25519_dalek::VerifyingKey,
    by: Principal,
) -> Result<SignedKey, ApiError> {
    if key.key_id.is_empty() || key.key_id.len() > MAX_KEY_ID_BYTES || key.key_id.chars().any(char::is_control) {
        return Err(invalid_key(format!("a key id is 1 to {MAX_KEY_ID_BYTES} bytes without control characters")));
    }
    public_key(&key.key, &format!("key {}", key.key_id))?;
    let signature = STANDARD_NO_PAD
        .decode(&key.signature)
        .ok()
        .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
        .ok_or_else(|| invalid_key(format!("the signature of key {} is not a base64 Ed25519 signature", key.key_id)))?;
    let signed = SignedKey { key_id: key.key_id.clone(), key: key.key.clone(), signature: key.signature.clone() };
    signer.verify_strict(signed_message(by.user, by.device, &signed).as_bytes(), &signature).map_err(|_| {
        invalid_key(format!("the signature of key {} does not verify with this device's key", key.key_id))
    })?;
    Ok(signed)
}

/// The upload as a command, every key checked; `invalid_key` names the first bad one.
fn upload_command(by: Principal, request: &UploadRequest) -> Result<KeysCommand, ApiError> {
    if request.one_time_keys.len() > MAX_KEYS_PER_UPLOAD {
        return Err(ApiError::bad_request(
            "too_large",
            format!("at most {MAX_KEYS_PER_UPLOAD} one-time keys per upload"),
        ));
    }
    public_key(&request.identity_keys.curve25519, "identity_keys.curve25519")?;
    let ed25519 = public_key(&request.identity_keys.ed25519, "identity_keys.ed25519")?;
    let signer = ed25519_dalek::VerifyingKey::from_bytes(&ed25519)
        .map_err(|_| invalid_key("identity_keys.ed25519 is not an Ed25519 public key"))?;
    let one_time =
        request.one_time_keys.iter().map(|key| checked_key(key, &signer, by)).collect::<Result<Vec<_>, _>>()?;
    let fallback = request.fallback_key.as_ref().map(|key| checked_key(key, &signer, by)).transpose()?;
    Ok(KeysCommand::Upload(UploadKeys {
        user_id: by.user,
        device_id: by.device,
        identity: IdentityKeys {
            curve25519: request.identity_keys.curve25519.clone(),
            ed25519: request.identity_keys.ed25519.clone(),
        },
        one_time,
        fallback,
    }))
}

fn identity_of(state: &UserState, device: DeviceId) -> Option<&IdentityKeys> {
    state.devices.iter().find(|info| info.device_id == device).and_then(|info| info.identity.as_ref())
}

fn identity_json(identity: Option<&IdentityKeys>) -> Value {
    identity.map_or(Value::Null, |keys| json!({"curve25519": keys.curve25519, "ed25519": keys.ed25519}))
}

async fn upload(request: UploadRequest, by: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let command = upload_command(by, &request)?;
            context.bus.keys_command(&command).await?;
            // Read-your-writes: the device's identity is listed once this answers.
            context
                .reads
                .directory_when(by.user, DIRECTORY_WAIT, |state| {
                    state.is_some_and(|state| identity_of(state, by.device).is_some())
                })
                .await?;
            ok(json!({"device_id": by.device.to_string(), "one_time_keys": request.one_time_keys.len()}))
        }
        .await,
    )
}

async fn claim(
    request: ClaimRequest,
    by: Principal,
    context: Context,
    limits: ClaimLimits,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let user: UserId = parse_id(&request.user_id, "user id")?;
            let device: DeviceId = parse_id(&request.device_id, "device id")?;
            limits.check(by, user, device)?;
            // A device unknown here, or without keys, is refused before
            // anything is appended; behind a read barrier when this
            // gateway's directory says no (it may be behind the log).
            let has_keys = |state: Option<&UserState>| state.is_some_and(|state| identity_of(state, device).is_some());
            if !has_keys(context.reads.directory(user).await?.as_ref())
                && !has_keys(context.reads.directory_fresh(user).await?.as_ref())
            {
                return Err(ApiError::not_found("not_found", "no such device, or it has uploaded no keys"));
            }
            let command =
                KeysCommand::Claim(ClaimKey { user_id: user, device_id: device, by: by.user, by_device: by.device });
            let reply = context.bus.keys_command(&command).await?;
            let key = reply.claimed_key.ok_or_else(|| ApiError::internal("a claim was accepted without a key"))?;
            let state = context
                .reads
                .directory_when(user, DIRECTORY_WAIT, |state| {
                    state.is_some_and(|state| identity_of(state, device).is_some())
                })
                .await?
                .ok_or_else(|| ApiError::unavailable("the device's keys are not visible here yet; retry"))?;
            ok(json!({
                "user_id": user.to_string(),
                "device_id": device.to_string(),
                "identity_keys": identity_json(identity_of(&state, device)),
                "one_time_key": {"key_id": key.key_id, "key": key.key, "signature": key.signature},
                "fallback": key.fallback,
            }))
        }
        .await,
    )
}

async fn devices(user: String, _by: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let user: UserId = parse_id(&user, "user id")?;
            let state = context
                .reads
                .directory_fresh(user)
                .await?
                .ok_or_else(|| ApiError::not_found("not_found", "no such user"))?;
            let devices: Vec<Value> = state
                .devices
                .iter()
                .map(|info| {
                    json!({"device_id": info.device_id.to_string(), "identity_keys": identity_json(info.identity.as_ref())})
                })
                .collect();
            ok(json!({"user_id": user.to_string(), "devices": devices}))
        }
        .await,
    )
}

/// `/v1/keys`, `/v1/keys/claim` and `/v1/users/{id}/devices`.
pub fn routes(context: Context) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = crate::rest::served(context.clone());
    let limits = ClaimLimits::default();
    let ctx = move || with(context.clone());
    let upload = warp::path!("v1" / "keys")
        .and(warp::put())
        .and(json_body())
        .and(served.clone())
        .and(ctx())
        .and_then(upload)
        .boxed();
    let claim = warp::path!("v1" / "keys" / "claim")
        .and(warp::post())
        .and(json_body())
        .and(served.clone())
        .and(ctx())
        .and(with(limits))
        .and_then(claim)
        .boxed();
    let devices = warp::path!("v1" / "users" / String / "devices")
        .and(warp::get())
        .and(served)
        .and(ctx())
        .and_then(devices)
        .boxed();
    vec![upload, claim, devices]
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<UploadRequest>(bytes);
    let _ = crate::rest::parse_json::<ClaimRequest>(bytes);
}
