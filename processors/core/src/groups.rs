//! Groups: membership, admins, info and settings, decided in the group's own
//! conversation log. A membership change takes a `conv_seq` like a message,
//! so "who receives message N" is the member list after every change before
//! N — decided by the log order, never by a racing cache.

use std::collections::BTreeSet;

use crate::conversation::{ConversationEvent, ConversationState, Rejection};
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
    fn invite_of(&self, user: UserId) -> Option<&GroupInvite> {
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

fn too_long(text: &Option<String>, max_chars: usize) -> bool {
    text.as_ref().is_some_and(|text| text.chars().count() > max_chars)
}

fn check_info(name: &Option<String>, description: &Option<String>, icon: &Option<String>) -> Result<(), Rejection> {
    if too_long(name, MAX_GROUP_NAME_CHARS)
        || too_long(description, MAX_GROUP_DESCRIPTION_CHARS)
        || icon.as_ref().is_some_and(|icon| icon.len() > MAX_ICON_REF_BYTES)
    {
        return Err(Rejection::TooLarge);
    }
    if name.as_deref().is_some_and(crate::users::has_unsafe_characters) {
        return Err(Rejection::BadRequest("group names may not contain control or bidirectional override characters"));
    }
    Ok(())
}

/// Decides a group change against the conversation's state.
pub fn decide_group(
    state: &ConversationState,
    command: &GroupCommand,
    now: Millis,
) -> Result<Vec<ConversationEvent>, Rejection> {
    let by = command.by;
    let changed = |kind, subjects: Vec<UserId>, members: Vec<UserId>, group: Group| {
        Ok(vec![ConversationEvent::GroupChanged(GroupChanged {
            conversation_id: command.conversation_id,
            conv_seq: state.last_seq.next(),
            by,
            kind,
            subjects,
            members,
            group,
            at: now,
        })])
    };
    let Some(group) = &state.group else {
        let GroupChange::Create { info, settings, members, max_members } = &command.change else {
            return Err(Rejection::NotAGroup);
        };
        if !state.members.is_empty() || state.last_seq != ConvSeq(0) {
            return Err(Rejection::AlreadyExists);
        }
        check_info(&Some(info.name.clone()), &Some(info.description.clone()), &Some(info.icon.clone()))?;
        if info.name.trim().is_empty() {
            return Err(Rejection::BadRequest("a group needs a name"));
        }
        let max_members = if *max_members == 0 { DEFAULT_MAX_MEMBERS } else { *max_members };
        if max_members > MAX_MEMBERS_LIMIT {
            return Err(Rejection::BadRequest("max_members is at most 1024"));
        }
        let mut all: BTreeSet<UserId> = members.iter().copied().collect();
        all.insert(by);
        if all.len() > max_members as usize {
            return Err(Rejection::TooManyMembers);
        }
        let group = Group {
            info: info.clone(),
            settings: *settings,
            admins: BTreeSet::from([by]),
            max_members,
            created_by: by,
            invites: Vec::new(),
        };
        let subjects: Vec<UserId> = all.iter().copied().filter(|user| *user != by).collect();
        return changed(GroupChangeKind::Created, subjects, all.into_iter().collect(), group);
    };
    let member = state.members.binary_search(&by).is_ok();
    match &command.change {
        GroupChange::AcceptInvite | GroupChange::DeclineInvite if member => return Ok(Vec::new()),
        GroupChange::AcceptInvite => {
            let invite = group.invite_of(by).ok_or(Rejection::NoInvite)?;
            if now.0.saturating_sub(invite.at.0) > INVITE_TTL.0 {
                return Err(Rejection::InviteExpired);
            }
            if state.members.len() >= group.max_members as usize {
                return Err(Rejection::TooManyMembers);
            }
            let mut next = group.clone();
            next.invites.retain(|invite| invite.user != by);
            let after: Vec<UserId> =
                state.members.iter().copied().chain([by]).collect::<BTreeSet<_>>().into_iter().collect();
            return changed(GroupChangeKind::Joined, vec![by], after, next);
        }
        GroupChange::DeclineInvite => {
            group.invite_of(by).ok_or(Rejection::NoInvite)?;
            let mut next = group.clone();
            next.invites.retain(|invite| invite.user != by);
            return changed(GroupChangeKind::InviteDeclined, vec![by], state.members.clone(), next);
        }
        _ => {}
    }
    if !member {
        return Err(Rejection::NotMember);
    }
    let admin = group.admins.contains(&by);
    let members: BTreeSet<UserId> = state.members.iter().copied().collect();
    match &command.change {
        GroupChange::Create { .. } => Err(Rejection::AlreadyExists),
        GroupChange::AcceptInvite | GroupChange::DeclineInvite => Ok(Vec::new()),
        GroupChange::Invite { users } => {
            if !admin {
                return Err(Rejection::Forbidden);
            }
            let fresh: BTreeSet<UserId> = users
                .iter()
                .copied()
                .filter(|user| !members.contains(user) && group.invite_of(*user).is_none())
                .collect();
            if fresh.is_empty() {
                return Ok(Vec::new());
            }
            // Open invites are bounded like members: at most max_members.
            if group.invites.len() + fresh.len() > group.max_members as usize {
                return Err(Rejection::TooManyMembers);
            }
            let mut next = group.clone();
            next.invites.extend(fresh.iter().map(|user| GroupInvite { user: *user, by, at: now }));
            next.invites.sort_by_key(|invite| invite.user);
            changed(GroupChangeKind::Invited, fresh.into_iter().collect(), state.members.clone(), next)
        }
        GroupChange::AddMembers { users } => {
            if !admin {
                return Err(Rejection::Forbidden);
            }
            let added: Vec<UserId> = users.iter().copied().filter(|user| !members.contains(user)).collect();
            let added: Vec<UserId> = added.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
            if added.is_empty() {
                return Ok(Vec::new());
            }
            if members.len() + added.len() > group.max_members as usize {
                return Err(Rejection::TooManyMembers);
            }
            let after: Vec<UserId> =
                members.iter().chain(added.iter()).copied().collect::<BTreeSet<_>>().into_iter().collect();
            let mut next = group.clone();
            next.invites.retain(|invite| !added.contains(&invite.user));
            changed(GroupChangeKind::MembersAdded, added, after, next)
        }
        GroupChange::RemoveMember { user } => {
            if !admin {
                return Err(Rejection::Forbidden);
            }
            if !members.contains(user) {
                return Ok(Vec::new());
            }
            if *user == by {
                return Err(Rejection::BadRequest("leave the group instead of removing yourself"));
            }
            let mut next = group.clone();
            next.admins.remove(user);
            let after: Vec<UserId> = members.iter().copied().filter(|member| member != user).collect();
            changed(GroupChangeKind::MemberRemoved, vec![*user], after, next)
        }
        GroupChange::Leave => {
            let after: Vec<UserId> = members.iter().copied().filter(|member| *member != by).collect();
            let mut next = group.clone();
            next.admins.remove(&by);
            // A group is never left without an admin: the longest-standing
            // member (lowest id, deterministic) is promoted.
            if next.admins.is_empty()
                && let Some(first) = after.first()
            {
                next.admins.insert(*first);
            }
            changed(GroupChangeKind::MemberLeft, vec![by], after, next)
        }
        GroupChange::SetAdmin { user, admin: promote } => {
            if !admin {
                return Err(Rejection::Forbidden);
            }
            if !members.contains(user) {
                return Err(Rejection::BadRequest("only members can be admins"));
            }
            if group.admins.contains(user) == *promote {
                return Ok(Vec::new());
            }
            let mut next = group.clone();
            if *promote {
                next.admins.insert(*user);
            } else {
                next.admins.remove(user);
                if next.admins.is_empty() {
                    return Err(Rejection::BadRequest("a group keeps at least one admin"));
                }
            }
            changed(GroupChangeKind::AdminsChanged, vec![*user], state.members.clone(), next)
        }
        GroupChange::UpdateInfo { name, description, icon } => {
            if group.settings.only_admins_edit_info && !admin {
                return Err(Rejection::Forbidden);
            }
            check_info(name, description, icon)?;
            let mut next = group.clone();
            if let Some(name) = name {
                if name.trim().is_empty() {
                    return Err(Rejection::BadRequest("a group needs a name"));
                }
                next.info.name = name.clone();
            }
            if let Some(description) = description {
                next.info.description = description.clone();
            }
            if let Some(icon) = icon {
                next.info.icon = icon.clone();
            }
            if next == *group {
                return Ok(Vec::new());
            }
            changed(GroupChangeKind::InfoUpdated, Vec::new(), state.members.clone(), next)
        }
        GroupChange::UpdateSettings { only_admins_send, only_admins_edit_info, history_for_new_members } => {
            if !admin {
                return Err(Rejection::Forbidden);
            }
            let mut next = group.clone();
            let settings = &mut next.settings;
            settings.only_admins_send = only_admins_send.unwrap_or(settings.only_admins_send);
            settings.only_admins_edit_info = only_admins_edit_info.unwrap_or(settings.only_admins_edit_info);
            settings.history_for_new_members = history_for_new_members.unwrap_or(settings.history_for_new_members);
            if next == *group {
                return Ok(Vec::new());
            }
            changed(GroupChangeKind::SettingsUpdated, Vec::new(), state.members.clone(), next)
        }
    }
}

/// Folds a recorded change into the conversation state.
pub fn evolve_group(mut state: ConversationState, changed: &GroupChanged) -> ConversationState {
    // Members joining here received nothing before: their watermarks start
    // at the join (`conversation::member_marks`), so receipt counts never
    // include messages they never got.
    for member in &changed.members {
        if state.members.binary_search(member).is_err() {
            state.joined.insert(*member, changed.conv_seq);
        }
    }
    state.joined.retain(|member, _| changed.members.binary_search(member).is_ok());
    state.members = changed.members.clone();
    state.group = Some(changed.group.clone());
    state.last_seq = changed.conv_seq;
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{self, SendMessage, SendOutcome};
    use crate::delivery::{DeliveryItem, route_conversation_event};
    use crate::ids::{DeviceId, MessageId};

    const GROUP: ConversationId = ConversationId(77);

    fn command(by: u64, change: GroupChange) -> GroupCommand {
        GroupCommand { conversation_id: GROUP, by: UserId(by), change }
    }

    fn create(by: u64, members: &[u64]) -> GroupCommand {
        command(
            by,
            GroupChange::Create {
                info: GroupInfo { name: "team".into(), ..GroupInfo::default() },
                settings: GroupSettings::default(),
                members: members.iter().copied().map(UserId).collect(),
                max_members: 0,
            },
        )
    }

    fn apply(state: ConversationState, events: &[ConversationEvent]) -> ConversationState {
        events.iter().fold(state, conversation::evolve)
    }

    fn send(from: u64, id: u64) -> SendMessage {
        SendMessage {
            conversation_id: GROUP,
            message_id: MessageId(id),
            from: UserId(from),
            from_device: DeviceId(from),
            to: UserId(0),
            client_msg_id: format!("c{id}"),
            content: "hi".into(),
            reply_to: None,
            forward_count: 0,
            attachment: None,
        }
    }

    #[test]
    fn only_admins_change_membership_and_the_creator_is_the_first_admin() {
        let state = apply(
            ConversationState::default(),
            &decide_group(&ConversationState::default(), &create(1, &[2, 3]), Millis(1)).expect("create"),
        );
        assert_eq!(state.members, vec![UserId(1), UserId(2), UserId(3)]);
        assert_eq!(state.last_seq, ConvSeq(1), "the creation is the log's first entry");
        let add = command(2, GroupChange::AddMembers { users: vec![UserId(4)] });
        assert_eq!(decide_group(&state, &add, Millis(2)), Err(Rejection::Forbidden));
        assert_eq!(decide_group(&state, &command(9, GroupChange::Leave), Millis(2)), Err(Rejection::NotMember));
        let promote = command(1, GroupChange::SetAdmin { user: UserId(2), admin: true });
        let state = apply(state.clone(), &decide_group(&state, &promote, Millis(3)).expect("promote"));
        let state = apply(state.clone(), &decide_group(&state, &add, Millis(4)).expect("add by the new admin"));
        assert_eq!(state.members.len(), 4);
        assert_eq!(decide_group(&state, &create(1, &[]), Millis(5)), Err(Rejection::AlreadyExists));
    }

    #[test]
    fn an_invited_user_joins_only_by_accepting_and_invites_expire() {
        let state = apply(
            ConversationState::default(),
            &decide_group(&ConversationState::default(), &create(1, &[2]), Millis(1)).expect("create"),
        );
        let invite = command(1, GroupChange::Invite { users: vec![UserId(3), UserId(4)] });
        assert_eq!(
            decide_group(&state, &command(2, GroupChange::Invite { users: vec![UserId(3)] }), Millis(2)),
            Err(Rejection::Forbidden),
            "only admins invite"
        );
        let events = decide_group(&state, &invite, Millis(2)).expect("invite");
        let ConversationEvent::GroupChanged(invited) = &events[0] else { panic!("a group change") };
        assert_eq!(invited.kind, GroupChangeKind::Invited);
        assert_eq!(invited.members, vec![UserId(1), UserId(2)], "an invite adds nobody");
        assert_eq!(invited.audience(), vec![UserId(1), UserId(2), UserId(3), UserId(4)], "invitees hear of it");
        let state = apply(state, &events);
        assert_eq!(decide_group(&state, &invite, Millis(3)), Ok(Vec::new()), "inviting twice changes nothing");
        // An invitee is no member: it cannot send or act before accepting.
        assert_eq!(
            decide_group(
                &state,
                &command(3, GroupChange::UpdateInfo { name: Some("x".into()), description: None, icon: None }),
                Millis(3)
            ),
            Err(Rejection::NotMember)
        );
        assert_eq!(decide_group(&state, &command(5, GroupChange::AcceptInvite), Millis(3)), Err(Rejection::NoInvite));
        let joined = decide_group(&state, &command(3, GroupChange::AcceptInvite), Millis(4)).expect("accept");
        let state = apply(state, &joined);
        assert_eq!(state.members, vec![UserId(1), UserId(2), UserId(3)]);
        let group = state.group.clone().expect("group");
        assert_eq!(group.invites.iter().map(|invite| invite.user).collect::<Vec<_>>(), vec![UserId(4)]);
        assert_eq!(decide_group(&state, &command(3, GroupChange::AcceptInvite), Millis(5)), Ok(Vec::new()));
        // Declining closes the invite; an expired one cannot be accepted.
        let late = Millis(2 + INVITE_TTL.0 + 1);
        assert_eq!(decide_group(&state, &command(4, GroupChange::AcceptInvite), late), Err(Rejection::InviteExpired));
        let declined = decide_group(&state, &command(4, GroupChange::DeclineInvite), late).expect("decline");
        let state = apply(state, &declined);
        assert!(state.group.expect("group").invites.is_empty());
    }

    #[test]
    fn the_last_admin_leaving_promotes_someone_and_limits_hold() {
        let state = apply(
            ConversationState::default(),
            &decide_group(&ConversationState::default(), &create(5, &[2, 3]), Millis(1)).expect("create"),
        );
        let state =
            apply(state.clone(), &decide_group(&state, &command(5, GroupChange::Leave), Millis(2)).expect("leave"));
        let group = state.group.clone().expect("group");
        assert_eq!(group.admins, BTreeSet::from([UserId(2)]));
        let many: Vec<u64> = (10..10 + u64::from(DEFAULT_MAX_MEMBERS)).collect();
        assert_eq!(
            decide_group(&ConversationState::default(), &create(1, &many), Millis(1)),
            Err(Rejection::TooManyMembers)
        );
        let settings = command(
            3,
            GroupChange::UpdateSettings {
                only_admins_send: Some(true),
                only_admins_edit_info: None,
                history_for_new_members: None,
            },
        );
        assert_eq!(decide_group(&state, &settings, Millis(3)), Err(Rejection::Forbidden));
        let settings = GroupCommand { by: UserId(2), ..settings };
        let state = apply(state.clone(), &decide_group(&state, &settings, Millis(3)).expect("settings"));
        assert_eq!(
            conversation::decide_send(&state, &send(3, 50), None, Millis(4)).map(|_| ()),
            Err(Rejection::Forbidden)
        );
        assert!(matches!(
            conversation::decide_send(&state, &send(2, 51), None, Millis(4)),
            Ok((SendOutcome::Accepted { .. }, _))
        ));
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Send(u64),
            Add(u64),
            Remove(u64),
            Leave(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (1u64..=8).prop_map(Op::Send),
                1 => (1u64..=8).prop_map(Op::Add),
                1 => (2u64..=8).prop_map(Op::Remove),
                1 => (2u64..=8).prop_map(Op::Leave),
            ]
        }

        proptest! {
            /// Every member receives exactly the messages logged while it was
            /// a member: between the change that added it and the one that
            /// removed it, whatever the interleaving (user 1 is the admin).
            #[test]
            fn members_receive_exactly_the_messages_between_their_join_and_leave(ops in prop::collection::vec(op(), 1..80)) {
                let mut state = ConversationState::default();
                let created = decide_group(&state, &create(1, &[2, 3]), Millis(0)).expect("create");
                state = apply(state, &created);
                let mut log: Vec<ConversationEvent> = created;
                for (index, op) in ops.iter().enumerate() {
                    let now = Millis(index as i64 + 1);
                    let decided = match op {
                        Op::Send(from) => conversation::decide_send(&state, &send(*from, 1000 + index as u64), None, now).map(|(_, events)| events),
                        Op::Add(user) => decide_group(&state, &command(1, GroupChange::AddMembers { users: vec![UserId(*user)] }), now),
                        Op::Remove(user) => decide_group(&state, &command(1, GroupChange::RemoveMember { user: UserId(*user) }), now),
                        Op::Leave(user) => decide_group(&state, &command(*user, GroupChange::Leave), now),
                    };
                    if let Ok(events) = decided {
                        state = apply(state, &events);
                        log.extend(events);
                    }
                }
                // What each user received, by fan-out.
                let mut received: BTreeMap<UserId, Vec<ConvSeq>> = BTreeMap::new();
                // What each user should receive: messages while a member, by the log.
                let mut expected: BTreeMap<UserId, Vec<ConvSeq>> = BTreeMap::new();
                // Membership replayed from each change's kind and subjects
                // (not its member snapshot), to check the decider's lists.
                let mut members: BTreeSet<UserId> = BTreeSet::new();
                for event in &log {
                    for delivery in route_conversation_event(event) {
                        if let DeliveryItem::Message(message) = &delivery.item {
                            received.entry(delivery.recipient).or_default().push(message.conv_seq);
                        }
                    }
                    match event {
                        ConversationEvent::GroupChanged(changed) => {
                            match changed.kind {
                                GroupChangeKind::Created => {
                                    members.insert(changed.by);
                                    members.extend(changed.subjects.iter().copied());
                                }
                                GroupChangeKind::MembersAdded => members.extend(changed.subjects.iter().copied()),
                                GroupChangeKind::MemberRemoved | GroupChangeKind::MemberLeft => {
                                    for subject in &changed.subjects {
                                        members.remove(subject);
                                    }
                                }
                                _ => {}
                            }
                            prop_assert_eq!(members.iter().copied().collect::<Vec<_>>(), changed.members.clone());
                        }
                        ConversationEvent::MessageSent(message) => {
                            prop_assert!(members.contains(&message.from), "a non-member's message was accepted");
                            for member in &members {
                                expected.entry(*member).or_default().push(message.conv_seq);
                            }
                        }
                        ConversationEvent::ReceiptsAdvanced(_) | ConversationEvent::MessageModified(_) => {}
                    }
                }
                prop_assert_eq!(received, expected);
                let seqs: Vec<u64> = log.iter().filter_map(|event| match event {
                    ConversationEvent::GroupChanged(changed) => Some(changed.conv_seq.0),
                    ConversationEvent::MessageSent(message) => Some(message.conv_seq.0),
                    ConversationEvent::MessageModified(modified) => Some(modified.conv_seq.0),
                    ConversationEvent::ReceiptsAdvanced(_) => None,
                }).collect();
                prop_assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "one gap-free order for changes and messages");
            }
        }
    }
}
