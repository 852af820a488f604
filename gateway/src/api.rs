//! HTTP endpoints (warp). Every error is `{"error":{"code","message"}}`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use missive_core::conversation::ReceiptStatus;
use missive_core::users::{self, Audience, PrivacyChange, ProfileChange, UserCommand, UserState};
use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::{Auth, Principal, Refreshed, is_contact_hash, is_e164, is_pin};
use crate::commands::CommandBus;
use crate::errors::ApiError;
use crate::protocol::{history_json, summary_json};
use crate::reads::{Projection, ReadModels};
use crate::routing::Routing;
use crate::sessions::Sessions;
use missive_core::media::Purpose;

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// Everything the handlers use.
#[derive(Clone)]
pub struct Context {
    pub auth: Arc<Auth>,
    pub bus: Arc<CommandBus>,
    pub reads: ReadModels,
    pub routing: Routing,
    pub sessions: Sessions,
    /// Uploads (profile pictures and group icons name completed ones).
    pub media: crate::media::Media,
}

/// Largest HTTP request body accepted.
pub const MAX_BODY_BYTES: u64 = 256 * 1024;
/// Most phone numbers per contact-sync request.
pub const MAX_CONTACTS_PER_SYNC: usize = 1000;

pub(crate) fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    // Read as JSON whatever the declared type: `curl -d` (the README's own
    // tour) declares a form. Only the content decides; a bad body is a
    // `bad_request` naming what is wrong.
    warp::body::content_length_limit(MAX_BODY_BYTES)
        .and(warp::body::bytes())
        .and_then(|body: bytes::Bytes| async move { parse_json(&body).map_err(warp::reject::custom) })
}

/// A request body as JSON of the endpoint's shape.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request("bad_request", format!("bad JSON body: {error}")))
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

/// `bearer`, then a 307 to the owning gateway when this one does not
/// serve the caller, then the check that the device was not removed.
pub fn served(context: Context) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    bearer(context.auth.clone()).and(path_and_query()).and(with(context)).and_then(
        |principal: Principal, path: String, context: Context| async move {
            context.routing.check(principal.user, &path).map_err(warp::reject::custom)?;
            require_device(&context.reads, principal).await.map_err(warp::reject::custom)?;
            Ok::<_, Rejection>(principal)
        },
    )
}

/// A token's device must still belong to the account: removing a device
/// (or logging out) ends its tokens before they expire. A device this
/// gateway has not seen yet (registered through another gateway a moment
/// ago) is looked for again behind a read barrier.
pub async fn require_device(reads: &ReadModels, principal: Principal) -> Result<(), ApiError> {
    let has_device = |state: Option<UserState>| state.is_some_and(|state| state.has_device(principal.device));
    let state = reads.directory(principal.user).await?;
    let removed = state.as_ref().is_some_and(|state| state.was_removed(principal.device));
    if has_device(state) {
        return Ok(());
    }
    if !removed {
        reads.barrier(crate::reads::Projection::Directory, [principal.user.0]).await?;
        if has_device(reads.directory(principal.user).await?) {
            return Ok(());
        }
    }
    Err(ApiError::unauthorized("this device was removed from the account; verify again").with_code("device_removed"))
}

/// Like `served`, but routed to the gateway owning `owner` (the user a path
/// names): a profile view is answered from the owner's directory, which
/// has every change the owner was told is done.
fn served_for_owner(context: Context) -> impl Filter<Extract = (String, Principal), Error = Rejection> + Clone {
    warp::path!("v1" / "users" / String / "profile")
        .and(bearer(context.auth.clone()))
        .and(path_and_query())
        .and(with(context))
        .and_then(|owner: String, principal: Principal, path: String, context: Context| async move {
            if let Ok(owner_id) = owner.parse::<UserId>() {
                context.routing.check(owner_id, &path).map_err(warp::reject::custom)?;
            }
            require_device(&context.reads, principal).await.map_err(warp::reject::custom)?;
            Ok::<_, Rejection>((owner, principal))
        })
        .untuple_one()
}

