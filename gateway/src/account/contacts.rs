//! Contact discovery by hash, and the contact list (the "contacts"
//! privacy audience).

use std::convert::Infallible;

use missive_core::UserId;
use missive_core::users::UserCommand;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;

use super::state::{change_account, own_state, user_ids_json};
use crate::auth::Principal;
use crate::auth::is_contact_hash;
use crate::protocol::ApiError;
use crate::rest::{Context, json_body, ok, parse_id, respond, with};

/// Most phone numbers per contact-sync request.
pub const MAX_CONTACTS_PER_SYNC: usize = 1000;

#[derive(Deserialize)]
struct ContactsRequest {
    /// Contact hashes: lowercase hex SHA-256 of E.164 numbers.
    hashes: Vec<String>,
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

/// `/v1/contacts`.
pub fn routes(context: Context) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = crate::rest::served(context.clone());
    let ctx = move || with(context.clone());
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
        .and(served)
        .and(ctx())
        .and_then(remove_contact)
        .boxed();
    vec![contacts_sync, contacts, remove_contact]
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<ContactsRequest>(bytes);
}
