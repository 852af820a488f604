//! The history projection: every message of a conversation by `conv_seq`,
//! and its members, for paged history and membership checks. Input
//! `events.conversation`. Also the directory projection of `events.user`:
//! which users exist and their devices.

use std::collections::HashSet;
use std::sync::Arc;

use bloomfilter::Bloom;
use missive_core::conversation::{ConversationEvent, ReceiptStatus};
use missive_core::media::{MediaRef, MediaUploaded, is_media_id};
use missive_core::operations::Operation;
use missive_core::users::{self, UserEvent, UserState};
use missive_core::{ConvSeq, ConversationId, Millis, UserId};
use missive_infra::Record;
use missive_projections::HistoryMessage;
use missive_schemas::Codec;
use parking_lot::RwLock;
use rocksdb::DB;

use crate::common::decode;
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::tx::Tx;

pub const HISTORY: &str = "history";
pub const DIRECTORY: &str = "directory";
pub const MEDIA: &str = "media";

pub struct HistoryHandler {
    codec: Arc<Codec>,
    /// Conversations whose member list is stored (committed): their next
    /// messages skip the lookup. Bounded; forgetting only costs a lookup.
    members_known: HashSet<ConversationId>,
    /// Member lists written by the batch in progress, known once it commits.
    members_pending: Vec<ConversationId>,
}

/// How many conversations [`HistoryHandler`] remembers having members for.
const MEMBERS_KNOWN_MAX: usize = 1 << 20;

impl HistoryHandler {
    pub fn new(codec: Arc<Codec>) -> HistoryHandler {
        HistoryHandler { codec, members_known: HashSet::new(), members_pending: Vec::new() }
    }
}

