use super::decide::*;
use super::model::*;
use crate::ids::*;
use std::collections::BTreeMap;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const MALLORY: UserId = UserId(3);

fn send(from: UserId, to: UserId, client_msg_id: &str, message_id: u64) -> SendMessage {
    SendMessage {
        conversation_id: ConversationId::direct(from, to),
        message_id: MessageId(message_id),
        from,
        from_device: DeviceId(from.0 * 10),
        to,
        client_msg_id: client_msg_id.to_string(),
        content: format!("hello {message_id}"),
        reply_to: None,
        forward_count: 0,
        attachment: None,
        session_id: None,
    }
}

fn given(events: &[ConversationEvent]) -> ConversationState {
    events.iter().fold(ConversationState::default(), evolve)
}

fn sent(state: &ConversationState, command: &SendMessage) -> ConversationEvent {
    let (_, events) = decide_send(state, command, None, Millis(1000)).expect("accepted");
    events.into_iter().next().expect("one event")
}

#[test]
fn first_send_creates_the_conversation_at_seq_one() {
    let command = send(ALICE, BOB, "c1", 100);
    let (outcome, events) = decide_send(&ConversationState::default(), &command, None, Millis(5)).expect("ok");
    assert_eq!(outcome, SendOutcome::Accepted { message_id: MessageId(100), conv_seq: ConvSeq(1) });
    let ConversationEvent::MessageSent(message) = &events[0] else { panic!("expected a message") };
    assert_eq!(message.members, vec![ALICE, BOB]);
    assert_eq!(message.sent_at, Millis(5));
}

#[test]
fn sequence_is_gap_free_across_both_senders() {
    let mut state = ConversationState::default();
    for index in 0..10u64 {
        let (from, to) = if index % 3 == 0 { (BOB, ALICE) } else { (ALICE, BOB) };
        let event = sent(&state, &send(from, to, &format!("c{index}"), 100 + index));
        state = evolve(state, &event);
        assert_eq!(state.last_seq, ConvSeq(index + 1));
    }
}

#[test]
fn retry_returns_the_original_identity_and_records_nothing() {
    let state = given(&[sent(&ConversationState::default(), &send(ALICE, BOB, "c1", 100))]);
    let prior = PriorSend { message_id: MessageId(100), conv_seq: ConvSeq(1), at: Millis(1000) };
    let retry = send(ALICE, BOB, "c1", 999);
    let (outcome, events) = decide_send(&state, &retry, Some(prior), Millis(2000)).expect("ok");
    assert_eq!(outcome, SendOutcome::Duplicate { message_id: MessageId(100), conv_seq: ConvSeq(1) });
    assert!(events.is_empty());
}

#[test]
fn a_stale_prior_outside_the_window_is_a_new_message() {
    let state = given(&[sent(&ConversationState::default(), &send(ALICE, BOB, "c1", 100))]);
    let prior = PriorSend { message_id: MessageId(100), conv_seq: ConvSeq(1), at: Millis(0) };
    let (outcome, _) =
        decide_send(&state, &send(ALICE, BOB, "c1", 101), Some(prior), Millis(DEDUPE_WINDOW_MS + 1)).expect("ok");
    assert_eq!(outcome, SendOutcome::Accepted { message_id: MessageId(101), conv_seq: ConvSeq(2) });
}

