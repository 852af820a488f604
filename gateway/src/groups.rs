//! Group endpoints: create a group, change its members, admins, info and
//! settings, and read it. Each change is a command on the group's own
//! conversation log, decided by the conversation processor; the answer
//! comes once this gateway's history projection shows the change.

use std::convert::Infallible;

use missive_core::groups::{GroupChange, GroupChanged, GroupCommand, GroupInfo, GroupSettings};
use missive_core::users;
use missive_core::{ConversationId, UserId};
use serde::Deserialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use missive_core::Millis;
use missive_core::conversation::ConversationState;
use missive_schemas::Outcome;

use crate::auth::Principal;
use crate::commands::{Subject, refusal};
use crate::media::Media;
use crate::protocol::ApiError;
use crate::protocol::group_json;
use crate::reads::{DIRECTORY_WAIT, Projection, poll_until};
use crate::rest::{Context, json_body, ok, parse_id, respond, served, with};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    icon: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    only_admins_send: bool,
    #[serde(default)]
    only_admins_edit_info: bool,
    #[serde(default)]
    history_for_new_members: bool,
    /// Up to 1,024; 256 when absent.
    max_members: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersRequest {
    users: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoRequest {
    name: Option<String>,
    description: Option<String>,
    icon: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRequest {
    only_admins_send: Option<bool>,
    only_admins_edit_info: Option<bool>,
    history_for_new_members: Option<bool>,
}

fn user_ids(users: &[String]) -> Result<Vec<UserId>, ApiError> {
    users.iter().map(|user| parse_id(user, "each user")).collect()
}

/// Every user must be registered (behind a read barrier: a user who
/// registered through another gateway a moment ago counts).
async fn known_users(context: &Handles, users: &[UserId]) -> Result<(), ApiError> {
    match context.reads.unregistered(users).await?.first() {
        Some(user) => Err(ApiError::not_found("not_found", format!("no such user {user}"))),
        None => Ok(()),
    }
}

/// The users an admin adds, sorted by what their settings allow: nobody
/// is added by someone they blocked (the whole request is refused, with a
/// code that does not say why: `add_not_allowed`); someone whose group-add
/// privacy setting (`PUT /v1/privacy {"groups": ...}`) does not let `by`
/// add them gets an invite instead, and joins only by accepting it.
struct Adds {
    direct: Vec<UserId>,
    invited: Vec<UserId>,
}

async fn sort_adds(context: &Handles, by: UserId, users: &[UserId]) -> Result<Adds, ApiError> {
    let mut adds = Adds { direct: Vec::new(), invited: Vec::new() };
    for user in users {
        let state = context.reads.directory(*user).await?;
        match state {
            Some(state) if state.blocked.contains(&by) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "add_not_allowed",
                    format!("user {user} cannot be added to a group by you; ask them to join it themselves"),
                ));
            }
            Some(state) if !users::visible(state.privacy.groups, users::relation(&state, by)) => {
                adds.invited.push(*user)
            }
            _ => adds.direct.push(*user),
        }
    }
    Ok(adds)
}

/// What the group decider would say to `command` against the group as this
/// gateway's history projection has it (the projection holds the group's
/// members, admins, settings and invites, which is all the decider reads).
fn dry_run(group: Option<GroupChanged>, command: &GroupCommand) -> Result<(), ApiError> {
    let state = match group {
        Some(known) => ConversationState {
            members: known.members,
            last_seq: known.conv_seq,
            group: Some(known.group),
            ..ConversationState::default()
        },
        None => ConversationState::default(),
    };
    let now = Millis(missive_infra::now_ms());
    match missive_core::groups::decide_group(&state, command, now) {
        Ok(_) => Ok(()),
        Err(rejection) => Err(refusal(Outcome::from(&rejection), rejection.to_string(), Subject::Group)),
    }
}

/// Refuses, appending nothing, a change the decider would refuse: checked
/// against this gateway's view, and when that says no, again behind a read
/// barrier (the view may be behind the log). What passes is still decided
/// by the conversation processor, which has the last word on races.
async fn precheck(context: &Handles, command: &GroupCommand) -> Result<(), ApiError> {
    let conversation = command.conversation_id;
    if dry_run(context.reads.group(conversation).await?, command).is_ok() {
        return Ok(());
    }
    context.reads.barrier(Projection::History, [conversation.0]).await?;
    dry_run(context.reads.group(conversation).await?, command)
}

