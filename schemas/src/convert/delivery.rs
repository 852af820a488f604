//! Deliveries (per recipient, and fanned out), presence, push jobs and
//! media uploads on the wire.

use missive_core::UserId;
use missive_core::conversation::MessageSent;
use missive_core::delivery::{Delivery, DeliveryItem, Receipt};
use missive_core::media::{MediaKind, MediaUploaded, Purpose};
use missive_core::notifications::PushJob;
use missive_core::presence::PresenceEvent;

use crate::wire::{self, WireValue};

use super::common::*;

impl From<wire::DeliverReceipt> for Receipt {
    fn from(receipt: wire::DeliverReceipt) -> Receipt {
        Receipt {
            conversation_id: receipt.conversation_id,
            message_id: receipt.message_id,
            status: receipt.status.into(),
            by: receipt.by,
            at: receipt.at,
            count: count_from_wire(receipt.count),
            of: count_from_wire(receipt.of),
            up_to: receipt.up_to,
        }
    }
}

impl From<&Delivery> for WireValue {
    fn from(delivery: &Delivery) -> WireValue {
        let recipient = delivery.recipient;
        match &delivery.item {
            DeliveryItem::Message(message) => WireValue::DeliverMessage(wire::DeliverMessage {
                recipient,
                message: message.into(),
                more_recipients: Vec::new(),
            }),
            DeliveryItem::Receipt(receipt) => WireValue::DeliverReceipt(wire::DeliverReceipt {
                recipient,
                conversation_id: receipt.conversation_id,
                message_id: receipt.message_id,
                status: receipt.status.into(),
                by: receipt.by,
                at: receipt.at,
                count: count_to_wire(receipt.count),
                of: count_to_wire(receipt.of),
                up_to: receipt.up_to,
            }),
            DeliveryItem::ReadSync { conversation_id, up_to } => {
                WireValue::ReadSync(wire::ReadSync { recipient, conversation_id: *conversation_id, up_to: *up_to })
            }
            DeliveryItem::DeviceAdded { device_id } => {
                WireValue::DeviceAdded(wire::DeviceAdded { recipient, device_id: *device_id })
            }
            DeliveryItem::DeviceAcked { device_id, seq } => {
                WireValue::DeviceAcked(wire::DeviceAcked { recipient, device_id: *device_id, seq: *seq })
            }
            DeliveryItem::DeviceRemoved { device_id } => {
                WireValue::DeviceDropped(wire::DeviceDropped { recipient, device_id: *device_id })
            }
            DeliveryItem::GroupChanged(changed) => {
                WireValue::DeliverGroupChange(wire::DeliverGroupChange { recipient, change: changed.into() })
            }
            DeliveryItem::Modified(modified) => {
                WireValue::DeliverModification(wire::DeliverModification { recipient, modified: modified.into() })
            }
            DeliveryItem::KeysLow { device_id, remaining } => WireValue::DeliverKeysLow(wire::DeliverKeysLow {
                recipient,
                device_id: *device_id,
                remaining: count_to_wire(*remaining),
            }),
            DeliveryItem::DevicesChanged { conversation_id, user } => {
                WireValue::DeliverDevicesChanged(wire::DeliverDevicesChanged {
                    recipient,
                    conversation_id: *conversation_id,
                    user: *user,
                })
            }
            DeliveryItem::ToDevice(entry) => {
                WireValue::DeliverToDevice(super::keys::to_device_to_wire(recipient, entry))
            }
        }
    }
}

/// One copy of a message for several recipients (one record per inbox
/// partition); `recipients` is not empty, the first is the record's key.
pub fn message_fanout_to_wire(recipients: &[UserId], message: &MessageSent) -> WireValue {
    WireValue::DeliverMessage(wire::DeliverMessage {
        recipient: recipients.first().copied().unwrap_or_default(),
        message: message.into(),
        more_recipients: recipients.iter().skip(1).copied().collect(),
    })
}

