//! The conformance suite of the [`Log`] trait. Every backend runs the same
//! checks (embedded: `infra/tests/conformance_embedded.rs`). Each check
//! creates its own topics under `prefix`, so a shared broker can host a run.
//! Checks panic with a message naming the broken property.

use std::time::Duration;

use crate::Offset;
use crate::log::{Header, Log, OutRecord, Retention, TopicPartition, TopicSpec, kafka_partition};

fn spec(name: &str, partitions: u32) -> TopicSpec {
    TopicSpec { name: name.to_string(), partitions, retention: Retention::Forever, compacted: false }
}

fn record(topic: &str, key: &str, value: &str, timestamp: Option<i64>) -> OutRecord {
    OutRecord {
        topic: topic.to_string(),
        partition: None,
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        headers: vec![Header { key: "event-id".into(), value: format!("id-{value}").into_bytes() }],
        timestamp,
    }
}

/// Runs every check.
pub async fn run_all(log: &dyn Log, prefix: &str) {
    topics_are_created_once(log, prefix).await;
    appended_records_read_back_exactly(log, prefix).await;
    keys_pick_partitions_like_the_java_client(log, prefix).await;
    consumers_wait_for_new_records_and_seek(log, prefix).await;
    time_lookup_finds_the_first_offset_at_or_after(log, prefix).await;
    group_positions_round_trip(log, prefix).await;
    concurrent_appends_are_gap_free(log, prefix).await;
    unknown_topics_are_refused(log, prefix).await;
}

pub async fn topics_are_created_once(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.create");
    log.create_topic(&spec(&name, 3)).await.expect("create topic");
    log.create_topic(&spec(&name, 3)).await.expect("creating the same topic again is a no-op");
    assert!(log.create_topic(&spec(&name, 5)).await.is_err(), "a different partition count must be refused");
    let topics = log.topics().await.expect("list topics");
    let found = topics.iter().find(|topic| topic.name == name).expect("created topic is listed");
    assert_eq!(found.partitions, 3);
}

pub async fn appended_records_read_back_exactly(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.readback");
    log.create_topic(&spec(&name, 1)).await.expect("create topic");
    let records: Vec<OutRecord> =
        (0..10).map(|index| record(&name, "k", &format!("v{index}"), Some(1_000 + index))).collect();
    let placed = log.append(records.clone()).await.expect("append");
    let offsets: Vec<u64> = placed.iter().map(|(_, offset)| offset.0).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<u64>>(), "offsets of a new partition start at 0 and are gap-free");
    let partition = TopicPartition::new(name.clone(), 0);
    let marks = log.watermarks(&partition).await.expect("watermarks");
    assert_eq!((marks.low, marks.high), (Offset(0), Offset(10)));
    let mut consumer = log.consumer(vec![(partition.clone(), Offset(0))]).await.expect("consumer");
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while read.len() < 10 && tokio::time::Instant::now() < deadline {
        read.extend(consumer.poll(100, Duration::from_millis(500)).await.expect("poll"));
    }
    assert_eq!(read.len(), 10, "every appended record is read back");
    for (index, (got, sent)) in read.iter().zip(&records).enumerate() {
        assert_eq!(got.offset, Offset(index as u64));
        assert_eq!(got.key, sent.key);
        assert_eq!(got.value, sent.value);
        assert_eq!(got.timestamp, 1_000 + index as i64, "producer timestamps are kept");
        assert_eq!(got.header("event-id"), Some(format!("id-v{index}").as_bytes()), "headers are kept");
    }
    assert_eq!(consumer.position(&partition), Some(Offset(10)));
}

pub async fn keys_pick_partitions_like_the_java_client(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.keys");
    log.create_topic(&spec(&name, 6)).await.expect("create topic");
    for key in ["alice", "bob", "carol", "21", "a-little-bit-long-string"] {
        let expected = kafka_partition(key.as_bytes(), 6);
        assert_eq!(log.partition_for(&name, key.as_bytes()).await.expect("partition_for"), expected);
        let placed = log.append(vec![record(&name, key, "x", None)]).await.expect("append");
        assert_eq!(placed[0].0, expected, "key {key} lands on murmur2 partition");
    }
    let mut explicit = record(&name, "alice", "pinned", None);
    explicit.partition = Some(5);
    assert_eq!(log.append(vec![explicit]).await.expect("append")[0].0, 5, "an explicit partition wins");
}

pub async fn consumers_wait_for_new_records_and_seek(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.tail");
    log.create_topic(&spec(&name, 2)).await.expect("create topic");
    let assignment =
        vec![(TopicPartition::new(name.clone(), 0), Offset(0)), (TopicPartition::new(name.clone(), 1), Offset(0))];
    let mut consumer = log.consumer(assignment).await.expect("consumer");
    let empty = consumer.poll(10, Duration::from_millis(200)).await.expect("poll on empty topic");
    assert!(empty.is_empty(), "nothing to read yet");
    let mut pinned = record(&name, "k", "late", None);
    pinned.partition = Some(1);
    let appended = {
        let name = name.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            log.append(vec![pinned]).await.expect("append");
            name
        }
    };
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let poller = async {
        while read.is_empty() && tokio::time::Instant::now() < deadline {
            read.extend(consumer.poll(10, Duration::from_secs(5)).await.expect("poll"));
        }
    };
    tokio::join!(appended, poller);
    assert_eq!(read.len(), 1, "a waiting poll returns the record appended meanwhile");
    assert_eq!((read[0].partition, read[0].value.as_slice()), (1, b"late".as_slice()));
    let partition = TopicPartition::new(name.clone(), 1);
    consumer.seek(&partition, Offset(0)).expect("seek");
    let mut again = Vec::new();
    while again.is_empty() && tokio::time::Instant::now() < deadline {
        again.extend(consumer.poll(10, Duration::from_millis(500)).await.expect("poll after seek"));
    }
    assert_eq!(again.len(), 1, "seek rewinds the position");
    assert_eq!(again[0].offset, Offset(0));
}

