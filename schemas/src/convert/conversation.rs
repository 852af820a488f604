//! Conversations on the wire: messages, message operations, the
//! conversation's commands and events. One `From`/`TryFrom` pair per
//! record; ids are the same newtypes on both sides.

use missive_core::conversation::{
    AnnounceDevices, ConversationCommand, ConversationEvent, MarkReceipt, MessageRef, MessageSent, ReceiptsAdvanced,
    SendMessage, SetBlock,
};
use missive_core::operations::{MessageModified, ModifyMessage, Operation};

use crate::wire::{self, WireValue};

use super::common::*;

fn operation_to_wire(operation: &Operation) -> (wire::OperationKind, String) {
    match operation {
        Operation::Edit { content } => (wire::OperationKind::Edit, content.clone()),
        Operation::DeleteForEveryone => (wire::OperationKind::DeleteForEveryone, String::new()),
        Operation::DeleteForMe => (wire::OperationKind::DeleteForMe, String::new()),
        Operation::React { emoji } => (wire::OperationKind::React, emoji.clone()),
    }
}

fn operation_from_wire(kind: wire::OperationKind, text: String) -> Operation {
    match kind {
        wire::OperationKind::Edit => Operation::Edit { content: text },
        wire::OperationKind::DeleteForEveryone => Operation::DeleteForEveryone,
        wire::OperationKind::DeleteForMe => Operation::DeleteForMe,
        wire::OperationKind::React => Operation::React { emoji: text },
    }
}

impl From<&MessageModified> for wire::MessageModified {
    fn from(modified: &MessageModified) -> wire::MessageModified {
        let (kind, text) = operation_to_wire(&modified.operation);
        wire::MessageModified {
            conversation_id: modified.conversation_id,
            conv_seq: modified.conv_seq,
            message_id: modified.message_id,
            target_seq: modified.target_seq,
            by: modified.by,
            by_device: modified.by_device,
            kind,
            text,
            audience: modified.audience.clone(),
            at: modified.at,
            session_id: modified.session_id.clone(),
        }
    }
}

impl From<wire::MessageModified> for MessageModified {
    fn from(modified: wire::MessageModified) -> MessageModified {
        MessageModified {
            conversation_id: modified.conversation_id,
            conv_seq: modified.conv_seq,
            message_id: modified.message_id,
            target_seq: modified.target_seq,
            by: modified.by,
            by_device: modified.by_device,
            operation: operation_from_wire(modified.kind, modified.text),
            audience: modified.audience,
            at: modified.at,
            session_id: modified.session_id,
        }
    }
}

impl From<&ModifyMessage> for wire::ModifyMessage {
    fn from(modify: &ModifyMessage) -> wire::ModifyMessage {
        let (kind, text) = operation_to_wire(&modify.operation);
        wire::ModifyMessage {
            conversation_id: modify.conversation_id,
            by: modify.by,
            by_device: modify.by_device,
            message_id: modify.message_id,
            target_seq: modify.target_seq,
            kind,
            text,
            session_id: modify.session_id.clone(),
        }
    }
}

impl From<wire::ModifyMessage> for ModifyMessage {
    fn from(modify: wire::ModifyMessage) -> ModifyMessage {
        ModifyMessage {
            conversation_id: modify.conversation_id,
            by: modify.by,
            by_device: modify.by_device,
            message_id: modify.message_id,
            target_seq: modify.target_seq,
            operation: operation_from_wire(modify.kind, modify.text),
            session_id: modify.session_id,
        }
    }
}

impl From<&MessageSent> for wire::MessageSent {
    fn from(message: &MessageSent) -> wire::MessageSent {
        wire::MessageSent {
            conversation_id: message.conversation_id,
            conv_seq: message.conv_seq,
            message_id: message.message_id,
            from: message.from,
            from_device: message.from_device,
            members: message.members.clone(),
            client_msg_id: message.client_msg_id.clone(),
            content: message.content.clone(),
            reply_to: message.reply_to,
            sent_at: message.sent_at,
            withheld_from: message.withheld_from.clone(),
            forward_count: count_to_wire(message.forward_count),
            attachment: message.attachment.as_ref().map(wire::Attachment::from),
            session_id: message.session_id.clone(),
        }
    }
}

