//! The JSON client protocol (see docs/PROTOCOL.md): frames a client sends,
//! and builders for frames the server sends. 64-bit ids travel as strings.

use missive_core::conversation::MessageSent;
use missive_core::delivery::Receipt;
use missive_core::groups::GroupChanged;
use missive_core::media::Attachment;
use missive_core::operations::{MessageModified, Operation};
use missive_projections::{ConversationSummary, FeedEntry, HistoryMessage};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

/// Largest WebSocket frame or message the server reads; larger ones close the connection.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

#[derive(Debug, Deserialize)]
pub struct Resume {
    pub epoch: String,
    pub seq: u64,
}

/// Whom a message is for: one user (`user`) or a group (`group`, its conversation id).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub user: Option<String>,
    pub group: Option<String>,
}

/// A message by where it lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageLocator {
    pub conversation_id: String,
    pub message_id: String,
}

/// A completed upload attached to a message. `kind`, `size` and
/// `content_type`, when given, must match the upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaFrame {
    pub media_id: String,
    pub kind: Option<String>,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub caption: Option<String>,
    /// Base64 of a client-made thumbnail (for encrypted media), ≤ 64 KiB.
    pub thumbnail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationFrame {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactFrame {
    pub vcard: String,
}

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        token: String,
        resume: Option<Resume>,
    },
    /// A message: text (`content`, ciphertext in encrypted chats) and at
    /// most one of `media` (a completed upload), `location` or `contact`.
    Send {
        req: Option<String>,
        to: Recipient,
        client_msg_id: String,
        #[serde(default)]
        content: String,
        reply_to: Option<String>,
        media: Option<MediaFrame>,
        location: Option<LocationFrame>,
        contact: Option<ContactFrame>,
    },
    Ack {
        seq: u64,
    },
    Read {
        conversation_id: String,
        up_to: u64,
    },
    /// Sends a message on to 1..=5 chats (1 once it was forwarded many
    /// times). `content` is what to send (a client re-encrypts for the new
    /// chats); without it the original content is copied.
    Forward {
        req: Option<String>,
        of: MessageLocator,
        to: Vec<Recipient>,
        client_msg_id: String,
        content: Option<String>,
    },
    /// New content for one's own message, within 15 minutes.
    Edit {
        req: Option<String>,
        conversation_id: String,
        message_id: String,
        content: String,
    },
    /// `scope`: `everyone` (a tombstone for all, within the delete window) or `me`.
    Delete {
        req: Option<String>,
        conversation_id: String,
        message_id: String,
        scope: String,
    },
    /// One reaction per member and message; an empty `emoji` removes it.
    React {
        req: Option<String>,
        conversation_id: String,
        message_id: String,
        emoji: String,
    },
    /// Watch these users' presence (online, offline with last seen) for
    /// as long as the connection lasts; what privacy hides stays silent.
    SubscribePresence {
        req: Option<String>,
        users: Vec<String>,
    },
    /// `state`: typing, recording or paused.
    Typing {
        conversation_id: String,
        state: String,
    },
    Ping,
    /// A fresh access token of the same device, before the current one
    /// expires; the session then lasts until the new one expires.
    Reauth {
        req: Option<String>,
        token: String,
    },
}

/// Why a frame could not be parsed: the stable code and a message.
pub struct FrameError {
    pub req: Option<String>,
    pub code: &'static str,
    pub message: String,
}

pub const KNOWN_TYPES: [&str; 12] = [
    "hello",
    "send",
    "forward",
    "edit",
    "delete",
    "react",
    "ack",
    "read",
    "typing",
    "subscribe_presence",
    "ping",
    "reauth",
];

/// Parses a text frame, telling a missing/unknown type from bad fields.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|error| FrameError {
        req: None,
        code: "bad_frame",
        message: format!("invalid JSON: {error}"),
    })?;
    let req = value.get("req").and_then(Value::as_str).map(str::to_string);
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_string) else {
        return Err(FrameError { req, code: "bad_frame", message: "a frame needs a string \"type\"".into() });
    };
    if !KNOWN_TYPES.contains(&kind.as_str()) {
        return Err(FrameError {
            req,
            code: "unknown_type",
            message: format!("unknown frame type {kind:?}; known: {}", KNOWN_TYPES.join(", ")),
        });
    }
    serde_json::from_value(value).map_err(|error| FrameError {
        req,
        code: "bad_frame",
        message: format!("bad {kind} frame: {error}"),
    })
}