impl Handler for HistoryHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let event = ConversationEvent::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        match event {
            ConversationEvent::MessageSent(message) => {
                let conversation = message.conversation_id;
                if !self.members_known.contains(&conversation) {
                    let members_key = keys::history_members(conversation);
                    if tx.get(&members_key)?.is_none() {
                        tx.put_value(members_key, &message.members)?;
                    }
                    self.members_pending.push(conversation);
                }
                let (conversation, seq) = (message.conversation_id, message.conv_seq);
                if let Some(media) = message.attachment.as_ref().and_then(|attachment| attachment.media()) {
                    tx.put(keys::history_media(&media.media_id, conversation, seq), Vec::new());
                }
                tx.put(keys::history_message_id(conversation, message.message_id), seq.to_be_bytes().to_vec());
                tx.put_value(keys::history_message(conversation, seq), &HistoryMessage::new(message))?;
            }
            // A group's members change in its log; reads check the latest list.
            ConversationEvent::GroupChanged(changed) => {
                if is_media_id(&changed.group.info.icon) {
                    tx.put(keys::history_icon(&changed.group.info.icon, changed.conversation_id), Vec::new());
                }
                tx.put_value(keys::history_members(changed.conversation_id), &changed.members)?;
                self.members_pending.push(changed.conversation_id);
                tx.put_value(keys::history_group(changed.conversation_id), &changed)?;
            }
            // A read that ticks no one's message (read receipts off in a 1:1
            // chat, or only the reader's own messages) is not kept: the
            // receipts endpoint could otherwise tell when it happened.
            ConversationEvent::ReceiptsAdvanced(advanced)
                if advanced.status == ReceiptStatus::Read && advanced.messages.is_empty() => {}
            ConversationEvent::ReceiptsAdvanced(advanced) => {
                let key =
                    keys::history_watermark(advanced.conversation_id, advanced.by, advanced.status, advanced.up_to);
                tx.put_value(key, &advanced.at)?;
            }
            ConversationEvent::MessageModified(modified) => {
                let conversation = modified.conversation_id;
                if modified.operation == Operation::DeleteForMe {
                    tx.put(keys::history_hidden(conversation, modified.by, modified.target_seq), Vec::new());
                } else {
                    let key = keys::history_message(conversation, modified.target_seq);
                    if let Some(mut message) = tx.get_value::<HistoryMessage>(&key)? {
                        let media = message.message.attachment.as_ref().and_then(|a| a.media()).cloned();
                        message.apply(&modified);
                        if let Some(media) = media.filter(|_| message.deleted_at.is_some()) {
                            media_unreferenced(tx, conversation, modified.target_seq, &media, modified.at)?;
                        }
                        tx.put_value(key, &message)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn after_commit(&mut self) {
        if self.members_known.len() + self.members_pending.len() > MEMBERS_KNOWN_MAX {
            self.members_known.clear();
        }
        self.members_known.extend(self.members_pending.drain(..));
    }
}

/// A message carrying media was deleted for everyone: it no longer lets
/// anyone fetch the media, and once no message does, the media is queued
/// for removal (by the gateways' media sweeper, after the retention).
fn media_unreferenced(
    tx: &mut Tx<'_>,
    conversation: ConversationId,
    seq: ConvSeq,
    media: &MediaRef,
    at: Millis,
) -> Result<(), HandleError> {
    tx.delete(keys::history_media(&media.media_id, conversation, seq));
    let prefix = keys::history_media_prefix(&media.media_id);
    let mut end = prefix.clone();
    end.push(0xff);
    if tx.scan(&prefix, &end, 1)?.is_empty() {
        tx.put(keys::history_media_gone(at, &media.media_id), media.key.as_bytes().to_vec());
    }
    Ok(())
}

/// The media catalogue: every completed upload by id (owner, kind,
/// purpose, storage key), so any gateway can serve profile pictures and
/// group icons, and find what the sweeper removes. Input `events.media`.
pub struct MediaCatalogueHandler {
    pub codec: Arc<Codec>,
}

impl Handler for MediaCatalogueHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let uploaded = MediaUploaded::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        tx.put_value(keys::media(&uploaded.media_id), &uploaded)
    }
}

/// The directory: every account as `users::evolve` folds it (devices,
/// profile, privacy, blocks, contacts, PIN, last seen), for the gateway's
/// token checks, profile views and contact sync. Registered users also go
/// into the in-memory Bloom filter that answers most contact-sync misses.
pub struct DirectoryHandler {
    pub codec: Arc<Codec>,
    pub index: UserIndex,
}

impl Handler for DirectoryHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let event = UserEvent::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        let key = keys::directory(event.user_id());
        let entry: UserState = tx.get_value(&key)?.unwrap_or_default();
        if let UserEvent::DeviceRegistered(registered) = &event {
            self.index.insert(registered.user_id);
        }
        tx.put_value(key, &users::evolve(entry, &event))
    }
}

/// A Bloom filter of registered user ids in front of the exact directory:
/// a miss is certain (no store read), a hit is checked against the store.
/// Sized for `capacity` accounts at a 1 % false-positive rate; beyond that
/// the rate grows but answers stay exact.
#[derive(Clone)]
pub struct UserIndex {
    bloom: Arc<RwLock<Bloom<u64>>>,
}

impl UserIndex {
    pub fn new(capacity: usize) -> UserIndex {
        let bloom = Bloom::new_for_fp_rate(capacity.max(1024), 0.01).expect("valid Bloom filter parameters");
        UserIndex { bloom: Arc::new(RwLock::new(bloom)) }
    }

    pub fn insert(&self, user: UserId) {
        self.bloom.write().set(&user.0);
    }

    pub fn may_exist(&self, user: UserId) -> bool {
        self.bloom.read().check(&user.0)
    }

    /// Adds every account already in the directory (start-up). Returns how many.
    pub fn load(&self, db: &DB) -> Result<usize, crate::queries::QueryError> {
        let ids = crate::queries::directory_ids(db)?;
        let mut bloom = self.bloom.write();
        for user in &ids {
            bloom.set(&user.0);
        }
        Ok(ids.len())
    }
}