impl TryFrom<wire::MessageSent> for MessageSent {
    type Error = ConvertError;
    fn try_from(message: wire::MessageSent) -> Result<MessageSent, ConvertError> {
        Ok(MessageSent {
            conversation_id: message.conversation_id,
            conv_seq: message.conv_seq,
            message_id: message.message_id,
            from: message.from,
            from_device: message.from_device,
            members: message.members,
            client_msg_id: message.client_msg_id,
            content: message.content,
            reply_to: message.reply_to,
            sent_at: message.sent_at,
            withheld_from: message.withheld_from,
            forward_count: count_from_wire(message.forward_count),
            attachment: message.attachment.map(TryFrom::try_from).transpose()?,
            session_id: message.session_id,
        })
    }
}

impl From<&SendMessage> for wire::SendMessage {
    fn from(send: &SendMessage) -> wire::SendMessage {
        wire::SendMessage {
            conversation_id: send.conversation_id,
            message_id: send.message_id,
            from: send.from,
            from_device: send.from_device,
            to: send.to,
            client_msg_id: send.client_msg_id.clone(),
            content: send.content.clone(),
            reply_to: send.reply_to,
            forward_count: count_to_wire(send.forward_count),
            attachment: send.attachment.as_ref().map(wire::Attachment::from),
            session_id: send.session_id.clone(),
        }
    }
}

impl TryFrom<wire::SendMessage> for SendMessage {
    type Error = ConvertError;
    fn try_from(send: wire::SendMessage) -> Result<SendMessage, ConvertError> {
        Ok(SendMessage {
            conversation_id: send.conversation_id,
            message_id: send.message_id,
            from: send.from,
            from_device: send.from_device,
            to: send.to,
            client_msg_id: send.client_msg_id,
            content: send.content,
            reply_to: send.reply_to,
            forward_count: count_from_wire(send.forward_count),
            attachment: send.attachment.map(TryFrom::try_from).transpose()?,
            session_id: send.session_id,
        })
    }
}

impl From<&MarkReceipt> for wire::MarkReceipt {
    fn from(mark: &MarkReceipt) -> wire::MarkReceipt {
        wire::MarkReceipt {
            conversation_id: mark.conversation_id,
            by: mark.by,
            status: mark.status.into(),
            up_to: mark.up_to,
            notify: mark.notify,
        }
    }
}

impl From<wire::MarkReceipt> for MarkReceipt {
    fn from(mark: wire::MarkReceipt) -> MarkReceipt {
        MarkReceipt {
            conversation_id: mark.conversation_id,
            by: mark.by,
            status: mark.status.into(),
            up_to: mark.up_to,
            notify: mark.notify,
        }
    }
}

impl From<&SetBlock> for wire::ApplyBlock {
    fn from(block: &SetBlock) -> wire::ApplyBlock {
        wire::ApplyBlock {
            conversation_id: block.conversation_id,
            blocker: block.blocker,
            target: block.target,
            blocked: block.blocked,
        }
    }
}

impl From<wire::ApplyBlock> for SetBlock {
    fn from(block: wire::ApplyBlock) -> SetBlock {
        SetBlock {
            conversation_id: block.conversation_id,
            blocker: block.blocker,
            target: block.target,
            blocked: block.blocked,
        }
    }
}

impl From<&MessageRef> for wire::MessageRef {
    fn from(message: &MessageRef) -> wire::MessageRef {
        wire::MessageRef {
            message_id: message.message_id,
            conv_seq: message.conv_seq,
            from: message.from,
            count: count_to_wire(message.count),
            of: count_to_wire(message.of),
        }
    }
}

