//! The `Log` conformance suite on the embedded RocksDB backend, plus the
//! embedded backend's own durability and retention checks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use missive_infra::db::{CF_LOG, family, open_db};
use missive_infra::{EmbeddedLog, Log, Offset, OutRecord, Retention, TopicPartition, TopicSpec, conformance};
use rocksdb::DB;

#[tokio::test]
async fn embedded_log_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedLog::open(open_db(dir.path()).expect("open db"), false).expect("open log");
    conformance::run_all(&log, "conformance").await;
    let logs: Vec<&dyn Log> = vec![&log; 8];
    conformance::tailing_readers_see_every_record_of_concurrent_producers(&logs, "conformance").await;
}

/// Opens the store at `path` again once the previous log's writer thread
/// has let it go (it holds the database until its queue closes).
async fn reopen(path: &Path) -> Arc<DB> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open_db(path) {
            Ok(db) => return db,
            Err(_) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("reopen: {error}"),
        }
    }
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
    let log = EmbeddedLog::open(reopen(dir.path()).await, false).expect("reopen log");
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

fn blob_files(path: &Path) -> usize {
    let entries = std::fs::read_dir(path).expect("store directory");
    entries
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "blob")))
        .count()
}

/// The log family keeps record values in blob files once flushed: records
/// read back from them after a reopen (the in-memory tail is empty then),
/// and a blob file goes once retention has deleted every record in it.
#[tokio::test]
async fn flushed_records_are_read_back_from_blob_files_and_retention_frees_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec =
        TopicSpec { name: "blobs".into(), partitions: 1, retention: Retention::Millis(60_000), compacted: false };
    let now = missive_infra::now_ms();
    let value = |index: u64| format!("record {index} ").repeat(20).into_bytes();
    {
        let db = open_db(dir.path()).expect("open db");
        let log = EmbeddedLog::open(db.clone(), false).expect("open log");
        log.create_topic(&spec).await.expect("create");
        // Two flushes: the old records in one blob file, the new in another.
        for (range, timestamp) in [(0..50u64, now - 120_000), (50..100u64, now)] {
            let records = range
                .map(|index| OutRecord {
                    topic: "blobs".into(),
                    partition: Some(0),
                    key: index.to_string().into_bytes(),
                    value: value(index),
                    headers: vec![],
                    timestamp: Some(timestamp),
                })
                .collect();
            log.append(records).await.expect("append");
            db.flush_cf(family(&db, CF_LOG)).expect("flush the log family");
        }
        assert_eq!(blob_files(dir.path()), 2, "each flush of the log family wrote its values to a blob file");
    }
    let db = reopen(dir.path()).await;
    let log = EmbeddedLog::open(db.clone(), false).expect("reopen log");
    let partition = TopicPartition::new("blobs", 0);
    let mut consumer = log.consumer(vec![(partition.clone(), Offset(0))]).await.expect("consumer");
    let mut read = Vec::new();
    while read.len() < 100 {
        let records = consumer.poll(100, Duration::from_secs(5)).await.expect("poll");
        assert!(!records.is_empty(), "records 0..100 are in the store; read {}", read.len());
        read.extend(records);
    }
    for (index, record) in read.iter().enumerate() {
        assert_eq!((record.offset, &record.value), (Offset(index as u64), &value(index as u64)));
    }
    let retained = log.clone();
    let moved =
        tokio::task::spawn_blocking(move || retained.enforce_retention(now)).await.expect("join").expect("retention");
    assert_eq!(moved, 1);
    db.compact_range_cf(family(&db, CF_LOG), None::<&[u8]>, None::<&[u8]>);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while blob_files(dir.path()) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(blob_files(dir.path()), 1, "the blob file of the deleted records went; the other stays");
    let marks = log.watermarks(&partition).await.expect("watermarks");
    assert_eq!((marks.low, marks.high), (Offset(50), Offset(100)));
    let mut consumer = log.consumer(vec![(partition, Offset(50))]).await.expect("consumer");
    let first = consumer.poll(1, Duration::from_secs(5)).await.expect("poll");
    assert_eq!(first[0].value, value(50), "what retention kept still reads from its blob file");
}
