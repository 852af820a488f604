//! Registration with a one-time code (and the PIN, when set), token
//! refresh and logout, and the account's device list.

use std::convert::Infallible;
use std::net::IpAddr;

use missive_core::users::UserCommand;
use missive_core::{DeviceId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use super::state::own_state;
use crate::auth::{Auth, Principal, Refreshed, is_e164};
use crate::protocol::ApiError;
use crate::reads::DIRECTORY_WAIT;
use crate::reads::require_device;
use crate::rest::{Context, client_ip, json_body, ok, parse_id, path_and_query, reply_json, respond, with};
use crate::routing::Routing;

#[derive(Deserialize)]
struct OtpRequest {
    phone: String,
}

#[derive(Deserialize)]
struct VerifyRequest {
    phone: String,
    code: String,
    device_name: Option<String>,
    /// The account's registration PIN, when it has one.
    pin: Option<String>,
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// A 307 to the gateway that serves the owner of `phone` (registration
/// state lives beside the user's feed); malformed phones fall through to
/// the handler's own validation.
fn route_phone(auth: &Auth, routing: &Routing, phone: &str, path: &str) -> Result<(), ApiError> {
    if is_e164(phone) { routing.check(auth.user_id_for_phone(phone), path) } else { Ok(()) }
}

async fn request_otp(
    request: OtpRequest,
    path: String,
    client: Option<IpAddr>,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            route_phone(&context.auth, &context.routing, &request.phone, &path)?;
            let expires_in = context.auth.start_otp(&request.phone, client).await?;
            Ok(reply_json(StatusCode::ACCEPTED, json!({"expires_in": expires_in})))
        }
        .await,
    )
}

/// The answer of verify and refresh: the device and its token pair.
fn tokens_json(principal: Principal, access: String, refresh: String, expires_in: i64) -> Value {
    json!({
        "user_id": principal.user.to_string(),
        "device_id": principal.device.to_string(),
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": expires_in,
    })
}

async fn tokens(context: &Context, principal: Principal) -> Result<warp::reply::Response, ApiError> {
    let (access, refresh, expires_in) = context.auth.issue(principal).await?;
    ok(tokens_json(principal, access, refresh, expires_in))
}

async fn verify(
    request: VerifyRequest,
    path: String,
    client: Option<IpAddr>,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let auth = &context.auth;
            route_phone(auth, &context.routing, &request.phone, &path)?;
            if !is_e164(&request.phone) {
                return Err(ApiError::bad_request("invalid_phone", "phone must be E.164, like +14155550100"));
            }
            auth.check_verify_rate(&request.phone, client)?;
            auth.check_otp(&request.phone, &request.code, client).await?;
            let user = auth.user_id_for_phone(&request.phone);
            // Registration lock: an account with a PIN needs it as well as the code.
            if let Some(stored) = context.reads.directory(user).await?.and_then(|state| state.pin_hash) {
                match request.pin.as_deref() {
                    None => {
                        return Err(ApiError::unauthorized(
                            "this account has a PIN; send it as pin with the same code",
                        )
                        .with_code("pin_required"));
                    }
                    Some(pin) if !auth.pin_matches(user, pin, &stored).await? => {
                        auth.wrong_pin(&request.phone, client).await?;
                        return Err(
                            ApiError::unauthorized("wrong PIN; it counts as a wrong code").with_code("invalid_pin")
                        );
                    }
                    Some(_) => {}
                }
            }
            auth.consume_otp(&request.phone).await?;
            let device = context.bus.mint_device_id();
            let name = request.device_name.unwrap_or_else(|| "device".to_string());
            context.bus.register_device(user, device, name).await.map_err(|error| match error.code {
                "too_many_devices" => error,
                _ => ApiError::internal(format!("registration refused: {}", error.message)),
            })?;
            // Read-your-writes: answer once this gateway's directory knows the
            // device, so the token works at once and others can message the user.
            context
                .reads
                .directory_when(user, DIRECTORY_WAIT, |state| state.is_some_and(|s| s.has_device(device)))
                .await?;
            tokens(&context, Principal { user, device }).await
        }
        .await,
    )
}

