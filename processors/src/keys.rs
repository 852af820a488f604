//! State keys. Ids are big-endian so that range scans follow numeric order.
//! Every processor owns one prefix; queries read the same keys.

use missive_core::conversation::ReceiptStatus;
use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

pub fn conversation(conversation: ConversationId) -> Vec<u8> {
    key(&[b"conv/", &conversation.to_be_bytes()])
}

pub fn conversation_message(conversation: ConversationId, seq: ConvSeq) -> Vec<u8> {
    key(&[b"conv/", &conversation.to_be_bytes(), b"/m/", &seq.to_be_bytes()])
}

/// One member's delivered/read watermarks in a conversation.
pub fn conversation_marks(conversation: ConversationId, user: UserId) -> Vec<u8> {
    key(&[b"conv/", &conversation.to_be_bytes(), b"/w/", &user.to_be_bytes()])
}

pub fn conversation_dedupe(conversation: ConversationId, device: DeviceId, client_msg_id: &str) -> Vec<u8> {
    key(&[b"conv/", &conversation.to_be_bytes(), b"/d/", &device.to_be_bytes(), client_msg_id.as_bytes()])
}

pub fn user(user: UserId) -> Vec<u8> {
    key(&[b"user/", &user.to_be_bytes()])
}

/// A device's public keys (end-to-end encryption), kept by the users processor.
pub fn device_keys(user: UserId, device: DeviceId) -> Vec<u8> {
    key(&[b"devkeys/", &user.to_be_bytes(), &device.to_be_bytes()])
}

pub fn feed_header(user: UserId) -> Vec<u8> {
    key(&[b"inbox/", &user.to_be_bytes(), b"/h"])
}

pub fn feed_entry(user: UserId, seq: FeedSeq) -> Vec<u8> {
    key(&[b"inbox/", &user.to_be_bytes(), b"/e/", &seq.to_be_bytes()])
}

pub fn summary(user: UserId, conversation: ConversationId) -> Vec<u8> {
    key(&[b"inbox/", &user.to_be_bytes(), b"/c/", &conversation.to_be_bytes()])
}

/// The key range of `user`'s conversation summaries (one per conversation it has messages in).
pub fn summaries(user: UserId) -> (Vec<u8>, Vec<u8>) {
    (key(&[b"inbox/", &user.to_be_bytes(), b"/c/"]), key(&[b"inbox/", &user.to_be_bytes(), b"/c0"]))
}

pub fn unread_marker(user: UserId, conversation: ConversationId, seq: ConvSeq) -> Vec<u8> {
    key(&[b"inbox/", &user.to_be_bytes(), b"/u/", &conversation.to_be_bytes(), &seq.to_be_bytes()])
}

/// Newest first: the activity time is stored inverted.
/// How coarse the conversation list's recency index is: a conversation's
/// entry moves only when its activity enters a new second (not with every
/// message); readers order the entries of one second by exact activity.
pub const RECENCY_GRAIN_MS: i64 = 1000;

/// The index time of an activity: the start of its second.
pub fn recency_slot(activity: Millis) -> Millis {
    Millis(activity.0 - activity.0.rem_euclid(RECENCY_GRAIN_MS))
}

/// The activity time a key of the recency index holds.
pub fn recency_time(key: &[u8]) -> Option<Millis> {
    let inverted = key.len().checked_sub(16).and_then(|at| key.get(at..at + 8))?;
    let inverted = u64::from_be_bytes(inverted.try_into().ok()?);
    i64::try_from(u64::MAX - inverted).ok().map(Millis)
}

pub fn recency(user: UserId, activity: Millis, conversation: ConversationId) -> Vec<u8> {
    let inverted = u64::MAX - (activity.0.max(0) as u64);
    key(&[b"inbox/", &user.to_be_bytes(), b"/r/", &inverted.to_be_bytes(), &conversation.to_be_bytes()])
}

pub fn recency_prefix(user: UserId) -> Vec<u8> {
    key(&[b"inbox/", &user.to_be_bytes(), b"/r/"])
}

pub fn history_message(conversation: ConversationId, seq: ConvSeq) -> Vec<u8> {
    key(&[b"hist/", &conversation.to_be_bytes(), b"/m/", &seq.to_be_bytes()])
}

