//! The commit protocol does not depend on how records are batched: any
//! chunking of the same input, with a reload of the task's bookkeeping
//! between batches (a restart), yields the same state and outputs.

use std::sync::Arc;

use missive_core::conversation::{ConversationCommand, MarkReceipt, ReceiptStatus, SendMessage};
use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, UserId};
use missive_infra::db::{CF_STATE, family, open_db};
use missive_infra::{Offset, OutRecord, Record, TopicPartition};
use missive_schemas::WireValue;
use missive_schemas::{Codec, RecordType};
use prometheus::Registry;
use proptest::prelude::*;
use rocksdb::IteratorMode;
use rocksdb::{WriteBatch, WriteOptions};

use super::batch::*;
use super::meta::*;
use super::task_spec::*;
use crate::conversation::ConversationHandler;

fn codec() -> Arc<Codec> {
    let ids: Vec<(RecordType, u32)> = RecordType::ALL.iter().enumerate().map(|(i, t)| (*t, i as u32 + 1)).collect();
    Arc::new(Codec::new(&ids).expect("schemas parse"))
}

#[derive(Clone, Debug)]
enum Op {
    Send { from_alice: bool, client_id: u8 },
    Read { by_alice: bool, up_to: u64 },
}

#[test]
fn the_bookkeeping_is_one_key_and_stores_of_the_older_keys_move_to_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open_db(dir.path()).expect("db");
    let state = family(&db, CF_STATE);
    let spec = TaskSpec { processor: "inbox", input: TopicPartition::new("deliveries", 3), changelog: None };
    assert_eq!(stored_meta(&db, &spec).expect("read"), None, "a task that never ran has none");
    // A store written before: position, sseq and a dedupe mark per source.
    db.put_cf(state, spec.legacy_key("position"), 41u64.to_be_bytes()).expect("put");
    db.put_cf(state, spec.legacy_key("sseq"), 7u64.to_be_bytes()).expect("put");
    db.put_cf(state, spec.legacy_key("dedupe/conversation-2"), 90u64.to_be_bytes()).expect("put");
    db.put_cf(state, spec.legacy_key("dedupe/users-0"), 5u64.to_be_bytes()).expect("put");
    let mut meta = stored_meta(&db, &spec).expect("read").expect("legacy bookkeeping");
    assert_eq!((meta.position, meta.next_sseq, meta.dedupe.len()), (Offset(41), 7, 2));
    meta.position = Offset(50);
    let mut batch = WriteBatch::default();
    put_meta(&db, &mut batch, &spec, &meta);
    db.write(batch).expect("write");
    let keys: Vec<String> = db
        .iterator_cf(state, IteratorMode::Start)
        .map(|item| String::from_utf8_lossy(&item.expect("key").0).into_owned())
        .collect();
    assert_eq!(keys, vec!["__task/inbox-3/meta".to_string()], "one key left");
    let reloaded = stored_meta(&db, &spec).expect("read").expect("bookkeeping");
    assert_eq!((reloaded.position, reloaded.next_sseq), (Offset(50), 7));
    assert_eq!(reloaded.dedupe, meta.dedupe);
    assert_eq!(stored_position(&db, "inbox", TopicPartition::new("deliveries", 3)).expect("position"), 50);
    // Truncated or unknown encodings are refused, never misread.
    let bytes = reloaded.encode(7);
    assert_eq!(TaskMeta::decode(&bytes).expect("decode"), reloaded);
    for cut in 0..bytes.len() {
        assert!(TaskMeta::decode(&bytes[..cut]).is_err(), "a cut at {cut} decoded");
    }
    assert!(TaskMeta::decode(&[bytes.as_slice(), b"x"].concat()).is_err(), "trailing bytes decoded");
    assert!(TaskMeta::decode(&[2]).is_err(), "an unknown version decoded");
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..12).prop_map(|(from_alice, client_id)| Op::Send { from_alice, client_id }),
        1 => (any::<bool>(), 0u64..40).prop_map(|(by_alice, up_to)| Op::Read { by_alice, up_to }),
    ]
}

