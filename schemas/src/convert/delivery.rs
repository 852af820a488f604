//! Deliveries (per recipient, and fanned out), presence, push jobs and
//! media uploads on the wire.

use missive_core::conversation::MessageSent;
use missive_core::delivery::{Delivery, DeliveryItem, Receipt};
use missive_core::media::{MediaKind, MediaUploaded, Purpose};
use missive_core::notifications::PushJob;
use missive_core::presence::PresenceEvent;
use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};

use crate::wire::{self, WireValue};

use super::common::*;
use super::conversation::*;
use super::groups::*;

pub fn delivery_to_wire(delivery: &Delivery) -> WireValue {
    let recipient = long(delivery.recipient.0);
    match &delivery.item {
        DeliveryItem::Message(message) => WireValue::DeliverMessage(wire::DeliverMessage {
            recipient,
            message: message_to_wire(message),
            more_recipients: Vec::new(),
        }),
        DeliveryItem::Receipt(receipt) => WireValue::DeliverReceipt(wire::DeliverReceipt {
            recipient,
            conversation_id: long(receipt.conversation_id.0),
            message_id: long(receipt.message_id.0),
            status: status_to_wire(receipt.status),
            by: long(receipt.by.0),
            at: receipt.at.0,
            count: count_to_wire(receipt.count),
            of: count_to_wire(receipt.of),
            up_to: long(receipt.up_to.0),
        }),
        DeliveryItem::ReadSync { conversation_id, up_to } => WireValue::ReadSync(wire::ReadSync {
            recipient,
            conversation_id: long(conversation_id.0),
            up_to: long(up_to.0),
        }),
        DeliveryItem::DeviceAdded { device_id } => {
            WireValue::DeviceAdded(wire::DeviceAdded { recipient, device_id: long(device_id.0) })
        }
        DeliveryItem::DeviceAcked { device_id, seq } => {
            WireValue::DeviceAcked(wire::DeviceAcked { recipient, device_id: long(device_id.0), seq: long(seq.0) })
        }
        DeliveryItem::DeviceRemoved { device_id } => {
            WireValue::DeviceDropped(wire::DeviceDropped { recipient, device_id: long(device_id.0) })
        }
        DeliveryItem::GroupChanged(changed) => WireValue::DeliverGroupChange(wire::DeliverGroupChange {
            recipient,
            change: group_changed_to_wire(changed),
        }),
        DeliveryItem::Modified(modified) => WireValue::DeliverModification(wire::DeliverModification {
            recipient,
            modified: modified_to_wire(modified),
        }),
    }
}

/// One copy of a message for several recipients (one record per inbox
/// partition); `recipients` is not empty, the first is the record's key.
pub fn message_fanout_to_wire(recipients: &[UserId], message: &MessageSent) -> WireValue {
    WireValue::DeliverMessage(wire::DeliverMessage {
        recipient: recipients.first().map_or(0, |first| long(first.0)),
        message: message_to_wire(message),
        more_recipients: recipients.iter().skip(1).map(|recipient| long(recipient.0)).collect(),
    })
}

/// Every delivery a `deliveries` record stands for: one, or a message's
/// copy for each of its recipients.
pub fn deliveries_from_wire(value: WireValue) -> Result<Vec<Delivery>, ConvertError> {
    let more = match &value {
        WireValue::DeliverMessage(deliver) => deliver
            .more_recipients
            .iter()
            .map(|recipient| id(*recipient, "more_recipients").map(UserId))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let first = Delivery::try_from(value)?;
    let copies: Vec<Delivery> =
        more.into_iter().map(|recipient| Delivery { recipient, item: first.item.clone() }).collect();
    Ok(std::iter::once(first).chain(copies).collect())
}

impl TryFrom<WireValue> for Delivery {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let (recipient, item) = match value {
            WireValue::DeliverMessage(deliver) => {
                (deliver.recipient, DeliveryItem::Message(message_from_wire(deliver.message)?))
            }
            WireValue::DeliverReceipt(receipt) => (
                receipt.recipient,
                DeliveryItem::Receipt(Receipt {
                    conversation_id: ConversationId(id(receipt.conversation_id, "conversation_id")?),
                    message_id: MessageId(id(receipt.message_id, "message_id")?),
                    status: status_from_wire(receipt.status),
                    by: UserId(id(receipt.by, "by")?),
                    at: Millis(receipt.at),
                    count: count_from_wire(receipt.count),
                    of: count_from_wire(receipt.of),
                    up_to: ConvSeq(u64::try_from(receipt.up_to).unwrap_or(0)),
                }),
            ),
            WireValue::ReadSync(sync) => (
                sync.recipient,
                DeliveryItem::ReadSync {
                    conversation_id: ConversationId(id(sync.conversation_id, "conversation_id")?),
                    up_to: ConvSeq(id(sync.up_to, "up_to")?),
                },
            ),
            WireValue::DeviceAdded(added) => {
                (added.recipient, DeliveryItem::DeviceAdded { device_id: DeviceId(id(added.device_id, "device_id")?) })
            }
            WireValue::DeviceAcked(acked) => (
                acked.recipient,
                DeliveryItem::DeviceAcked {
                    device_id: DeviceId(id(acked.device_id, "device_id")?),
                    seq: FeedSeq(id(acked.seq, "seq")?),
                },
            ),
            WireValue::DeliverGroupChange(deliver) => {
                (deliver.recipient, DeliveryItem::GroupChanged(group_changed_from_wire(deliver.change)?))
            }
            WireValue::DeviceDropped(dropped) => (
                dropped.recipient,
                DeliveryItem::DeviceRemoved { device_id: DeviceId(id(dropped.device_id, "device_id")?) },
            ),
            WireValue::DeliverModification(deliver) => {
                (deliver.recipient, DeliveryItem::Modified(modified_from_wire(deliver.modified)?))
            }
            other => return Err(ConvertError::WrongType { expected: "delivery", found: other.record_type() }),
        };
        Ok(Delivery { recipient: UserId(id(recipient, "recipient")?), item })
    }
}

