//! Group commands, changes and their deliveries.

use missive_core::{ConvSeq, ConversationId, Millis, UserId};
use serde::{Deserialize, Serialize};

use super::ids;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupCommandKind {
    Create,
    AddMembers,
    RemoveMember,
    Leave,
    SetAdmin,
    UpdateInfo,
    UpdateSettings,
    Invite,
    AcceptInvite,
    DeclineInvite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupChangeKind {
    Created,
    MembersAdded,
    MemberRemoved,
    MemberLeft,
    AdminsChanged,
    InfoUpdated,
    SettingsUpdated,
    Invited,
    Joined,
    InviteDeclined,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeGroup {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub by: UserId,
    pub kind: GroupCommandKind,
    #[serde(with = "ids::many")]
    pub users: Vec<UserId>,
    pub admin: Option<bool>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub only_admins_send: Option<bool>,
    pub only_admins_edit_info: Option<bool>,
    pub history_for_new_members: Option<bool>,
    pub max_members: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupChanged {
    #[serde(with = "ids::one")]
    pub conversation_id: ConversationId,
    #[serde(with = "ids::one")]
    pub conv_seq: ConvSeq,
    #[serde(with = "ids::one")]
    pub by: UserId,
    pub kind: GroupChangeKind,
    #[serde(with = "ids::many")]
    pub subjects: Vec<UserId>,
    #[serde(with = "ids::many")]
    pub members: Vec<UserId>,
    #[serde(with = "ids::many")]
    pub admins: Vec<UserId>,
    pub name: String,
    pub description: String,
    pub icon: String,
    pub only_admins_send: bool,
    pub only_admins_edit_info: bool,
    pub history_for_new_members: bool,
    pub max_members: i32,
    #[serde(with = "ids::one")]
    pub created_by: UserId,
    pub at: Millis,
    #[serde(default)]
    pub invites: Vec<GroupInvite>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupInvite {
    #[serde(with = "ids::one")]
    pub user: UserId,
    #[serde(with = "ids::one")]
    pub by: UserId,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverGroupChange {
    #[serde(with = "ids::one")]
    pub recipient: UserId,
    pub change: GroupChanged,
}
