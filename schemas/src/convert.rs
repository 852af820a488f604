//! Domain <-> wire conversions. Domain ids are unsigned and below 2^63; on
//! the wire they are Avro longs. A negative id on the wire is refused.

use missive_core::conversation::{
    ConversationCommand, ConversationEvent, MarkReceipt, MessageRef, MessageSent, ReceiptStatus, ReceiptsAdvanced,
    SendMessage,
};
use missive_core::delivery::{Delivery, DeliveryItem, Receipt};
use missive_core::users::{DeviceRegistered, RegisterDevice, UserCommand, UserEvent};
use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};

use crate::wire::{self, RecordType, WireValue};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("field {0} holds a negative id")]
    NegativeId(&'static str),
    #[error("a {found:?} record is not a {expected}")]
    WrongType { expected: &'static str, found: RecordType },
}

fn id(value: i64, field: &'static str) -> Result<u64, ConvertError> {
    u64::try_from(value).map_err(|_| ConvertError::NegativeId(field))
}

fn long(value: u64) -> i64 {
    // Ids are minted below 2^63; saturate rather than wrap if one is not.
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn status_to_wire(status: ReceiptStatus) -> wire::ReceiptStatus {
    match status {
        ReceiptStatus::Delivered => wire::ReceiptStatus::Delivered,
        ReceiptStatus::Read => wire::ReceiptStatus::Read,
    }
}

fn status_from_wire(status: wire::ReceiptStatus) -> ReceiptStatus {
    match status {
        wire::ReceiptStatus::Delivered => ReceiptStatus::Delivered,
        wire::ReceiptStatus::Read => ReceiptStatus::Read,
    }
}

pub fn message_to_wire(message: &MessageSent) -> wire::MessageSent {
    wire::MessageSent {
        conversation_id: long(message.conversation_id.0),
        conv_seq: long(message.conv_seq.0),
        message_id: long(message.message_id.0),
        from: long(message.from.0),
        from_device: long(message.from_device.0),
        members: message.members.iter().map(|member| long(member.0)).collect(),
        client_msg_id: message.client_msg_id.clone(),
        content: message.content.clone(),
        reply_to: message.reply_to.map(|reply| long(reply.0)),
        sent_at: message.sent_at.0,
    }
}

pub fn message_from_wire(message: wire::MessageSent) -> Result<MessageSent, ConvertError> {
    Ok(MessageSent {
        conversation_id: ConversationId(id(message.conversation_id, "conversation_id")?),
        conv_seq: ConvSeq(id(message.conv_seq, "conv_seq")?),
        message_id: MessageId(id(message.message_id, "message_id")?),
        from: UserId(id(message.from, "from")?),
        from_device: DeviceId(id(message.from_device, "from_device")?),
        members: message
            .members
            .into_iter()
            .map(|member| id(member, "members").map(UserId))
            .collect::<Result<_, _>>()?,
        client_msg_id: message.client_msg_id,
        content: message.content,
        reply_to: message.reply_to.map(|reply| id(reply, "reply_to").map(MessageId)).transpose()?,
        sent_at: Millis(message.sent_at),
    })
}

pub fn conversation_command_to_wire(command: &ConversationCommand) -> WireValue {
    match command {
        ConversationCommand::Send(send) => WireValue::SendMessage(wire::SendMessage {
            conversation_id: long(send.conversation_id.0),
            message_id: long(send.message_id.0),
            from: long(send.from.0),
            from_device: long(send.from_device.0),
            to: long(send.to.0),
            client_msg_id: send.client_msg_id.clone(),
            content: send.content.clone(),
            reply_to: send.reply_to.map(|reply| long(reply.0)),
        }),
        ConversationCommand::Receipt(mark) => WireValue::MarkReceipt(wire::MarkReceipt {
            conversation_id: long(mark.conversation_id.0),
            by: long(mark.by.0),
            status: status_to_wire(mark.status),
            up_to: long(mark.up_to.0),
        }),
    }
}

impl TryFrom<WireValue> for ConversationCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::SendMessage(send) => Ok(ConversationCommand::Send(SendMessage {
                conversation_id: ConversationId(id(send.conversation_id, "conversation_id")?),
                message_id: MessageId(id(send.message_id, "message_id")?),
                from: UserId(id(send.from, "from")?),
                from_device: DeviceId(id(send.from_device, "from_device")?),
                to: UserId(id(send.to, "to")?),
                client_msg_id: send.client_msg_id,
                content: send.content,
                reply_to: send.reply_to.map(|reply| id(reply, "reply_to").map(MessageId)).transpose()?,
            })),
            WireValue::MarkReceipt(mark) => Ok(ConversationCommand::Receipt(MarkReceipt {
                conversation_id: ConversationId(id(mark.conversation_id, "conversation_id")?),
                by: UserId(id(mark.by, "by")?),
                status: status_from_wire(mark.status),
                up_to: ConvSeq(id(mark.up_to, "up_to")?),
            })),
            other => Err(ConvertError::WrongType { expected: "conversation command", found: other.record_type() }),
        }
    }
}