#[test]
fn refusals_carry_stable_codes() {
    let empty = ConversationState::default();
    let mut big = send(ALICE, BOB, "c1", 1);
    big.content = "x".repeat(MAX_CONTENT_BYTES + 1);
    assert_eq!(decide_send(&empty, &big, None, Millis(0)).map(|_| ()), Err(Rejection::TooLarge));
    let mut forged = send(ALICE, BOB, "c1", 1);
    forged.conversation_id = ConversationId(42);
    assert_eq!(
        decide_send(&empty, &forged, None, Millis(0)).map(|_| ()).map_err(|r| r.code()),
        Err("wrong_conversation")
    );
    let no_id = send(ALICE, BOB, "", 1);
    assert_eq!(decide_send(&empty, &no_id, None, Millis(0)).map(|_| ()), Err(Rejection::BadClientMsgId));
    let state = given(&[sent(&empty, &send(ALICE, BOB, "c1", 1))]);
    let mark = MarkReceipt {
        conversation_id: ConversationId::direct(ALICE, BOB),
        by: MALLORY,
        status: ReceiptStatus::Read,
        up_to: ConvSeq(1),
        notify: true,
    };
    assert_eq!(decide_receipt(&state, Watermarks::default(), &mark, &[], Millis(0)), Err(Rejection::NotMember));
}

#[test]
fn read_covers_only_the_other_members_messages_and_implies_delivery() {
    let mut state = ConversationState::default();
    let mut refs = Vec::new();
    for (index, (from, to)) in [(ALICE, BOB), (BOB, ALICE), (ALICE, BOB)].into_iter().enumerate() {
        let event = sent(&state, &send(from, to, &format!("c{index}"), 10 + index as u64));
        if let ConversationEvent::MessageSent(message) = &event {
            refs.push(StoredMessage::of(message));
        }
        state = evolve(state, &event);
    }
    let mark = MarkReceipt {
        conversation_id: ConversationId::direct(ALICE, BOB),
        by: BOB,
        status: ReceiptStatus::Read,
        up_to: ConvSeq(99),
        notify: true,
    };
    let marks = Watermarks::default();
    assert_eq!(receipt_range(&state, marks, &mark), Some((ConvSeq(1), ConvSeq(3))));
    let events = decide_receipt(&state, marks, &mark, &refs, Millis(7)).expect("ok");
    assert_eq!(events.len(), 2, "delivered then read");
    for event in &events {
        let ConversationEvent::ReceiptsAdvanced(advanced) = event else { panic!("receipt") };
        assert_eq!(advanced.up_to, ConvSeq(3));
        let ids: Vec<u64> = advanced.messages.iter().map(|m| m.message_id.0).collect();
        assert_eq!(ids, vec![10, 12]);
    }
    let marks = events.iter().fold(marks, |marks, event| match event {
        ConversationEvent::ReceiptsAdvanced(advanced) => evolve_marks(marks, advanced),
        _ => marks,
    });
    assert_eq!(marks, Watermarks { delivered: ConvSeq(3), read: ConvSeq(3) });
    assert_eq!(receipt_range(&state, marks, &mark), None, "a repeated read changes nothing");
    let delivered = MarkReceipt { status: ReceiptStatus::Delivered, ..mark };
    assert_eq!(decide_receipt(&state, marks, &delivered, &refs, Millis(8)), Ok(Vec::new()));
}

#[test]
fn a_one_recipient_message_keeps_no_counts_and_still_ticks_once_per_status() {
    let event = sent(&ConversationState::default(), &send(ALICE, BOB, "c0", 10));
    let ConversationEvent::MessageSent(message) = &event else { panic!("sent") };
    let state = evolve(ConversationState::default(), &event);
    let stored = StoredMessage::of(message);
    let mut kept = stored.clone();
    let mut marks = Watermarks::default();
    for status in [ReceiptStatus::Delivered, ReceiptStatus::Read] {
        let mark =
            MarkReceipt { conversation_id: message.conversation_id, by: BOB, status, up_to: ConvSeq(1), notify: true };
        // The index entry as the shell keeps it: never rewritten by a receipt.
        let events = decide_receipt(&state, marks, &mark, std::slice::from_ref(&kept), Millis(7)).expect("ok");
        let ConversationEvent::ReceiptsAdvanced(advanced) = &events[0] else { panic!("receipt") };
        assert_eq!((advanced.messages[0].count, advanced.messages[0].of), (1, 1), "{status:?}");
        assert!(!kept.record(status, advanced.messages[0].count), "nothing to rewrite");
        marks = evolve_marks(marks, advanced);
    }
    assert_eq!(kept, stored);
    assert_eq!(marks, Watermarks { delivered: ConvSeq(1), read: ConvSeq(1) });
}