impl From<wire::MessageRef> for MessageRef {
    fn from(message: wire::MessageRef) -> MessageRef {
        MessageRef {
            message_id: message.message_id,
            conv_seq: message.conv_seq,
            from: message.from,
            count: count_from_wire(message.count),
            of: count_from_wire(message.of),
        }
    }
}

impl From<&ReceiptsAdvanced> for wire::ReceiptsAdvanced {
    fn from(advanced: &ReceiptsAdvanced) -> wire::ReceiptsAdvanced {
        wire::ReceiptsAdvanced {
            conversation_id: advanced.conversation_id,
            by: advanced.by,
            status: advanced.status.into(),
            up_to: advanced.up_to,
            at: advanced.at,
            messages: advanced.messages.iter().map(wire::MessageRef::from).collect(),
        }
    }
}

impl From<wire::ReceiptsAdvanced> for ReceiptsAdvanced {
    fn from(advanced: wire::ReceiptsAdvanced) -> ReceiptsAdvanced {
        ReceiptsAdvanced {
            conversation_id: advanced.conversation_id,
            by: advanced.by,
            status: advanced.status.into(),
            up_to: advanced.up_to,
            at: advanced.at,
            messages: advanced.messages.into_iter().map(MessageRef::from).collect(),
        }
    }
}

impl From<&ConversationCommand> for WireValue {
    fn from(command: &ConversationCommand) -> WireValue {
        match command {
            ConversationCommand::Send(send) => WireValue::SendMessage(send.into()),
            ConversationCommand::Receipt(mark) => WireValue::MarkReceipt(mark.into()),
            ConversationCommand::Group(command) => WireValue::ChangeGroup(command.into()),
            ConversationCommand::Block(block) => WireValue::ApplyBlock(block.into()),
            ConversationCommand::Modify(modify) => WireValue::ModifyMessage(modify.into()),
            ConversationCommand::AnnounceDevices(announce) => WireValue::AnnounceDevices(wire::AnnounceDevices {
                conversation_id: announce.conversation_id,
                user: announce.user,
            }),
        }
    }
}

impl TryFrom<WireValue> for ConversationCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        Ok(match value {
            WireValue::SendMessage(send) => ConversationCommand::Send(send.try_into()?),
            WireValue::MarkReceipt(mark) => ConversationCommand::Receipt(mark.into()),
            WireValue::ChangeGroup(change) => ConversationCommand::Group(change.try_into()?),
            WireValue::ApplyBlock(block) => ConversationCommand::Block(block.into()),
            WireValue::ModifyMessage(modify) => ConversationCommand::Modify(modify.into()),
            WireValue::AnnounceDevices(announce) => ConversationCommand::AnnounceDevices(AnnounceDevices {
                conversation_id: announce.conversation_id,
                user: announce.user,
            }),
            other => {
                return Err(ConvertError::WrongType { expected: "conversation command", found: other.record_type() });
            }
        })
    }
}

impl From<&ConversationEvent> for WireValue {
    fn from(event: &ConversationEvent) -> WireValue {
        match event {
            ConversationEvent::MessageSent(message) => WireValue::MessageSent(message.into()),
            ConversationEvent::GroupChanged(changed) => WireValue::GroupChanged(changed.into()),
            ConversationEvent::ReceiptsAdvanced(advanced) => WireValue::ReceiptsAdvanced(advanced.into()),
            ConversationEvent::MessageModified(modified) => WireValue::MessageModified(modified.into()),
        }
    }
}

impl TryFrom<WireValue> for ConversationEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        Ok(match value {
            WireValue::MessageSent(message) => ConversationEvent::MessageSent(message.try_into()?),
            WireValue::GroupChanged(changed) => ConversationEvent::GroupChanged(changed.try_into()?),
            WireValue::ReceiptsAdvanced(advanced) => ConversationEvent::ReceiptsAdvanced(advanced.into()),
            WireValue::MessageModified(modified) => ConversationEvent::MessageModified(modified.into()),
            other => {
                return Err(ConvertError::WrongType { expected: "conversation event", found: other.record_type() });
            }
        })
    }
}
