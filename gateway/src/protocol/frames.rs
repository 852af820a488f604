//! Frames a client sends, parsed and checked for shape, and the frames
//! every exchange shares (errors, the `req` echo).

use std::collections::BTreeMap;

use serde::Deserialize;
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

/// An end-to-end encrypted body: Megolm ciphertext (unpadded base64) of
/// the sending device's outbound session `session_id`. The server stores
/// and relays it and never reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedFrame {
    pub session_id: String,
    pub ciphertext: String,
    /// Sends only: the devices the session's key was shared with, by user
    /// (every current device of every member but the sending one).
    pub devices: Option<BTreeMap<String, Vec<String>>>,
}

/// One Olm message for one device (`olm_type` 0: pre-key, 1: normal).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareEntry {
    pub user: String,
    pub device: String,
    pub olm_type: u8,
    pub body: String,
}

/// A message: plaintext `content` or an `encrypted` body, and at most one
/// of `media` (a completed upload), `location` or `contact`.
#[derive(Debug, Deserialize)]
pub struct SendFrame {
    pub req: Option<String>,
    pub to: Recipient,
    pub client_msg_id: String,
    #[serde(default)]
    pub content: String,
    pub reply_to: Option<String>,
    pub media: Option<MediaFrame>,
    pub location: Option<LocationFrame>,
    pub contact: Option<ContactFrame>,
    /// Instead of `content`: the encrypted body (which also carries any caption, place or card).
    pub encrypted: Option<EncryptedFrame>,
    /// Forwards this message (an encrypted forward: re-sealed for this chat).
    pub forward_of: Option<MessageLocator>,
}

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        token: String,
        resume: Option<Resume>,
    },
    /// A message (boxed: it is by far the largest frame).
    Send(Box<SendFrame>),
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
    /// New content (or, encrypted, new ciphertext) for one's own message, within 15 minutes.
    Edit {
        req: Option<String>,
        conversation_id: String,
        message_id: String,
        content: Option<String>,
        encrypted: Option<EncryptedFrame>,
    },
    /// `scope`: `everyone` (a tombstone for all, within the delete window) or `me`.
    Delete {
        req: Option<String>,
        conversation_id: String,
        message_id: String,
        scope: String,
    },
    /// One reaction per member and message (`emoji`, or encrypted); an
    /// empty `emoji` removes it.
    React {
        req: Option<String>,
        conversation_id: String,
        message_id: String,
        emoji: Option<String>,
        encrypted: Option<EncryptedFrame>,
    },
    /// Olm messages (Megolm session keys) for other devices: each is shown
    /// to the addressed device only.
    ShareKeys {
        req: Option<String>,
        messages: Vec<ShareEntry>,
        /// The conversation the keys are for: in a group, recipients who
        /// blocked the sender still get them (they see its group messages).
        #[serde(default)]
        conversation_id: Option<String>,
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

pub const KNOWN_TYPES: [&str; 13] = [
    "hello",
    "send",
    "share_keys",
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

/// `frame` answering the request `req`, if it named one.
pub fn with_req(mut frame: Value, req: &Option<String>) -> Value {
    if let Some(req) = req {
        frame["req"] = json!(req);
    }
    frame
}
