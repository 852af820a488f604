//! End-to-end encrypted bodies at the gateway: their shape (never their
//! meaning: the server cannot read them), the plaintext policy
//! (`plaintext_not_allowed` unless `--allow-plaintext`), and the device-set
//! check of an encrypted send (`device_mismatch`).
//!
//! An encrypted send names every device its Megolm session was shared
//! with. The check reads the members and their devices behind read
//! barriers, so a device registered or removed, or a member added, before
//! the send arrived is seen: the sender learns what it missed and retries
//! with the same `client_msg_id`, and nothing is appended before then.

use std::collections::{BTreeMap, BTreeSet};

use missive_core::{ConversationId, DeviceId, UserId};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::commands::Target;
use crate::protocol::{ApiError, EncryptedFrame};
use crate::reads::{Projection, ReadModels};

/// Longest session id: vodozemac's are 43 characters of unpadded base64.
pub const MAX_SESSION_ID_BYTES: usize = 128;
/// Most devices an encrypted send may name (a group of 1,024 with a few devices each).
pub const MAX_NAMED_DEVICES: usize = 8_192;

/// A body as the log keeps it: the text (plaintext, or the ciphertext)
/// and, when encrypted, its session.
pub struct Body {
    pub text: String,
    pub session_id: Option<String>,
}

pub fn plaintext_not_allowed(what: &str) -> ApiError {
    ApiError::bad_request(
        "plaintext_not_allowed",
        format!("this server relays only end-to-end encrypted bodies: send {what} inside `encrypted`"),
    )
}

/// Whether `text` is non-empty base64 (standard or URL-safe alphabet, padded or not).
pub(super) fn base64_text(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"+/=-_".contains(&byte))
}

/// Checks an encrypted body's shape; `limit` bounds the ciphertext.
pub fn sealed(frame: EncryptedFrame, limit: usize) -> Result<Body, ApiError> {
    if frame.session_id.len() > MAX_SESSION_ID_BYTES || !base64_text(&frame.session_id) {
        return Err(ApiError::bad_frame(format!(
            "encrypted.session_id must be 1..{MAX_SESSION_ID_BYTES} bytes of base64"
        )));
    }
    if !base64_text(&frame.ciphertext) {
        return Err(ApiError::bad_frame("encrypted.ciphertext must be base64 (a Megolm message)"));
    }
    if frame.ciphertext.len() > limit {
        return Err(ApiError::bad_request("too_large", format!("encrypted.ciphertext is limited to {limit} bytes")));
    }
    Ok(Body { text: frame.ciphertext, session_id: Some(frame.session_id) })
}

/// The body of an edit or a reaction: plaintext `text` (if allowed) or the
/// encrypted one, not both.
pub fn body_of(
    text: Option<String>,
    encrypted: Option<EncryptedFrame>,
    allow_plaintext: bool,
    limit: usize,
    what: &str,
) -> Result<Body, ApiError> {
    match (text, encrypted) {
        (Some(_), Some(_)) => Err(ApiError::bad_frame(format!("give {what} or encrypted, not both"))),
        (None, Some(frame)) => sealed(frame, limit),
        // An empty reaction (a removal) reveals nothing.
        (Some(text), None) if allow_plaintext || text.is_empty() => Ok(Body { text, session_id: None }),
        (Some(_), None) => Err(plaintext_not_allowed(what)),
        (None, None) => Err(ApiError::bad_frame(format!("missing {what} (or encrypted)"))),
    }
}

/// The devices an encrypted send names, parsed.
pub fn named_devices(frame: &mut EncryptedFrame) -> Result<BTreeMap<UserId, BTreeSet<DeviceId>>, ApiError> {
    let named = frame.devices.take().ok_or_else(|| {
        ApiError::bad_frame("an encrypted send names encrypted.devices: the devices its session was shared with")
    })?;
    if named.values().map(Vec::len).sum::<usize>() > MAX_NAMED_DEVICES {
        return Err(ApiError::bad_request("too_large", format!("at most {MAX_NAMED_DEVICES} devices per send")));
    }
    let id =
        |text: &str| text.parse::<u64>().map_err(|_| ApiError::bad_frame("encrypted.devices: ids are decimal strings"));
    let mut devices = BTreeMap::new();
    for (user, list) in &named {
        let set = list.iter().map(|device| id(device).map(DeviceId)).collect::<Result<BTreeSet<_>, _>>()?;
        if !set.is_empty() {
            devices.insert(UserId(id(user)?), set);
        }
    }
    Ok(devices)
}

/// The members an encrypted send must reach: both sides of a 1:1 chat, or
/// the group's members as of now (behind a read barrier, so a member added
/// before the send is included).
async fn members_of(reads: &ReadModels, sender: UserId, target: Target) -> Result<Vec<UserId>, ApiError> {
    match target {
        Target::User(user) => Ok(if user == sender { vec![sender] } else { vec![sender, user] }),
        Target::Group(group) => {
            reads.barrier(Projection::History, [group.0]).await?;
            reads.members_including(group, sender).await?.ok_or_else(not_member(group))
        }
    }
}

fn not_member(group: ConversationId) -> impl FnOnce() -> ApiError {
    move || ApiError::forbidden(format!("you are not a member of group {group}")).with_code("not_member")
}

/// Refuses an encrypted send whose named devices are not exactly the
/// current end-to-end devices (those with published identity keys) of the
/// members, the sending device excepted: `device_mismatch` with `missing`
/// and `stale`, each `{"<user_id>": ["<device_id>", ...]}`.
pub async fn check_devices(
    reads: &ReadModels,
    sender: Principal,
    target: Target,
    named: &BTreeMap<UserId, BTreeSet<DeviceId>>,
) -> Result<(), ApiError> {
    let members = members_of(reads, sender.user, target).await?;
    let mut current = reads.device_sets(members).await?;
    if let Some(own) = current.get_mut(&sender.user) {
        own.remove(&sender.device);
    }
    current.retain(|_, devices| !devices.is_empty());
    if current == *named {
        return Ok(());
    }
    let differences = |from: &BTreeMap<UserId, BTreeSet<DeviceId>>, without: &BTreeMap<UserId, BTreeSet<DeviceId>>| {
        let mut out = serde_json::Map::new();
        for (user, devices) in from {
            let others = without.get(user);
            let left: Vec<String> = devices
                .iter()
                .filter(|device| !others.is_some_and(|set| set.contains(device)))
                .map(ToString::to_string)
                .collect();
            if !left.is_empty() {
                out.insert(user.to_string(), json!(left));
            }
        }
        out
    };
    let missing = differences(&current, named);
    let stale = differences(named, &current);
    if missing.is_empty() && stale.is_empty() {
        return Ok(());
    }
    let mut details = serde_json::Map::new();
    details.insert("missing".into(), Value::Object(missing));
    details.insert("stale".into(), Value::Object(stale));
    Err(ApiError {
        details: Some(details),
        ..ApiError::new(
            warp::http::StatusCode::CONFLICT,
            "device_mismatch",
            "the session was not shared with exactly the members' current devices: share it with `missing`, drop `stale`, and resend with the same client_msg_id",
        )
    })
}