/// The client's IP address, when the accept loop recorded it.
fn client_ip() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().map(|addr: Option<ClientAddr>| addr.map(|ClientAddr(addr)| addr.ip()))
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

pub(crate) fn respond(result: Result<warp::reply::Response, ApiError>) -> Result<warp::reply::Response, Infallible> {
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
    /// The account's registration PIN, when it has one.
    pin: Option<String>,
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize)]
struct ContactsRequest {
    /// Contact hashes: lowercase hex SHA-256 of E.164 numbers.
    hashes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileRequest {
    display_name: Option<String>,
    about: Option<String>,
    picture: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivacyRequest {
    last_seen: Option<String>,
    photo: Option<String>,
    about: Option<String>,
    read_receipts: Option<bool>,
    /// Who may add the caller to a group (others invite).
    groups: Option<String>,
}

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

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// How long a call waits for its change to reach this gateway's directory.
pub(crate) const DIRECTORY_WAIT: Duration = Duration::from_secs(10);

pub(crate) fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request("bad_request", format!("{what} must be a decimal id string")))
}

pub(crate) fn ok(body: Value) -> Result<warp::reply::Response, ApiError> {
    Ok(reply_json(StatusCode::OK, body))
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

/// Records an account change and returns the account once this gateway's
/// directory shows it (`shows`), so the caller's next request sees it.
async fn change_account(
    context: &Context,
    command: UserCommand,
    shows: impl Fn(&UserState) -> bool,
) -> Result<UserState, ApiError> {
    let user = command.user_id();
    context.bus.user_command(command).await?;
    let state = context.reads.directory_when(user, DIRECTORY_WAIT, |state| state.is_some_and(&shows)).await?;
    state.ok_or_else(|| ApiError::unavailable("account not visible yet; retry"))
}

/// A list of user ids as decimal strings.
fn user_ids_json<'a>(users: impl IntoIterator<Item = &'a UserId>) -> Value {
    json!(users.into_iter().map(UserId::to_string).collect::<Vec<_>>())
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

async fn own_state(context: &Context, user: UserId) -> Result<UserState, ApiError> {
    context.reads.directory(user).await?.ok_or_else(|| ApiError::unavailable("account not visible yet; retry"))
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

fn own_profile_json(state: &UserState) -> Value {
    json!({
        "user_id": state.user_id.to_string(),
        "display_name": state.profile.display_name,
        "about": state.profile.about,
        "picture": state.profile.picture,
        "last_seen": state.last_seen.map(|at| at.0),
    })
}

async fn get_profile(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(async { ok(own_profile_json(&own_state(&context, principal.user).await?)) }.await)
}

async fn put_profile(
    principal: Principal,
    request: ProfileRequest,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let change =
                ProfileChange { display_name: request.display_name, about: request.about, picture: request.picture };
            users::validate_profile(&change)
                .map_err(|rejection| ApiError::bad_request(rejection.code(), rejection.to_string()))?;
            if let Some(picture) = change.picture.as_deref().filter(|picture| !picture.is_empty()) {
                context.media.require_own(principal.user, picture, Purpose::ProfilePicture).await?;
            }
            let command = UserCommand::UpdateProfile { user_id: principal.user, change: change.clone() };
            let state = change_account(&context, command, |state| {
                let profile = &state.profile;
                change.display_name.as_ref().is_none_or(|name| *name == profile.display_name)
                    && change.about.as_ref().is_none_or(|about| *about == profile.about)
                    && change.picture.as_ref().is_none_or(|picture| *picture == profile.picture)
            })
            .await?;
            ok(own_profile_json(&state))
        }
        .await,
    )
}

/// Another user's profile, as its owner's privacy settings let the caller see it.
async fn user_profile(
    user: String,
    principal: Principal,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let owner: UserId = parse_id(&user, "user id")?;
            let Some(state) = context.reads.directory_fresh(owner).await? else {
                return Err(ApiError::not_found("not_found", "no such user"));
            };
            let view = users::view_profile(&state, principal.user);
            ok(json!({
                "user_id": view.user_id.to_string(),
                "display_name": view.display_name,
                "about": view.about,
                "picture": view.picture,
                "last_seen": view.last_seen.flatten().map(|at| at.0),
            }))
        }
        .await,
    )
}

