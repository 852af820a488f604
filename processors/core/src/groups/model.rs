//! A group: its info, settings, members, admins and invites, the changes
//! asked of it and the changes decided.

use std::collections::BTreeSet;

use crate::ids::{ConvSeq, ConversationId, Millis, UserId};

/// Members a group may have unless created with another limit.
pub const DEFAULT_MAX_MEMBERS: u32 = 256;
/// The largest limit a group may be created with.
pub const MAX_MEMBERS_LIMIT: u32 = 1024;
pub const MAX_GROUP_NAME_CHARS: usize = 100;
pub const MAX_GROUP_DESCRIPTION_CHARS: usize = 2048;
pub const MAX_ICON_REF_BYTES: usize = 512;
/// How long an invite stays open (as the record timestamps count time).
pub const INVITE_TTL: Millis = Millis(7 * 24 * 3600 * 1000);

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub description: String,
    /// The icon's media id (checked by the gateway); empty when none.
    pub icon: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct GroupSettings {
    pub only_admins_send: bool,
    pub only_admins_edit_info: bool,
    /// New members may read history from before they joined.
    pub history_for_new_members: bool,
}

/// A group's own state beside the conversation's members.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    pub info: GroupInfo,
    pub settings: GroupSettings,
    pub admins: BTreeSet<UserId>,
    pub max_members: u32,
    pub created_by: UserId,
    /// Open invites, by user: someone whose group-add privacy setting did
    /// not allow the admin to add them joins only by accepting.
    #[serde(default)]
    pub invites: Vec<GroupInvite>,
}

/// An open invite to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupInvite {
    pub user: UserId,
    pub by: UserId,
    pub at: Millis,
}

impl Group {
    pub(crate) fn invite_of(&self, user: UserId) -> Option<&GroupInvite> {
        self.invites.iter().find(|invite| invite.user == user)
    }
}

/// A change someone asks for; `by` is the acting member.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GroupChange {
    Create {
        info: GroupInfo,
        settings: GroupSettings,
        members: Vec<UserId>,
        max_members: u32,
    },
    AddMembers {
        users: Vec<UserId>,
    },
    RemoveMember {
        user: UserId,
    },
    Leave,
    SetAdmin {
        user: UserId,
        admin: bool,
    },
    UpdateInfo {
        name: Option<String>,
        description: Option<String>,
        icon: Option<String>,
    },
    UpdateSettings {
        only_admins_send: Option<bool>,
        only_admins_edit_info: Option<bool>,
        history_for_new_members: Option<bool>,
    },
    /// An admin invites users instead of adding them (the gateway chooses
    /// this for users whose group-add privacy setting refuses the admin).
    Invite {
        users: Vec<UserId>,
    },
    /// The invited user (`by`) joins.
    AcceptInvite,
    /// The invited user (`by`) says no.
    DeclineInvite,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupCommand {
    pub conversation_id: ConversationId,
    pub by: UserId,
    pub change: GroupChange,
}

/// What a recorded change did, for feeds and analysts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GroupChangeKind {
    Created,
    MembersAdded,
    MemberRemoved,
    MemberLeft,
    AdminsChanged,
    InfoUpdated,
    SettingsUpdated,
    Invited,
    /// An invited user accepted and became a member.
    Joined,
    InviteDeclined,
}

impl GroupChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupChangeKind::Created => "created",
            GroupChangeKind::MembersAdded => "members_added",
            GroupChangeKind::MemberRemoved => "member_removed",
            GroupChangeKind::MemberLeft => "member_left",
            GroupChangeKind::AdminsChanged => "admins_changed",
            GroupChangeKind::InfoUpdated => "info_updated",
            GroupChangeKind::SettingsUpdated => "settings_updated",
            GroupChangeKind::Invited => "invited",
            GroupChangeKind::Joined => "joined",
            GroupChangeKind::InviteDeclined => "invite_declined",
        }
    }
}

/// A change as the conversation log records it: its position, who did it,
/// whom it concerned, and the whole group after it (so any reader can
/// start from any event).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupChanged {
    pub conversation_id: ConversationId,
    pub conv_seq: ConvSeq,
    pub by: UserId,
    pub kind: GroupChangeKind,
    /// The users the change concerned (added, removed, promoted...).
    pub subjects: Vec<UserId>,
    /// Sorted members after the change.
    pub members: Vec<UserId>,
    pub group: Group,
    pub at: Millis,
}

impl GroupChanged {
    /// Who hears of the change: the members after it, and anyone it
    /// removed, invited or who declined (the invitee's feed entry is the invite).
    pub fn audience(&self) -> Vec<UserId> {
        let mut audience: BTreeSet<UserId> = self.members.iter().copied().collect();
        if matches!(
            self.kind,
            GroupChangeKind::MemberRemoved
                | GroupChangeKind::MemberLeft
                | GroupChangeKind::Invited
                | GroupChangeKind::InviteDeclined
        ) {
            audience.extend(self.subjects.iter().copied());
        }
        audience.into_iter().collect()
    }
}
