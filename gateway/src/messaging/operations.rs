//! Client commands that write to a conversation over the WebSocket: send,
//! forward, and the operations on a message (edit, delete, react). Each is
//! checked here as far as the gateway can (shape, sizes, the recipient or
//! message exists and is the caller's), appended in the order the client
//! sent it, and answered once the conversation decider has decided.

use missive_core::conversation::{MAX_CIPHERTEXT_BYTES, MAX_CLIENT_MSG_ID_BYTES, MAX_CONTENT_BYTES, body_limit};
use missive_core::media::{Attachment, check_attachment};
use missive_core::operations::{MAX_ENCRYPTED_REACTION_BYTES, ModifyMessage, Operation, check_operation};
use missive_core::{ConversationId, MessageId, UserId};
use missive_projections::HistoryMessage;
use missive_schemas::Outcome;
use missive_schemas::wire::CommandReply;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::auth::Principal;
use crate::commands::{self, CommandBus, PendingReply, Subject, Target, carried_out, wait_reply};
use crate::media::Media;
use crate::protocol::{
    ApiError, ContactFrame, EncryptedFrame, FORWARDED_MANY_TIMES, LocationFrame, MAX_FORWARD_TARGETS, MediaFrame,
    MessageLocator, Recipient, SendFrame, error_frame, send_error, with_req,
};
use crate::reads::{Projection, ReadModels, require_member};

use super::sealed::{Body, check_devices, named_devices, plaintext_not_allowed, sealed};

type NamedDevices = std::collections::BTreeMap<UserId, std::collections::BTreeSet<missive_core::DeviceId>>;

/// What the conversation commands use: the bus they append to, the read
/// models they check against, and the uploads media messages name.
#[derive(Clone)]
pub struct MessagingDeps {
    pub bus: Arc<CommandBus>,
    pub reads: ReadModels,
    pub media: Media,
    /// Whether plaintext bodies are accepted (`--allow-plaintext`).
    pub allow_plaintext: bool,
}

/// A command's reply frame, once its outcome is known.
pub type Pending = Pin<Box<dyn Future<Output = Value> + Send>>;

/// The body of a send: checked plaintext (where allowed), or ciphertext
/// whose device set is checked once the target is known. Captions, places
/// and contact cards are plaintext: an encrypting client seals them.
fn send_body(deps: &MessagingDeps, outgoing: &mut SendFrame) -> Result<(Body, Option<NamedDevices>), ApiError> {
    let Some(mut frame) = outgoing.encrypted.take() else {
        if !deps.allow_plaintext {
            return Err(plaintext_not_allowed("the message"));
        }
        check_content(&outgoing.content)?;
        return Ok((Body { text: std::mem::take(&mut outgoing.content), session_id: None }, None));
    };
    if !outgoing.content.is_empty() {
        return Err(ApiError::bad_frame("give content or encrypted, not both"));
    }
    let captioned = outgoing.media.as_ref().is_some_and(|media| media.caption.is_some() || media.thumbnail.is_some());
    if !deps.allow_plaintext && (captioned || outgoing.location.is_some() || outgoing.contact.is_some()) {
        return Err(plaintext_not_allowed("captions, thumbnails, places and contact cards"));
    }
    let named = named_devices(&mut frame)?;
    Ok((sealed(frame, MAX_CIPHERTEXT_BYTES)?, Some(named)))
}

/// The attachment a send names: at most one of media, location and contact.
/// Media must be the sender's own completed upload.
async fn attachment_of(
    deps: &MessagingDeps,
    sender: UserId,
    media: Option<MediaFrame>,
    location: Option<LocationFrame>,
    contact: Option<ContactFrame>,
) -> Result<Option<Attachment>, ApiError> {
    let attachment = match (media, location, contact) {
        (None, None, None) => return Ok(None),
        (Some(media), None, None) => Attachment::Media(deps.media.attach(sender, media).await?),
        (None, Some(place), None) => {
            Attachment::Location { latitude: place.latitude, longitude: place.longitude, name: place.name }
        }
        (None, None, Some(card)) => Attachment::Contact { vcard: card.vcard },
        _ => return Err(ApiError::bad_frame("a message carries at most one of media, location and contact")),
    };
    check_attachment(&attachment).map_err(|refusal| ApiError::bad_request(refusal.code, refusal.message))?;
    Ok(Some(attachment))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::bad_frame(format!("{what} must be a decimal id string")))
}