#[test]
fn group_receipts_count_each_recipient_once_and_skip_members_who_joined_later() {
    use crate::groups::{GroupChange, GroupCommand, GroupInfo, GroupSettings, decide_group};
    let group = ConversationId(900);
    let change = |by, change| GroupCommand { conversation_id: group, by, change };
    let create = change(
        ALICE,
        GroupChange::Create {
            info: GroupInfo { name: "g".into(), ..GroupInfo::default() },
            settings: GroupSettings::default(),
            members: vec![BOB, MALLORY],
            max_members: 0,
        },
    );
    let state = given(&decide_group(&ConversationState::default(), &create, Millis(0)).expect("created"));
    let send = SendMessage { conversation_id: group, to: UserId(0), ..send(ALICE, BOB, "g1", 77) };
    let (_, events) = decide_send(&state, &send, None, Millis(1)).expect("sent");
    let ConversationEvent::MessageSent(message) = &events[0] else { panic!("a message") };
    let mut stored = StoredMessage::of(message);
    assert_eq!(stored.recipients, 2);
    let mut state = events.iter().fold(state, evolve);
    let mut stored_marks: BTreeMap<UserId, Watermarks> = BTreeMap::new();
    let mut tick = |state: ConversationState, by, status| {
        let mark = MarkReceipt { conversation_id: group, by, status, up_to: ConvSeq(9), notify: true };
        let marks = member_marks(&state, by, stored_marks.get(&by).copied());
        let events = decide_receipt(&state, marks, &mark, std::slice::from_ref(&stored), Millis(5)).expect("marked");
        let mut counts = Vec::new();
        for event in &events {
            let ConversationEvent::ReceiptsAdvanced(advanced) = event else { panic!("receipts") };
            let marks = member_marks(&state, by, stored_marks.get(&by).copied());
            stored_marks.insert(by, evolve_marks(marks, advanced));
            for reference in &advanced.messages {
                stored.record(advanced.status, reference.count);
                counts.push((advanced.status, reference.count, reference.of));
            }
        }
        (events.iter().fold(state, evolve), counts)
    };
    let counts;
    (state, counts) = tick(state, BOB, ReceiptStatus::Delivered);
    assert_eq!(counts, vec![(ReceiptStatus::Delivered, 1, 2)]);
    let counts;
    (state, counts) = tick(state, MALLORY, ReceiptStatus::Read);
    assert_eq!(counts, vec![(ReceiptStatus::Delivered, 2, 2), (ReceiptStatus::Read, 1, 2)]);
    let counts;
    (state, counts) = tick(state, BOB, ReceiptStatus::Read);
    assert_eq!(counts, vec![(ReceiptStatus::Read, 2, 2)]);
    let counts;
    (state, counts) = tick(state, ALICE, ReceiptStatus::Read);
    assert!(counts.is_empty(), "the sender's own read counts nothing");
    let add = change(ALICE, GroupChange::AddMembers { users: vec![UserId(4)] });
    let state = decide_group(&state, &add, Millis(6)).expect("added").iter().fold(state, evolve);
    let (_, counts) = tick(state, UserId(4), ReceiptStatus::Read);
    assert!(counts.is_empty(), "a member who joined later never received the message");
}