/// Runs a group command and returns the group once this gateway's history
/// projection has folded the change.
async fn apply(context: &Handles, command: GroupCommand) -> Result<GroupChanged, ApiError> {
    let conversation = command.conversation_id;
    precheck(context, &command).await?;
    let reply = context.bus.group_command(command).await?;
    if reply.outcome() == Outcome::Duplicate {
        // Nothing changed (a member added again, an admin made admin):
        // the group as the log has it now. Its `conv_seq` is the last
        // change's, which the reply's (the conversation's end) may pass.
        context.reads.barrier(Projection::History, [conversation.0]).await?;
        return context
            .reads
            .group(conversation)
            .await?
            .ok_or_else(|| ApiError::internal("a changed group is missing"));
    }
    let reached = reply.conv_seq.unwrap_or_default();
    poll_until(DIRECTORY_WAIT, || async {
        Ok(context.reads.group(conversation).await?.filter(|group| group.conv_seq >= reached))
    })
    .await?
    .ok_or_else(|| ApiError::unavailable("the change is recorded but not yet visible here; read again shortly"))
}

/// Runs a group command and answers with the group after it.
async fn change(context: &Handles, command: GroupCommand) -> Result<warp::reply::Response, ApiError> {
    ok(group_json(&apply(context, command).await?))
}

/// Invites `invited` after the change that added the others (if any), and answers
/// with the group after both plus who was invited rather than added.
async fn invite_rest(
    context: &Handles,
    conversation_id: ConversationId,
    by: UserId,
    after: Option<GroupChanged>,
    invited: Vec<UserId>,
) -> Result<warp::reply::Response, ApiError> {
    let group = match after {
        Some(after) if invited.is_empty() => after,
        _ => {
            let command = GroupCommand { conversation_id, by, change: GroupChange::Invite { users: invited.clone() } };
            apply(context, command).await?
        }
    };
    let mut body = group_json(&group);
    body["invited"] = invited.iter().map(|user| user.to_string()).collect::<Vec<_>>().into();
    ok(body)
}

async fn create(
    principal: Principal,
    request: CreateRequest,
    context: Handles,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let members = user_ids(&request.members)?;
            known_users(&context, &members).await?;
            let adds = sort_adds(&context, principal.user, &members).await?;
            require_icon(&context, principal, &request.icon).await?;
            let conversation_id = context.bus.mint_conversation_id();
            let command = GroupCommand {
                conversation_id,
                by: principal.user,
                change: GroupChange::Create {
                    info: GroupInfo { name: request.name, description: request.description, icon: request.icon },
                    settings: GroupSettings {
                        only_admins_send: request.only_admins_send,
                        only_admins_edit_info: request.only_admins_edit_info,
                        history_for_new_members: request.history_for_new_members,
                    },
                    members: adds.direct,
                    max_members: request.max_members.unwrap_or(0),
                },
            };
            let created = apply(&context, command).await?;
            invite_rest(&context, conversation_id, principal.user, Some(created), adds.invited).await
        }
        .await,
    )
}

/// The group, for its members only (others get the same 404 as an unknown id).
async fn get_group(group: String, principal: Principal, context: Handles) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation: ConversationId = parse_id(&group, "group id")?;
            // The group as the log held it when asked for (a read barrier):
            // a member just added, or a change just made, through another gateway shows.
            context.reads.barrier(Projection::History, [conversation.0]).await?;
            match context.reads.group(conversation).await? {
                Some(group) if group.members.contains(&principal.user) => ok(group_json(&group)),
                _ => Err(ApiError::not_found("not_found", "no such group among yours")),
            }
        }
        .await,
    )
}

/// A change to an existing group, built from the path and body.
/// A group icon is the caller's own completed `group_icon` upload (or empty: none).
async fn require_icon(context: &Handles, principal: Principal, icon: &str) -> Result<(), ApiError> {
    if icon.is_empty() {
        return Ok(());
    }
    context.media.require_own(principal.user, icon, missive_core::media::Purpose::GroupIcon).await
}

async fn act(
    group: String,
    principal: Principal,
    context: Handles,
    build: impl FnOnce() -> Result<GroupChange, ApiError>,
) -> Result<warp::reply::Response, Infallible> {
    respond(
        async {
            let conversation_id: ConversationId = parse_id(&group, "group id")?;
            let change_request = build()?;
            match &change_request {
                GroupChange::AddMembers { users } => {
                    known_users(&context, users).await?;
                    let adds = sort_adds(&context, principal.user, users).await?;
                    let by = principal.user;
                    // Only invites: the Invite change alone (it checks the caller).
                    let added = if adds.direct.is_empty() && !adds.invited.is_empty() {
                        None
                    } else {
                        let add = GroupChange::AddMembers { users: adds.direct };
                        Some(apply(&context, GroupCommand { conversation_id, by, change: add }).await?)
                    };
                    return invite_rest(&context, conversation_id, by, added, adds.invited).await;
                }
                GroupChange::UpdateInfo { icon: Some(icon), .. } => require_icon(&context, principal, icon).await?,
                _ => {}
            }
            change(&context, GroupCommand { conversation_id, by: principal.user, change: change_request }).await
        }
        .await,
    )
}

