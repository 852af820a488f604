//! Replies, typing, presence and push jobs.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TypingState {
    Typing,
    Recording,
    Paused,
}

impl TypingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Typing => "typing",
            TypingState::Recording => "recording",
            TypingState::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<TypingState> {
        match text {
            "typing" => Some(TypingState::Typing),
            "recording" => Some(TypingState::Recording),
            "paused" => Some(TypingState::Paused),
            _ => None,
        }
    }
}

/// A live indicator on the `ephemeral` topic (no domain twin: nothing folds it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Typing {
    pub conversation_id: i64,
    pub from: i64,
    pub from_device: i64,
    pub state: TypingState,
    pub recipients: Vec<i64>,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandReply {
    pub gateway: String,
    pub request: i64,
    pub outcome: String,
    pub detail: String,
    pub user_id: Option<i64>,
    pub device_id: Option<i64>,
    pub conversation_id: Option<i64>,
    pub message_id: Option<i64>,
    pub conv_seq: Option<i64>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceHeartbeat {
    pub instance: String,
    pub online: Vec<i64>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceChanged {
    pub instance: String,
    pub user: i64,
    pub online: bool,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushJob {
    pub user: i64,
    pub conversation_id: i64,
    pub group: bool,
    pub count: i32,
    pub message_ids: Vec<i64>,
    pub senders: Vec<i64>,
    pub first_at: i64,
    pub at: i64,
}
