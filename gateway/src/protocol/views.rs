//! Builders for what the server sends: domain values as the JSON objects
//! of docs/PROTOCOL.md. 64-bit ids travel as strings.

use missive_core::DeviceId;
use missive_core::conversation::MessageSent;
use missive_core::delivery::Receipt;
use missive_core::groups::GroupChanged;
use missive_core::media::Attachment;
use missive_core::operations::{MessageModified, Operation};
use missive_projections::{ConversationSummary, FeedEntry, HistoryMessage};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

pub fn message_json(message: &MessageSent) -> Value {
    serde_json::to_value(MessageView(message)).expect("a message serializes")
}

/// A message as clients see it, written straight to JSON: a delivery's
/// frame is built without a `Value` tree (its keys, strings and map nodes
/// are allocations on the path of every message).
struct MessageView<'a>(&'a MessageSent);

/// An end-to-end encrypted body as clients see it (and send it).
#[derive(Serialize)]
struct Sealed<'a> {
    ciphertext: &'a str,
    session_id: &'a str,
}

/// `text` as a body: plaintext under `field`, or `encrypted` when it is
/// ciphertext of `session_id`.
fn set_body(value: &mut Value, field: &str, text: &str, session_id: Option<&str>) {
    match session_id {
        Some(session_id) => value["encrypted"] = json!(Sealed { ciphertext: text, session_id }),
        None => value[field] = json!(text),
    }
}

/// A value written as a JSON string through its `Display` (ids), without
/// an intermediate `String`.
struct AsStr<T>(T);

impl<T: std::fmt::Display> Serialize for AsStr<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl Serialize for MessageView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(attachment) = &message.attachment {
            map.serialize_entry("attachment", &attachment_json(attachment))?;
        }
        if message.session_id.is_none() {
            map.serialize_entry("content", &message.content)?;
        }
        map.serialize_entry("conv_seq", &message.conv_seq.0)?;
        map.serialize_entry("conversation_id", &AsStr(message.conversation_id))?;
        if let Some(session_id) = &message.session_id {
            map.serialize_entry("encrypted", &Sealed { ciphertext: &message.content, session_id })?;
        }
        if message.forward_count > 0 {
            map.serialize_entry("forward_count", &message.forward_count)?;
            map.serialize_entry("forwarded", &true)?;
            map.serialize_entry("forwarded_many_times", &(message.forward_count >= FORWARDED_MANY_TIMES))?;
        }
        map.serialize_entry("from", &AsStr(message.from))?;
        map.serialize_entry("from_device", &AsStr(message.from_device))?;
        map.serialize_entry("kind", "message")?;
        map.serialize_entry("message_id", &AsStr(message.message_id))?;
        if let Some(reply_to) = message.reply_to {
            map.serialize_entry("reply_to", &AsStr(reply_to))?;
        }
        map.serialize_entry("sent_at", &message.sent_at.0)?;
        map.end()
    }
}

/// The text of the frame that pushes feed entry `seq`: `{"type": "event",
/// "seq", "event"}`, a message written without a `Value` tree.
pub fn event_frame_text(seq: u64, entry: &FeedEntry, viewer: DeviceId) -> String {
    enum Event<'a> {
        Message(MessageView<'a>),
        Other(Value),
    }
    impl Serialize for Event<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self {
                Event::Message(message) => message.serialize(serializer),
                Event::Other(value) => value.serialize(serializer),
            }
        }
    }
    #[derive(Serialize)]
    struct Frame<'a> {
        event: Event<'a>,
        seq: u64,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    let event = match entry {
        FeedEntry::Message(message) => Event::Message(MessageView(message)),
        other => Event::Other(entry_json(other, viewer)),
    };
    serde_json::to_string(&Frame { event, seq, kind: "event" }).expect("an event serializes")
}

/// An attachment as clients see it (the storage key stays on the server).
pub fn attachment_json(attachment: &Attachment) -> Value {
    match attachment {
        Attachment::Media(media) => {
            let mut value = json!({
                "kind": media.media_kind.as_str(),
                "media_id": media.media_id,
                "size": media.size,
                "content_type": media.content_type,
                "sha256": media.sha256,
            });
            if let Some(caption) = &media.caption {
                value["caption"] = json!(caption);
            }
            if let Some(thumbnail) = &media.thumbnail {
                value["thumbnail"] = json!(thumbnail);
            }
            value
        }
        Attachment::Location { latitude, longitude, name } => {
            let mut value = json!({"kind": "location", "latitude": latitude, "longitude": longitude});
            if let Some(name) = name {
                value["name"] = json!(name);
            }
            value
        }
        Attachment::Contact { vcard } => json!({"kind": "contact", "vcard": vcard}),
    }
}

/// From this many forwards on a message is "forwarded many times" and may be
/// forwarded to one chat at a time.
pub const FORWARDED_MANY_TIMES: u32 = 5;
/// Most chats a message is forwarded to at once.
pub const MAX_FORWARD_TARGETS: usize = 5;