#[test]
fn a_blocked_senders_messages_are_accepted_but_withheld_and_never_ticked() {
    let block =
        SetBlock { conversation_id: ConversationId::direct(ALICE, BOB), blocker: BOB, target: ALICE, blocked: true };
    let state = decide_block(&ConversationState::default(), &block).expect("decided").expect("changed");
    assert_eq!(decide_block(&state, &block), Ok(None), "blocking twice changes nothing");
    let (outcome, events) = decide_send(&state, &send(ALICE, BOB, "c1", 1), None, Millis(1)).expect("decided");
    assert!(matches!(outcome, SendOutcome::Accepted { .. }));
    let ConversationEvent::MessageSent(message) = &events[0] else { panic!() };
    assert_eq!(message.withheld_from, vec![BOB]);
    let (_, reply) = decide_send(&state, &send(BOB, ALICE, "c2", 2), None, Millis(1)).expect("decided");
    let ConversationEvent::MessageSent(reply) = &reply[0] else { panic!() };
    assert!(reply.withheld_from.is_empty(), "the blocker can still write");
    let stored = StoredMessage::of(message);
    let state = evolve(state, &events[0]);
    let read = MarkReceipt {
        conversation_id: block.conversation_id,
        by: BOB,
        status: ReceiptStatus::Read,
        up_to: ConvSeq(1),
        notify: true,
    };
    for event in decide_receipt(&state, Watermarks::default(), &read, &[stored], Millis(2)).expect("decided") {
        let ConversationEvent::ReceiptsAdvanced(advanced) = event else { panic!() };
        assert!(advanced.messages.is_empty(), "no tick for a withheld message");
    }
    let forged = SetBlock { conversation_id: ConversationId::direct(ALICE, MALLORY), ..block };
    assert_eq!(decide_block(&state, &forged), Err(Rejection::WrongConversation));
}

mod properties {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Applies sends (by `(from_alice, client id)`) through decide + evolve,
    /// round-tripping the state through JSON at every chunk boundary
    /// (what a commit and reload does). Returns the state and accepted ids.
    fn apply(sends: &[(bool, u8)], chunk: usize) -> (ConversationState, Vec<(u64, u64)>) {
        let mut state = ConversationState::default();
        let mut priors: BTreeMap<(bool, u8), PriorSend> = BTreeMap::new();
        let mut accepted = Vec::new();
        for (index, (from_alice, client)) in sends.iter().enumerate() {
            if index % chunk == 0 {
                let json = serde_json::to_string(&state).expect("serialize");
                state = serde_json::from_str(&json).expect("deserialize");
            }
            let (from, to) = if *from_alice { (ALICE, BOB) } else { (BOB, ALICE) };
            let command = send(from, to, &format!("c{client}"), index as u64 + 1);
            let prior = priors.get(&(*from_alice, *client)).copied();
            let (outcome, events) = decide_send(&state, &command, prior, Millis(index as i64)).expect("valid");
            if let SendOutcome::Accepted { message_id, conv_seq } = outcome {
                priors.insert((*from_alice, *client), PriorSend { message_id, conv_seq, at: Millis(index as i64) });
                accepted.push((message_id.0, conv_seq.0));
            }
            state = events.iter().fold(state, evolve);
        }
        (state, accepted)
    }

    proptest! {
        #[test]
        fn sequences_are_gap_free_retries_are_deduplicated_and_chunking_does_not_matter(
            sends in proptest::collection::vec((any::<bool>(), 0u8..8), 1..80),
            chunk in 1usize..10,
        ) {
            let (whole, accepted) = apply(&sends, usize::MAX);
            let (chunked, accepted_chunked) = apply(&sends, chunk);
            prop_assert_eq!(&whole, &chunked);
            prop_assert_eq!(&accepted, &accepted_chunked);
            let seqs: Vec<u64> = accepted.iter().map(|(_, seq)| *seq).collect();
            prop_assert_eq!(seqs, (1..=accepted.len() as u64).collect::<Vec<u64>>());
            let distinct: std::collections::BTreeSet<(bool, u8)> = sends.iter().copied().collect();
            prop_assert_eq!(accepted.len(), distinct.len(), "one message per (device, client_msg_id)");
        }
    }
}
