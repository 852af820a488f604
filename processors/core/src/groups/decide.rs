//! The group decider and fold: a change is checked against the group as
//! the conversation log has it, and takes a `conv_seq` like a message.

use std::collections::BTreeSet;

use crate::conversation::{ConversationEvent, ConversationState, Rejection};
use crate::ids::{ConvSeq, Millis, UserId};

use super::model::*;

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
