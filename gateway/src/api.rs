//! HTTP endpoints (warp). Every error is `{"error":{"code","message"}}`.

use std::convert::Infallible;
use std::sync::Arc;

use missive_core::{ConvSeq, ConversationId, UserId};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::{Auth, Principal, is_e164};
use crate::commands::CommandBus;
use crate::errors::ApiError;
use crate::protocol::{message_json, summary_json};
use crate::reads::ReadModels;
use crate::routing::Routing;

/// Largest HTTP request body accepted.
pub const MAX_BODY_BYTES: u64 = 256 * 1024;
/// Most phone numbers per contact-sync request.
pub const MAX_CONTACTS_PER_SYNC: usize = 1000;

fn with<T: Clone + Send + Sync + 'static>(value: T) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

fn json_body<T: serde::de::DeserializeOwned + Send>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::json())
}

/// Requires `Authorization: Bearer <access token>`.
pub fn bearer(auth: Arc<Auth>) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and(with(auth)).and_then(
        |header: Option<String>, auth: Arc<Auth>| async move {
            let token = header
                .as_deref()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| warp::reject::custom(ApiError::unauthorized("missing Authorization: Bearer <token>")))?;
            auth.verify_access(token).map_err(warp::reject::custom)
        },
    )
}

/// The request's path and query, to repeat it at another gateway.
pub fn path_and_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::path::full().and(warp::query::raw().or(warp::any().map(String::new)).unify()).map(
        |path: warp::path::FullPath, query: String| {
            if query.is_empty() { path.as_str().to_string() } else { format!("{}?{query}", path.as_str()) }
        },
    )
}

/// `bearer`, then a 307 to the owning gateway when this one does not serve the caller.
pub fn served(auth: Arc<Auth>, routing: Routing) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    bearer(auth).and(path_and_query()).and(with(routing)).and_then(
        |principal: Principal, path: String, routing: Routing| async move {
            routing.check(principal.user, &path).map(|()| principal).map_err(warp::reject::custom)
        },
    )
}

/// A 307 to the gateway that serves the owner of `phone` (registration
/// state lives beside the user's feed); malformed phones fall through to
/// the handler's own validation.
fn route_phone(auth: &Auth, routing: &Routing, phone: &str, path: &str) -> Result<(), ApiError> {
    if is_e164(phone) { routing.check(auth.user_id_for_phone(phone), path) } else { Ok(()) }
}

fn reply_json(status: StatusCode, body: serde_json::Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn respond(result: Result<warp::reply::Response, ApiError>) -> Result<warp::reply::Response, Infallible> {
    Ok(result.unwrap_or_else(|error| error.into_response()))
}

#[derive(Deserialize)]
struct OtpRequest {
    phone: String,
}

#[derive(Deserialize)]
struct VerifyRequest {
    phone: String,
    code: String,
    device_name: Option<String>,
}

#[derive(Deserialize)]
struct ContactsRequest {
    phones: Vec<String>,
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<String>,
}

async fn request_otp(
    request: OtpRequest,
    path: String,
    auth: Arc<Auth>,
    routing: Routing,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            route_phone(&auth, &routing, &request.phone, &path)?;
            let expires_in = auth.start_otp(&request.phone).await?;
            Ok(reply_json(StatusCode::ACCEPTED, json!({"expires_in": expires_in})))
        }
        .await,
    )
}

/// How long verify waits for a new account to reach the directory.
const DIRECTORY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Read-your-writes for registration: answer only once the directory
/// projection knows the account, so that others can message it at once
/// (otherwise a send racing the projection would get `unknown_recipient`).
async fn wait_until_visible(reads: &ReadModels, user: UserId) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + DIRECTORY_WAIT;
    let mut pause = std::time::Duration::from_millis(1);
    while !reads.user_exists(user).await? {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::unavailable("the account is registered but not yet visible; retry verify later"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
    Ok(())
}

async fn verify(
    request: VerifyRequest,
    path: String,
    (auth, routing): (Arc<Auth>, Routing),
    bus: Arc<CommandBus>,
    reads: ReadModels,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            route_phone(&auth, &routing, &request.phone, &path)?;
            auth.check_otp(&request.phone, &request.code).await?;
            let user = auth.user_id_for_phone(&request.phone);
            let device = bus.mint_device_id();
            let name = request.device_name.unwrap_or_else(|| "device".to_string());
            let reply = bus.register_device(user, device, name).await?;
            if reply.outcome != "accepted" && reply.outcome != "duplicate" {
                return Err(ApiError::internal(format!("registration refused: {}", reply.detail)));
            }
            wait_until_visible(&reads, user).await?;
            let (access, refresh, expires_in) = auth.issue(Principal { user, device }).await?;
            Ok(reply_json(
                StatusCode::OK,
                json!({
                    "user_id": user.to_string(),
                    "device_id": device.to_string(),
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_in": expires_in,
                }),
            ))
        }
        .await,
    )
}

