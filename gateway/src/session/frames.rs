//! What each client frame does once the session is authenticated.

use missive_core::operations::Operation;
use missive_core::{ConvSeq, ConversationId, FeedSeq, Millis, UserId};
use serde_json::{Value, json};

use super::connection::{Session, SessionDeps, append_ack, expiry_instant};
use super::limits::overloaded;
use super::live::TYPING_TTL_MS;
use super::registry::MAX_WATCHED;
use crate::auth::Principal;
use crate::messaging::{self, Pending};
use crate::protocol::{ApiError, ClientFrame, error_frame, parse_client_frame, send_error, with_req};
use crate::reads::{require_member, require_members};

/// Watches the presence of `users` (ids as strings); returns who is watched
/// now and the current presence of those the caller may see.
async fn subscribe_presence(
    deps: &SessionDeps,
    principal: Principal,
    session: u64,
    users: &[String],
) -> Result<(Vec<String>, Vec<Value>), ApiError> {
    if users.len() > MAX_WATCHED {
        let message = format!("watch at most {} users per connection", MAX_WATCHED);
        return Err(ApiError::bad_request("too_large", message));
    }
    let ids = users
        .iter()
        .map(|user| user.parse::<UserId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::bad_frame("users must be decimal user id strings"))?;
    let frames = deps.presence.subscribe(principal.user, session, &ids).await?;
    let watched = deps.sessions.watching(principal.user, session);
    Ok((watched.iter().map(ToString::to_string).collect(), frames))
}

/// A typing signal from a member to the conversation's other members.
async fn typing(deps: &SessionDeps, principal: Principal, conversation: &str, state: &str) -> Result<(), ApiError> {
    let conversation: ConversationId =
        conversation.parse().map_err(|_| ApiError::bad_frame("conversation_id must be a decimal id string"))?;
    let state = missive_schemas::wire::TypingState::parse(state)
        .ok_or_else(|| ApiError::bad_frame("state must be typing, recording or paused"))?;
    let members = require_members(&deps.reads, principal.user, conversation).await?;
    deps.limits.typing(principal.user)?;
    let mut others: Vec<UserId> = members.into_iter().filter(|member| *member != principal.user).collect();
    // In a 1:1 chat, a member who blocked the sender gets no signal from
    // it; the sender is told nothing (the block stays private).
    if let [other] = others[..]
        && conversation == ConversationId::direct(principal.user, other)
        && deps.reads.has_blocked(other, principal.user).await?
    {
        others.clear();
    }
    if others.is_empty() {
        return Ok(());
    }
    let expires_at = Millis(deps.clock.now_ms() + TYPING_TTL_MS);
    deps.bus.typing(principal, conversation, state, &others, expires_at).await
}

/// A started command becomes a pending reply; a refusal is answered at once.
///
/// A command that could not be appended for a reason other than its content
/// (`unavailable`: the log or a read model did not answer; `internal`) also
/// closes the connection: the client's later frames are already on their
/// way, and appending them would put them before this one. The client
/// reconnects and resends what was not confirmed, in order.
async fn started(session: &mut Session, result: Result<Pending, Value>) -> Result<Option<Pending>, ()> {
    match result {
        Ok(pending) => Ok(Some(pending)),
        Err(frame) => {
            let transient = frame["code"] == "unavailable" || frame["code"] == "internal";
            session.push(frame).await?;
            if transient { Err(()) } else { Ok(None) }
        }
    }
}