/// A message's place in its conversation, by message id.
pub fn history_message_id(conversation: ConversationId, message: MessageId) -> Vec<u8> {
    key(&[b"hist/", &conversation.to_be_bytes(), b"/i/", &message.to_be_bytes()])
}

/// A message one member deleted for themselves.
pub fn history_hidden(conversation: ConversationId, user: UserId, seq: ConvSeq) -> Vec<u8> {
    key(&[b"hist/", &conversation.to_be_bytes(), b"/h/", &user.to_be_bytes(), &seq.to_be_bytes()])
}

/// A member's delivered (`d`) or read (`r`) watermark reached `up_to` at the stored time:
/// one row per advance, so "when did X get message N" is the first row at or after N.
pub fn history_watermark(conversation: ConversationId, user: UserId, status: ReceiptStatus, up_to: ConvSeq) -> Vec<u8> {
    let status: &[u8] = match status {
        ReceiptStatus::Delivered => b"d",
        ReceiptStatus::Read => b"r",
    };
    key(&[b"hist/", &conversation.to_be_bytes(), b"/w/", &user.to_be_bytes(), status, &up_to.to_be_bytes()])
}

/// The latest `GroupChanged` of a group: the group as it stands.
pub fn history_group(conversation: ConversationId) -> Vec<u8> {
    key(&[b"hist/", &conversation.to_be_bytes(), b"/group"])
}

/// Media keys sit after every conversation's keys (ids are below 2^63,
/// so no conversation id starts with 0xff).
const HISTORY_MEDIA: &[u8] = b"hist/\xffm/";
const HISTORY_MEDIA_GONE: &[u8] = b"hist/\xffg/";
const HISTORY_ICON: &[u8] = b"hist/\xffi/";

/// A group that had `media_id` as its icon (its current icon is checked on read).
pub fn history_icon(media_id: &str, group: ConversationId) -> Vec<u8> {
    key(&[HISTORY_ICON, media_id.as_bytes(), b"/", &group.to_be_bytes()])
}

pub fn history_icon_prefix(media_id: &str) -> Vec<u8> {
    key(&[HISTORY_ICON, media_id.as_bytes(), b"/"])
}

/// A message that carries `media_id`: who may fetch the media.
pub fn history_media(media_id: &str, conversation: ConversationId, seq: ConvSeq) -> Vec<u8> {
    key(&[HISTORY_MEDIA, media_id.as_bytes(), b"/", &conversation.to_be_bytes(), &seq.to_be_bytes()])
}

pub fn history_media_prefix(media_id: &str) -> Vec<u8> {
    key(&[HISTORY_MEDIA, media_id.as_bytes(), b"/"])
}

/// Media whose every message was deleted for everyone, by the time the
/// last one was (value: the storage key): removed after the retention.
pub fn history_media_gone(at: Millis, media_id: &str) -> Vec<u8> {
    key(&[HISTORY_MEDIA_GONE, &at.0.max(0).to_be_bytes(), media_id.as_bytes()])
}

pub fn history_media_gone_prefix() -> Vec<u8> {
    HISTORY_MEDIA_GONE.to_vec()
}

pub fn history_members(conversation: ConversationId) -> Vec<u8> {
    key(&[b"hist/", &conversation.to_be_bytes(), b"/members"])
}

/// A completed upload in the media catalogue.
pub fn media(media_id: &str) -> Vec<u8> {
    key(&[b"media/", media_id.as_bytes()])
}

pub fn directory(user: UserId) -> Vec<u8> {
    key(&[b"dir/", &user.to_be_bytes()])
}

pub fn directory_prefix() -> Vec<u8> {
    b"dir/".to_vec()
}

/// Expiry index of dedupe records, per input partition, oldest first.
pub fn dedupe_expiry(partition: u32, at: Millis, dedupe_key: &[u8]) -> Vec<u8> {
    key(&[b"convx/", &partition.to_be_bytes(), b"/", &(at.0.max(0) as u64).to_be_bytes(), dedupe_key])
}

pub fn dedupe_expiry_range(partition: u32, before: Millis) -> (Vec<u8>, Vec<u8>) {
    let start = key(&[b"convx/", &partition.to_be_bytes(), b"/"]);
    let end = key(&[b"convx/", &partition.to_be_bytes(), b"/", &(before.0.max(0) as u64).to_be_bytes()]);
    (start, end)
}
