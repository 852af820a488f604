//! Group commands, changes and their deliveries.

use serde::{Deserialize, Serialize};

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
    pub conversation_id: i64,
    pub by: i64,
    pub kind: GroupCommandKind,
    pub users: Vec<i64>,
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
    pub conversation_id: i64,
    pub conv_seq: i64,
    pub by: i64,
    pub kind: GroupChangeKind,
    pub subjects: Vec<i64>,
    pub members: Vec<i64>,
    pub admins: Vec<i64>,
    pub name: String,
    pub description: String,
    pub icon: String,
    pub only_admins_send: bool,
    pub only_admins_edit_info: bool,
    pub history_for_new_members: bool,
    pub max_members: i32,
    pub created_by: i64,
    pub at: i64,
    #[serde(default)]
    pub invites: Vec<GroupInvite>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupInvite {
    pub user: i64,
    pub by: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverGroupChange {
    pub recipient: i64,
    pub change: GroupChanged,
}
