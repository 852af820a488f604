use super::decide::*;
use super::model::*;
use crate::conversation::{ConversationEvent, ConversationState, Rejection};
use crate::ids::*;
use std::collections::BTreeSet;

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
        session_id: None,
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
    let state = apply(state.clone(), &decide_group(&state, &command(5, GroupChange::Leave), Millis(2)).expect("leave"));
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
    assert_eq!(conversation::decide_send(&state, &send(3, 50), None, Millis(4)).map(|_| ()), Err(Rejection::Forbidden));
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
