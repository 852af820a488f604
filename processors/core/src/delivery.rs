//! Fan-out: which user's inbox hears about which event. Pure routing from
//! conversation and user events to per-recipient delivery items; the inbox
//! projection folds those into feeds.

use crate::conversation::{ConversationEvent, MessageRef, MessageSent, ReceiptStatus};
use crate::groups::GroupChanged;
use crate::ids::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};
use crate::operations::MessageModified;
use crate::users::UserEvent;

/// A delivered/read tick for a sender, as a watermark: `by` has reached
/// `status` for every message of the sender's in the conversation up to
/// `up_to`. It names the newest of them (`message_id`, at `up_to`) and how
/// many of that message's recipients have reached `status` now (`count` of
/// `of`; older messages have at least as many).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub status: ReceiptStatus,
    pub by: UserId,
    pub at: Millis,
    /// How many of the message's recipients have reached `status` now, of how many.
    pub count: u32,
    pub of: u32,
    /// The receipt covers the sender's messages up to this `conv_seq`.
    #[serde(default)]
    pub up_to: ConvSeq,
}

/// One thing for one user's inbox, in the order the inbox must fold it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeliveryItem {
    /// A message for every device of a member (the sender's included).
    Message(MessageSent),
    /// A delivered/read tick for the sender of a message.
    Receipt(Receipt),
    /// The user read a conversation up to here (on some device): unread counts drop.
    ReadSync { conversation_id: ConversationId, up_to: ConvSeq },
    /// A device joined the account; its feed position starts at the head.
    DeviceAdded { device_id: DeviceId },
    /// A device acknowledged its feed cumulatively up to `seq`.
    DeviceAcked { device_id: DeviceId, seq: FeedSeq },
    /// A device was removed: its position goes, and with it the backlog kept for it.
    DeviceRemoved { device_id: DeviceId },
    /// A group changed (a system entry in the feed).
    GroupChanged(GroupChanged),
    /// A message was edited, deleted, reacted to or hidden.
    Modified(MessageModified),
    /// One of the user's devices is running out of one-time keys: it
    /// should upload more (`remaining` are left).
    KeysLow { device_id: DeviceId, remaining: u32 },
    /// An Olm message for one of the user's devices (a session key); only
    /// that device is shown it.
    ToDevice(crate::keys::share::ToDevice),
    /// `user`, who shares `conversation_id` with the recipient, has a
    /// different set of devices now.
    DevicesChanged { conversation_id: ConversationId, user: UserId },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub recipient: UserId,
    pub item: DeliveryItem,
}

pub fn route_conversation_event(event: &ConversationEvent) -> Vec<Delivery> {
    match event {
        ConversationEvent::MessageSent(message) => {
            let (copy, recipients) = message_copies(message);
            recipients
                .into_iter()
                .map(|recipient| Delivery { recipient, item: DeliveryItem::Message(copy.clone()) })
                .collect()
        }
        ConversationEvent::GroupChanged(changed) => route_group_change(changed),
        ConversationEvent::MessageModified(modified) => modified
            .audience
            .iter()
            .map(|member| Delivery { recipient: *member, item: DeliveryItem::Modified(modified.clone()) })
            .collect(),
        ConversationEvent::ReceiptsAdvanced(advanced) => {
            // One receipt per sender, for the newest of its messages the
            // advance covers: a watermark, not an entry per message. In a
            // group only the milestones reach the sender's feed: the first
            // recipient and the last one reaching the status (a 256-member
            // group's message would otherwise bring its sender 255 entries
            // per status); the counts in between are in the message's info.
            let mut newest: Vec<&MessageRef> = Vec::new();
            for message in
                advanced.messages.iter().filter(|message| message.from != advanced.by && is_milestone(message))
            {
                match newest.iter_mut().find(|kept| kept.from == message.from) {
                    Some(kept) if kept.conv_seq < message.conv_seq => *kept = message,
                    Some(_) => {}
                    None => newest.push(message),
                }
            }
            let mut deliveries: Vec<Delivery> = newest
                .into_iter()
                .map(|message| Delivery {
                    recipient: message.from,
                    item: DeliveryItem::Receipt(Receipt {
                        conversation_id: advanced.conversation_id,
                        message_id: message.message_id,
                        status: advanced.status,
                        by: advanced.by,
                        at: advanced.at,
                        count: message.count,
                        of: message.of,
                        up_to: message.conv_seq,
                    }),
                })
                .collect();
            if advanced.status == ReceiptStatus::Read {
                deliveries.push(Delivery {
                    recipient: advanced.by,
                    item: DeliveryItem::ReadSync { conversation_id: advanced.conversation_id, up_to: advanced.up_to },
                });
            }
            deliveries
        }
    }
}