pub async fn time_lookup_finds_the_first_offset_at_or_after(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.time");
    log.create_topic(&spec(&name, 1)).await.expect("create topic");
    let base = 1_700_000_000_000i64;
    let records = (0..5).map(|index| record(&name, "k", &format!("t{index}"), Some(base + index * 1000))).collect();
    log.append(records).await.expect("append");
    let partition = TopicPartition::new(name, 0);
    assert_eq!(log.offset_for_time(&partition, base - 1).await.expect("lookup"), Offset(0));
    assert_eq!(log.offset_for_time(&partition, base + 2000).await.expect("lookup"), Offset(2));
    assert_eq!(log.offset_for_time(&partition, base + 2500).await.expect("lookup"), Offset(3));
    assert_eq!(
        log.offset_for_time(&partition, base + 10_000).await.expect("lookup"),
        Offset(5),
        "past the end: high watermark"
    );
    // Records a few milliseconds apart are told apart exactly.
    let close = [5000, 5001, 5003, 5003, 5008, 5012].map(|ms| record(&partition.topic, "k", "close", Some(base + ms)));
    log.append(close.into()).await.expect("append");
    for (at, expected) in [(5000, 5), (5001, 6), (5002, 7), (5003, 7), (5004, 9), (5009, 10), (5012, 10), (5013, 11)] {
        assert_eq!(
            log.offset_for_time(&partition, base + at).await.expect("lookup"),
            Offset(expected),
            "first record at or after base+{at} ms"
        );
    }
}

pub async fn group_positions_round_trip(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.groups");
    log.create_topic(&spec(&name, 2)).await.expect("create topic");
    let group = format!("{prefix}-group");
    let positions =
        vec![(TopicPartition::new(name.clone(), 0), Offset(0)), (TopicPartition::new(name.clone(), 1), Offset(0))];
    log.commit_positions(&group, &positions).await.expect("commit");
    let mut stored = log.committed_positions(&group).await.expect("read positions");
    stored.retain(|(partition, _)| partition.topic == name);
    stored.sort();
    assert_eq!(stored, positions);
}

pub async fn concurrent_appends_are_gap_free(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.concurrent");
    log.create_topic(&spec(&name, 1)).await.expect("create topic");
    let writers = (0..8).map(|writer| {
        let name = name.clone();
        async move {
            let mut offsets = Vec::new();
            for index in 0..25 {
                let placed =
                    log.append(vec![record(&name, "k", &format!("{writer}-{index}"), None)]).await.expect("append");
                offsets.push(placed[0].1.0);
            }
            offsets
        }
    });
    let mut all: Vec<u64> = futures::future::join_all(writers).await.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<u64>>(), "concurrent appends get distinct gap-free offsets");
}

/// Several producers (separate clients on a broker) append to one
/// partition while a consumer tails it: the consumer reads every
/// acknowledged record once, at the offset its append returned, in each
/// producer's order. (A broker that makes an offset visible before the
/// record at it is stored shows tailing readers a hole; the consumer must
/// not skip past it.)
pub async fn tailing_readers_see_every_record_of_concurrent_producers(logs: &[&dyn Log], prefix: &str) {
    const EACH: usize = 400;
    let name = format!("{prefix}.tailing");
    logs[0].create_topic(&spec(&name, 1)).await.expect("create topic");
    let partition = TopicPartition::new(name.clone(), 0);
    let mut consumer = logs[0].consumer(vec![(partition.clone(), Offset(0))]).await.expect("consumer");
    let total = EACH * logs.len();
    let writers = logs.iter().enumerate().map(|(writer, log)| {
        let name = name.clone();
        async move {
            let mut placed = Vec::with_capacity(EACH);
            for index in 0..EACH {
                let value = format!("{writer}-{index}");
                let at = log.append(vec![record(&name, "k", &value, None)]).await.expect("append")[0].1;
                placed.push((at.0, value));
            }
            placed
        }
    });
    let reader = async {
        let mut read: Vec<(u64, String)> = Vec::with_capacity(total);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while read.len() < total && tokio::time::Instant::now() < deadline {
            for record in consumer.poll(500, Duration::from_millis(200)).await.expect("poll") {
                read.push((record.offset.0, String::from_utf8_lossy(&record.value).into_owned()));
            }
        }
        read
    };
    let (placed, read) = tokio::join!(futures::future::join_all(writers), reader);
    let first_wrong = read.iter().enumerate().find(|(index, (offset, _))| *offset != *index as u64);
    assert!(
        read.len() == total && first_wrong.is_none(),
        "the tailing reader got every offset once, in order: {} of {total} read; the first out of place: {first_wrong:?}",
        read.len()
    );
    let mut appended: Vec<(u64, String)> = placed.into_iter().flatten().collect();
    appended.sort();
    assert_eq!(read, appended, "each record was read at the offset its append returned");
}

pub async fn unknown_topics_are_refused(log: &dyn Log, prefix: &str) {
    let name = format!("{prefix}.missing");
    assert!(log.append(vec![record(&name, "k", "v", None)]).await.is_err());
    assert!(log.consumer(vec![(TopicPartition::new(name, 0), Offset(0))]).await.is_err());
}