pub fn error_frame(req: Option<&str>, code: &str, message: &str) -> Value {
    let mut frame = json!({"type": "error", "code": code, "message": message});
    if let Some(req) = req {
        frame["req"] = json!(req);
    }
    frame
}

pub fn message_json(message: &MessageSent) -> Value {
    serde_json::to_value(MessageView(message)).expect("a message serializes")
}

/// A message as clients see it, written straight to JSON: a delivery's
/// frame is built without a `Value` tree (its keys, strings and map nodes
/// are allocations on the path of every message).
struct MessageView<'a>(&'a MessageSent);

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
        map.serialize_entry("content", &message.content)?;
        map.serialize_entry("conv_seq", &message.conv_seq.0)?;
        map.serialize_entry("conversation_id", &AsStr(message.conversation_id))?;
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
pub fn event_frame_text(seq: u64, entry: &FeedEntry) -> String {
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
        other => Event::Other(entry_json(other)),
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
        let reactions: serde_json::Map<String, Value> =
            entry.reactions.iter().map(|(user, emoji)| (user.to_string(), json!(emoji))).collect();
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
        Operation::Edit { content } => value["content"] = json!(content),
        Operation::React { emoji } => value["emoji"] = json!(emoji),
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

pub fn entry_json(entry: &FeedEntry) -> Value {
    match entry {
        FeedEntry::Message(message) => message_json(message),
        FeedEntry::Receipt(receipt) => receipt_json(receipt),
        FeedEntry::Group(changed) => group_json(changed),
        FeedEntry::Modified(modified) => modified_json(modified),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame written without a `Value` tree says exactly what the
    /// protocol's message object says, with and without optional fields.
    #[test]
    fn event_frames_carry_the_message_object() {
        use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
        let plain = MessageSent {
            conversation_id: ConversationId(7),
            conv_seq: ConvSeq(3),
            message_id: MessageId(11),
            from: UserId(1),
            from_device: DeviceId(2),
            members: vec![UserId(1), UserId(5)],
            client_msg_id: "c1".into(),
            content: "hi \"there\"\n".into(),
            reply_to: None,
            sent_at: Millis(1_700_000_000_000),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
        };
        let rich = MessageSent {
            reply_to: Some(MessageId(9)),
            forward_count: 6,
            attachment: Some(Attachment::Location { latitude: 1.5, longitude: -2.0, name: Some("here".into()) }),
            ..plain.clone()
        };
        for message in [plain, rich.clone()] {
            let text = event_frame_text(42, &FeedEntry::Message(message.clone()));
            let parsed: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(parsed, json!({"type": "event", "seq": 42, "event": message_json(&message)}));
            assert_eq!(parsed["event"]["message_id"], "11", "ids are strings");
        }
        let rich = serde_json::from_str::<Value>(&event_frame_text(1, &FeedEntry::Message(rich))).expect("JSON");
        assert_eq!(
            rich["event"],
            json!({
                "kind": "message", "message_id": "11", "conversation_id": "7", "conv_seq": 3,
                "from": "1", "from_device": "2", "content": "hi \"there\"\n", "sent_at": 1_700_000_000_000u64,
                "reply_to": "9", "forwarded": true, "forward_count": 6, "forwarded_many_times": true,
                "attachment": {"kind": "location", "latitude": 1.5, "longitude": -2.0, "name": "here"},
            })
        );
    }

    #[test]
    fn frames_parse_or_explain() {
        assert!(matches!(parse_client_frame(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping)));
        assert!(matches!(parse_client_frame(r#"{"type":"ack","seq":3}"#), Ok(ClientFrame::Ack { seq: 3 })));
        let error = parse_client_frame("{nope").expect_err("invalid JSON");
        assert_eq!(error.code, "bad_frame");
        let error = parse_client_frame(r#"{"type":"dance","req":"r1"}"#).expect_err("unknown type");
        assert_eq!((error.code, error.req.as_deref()), ("unknown_type", Some("r1")));
        let error = parse_client_frame(r#"{"type":"ack","seq":"three"}"#).expect_err("wrong type");
        assert_eq!(error.code, "bad_frame");
        let error = parse_client_frame(r#"{"type":"send","req":"r2","to":{"user":"1"}}"#).expect_err("missing fields");
        assert_eq!((error.code, error.req.as_deref()), ("bad_frame", Some("r2")));
    }
}