fn check_content(content: &str) -> Result<(), ApiError> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ApiError::bad_request("too_large", format!("content is limited to {MAX_CONTENT_BYTES} bytes")));
    }
    Ok(())
}

fn check_client_msg_id(client_msg_id: &str) -> Result<(), ApiError> {
    if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(ApiError::bad_frame(format!("client_msg_id must be 1..{MAX_CLIENT_MSG_ID_BYTES} bytes")));
    }
    Ok(())
}

/// Checks a recipient and names the target: a registered user or a group id
/// (the decider checks group membership).
async fn resolve_target(deps: &MessagingDeps, to: &Recipient) -> Result<Target, ApiError> {
    match (&to.user, &to.group) {
        (Some(user), None) => {
            let user: UserId = parse(user, "to.user")?;
            if deps.reads.user_registered(user).await? {
                Ok(Target::User(user))
            } else {
                Err(ApiError::bad_request("unknown_recipient", "no such user; sync contacts to find registered users"))
            }
        }
        (None, Some(group)) => Ok(Target::Group(parse(group, "to.group")?)),
        _ => Err(ApiError::bad_frame("to must name exactly one of user or group")),
    }
}

/// `sent` fields of an accepted send.
fn sent_fields(reply: &CommandReply) -> Value {
    json!({
        "message_id": reply.message_id.unwrap_or_default().to_string(),
        "conversation_id": reply.conversation_id.unwrap_or_default().to_string(),
        "conv_seq": reply.conv_seq.unwrap_or_default(),
        "at": reply.at,
    })
}

async fn send_outcome(pending: PendingReply) -> Result<CommandReply, ApiError> {
    carried_out(wait_reply(pending).await?, Subject::Send)
}

/// Validates a send, appends it, and returns the future of its reply frame.
pub async fn start_send(deps: &MessagingDeps, principal: Principal, frame: SendFrame) -> Result<Pending, Value> {
    let req = frame.req.clone();
    let refuse = |error: ApiError| send_error(req.as_deref(), &error);
    let mut outgoing = frame;
    let (body, named) = send_body(deps, &mut outgoing).map_err(refuse)?;
    check_client_msg_id(&outgoing.client_msg_id).map_err(refuse)?;
    let reply_to = match outgoing.reply_to.as_deref() {
        None => None,
        Some(text) => Some(parse::<MessageId>(text, "reply_to").map_err(refuse)?),
    };
    let target = resolve_target(deps, &outgoing.to).await.map_err(refuse)?;
    let attachment = attachment_of(deps, principal.user, outgoing.media, outgoing.location, outgoing.contact)
        .await
        .map_err(refuse)?;
    let (forward_count, attachment) = match &outgoing.forward_of {
        None => (0, attachment),
        Some(of) => {
            let original = forwarded(deps, principal.user, of).await.map_err(refuse)?;
            (original.message.forward_count.saturating_add(1), attachment.or(original.message.attachment))
        }
    };
    if attachment.is_none() && body.text.is_empty() {
        return Err(refuse(ApiError::bad_frame("a message needs content or an attachment")));
    }
    if let Some(named) = &named {
        check_devices(&deps.reads, principal, target, named).await.map_err(refuse)?;
    }
    // A reply quotes a message the sender can see in the same chat.
    if let Some(quoted) = reply_to {
        let conversation = match target {
            Target::User(user) => ConversationId::direct(principal.user, user),
            Target::Group(group) => group,
        };
        visible_message(deps, principal.user, conversation, quoted)
            .await
            .map_err(|error| refuse(ApiError { message: format!("reply_to: {}", error.message), ..error }))?;
    }
    let outgoing = commands::Outgoing {
        client_msg_id: outgoing.client_msg_id,
        content: body.text,
        reply_to,
        forward_count,
        attachment,
        session_id: body.session_id,
    };
    let pending = deps.bus.submit_send(principal, target, outgoing).await.map_err(refuse)?;
    Ok(Box::pin(async move {
        match send_outcome(pending).await {
            Ok(reply) => {
                let mut frame = sent_fields(&reply);
                frame["type"] = json!("sent");
                with_req(frame, &req)
            }
            Err(error) => send_error(req.as_deref(), &error),
        }
    }))
}

