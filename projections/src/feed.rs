//! The per-user feed: gap-free `seq`, an `epoch`, per-device cumulative acks
//! and a backlog kept until every device acked it (Signal's rule).
//!
//! The fold is split the same way as the deciders: `FeedState` is the small
//! per-user header; entries live beside it in the store. Functions here say
//! what changes; the inbox processor applies it.

use std::collections::BTreeMap;

use missive_core::conversation::{MarkReceipt, MessageSent, ReceiptStatus};
use missive_core::delivery::Receipt;
use missive_core::groups::GroupChanged;
use missive_core::operations::MessageModified;
use missive_core::{ConvSeq, ConversationId, DeviceId, Epoch, FeedSeq, UserId};

/// What a feed entry holds. Typing and presence never become entries.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FeedEntry {
    Message(MessageSent),
    Receipt(Receipt),
    /// A system entry: a group this user is (or was) in changed.
    Group(GroupChanged),
    /// A message was edited, deleted, reacted to (or hidden on this account's devices).
    Modified(MessageModified),
    /// One of the account's devices should upload more one-time keys.
    KeysLow {
        device_id: DeviceId,
        remaining: u32,
    },
    /// An Olm message for one device of the account: shown in full to that
    /// device only; the others see that the seq is taken, not the body.
    ToDevice(missive_core::keys::share::ToDevice),
    /// `user`, in `conversation_id`, has a different set of devices now.
    DevicesChanged {
        conversation_id: ConversationId,
        user: UserId,
    },
}

/// What an ack needs to know of a message entry: who sent it, where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageMark {
    pub from: UserId,
    pub conversation_id: ConversationId,
    pub conv_seq: ConvSeq,
}