fn privacy_json(state: &UserState) -> Value {
    let privacy = state.privacy;
    json!({
        "last_seen": privacy.last_seen.as_str(),
        "photo": privacy.photo.as_str(),
        "about": privacy.about.as_str(),
        "read_receipts": privacy.read_receipts,
        "groups": privacy.groups.as_str(),
    })
}

async fn get_privacy(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(async { ok(privacy_json(&own_state(&context, principal.user).await?)) }.await)
}

async fn put_privacy(
    principal: Principal,
    request: PrivacyRequest,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let audience = |value: Option<String>, name: &str| -> Result<Option<Audience>, ApiError> {
                value
                    .map(|text| {
                        Audience::parse(&text).ok_or_else(|| {
                            ApiError::bad_request("bad_request", format!("{name} must be everyone, contacts or nobody"))
                        })
                    })
                    .transpose()
            };
            let change = PrivacyChange {
                last_seen: audience(request.last_seen, "last_seen")?,
                photo: audience(request.photo, "photo")?,
                about: audience(request.about, "about")?,
                read_receipts: request.read_receipts,
                groups: audience(request.groups, "groups")?,
            };
            let command = UserCommand::SetPrivacy { user_id: principal.user, change };
            let state = change_account(&context, command, |state| {
                let privacy = state.privacy;
                change.last_seen.is_none_or(|value| value == privacy.last_seen)
                    && change.photo.is_none_or(|value| value == privacy.photo)
                    && change.about.is_none_or(|value| value == privacy.about)
                    && change.read_receipts.is_none_or(|value| value == privacy.read_receipts)
                    && change.groups.is_none_or(|value| value == privacy.groups)
            })
            .await?;
            ok(privacy_json(&state))
        }
        .await,
    )
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

/// Which of the caller's contact hashes belong to registered users; those
/// become the caller's contacts (the "contacts" privacy audience).
async fn contacts_sync(
    principal: Principal,
    request: ContactsRequest,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            if request.hashes.len() > MAX_CONTACTS_PER_SYNC {
                return Err(ApiError::bad_request(
                    "too_many_contacts",
                    format!("at most {MAX_CONTACTS_PER_SYNC} hashes per request; split the sync"),
                ));
            }
            if let Some(bad) = request.hashes.iter().find(|hash| !is_contact_hash(hash)) {
                return Err(ApiError::bad_request(
                    "bad_request",
                    format!("{bad:?} is not a contact hash (64 lowercase hex digits of SHA-256 over the E.164 number)"),
                ));
            }
            context.auth.check_contact_sync(principal.user)?;
            let candidates: Vec<(&String, UserId)> = request
                .hashes
                .iter()
                .map(|hash| (hash, context.auth.user_id_for_contact_hash(hash)))
                .filter(|(_, user)| *user != principal.user)
                .collect();
            let ids: Vec<UserId> = candidates.iter().map(|(_, user)| *user).collect();
            let registered = context.reads.registered_among(&ids).await?;
            let found: Vec<(&String, UserId)> = candidates
                .into_iter()
                .zip(registered)
                .filter(|(_, registered)| *registered)
                .map(|(pair, _)| pair)
                .collect();
            let added: Vec<UserId> = found.iter().map(|(_, user)| *user).collect();
            if !added.is_empty() {
                let command =
                    UserCommand::UpdateContacts { user_id: principal.user, added: added.clone(), removed: Vec::new() };
                change_account(&context, command, |state| added.iter().all(|user| state.contacts.contains(user)))
                    .await?;
            }
            let users: Vec<Value> =
                found.iter().map(|(hash, user)| json!({"hash": hash, "user_id": user.to_string()})).collect();
            ok(json!({"users": users}))
        }
        .await,
    )
}

