//! Groups on the wire: changes asked and decided.

use missive_core::groups::{
    Group, GroupChange, GroupChangeKind, GroupChanged, GroupCommand, GroupInfo, GroupInvite, GroupSettings,
};
use missive_core::{ConvSeq, ConversationId, Millis, UserId};

use crate::wire::{self};

use super::common::*;

pub(super) fn change_kind_to_wire(kind: GroupChangeKind) -> wire::GroupChangeKind {
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

pub(super) fn change_kind_from_wire(kind: wire::GroupChangeKind) -> GroupChangeKind {
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

pub(super) fn group_command_to_wire(command: &GroupCommand) -> wire::ChangeGroup {
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

pub(super) fn group_command_from_wire(wire: wire::ChangeGroup) -> Result<GroupCommand, ConvertError> {
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