/// Handles one client frame; returns a pending reply if a command was started.
pub(super) async fn handle_frame(session: &mut Session, text: &str) -> Result<Option<Pending>, ()> {
    let frame = match parse_client_frame(text) {
        Ok(frame) => frame,
        Err(error) => {
            session.deps.metrics.frames_in.with_label_values(&["invalid"]).inc();
            session.push(error_frame(error.req.as_deref(), error.code, &error.message)).await?;
            return Ok(None);
        }
    };
    let principal = session.principal;
    let deps = session.deps.clone();
    match frame {
        ClientFrame::Hello { .. } => {
            deps.metrics.frames_in.with_label_values(&["hello"]).inc();
            session.push(error_frame(None, "bad_frame", "already authenticated")).await?;
        }
        ClientFrame::Typing { conversation_id, state } => {
            deps.metrics.frames_in.with_label_values(&["typing"]).inc();
            if let Err(error) = typing(&deps, principal, &conversation_id, &state).await {
                session.push(send_error(None, &error)).await?;
            }
        }
        ClientFrame::SubscribePresence { req, users } => {
            deps.metrics.frames_in.with_label_values(&["subscribe_presence"]).inc();
            match subscribe_presence(&deps, principal, session.id, &users).await {
                Ok((watched, frames)) => {
                    let mut answer = json!({"type": "subscribed", "users": watched});
                    if let Some(req) = req {
                        answer["req"] = json!(req);
                    }
                    session.push(answer).await?;
                    for frame in frames {
                        session.push(frame).await?;
                    }
                }
                Err(error) => session.push(send_error(req.as_deref(), &error)).await?,
            }
        }
        ClientFrame::Ping => {
            deps.metrics.frames_in.with_label_values(&["ping"]).inc();
            session.push(json!({"type": "pong", "server_time": deps.clock.now_ms()})).await?;
        }
        ClientFrame::Reauth { req, token } => {
            deps.metrics.frames_in.with_label_values(&["reauth"]).inc();
            let answer = match deps.auth.verify_access_until(&token) {
                Ok((fresh, expires_at)) if fresh == principal => {
                    session.expires = expiry_instant(expires_at, &deps.clock);
                    with_req(json!({"type": "reauthed", "expires_at": expires_at}), &req)
                }
                Ok(_) => {
                    error_frame(req.as_deref(), "unauthorized", "the token is another device's; send this device's own")
                }
                // The session keeps its current token until that one expires.
                Err(error) => send_error(req.as_deref(), &error),
            };
            session.push(answer).await?;
        }
        ClientFrame::Ack { seq } => {
            deps.metrics.frames_in.with_label_values(&["ack"]).inc();
            session.acks.offer(FeedSeq(seq), append_ack(&deps.bus, principal));
        }
        ClientFrame::Read { conversation_id, up_to } => {
            deps.metrics.frames_in.with_label_values(&["read"]).inc();
            let Ok(conversation) = conversation_id.parse::<ConversationId>() else {
                session.push(error_frame(None, "bad_frame", "conversation_id must be a decimal id string")).await?;
                return Ok(None);
            };
            if let Err(error) = deps.limits.write(principal.user, "read marks") {
                session.push(send_error(None, &error)).await?;
                return Ok(None);
            }
            let result = match require_member(&deps.reads, principal.user, conversation).await {
                Ok(()) => match deps.reads.read_receipts_on(conversation).await {
                    Ok(notify) => deps.bus.read(principal, conversation, ConvSeq(up_to), notify).await,
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                session.push(send_error(None, &error)).await?;
            }
        }
        ClientFrame::Send(frame) => {
            let admission = Admission::Send { req: frame.req.clone(), client_msg_id: frame.client_msg_id.clone() };
            return paced(session, admission, messaging::start_send(&deps.messaging, principal, *frame)).await;
        }
        ClientFrame::ShareKeys { req, messages, conversation_id } => {
            let share = messaging::start_share(&deps.messaging, principal, req, messages, conversation_id);
            return paced(session, Admission::Exempt("share_keys"), share).await;
        }
        ClientFrame::Forward { req, of, to, client_msg_id, content } => {
            let admission = Admission::Forward { req: req.clone(), client_msg_id: client_msg_id.clone() };
            let forward = messaging::start_forward(&deps.messaging, principal, req, of, to, client_msg_id, content);
            return paced(session, admission, forward).await;
        }
        ClientFrame::Edit { req, conversation_id, message_id, content, encrypted } => {
            let operation = messaging::operation_body(&deps.messaging, content, encrypted, "content", |content| {
                Operation::Edit { content }
            });
            return modify(session, "edit", req, &conversation_id, &message_id, operation).await;
        }
        ClientFrame::Delete { req, conversation_id, message_id, scope } => {
            let operation = match scope.as_str() {
                "everyone" => Ok((Operation::DeleteForEveryone, None)),
                "me" => Ok((Operation::DeleteForMe, None)),
                _ => Err(ApiError::bad_frame("scope must be everyone or me")),
            };
            return modify(session, "delete", req, &conversation_id, &message_id, operation).await;
        }
        ClientFrame::React { req, conversation_id, message_id, emoji, encrypted } => {
            let operation = messaging::operation_body(&deps.messaging, emoji, encrypted, "emoji", |emoji| {
                Operation::React { emoji }
            });
            return modify(session, "react", req, &conversation_id, &message_id, operation).await;
        }
    }
    Ok(None)
}

/// What a frame appending at the pace of sends needs of the gateway's
/// room for pending sends (`FrameLimits::admit_send`).
enum Admission {
    /// A send or forward: admitted while the gateway has room, otherwise
    /// refused `unavailable` with `retry_after`, it and every later one on
    /// the connection until the client sends the refused one again.
    Send {
        req: Option<String>,
        client_msg_id: String,
    },
    Forward {
        req: Option<String>,
        client_msg_id: String,
    },
    /// Not held to the gateway's room (`share_keys`: rare, and a refused
    /// share would leave the next message undecryptable).
    Exempt(&'static str),
}

/// A frame that appends at the pace of sends (send, forward, share_keys):
/// counted, paced by the account's allowance, admitted (see [`Admission`])
/// and started (`start` runs only once awaited) under the device's writer
/// lock, so appends keep the order the client sent them in. An admitted
/// one holds its room until its outcome arrives.
async fn paced(
    session: &mut Session,
    admission: Admission,
    start: impl Future<Output = Result<Pending, Value>>,
) -> Result<Option<Pending>, ()> {
    let (deps, principal) = (session.deps.clone(), session.principal);
    let (kind, admitted) = match admission {
        Admission::Exempt(kind) => (kind, None),
        Admission::Send { req, client_msg_id } => ("send", Some((req, client_msg_id))),
        Admission::Forward { req, client_msg_id } => ("forward", Some((req, client_msg_id))),
    };
    deps.metrics.frames_in.with_label_values(&[kind]).inc();
    deps.limits.pace_send(principal.user).await;
    let room = match admitted {
        None => None,
        Some((req, client_msg_id)) => {
            let refused_first = session.shed.as_deref();
            let admitted = match refused_first {
                Some(first) if first != client_msg_id => Err(overloaded()),
                _ => deps.limits.admit_send(&session.room).await,
            };
            match admitted {
                Ok(room) => {
                    deps.metrics.send_room.set(deps.limits.send_room_size() as i64);
                    session.shed = None;
                    Some(room)
                }
                Err(error) => {
                    deps.metrics.sends_shed.inc();
                    session.shed.get_or_insert_with(|| client_msg_id.into());
                    session.push(send_error(req.as_deref(), &error)).await?;
                    return Ok(None);
                }
            }
        }
    };
    let permit = session.writer().await?;
    // The room goes with the command's registration (`commands::ROOM`) and
    // is freed when its outcome arrives.
    let result = match room {
        Some(room) => crate::commands::ROOM.scope(std::cell::Cell::new(Some(room)), start).await,
        None => start.await,
    };
    drop(permit);
    started(session, result).await
}

/// An operation on a message (`kind`: edit, delete or react): counted
/// against the account's allowance, appended under the device's writer
/// lock, answered once decided.
async fn modify(
    session: &mut Session,
    kind: &str,
    req: Option<String>,
    conversation_id: &str,
    message_id: &str,
    operation: Result<(Operation, Option<String>), ApiError>,
) -> Result<Option<Pending>, ()> {
    let (deps, principal) = (session.deps.clone(), session.principal);
    deps.metrics.frames_in.with_label_values(&[kind]).inc();
    if let Err(error) = deps.limits.write(principal.user, "edits, deletes and reactions") {
        session.push(send_error(req.as_deref(), &error)).await?;
        return Ok(None);
    }
    let permit = session.writer().await?;
    let modify = messaging::start_modify(&deps.messaging, principal, req, conversation_id, message_id, operation).await;
    drop(permit);
    started(session, modify).await
}