/// Removes a device through the log and closes its connections here.
async fn remove_device(context: &Context, user: UserId, device: DeviceId, reason: &str) -> Result<(), ApiError> {
    let command = UserCommand::RemoveDevice { user_id: user, device_id: device, reason: reason.to_string() };
    context.bus.user_command(command).await?;
    // Connections close at once; the token check follows the directory.
    context.sessions.revoke(user, device);
    context.reads.directory_when(user, DIRECTORY_WAIT, |state| !state.is_some_and(|s| s.has_device(device))).await?;
    Ok(())
}

async fn refresh(request: RefreshRequest, path: String, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            if let Some(user) = Auth::refresh_token_user(&request.refresh_token) {
                context.routing.check(user, &path)?;
            }
            match context.auth.refresh(&request.refresh_token).await? {
                Refreshed::Issued { principal, access, refresh, expires_in } => {
                    require_device(&context.reads, principal).await?;
                    ok(tokens_json(principal, access, refresh, expires_in))
                }
                Refreshed::Reused(principal) => {
                    // Either the client or a thief holds a copy: end the session for both.
                    if require_device(&context.reads, principal).await.is_ok() {
                        remove_device(&context, principal.user, principal.device, "refresh_reuse").await?;
                    }
                    Err(ApiError::unauthorized(
                        "this refresh token was already used; the device's session is revoked, verify again",
                    )
                    .with_code("refresh_token_reused"))
                }
            }
        }
        .await,
    )
}

async fn logout(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            remove_device(&context, principal.user, principal.device, "logout").await?;
            ok(json!({"logged_out": principal.device.to_string()}))
        }
        .await,
    )
}

async fn list_devices(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let state = own_state(&context, principal.user).await?;
            let devices: Vec<Value> = state
                .devices
                .iter()
                .map(|info| {
                    json!({
                        "device_id": info.device_id.to_string(),
                        "name": info.name,
                        "added_at": info.added_at.0,
                        "current": info.device_id == principal.device,
                    })
                })
                .collect();
            ok(json!({"devices": devices}))
        }
        .await,
    )
}

async fn delete_device(
    device: String,
    principal: Principal,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let device: DeviceId = parse_id(&device, "device id")?;
            // Another account's device and an unknown one look the same.
            if !own_state(&context, principal.user).await?.has_device(device) {
                return Err(ApiError::not_found("not_found", "no such device on your account"));
            }
            remove_device(&context, principal.user, device, "removed").await?;
            ok(json!({"removed": device.to_string()}))
        }
        .await,
    )
}

/// `/v1/auth/*` and `/v1/devices`.
pub fn routes(context: Context) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = crate::rest::served(context.clone());
    let ctx = move || with(context.clone());
    let otp = warp::path!("v1" / "auth" / "otp")
        .and(warp::post())
        .and(json_body())
        .and(path_and_query())
        .and(client_ip())
        .and(ctx())
        .and_then(request_otp)
        .boxed();
    let verify = warp::path!("v1" / "auth" / "verify")
        .and(warp::post())
        .and(json_body())
        .and(path_and_query())
        .and(client_ip())
        .and(ctx())
        .and_then(verify)
        .boxed();
    let refresh = warp::path!("v1" / "auth" / "refresh")
        .and(warp::post())
        .and(json_body())
        .and(path_and_query())
        .and(ctx())
        .and_then(refresh)
        .boxed();
    let logout =
        warp::path!("v1" / "auth" / "logout").and(warp::post()).and(served.clone()).and(ctx()).and_then(logout).boxed();
    let devices =
        warp::path!("v1" / "devices").and(warp::get()).and(served.clone()).and(ctx()).and_then(list_devices).boxed();
    let delete_device = warp::path!("v1" / "devices" / String)
        .and(warp::delete())
        .and(served)
        .and(ctx())
        .and_then(delete_device)
        .boxed();
    vec![otp, verify, refresh, logout, devices, delete_device]
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<OtpRequest>(bytes);
    let _ = crate::rest::parse_json::<VerifyRequest>(bytes);
    let _ = crate::rest::parse_json::<RefreshRequest>(bytes);
}
