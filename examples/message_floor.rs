//! The cost floor of one delivered 1:1 message under Missive's design, on
//! this machine: only the work no implementation of the design can skip,
//! with none of Missive's own overheads (no tasks, wake-ups, state reads,
//! sessions or JSON).
//!
//! - The durable store: one RocksDB WriteBatch per 64 messages holding
//!   RECORDS log records (~400 bytes each, offsets in order per partition)
//!   and STATE_KEYS state keys (~120 bytes, spread over 1,000 users), opened
//!   with the server's own options (`open_db`), flushes and compactions
//!   included (process CPU time).
//! - The wire format: each record encoded once and decoded once with the
//!   server's Avro codec (a message delivery, the record a 1:1 message
//!   copies most).
//!
//! WebSocket frames are not measured here: peer-bench's ideal relay gives
//! their floor (BENCHMARKS.md).
//!
//!   cargo run --example message_floor -- [MESSAGES] [RECORDS] [STATE_KEYS]
//!
//! Defaults: 400,000 messages, 4 records and 11 state keys per message
//! (issue 15's targets: at most 4 records and 15 keys).

use std::time::Instant;

use missive_core::conversation::MessageSent;
use missive_core::delivery::{Delivery, DeliveryItem};
use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
use missive_infra::db::{CF_LOG, CF_STATE, family, open_db};
use missive_schemas::Codec;
use missive_schemas::WireValue;
use missive_schemas::wire::RecordType;
use rocksdb::WriteBatch;

const BATCH: usize = 64;
const USERS: u64 = 1_000;
const PARTITIONS: u64 = 8;

fn main() {
    let mut args = std::env::args().skip(1).map(|arg| arg.parse::<usize>().expect("arguments are counts"));
    let messages = args.next().unwrap_or(400_000);
    let records = args.next().unwrap_or(4);
    let state_keys = args.next().unwrap_or(11);
    println!("{messages} messages, {records} log records and {state_keys} state keys each");
    let (store_us, wall) = store_floor(messages, records, state_keys);
    println!(
        "store: {store_us:.1} µs of CPU per message ({:.0} messages/s on one writer, {:.2} µs per key)",
        messages as f64 / wall,
        store_us / (records + state_keys) as f64
    );
    let codec_us = codec_floor(messages.min(200_000), records);
    println!("codec: {codec_us:.1} µs of CPU per message ({records} records encoded and decoded)");
    println!("total: {:.1} µs per message before any WebSocket frame", store_us + codec_us);
}

fn store_floor(messages: usize, records: usize, state_keys: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open_db(dir.path()).expect("open store");
    let (log, state) = (family(&db, CF_LOG), family(&db, CF_STATE));
    let value = vec![0x5au8; 400];
    let small = vec![0x33u8; 120];
    let mut offsets = [0u64; PARTITIONS as usize];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (cpu, started) = (missive_infra::process_cpu().as_secs_f64(), Instant::now());
    let mut batch = WriteBatch::default();
    for message in 0..messages {
        for _ in 0..records {
            let partition = next() % PARTITIONS;
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&partition.to_be_bytes());
            key[8..].copy_from_slice(&offsets[partition as usize].to_be_bytes());
            offsets[partition as usize] += 1;
            batch.put_cf(log, key, &value);
        }
        for index in 0..state_keys {
            // A user's feed entries and summaries: `inbox/<user>/<kind>/<seq>`.
            let user = next() % USERS;
            let mut key = b"inbox/".to_vec();
            key.extend_from_slice(&user.to_be_bytes());
            key.extend_from_slice(&[b'/', b'a' + (index % 8) as u8, b'/']);
            key.extend_from_slice(&(message as u64).to_be_bytes());
            batch.put_cf(state, key, &small);
        }
        if (message + 1) % BATCH == 0 {
            db.write(std::mem::take(&mut batch)).expect("write");
        }
    }
    db.write(batch).expect("write");
    let wall = started.elapsed().as_secs_f64();
    let written = missive_infra::process_cpu().as_secs_f64() - cpu;
    // Let flushes and compactions the writes caused finish, and count them.
    db.flush_cf(log).expect("flush");
    db.flush_cf(state).expect("flush");
    db.compact_range_cf(log, None::<&[u8]>, None::<&[u8]>);
    db.compact_range_cf(state, None::<&[u8]>, None::<&[u8]>);
    let total = missive_infra::process_cpu().as_secs_f64() - cpu;
    println!(
        "store: writes and the flushes and compactions meanwhile {:.1} µs, the rest compacted afterwards {:.1} µs",
        written * 1e6 / messages as f64,
        (total - written) * 1e6 / messages as f64
    );
    (total * 1e6 / messages as f64, wall)
}

fn codec_floor(messages: usize, records: usize) -> f64 {
    let ids: Vec<(RecordType, u32)> = RecordType::ALL.iter().enumerate().map(|(i, t)| (*t, i as u32 + 1)).collect();
    let codec = Codec::new(&ids).expect("schemas parse");
    let (me, peer) = (UserId(7), UserId(9));
    let delivery = Delivery {
        recipient: peer,
        item: DeliveryItem::Message(MessageSent {
            conversation_id: ConversationId::direct(me, peer),
            conv_seq: ConvSeq(3),
            message_id: MessageId(1 << 40),
            from: me,
            from_device: DeviceId(2),
            members: vec![me, peer],
            client_msg_id: "6f1c2a9e-1b7d-4c1e-9a55-0c2d3e4f5a6b".into(),
            content: "x".repeat(100),
            reply_to: None,
            sent_at: Millis(1_700_000_000_000),
            withheld_from: Vec::new(),
            forward_count: 0,
            attachment: None,
            session_id: None,
        }),
    };
    let cpu = missive_infra::process_cpu().as_secs_f64();
    let mut bytes = 0usize;
    for _ in 0..messages * records {
        let encoded = codec.encode_value(&WireValue::from(&delivery)).expect("encode");
        bytes += codec.decode(&encoded).map(|_| encoded.len()).expect("decode");
    }
    assert!(bytes > 0);
    (missive_infra::process_cpu().as_secs_f64() - cpu) * 1e6 / messages as f64
}