async fn list_contacts(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let state = own_state(&context, principal.user).await?;
            ok(json!({"contacts": user_ids_json(&state.contacts)}))
        }
        .await,
    )
}

async fn remove_contact(
    user: String,
    principal: Principal,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let contact: UserId = parse_id(&user, "user id")?;
            let command =
                UserCommand::UpdateContacts { user_id: principal.user, added: Vec::new(), removed: vec![contact] };
            change_account(&context, command, |state| !state.contacts.contains(&contact)).await?;
            ok(json!({"removed": contact.to_string()}))
        }
        .await,
    )
}

async fn list_conversations(principal: Principal, context: Context) -> Result<warp::reply::Response, Infallible> {
    respond(context.reads.conversations(principal.user, 500).await.map(|summaries| {
        reply_json(StatusCode::OK, json!({"conversations": summaries.iter().map(summary_json).collect::<Vec<_>>()}))
    }))
}

/// Members only; an unknown conversation and a foreign one look the same.
pub async fn require_member(reads: &ReadModels, user: UserId, conversation: ConversationId) -> Result<(), ApiError> {
    require_members(reads, user, conversation).await.map(|_| ())
}

/// Like `require_member`, returning the members.
pub async fn require_members(
    reads: &ReadModels,
    user: UserId,
    conversation: ConversationId,
) -> Result<Vec<UserId>, ApiError> {
    reads
        .members_including(conversation, user)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "no such conversation among yours"))
}

async fn history(
    conversation: String,
    principal: Principal,
    query: HistoryQuery,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation: ConversationId = parse_id(&conversation, "conversation id")?;
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
            // A page shows everything the log held when it was asked for,
            // whichever gateway folded it first (a read barrier).
            context.reads.barrier(Projection::History, [conversation.0]).await?;
            require_member(&context.reads, principal.user, conversation).await?;
            let messages = context.reads.history(conversation, principal.user, before, limit).await?;
            // A group's history before the caller joined is shown only if the group allows it.
            let earlier_history = match context.reads.group(conversation).await? {
                Some(group) => group.group.settings.history_for_new_members,
                None => true,
            };
            let caller = principal.user;
            let visible = messages.iter().filter(|entry| {
                let message = &entry.message;
                // Messages from someone the caller blocked were never delivered to it.
                !message.withheld_from.contains(&caller) && (earlier_history || message.members.contains(&caller))
            });
            // Reactions and edits withheld from the caller (a chat member it blocked) stay hidden.
            ok(json!({"messages": visible.map(|entry| history_json(&entry.seen_by(caller))).collect::<Vec<_>>()}))
        }
        .await,
    )
}

/// Who got and who read one of the caller's messages, and when (WhatsApp's
/// "message info"): from the members' watermark advances, not a row per
/// member and message. Only the sender may ask.
async fn receipts(
    conversation: String,
    message: String,
    principal: Principal,
    context: Context,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation: ConversationId = parse_id(&conversation, "conversation id")?;
            let message_id: MessageId = parse_id(&message, "message id")?;
            // Every receipt the log held when asked for is listed (a read barrier).
            context.reads.barrier(Projection::History, [conversation.0]).await?;
            require_member(&context.reads, principal.user, conversation).await?;
            let missing = || ApiError::not_found("not_found", "no such message among yours");
            let found = context.reads.message_fresh(conversation, message_id).await?.ok_or_else(missing)?;
            let message = &found.message;
            if message.from != principal.user {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "only the sender sees a message's receipts",
                ));
            }
            let recipients: Vec<UserId> = message.recipients().collect();
            // With read receipts off on either side of a 1:1 chat, no read time is shown.
            let statuses: &[ReceiptStatus] = if context.reads.read_receipts_on(conversation).await? {
                &[ReceiptStatus::Delivered, ReceiptStatus::Read]
            } else {
                &[ReceiptStatus::Delivered]
            };
            let mut lists = Vec::new();
            for &status in statuses {
                let reached = context.reads.reached(conversation, recipients.clone(), status, message.conv_seq).await?;
                let list: Vec<Value> = reached
                    .into_iter()
                    .filter_map(|(user, at)| at.map(|at| json!({"user": user.to_string(), "at": at.0})))
                    .collect();
                lists.push(list);
            }
            let mut lists = lists.into_iter();
            let (delivered, read) = (lists.next().unwrap_or_default(), lists.next().unwrap_or_default());
            ok(json!({
                "conversation_id": conversation.to_string(),
                "message_id": message_id.to_string(),
                "recipients": recipients.len(),
                "delivered": delivered,
                "read": read,
            }))
        }
        .await,
    )
}