pub fn presence_event_to_wire(event: &PresenceEvent) -> WireValue {
    match event {
        PresenceEvent::Heartbeat { instance, online, at } => WireValue::PresenceHeartbeat(wire::PresenceHeartbeat {
            instance: instance.clone(),
            online: users_to_wire(online),
            at: at.0,
        }),
        PresenceEvent::Changed { instance, user, online, at } => WireValue::PresenceChanged(wire::PresenceChanged {
            instance: instance.clone(),
            user: long(user.0),
            online: *online,
            at: at.0,
        }),
    }
}

impl TryFrom<WireValue> for PresenceEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::PresenceHeartbeat(heartbeat) => Ok(PresenceEvent::Heartbeat {
                instance: heartbeat.instance,
                online: users_from_wire(heartbeat.online, "online")?,
                at: Millis(heartbeat.at),
            }),
            WireValue::PresenceChanged(changed) => Ok(PresenceEvent::Changed {
                instance: changed.instance,
                user: UserId(id(changed.user, "user")?),
                online: changed.online,
                at: Millis(changed.at),
            }),
            other => Err(ConvertError::WrongType { expected: "presence record", found: other.record_type() }),
        }
    }
}

pub fn push_job_to_wire(job: &PushJob) -> WireValue {
    WireValue::PushJob(wire::PushJob {
        user: long(job.user.0),
        conversation_id: long(job.conversation_id.0),
        group: job.group,
        count: count_to_wire(job.count),
        message_ids: job.message_ids.iter().map(|id| long(id.0)).collect(),
        senders: users_to_wire(&job.senders),
        first_at: job.first_at.0,
        at: job.at.0,
    })
}

impl TryFrom<WireValue> for PushJob {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let WireValue::PushJob(job) = value else {
            return Err(ConvertError::WrongType { expected: "push job", found: value.record_type() });
        };
        Ok(PushJob {
            user: UserId(id(job.user, "user")?),
            conversation_id: ConversationId(id(job.conversation_id, "conversation_id")?),
            group: job.group,
            count: count_from_wire(job.count),
            message_ids: job
                .message_ids
                .into_iter()
                .map(|message| id(message, "message_ids").map(MessageId))
                .collect::<Result<_, _>>()?,
            senders: users_from_wire(job.senders, "senders")?,
            first_at: Millis(job.first_at),
            at: Millis(job.at),
        })
    }
}

impl From<&MediaUploaded> for WireValue {
    fn from(uploaded: &MediaUploaded) -> WireValue {
        WireValue::MediaUploaded(wire::MediaUploaded {
            media_id: uploaded.media_id.clone(),
            owner: long(uploaded.owner.0),
            kind: uploaded.kind.as_str().to_string(),
            purpose: uploaded.purpose.as_str().to_string(),
            content_type: uploaded.content_type.clone(),
            size: i64::try_from(uploaded.size).unwrap_or(i64::MAX),
            sha256: uploaded.sha256.clone(),
            key: uploaded.key.clone(),
            at: uploaded.at.0,
        })
    }
}

impl TryFrom<WireValue> for MediaUploaded {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let wire = match value {
            WireValue::MediaUploaded(wire) => wire,
            other => return Err(ConvertError::WrongType { expected: "MediaUploaded", found: other.record_type() }),
        };
        Ok(MediaUploaded {
            media_id: wire.media_id,
            owner: UserId(id(wire.owner, "owner")?),
            kind: MediaKind::parse(&wire.kind).ok_or(ConvertError::AttachmentKind(wire.kind))?,
            purpose: Purpose::parse(&wire.purpose).unwrap_or_default(),
            content_type: wire.content_type,
            size: u64::try_from(wire.size).map_err(|_| ConvertError::NegativeId("size"))?,
            sha256: wire.sha256,
            key: wire.key,
            at: Millis(wire.at),
        })
    }
}
