//! `share_keys`: a device's Olm messages for other devices (the Megolm
//! session keys of its encrypted chats). Checked for shape, grouped by
//! recipient, appended as one `ShareKeys` command per recipient (decided
//! by the users processor against the recipient's account), answered
//! `shared` once every recipient's inbox has them.

use std::collections::BTreeMap;

use missive_core::keys::share::{DeviceMessage, MAX_SHARE_BODY_BYTES, MAX_SHARE_ENTRIES, ShareKeys};
use missive_core::{ConversationId, DeviceId, UserId};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::commands::{Subject, carried_out, wait_reply};
use crate::protocol::{ApiError, ShareEntry, send_error, with_req};

use super::sealed::base64_text;
use super::{MessagingDeps, Pending};

/// The entries by recipient, checked for shape.
fn by_recipient(entries: Vec<ShareEntry>) -> Result<BTreeMap<UserId, Vec<DeviceMessage>>, ApiError> {
    if entries.is_empty() || entries.len() > MAX_SHARE_ENTRIES {
        return Err(ApiError::bad_frame(format!("share_keys carries 1..{MAX_SHARE_ENTRIES} messages")));
    }
    let id =
        |text: &str| text.parse::<u64>().map_err(|_| ApiError::bad_frame("user and device are decimal id strings"));
    let mut grouped: BTreeMap<UserId, Vec<DeviceMessage>> = BTreeMap::new();
    for entry in entries {
        if entry.olm_type > 1 {
            return Err(ApiError::bad_frame("olm_type is 0 (pre-key message) or 1"));
        }
        if !base64_text(&entry.body) {
            return Err(ApiError::bad_frame("body must be an Olm message in base64"));
        }
        if entry.body.len() > MAX_SHARE_BODY_BYTES {
            return Err(ApiError::bad_request(
                "too_large",
                format!("a body is limited to {MAX_SHARE_BODY_BYTES} bytes"),
            ));
        }
        let message =
            DeviceMessage { device_id: DeviceId(id(&entry.device)?), olm_type: entry.olm_type, body: entry.body };
        grouped.entry(UserId(id(&entry.user)?)).or_default().push(message);
    }
    Ok(grouped)
}

/// Appends a `share_keys` frame's messages and returns the future of its
/// `shared` frame: `stale` lists addressed devices the recipients do not
/// have (any more), which got nothing.
pub async fn start_share(
    deps: &MessagingDeps,
    principal: Principal,
    req: Option<String>,
    entries: Vec<ShareEntry>,
    conversation: Option<String>,
) -> Result<Pending, Value> {
    let refuse = |error: ApiError| send_error(req.as_deref(), &error);
    let grouped = by_recipient(entries).map_err(refuse)?;
    let group = group_of(deps, principal.user, conversation).await.map_err(refuse)?;
    let current = deps.reads.device_sets(grouped.keys().copied().collect()).await.map_err(refuse)?;
    let mut stale = serde_json::Map::new();
    let mut pending = Vec::with_capacity(grouped.len());
    for (user, messages) in grouped {
        let devices = current.get(&user);
        let (kept, gone): (Vec<DeviceMessage>, Vec<DeviceMessage>) =
            messages.into_iter().partition(|message| devices.is_some_and(|set| set.contains(&message.device_id)));
        if !gone.is_empty() {
            stale.insert(user.to_string(), json!(gone.iter().map(|m| m.device_id.to_string()).collect::<Vec<_>>()));
        }
        if kept.is_empty() {
            continue;
        }
        let group = group.as_ref().filter(|(_, members)| members.contains(&user)).map(|(id, _)| *id);
        let share =
            ShareKeys { user_id: user, from: principal.user, from_device: principal.device, messages: kept, group };
        pending.push(deps.bus.submit_share(&share).await.map_err(refuse)?);
    }
    Ok(Box::pin(async move {
        for submitted in pending {
            if let Err(error) = wait_reply(submitted).await.and_then(|reply| carried_out(reply, Subject::Account)) {
                return send_error(req.as_deref(), &error);
            }
        }
        with_req(json!({"type": "shared", "stale": stale}), &req)
    }))
}

/// The group a share names and its members, when the sender is one of
/// them (behind a read barrier); `None` for no conversation, a 1:1 chat
/// (which may not exist yet: the keys come before its first message) or a
/// conversation the sender is not in (no exemption from blocks then).
async fn group_of(
    deps: &MessagingDeps,
    sender: UserId,
    conversation: Option<String>,
) -> Result<Option<(ConversationId, Vec<UserId>)>, ApiError> {
    let Some(text) = conversation else { return Ok(None) };
    let id = ConversationId(text.parse().map_err(|_| ApiError::bad_frame("conversation_id must be a decimal id"))?);
    let Some(members) = deps.reads.members_including(id, sender).await? else { return Ok(None) };
    let direct = members.len() == 2 && id == ConversationId::direct(members[0], members[1]);
    Ok((!direct).then_some((id, members)))
}