/// The message `locator` names, if the caller may see it: a member, not
/// withheld from it, not deleted for it, and in a group either there when
/// it was sent or allowed to read earlier history.
async fn visible_message(
    deps: &MessagingDeps,
    user: UserId,
    conversation: ConversationId,
    message: MessageId,
) -> Result<HistoryMessage, ApiError> {
    let missing = || ApiError::not_found("not_found", "no such message among yours");
    require_member(&deps.reads, user, conversation).await?;
    let found = deps.reads.message_fresh(conversation, message).await?.ok_or_else(missing)?;
    let earlier_history = match deps.reads.group(conversation).await? {
        Some(group) => group.group.settings.history_for_new_members,
        None => true,
    };
    let sent = &found.message;
    if sent.withheld_from.contains(&user)
        || !(earlier_history || sent.members.contains(&user))
        || deps.reads.hidden(conversation, user, sent.conv_seq).await?
    {
        return Err(missing());
    }
    Ok(found.seen_by(user))
}

/// The message an operation names, if the caller may see it and the
/// operation passes the decider's own checks of who may and what body
/// ([`check_operation`]): a refusal then appends nothing. When this
/// gateway's view refuses, it looks again behind a read barrier (a member
/// made admin through another gateway a moment ago). The time windows and
/// races stay the decider's.
async fn permitted_message(
    deps: &MessagingDeps,
    principal: Principal,
    conversation: ConversationId,
    message: MessageId,
    operation: &Operation,
    encrypted: bool,
) -> Result<HistoryMessage, ApiError> {
    let check = async || {
        let found = visible_message(deps, principal.user, conversation, message).await?;
        let admin =
            deps.reads.group(conversation).await?.is_some_and(|group| group.group.admins.contains(&principal.user));
        let (from, deleted) = (found.message.from, found.deleted_at.is_some());
        match check_operation(from, deleted, principal.user, admin, operation, encrypted) {
            Ok(()) => Ok(found),
            Err(rejection) => {
                Err(commands::refusal(Outcome::from(&rejection), rejection.to_string(), Subject::Message))
            }
        }
    };
    match check().await {
        Err(error) if error.code == "forbidden" => {
            deps.reads.barrier(Projection::History, [conversation.0]).await?;
            check().await
        }
        result => result,
    }
}

/// The message a forward names, if the caller may see it and it was not deleted.
async fn forwarded(deps: &MessagingDeps, user: UserId, of: &MessageLocator) -> Result<HistoryMessage, ApiError> {
    let conversation: ConversationId = parse(&of.conversation_id, "forward_of.conversation_id")?;
    let message_id: MessageId = parse(&of.message_id, "forward_of.message_id")?;
    let original = visible_message(deps, user, conversation, message_id).await?;
    if original.deleted_at.is_some() {
        return Err(ApiError::new(
            warp::http::StatusCode::GONE,
            "message_deleted",
            "that message was deleted for everyone",
        ));
    }
    Ok(original)
}