pub fn conversation_event_to_wire(event: &ConversationEvent) -> WireValue {
    match event {
        ConversationEvent::MessageSent(message) => WireValue::MessageSent(message_to_wire(message)),
        ConversationEvent::ReceiptsAdvanced(advanced) => WireValue::ReceiptsAdvanced(wire::ReceiptsAdvanced {
            conversation_id: long(advanced.conversation_id.0),
            by: long(advanced.by.0),
            status: status_to_wire(advanced.status),
            up_to: long(advanced.up_to.0),
            at: advanced.at.0,
            messages: advanced
                .messages
                .iter()
                .map(|message| wire::MessageRef {
                    message_id: long(message.message_id.0),
                    conv_seq: long(message.conv_seq.0),
                    from: long(message.from.0),
                })
                .collect(),
        }),
    }
}

impl TryFrom<WireValue> for ConversationEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::MessageSent(message) => Ok(ConversationEvent::MessageSent(message_from_wire(message)?)),
            WireValue::ReceiptsAdvanced(advanced) => Ok(ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
                conversation_id: ConversationId(id(advanced.conversation_id, "conversation_id")?),
                by: UserId(id(advanced.by, "by")?),
                status: status_from_wire(advanced.status),
                up_to: ConvSeq(id(advanced.up_to, "up_to")?),
                at: Millis(advanced.at),
                messages: advanced
                    .messages
                    .into_iter()
                    .map(|message| {
                        Ok(MessageRef {
                            message_id: MessageId(id(message.message_id, "message_id")?),
                            conv_seq: ConvSeq(id(message.conv_seq, "conv_seq")?),
                            from: UserId(id(message.from, "from")?),
                        })
                    })
                    .collect::<Result<_, ConvertError>>()?,
            })),
            other => Err(ConvertError::WrongType { expected: "conversation event", found: other.record_type() }),
        }
    }
}

pub fn user_command_to_wire(command: &UserCommand) -> WireValue {
    match command {
        UserCommand::RegisterDevice(register) => WireValue::RegisterDevice(wire::RegisterDevice {
            user_id: long(register.user_id.0),
            device_id: long(register.device_id.0),
            device_name: register.device_name.clone(),
        }),
    }
}

impl TryFrom<WireValue> for UserCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::RegisterDevice(register) => Ok(UserCommand::RegisterDevice(RegisterDevice {
                user_id: UserId(id(register.user_id, "user_id")?),
                device_id: DeviceId(id(register.device_id, "device_id")?),
                device_name: register.device_name,
            })),
            other => Err(ConvertError::WrongType { expected: "user command", found: other.record_type() }),
        }
    }
}

pub fn user_event_to_wire(event: &UserEvent) -> WireValue {
    match event {
        UserEvent::DeviceRegistered(registered) => WireValue::DeviceRegistered(wire::DeviceRegistered {
            user_id: long(registered.user_id.0),
            device_id: long(registered.device_id.0),
            device_name: registered.device_name.clone(),
            new_account: registered.new_account,
            at: registered.at.0,
        }),
    }
}

impl TryFrom<WireValue> for UserEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::DeviceRegistered(registered) => Ok(UserEvent::DeviceRegistered(DeviceRegistered {
                user_id: UserId(id(registered.user_id, "user_id")?),
                device_id: DeviceId(id(registered.device_id, "device_id")?),
                device_name: registered.device_name,
                new_account: registered.new_account,
                at: Millis(registered.at),
            })),
            other => Err(ConvertError::WrongType { expected: "user event", found: other.record_type() }),
        }
    }
}

pub fn delivery_to_wire(delivery: &Delivery) -> WireValue {
    let recipient = long(delivery.recipient.0);
    match &delivery.item {
        DeliveryItem::Message(message) => {
            WireValue::DeliverMessage(wire::DeliverMessage { recipient, message: message_to_wire(message) })
        }
        DeliveryItem::Receipt(receipt) => WireValue::DeliverReceipt(wire::DeliverReceipt {
            recipient,
            conversation_id: long(receipt.conversation_id.0),
            message_id: long(receipt.message_id.0),
            status: status_to_wire(receipt.status),
            by: long(receipt.by.0),
            at: receipt.at.0,
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
    }
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
            other => return Err(ConvertError::WrongType { expected: "delivery", found: other.record_type() }),
        };
        Ok(Delivery { recipient: UserId(id(recipient, "recipient")?), item })
    }
}