/// Every delivery a `deliveries` record stands for: one, or a message's
/// copy for each of its recipients.
pub fn deliveries_from_wire(value: WireValue) -> Result<Vec<Delivery>, ConvertError> {
    let more = match &value {
        WireValue::DeliverMessage(deliver) => deliver.more_recipients.clone(),
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
                (deliver.recipient, DeliveryItem::Message(deliver.message.try_into()?))
            }
            WireValue::DeliverReceipt(receipt) => (receipt.recipient, DeliveryItem::Receipt(receipt.into())),
            WireValue::ReadSync(sync) => {
                (sync.recipient, DeliveryItem::ReadSync { conversation_id: sync.conversation_id, up_to: sync.up_to })
            }
            WireValue::DeviceAdded(added) => {
                (added.recipient, DeliveryItem::DeviceAdded { device_id: added.device_id })
            }
            WireValue::DeviceAcked(acked) => {
                (acked.recipient, DeliveryItem::DeviceAcked { device_id: acked.device_id, seq: acked.seq })
            }
            WireValue::DeliverGroupChange(deliver) => {
                (deliver.recipient, DeliveryItem::GroupChanged(deliver.change.try_into()?))
            }
            WireValue::DeviceDropped(dropped) => {
                (dropped.recipient, DeliveryItem::DeviceRemoved { device_id: dropped.device_id })
            }
            WireValue::DeliverModification(deliver) => {
                (deliver.recipient, DeliveryItem::Modified(deliver.modified.into()))
            }
            WireValue::DeliverKeysLow(low) => (
                low.recipient,
                DeliveryItem::KeysLow { device_id: low.device_id, remaining: count_from_wire(low.remaining) },
            ),
            WireValue::DeliverDevicesChanged(changed) => (
                changed.recipient,
                DeliveryItem::DevicesChanged { conversation_id: changed.conversation_id, user: changed.user },
            ),
            WireValue::DeliverToDevice(deliver) => {
                let (recipient, entry) = super::keys::to_device_from_wire(deliver);
                (recipient, DeliveryItem::ToDevice(entry))
            }
            other => return Err(ConvertError::WrongType { expected: "delivery", found: other.record_type() }),
        };
        Ok(Delivery { recipient, item })
    }
}

impl From<&PresenceEvent> for WireValue {
    fn from(event: &PresenceEvent) -> WireValue {
        match event {
            PresenceEvent::Heartbeat { instance, online, at } => {
                WireValue::PresenceHeartbeat(wire::PresenceHeartbeat {
                    instance: instance.clone(),
                    online: online.clone(),
                    at: *at,
                })
            }
            PresenceEvent::Changed { instance, user, online, at } => {
                WireValue::PresenceChanged(wire::PresenceChanged {
                    instance: instance.clone(),
                    user: *user,
                    online: *online,
                    at: *at,
                })
            }
        }
    }
}

impl TryFrom<WireValue> for PresenceEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::PresenceHeartbeat(heartbeat) => Ok(PresenceEvent::Heartbeat {
                instance: heartbeat.instance,
                online: heartbeat.online,
                at: heartbeat.at,
            }),
            WireValue::PresenceChanged(changed) => Ok(PresenceEvent::Changed {
                instance: changed.instance,
                user: changed.user,
                online: changed.online,
                at: changed.at,
            }),
            other => Err(ConvertError::WrongType { expected: "presence record", found: other.record_type() }),
        }
    }
}

impl From<&PushJob> for WireValue {
    fn from(job: &PushJob) -> WireValue {
        WireValue::PushJob(wire::PushJob {
            user: job.user,
            conversation_id: job.conversation_id,
            group: job.group,
            count: count_to_wire(job.count),
            message_ids: job.message_ids.clone(),
            senders: job.senders.clone(),
            first_at: job.first_at,
            at: job.at,
        })
    }
}

impl TryFrom<WireValue> for PushJob {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let WireValue::PushJob(job) = value else {
            return Err(ConvertError::WrongType { expected: "push job", found: value.record_type() });
        };
        Ok(PushJob {
            user: job.user,
            conversation_id: job.conversation_id,
            group: job.group,
            count: count_from_wire(job.count),
            message_ids: job.message_ids,
            senders: job.senders,
            first_at: job.first_at,
            at: job.at,
        })
    }
}

impl From<&MediaUploaded> for WireValue {
    fn from(uploaded: &MediaUploaded) -> WireValue {
        WireValue::MediaUploaded(wire::MediaUploaded {
            media_id: uploaded.media_id.clone(),
            owner: uploaded.owner,
            kind: uploaded.kind.as_str().to_string(),
            purpose: uploaded.purpose.as_str().to_string(),
            content_type: uploaded.content_type.clone(),
            size: size_to_wire(uploaded.size),
            sha256: uploaded.sha256.clone(),
            key: uploaded.key.clone(),
            at: uploaded.at,
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
            owner: wire.owner,
            kind: MediaKind::parse(&wire.kind).ok_or(ConvertError::AttachmentKind(wire.kind))?,
            purpose: Purpose::parse(&wire.purpose).unwrap_or_default(),
            content_type: wire.content_type,
            size: size_from_wire(wire.size, "size")?,
            sha256: wire.sha256,
            key: wire.key,
            at: wire.at,
        })
    }
}