/// Forwards a message to 1..=5 chats (1 when it was forwarded many times).
/// Every target is checked before anything is sent; each send is its own
/// message with a forward count one above the original's.
pub async fn start_forward(
    deps: &MessagingDeps,
    principal: Principal,
    req: Option<String>,
    of: MessageLocator,
    to: Vec<Recipient>,
    client_msg_id: String,
    content: Option<String>,
) -> Result<Pending, Value> {
    let refuse = |error: ApiError| send_error(req.as_deref(), &error);
    if !deps.allow_plaintext {
        // Each chat has its own sessions: an encrypting client re-seals the
        // message and sends it to each chat with `forward_of`.
        return Err(refuse(plaintext_not_allowed("a forward as a `send` with `forward_of`; it")));
    }
    check_client_msg_id(&client_msg_id).map_err(refuse)?;
    let original = forwarded(deps, principal.user, &of).await.map_err(refuse)?;
    let limit = if original.message.forward_count >= FORWARDED_MANY_TIMES { 1 } else { MAX_FORWARD_TARGETS };
    if to.is_empty() || to.len() > limit {
        let why = if limit == 1 {
            "this message was forwarded many times: forward it to one chat at a time".to_string()
        } else {
            format!("forward to 1..{MAX_FORWARD_TARGETS} chats at once")
        };
        return Err(error_frame(req.as_deref(), "too_many_targets", &why));
    }
    if content.is_none() && original.message.session_id.is_some() {
        return Err(refuse(ApiError::bad_frame(
            "an encrypted message is forwarded re-sealed: a `send` with `forward_of`",
        )));
    }
    let content = content.unwrap_or_else(|| original.message.content.clone());
    check_content(&content).map_err(refuse)?;
    let mut targets = Vec::with_capacity(to.len());
    for recipient in &to {
        targets.push(resolve_target(deps, recipient).await.map_err(refuse)?);
    }
    let forward_count = original.message.forward_count.saturating_add(1);
    // The same client id in different conversations is no duplicate: the
    // decider's dedupe key includes the conversation. A target that cannot
    // be appended refuses the whole forward (closing the connection, like a
    // send): the client resends it, and the targets already appended answer
    // with their original outcome.
    let mut pending = Vec::with_capacity(targets.len());
    for target in targets {
        let outgoing = commands::Outgoing {
            client_msg_id: client_msg_id.clone(),
            content: content.clone(),
            reply_to: None,
            forward_count,
            attachment: original.message.attachment.clone(),
            session_id: None,
        };
        pending.push(deps.bus.submit_send(principal, target, outgoing).await.map_err(refuse)?);
    }
    Ok(Box::pin(async move {
        let mut results = Vec::with_capacity(pending.len());
        for submitted in pending {
            results.push(match send_outcome(submitted).await {
                Ok(reply) => sent_fields(&reply),
                Err(error) => json!({"error": {"code": error.code, "message": error.message}}),
            });
        }
        with_req(json!({"type": "forwarded", "forward_count": forward_count, "results": results}), &req)
    }))
}

/// An edit's or a reaction's body: plaintext where allowed, or encrypted.
pub fn operation_body(
    deps: &MessagingDeps,
    text: Option<String>,
    encrypted: Option<EncryptedFrame>,
    what: &str,
    build: impl FnOnce(String) -> Operation,
) -> Result<(Operation, Option<String>), ApiError> {
    let limit = if what == "emoji" { MAX_ENCRYPTED_REACTION_BYTES } else { MAX_CIPHERTEXT_BYTES };
    let body = super::sealed::body_of(text, encrypted, deps.allow_plaintext, limit, what)?;
    Ok((build(body.text), body.session_id))
}

/// Edits, deletes or reacts to a message: finds it, appends the operation
/// and returns the future of the `done` frame (or the refusal).
pub async fn start_modify(
    deps: &MessagingDeps,
    principal: Principal,
    req: Option<String>,
    conversation_id: &str,
    message_id: &str,
    operation: Result<(Operation, Option<String>), ApiError>,
) -> Result<Pending, Value> {
    let refuse = |error: ApiError| send_error(req.as_deref(), &error);
    let (operation, session_id) = operation.map_err(refuse)?;
    if let Operation::Edit { content } = &operation
        && content.len() > body_limit(session_id.is_some())
    {
        return Err(refuse(ApiError::bad_request("too_large", "the edit is over the size limit of a message")));
    }
    let conversation: ConversationId = parse(conversation_id, "conversation_id").map_err(refuse)?;
    let message: MessageId = parse(message_id, "message_id").map_err(refuse)?;
    let found = permitted_message(deps, principal, conversation, message, &operation, session_id.is_some())
        .await
        .map_err(refuse)?;
    let command = ModifyMessage {
        conversation_id: conversation,
        by: principal.user,
        by_device: principal.device,
        message_id: message,
        target_seq: found.message.conv_seq,
        operation,
        session_id,
    };
    let pending = deps.bus.submit_modify(command).await.map_err(refuse)?;
    Ok(Box::pin(async move {
        match wait_reply(pending).await.and_then(|reply| carried_out(reply, Subject::Message)) {
            Ok(reply) => with_req(json!({"type": "done", "conv_seq": reply.conv_seq.unwrap_or_default()}), &req),
            Err(error) => send_error(req.as_deref(), &error),
        }
    }))
}
