//! The inbox projection: folds each user's deliveries into their feed
//! (gap-free seq, epoch, per-device acks, backlog) and conversation list.
//! Input `deliveries`; outputs delivered marks to `commands.conversation`.
//! After each commit it wakes the sessions of the users whose feed grew.

use std::collections::BTreeMap;
use std::sync::Arc;

use missive_core::conversation::ConversationCommand;
use missive_core::delivery::{Delivery, DeliveryItem};
use missive_core::notifications::OfflineMessage;
use missive_core::{ConvSeq, ConversationId, Epoch, FeedSeq, UserId};
use missive_infra::Record;
use missive_projections::{ConversationSummary, FeedEntry, FeedState};
use missive_schemas::Codec;
use missive_schemas::convert::conversation_command_to_wire;

use crate::common::{decode, output};
use crate::hub::{FeedHub, FeedUpdate};
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::topics::COMMANDS_CONVERSATION;
use crate::tx::Tx;

pub const PROCESSOR: &str = "inbox";

pub struct InboxHandler {
    pub codec: Arc<Codec>,
    pub hub: FeedHub,
    /// Users whose feed grew in the current batch: new head and entries.
    pub touched: BTreeMap<UserId, (FeedSeq, Vec<(FeedSeq, FeedEntry)>)>,
    /// Messages this batch appended for users with no open session (push candidates).
    pub offline: Vec<OfflineMessage>,
}

impl InboxHandler {
    pub fn new(codec: Arc<Codec>, hub: FeedHub) -> InboxHandler {
        InboxHandler { codec, hub, touched: BTreeMap::new(), offline: Vec::new() }
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
        tx.put_json(keys::feed_entry(user, seq), &entry)?;
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
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, HandleError> {
    serde_json::from_slice(bytes).map_err(|error| HandleError::Storage(format!("corrupt inbox state: {error}")))
}

fn apply_message(
    tx: &mut Tx<'_>,
    user: UserId,
    message: &missive_core::conversation::MessageSent,
) -> Result<(), HandleError> {
    let summary_key = keys::summary(user, message.conversation_id);
    let existing: Option<ConversationSummary> = tx.get_json(&summary_key)?;
    if let Some(old) = &existing {
        tx.delete(keys::recency(user, old.last_activity, old.conversation_id));
    }
    let mut summary = existing.unwrap_or_else(|| ConversationSummary::new(user, message));
    if summary.apply_message(user, message) {
        tx.put(keys::unread_marker(user, message.conversation_id, message.conv_seq), Vec::new());
    }
    tx.put(
        keys::recency(user, summary.last_activity, summary.conversation_id),
        summary.conversation_id.to_be_bytes().to_vec(),
    );
    tx.put_json(summary_key, &summary)
}

fn apply_read(
    tx: &mut Tx<'_>,
    user: UserId,
    conversation_id: missive_core::ConversationId,
    up_to: ConvSeq,
) -> Result<(), HandleError> {
    let summary_key = keys::summary(user, conversation_id);
    let Some(mut summary) = tx.get_json::<ConversationSummary>(&summary_key)? else { return Ok(()) };
    let Some((from, to)) = summary.read_range(up_to) else { return Ok(()) };
    let start = keys::unread_marker(user, conversation_id, from);
    let end = keys::unread_marker(user, conversation_id, ConvSeq(to.0 + 1));
    let markers = tx.scan(&start, &end, usize::MAX)?;
    for (key, _) in &markers {
        tx.delete(key.clone());
    }
    summary.apply_read(up_to, markers.len() as u64);
    tx.put_json(summary_key, &summary)
}

/// Deletes a feed's entries in `(after, through]` (the backlog no device needs).
fn delete_entries(tx: &mut Tx<'_>, user: UserId, after: FeedSeq, through: FeedSeq) -> Result<(), HandleError> {
    for (key, _) in
        tx.scan(&keys::feed_entry(user, after.next()), &keys::feed_entry(user, through.next()), usize::MAX)?
    {
        tx.delete(key);
    }
    Ok(())
}

impl Handler for InboxHandler {
    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        let delivery =
            Delivery::try_from(decode(&self.codec, record)?).map_err(|error| HandleError::Poison(error.to_string()))?;
        let user = delivery.recipient;
        let header_key = keys::feed_header(user);
        let mut feed: FeedState = match tx.get(&header_key)? {
            Some(bytes) => parse(&bytes)?,
            None => FeedState::new(Epoch::initial(user)),
        };
        match delivery.item {
            DeliveryItem::Message(message) => {
                apply_message(tx, user, &message)?;
                self.append_entry(tx, user, &mut feed, FeedEntry::Message(message))?;
            }
            DeliveryItem::Receipt(receipt) => {
                self.append_entry(tx, user, &mut feed, FeedEntry::Receipt(receipt))?;
            }
            DeliveryItem::GroupChanged(changed) => {
                self.append_entry(tx, user, &mut feed, FeedEntry::Group(changed))?;
            }
            DeliveryItem::Modified(modified) => {
                self.append_entry(tx, user, &mut feed, FeedEntry::Modified(modified))?;
            }
            DeliveryItem::ReadSync { conversation_id, up_to } => apply_read(tx, user, conversation_id, up_to)?,
            DeliveryItem::DeviceAdded { device_id } => feed.add_device(device_id),
            DeliveryItem::DeviceRemoved { device_id } => {
                let floor_before = feed.floor;
                if let Some(through) = feed.remove_device(device_id) {
                    delete_entries(tx, user, floor_before, through)?;
                }
            }
            DeliveryItem::DeviceAcked { device_id, seq } => {
                let newly = match feed.newly_delivered_range(seq) {
                    Some((from, to)) => tx
                        .scan(&keys::feed_entry(user, from), &keys::feed_entry(user, to.next()), usize::MAX)?
                        .into_iter()
                        .map(|(key, bytes)| {
                            let seq = FeedSeq(u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap_or_default()));
                            parse::<FeedEntry>(&bytes).map(|entry| (seq, entry))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    None => Vec::new(),
                };
                let floor_before = feed.floor;
                let effects = feed.ack(user, device_id, seq, &newly);
                for mark in effects.delivered {
                    let conversation_id = mark.conversation_id;
                    let command = conversation_command_to_wire(&ConversationCommand::Receipt(mark));
                    tx.emit(output(&self.codec, record, COMMANDS_CONVERSATION, conversation_id.0, &command)?);
                }
                if let Some(through) = effects.trim_through {
                    delete_entries(tx, user, floor_before, through)?;
                }
            }
        }
        tx.put_json(header_key, &feed)
    }

    fn after_commit(&mut self) {
        self.hub.publish_offline(std::mem::take(&mut self.offline));
        for (user, (head, entries)) in std::mem::take(&mut self.touched) {
            self.hub.publish(user, FeedUpdate { head, entries: Arc::new(entries) });
        }
    }
}
