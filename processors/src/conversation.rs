//! The conversation processor: the shell around `missive_core::conversation`.
//! Input `commands.conversation`; outputs `events.conversation`, the
//! `deliveries` fan-out and command replies.

use std::collections::BTreeMap;
use std::sync::Arc;

use missive_core::conversation::{
    self, ConversationCommand, ConversationEvent, ConversationState, MessageSent, PriorSend, SendOutcome,
    StoredMessage, Watermarks,
};
use missive_core::delivery::{message_copies, route_conversation_event};
use missive_core::operations::{self, OperationWindows};
use missive_core::{ConvSeq, ConversationId, Millis, UserId};
use missive_infra::Record;
use missive_schemas::convert::message_fanout_to_wire;
use missive_schemas::{Codec, Outcome, WireValue};

use crate::common::{Replier, decode, output};
use crate::keys;
use crate::runtime::{HandleError, Handler};
use crate::topics::{DELIVERIES, EVENTS_CONVERSATION, deliveries_partition};
use crate::tx::{StateCache, Tx};

pub const PROCESSOR: &str = "conversation";

pub struct ConversationHandler {
    pub codec: Arc<Codec>,
    pub windows: OperationWindows,
    pub replies: Replier,
    /// Conversation states, members' watermarks and message index entries,
    /// kept parsed across batches.
    states: StateCache<ConversationId, ConversationState>,
    marks: StateCache<(ConversationId, UserId), Watermarks>,
    messages: StateCache<(ConversationId, ConvSeq), StoredMessage>,
}

impl ConversationHandler {
    pub fn new(codec: Arc<Codec>, windows: OperationWindows, replies: Replier) -> ConversationHandler {
        ConversationHandler {
            codec,
            windows,
            replies,
            states: StateCache::default(),
            marks: StateCache::default(),
            messages: StateCache::default(),
        }
    }

    /// The index entry of a message, if it is stored.
    fn message(
        &mut self,
        tx: &Tx<'_>,
        conversation_id: ConversationId,
        seq: ConvSeq,
    ) -> Result<Option<StoredMessage>, HandleError> {
        let key = || keys::conversation_message(conversation_id, seq);
        Ok(self.messages.get(tx, (conversation_id, seq), key)?.cloned())
    }

    fn set_message(&mut self, conversation_id: ConversationId, stored: StoredMessage) {
        let seq = stored.conv_seq;
        self.messages.set((conversation_id, seq), || keys::conversation_message(conversation_id, seq), stored);
    }

    fn emit_events(&self, tx: &mut Tx<'_>, cause: &Record, events: &[ConversationEvent]) -> Result<(), HandleError> {
        for event in events {
            let conversation_id = event.conversation_id();
            let record = output(&self.codec, cause, EVENTS_CONVERSATION, conversation_id.0, &WireValue::from(event))?;
            tx.emit(record);
            if let ConversationEvent::MessageSent(message) = event {
                self.emit_message_fanout(tx, cause, message)?;
                continue;
            }
            for delivery in route_conversation_event(event) {
                let record = output(&self.codec, cause, DELIVERIES, delivery.recipient.0, &WireValue::from(&delivery))?;
                tx.emit(record);
            }
        }
        Ok(())
    }

    /// A message's copies. A group's: one `DeliverMessage` per inbox
    /// partition its recipients live on, naming them all (a 256-member
    /// group's message is at most 8 records, not 256); every recipient gets
    /// the same copy. A 1:1 message keeps one record per recipient, keyed
    /// by it, so a replay by key finds every message of a user's chats.
    fn emit_message_fanout(&self, tx: &mut Tx<'_>, cause: &Record, message: &MessageSent) -> Result<(), HandleError> {
        let (copy, recipients) = message_copies(message);
        let records: Vec<Vec<UserId>> = if message.is_group() {
            let mut by_partition: BTreeMap<u32, Vec<UserId>> = BTreeMap::new();
            for recipient in recipients {
                by_partition.entry(deliveries_partition(recipient)).or_default().push(recipient);
            }
            by_partition.into_values().collect()
        } else {
            recipients.into_iter().map(|recipient| vec![recipient]).collect()
        };
        for recipients in &records {
            let value = message_fanout_to_wire(recipients, &copy);
            tx.emit(output(&self.codec, cause, DELIVERIES, recipients[0].0, &value)?);
        }
        Ok(())
    }
}

