//! Conversations on the wire: messages, message operations, the
//! conversation's commands and events.

use missive_core::conversation::{
    ConversationCommand, ConversationEvent, MarkReceipt, MessageRef, MessageSent, ReceiptsAdvanced, SendMessage,
    SetBlock,
};
use missive_core::operations::{MessageModified, ModifyMessage, Operation};
use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};

use crate::wire::{self, WireValue};

use super::common::*;
use super::groups::*;

pub(super) fn operation_to_wire(operation: &Operation) -> (wire::OperationKind, String) {
    match operation {
        Operation::Edit { content } => (wire::OperationKind::Edit, content.clone()),
        Operation::DeleteForEveryone => (wire::OperationKind::DeleteForEveryone, String::new()),
        Operation::DeleteForMe => (wire::OperationKind::DeleteForMe, String::new()),
        Operation::React { emoji } => (wire::OperationKind::React, emoji.clone()),
    }
}

pub(super) fn operation_from_wire(kind: wire::OperationKind, text: String) -> Operation {
    match kind {
        wire::OperationKind::Edit => Operation::Edit { content: text },
        wire::OperationKind::DeleteForEveryone => Operation::DeleteForEveryone,
        wire::OperationKind::DeleteForMe => Operation::DeleteForMe,
        wire::OperationKind::React => Operation::React { emoji: text },
    }
}

pub(super) fn modified_to_wire(modified: &MessageModified) -> wire::MessageModified {
    let (kind, text) = operation_to_wire(&modified.operation);
    wire::MessageModified {
        conversation_id: long(modified.conversation_id.0),
        conv_seq: long(modified.conv_seq.0),
        message_id: long(modified.message_id.0),
        target_seq: long(modified.target_seq.0),
        by: long(modified.by.0),
        by_device: long(modified.by_device.0),
        kind,
        text,
        audience: users_to_wire(&modified.audience),
        at: modified.at.0,
    }
}

pub(super) fn modified_from_wire(modified: wire::MessageModified) -> Result<MessageModified, ConvertError> {
    Ok(MessageModified {
        conversation_id: ConversationId(id(modified.conversation_id, "conversation_id")?),
        conv_seq: ConvSeq(id(modified.conv_seq, "conv_seq")?),
        message_id: MessageId(id(modified.message_id, "message_id")?),
        target_seq: ConvSeq(id(modified.target_seq, "target_seq")?),
        by: UserId(id(modified.by, "by")?),
        by_device: DeviceId(id(modified.by_device, "by_device")?),
        operation: operation_from_wire(modified.kind, modified.text),
        audience: users_from_wire(modified.audience, "audience")?,
        at: Millis(modified.at),
    })
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
        withheld_from: users_to_wire(&message.withheld_from),
        forward_count: count_to_wire(message.forward_count),
        attachment: message.attachment.as_ref().map(attachment_to_wire),
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
        withheld_from: users_from_wire(message.withheld_from, "withheld_from")?,
        forward_count: count_from_wire(message.forward_count),
        attachment: message.attachment.map(attachment_from_wire).transpose()?,
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
            forward_count: count_to_wire(send.forward_count),
            attachment: send.attachment.as_ref().map(attachment_to_wire),
        }),
        ConversationCommand::Receipt(mark) => WireValue::MarkReceipt(wire::MarkReceipt {
            conversation_id: long(mark.conversation_id.0),
            by: long(mark.by.0),
            status: status_to_wire(mark.status),
            up_to: long(mark.up_to.0),
            notify: mark.notify,
        }),
        ConversationCommand::Group(command) => WireValue::ChangeGroup(group_command_to_wire(command)),
        ConversationCommand::Block(block) => WireValue::ApplyBlock(wire::ApplyBlock {
            conversation_id: long(block.conversation_id.0),
            blocker: long(block.blocker.0),
            target: long(block.target.0),
            blocked: block.blocked,
        }),
        ConversationCommand::Modify(modify) => {
            let (kind, text) = operation_to_wire(&modify.operation);
            WireValue::ModifyMessage(wire::ModifyMessage {
                conversation_id: long(modify.conversation_id.0),
                by: long(modify.by.0),
                by_device: long(modify.by_device.0),
                message_id: long(modify.message_id.0),
                target_seq: long(modify.target_seq.0),
                kind,
                text,
            })
        }
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
                forward_count: count_from_wire(send.forward_count),
                attachment: send.attachment.map(attachment_from_wire).transpose()?,
            })),
            WireValue::MarkReceipt(mark) => Ok(ConversationCommand::Receipt(MarkReceipt {
                conversation_id: ConversationId(id(mark.conversation_id, "conversation_id")?),
                by: UserId(id(mark.by, "by")?),
                status: status_from_wire(mark.status),
                up_to: ConvSeq(id(mark.up_to, "up_to")?),
                notify: mark.notify,
            })),
            WireValue::ChangeGroup(change) => Ok(ConversationCommand::Group(group_command_from_wire(change)?)),
            WireValue::ApplyBlock(block) => Ok(ConversationCommand::Block(SetBlock {
                conversation_id: ConversationId(id(block.conversation_id, "conversation_id")?),
                blocker: UserId(id(block.blocker, "blocker")?),
                target: UserId(id(block.target, "target")?),
                blocked: block.blocked,
            })),
            WireValue::ModifyMessage(modify) => Ok(ConversationCommand::Modify(ModifyMessage {
                conversation_id: ConversationId(id(modify.conversation_id, "conversation_id")?),
                by: UserId(id(modify.by, "by")?),
                by_device: DeviceId(id(modify.by_device, "by_device")?),
                message_id: MessageId(id(modify.message_id, "message_id")?),
                target_seq: ConvSeq(id(modify.target_seq, "target_seq")?),
                operation: operation_from_wire(modify.kind, modify.text),
            })),
            other => Err(ConvertError::WrongType { expected: "conversation command", found: other.record_type() }),
        }
    }
}

pub fn conversation_event_to_wire(event: &ConversationEvent) -> WireValue {
    match event {
        ConversationEvent::MessageSent(message) => WireValue::MessageSent(message_to_wire(message)),
        ConversationEvent::GroupChanged(changed) => WireValue::GroupChanged(group_changed_to_wire(changed)),
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
                    count: count_to_wire(message.count),
                    of: count_to_wire(message.of),
                })
                .collect(),
        }),
        ConversationEvent::MessageModified(modified) => WireValue::MessageModified(modified_to_wire(modified)),
    }
}

impl TryFrom<WireValue> for ConversationEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        match value {
            WireValue::MessageSent(message) => Ok(ConversationEvent::MessageSent(message_from_wire(message)?)),
            WireValue::GroupChanged(changed) => Ok(ConversationEvent::GroupChanged(group_changed_from_wire(changed)?)),
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
                            count: count_from_wire(message.count),
                            of: count_from_wire(message.of),
                        })
                    })
                    .collect::<Result<_, ConvertError>>()?,
            })),
            WireValue::MessageModified(modified) => {
                Ok(ConversationEvent::MessageModified(modified_from_wire(modified)?))
            }
            other => Err(ConvertError::WrongType { expected: "conversation event", found: other.record_type() }),
        }
    }
}
