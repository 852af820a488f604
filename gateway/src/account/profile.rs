//! The caller's profile and privacy settings, and other users' profiles
//! as their owners' settings let the caller see them.

use std::convert::Infallible;

use missive_core::UserId;
use missive_core::media::Purpose;
use missive_core::users::{self, Audience, PrivacyChange, ProfileChange, UserCommand, UserState};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::{Filter, Rejection};

use super::state::{change_account, own_state};
use crate::auth::Principal;
use crate::media::Media;
use crate::protocol::ApiError;
use crate::reads::require_device;
use crate::rest::bearer;
use crate::rest::{Context, json_body, ok, parse_id, path_and_query, respond, with};

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
    media: Media,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let change =
                ProfileChange { display_name: request.display_name, about: request.about, picture: request.picture };
            users::validate_profile(&change)
                .map_err(|rejection| ApiError::bad_request(rejection.code(), rejection.to_string()))?;
            if let Some(picture) = change.picture.as_deref().filter(|picture| !picture.is_empty()) {
                media.require_own(principal.user, picture, Purpose::ProfilePicture).await?;
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

/// `/v1/profile`, `/v1/users/{id}/profile` and `/v1/privacy`.
pub fn routes(context: Context, media: Media) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = crate::rest::served(context.clone());
    let served_for_owner = served_for_owner(context.clone());
    let ctx = move || with(context.clone());
    let get_profile =
        warp::path!("v1" / "profile").and(warp::get()).and(served.clone()).and(ctx()).and_then(get_profile).boxed();
    let put_profile = warp::path!("v1" / "profile")
        .and(warp::put())
        .and(served.clone())
        .and(json_body())
        .and(ctx())
        .and(with(media))
        .and_then(put_profile)
        .boxed();
    let user_profile = warp::get().and(served_for_owner).and(ctx()).and_then(user_profile).boxed();
    let get_privacy =
        warp::path!("v1" / "privacy").and(warp::get()).and(served.clone()).and(ctx()).and_then(get_privacy).boxed();
    let put_privacy = warp::path!("v1" / "privacy")
        .and(warp::put())
        .and(served)
        .and(json_body())
        .and(ctx())
        .and_then(put_privacy)
        .boxed();
    vec![get_profile, put_profile, user_profile, get_privacy, put_privacy]
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<ProfileRequest>(bytes);
    let _ = crate::rest::parse_json::<PrivacyRequest>(bytes);
}
