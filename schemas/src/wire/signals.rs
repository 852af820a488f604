//! Replies, typing, presence and push jobs.

use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
use serde::{Deserialize, Serialize};

use super::ids;

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
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub from: UserId,
    #[serde(with = "ids::one")]
    pub from_device: DeviceId,
    pub state: TypingState,
    #[serde(with = "ids::many")]
    pub recipients: Vec<UserId>,
    pub expires_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandReply {
    pub gateway: String,
    pub request: i64,
    pub outcome: String,
    pub detail: String,
    #[serde(with = "ids::maybe")]
    pub user_id: Option<UserId>,
    #[serde(with = "ids::maybe")]
    pub device_id: Option<DeviceId>,
    #[serde(with = "ids::maybe")]
    pub conversation_id: Option<ConversationId>,
    #[serde(with = "ids::maybe")]
    pub message_id: Option<MessageId>,
    #[serde(with = "ids::maybe")]
    pub conv_seq: Option<ConvSeq>,
    pub at: Millis,
    #[serde(default)]
    pub claimed_key: Option<super::ClaimedKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceHeartbeat {
    pub instance: String,
    #[serde(with = "ids::many")]
    pub online: Vec<UserId>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceChanged {
    pub instance: String,
    #[serde(with = "ids::one")]
    pub user: UserId,
    pub online: bool,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushJob {
    #[serde(with = "ids::one")]
    pub user: UserId,
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    pub group: bool,
    pub count: i32,
    #[serde(with = "ids::many")]
    pub message_ids: Vec<MessageId>,
    #[serde(with = "ids::many")]
    pub senders: Vec<UserId>,
    pub first_at: Millis,
    pub at: Millis,
}