/// The `index`-th input record of a partition, stamped deterministically.
fn input_record(topic: &str, index: usize, key: u64, value: &missive_schemas::WireValue, codec: &Codec) -> Record {
    Record::from(missive_infra::RecordData {
        topic: topic.into(),
        partition: 0,
        offset: Offset(index as u64),
        timestamp: 1_800_000_000_000 + index as i64,
        key: key.to_string().into_bytes(),
        value: codec.encode_value(value).expect("encode"),
        headers: vec![],
    })
}

fn records(codec: &Codec, ops: &[Op]) -> Vec<Record> {
    let (alice, bob) = (UserId(11), UserId(22));
    let conversation_id = ConversationId::direct(alice, bob);
    ops.iter()
        .enumerate()
        .map(|(index, op)| {
            let command = match op {
                Op::Send { from_alice, client_id } => {
                    let (from, to) = if *from_alice { (alice, bob) } else { (bob, alice) };
                    ConversationCommand::Send(SendMessage {
                        conversation_id,
                        message_id: MessageId(1000 + index as u64),
                        from,
                        from_device: DeviceId(from.0),
                        to,
                        client_msg_id: format!("c{client_id}"),
                        content: format!("m{index}"),
                        reply_to: None,
                        forward_count: 0,
                        attachment: None,
                        session_id: None,
                    })
                }
                Op::Read { by_alice, up_to } => ConversationCommand::Receipt(MarkReceipt {
                    conversation_id,
                    by: if *by_alice { alice } else { bob },
                    status: ReceiptStatus::Read,
                    up_to: ConvSeq(*up_to),
                    notify: true,
                }),
            };
            input_record("commands.conversation", index, conversation_id.0, &WireValue::from(&command), codec)
        })
        .collect()
}

/// Runs the records in the given chunk sizes; returns (state dump, outputs).
fn run(records: &[Record], chunks: &[usize], codec: Arc<Codec>) -> (Vec<crate::tx::KeyValue>, Vec<OutRecord>) {
    let spec =
        TaskSpec { processor: "conversation", input: TopicPartition::new("commands.conversation", 0), changelog: None };
    let replies = crate::common::Replier::new(codec.clone(), Default::default());
    run_with(records, chunks, &spec, &mut ConversationHandler::new(codec, Default::default(), replies))
}

fn run_with(
    records: &[Record],
    chunks: &[usize],
    spec: &TaskSpec,
    handler: &mut dyn Handler,
) -> (Vec<crate::tx::KeyValue>, Vec<OutRecord>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open_db(dir.path()).expect("db");
    let metrics = RuntimeMetrics::new(&Registry::new()).expect("metrics");
    let mut outputs = Vec::new();
    let mut start = 0;
    let mut sizes = chunks.iter().cycle();
    while start < records.len() {
        let size = (*sizes.next().unwrap_or(&1)).max(1).min(records.len() - start);
        let mut meta = load_meta(&db, spec).expect("meta");
        outputs.extend(
            process_batch(
                &db,
                spec,
                &mut meta,
                handler,
                &records[start..start + size],
                Vec::new(),
                &metrics,
                &WriteOptions::default(),
            )
            .expect("batch"),
        );
        handler.after_commit();
        start += size;
    }
    let state = db
        .iterator_cf(family(&db, CF_STATE), IteratorMode::Start)
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("read"))
        .collect();
    (state, outputs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn any_chunking_of_the_same_input_gives_the_same_state_and_outputs(
        ops in proptest::collection::vec(op(), 1..60),
        chunks in proptest::collection::vec(1usize..9, 1..6),
    ) {
        let codec = codec();
        let input = records(&codec, &ops);
        let (state_whole, outputs_whole) = run(&input, &[input.len()], codec.clone());
        let (state_chunked, outputs_chunked) = run(&input, &chunks, codec);
        prop_assert_eq!(state_whole, state_chunked);
        prop_assert_eq!(outputs_whole, outputs_chunked);
    }
}

