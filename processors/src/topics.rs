//! Missive's topics: names, partition counts, retention. Partition counts
//! are fixed at creation (changing one re-routes keys), so they are chosen
//! for growth; see docs/design/decisions.md.

use missive_infra::{Retention, TopicSpec};

pub const COMMANDS_CONVERSATION: &str = "commands.conversation";
pub const COMMANDS_USER: &str = "commands.user";
pub const EVENTS_CONVERSATION: &str = "events.conversation";
pub const EVENTS_USER: &str = "events.user";
pub const DELIVERIES: &str = "deliveries";
pub const REPLIES: &str = "replies";
pub const DEAD_LETTERS: &str = "dead-letters";
/// Live-only signals (typing, recording): tailed from the end by every
/// gateway, never folded into state; kept one hour.
pub const EPHEMERAL: &str = "ephemeral";
/// Gateway heartbeats and session changes: presence, folded by every gateway.
/// One partition keeps one gateway's records in the order it wrote them.
pub const PRESENCE: &str = "presence";
/// Push notification jobs for users with no connected device, keyed by
/// user and partitioned like `deliveries` (the gateway owning a user's
/// feed works its jobs); kept a day.
pub const NOTIFICATIONS: &str = "notifications";
/// Completed uploads (`MediaUploaded`), keyed by media id: folded into the
/// media catalogue by every gateway; the media processor makes thumbnails.
pub const EVENTS_MEDIA: &str = "events.media";

/// The `deliveries` partition (the inbox task) a user's records go to: the
/// partitioner's choice for the record key, the user id in decimal.
pub fn deliveries_partition(user: missive_core::UserId) -> u32 {
    missive_infra::log::kafka_partition(user.0.to_string().as_bytes(), partitions_of(DELIVERIES))
}

/// Record headers Missive writes.
pub mod headers {
    /// Unique id of the record: `<task>:<sseq>` for processor outputs.
    pub const EVENT_ID: &str = "missive-event-id";
    /// The event id (or `topic/partition@offset`) of the record that caused it.
    pub const CAUSATION_ID: &str = "missive-causation-id";
    /// The task that produced the record, for consumer-side deduplication.
    pub const SOURCE: &str = "missive-src";
    /// Per-task output sequence number (8 bytes big-endian).
    pub const SOURCE_SEQ: &str = "missive-sseq";
    /// `<gateway>/<request>`: who waits for this command's outcome.
    pub const REPLY_TO: &str = "missive-reply-to";
    /// Why a record was dead-lettered.
    pub const ERROR: &str = "missive-error";
    /// `topic/partition@offset` of a dead-lettered record.
    pub const ORIGIN: &str = "missive-origin";
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Prefix of the state changelog topics (Kafka mode).
pub const CHANGELOG_PREFIX: &str = "changelog.";

/// The changelog topic of a processor's state: compacted, one partition per
/// input partition, written through the outbox (see `runtime.rs`).
pub fn changelog_topic(processor: &str) -> String {
    format!("{CHANGELOG_PREFIX}{processor}")
}

/// Changelog topics of the processors whose state cannot be rebuilt from
/// topics kept forever: the deciders and the inbox.
pub fn changelog_topics() -> Vec<TopicSpec> {
    [("conversation", 8), ("users", 4), ("inbox", 8)]
        .into_iter()
        .map(|(processor, partitions)| TopicSpec {
            name: changelog_topic(processor),
            partitions,
            retention: Retention::Forever,
            compacted: true,
        })
        .collect()
}

/// Every topic with its partitioning and retention.
pub fn all_topics() -> Vec<TopicSpec> {
    let topic = |name: &str, partitions: u32, retention: Retention| TopicSpec {
        name: name.to_string(),
        partitions,
        retention,
        compacted: false,
    };
    vec![
        topic(COMMANDS_CONVERSATION, 8, Retention::Millis(7 * DAY_MS)),
        topic(COMMANDS_USER, 4, Retention::Millis(7 * DAY_MS)),
        topic(EVENTS_CONVERSATION, 8, Retention::Forever),
        topic(EVENTS_USER, 4, Retention::Forever),
        topic(DELIVERIES, 8, Retention::Millis(7 * DAY_MS)),
        topic(REPLIES, 1, Retention::Millis(DAY_MS)),
        topic(DEAD_LETTERS, 1, Retention::Millis(30 * DAY_MS)),
        topic(EPHEMERAL, 4, Retention::Millis(DAY_MS / 24)),
        topic(PRESENCE, 1, Retention::Millis(DAY_MS / 24)),
        topic(NOTIFICATIONS, 8, Retention::Millis(DAY_MS)),
        topic(EVENTS_MEDIA, 4, Retention::Forever),
    ]
}

/// How many partitions `topic` has (1 for a topic this crate does not create).
pub fn partitions_of(topic: &str) -> u32 {
    all_topics().into_iter().find(|spec| spec.name == topic).map_or(1, |spec| spec.partitions)
}

#[cfg(test)]
mod tests {
    /// The wire table names each record type's topic as a literal (its
    /// schema file is found by it at compile time): every one must be a
    /// topic the platform creates.
    #[test]
    fn every_record_type_lives_on_a_topic_the_platform_creates() {
        let created: Vec<String> = super::all_topics().into_iter().map(|spec| spec.name).collect();
        for record_type in missive_schemas::RecordType::ALL {
            assert!(
                created.iter().any(|name| name == record_type.topic()),
                "{record_type:?} is on {}, which no topic constant names",
                record_type.topic()
            );
        }
    }
}
