//! Read-side queries over the projections' keys, for gateways. Blocking
//! RocksDB reads: call them from a blocking thread.

use missive_core::conversation::ReceiptStatus;
use missive_core::{ConvSeq, ConversationId, FeedSeq, MessageId, Millis, UserId};
use missive_infra::db::{CF_STATE, family};
use missive_projections::{ConversationSummary, FeedEntry, FeedState, HistoryMessage};
use rocksdb::{DB, Direction, IteratorMode};

use crate::keys;
use missive_core::groups::GroupChanged;
use missive_core::users::UserState;

#[derive(Debug, thiserror::Error)]
#[error("reading projections failed: {0}")]
pub struct QueryError(pub String);

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, QueryError> {
    crate::state_value::decode(bytes).map_err(|error| QueryError(error.to_string()))
}

fn get_value<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, QueryError> {
    match db.get_cf(family(db, CF_STATE), key).map_err(|error| QueryError(error.to_string()))? {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

pub fn feed_state(db: &DB, user: UserId) -> Result<Option<FeedState>, QueryError> {
    get_value(db, &keys::feed_header(user))
}

/// Entries with seq in `(after, after + limit]`, in order.
pub fn feed_entries(
    db: &DB,
    user: UserId,
    after: FeedSeq,
    limit: usize,
) -> Result<Vec<(FeedSeq, FeedEntry)>, QueryError> {
    let start = keys::feed_entry(user, after.next());
    let end = keys::feed_entry(user, FeedSeq(u64::MAX));
    let mut entries = Vec::new();
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&start, Direction::Forward)) {
        let (key, value) = item.map_err(|error| QueryError(error.to_string()))?;
        if key.as_ref() >= end.as_slice() || entries.len() >= limit {
            break;
        }
        let seq =
            FeedSeq(u64::from_be_bytes(key[key.len() - 8..].try_into().map_err(|_| QueryError("bad key".into()))?));
        let entry: FeedEntry = decode(&value)?;
        entries.push((seq, entry));
    }
    Ok(entries)
}

/// The user's conversations, most recent first. The index orders them by
/// the second of their last activity (`keys::recency_slot`); the entries of
/// the last second reached are all read and ordered by exact activity.
pub fn conversations(db: &DB, user: UserId, limit: usize) -> Result<Vec<ConversationSummary>, QueryError> {
    let prefix = keys::recency_prefix(user);
    let mut summaries: Vec<ConversationSummary> = Vec::new();
    let mut last_slot = None;
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, value) = item.map_err(|error| QueryError(error.to_string()))?;
        if !key.starts_with(&prefix) {
            break;
        }
        let slot = keys::recency_time(&key).map(keys::recency_slot);
        if summaries.len() >= limit && slot != last_slot {
            break;
        }
        last_slot = slot;
        let conversation = ConversationId(u64::from_be_bytes(
            value.as_ref().try_into().map_err(|_| QueryError("bad recency".into()))?,
        ));
        if let Some(summary) = get_value::<ConversationSummary>(db, &keys::summary(user, conversation))? {
            summaries.push(summary);
        }
    }
    summaries.sort_by_key(|summary| (std::cmp::Reverse(summary.last_activity), summary.conversation_id));
    summaries.truncate(limit);
    Ok(summaries)
}

/// Messages with `conv_seq < before` (all when `None`), newest first,
/// without those `reader` deleted for themselves.
pub fn history(
    db: &DB,
    conversation: ConversationId,
    reader: UserId,
    before: Option<ConvSeq>,
    limit: usize,
) -> Result<Vec<HistoryMessage>, QueryError> {
    let start = keys::history_message(conversation, ConvSeq(0));
    let end = keys::history_message(conversation, before.unwrap_or(ConvSeq(u64::MAX)));
    let mut messages = Vec::new();
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&end, Direction::Reverse)) {
        let (key, value) = item.map_err(|error| QueryError(error.to_string()))?;
        if key.as_ref() >= end.as_slice() {
            continue;
        }
        if key.as_ref() < start.as_slice() || messages.len() >= limit {
            break;
        }
        let message: HistoryMessage = decode(&value)?;
        if !hidden(db, conversation, reader, message.message.conv_seq)? {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// One message by id, as history shows it.
pub fn message(
    db: &DB,
    conversation: ConversationId,
    message: MessageId,
) -> Result<Option<HistoryMessage>, QueryError> {
    let Some(bytes) = db
        .get_cf(family(db, CF_STATE), keys::history_message_id(conversation, message))
        .map_err(|error| QueryError(error.to_string()))?
    else {
        return Ok(None);
    };
    let seq = u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| QueryError("bad message index".into()))?);
    get_value(db, &keys::history_message(conversation, ConvSeq(seq)))
}