#[derive(Clone, Debug)]
enum InboxOp {
    Message { to_bob: bool, conv_seq: u64 },
    Receipt,
    Read { up_to: u64 },
    Ack { device: u64, seq: u64 },
    AddDevice { device: u64 },
}

fn inbox_op() -> impl Strategy<Value = InboxOp> {
    prop_oneof![
        5 => (any::<bool>(), 1u64..30).prop_map(|(to_bob, conv_seq)| InboxOp::Message { to_bob, conv_seq }),
        1 => Just(InboxOp::Receipt),
        1 => (0u64..30).prop_map(|up_to| InboxOp::Read { up_to }),
        3 => (1u64..3, 0u64..40).prop_map(|(device, seq)| InboxOp::Ack { device, seq }),
        1 => (1u64..3).prop_map(|device| InboxOp::AddDevice { device }),
    ]
}

fn inbox_records(codec: &Codec, ops: &[InboxOp]) -> Vec<Record> {
    use missive_core::Millis;
    use missive_core::conversation::MessageSent;
    use missive_core::delivery::{Delivery, DeliveryItem, Receipt};

    let (alice, bob) = (UserId(11), UserId(22));
    let conversation_id = ConversationId::direct(alice, bob);
    ops.iter()
        .enumerate()
        .map(|(index, op)| {
            let (recipient, item) = match op {
                InboxOp::Message { to_bob, conv_seq } => (
                    if *to_bob { bob } else { alice },
                    DeliveryItem::Message(MessageSent {
                        conversation_id,
                        conv_seq: ConvSeq(*conv_seq),
                        message_id: MessageId(*conv_seq),
                        from: alice,
                        from_device: DeviceId(1),
                        members: vec![alice, bob],
                        client_msg_id: format!("c{conv_seq}"),
                        content: format!("m{index}"),
                        reply_to: None,
                        sent_at: Millis(index as i64),
                        withheld_from: Vec::new(),
                        forward_count: 0,
                        attachment: None,
                        session_id: None,
                    }),
                ),
                InboxOp::Receipt => (
                    alice,
                    DeliveryItem::Receipt(Receipt {
                        conversation_id,
                        message_id: MessageId(index as u64),
                        status: ReceiptStatus::Delivered,
                        by: bob,
                        at: Millis(index as i64),
                        count: 1,
                        of: 1,
                        up_to: ConvSeq(index as u64),
                    }),
                ),
                InboxOp::Read { up_to } => (bob, DeliveryItem::ReadSync { conversation_id, up_to: ConvSeq(*up_to) }),
                InboxOp::Ack { device, seq } => {
                    (bob, DeliveryItem::DeviceAcked { device_id: DeviceId(*device), seq: missive_core::FeedSeq(*seq) })
                }
                InboxOp::AddDevice { device } => (bob, DeliveryItem::DeviceAdded { device_id: DeviceId(*device) }),
            };
            let delivery = Delivery { recipient, item };
            input_record("deliveries", index, recipient.0, &WireValue::from(&delivery), codec)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn the_inbox_folds_to_the_same_feeds_and_lists_under_any_chunking(
        ops in proptest::collection::vec(inbox_op(), 1..60),
        chunks in proptest::collection::vec(1usize..9, 1..6),
    ) {
        let codec = codec();
        let input = inbox_records(&codec, &ops);
        let spec = TaskSpec {
            processor: "inbox",
            input: TopicPartition::new("deliveries", 0),
            changelog: None,
        };
        let hub = crate::hub::FeedHub::default();
        let mut whole_handler = crate::inbox::InboxHandler::new(codec.clone(), hub.clone());
        let mut chunked_handler = crate::inbox::InboxHandler::new(codec, hub);
        let whole = run_with(&input, &[input.len()], &spec, &mut whole_handler);
        let chunked = run_with(&input, &chunks, &spec, &mut chunked_handler);
        prop_assert_eq!(whole, chunked);
    }
}