/// Any authenticated device may sync; per-user rate limits come with the
/// accounts issue.
async fn contacts_sync(
    _caller: Principal,
    request: ContactsRequest,
    auth: Arc<Auth>,
    reads: ReadModels,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            if request.phones.len() > MAX_CONTACTS_PER_SYNC {
                return Err(ApiError::bad_request(
                    "too_many_contacts",
                    format!("at most {MAX_CONTACTS_PER_SYNC} phones per request; split the sync"),
                ));
            }
            let mut users = Vec::new();
            for phone in request.phones.iter().filter(|phone| is_e164(phone)) {
                let user = auth.user_id_for_phone(phone);
                if reads.user_exists(user).await? {
                    users.push(json!({"phone": phone, "user_id": user.to_string()}));
                }
            }
            Ok(reply_json(StatusCode::OK, json!({"users": users})))
        }
        .await,
    )
}

async fn list_conversations(principal: Principal, reads: ReadModels) -> Result<warp::reply::Response, Infallible> {
    respond(reads.conversations(principal.user, 500).await.map(|summaries| {
        reply_json(StatusCode::OK, json!({"conversations": summaries.iter().map(summary_json).collect::<Vec<_>>()}))
    }))
}

/// Members only; an unknown conversation and a foreign one look the same.
pub async fn require_member(reads: &ReadModels, user: UserId, conversation: ConversationId) -> Result<(), ApiError> {
    match reads.members(conversation).await? {
        Some(members) if members.contains(&user) => Ok(()),
        _ => Err(ApiError::not_found("not_found", "no such conversation among yours")),
    }
}

async fn history(
    conversation: String,
    principal: Principal,
    query: HistoryQuery,
    reads: ReadModels,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation: ConversationId = conversation
                .parse()
                .map_err(|_| ApiError::bad_request("bad_request", "conversation id must be a decimal string"))?;
            let limit = match query.limit.as_deref() {
                None => 50,
                Some(text) => match text.parse::<usize>() {
                    Ok(limit) if (1..=100).contains(&limit) => limit,
                    _ => return Err(ApiError::bad_request("bad_request", "limit must be 1..100")),
                },
            };
            let before = match query.before.as_deref() {
                None => None,
                Some(text) => Some(ConvSeq(
                    text.parse()
                        .map_err(|_| ApiError::bad_request("bad_request", "before must be a conv_seq number"))?,
                )),
            };
            require_member(&reads, principal.user, conversation).await?;
            let messages = reads.history(conversation, before, limit).await?;
            Ok(reply_json(StatusCode::OK, json!({"messages": messages.iter().map(message_json).collect::<Vec<_>>()})))
        }
        .await,
    )
}

/// The HTTP routes other than the WebSocket and operations endpoints.
pub fn routes(
    auth: Arc<Auth>,
    bus: Arc<CommandBus>,
    reads: ReadModels,
    routing: Routing,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let otp = warp::path!("v1" / "auth" / "otp")
        .and(warp::post())
        .and(json_body())
        .and(path_and_query())
        .and(with(auth.clone()))
        .and(with(routing.clone()))
        .and_then(request_otp);
    let verify = warp::path!("v1" / "auth" / "verify")
        .and(warp::post())
        .and(json_body())
        .and(path_and_query())
        .and(with((auth.clone(), routing.clone())))
        .and(with(bus))
        .and(with(reads.clone()))
        .and_then(verify);
    let contacts = warp::path!("v1" / "contacts" / "sync")
        .and(warp::post())
        .and(served(auth.clone(), routing.clone()))
        .and(json_body())
        .and(with(auth.clone()))
        .and(with(reads.clone()))
        .and_then(contacts_sync);
    let conversations = warp::path!("v1" / "conversations")
        .and(warp::get())
        .and(served(auth.clone(), routing.clone()))
        .and(with(reads.clone()))
        .and_then(list_conversations);
    let messages = warp::path!("v1" / "conversations" / String / "messages")
        .and(warp::get())
        .and(served(auth, routing))
        .and(warp::query::<HistoryQuery>())
        .and(with(reads))
        .and_then(history);
    otp.or(verify).unify().or(contacts).unify().or(conversations).unify().or(messages).unify()
}

/// Turns every rejection into the JSON error shape.
pub async fn handle_rejection(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(error) = rejection.find::<ApiError>() {
        error.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("not_found", "no such endpoint")
    } else if let Some(error) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request("bad_request", format!("bad JSON body: {error}"))
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this path")
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "send JSON with Content-Type: application/json",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("bad_request", "invalid query string")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "bad_request", "Content-Length required")
    } else {
        ApiError::bad_request("bad_request", format!("{rejection:?}"))
    };
    Ok(error.into_response())
}