/// Whether `user` deleted the message at `seq` for themselves.
pub fn hidden(db: &DB, conversation: ConversationId, user: UserId, seq: ConvSeq) -> Result<bool, QueryError> {
    db.get_cf(family(db, CF_STATE), keys::history_hidden(conversation, user, seq))
        .map(|value| value.is_some())
        .map_err(|error| QueryError(error.to_string()))
}

/// When `user`'s `status` watermark first reached `seq` (`None`: not yet).
pub fn reached(
    db: &DB,
    conversation: ConversationId,
    user: UserId,
    status: ReceiptStatus,
    seq: ConvSeq,
) -> Result<Option<Millis>, QueryError> {
    let start = keys::history_watermark(conversation, user, status, seq);
    let end = keys::history_watermark(conversation, user, status, ConvSeq(u64::MAX));
    let mut rows = db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&start, Direction::Forward));
    match rows.next() {
        Some(Ok((key, value))) if key.as_ref() <= end.as_slice() => decode(&value).map(Some),
        Some(Err(error)) => Err(QueryError(error.to_string())),
        _ => Ok(None),
    }
}

/// The group as its latest change left it (`None` for 1:1 chats and unknown ids).
pub fn group(db: &DB, conversation: ConversationId) -> Result<Option<GroupChanged>, QueryError> {
    get_value(db, &keys::history_group(conversation))
}

pub fn members(db: &DB, conversation: ConversationId) -> Result<Option<Vec<UserId>>, QueryError> {
    get_value(db, &keys::history_members(conversation))
}

pub fn directory(db: &DB, user: UserId) -> Result<Option<UserState>, QueryError> {
    get_value(db, &keys::directory(user))
}

/// Every user id in the directory (for the Bloom filter at start-up).
pub fn directory_ids(db: &DB) -> Result<Vec<UserId>, QueryError> {
    let prefix = keys::directory_prefix();
    let mut ids = Vec::new();
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, _) = item.map_err(|error| QueryError(error.to_string()))?;
        if !key.starts_with(&prefix) {
            break;
        }
        let bytes: [u8; 8] = key[prefix.len()..].try_into().map_err(|_| QueryError("bad directory key".into()))?;
        ids.push(UserId(u64::from_be_bytes(bytes)));
    }
    Ok(ids)
}

/// The messages (conversation, seq) that carry `media_id` and were not
/// deleted for everyone, up to `limit`.
pub fn media_messages(db: &DB, media_id: &str, limit: usize) -> Result<Vec<(ConversationId, ConvSeq)>, QueryError> {
    let prefix = keys::history_media_prefix(media_id);
    let mut found = Vec::new();
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&prefix, Direction::Forward)).take(limit) {
        let (key, _) = item.map_err(|error| QueryError(error.to_string()))?;
        let Some(rest) = key.strip_prefix(prefix.as_slice()) else { break };
        let (conversation, seq) = rest.split_at_checked(8).ok_or_else(|| QueryError("bad media index".into()))?;
        let number =
            |bytes: &[u8]| bytes.try_into().map(u64::from_be_bytes).map_err(|_| QueryError("bad media index".into()));
        found.push((ConversationId(number(conversation)?), ConvSeq(number(seq)?)));
    }
    Ok(found)
}

