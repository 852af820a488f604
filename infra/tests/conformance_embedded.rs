//! The `Log` conformance suite on the embedded RocksDB backend, plus the
//! embedded backend's own durability and retention checks.

use std::time::Duration;

use missive_infra::db::open_db;
use missive_infra::{EmbeddedLog, Log, Offset, OutRecord, Retention, TopicPartition, TopicSpec, conformance};

#[tokio::test]
async fn embedded_log_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedLog::open(open_db(dir.path()).expect("open db"), false).expect("open log");
    conformance::run_all(&log, "conformance").await;
    let logs: Vec<&dyn Log> = vec![&log; 8];
    conformance::tailing_readers_see_every_record_of_concurrent_producers(&logs, "conformance").await;
}

#[tokio::test]
async fn records_and_positions_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = TopicSpec { name: "durable".into(), partitions: 2, retention: Retention::Forever, compacted: false };
    {
        let log = EmbeddedLog::open(open_db(dir.path()).expect("open db"), false).expect("open log");
        log.create_topic(&spec).await.expect("create");
        let records = (0..20)
            .map(|index| OutRecord {
                topic: "durable".into(),
                partition: Some(index % 2),
                key: vec![],
                value: vec![index as u8],
                headers: vec![],
                timestamp: None,
            })
            .collect();
        log.append(records).await.expect("append");
        log.commit_positions("g", &[(TopicPartition::new("durable", 1), Offset(4))]).await.expect("commit");
    }
    // The writer thread holds the database until its queue closes; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let db = loop {
        match open_db(dir.path()) {
            Ok(db) => break db,
            Err(error) if std::time::Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("reopen: {error}"),
        }
    };
    let log = EmbeddedLog::open(db, false).expect("reopen log");
    let marks = log.watermarks(&TopicPartition::new("durable", 1)).await.expect("watermarks");
    assert_eq!(marks.high, Offset(10));
    let positions = log.committed_positions("g").await.expect("positions");
    assert_eq!(positions, vec![(TopicPartition::new("durable", 1), Offset(4))]);
    let placed = log
        .append(vec![OutRecord {
            topic: "durable".into(),
            partition: Some(1),
            key: vec![],
            value: vec![],
            headers: vec![],
            timestamp: None,
        }])
        .await
        .expect("append after reopen");
    assert_eq!(placed[0].1, Offset(10), "offsets continue after a reopen");
}

#[tokio::test]
async fn retention_drops_old_records_and_moves_the_low_watermark() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedLog::open(open_db(dir.path()).expect("open db"), false).expect("open log");
    let spec =
        TopicSpec { name: "short".into(), partitions: 1, retention: Retention::Millis(60_000), compacted: false };
    log.create_topic(&spec).await.expect("create");
    let now = missive_infra::now_ms();
    let records = [now - 120_000, now - 90_000, now - 1_000, now]
        .into_iter()
        .map(|timestamp| OutRecord {
            topic: "short".into(),
            partition: Some(0),
            key: vec![],
            value: vec![],
            headers: vec![],
            timestamp: Some(timestamp),
        })
        .collect();
    log.append(records).await.expect("append");
    let retained = log.clone();
    let moved =
        tokio::task::spawn_blocking(move || retained.enforce_retention(now)).await.expect("join").expect("retention");
    assert_eq!(moved, 1);
    let partition = TopicPartition::new("short", 0);
    let marks = log.watermarks(&partition).await.expect("watermarks");
    assert_eq!((marks.low, marks.high), (Offset(2), Offset(4)));
    let mut consumer = log.consumer(vec![(partition, Offset(0))]).await.expect("consumer");
    let read = consumer.poll(10, Duration::from_millis(200)).await.expect("poll");
    let offsets: Vec<u64> = read.iter().map(|record| record.offset.0).collect();
    assert_eq!(offsets, vec![2, 3], "reading below the low watermark starts at it");
}