impl MessageMark {
    /// The mark of a message entry; other entries have none.
    pub fn of(entry: &FeedEntry) -> Option<MessageMark> {
        match entry {
            FeedEntry::Message(message) => Some(MessageMark {
                from: message.from,
                conversation_id: message.conversation_id,
                conv_seq: message.conv_seq,
            }),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FeedState {
    pub epoch: Epoch,
    /// Last assigned seq; 0 while the feed is empty.
    pub head: FeedSeq,
    /// Entries at or below this seq were acked by every device and removed.
    pub floor: FeedSeq,
    /// Highest seq any device acked: the entries up to here were delivered.
    pub delivered_through: FeedSeq,
    /// Cumulative ack position of each known device.
    pub devices: BTreeMap<DeviceId, FeedSeq>,
}

/// Position a device resumes from, and whether the server can prove continuity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumePlan {
    /// Send every entry with seq greater than this.
    pub send_after: FeedSeq,
    pub recovered: bool,
}

impl FeedState {
    /// A brand-new feed. The epoch comes from the caller (derived from the
    /// input position, so a replay of the same log gives the same epoch).
    pub fn new(epoch: Epoch) -> FeedState {
        FeedState { epoch, ..FeedState::default() }
    }

    /// Appends an entry; returns its seq.
    pub fn append(&mut self) -> FeedSeq {
        self.head = self.head.next();
        self.head
    }

    /// Registers a device. A user's first device starts at the floor: it
    /// gets everything still kept, since messages may reach the feed before
    /// its registration does (different producers, one partition). Later
    /// devices start at the head: history is not replayed to new devices.
    pub fn add_device(&mut self, device: DeviceId) {
        let start = if self.devices.is_empty() { self.floor } else { self.head };
        self.devices.entry(device).or_insert(start);
    }

    /// Forgets a removed device. Returns the new floor when the backlog
    /// kept only for that device can go (the shell deletes those entries).
    pub fn remove_device(&mut self, device: DeviceId) -> Option<FeedSeq> {
        self.devices.remove(&device)?;
        let lowest = self.devices.values().copied().min().unwrap_or(self.head);
        (lowest > self.floor).then(|| {
            self.floor = lowest;
            lowest
        })
    }

    /// The range of entries a new ack by some device newly delivers; the shell
    /// loads those entries for [`FeedState::ack`].
    pub fn newly_delivered_range(&self, seq: FeedSeq) -> Option<(FeedSeq, FeedSeq)> {
        let seq = FeedSeq(seq.0.min(self.head.0));
        (seq > self.delivered_through).then_some((self.delivered_through.next(), seq))
    }

    /// Applies a cumulative ack. `newly_delivered` are the message entries of
    /// [`FeedState::newly_delivered_range`] (others need not be given). Returns the delivered marks to send
    /// to conversations (one per conversation, the highest `conv_seq`) and the
    /// new floor if the backlog shrank.
    pub fn ack(
        &mut self,
        user: UserId,
        device: DeviceId,
        seq: FeedSeq,
        newly_delivered: &[(FeedSeq, MessageMark)],
    ) -> AckEffects {
        let seq = FeedSeq(seq.0.min(self.head.0));
        let position = self.devices.entry(device).or_insert(self.floor);
        *position = (*position).max(seq);
        let mut marks: BTreeMap<ConversationId, ConvSeq> = BTreeMap::new();
        if seq > self.delivered_through {
            for (entry_seq, entry) in newly_delivered {
                if *entry_seq <= self.delivered_through || *entry_seq > seq {
                    continue;
                }
                if entry.from != user {
                    let mark = marks.entry(entry.conversation_id).or_default();
                    *mark = (*mark).max(entry.conv_seq);
                }
            }
            self.delivered_through = seq;
        }
        let lowest = self.devices.values().copied().min().unwrap_or(self.floor);
        let trim_through = (lowest > self.floor).then(|| {
            self.floor = lowest;
            lowest
        });
        let delivered = marks
            .into_iter()
            .map(|(conversation_id, up_to)| MarkReceipt {
                conversation_id,
                by: user,
                status: ReceiptStatus::Delivered,
                up_to,
                notify: true,
            })
            .collect();
        AckEffects { delivered, trim_through }
    }

    /// Where a connecting device starts. `resume` is what the client claims.
    pub fn resume_plan(&self, device: DeviceId, resume: Option<(Epoch, FeedSeq)>) -> ResumePlan {
        let acked = self.devices.get(&device).copied().unwrap_or(self.floor);
        match resume {
            Some((epoch, seq)) if epoch == self.epoch && seq <= self.head => {
                // Entries above max(seq, acked) exist because the floor never
                // passes this device's own ack.
                ResumePlan { send_after: seq.max(acked), recovered: self.devices.contains_key(&device) }
            }
            _ => ResumePlan { send_after: acked, recovered: false },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AckEffects {
    pub delivered: Vec<MarkReceipt>,
    pub trim_through: Option<FeedSeq>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::{MessageId, Millis};

    const ME: UserId = UserId(1);
    const PEER: UserId = UserId(2);

    fn message(from: UserId, conv_seq: u64) -> FeedEntry {
        FeedEntry::Message(MessageSent {
            conversation_id: ConversationId::direct(ME, PEER),
            conv_seq: ConvSeq(conv_seq),
            message_id: MessageId(conv_seq),
            from,
            from_device: DeviceId(0),
            members: vec![ME, PEER],
            client_msg_id: format!("{conv_seq}"),
            content: String::new(),
            reply_to: None,
            sent_at: Millis(0),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
            session_id: None,
        })
    }

    fn message_marks(entries: &[(FeedSeq, FeedEntry)]) -> Vec<(FeedSeq, MessageMark)> {
        entries.iter().filter_map(|(seq, entry)| MessageMark::of(entry).map(|mark| (*seq, mark))).collect()
    }

    #[test]
    fn backlog_stays_until_every_device_acked_and_delivery_counts_the_first_ack() {
        let mut feed = FeedState::new(Epoch(7));
        feed.add_device(DeviceId(1));
        feed.add_device(DeviceId(2));
        let entries: Vec<(FeedSeq, FeedEntry)> =
            (1..=3).map(|conv_seq| (feed.append(), message(if conv_seq == 2 { ME } else { PEER }, conv_seq))).collect();
        assert_eq!(feed.newly_delivered_range(FeedSeq(3)), Some((FeedSeq(1), FeedSeq(3))));
        let effects = feed.ack(ME, DeviceId(1), FeedSeq(3), &message_marks(&entries));
        assert_eq!(effects.delivered.len(), 1);
        assert_eq!(effects.delivered[0].up_to, ConvSeq(3));
        assert_eq!(effects.trim_through, None, "device 2 has not acked");
        let effects = feed.ack(ME, DeviceId(2), FeedSeq(2), &[]);
        assert!(effects.delivered.is_empty(), "already delivered by device 1");
        assert_eq!(effects.trim_through, Some(FeedSeq(2)));
        assert_eq!(
            feed.resume_plan(DeviceId(2), Some((Epoch(7), FeedSeq(1)))),
            ResumePlan { send_after: FeedSeq(2), recovered: true }
        );
    }

    #[test]
    fn removing_a_lagging_device_drops_the_backlog_kept_for_it() {
        let mut feed = FeedState::new(Epoch(7));
        feed.add_device(DeviceId(1));
        feed.add_device(DeviceId(2));
        let entries: Vec<(FeedSeq, FeedEntry)> = (1..=3).map(|seq| (feed.append(), message(PEER, seq))).collect();
        feed.ack(ME, DeviceId(1), FeedSeq(3), &message_marks(&entries));
        assert_eq!(feed.floor, FeedSeq(0), "device 2 holds the backlog");
        assert_eq!(feed.remove_device(DeviceId(2)), Some(FeedSeq(3)));
        assert_eq!(feed.floor, FeedSeq(3));
        assert_eq!(feed.remove_device(DeviceId(2)), None, "a repeat changes nothing");
    }

    #[test]
    fn wrong_epoch_or_future_position_is_not_recovered() {
        let mut feed = FeedState::new(Epoch(7));
        feed.add_device(DeviceId(1));
        feed.append();
        let plan = feed.resume_plan(DeviceId(1), Some((Epoch(8), FeedSeq(1))));
        assert_eq!(plan, ResumePlan { send_after: FeedSeq(0), recovered: false });
        let plan = feed.resume_plan(DeviceId(1), Some((Epoch(7), FeedSeq(5))));
        assert!(!plan.recovered);
        assert!(!feed.resume_plan(DeviceId(1), None).recovered);
    }

    #[test]
    fn acks_beyond_the_head_are_clamped() {
        let mut feed = FeedState::new(Epoch(1));
        feed.add_device(DeviceId(1));
        feed.append();
        let effects = feed.ack(ME, DeviceId(1), FeedSeq(99), &[]);
        assert_eq!(effects.trim_through, Some(FeedSeq(1)));
        assert_eq!(feed.devices[&DeviceId(1)], FeedSeq(1));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Append { from_peer: bool },
            AddDevice(u64),
            Ack { device: u64, seq: u64 },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => any::<bool>().prop_map(|from_peer| Op::Append { from_peer }),
                1 => (1u64..4).prop_map(Op::AddDevice),
                2 => ((1u64..4), 0u64..50).prop_map(|(device, seq)| Op::Ack { device, seq }),
            ]
        }

        /// Folds the ops, keeping entries like the store does, with a JSON
        /// round trip of the header every `chunk` ops.
        fn fold(ops: &[Op], chunk: usize) -> (FeedState, Vec<MarkReceipt>, Vec<FeedSeq>) {
            let mut feed = FeedState::new(Epoch(1));
            let mut entries: Vec<(FeedSeq, FeedEntry)> = Vec::new();
            let mut marks = Vec::new();
            for (index, op) in ops.iter().enumerate() {
                if index % chunk == 0 {
                    feed = serde_json::from_str(&serde_json::to_string(&feed).expect("ser")).expect("de");
                }
                match op {
                    Op::Append { from_peer } => {
                        let seq = feed.append();
                        entries.push((seq, message(if *from_peer { PEER } else { ME }, seq.0)));
                    }
                    Op::AddDevice(device) => feed.add_device(DeviceId(*device)),
                    Op::Ack { device, seq } => {
                        let newly: Vec<(FeedSeq, FeedEntry)> = match feed.newly_delivered_range(FeedSeq(*seq)) {
                            Some((from, to)) => {
                                entries.iter().filter(|(s, _)| *s >= from && *s <= to).cloned().collect()
                            }
                            None => Vec::new(),
                        };
                        let newly = message_marks(&newly);
                        let effects = feed.ack(ME, DeviceId(*device), FeedSeq(*seq), &newly);
                        marks.extend(effects.delivered);
                        if let Some(through) = effects.trim_through {
                            entries.retain(|(s, _)| *s > through);
                        }
                    }
                }
            }
            (feed, marks, entries.into_iter().map(|(seq, _)| seq).collect())
        }

        proptest! {
            #[test]
            fn chunking_does_not_matter_and_the_backlog_keeps_what_some_device_lacks(
                ops in proptest::collection::vec(op(), 1..80),
                chunk in 1usize..10,
            ) {
                let whole = fold(&ops, usize::MAX);
                let chunked = fold(&ops, chunk);
                prop_assert_eq!(&whole, &chunked);
                let (feed, marks, kept) = whole;
                let lowest = feed.devices.values().copied().min().unwrap_or(feed.floor);
                let expected: Vec<FeedSeq> = (feed.floor.0 + 1..=feed.head.0).map(FeedSeq).collect();
                prop_assert_eq!(kept, expected, "exactly the entries above the floor are kept");
                prop_assert!(feed.floor <= lowest, "no device loses an unacked entry");
                let mut seen = std::collections::BTreeSet::new();
                for mark in &marks {
                    prop_assert!(seen.insert(mark.up_to), "each message is reported delivered once");
                }
            }
        }
    }
}
