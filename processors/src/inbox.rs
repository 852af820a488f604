//! The inbox projection: folds each user's deliveries into their feed
//! (gap-free seq, epoch, per-device acks, backlog) and conversation list.
//! Input `deliveries`; outputs delivered marks to `commands.conversation`.
//! After each commit it wakes the sessions of the users whose feed grew.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use missive_core::conversation::{AnnounceDevices, ConversationCommand};
use missive_core::delivery::{Delivery, DeliveryItem};
use missive_core::notifications::OfflineMessage;
use missive_core::operations::Operation;
use missive_core::{ConvSeq, ConversationId, Epoch, FeedSeq, UserId};
use missive_infra::Record;
use missive_projections::{ConversationSummary, FeedEntry, FeedState, MessageMark};
use missive_schemas::Codec;
use missive_schemas::WireValue;
use missive_schemas::convert::deliveries_from_wire;

use crate::common::{decode, output};
use crate::hub::{FeedHub, FeedUpdate};
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::topics::{COMMANDS_CONVERSATION, deliveries_partition};
use crate::tx::{StateCache, Tx};

pub const PROCESSOR: &str = "inbox";

pub struct InboxHandler {
    pub codec: Arc<Codec>,
    pub hub: FeedHub,
    /// Users whose feed grew in the current batch: new head and entries.
    pub touched: BTreeMap<UserId, (FeedSeq, Vec<(FeedSeq, FeedEntry)>)>,
    /// Messages this batch appended for users with no open session (push candidates).
    pub offline: Vec<OfflineMessage>,
    /// Feed headers and conversation summaries, kept parsed across batches.
    feeds: StateCache<UserId, FeedState>,
    summaries: Summaries,
    /// What acks need of recently appended entries (entries never change,
    /// and a seq is never reused): an ack of entries appended since this
    /// handler started reads nothing. Bounded; a miss reads the store.
    recent: HashMap<(UserId, FeedSeq), Option<MessageMark>>,
}

/// How many appended entries [`InboxHandler`] remembers for acks.
const RECENT_MAX: usize = 1 << 18;
/// Most backlog entries a delete for everyone looks through.
const MAX_SCRUBBED: usize = 100_000;
/// Most conversations one device change is announced in.
const MAX_ANNOUNCED: usize = 10_000;

type Summaries = StateCache<(UserId, ConversationId), ConversationSummary>;

impl InboxHandler {
    pub fn new(codec: Arc<Codec>, hub: FeedHub) -> InboxHandler {
        InboxHandler {
            codec,
            hub,
            touched: BTreeMap::new(),
            offline: Vec::new(),
            feeds: StateCache::default(),
            summaries: StateCache::default(),
            recent: HashMap::new(),
        }
    }

    /// `user`'s devices changed: each conversation it has messages in tells
    /// its other members (through the conversation's decider, which knows them).
    fn announce_devices(&mut self, tx: &mut Tx<'_>, record: &Record, user: UserId) -> Result<(), HandleError> {
        // Summaries made earlier in this batch are in the cache: write them
        // into the batch so the scan sees them (however the log was chunked).
        self.summaries.flush(tx)?;
        let (start, end) = keys::summaries(user);
        for (key, _) in tx.scan(&start, &end, MAX_ANNOUNCED)? {
            let Some(id) = key.get(key.len().saturating_sub(8)..).and_then(|tail| <[u8; 8]>::try_from(tail).ok())
            else {
                continue;
            };
            let conversation_id = ConversationId(u64::from_be_bytes(id));
            let announce = ConversationCommand::AnnounceDevices(AnnounceDevices { conversation_id, user });
            tx.emit(output(
                &self.codec,
                record,
                COMMANDS_CONVERSATION,
                conversation_id.0,
                &WireValue::from(&announce),
            )?);
        }
        Ok(())
    }