/// Receipt ranges shorter than this are read key by key.
const POINT_READS_MAX: u64 = 16;

/// Every this many input offsets, expired dedupe records are purged.
const PURGE_EVERY: u64 = 64;
/// Most dedupe records purged at once.
const PURGE_BATCH: usize = 512;

/// Drops dedupe records older than the window. Deterministic: driven by
/// input offsets and record time, so a replay purges the same records.
fn purge_expired_dedupe(tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
    if !record.offset.0.is_multiple_of(PURGE_EVERY) {
        return Ok(());
    }
    let cutoff = Millis(tx.timestamp - conversation::DEDUPE_WINDOW_MS);
    let (start, end) = keys::dedupe_expiry_range(record.partition, cutoff);
    for (expiry_key, dedupe_key) in tx.scan(&start, &end, PURGE_BATCH)? {
        tx.delete(expiry_key);
        // A client id reused after the window has a newer record: keep it.
        if tx.get_value::<PriorSend>(&dedupe_key)?.is_some_and(|prior| prior.at < cutoff) {
            tx.delete(dedupe_key);
        }
    }
    Ok(())
}

impl Handler for ConversationHandler {
    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), HandleError> {
        self.states.write_back(tx)?;
        self.marks.write_back(tx)?;
        self.messages.write_back(tx)
    }

    fn after_commit(&mut self) {
        self.replies.deliver();
    }

    fn handle(&mut self, tx: &mut Tx<'_>, record: &Record) -> Result<(), HandleError> {
        purge_expired_dedupe(tx, record)?;
        let command = ConversationCommand::try_from(decode(&self.codec, record)?)
            .map_err(|error| HandleError::Poison(error.to_string()))?;
        let conversation_id = command.conversation_id();
        let state_key = || keys::conversation(conversation_id);
        let mut state: ConversationState =
            self.states.get(tx, conversation_id, state_key)?.cloned().unwrap_or_default();
        let now = Millis(tx.timestamp);
        // Index entries of the messages a receipt or an operation concerns.
        let mut covered: Vec<StoredMessage> = Vec::new();
        // The marking member's watermarks (receipts only).
        let mut marks = Watermarks::default();
        let decided = match &command {
            ConversationCommand::Send(send) => {
                let dedupe_key = keys::conversation_dedupe(conversation_id, send.from_device, &send.client_msg_id);
                let prior: Option<PriorSend> = tx.get_value(&dedupe_key)?;
                match conversation::decide_send(&state, send, prior, now) {
                    Ok((outcome, events)) => {
                        if let SendOutcome::Accepted { message_id, conv_seq } = outcome {
                            tx.put(keys::dedupe_expiry(record.partition, now, &dedupe_key), dedupe_key.clone());
                            tx.put_value(dedupe_key, &PriorSend { message_id, conv_seq, at: now })?;
                        }
                        Ok((Some(outcome), events))
                    }
                    Err(rejection) => Err(rejection),
                }
            }
            ConversationCommand::Receipt(mark) => {
                let stored = self
                    .marks
                    .get(tx, (conversation_id, mark.by), || keys::conversation_marks(conversation_id, mark.by))?;
                marks = conversation::member_marks(&state, mark.by, stored.copied());
                covered = match conversation::receipt_range(&state, marks, mark) {
                    // A receipt usually covers a message or a few: point
                    // lookups cost less than an iterator over the store.
                    Some((from, to)) if to.0 - from.0 < POINT_READS_MAX => {
                        let mut found = Vec::with_capacity((to.0 - from.0 + 1) as usize);
                        for seq in from.0..=to.0 {
                            if let Some(stored) = self.message(tx, conversation_id, ConvSeq(seq))? {
                                found.push(stored);
                            }
                        }
                        found
                    }
                    Some((from, to)) => {
                        // The scan reads the batch: cached changes go into it first.
                        self.messages.flush(tx)?;
                        let start = keys::conversation_message(conversation_id, from);
                        let end = keys::conversation_message(conversation_id, ConvSeq(to.0 + 1));
                        let entries = tx.scan(&start, &end, (to.0 - from.0 + 1) as usize)?;
                        entries
                            .into_iter()
                            .map(|(_, bytes)| crate::state_value::decode::<StoredMessage>(&bytes))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|error| HandleError::Storage(format!("corrupt message index: {error}")))?
                    }
                    None => Vec::new(),
                };
                conversation::decide_receipt(&state, marks, mark, &covered, now).map(|events| (None, events))
            }
            ConversationCommand::Modify(modify) => {
                let target = self.message(tx, conversation_id, modify.target_seq)?;
                operations::decide_modify(&state, modify, target.as_ref(), self.windows, now).map(|events| {
                    covered = target.into_iter().collect();
                    (None, events)
                })
            }
            ConversationCommand::Group(group) => {
                missive_core::groups::decide_group(&state, group, now).map(|events| (None, events))
            }
            ConversationCommand::AnnounceDevices(announce) => {
                for delivery in conversation::announce_devices(&state, announce) {
                    tx.emit(output(
                        &self.codec,
                        record,
                        DELIVERIES,
                        delivery.recipient.0,
                        &WireValue::from(&delivery),
                    )?);
                }
                Ok((None, Vec::new()))
            }
            ConversationCommand::Block(block) => match conversation::decide_block(&state, block) {
                Ok(changed) => {
                    if let Some(next) = changed {
                        state = next;
                        self.states.set(conversation_id, state_key, state.clone());
                    }
                    Ok((None, Vec::new()))
                }
                Err(rejection) => Err(rejection),
            },
        };
        match decided {
            Ok((outcome, events)) => {
                for event in &events {
                    match event {
                        ConversationEvent::MessageSent(message) => {
                            self.set_message(conversation_id, StoredMessage::of(message));
                        }
                        ConversationEvent::ReceiptsAdvanced(advanced) => {
                            marks = conversation::evolve_marks(marks, advanced);
                            let by = advanced.by;
                            self.marks.set(
                                (conversation_id, by),
                                || keys::conversation_marks(conversation_id, by),
                                marks,
                            );
                            for reference in &advanced.messages {
                                if let Some(stored) =
                                    covered.iter_mut().find(|stored| stored.conv_seq == reference.conv_seq)
                                    && stored.record(advanced.status, reference.count)
                                {
                                    // Only entries whose counts changed (see `StoredMessage::record`).
                                    self.set_message(conversation_id, stored.clone());
                                }
                            }
                        }
                        ConversationEvent::MessageModified(modified) => {
                            covered = std::mem::take(&mut covered)
                                .into_iter()
                                .map(|stored| operations::evolve_stored(stored, modified))
                                .collect();
                        }
                        ConversationEvent::GroupChanged(_) => {}
                    }
                    state = conversation::evolve(state, event);
                }
                // Operations change the index entries they touched (receipts
                // wrote theirs above).
                if !events.is_empty() && !matches!(command, ConversationCommand::Receipt(_)) {
                    for stored in std::mem::take(&mut covered) {
                        self.set_message(conversation_id, stored);
                    }
                }
                let last_seq = state.last_seq;
                // Receipts leave the state as it was: only their small records change.
                if events.iter().any(|event| !matches!(event, ConversationEvent::ReceiptsAdvanced(_))) {
                    self.states.set(conversation_id, state_key, state);
                }
                self.emit_events(tx, record, &events)?;
                if let Some(outcome) = outcome {
                    let (name, message_id, conv_seq) = match outcome {
                        SendOutcome::Accepted { message_id, conv_seq } => (Outcome::Accepted, message_id, conv_seq),
                        SendOutcome::Duplicate { message_id, conv_seq } => (Outcome::Duplicate, message_id, conv_seq),
                    };
                    self.replies.answer(tx, record, |reply| {
                        reply.set_outcome(name);
                        reply.conversation_id = Some(conversation_id);
                        reply.message_id = Some(message_id);
                        reply.conv_seq = Some(conv_seq);
                    })?;
                } else {
                    self.replies.answer(tx, record, |reply| {
                        reply.set_outcome(if events.is_empty() { Outcome::Duplicate } else { Outcome::Accepted });
                        reply.conversation_id = Some(conversation_id);
                        // Where the conversation's log stands after the command:
                        // callers wait for read models to reach it.
                        reply.conv_seq = Some(last_seq);
                    })?;
                }
            }
            Err(rejection) => {
                self.replies.answer(tx, record, |reply| {
                    reply.set_outcome(Outcome::from(&rejection));
                    reply.detail = rejection.to_string();
                    reply.conversation_id = Some(conversation_id);
                })?;
            }
        }
        Ok(())
    }
}
