//! Groups on the wire: changes asked and decided. One `From`/`TryFrom`
//! pair per record.

use missive_core::groups::{
    Group, GroupChange, GroupChangeKind, GroupChanged, GroupCommand, GroupInfo, GroupInvite, GroupSettings,
};

use crate::wire;

use super::common::*;

impl From<GroupChangeKind> for wire::GroupChangeKind {
    fn from(kind: GroupChangeKind) -> wire::GroupChangeKind {
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
}

impl From<wire::GroupChangeKind> for GroupChangeKind {
    fn from(kind: wire::GroupChangeKind) -> GroupChangeKind {
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
}

impl From<&GroupChanged> for wire::GroupChanged {
    fn from(changed: &GroupChanged) -> wire::GroupChanged {
        let group = &changed.group;
        wire::GroupChanged {
            conversation_id: changed.conversation_id,
            conv_seq: changed.conv_seq,
            by: changed.by,
            kind: changed.kind.into(),
            subjects: changed.subjects.clone(),
            members: changed.members.clone(),
            admins: group.admins.iter().copied().collect(),
            name: group.info.name.clone(),
            description: group.info.description.clone(),
            icon: group.info.icon.clone(),
            only_admins_send: group.settings.only_admins_send,
            only_admins_edit_info: group.settings.only_admins_edit_info,
            history_for_new_members: group.settings.history_for_new_members,
            max_members: i32::try_from(group.max_members).unwrap_or(i32::MAX),
            created_by: group.created_by,
            at: changed.at,
            invites: group
                .invites
                .iter()
                .map(|invite| wire::GroupInvite { user: invite.user, by: invite.by, at: invite.at })
                .collect(),
        }
    }
}

impl TryFrom<wire::GroupChanged> for GroupChanged {
    type Error = ConvertError;
    fn try_from(changed: wire::GroupChanged) -> Result<GroupChanged, ConvertError> {
        Ok(GroupChanged {
            conversation_id: changed.conversation_id,
            conv_seq: changed.conv_seq,
            by: changed.by,
            kind: changed.kind.into(),
            subjects: changed.subjects,
            members: changed.members,
            group: Group {
                info: GroupInfo { name: changed.name, description: changed.description, icon: changed.icon },
                settings: GroupSettings {
                    only_admins_send: changed.only_admins_send,
                    only_admins_edit_info: changed.only_admins_edit_info,
                    history_for_new_members: changed.history_for_new_members,
                },
                admins: changed.admins.into_iter().collect(),
                max_members: size_from_wire(i64::from(changed.max_members), "max_members")?,
                created_by: changed.created_by,
                invites: changed
                    .invites
                    .into_iter()
                    .map(|invite| GroupInvite { user: invite.user, by: invite.by, at: invite.at })
                    .collect(),
            },
            at: changed.at,
        })
    }
}

impl From<&GroupCommand> for wire::ChangeGroup {
    fn from(command: &GroupCommand) -> wire::ChangeGroup {
        let mut wire = wire::ChangeGroup {
            conversation_id: command.conversation_id,
            by: command.by,
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
                wire.users = members.clone();
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
                wire.users = users.clone();
            }
            GroupChange::RemoveMember { user } => {
                wire.kind = wire::GroupCommandKind::RemoveMember;
                wire.users = vec![*user];
            }
            GroupChange::Leave => wire.kind = wire::GroupCommandKind::Leave,
            GroupChange::SetAdmin { user, admin } => {
                wire.kind = wire::GroupCommandKind::SetAdmin;
                wire.users = vec![*user];
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
                wire.users = users.clone();
            }
            GroupChange::AcceptInvite => wire.kind = wire::GroupCommandKind::AcceptInvite,
            GroupChange::DeclineInvite => wire.kind = wire::GroupCommandKind::DeclineInvite,
        }
        wire
    }
}

impl TryFrom<wire::ChangeGroup> for GroupCommand {
    type Error = ConvertError;
    fn try_from(wire: wire::ChangeGroup) -> Result<GroupCommand, ConvertError> {
        let users = wire.users;
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
        Ok(GroupCommand { conversation_id: wire.conversation_id, by: wire.by, change })
    }
}