    /// Appends an entry to a user's feed and remembers it for publication.
    fn append_entry(
        &mut self,
        tx: &mut Tx<'_>,
        user: UserId,
        feed: &mut FeedState,
        entry: FeedEntry,
    ) -> Result<(), HandleError> {
        let seq = feed.append();
        tx.put_value(keys::feed_entry(user, seq), &entry)?;
        if self.recent.len() >= RECENT_MAX {
            self.recent.clear();
        }
        self.recent.insert((user, seq), MessageMark::of(&entry));
        // Every grown feed is announced (a session may subscribe before the
        // commit); entries are kept only for users someone listens to, and a
        // session that finds them missing reads the store instead.
        let touched = self.touched.entry(user).or_default();
        touched.0 = seq;
        if self.hub.is_subscribed(user) {
            touched.1.push((seq, entry));
        } else if let FeedEntry::Message(message) = &entry
            && message.from != user
        {
            self.offline.push(OfflineMessage {
                user,
                conversation_id: message.conversation_id,
                message_id: message.message_id,
                from: message.from,
                group: message.conversation_id != ConversationId::direct(message.from, user),
                sent_at: message.sent_at,
            });
        }
        Ok(())
    }
    /// The message entries of `from..=to` in a feed, from memory when every
    /// one was appended since this handler started, else from the store.
    fn message_marks(
        &mut self,
        tx: &Tx<'_>,
        user: UserId,
        from: FeedSeq,
        to: FeedSeq,
    ) -> Result<Vec<(FeedSeq, MessageMark)>, HandleError> {
        let seqs = (from.0..=to.0).map(FeedSeq);
        if to.0 - from.0 < POINT_READS_MAX && seqs.clone().all(|seq| self.recent.contains_key(&(user, seq))) {
            // Acked entries are not acked again (the delivered position only grows).
            return Ok(seqs
                .filter_map(|seq| self.recent.remove(&(user, seq)).flatten().map(|mark| (seq, mark)))
                .collect());
        }
        let mut marks = Vec::new();
        for (seq, bytes) in feed_entries(tx, user, from, to)? {
            if let Some(mark) = MessageMark::of(&parse::<FeedEntry>(&bytes)?) {
                marks.push((seq, mark));
            }
        }
        Ok(marks)
    }

    /// Folds one delivery into its recipient's feed (`feeds` holds the batch's parsed headers).
    fn apply(
        &mut self,
        tx: &mut Tx<'_>,
        feeds: &mut StateCache<UserId, FeedState>,
        record: &Record,
        delivery: Delivery,
    ) -> Result<(), HandleError> {
        let user = delivery.recipient;
        let feed = feeds
            .entry(tx, user, || keys::feed_header(user))?
            .get_or_insert_with(|| FeedState::new(Epoch::initial(user)));
        match delivery.item {
            DeliveryItem::Message(message) => {
                apply_message(tx, &mut self.summaries, user, &message)?;
                // The sender's copy is for the account's other devices: the
                // sending device has the message (its `sent` answer carries
                // the id and conv_seq). With no other device the copy would
                // be pushed back and acked for nothing, so no entry is made
                // and no seq used: the feed stays gap-free. A device added
                // later starts at the head, so it expects none of these.
                if !sent_by_its_only_device(feed, user, &message) {
                    self.append_entry(tx, user, feed, FeedEntry::Message(message))?;
                }
            }
            DeliveryItem::Receipt(receipt) => {
                self.append_entry(tx, user, feed, FeedEntry::Receipt(receipt))?;
            }
            DeliveryItem::GroupChanged(changed) => {
                self.append_entry(tx, user, feed, FeedEntry::Group(changed))?;
            }
            DeliveryItem::Modified(modified) => {
                if modified.operation == Operation::DeleteForEveryone {
                    scrub_backlog(tx, user, feed, &modified)?;
                }
                self.append_entry(tx, user, feed, FeedEntry::Modified(modified))?;
            }
            DeliveryItem::KeysLow { device_id, remaining } => {
                self.append_entry(tx, user, feed, FeedEntry::KeysLow { device_id, remaining })?;
            }
            DeliveryItem::ToDevice(entry) => {
                self.append_entry(tx, user, feed, FeedEntry::ToDevice(entry))?;
            }
            DeliveryItem::DevicesChanged { conversation_id, user: changed } => {
                let entry = FeedEntry::DevicesChanged { conversation_id, user: changed };
                self.append_entry(tx, user, feed, entry)?;
            }
            DeliveryItem::ReadSync { conversation_id, up_to } => {
                apply_read(tx, &mut self.summaries, user, conversation_id, up_to)?
            }
            DeliveryItem::DeviceAdded { device_id } => {
                feed.add_device(device_id);
                self.announce_devices(tx, record, user)?;
            }
            DeliveryItem::DeviceRemoved { device_id } => {
                let floor_before = feed.floor;
                if let Some(through) = feed.remove_device(device_id) {
                    delete_entries(tx, user, floor_before, through)?;
                }
                self.announce_devices(tx, record, user)?;
            }
            DeliveryItem::DeviceAcked { device_id, seq } => {
                let newly = match feed.newly_delivered_range(seq) {
                    Some((from, to)) => self.message_marks(tx, user, from, to)?,
                    None => Vec::new(),
                };
                let floor_before = feed.floor;
                let effects = feed.ack(user, device_id, seq, &newly);
                for mark in effects.delivered {
                    let conversation_id = mark.conversation_id;
                    let command = WireValue::from(&ConversationCommand::Receipt(mark));
                    tx.emit(output(&self.codec, record, COMMANDS_CONVERSATION, conversation_id.0, &command)?);
                }
                if let Some(through) = effects.trim_through {
                    delete_entries(tx, user, floor_before, through)?;
                }
            }
        }
        Ok(())
    }
}