/// Who gets a message (every member it is not withheld from, the sender
/// included for its other devices) and the copy each of them gets.
pub fn message_copies(message: &MessageSent) -> (MessageSent, Vec<UserId>) {
    // A group's member list stays in its log: each member's copy would
    // otherwise carry it (256 copies of 256 ids per message).
    let mut copy = message.clone();
    if message.is_group() {
        copy.members.clear();
    }
    let recipients = message.members.iter().filter(|member| !message.withheld_from.contains(member)).copied().collect();
    (copy, recipients)
}

/// Whether a receipt count is one the sender is told of: the first
/// recipient or the last (every one in a 1:1 chat).
fn is_milestone(message: &MessageRef) -> bool {
    message.count == 1 || message.count >= message.of
}

fn route_group_change(changed: &GroupChanged) -> Vec<Delivery> {
    changed
        .audience()
        .into_iter()
        .map(|recipient| Delivery { recipient, item: DeliveryItem::GroupChanged(changed.clone()) })
        .collect()
}

pub fn route_user_event(event: &UserEvent) -> Vec<Delivery> {
    match event {
        UserEvent::DeviceRegistered(registered) => vec![Delivery {
            recipient: registered.user_id,
            item: DeliveryItem::DeviceAdded { device_id: registered.device_id },
        }],
        UserEvent::DeviceRemoved { user_id, device_id, .. } => {
            vec![Delivery { recipient: *user_id, item: DeliveryItem::DeviceRemoved { device_id: *device_id } }]
        }
        UserEvent::KeyClaimed(claimed) if crate::keys::notice_due(claimed) => vec![Delivery {
            recipient: claimed.user_id,
            item: DeliveryItem::KeysLow { device_id: claimed.device_id, remaining: claimed.remaining },
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{MessageRef, ReceiptsAdvanced};

    #[test]
    fn a_message_reaches_every_member_and_a_read_tells_each_sender() {
        let (alice, bob) = (UserId(1), UserId(2));
        let conversation_id = ConversationId::direct(alice, bob);
        let message = MessageSent {
            conversation_id,
            conv_seq: ConvSeq(1),
            message_id: MessageId(9),
            from: alice,
            from_device: DeviceId(1),
            members: vec![alice, bob],
            client_msg_id: "c".into(),
            content: "hi".into(),
            reply_to: None,
            sent_at: Millis(1),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
            session_id: None,
        };
        let recipients: Vec<UserId> = route_conversation_event(&ConversationEvent::MessageSent(message))
            .into_iter()
            .map(|delivery| delivery.recipient)
            .collect();
        assert_eq!(recipients, vec![alice, bob]);

        let read = ReceiptsAdvanced {
            conversation_id,
            by: bob,
            status: ReceiptStatus::Read,
            up_to: ConvSeq(2),
            at: Millis(5),
            messages: vec![MessageRef { message_id: MessageId(9), conv_seq: ConvSeq(1), from: alice, count: 1, of: 1 }],
        };
        let deliveries = route_conversation_event(&ConversationEvent::ReceiptsAdvanced(read));
        assert_eq!(deliveries.len(), 2);
        assert_eq!(deliveries[0].recipient, alice);
        assert!(matches!(deliveries[0].item, DeliveryItem::Receipt(Receipt { status: ReceiptStatus::Read, .. })));
        assert_eq!(deliveries[1].recipient, bob);
        assert!(matches!(deliveries[1].item, DeliveryItem::ReadSync { up_to: ConvSeq(2), .. }));
    }

    #[test]
    fn an_advance_over_many_messages_gives_each_sender_one_watermark_receipt() {
        let (alice, bob, carol) = (UserId(1), UserId(2), UserId(3));
        let conversation_id = ConversationId(77);
        let reference = |seq: u64, from: UserId, count: u32| MessageRef {
            message_id: MessageId(100 + seq),
            conv_seq: ConvSeq(seq),
            from,
            count,
            of: 2,
        };
        let delivered = ReceiptsAdvanced {
            conversation_id,
            by: carol,
            status: ReceiptStatus::Delivered,
            up_to: ConvSeq(6),
            at: Millis(5),
            messages: vec![
                reference(1, alice, 2),
                reference(2, bob, 2),
                reference(3, alice, 2),
                reference(4, alice, 1),
                reference(5, bob, 1),
                reference(6, carol, 0),
            ],
        };
        let receipts: Vec<(UserId, MessageId, ConvSeq, u32)> =
            route_conversation_event(&ConversationEvent::ReceiptsAdvanced(delivered))
                .into_iter()
                .map(|delivery| match delivery.item {
                    DeliveryItem::Receipt(receipt) => {
                        (delivery.recipient, receipt.message_id, receipt.up_to, receipt.count)
                    }
                    other => panic!("only receipts for a delivered advance: {other:?}"),
                })
                .collect();
        assert_eq!(
            receipts,
            vec![(alice, MessageId(104), ConvSeq(4), 1), (bob, MessageId(105), ConvSeq(5), 1)],
            "one receipt per sender, naming its newest covered message; none to the reader itself"
        );
    }

    #[test]
    fn a_group_sender_hears_of_the_first_and_the_last_recipient_only() {
        let (alice, conversation_id) = (UserId(1), ConversationId(78));
        let advance = |by: u64, count: u32| ReceiptsAdvanced {
            conversation_id,
            by: UserId(by),
            status: ReceiptStatus::Delivered,
            up_to: ConvSeq(1),
            at: Millis(5),
            messages: vec![MessageRef { message_id: MessageId(9), conv_seq: ConvSeq(1), from: alice, count, of: 255 }],
        };
        let told: Vec<u32> = (1..=255)
            .flat_map(|count| {
                route_conversation_event(&ConversationEvent::ReceiptsAdvanced(advance(count as u64 + 1, count)))
            })
            .map(|delivery| match delivery.item {
                DeliveryItem::Receipt(receipt) => receipt.count,
                other => panic!("only receipts: {other:?}"),
            })
            .collect();
        assert_eq!(told, vec![1, 255], "255 members' acks, two entries in the sender's feed");

        // An advance over several messages names the newest milestone: here
        // messages 1-2 reached everyone, message 3 only some.
        let mut several = advance(7, 0);
        several.messages = (1..=3)
            .map(|seq| MessageRef {
                message_id: MessageId(10 + seq),
                conv_seq: ConvSeq(seq),
                from: alice,
                count: if seq < 3 { 255 } else { 40 },
                of: 255,
            })
            .collect();
        let deliveries = route_conversation_event(&ConversationEvent::ReceiptsAdvanced(several));
        let [Delivery { item: DeliveryItem::Receipt(receipt), .. }] = deliveries.as_slice() else {
            panic!("one receipt: {deliveries:?}")
        };
        assert_eq!((receipt.up_to, receipt.count), (ConvSeq(2), 255));
    }
}