/// A message as history shows it: with its latest edit, tombstone and reactions.
pub fn history_json(entry: &HistoryMessage) -> Value {
    let mut value = message_json(&entry.message);
    if let Some(at) = entry.edited_at {
        value["edited_at"] = json!(at.0);
    }
    if let Some(at) = entry.deleted_at {
        value["deleted"] = json!(true);
        value["deleted_at"] = json!(at.0);
    }
    if !entry.reactions.is_empty() {
        let reactions: serde_json::Map<String, Value> = entry
            .reactions
            .iter()
            .map(|(user, emoji)| {
                let reaction = match entry.reaction_sessions.get(user) {
                    Some(session_id) => json!(Sealed { ciphertext: emoji, session_id }),
                    None => json!(emoji),
                };
                (user.to_string(), reaction)
            })
            .collect();
        value["reactions"] = Value::Object(reactions);
    }
    value
}

/// An operation on a message, as a feed entry.
pub fn modified_json(modified: &MessageModified) -> Value {
    let mut value = json!({
        "kind": "modified",
        "operation": modified.operation.as_str(),
        "conversation_id": modified.conversation_id.to_string(),
        "conv_seq": modified.conv_seq.0,
        "message_id": modified.message_id.to_string(),
        "target_seq": modified.target_seq.0,
        "by": modified.by.to_string(),
        "at": modified.at.0,
    });
    match &modified.operation {
        Operation::Edit { content } => set_body(&mut value, "content", content, modified.session_id.as_deref()),
        Operation::React { emoji } => set_body(&mut value, "emoji", emoji, modified.session_id.as_deref()),
        Operation::DeleteForEveryone | Operation::DeleteForMe => {}
    }
    value
}

pub fn receipt_json(receipt: &Receipt) -> Value {
    json!({
        "kind": "receipt",
        "conversation_id": receipt.conversation_id.to_string(),
        "message_id": receipt.message_id.to_string(),
        "status": receipt.status.as_str(),
        "by": receipt.by.to_string(),
        "at": receipt.at.0,
        "count": receipt.count,
        "of": receipt.of,
        "up_to": receipt.up_to.0,
    })
}

/// A feed entry as device `viewer` is shown it.
pub fn entry_json(entry: &FeedEntry, viewer: DeviceId) -> Value {
    match entry {
        FeedEntry::Message(message) => message_json(message),
        FeedEntry::Receipt(receipt) => receipt_json(receipt),
        FeedEntry::Group(changed) => group_json(changed),
        FeedEntry::Modified(modified) => modified_json(modified),
        FeedEntry::KeysLow { device_id, remaining } => {
            json!({"kind": "keys_low", "device_id": device_id.to_string(), "remaining": remaining})
        }
        // Another device's entry: its seq is taken (the feed stays gap-free
        // for every device), its body is not this device's to see.
        FeedEntry::ToDevice(entry) if entry.device_id != viewer => {
            json!({"kind": "to_device", "device_id": entry.device_id.to_string()})
        }
        FeedEntry::DevicesChanged { conversation_id, user } => json!({
            "kind": "devices_changed",
            "conversation_id": conversation_id.to_string(),
            "user": user.to_string(),
        }),
        FeedEntry::ToDevice(entry) => json!({
            "kind": "to_device",
            "device_id": entry.device_id.to_string(),
            "from": entry.from.to_string(),
            "from_device": entry.from_device.to_string(),
            "olm_type": entry.olm_type,
            "body": entry.body,
            "sent_at": entry.sent_at.0,
        }),
    }
}

/// A group change as a feed's system entry: what happened, and the group after it.
pub fn group_json(changed: &GroupChanged) -> Value {
    let ids = |users: &[missive_core::UserId]| users.iter().map(|user| user.to_string()).collect::<Vec<_>>();
    let group = &changed.group;
    json!({
        "kind": "group",
        "change": changed.kind.as_str(),
        "conversation_id": changed.conversation_id.to_string(),
        "conv_seq": changed.conv_seq.0,
        "by": changed.by.to_string(),
        "subjects": ids(&changed.subjects),
        "members": ids(&changed.members),
        "admins": group.admins.iter().map(|user| user.to_string()).collect::<Vec<_>>(),
        "name": group.info.name,
        "description": group.info.description,
        "icon": group.info.icon,
        "invites": group.invites.iter().map(|invite| json!({
            "user": invite.user.to_string(),
            "by": invite.by.to_string(),
            "at": invite.at.0,
        })).collect::<Vec<_>>(),
        "settings": {
            "only_admins_send": group.settings.only_admins_send,
            "only_admins_edit_info": group.settings.only_admins_edit_info,
            "history_for_new_members": group.settings.history_for_new_members,
        },
        "at": changed.at.0,
    })
}

pub fn summary_json(summary: &ConversationSummary) -> Value {
    json!({
        "conversation_id": summary.conversation_id.to_string(),
        "peer": summary.peer.to_string(),
        "last_message": summary.last_message.as_ref().map(message_json),
        "unread": summary.unread,
    })
}
