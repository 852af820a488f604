//! Domain <-> wire conversions. Domain ids are unsigned and below 2^63; on
//! the wire they are Avro longs. A negative id on the wire is refused.

use missive_core::conversation::{
    ConversationCommand, ConversationEvent, MarkReceipt, MessageRef, MessageSent, ReceiptStatus, ReceiptsAdvanced,
    SendMessage, SetBlock,
};
use missive_core::delivery::{Delivery, DeliveryItem, Receipt};
use missive_core::groups::{
    Group, GroupChange, GroupChangeKind, GroupChanged, GroupCommand, GroupInfo, GroupInvite, GroupSettings,
};
use missive_core::media::{Attachment, MediaKind, MediaRef, MediaUploaded, Purpose};
use missive_core::notifications::PushJob;
use missive_core::operations::{MessageModified, ModifyMessage, Operation};
use missive_core::presence::PresenceEvent;
use missive_core::users::{
    Audience, DeviceRegistered, Privacy, PrivacyChange, Profile, ProfileChange, RegisterDevice, UserCommand, UserEvent,
};
use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};

use crate::wire::{self, RecordType, WireValue};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("field {0} holds a negative id")]
    NegativeId(&'static str),
    #[error("a {found:?} record is not a {expected}")]
    WrongType { expected: &'static str, found: RecordType },
    #[error("field {0} is required for this kind")]
    Missing(&'static str),
    #[error("unknown attachment kind {0:?}")]
    AttachmentKind(String),
}

fn attachment_to_wire(attachment: &Attachment) -> wire::Attachment {
    let mut wire = wire::Attachment {
        kind: attachment.kind().to_string(),
        media_id: None,
        size: None,
        content_type: None,
        sha256: None,
        key: None,
        caption: None,
        thumbnail: None,
        latitude: None,
        longitude: None,
        name: None,
        vcard: None,
    };
    match attachment {
        Attachment::Media(media) => {
            use base64::Engine as _;
            wire.media_id = Some(media.media_id.clone());
            wire.size = Some(i64::try_from(media.size).unwrap_or(i64::MAX));
            wire.content_type = Some(media.content_type.clone());
            wire.sha256 = Some(media.sha256.clone());
            wire.key = Some(media.key.clone());
            wire.caption = media.caption.clone();
            // Thumbnails were checked as base64 when the send was accepted.
            wire.thumbnail =
                media.thumbnail.as_ref().and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok());
        }
        Attachment::Location { latitude, longitude, name } => {
            wire.latitude = Some(*latitude);
            wire.longitude = Some(*longitude);
            wire.name = name.clone();
        }
        Attachment::Contact { vcard } => wire.vcard = Some(vcard.clone()),
    }
    wire
}

fn attachment_from_wire(wire: wire::Attachment) -> Result<Attachment, ConvertError> {
    use base64::Engine as _;
    Ok(match wire.kind.as_str() {
        "location" => Attachment::Location {
            latitude: wire.latitude.ok_or(ConvertError::Missing("attachment.latitude"))?,
            longitude: wire.longitude.ok_or(ConvertError::Missing("attachment.longitude"))?,
            name: wire.name,
        },
        "contact" => Attachment::Contact { vcard: wire.vcard.ok_or(ConvertError::Missing("attachment.vcard"))? },
        kind => Attachment::Media(MediaRef {
            media_kind: MediaKind::parse(kind).ok_or_else(|| ConvertError::AttachmentKind(kind.to_string()))?,
            media_id: wire.media_id.ok_or(ConvertError::Missing("attachment.media_id"))?,
            size: u64::try_from(wire.size.ok_or(ConvertError::Missing("attachment.size"))?)
                .map_err(|_| ConvertError::NegativeId("attachment.size"))?,
            content_type: wire.content_type.ok_or(ConvertError::Missing("attachment.content_type"))?,
            sha256: wire.sha256.ok_or(ConvertError::Missing("attachment.sha256"))?,
            key: wire.key.ok_or(ConvertError::Missing("attachment.key"))?,
            caption: wire.caption,
            thumbnail: wire.thumbnail.map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
        }),
    })
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

fn audience_to_wire(audience: Audience) -> wire::Audience {
    match audience {
        Audience::Everyone => wire::Audience::Everyone,
        Audience::Contacts => wire::Audience::Contacts,
        Audience::Nobody => wire::Audience::Nobody,
    }
}

fn audience_from_wire(audience: wire::Audience) -> Audience {
    match audience {
        wire::Audience::Everyone => Audience::Everyone,
        wire::Audience::Contacts => Audience::Contacts,
        wire::Audience::Nobody => Audience::Nobody,
    }
}

fn count_to_wire(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// Counts are never negative; an old record without the field reads 0.
fn count_from_wire(count: i32) -> u32 {
    u32::try_from(count).unwrap_or(0)
}

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

fn modified_to_wire(modified: &MessageModified) -> wire::MessageModified {
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

fn modified_from_wire(modified: wire::MessageModified) -> Result<MessageModified, ConvertError> {
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

fn users_to_wire(users: &[UserId]) -> Vec<i64> {
    users.iter().map(|user| long(user.0)).collect()
}

fn users_from_wire(users: Vec<i64>, field: &'static str) -> Result<Vec<UserId>, ConvertError> {
    users.into_iter().map(|user| id(user, field).map(UserId)).collect()
}

fn change_kind_to_wire(kind: GroupChangeKind) -> wire::GroupChangeKind {
    match kind {
        GroupChangeKind::Created => wire::GroupChangeKind::Created,
        GroupChangeKind::MembersAdded => wire::GroupChangeKind::MembersAdded,
        GroupChangeKind::MemberRemoved => wire::GroupChangeKind::MemberRemoved,
        GroupChangeKind::MemberLeft => wire::GroupChangeKind::MemberLeft,
        GroupChangeKind::AdminsChanged => wire::GroupChangeKind::AdminsChanged,
        GroupChangeKind::InfoUpdated => wire::GroupChangeKind::InfoUpdated,
        GroupChangeKind::SettingsUpdated => wire::GroupChangeKind::SettingsUpdated,
        GroupChangeKind::Invited => wire::GroupChangeKind::Invited,
        GroupChangeKind::Joined => wire::GroupChangeKind::Joined,
        GroupChangeKind::InviteDeclined => wire::GroupChangeKind::InviteDeclined,
    }
}

fn change_kind_from_wire(kind: wire::GroupChangeKind) -> GroupChangeKind {
    match kind {
        wire::GroupChangeKind::Created => GroupChangeKind::Created,
        wire::GroupChangeKind::MembersAdded => GroupChangeKind::MembersAdded,
        wire::GroupChangeKind::MemberRemoved => GroupChangeKind::MemberRemoved,
        wire::GroupChangeKind::MemberLeft => GroupChangeKind::MemberLeft,
        wire::GroupChangeKind::AdminsChanged => GroupChangeKind::AdminsChanged,
        wire::GroupChangeKind::InfoUpdated => GroupChangeKind::InfoUpdated,
        wire::GroupChangeKind::SettingsUpdated => GroupChangeKind::SettingsUpdated,
        wire::GroupChangeKind::Invited => GroupChangeKind::Invited,
        wire::GroupChangeKind::Joined => GroupChangeKind::Joined,
        wire::GroupChangeKind::InviteDeclined => GroupChangeKind::InviteDeclined,
    }
}

pub fn group_changed_to_wire(changed: &GroupChanged) -> wire::GroupChanged {
    let group = &changed.group;
    wire::GroupChanged {
        conversation_id: long(changed.conversation_id.0),
        conv_seq: long(changed.conv_seq.0),
        by: long(changed.by.0),
        kind: change_kind_to_wire(changed.kind),
        subjects: users_to_wire(&changed.subjects),
        members: users_to_wire(&changed.members),
        admins: group.admins.iter().map(|user| long(user.0)).collect(),
        name: group.info.name.clone(),
        description: group.info.description.clone(),
        icon: group.info.icon.clone(),
        only_admins_send: group.settings.only_admins_send,
        only_admins_edit_info: group.settings.only_admins_edit_info,
        history_for_new_members: group.settings.history_for_new_members,
        max_members: i32::try_from(group.max_members).unwrap_or(i32::MAX),
        created_by: long(group.created_by.0),
        at: changed.at.0,
        invites: group
            .invites
            .iter()
            .map(|invite| wire::GroupInvite { user: long(invite.user.0), by: long(invite.by.0), at: invite.at.0 })
            .collect(),
    }
}

pub fn group_changed_from_wire(changed: wire::GroupChanged) -> Result<GroupChanged, ConvertError> {
    Ok(GroupChanged {
        conversation_id: ConversationId(id(changed.conversation_id, "conversation_id")?),
        conv_seq: ConvSeq(id(changed.conv_seq, "conv_seq")?),
        by: UserId(id(changed.by, "by")?),
        kind: change_kind_from_wire(changed.kind),
        subjects: users_from_wire(changed.subjects, "subjects")?,
        members: users_from_wire(changed.members, "members")?,
        group: Group {
            info: GroupInfo { name: changed.name, description: changed.description, icon: changed.icon },
            settings: GroupSettings {
                only_admins_send: changed.only_admins_send,
                only_admins_edit_info: changed.only_admins_edit_info,
                history_for_new_members: changed.history_for_new_members,
            },
            admins: users_from_wire(changed.admins, "admins")?.into_iter().collect(),
            max_members: u32::try_from(changed.max_members).map_err(|_| ConvertError::NegativeId("max_members"))?,
            created_by: UserId(id(changed.created_by, "created_by")?),
            invites: changed
                .invites
                .into_iter()
                .map(|invite| {
                    Ok(GroupInvite {
                        user: UserId(id(invite.user, "invites.user")?),
                        by: UserId(id(invite.by, "invites.by")?),
                        at: Millis(invite.at),
                    })
                })
                .collect::<Result<_, ConvertError>>()?,
        },
        at: Millis(changed.at),
    })
}

fn group_command_to_wire(command: &GroupCommand) -> wire::ChangeGroup {
    let mut wire = wire::ChangeGroup {
        conversation_id: long(command.conversation_id.0),
        by: long(command.by.0),
        kind: wire::GroupCommandKind::Leave,
        users: Vec::new(),
        admin: None,
        name: None,
        description: None,
        icon: None,
        only_admins_send: None,
        only_admins_edit_info: None,
        history_for_new_members: None,
        max_members: None,
    };
    match &command.change {
        GroupChange::Create { info, settings, members, max_members } => {
            wire.kind = wire::GroupCommandKind::Create;
            wire.users = users_to_wire(members);
            wire.name = Some(info.name.clone());
            wire.description = Some(info.description.clone());
            wire.icon = Some(info.icon.clone());
            wire.only_admins_send = Some(settings.only_admins_send);
            wire.only_admins_edit_info = Some(settings.only_admins_edit_info);
            wire.history_for_new_members = Some(settings.history_for_new_members);
            wire.max_members = Some(i32::try_from(*max_members).unwrap_or(i32::MAX));
        }
        GroupChange::AddMembers { users } => {
            wire.kind = wire::GroupCommandKind::AddMembers;
            wire.users = users_to_wire(users);
        }
        GroupChange::RemoveMember { user } => {
            wire.kind = wire::GroupCommandKind::RemoveMember;
            wire.users = vec![long(user.0)];
        }
        GroupChange::Leave => wire.kind = wire::GroupCommandKind::Leave,
        GroupChange::SetAdmin { user, admin } => {
            wire.kind = wire::GroupCommandKind::SetAdmin;
            wire.users = vec![long(user.0)];
            wire.admin = Some(*admin);
        }
        GroupChange::UpdateInfo { name, description, icon } => {
            wire.kind = wire::GroupCommandKind::UpdateInfo;
            wire.name = name.clone();
            wire.description = description.clone();
            wire.icon = icon.clone();
        }
        GroupChange::UpdateSettings { only_admins_send, only_admins_edit_info, history_for_new_members } => {
            wire.kind = wire::GroupCommandKind::UpdateSettings;
            wire.only_admins_send = *only_admins_send;
            wire.only_admins_edit_info = *only_admins_edit_info;
            wire.history_for_new_members = *history_for_new_members;
        }
        GroupChange::Invite { users } => {
            wire.kind = wire::GroupCommandKind::Invite;
            wire.users = users_to_wire(users);
        }
        GroupChange::AcceptInvite => wire.kind = wire::GroupCommandKind::AcceptInvite,
        GroupChange::DeclineInvite => wire.kind = wire::GroupCommandKind::DeclineInvite,
    }
    wire
}

fn group_command_from_wire(wire: wire::ChangeGroup) -> Result<GroupCommand, ConvertError> {
    let users = users_from_wire(wire.users, "users")?;
    let one = |field: &'static str| users.first().copied().ok_or(ConvertError::Missing(field));
    let change = match wire.kind {
        wire::GroupCommandKind::Create => GroupChange::Create {
            info: GroupInfo {
                name: wire.name.unwrap_or_default(),
                description: wire.description.unwrap_or_default(),
                icon: wire.icon.unwrap_or_default(),
            },
            settings: GroupSettings {
                only_admins_send: wire.only_admins_send.unwrap_or(false),
                only_admins_edit_info: wire.only_admins_edit_info.unwrap_or(false),
                history_for_new_members: wire.history_for_new_members.unwrap_or(false),
            },
            members: users.clone(),
            max_members: wire.max_members.and_then(|max| u32::try_from(max).ok()).unwrap_or(0),
        },
        wire::GroupCommandKind::AddMembers => GroupChange::AddMembers { users: users.clone() },
        wire::GroupCommandKind::Invite => GroupChange::Invite { users: users.clone() },
        wire::GroupCommandKind::AcceptInvite => GroupChange::AcceptInvite,
        wire::GroupCommandKind::DeclineInvite => GroupChange::DeclineInvite,
        wire::GroupCommandKind::RemoveMember => GroupChange::RemoveMember { user: one("users")? },
        wire::GroupCommandKind::Leave => GroupChange::Leave,
        wire::GroupCommandKind::SetAdmin => {
            GroupChange::SetAdmin { user: one("users")?, admin: wire.admin.ok_or(ConvertError::Missing("admin"))? }
        }
        wire::GroupCommandKind::UpdateInfo => {
            GroupChange::UpdateInfo { name: wire.name, description: wire.description, icon: wire.icon }
        }
        wire::GroupCommandKind::UpdateSettings => GroupChange::UpdateSettings {
            only_admins_send: wire.only_admins_send,
            only_admins_edit_info: wire.only_admins_edit_info,
            history_for_new_members: wire.history_for_new_members,
        },
    };
    Ok(GroupCommand {
        conversation_id: ConversationId(id(wire.conversation_id, "conversation_id")?),
        by: UserId(id(wire.by, "by")?),
        change,
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

pub fn user_command_to_wire(command: &UserCommand) -> WireValue {
    match command {
        UserCommand::RegisterDevice(register) => WireValue::RegisterDevice(wire::RegisterDevice {
            user_id: long(register.user_id.0),
            device_id: long(register.device_id.0),
            device_name: register.device_name.clone(),
        }),
        UserCommand::RemoveDevice { user_id, device_id, reason } => WireValue::RemoveDevice(wire::RemoveDevice {
            user_id: long(user_id.0),
            device_id: long(device_id.0),
            reason: reason.clone(),
        }),
        UserCommand::UpdateProfile { user_id, change } => WireValue::UpdateProfile(wire::UpdateProfile {
            user_id: long(user_id.0),
            display_name: change.display_name.clone(),
            about: change.about.clone(),
            picture: change.picture.clone(),
        }),
        UserCommand::SetPrivacy { user_id, change } => WireValue::SetPrivacy(wire::SetPrivacy {
            user_id: long(user_id.0),
            last_seen: change.last_seen.map(audience_to_wire),
            photo: change.photo.map(audience_to_wire),
            about: change.about.map(audience_to_wire),
            read_receipts: change.read_receipts,
            groups: change.groups.map(audience_to_wire),
        }),
        UserCommand::SetBlock { user_id, target, blocked } => WireValue::BlockUser(wire::BlockUser {
            user_id: long(user_id.0),
            target: long(target.0),
            blocked: *blocked,
        }),
        UserCommand::UpdateContacts { user_id, added, removed } => WireValue::UpdateContacts(wire::UpdateContacts {
            user_id: long(user_id.0),
            added: users_to_wire(added),
            removed: users_to_wire(removed),
        }),
        UserCommand::SetPin { user_id, pin_hash } => {
            WireValue::SetPin(wire::SetPin { user_id: long(user_id.0), pin_hash: pin_hash.clone() })
        }
        UserCommand::RecordLastSeen { user_id, at } => {
            WireValue::RecordLastSeen(wire::RecordLastSeen { user_id: long(user_id.0), at: at.0 })
        }
    }
}

impl TryFrom<WireValue> for UserCommand {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let user = |value: i64| id(value, "user_id").map(UserId);
        Ok(match value {
            WireValue::RegisterDevice(register) => UserCommand::RegisterDevice(RegisterDevice {
                user_id: user(register.user_id)?,
                device_id: DeviceId(id(register.device_id, "device_id")?),
                device_name: register.device_name,
            }),
            WireValue::RemoveDevice(remove) => UserCommand::RemoveDevice {
                user_id: user(remove.user_id)?,
                device_id: DeviceId(id(remove.device_id, "device_id")?),
                reason: remove.reason,
            },
            WireValue::UpdateProfile(update) => UserCommand::UpdateProfile {
                user_id: user(update.user_id)?,
                change: ProfileChange {
                    display_name: update.display_name,
                    about: update.about,
                    picture: update.picture,
                },
            },
            WireValue::SetPrivacy(set) => UserCommand::SetPrivacy {
                user_id: user(set.user_id)?,
                change: PrivacyChange {
                    last_seen: set.last_seen.map(audience_from_wire),
                    photo: set.photo.map(audience_from_wire),
                    about: set.about.map(audience_from_wire),
                    read_receipts: set.read_receipts,
                    groups: set.groups.map(audience_from_wire),
                },
            },
            WireValue::BlockUser(block) => UserCommand::SetBlock {
                user_id: user(block.user_id)?,
                target: UserId(id(block.target, "target")?),
                blocked: block.blocked,
            },
            WireValue::UpdateContacts(update) => UserCommand::UpdateContacts {
                user_id: user(update.user_id)?,
                added: users_from_wire(update.added, "added")?,
                removed: users_from_wire(update.removed, "removed")?,
            },
            WireValue::SetPin(set) => UserCommand::SetPin { user_id: user(set.user_id)?, pin_hash: set.pin_hash },
            WireValue::RecordLastSeen(seen) => {
                UserCommand::RecordLastSeen { user_id: user(seen.user_id)?, at: Millis(seen.at) }
            }
            other => return Err(ConvertError::WrongType { expected: "user command", found: other.record_type() }),
        })
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
        UserEvent::DeviceRemoved { user_id, device_id, reason, at } => WireValue::DeviceRemoved(wire::DeviceRemoved {
            user_id: long(user_id.0),
            device_id: long(device_id.0),
            reason: reason.clone(),
            at: at.0,
        }),
        UserEvent::ProfileUpdated { user_id, profile, at } => WireValue::ProfileUpdated(wire::ProfileUpdated {
            user_id: long(user_id.0),
            display_name: profile.display_name.clone(),
            about: profile.about.clone(),
            picture: profile.picture.clone(),
            at: at.0,
        }),
        UserEvent::PrivacyChanged { user_id, privacy, at } => WireValue::PrivacyChanged(wire::PrivacyChanged {
            user_id: long(user_id.0),
            last_seen: audience_to_wire(privacy.last_seen),
            photo: audience_to_wire(privacy.photo),
            about: audience_to_wire(privacy.about),
            read_receipts: privacy.read_receipts,
            groups: audience_to_wire(privacy.groups),
            at: at.0,
        }),
        UserEvent::BlockChanged { user_id, target, blocked, at } => WireValue::BlockChanged(wire::BlockChanged {
            user_id: long(user_id.0),
            target: long(target.0),
            blocked: *blocked,
            at: at.0,
        }),
        UserEvent::ContactsChanged { user_id, added, removed, at } => {
            WireValue::ContactsChanged(wire::ContactsChanged {
                user_id: long(user_id.0),
                added: users_to_wire(added),
                removed: users_to_wire(removed),
                at: at.0,
            })
        }
        UserEvent::PinChanged { user_id, pin_hash, at } => {
            WireValue::PinChanged(wire::PinChanged { user_id: long(user_id.0), pin_hash: pin_hash.clone(), at: at.0 })
        }
        UserEvent::LastSeen { user_id, at } => {
            WireValue::LastSeen(wire::LastSeen { user_id: long(user_id.0), at: at.0 })
        }
    }
}

impl TryFrom<WireValue> for UserEvent {
    type Error = ConvertError;
    fn try_from(value: WireValue) -> Result<Self, ConvertError> {
        let user = |value: i64| id(value, "user_id").map(UserId);
        Ok(match value {
            WireValue::DeviceRegistered(registered) => UserEvent::DeviceRegistered(DeviceRegistered {
                user_id: user(registered.user_id)?,
                device_id: DeviceId(id(registered.device_id, "device_id")?),
                device_name: registered.device_name,
                new_account: registered.new_account,
                at: Millis(registered.at),
            }),
            WireValue::DeviceRemoved(removed) => UserEvent::DeviceRemoved {
                user_id: user(removed.user_id)?,
                device_id: DeviceId(id(removed.device_id, "device_id")?),
                reason: removed.reason,
                at: Millis(removed.at),
            },
            WireValue::ProfileUpdated(updated) => UserEvent::ProfileUpdated {
                user_id: user(updated.user_id)?,
                profile: Profile { display_name: updated.display_name, about: updated.about, picture: updated.picture },
                at: Millis(updated.at),
            },
            WireValue::PrivacyChanged(changed) => UserEvent::PrivacyChanged {
                user_id: user(changed.user_id)?,
                privacy: Privacy {
                    last_seen: audience_from_wire(changed.last_seen),
                    photo: audience_from_wire(changed.photo),
                    about: audience_from_wire(changed.about),
                    read_receipts: changed.read_receipts,
                    groups: audience_from_wire(changed.groups),
                },
                at: Millis(changed.at),
            },
            WireValue::BlockChanged(changed) => UserEvent::BlockChanged {
                user_id: user(changed.user_id)?,
                target: UserId(id(changed.target, "target")?),
                blocked: changed.blocked,
                at: Millis(changed.at),
            },
            WireValue::ContactsChanged(changed) => UserEvent::ContactsChanged {
                user_id: user(changed.user_id)?,
                added: users_from_wire(changed.added, "added")?,
                removed: users_from_wire(changed.removed, "removed")?,
                at: Millis(changed.at),
            },
            WireValue::PinChanged(changed) => UserEvent::PinChanged {
                user_id: user(changed.user_id)?,
                pin_hash: changed.pin_hash,
                at: Millis(changed.at),
            },
            WireValue::LastSeen(seen) => UserEvent::LastSeen { user_id: user(seen.user_id)?, at: Millis(seen.at) },
            other => return Err(ConvertError::WrongType { expected: "user event", found: other.record_type() }),
        })
    }
}

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