/// The HTTP routes other than the WebSocket and operations endpoints.
pub fn routes(context: Context) -> BoxedFilter<(warp::reply::Response,)> {
    let served = served(context.clone());
    let served_for_owner = served_for_owner(context.clone());
    let group_context = context.clone();
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
        .and(served.clone())
        .and(ctx())
        .and_then(delete_device)
        .boxed();
    let get_profile =
        warp::path!("v1" / "profile").and(warp::get()).and(served.clone()).and(ctx()).and_then(get_profile).boxed();
    let put_profile = warp::path!("v1" / "profile")
        .and(warp::put())
        .and(served.clone())
        .and(json_body())
        .and(ctx())
        .and_then(put_profile)
        .boxed();
    let user_profile = warp::get().and(served_for_owner).and(ctx()).and_then(user_profile).boxed();
    let get_privacy =
        warp::path!("v1" / "privacy").and(warp::get()).and(served.clone()).and(ctx()).and_then(get_privacy).boxed();
    let put_privacy = warp::path!("v1" / "privacy")
        .and(warp::put())
        .and(served.clone())
        .and(json_body())
        .and(ctx())
        .and_then(put_privacy)
        .boxed();
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
        .and(served.clone())
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
    let contacts_sync = warp::path!("v1" / "contacts" / "sync")
        .and(warp::post())
        .and(served.clone())
        .and(json_body())
        .and(ctx())
        .and_then(contacts_sync)
        .boxed();
    let contacts =
        warp::path!("v1" / "contacts").and(warp::get()).and(served.clone()).and(ctx()).and_then(list_contacts).boxed();
    let remove_contact = warp::path!("v1" / "contacts" / String)
        .and(warp::delete())
        .and(served.clone())
        .and(ctx())
        .and_then(remove_contact)
        .boxed();
    let conversations = warp::path!("v1" / "conversations")
        .and(warp::get())
        .and(served.clone())
        .and(ctx())
        .and_then(list_conversations)
        .boxed();
    let receipts = warp::path!("v1" / "conversations" / String / "messages" / String / "receipts")
        .and(warp::get())
        .and(served.clone())
        .and(ctx())
        .and_then(receipts)
        .boxed();
    let messages = warp::path!("v1" / "conversations" / String / "messages")
        .and(warp::get())
        .and(served)
        .and(warp::query::<HistoryQuery>())
        .and(ctx())
        .and_then(history)
        .boxed();
    let all = [
        receipts,
        otp,
        verify,
        refresh,
        logout,
        devices,
        delete_device,
        get_profile,
        put_profile,
        user_profile,
        get_privacy,
        put_privacy,
        blocks,
        block,
        unblock,
        set_pin,
        remove_pin,
        contacts_sync,
        contacts,
        remove_contact,
        conversations,
        messages,
    ];
    all.into_iter()
        .chain(crate::groups::routes(group_context))
        .reduce(|routes, route| routes.or(route).unify().boxed())
        .expect("routes")
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
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON with Content-Type: application/json",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("bad_request", "invalid query string")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "bad_request", "Content-Length required")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        // Last: a request every route refused holds each route's reason,
        // and another path's method is the least specific of them.
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this path")
    } else {
        ApiError::bad_request("bad_request", format!("{rejection:?}"))
    };
    Ok(error.into_response())
}