/// Media whose every message was deleted for everyone at a time in
/// `[from, to)`: (time, media id, storage key), up to `limit`.
pub fn media_gone(
    db: &DB,
    from: Millis,
    to: Millis,
    limit: usize,
) -> Result<Vec<(Millis, String, String)>, QueryError> {
    let prefix = keys::history_media_gone_prefix();
    let start = keys::history_media_gone(from, "");
    let end = keys::history_media_gone(to, "");
    let mut found = Vec::new();
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&start, Direction::Forward)).take(limit) {
        let (key, value) = item.map_err(|error| QueryError(error.to_string()))?;
        if key.as_ref() >= end.as_slice() || !key.starts_with(&prefix) {
            break;
        }
        let bad = || QueryError("bad media removal entry".into());
        let rest = &key[prefix.len()..];
        let (at, media_id) = rest.split_at_checked(8).ok_or_else(bad)?;
        let at = Millis(i64::from_be_bytes(at.try_into().map_err(|_| bad())?));
        let media_id = String::from_utf8(media_id.to_vec()).map_err(|_| bad())?;
        let key = String::from_utf8(value.to_vec()).map_err(|_| bad())?;
        found.push((at, media_id, key));
    }
    Ok(found)
}

/// A completed upload, as the media catalogue knows it.
pub fn media(db: &DB, media_id: &str) -> Result<Option<missive_core::media::MediaUploaded>, QueryError> {
    get_value(db, &keys::media(media_id))
}

/// A message by its place in the conversation.
pub fn message_at(db: &DB, conversation: ConversationId, seq: ConvSeq) -> Result<Option<HistoryMessage>, QueryError> {
    get_value(db, &keys::history_message(conversation, seq))
}

/// Whether `viewer` is a member of a group whose icon is `media_id` now.
pub fn sees_icon(db: &DB, media_id: &str, viewer: UserId) -> Result<bool, QueryError> {
    let prefix = keys::history_icon_prefix(media_id);
    for item in db.iterator_cf(family(db, CF_STATE), IteratorMode::From(&prefix, Direction::Forward)).take(1024) {
        let (key, _) = item.map_err(|error| QueryError(error.to_string()))?;
        let Some(rest) = key.strip_prefix(prefix.as_slice()) else { break };
        let group =
            ConversationId(u64::from_be_bytes(rest.try_into().map_err(|_| QueryError("bad icon index".into()))?));
        let current = self::group(db, group)?.map(|changed| changed.group.info.icon);
        if current.as_deref() == Some(media_id) && members(db, group)?.is_some_and(|members| members.contains(&viewer))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use missive_infra::db::open_db;

    use super::*;

    /// The index holds seconds; within the second a page ends in, the
    /// list is still ordered by exact activity (conversation ids tie-break).
    #[test]
    fn the_conversation_list_is_in_exact_activity_order_across_page_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open_db(dir.path()).expect("db");
        let state = family(&db, CF_STATE);
        let user = UserId(7);
        // (conversation, last activity): 1 and 2 share a second; 2 is newer
        // though the index lists 1 first within that second.
        let chats = [(1u64, 5_000_100i64), (2, 5_000_900), (3, 4_000_000), (4, 6_000_050)];
        for (conversation, activity) in chats {
            let summary = ConversationSummary {
                conversation_id: ConversationId(conversation),
                peer: UserId(conversation + 100),
                last_message: None,
                unread: 0,
                read_up_to: ConvSeq(0),
                last_activity: Millis(activity),
                indexed_at: Some(keys::recency_slot(Millis(activity))),
            };
            let conversation = ConversationId(conversation);
            db.put_cf(state, keys::summary(user, conversation), crate::state_value::encode(&summary).expect("encodes"))
                .expect("put");
            let slot = keys::recency_slot(Millis(activity));
            db.put_cf(state, keys::recency(user, slot, conversation), conversation.to_be_bytes()).expect("put");
        }
        let ids = |limit| -> Vec<u64> {
            conversations(&db, user, limit).expect("list").iter().map(|summary| summary.conversation_id.0).collect()
        };
        assert_eq!(ids(10), vec![4, 2, 1, 3]);
        assert_eq!(ids(2), vec![4, 2], "a page ending inside a second takes its newest");
        assert_eq!(ids(1), vec![4]);
        assert_eq!(ids(3), vec![4, 2, 1]);
        assert_eq!(
            keys::recency_time(&keys::recency(user, Millis(5_000_000), ConversationId(1))),
            Some(Millis(5_000_000))
        );
    }
}