/// What the group handlers use: the handles every HTTP feature shares,
/// and the uploads group icons name.
#[derive(Clone)]
struct Handles {
    shared: Context,
    media: Media,
}

impl std::ops::Deref for Handles {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.shared
    }
}

/// The group routes, in the order warp tries them.
pub fn routes(shared: Context, media: Media) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = served(shared.clone());
    let context = Handles { shared, media };
    let ctx = move || with(context.clone());
    vec![
        warp::path!("v1" / "groups")
            .and(warp::post())
            .and(served.clone())
            .and(json_body())
            .and(ctx())
            .and_then(create)
            .boxed(),
        warp::path!("v1" / "groups" / String)
            .and(warp::get())
            .and(served.clone())
            .and(ctx())
            .and_then(get_group)
            .boxed(),
        warp::path!("v1" / "groups" / String)
            .and(warp::patch())
            .and(served.clone())
            .and(ctx())
            .and(json_body())
            .and_then(|group: String, principal: Principal, context: Handles, request: InfoRequest| {
                act(group, principal, context, move || {
                    Ok(GroupChange::UpdateInfo {
                        name: request.name,
                        description: request.description,
                        icon: request.icon,
                    })
                })
            })
            .boxed(),
        warp::path!("v1" / "groups" / String / "settings")
            .and(warp::put())
            .and(served.clone())
            .and(ctx())
            .and(json_body())
            .and_then(|group: String, principal: Principal, context: Handles, request: SettingsRequest| {
                act(group, principal, context, move || {
                    Ok(GroupChange::UpdateSettings {
                        only_admins_send: request.only_admins_send,
                        only_admins_edit_info: request.only_admins_edit_info,
                        history_for_new_members: request.history_for_new_members,
                    })
                })
            })
            .boxed(),
        warp::path!("v1" / "groups" / String / "members")
            .and(warp::post())
            .and(served.clone())
            .and(ctx())
            .and(json_body())
            .and_then(|group: String, principal: Principal, context: Handles, request: MembersRequest| {
                act(group, principal, context, move || Ok(GroupChange::AddMembers { users: user_ids(&request.users)? }))
            })
            .boxed(),
        warp::path!("v1" / "groups" / String / "members" / String)
            .and(warp::delete())
            .and(served.clone())
            .and(ctx())
            .and_then(|group: String, user: String, principal: Principal, context: Handles| {
                act(group, principal, context, move || {
                    Ok(GroupChange::RemoveMember { user: parse_id(&user, "user id")? })
                })
            })
            .boxed(),
        warp::path!("v1" / "groups" / String / "invite" / String)
            .and(warp::post())
            .and(served.clone())
            .and(ctx())
            .and_then(|group: String, answer: String, principal: Principal, context: Handles| {
                act(group, principal, context, move || match answer.as_str() {
                    "accept" => Ok(GroupChange::AcceptInvite),
                    "decline" => Ok(GroupChange::DeclineInvite),
                    _ => Err(ApiError::not_found(
                        "not_found",
                        "answer an invite with .../invite/accept or .../invite/decline",
                    )),
                })
            })
            .boxed(),
        warp::path!("v1" / "groups" / String / "leave")
            .and(warp::post())
            .and(served.clone())
            .and(ctx())
            .and_then(|group: String, principal: Principal, context: Handles| {
                act(group, principal, context, || Ok(GroupChange::Leave))
            })
            .boxed(),
        warp::path!("v1" / "groups" / String / "admins" / String)
            .and(warp::put().map(|| true).or(warp::delete().map(|| false)).unify())
            .and(served)
            .and(ctx())
            .and_then(|group: String, user: String, admin: bool, principal: Principal, context: Handles| {
                act(group, principal, context, move || {
                    Ok(GroupChange::SetAdmin { user: parse_id(&user, "user id")?, admin })
                })
            })
            .boxed(),
    ]
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<CreateRequest>(bytes);
    let _ = crate::rest::parse_json::<MembersRequest>(bytes);
    let _ = crate::rest::parse_json::<InfoRequest>(bytes);
    let _ = crate::rest::parse_json::<SettingsRequest>(bytes);
}
