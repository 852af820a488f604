//! What reached the log, read from outside the server: a RocksDB secondary
//! of the embedded store that catches up before every read, with a
//! consumer on the topics a gateway appends client input to.
//!
//! Processors append to some of the same topics (the inbox turns acks into
//! receipts on `commands.conversation`); every processor output carries the
//! `missive-src` header, so a record without it came from a client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use missive_infra::{EmbeddedLog, Log, LogConsumer, TopicPartition};

use super::common::Server;

/// Topics whose records come from what clients send. `presence` is left
/// out: connections opening and closing write it, not frames.
pub const INPUT_TOPICS: [&str; 4] = ["commands.conversation", "commands.user", "ephemeral", "events.media"];

pub struct LogWatch {
    follower: Arc<EmbeddedLog>,
    consumer: Box<dyn LogConsumer>,
    ends: BTreeMap<(String, u32), u64>,
    _scratch: tempfile::TempDir,
}

impl LogWatch {
    /// Watches the embedded server's store from its current end on.
    pub async fn open(server: &Server) -> LogWatch {
        assert!(server.cluster().is_none(), "the bad-input run reads the embedded store");
        let scratch = tempfile::tempdir().expect("scratch");
        let store = server.live_stores()[0].1.join("store");
        let db = missive_infra::db::open_db_secondary(&store, scratch.path()).expect("a secondary of the store");
        let follower = Arc::new(EmbeddedLog::open(db, false).expect("log"));
        let specs = follower.topics().await.expect("topics");
        let mut assignment = Vec::new();
        for spec in specs.iter().filter(|spec| INPUT_TOPICS.contains(&spec.name.as_str())) {
            for partition in 0..spec.partitions {
                let key = TopicPartition::new(spec.name.clone(), partition);
                let end = follower.watermarks(&key).await.expect("watermarks").high;
                assignment.push((key, end));
            }
        }
        let named: std::collections::BTreeSet<&str> = assignment.iter().map(|(key, _)| key.topic.as_str()).collect();
        assert_eq!(named.len(), INPUT_TOPICS.len(), "every input topic exists: {named:?}");
        let ends = assignment.iter().map(|(key, end)| ((key.topic.clone(), key.partition), end.0)).collect();
        let consumer = follower.consumer(assignment).await.expect("consumer");
        LogWatch { follower, consumer, ends, _scratch: scratch }
    }

    async fn catch_up(&self) {
        let follower = self.follower.clone();
        tokio::task::spawn_blocking(move || follower.follow_primary())
            .await
            .expect("join")
            .expect("catch up with the server's store");
    }

    /// Client-input records appended since the last call, described.
    pub async fn client_records(&mut self) -> Vec<String> {
        self.catch_up().await;
        let mut found = Vec::new();
        loop {
            let records = self.consumer.poll(1_000, Duration::ZERO).await.expect("poll");
            if records.is_empty() {
                break;
            }
            for record in records {
                self.ends.insert((record.topic.clone(), record.partition), record.offset.0 + 1);
                if record.header("missive-src").is_none() {
                    let headers: Vec<&str> = record.headers.iter().map(|header| header.key.as_str()).collect();
                    found.push(format!(
                        "{}/{}@{} key {:?} headers {headers:?} value {:?}",
                        record.topic,
                        record.partition,
                        record.offset.0,
                        String::from_utf8_lossy(&record.key),
                        String::from_utf8_lossy(&record.value[..record.value.len().min(80)])
                    ));
                }
            }
        }
        found
    }

    /// Client-input records once nothing new has arrived for a while (an
    /// accepted `ack` is appended after its frame was handled).
    pub async fn settle(&mut self) -> usize {
        let mut seen = 0;
        let mut quiet = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while quiet < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(15)).await;
            let new = self.client_records().await.len();
            quiet = if new == 0 { quiet + 1 } else { 0 };
            seen += new;
        }
        seen
    }
}