/// A message deleted for everyone leaves the backlog too: a device that
/// has not fetched it yet gets a tombstone (no text or ciphertext, no
/// attachment), then the delete entry.
fn scrub_backlog(
    tx: &mut Tx<'_>,
    user: UserId,
    feed: &FeedState,
    modified: &missive_core::operations::MessageModified,
) -> Result<(), HandleError> {
    let start = keys::feed_entry(user, FeedSeq(feed.floor.0 + 1));
    let end = keys::feed_entry(user, FeedSeq(feed.head.0 + 1));
    for (key, value) in tx.scan(&start, &end, MAX_SCRUBBED)? {
        if let FeedEntry::Message(mut message) = parse::<FeedEntry>(&value)?
            && message.conversation_id == modified.conversation_id
            && message.conv_seq == modified.target_seq
        {
            message.content.clear();
            message.session_id = None;
            message.attachment = None;
            tx.put_value(key, &FeedEntry::Message(message))?;
        }
    }
    Ok(())
}

/// Whether `message` is `user`'s own, sent from the only device the feed knows.
fn sent_by_its_only_device(feed: &FeedState, user: UserId, message: &missive_core::conversation::MessageSent) -> bool {
    message.from == user && feed.devices.len() == 1 && feed.devices.contains_key(&message.from_device)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, HandleError> {
    crate::state_value::decode(bytes).map_err(|error| HandleError::Storage(format!("corrupt inbox state: {error}")))
}

fn apply_message(
    tx: &mut Tx<'_>,
    summaries: &mut Summaries,
    user: UserId,
    message: &missive_core::conversation::MessageSent,
) -> Result<(), HandleError> {
    let conversation = message.conversation_id;
    let slot = summaries.entry(tx, (user, conversation), || keys::summary(user, conversation))?;
    let indexed = slot.as_ref().map(|old| old.indexed_at.unwrap_or(old.last_activity));
    let summary = slot.get_or_insert_with(|| ConversationSummary::new(user, message));
    if summary.apply_message(user, message) {
        tx.put(keys::unread_marker(user, conversation, message.conv_seq), Vec::new());
    }
    // The list's index entry moves only when the activity enters a new
    // second: two keys saved for most messages of a busy conversation.
    let now_indexed = keys::recency_slot(summary.last_activity);
    if indexed != Some(now_indexed) {
        if let Some(indexed) = indexed {
            tx.delete(keys::recency(user, indexed, conversation));
        }
        tx.put(keys::recency(user, now_indexed, conversation), conversation.to_be_bytes().to_vec());
        summary.indexed_at = Some(now_indexed);
    }
    Ok(())
}

fn apply_read(
    tx: &mut Tx<'_>,
    summaries: &mut Summaries,
    user: UserId,
    conversation_id: missive_core::ConversationId,
    up_to: ConvSeq,
) -> Result<(), HandleError> {
    let slot = summaries.entry(tx, (user, conversation_id), || keys::summary(user, conversation_id))?;
    let Some(summary) = slot else { return Ok(()) };
    let Some((from, to)) = summary.read_range(up_to) else { return Ok(()) };
    let start = keys::unread_marker(user, conversation_id, from);
    let end = keys::unread_marker(user, conversation_id, ConvSeq(to.0 + 1));
    let markers = tx.scan(&start, &end, usize::MAX)?;
    for (key, _) in &markers {
        tx.delete(key.clone());
    }
    summary.apply_read(up_to, markers.len() as u64);
    Ok(())
}

/// A feed's stored entries with `from <= seq <= to`, in order.
fn feed_entries(tx: &Tx<'_>, user: UserId, from: FeedSeq, to: FeedSeq) -> Result<Vec<(FeedSeq, Vec<u8>)>, HandleError> {
    if to < from {
        return Ok(Vec::new());
    }
    // Feeds are gap-free above their floor, and acks and trims cover a few
    // entries at a time: point reads (mostly answered by the batch's own
    // writes or a Bloom filter) cost far less than opening an iterator.
    // Long ranges are scanned.
    if to.0 - from.0 < POINT_READS_MAX {
        let mut found = Vec::new();
        for seq in from.0..=to.0 {
            if let Some(bytes) = tx.get(&keys::feed_entry(user, FeedSeq(seq)))? {
                found.push((FeedSeq(seq), bytes));
            }
        }
        return Ok(found);
    }
    tx.scan(&keys::feed_entry(user, from), &keys::feed_entry(user, to.next()), usize::MAX)?
        .into_iter()
        .map(|(key, bytes)| {
            let seq = key.get(key.len().saturating_sub(8)..).and_then(|tail| tail.try_into().ok());
            let seq =
                seq.map(u64::from_be_bytes).ok_or_else(|| HandleError::Storage("corrupt feed entry key".into()))?;
            Ok((FeedSeq(seq), bytes))
        })
        .collect()
}

/// Ranges of feed entries shorter than this are read key by key.
const POINT_READS_MAX: u64 = 256;

/// Deletes a feed's entries in `(after, through]` (the backlog no device needs).
fn delete_entries(tx: &mut Tx<'_>, user: UserId, after: FeedSeq, through: FeedSeq) -> Result<(), HandleError> {
    // Deleting a key that is not there changes nothing: short ranges need no read.
    if through.0.saturating_sub(after.0) <= POINT_READS_MAX {
        for seq in after.0 + 1..=through.0 {
            tx.delete(keys::feed_entry(user, FeedSeq(seq)));
        }
        return Ok(());
    }
    for (seq, _) in feed_entries(tx, user, after.next(), through)? {
        tx.delete(keys::feed_entry(user, seq));
    }
    Ok(())
}

impl Handler for InboxHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let deliveries = deliveries_from_wire(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        // A message for several recipients names only users of this
        // partition: another partition's feeds are another task's to write.
        if let Some(stray) =
            deliveries.iter().skip(1).find(|delivery| deliveries_partition(delivery.recipient) != record.partition)
        {
            return Err(HandleError::Poison(format!(
                "recipient {} is not on deliveries partition {}",
                stray.recipient.0, record.partition
            )));
        }
        // Taken out for the call: a feed and `self` are borrowed mutably together.
        let mut feeds = std::mem::take(&mut self.feeds);
        let result = deliveries.into_iter().try_for_each(|delivery| self.apply(tx, &mut feeds, record, delivery));
        self.feeds = feeds;
        result
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), HandleError> {
        self.feeds.write_back(tx)?;
        self.summaries.write_back(tx)
    }

    fn after_commit(&mut self) {
        self.hub.publish_offline(std::mem::take(&mut self.offline));
        for (user, (head, entries)) in std::mem::take(&mut self.touched) {
            self.hub.publish(user, FeedUpdate { head, entries: Arc::new(entries) });
        }
    }
}
