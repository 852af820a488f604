//! Blocking other users, and the registration PIN.

use std::convert::Infallible;

use missive_core::UserId;
use missive_core::users::UserCommand;
use serde::Deserialize;
use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::state::{change_account, own_state, user_ids_json};
use crate::auth::Principal;
use crate::auth::is_pin;
use crate::protocol::ApiError;
use crate::rest::{Context, MAX_BODY_BYTES, json_body, ok, parse_id, parse_json, respond, with};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    pin: String,
    /// The PIN set now, if any: changing it needs it.
    #[serde(default)]
    current_pin: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemovePinRequest {
    #[serde(default)]
    current_pin: Option<String>,
}

/// An account with a PIN changes or removes it only with the current one
/// (a stolen session cannot lock the owner out); tries are rate limited.
async fn require_current_pin(context: &Context, user: UserId, current: Option<&str>) -> Result<(), ApiError> {
    let Some(stored) = context.reads.directory_fresh(user).await?.and_then(|state| state.pin_hash) else {
        return Ok(());
    };
    context.auth.check_current_pin_try(user)?;
    match current {
        None => Err(ApiError::unauthorized("this account has a PIN; send it as current_pin to change or remove it")
            .with_code("pin_required")),
        Some(pin) if !context.auth.pin_matches(user, pin, &stored).await? => {
            Err(ApiError::unauthorized("current_pin is not this account's PIN").with_code("invalid_pin"))
        }
        Some(_) => Ok(()),
    }
}

async fn list_blocks(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let state = own_state(&context, principal.user).await?;
            ok(json!({"blocked": user_ids_json(&state.blocked)}))
        }
        .await,
    )
}

async fn set_block(
    target: String,
    blocked: bool,
    principal: Principal,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let target: UserId = parse_id(&target, "user id")?;
            if target == principal.user {
                return Err(ApiError::bad_request("bad_request", "you cannot block yourself"));
            }
            if !context.reads.user_registered(target).await? {
                return Err(ApiError::not_found("not_found", "no such user"));
            }
            let command = UserCommand::SetBlock { user_id: principal.user, target, blocked };
            change_account(&context, command, |state| state.blocked.contains(&target) == blocked).await?;
            ok(json!({"user_id": target.to_string(), "blocked": blocked}))
        }
        .await,
    )
}

async fn set_pin(
    principal: Principal,
    request: PinRequest,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            if !is_pin(&request.pin) {
                return Err(ApiError::bad_request("invalid_pin", "the PIN is six digits"));
            }
            require_current_pin(&context, principal.user, request.current_pin.as_deref()).await?;
            let pin_hash = context.auth.pin_hash(principal.user, &request.pin).await?;
            let expected = Some(pin_hash.clone());
            let command = UserCommand::SetPin { user_id: principal.user, pin_hash: Some(pin_hash) };
            change_account(&context, command, |state| state.pin_hash == expected).await?;
            ok(json!({"pin": true}))
        }
        .await,
    )
}

async fn remove_pin(
    principal: Principal,
    body: bytes::Bytes,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            // The body is optional: an account without a PIN needs none.
            let request: RemovePinRequest =
                if body.iter().all(u8::is_ascii_whitespace) { RemovePinRequest::default() } else { parse_json(&body)? };
            require_current_pin(&context, principal.user, request.current_pin.as_deref()).await?;
            let command = UserCommand::SetPin { user_id: principal.user, pin_hash: None };
            change_account(&context, command, |state| state.pin_hash.is_none()).await?;
            ok(json!({"pin": false}))
        }
        .await,
    )
}

/// `/v1/blocks` and `/v1/account/pin`.
pub fn routes(context: Context) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = crate::rest::served(context.clone());
    let ctx = move || with(context.clone());
    let blocks =
        warp::path!("v1" / "blocks").and(warp::get()).and(served.clone()).and(ctx()).and_then(list_blocks).boxed();
    let block = warp::path!("v1" / "blocks" / String)
        .and(warp::put())
        .map(|target: String| (target, true))
        .untuple_one()
        .and(served.clone())
        .and(ctx())
        .and_then(set_block)
        .boxed();
    let unblock = warp::path!("v1" / "blocks" / String)
        .and(warp::delete())
        .map(|target: String| (target, false))
        .untuple_one()
        .and(served.clone())
        .and(ctx())
        .and_then(set_block)
        .boxed();
    let set_pin = warp::path!("v1" / "account" / "pin")
        .and(warp::put())
        .and(served.clone())
        .and(json_body())
        .and(ctx())
        .and_then(set_pin)
        .boxed();
    let remove_pin = warp::path!("v1" / "account" / "pin")
        .and(warp::delete())
        .and(served)
        // An optional body: one without a Content-Length (or over the
        // limit) is not read, and counts as none.
        .and(
            warp::body::content_length_limit(MAX_BODY_BYTES)
                .and(warp::body::bytes())
                .or(warp::any().map(bytes::Bytes::new))
                .unify(),
        )
        .and(ctx())
        .and_then(remove_pin)
        .boxed();
    vec![blocks, block, unblock, set_pin, remove_pin]
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<PinRequest>(bytes);
    let _ = crate::rest::parse_json::<RemovePinRequest>(bytes);
}
