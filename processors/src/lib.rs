//! The processor runtime and Missive's processors and projections, as tasks
//! over the `Log`: conversation (decides sends and receipts), users
//! (accounts and devices), inbox (per-user feeds and conversation lists),
//! history and directory (read models for the gateway). The same code runs
//! in embedded mode and against Kafka; only the `Log` differs.

pub mod common;
pub mod conversation;
pub mod history;
pub mod hub;
pub mod inbox;
pub mod keys;
pub mod queries;
pub mod runtime;
pub mod state_value;
pub mod topics;
pub mod tx;
pub mod users;

use std::sync::Arc;

use missive_core::operations::OperationWindows;

use missive_infra::{Log, LogError, TopicPartition};
use missive_schemas::Codec;
use rocksdb::DB;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use common::LocalReplies;
pub use history::UserIndex;
pub use hub::FeedHub;

/// What processors share with gateways in the same process: feed wake-ups
/// from the inbox, the registered-users filter of the directory, and the
/// deciders' command outcomes for a gateway running here.
#[derive(Clone)]
pub struct ReadSide {
    pub hub: FeedHub,
    pub users: UserIndex,
    pub replies: LocalReplies,
}

impl ReadSide {
    /// Sized for `capacity` accounts in the Bloom filter.
    pub fn new(capacity: usize) -> ReadSide {
        ReadSide { hub: FeedHub::default(), users: UserIndex::new(capacity), replies: LocalReplies::default() }
    }
}
pub use runtime::{HandleError, RuntimeError, RuntimeMetrics};
pub use topics::partitions_of;

/// Creates every topic Missive uses (idempotent); with `changelogs`, also
/// the state changelogs that Kafka mode restores processors from.
pub async fn create_topics(log: &dyn Log, changelogs: bool) -> Result<(), LogError> {
    let extra = if changelogs { topics::changelog_topics() } else { Vec::new() };
    for spec in topics::all_topics().into_iter().chain(extra) {
        log.create_topic(&spec).await?;
    }
    Ok(())
}

/// Waits until the `processor` tasks reading `topic` have folded what the
/// log held when called: a gateway answers only from a caught-up directory
/// (after a restart, and after `missive rebuild`, which empties it).
/// Reports progress every few seconds; fails after `timeout`.
pub async fn wait_caught_up(
    log: &dyn Log,
    db: &DB,
    processor: &'static str,
    topic: &str,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let mut targets = Vec::new();
    for partition in 0..partitions_of(topic) {
        let input = TopicPartition::new(topic, partition);
        let high = log.watermarks(&input).await.map_err(|error| error.to_string())?.high.0;
        targets.push((input, high));
    }
    let started = std::time::Instant::now();
    let mut reported = started;
    loop {
        let mut behind = 0u64;
        for (input, high) in &targets {
            behind += high.saturating_sub(runtime::stored_position(db, processor, input.clone())?);
        }
        if behind == 0 {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "{processor} is still {behind} records behind {topic} after {} s; see the processor log for errors",
                timeout.as_secs()
            ));
        }
        if reported.elapsed() > std::time::Duration::from_secs(3) {
            tracing::info!(processor, topic, behind, "catching up before serving");
            reported = std::time::Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Starts a task per partition of every processor. Each handle ends when
/// `cancel` fires or the task fails (fail-stop: the caller shuts down).
pub fn spawn_all(
    log: Arc<dyn Log>,
    db: Arc<DB>,
    codec: Arc<Codec>,
    read_side: ReadSide,
    metrics: RuntimeMetrics,
    cancel: CancellationToken,
    windows: OperationWindows,
) -> Vec<JoinHandle<Result<(), RuntimeError>>> {
    let placement = Placement { changelogs: false, place: &|_, _| true, windows };
    spawn_placed(log, db, codec, read_side, metrics, cancel, placement)
}

/// Which tasks a process runs, and whether they keep state changelogs.
pub struct Placement<'a> {
    /// Write `changelog.<processor>` and restore from it (Kafka mode).
    pub changelogs: bool,
    /// `place(processor, partition)`: run this task here?
    pub place: &'a dyn Fn(&'static str, u32) -> bool,
    /// Time limits of message operations (the conversation decider's rules).
    pub windows: OperationWindows,
}

/// Every processor, in the order `spawn_placed` considers them.
pub const PROCESSORS: [&str; 6] =
    [conversation::PROCESSOR, users::PROCESSOR, inbox::PROCESSOR, history::HISTORY, history::DIRECTORY, history::MEDIA];

/// Starts the tasks `place(processor, partition)` selects: how Kafka mode
/// spreads processors and partitions over processes.
pub fn spawn_placed(
    log: Arc<dyn Log>,
    db: Arc<DB>,
    codec: Arc<Codec>,
    read_side: ReadSide,
    metrics: RuntimeMetrics,
    cancel: CancellationToken,
    placement: Placement<'_>,
) -> Vec<JoinHandle<Result<(), RuntimeError>>> {
    let Placement { changelogs, place, windows } = placement;
    let ReadSide { hub, users: index, replies } = read_side;
    type MakeHandler = Box<dyn Fn() -> Box<dyn runtime::Handler>>;
    let processors: Vec<(&'static str, &'static str, MakeHandler)> = vec![
        (conversation::PROCESSOR, topics::COMMANDS_CONVERSATION, {
            let codec = codec.clone();
            let replies = replies.clone();
            Box::new(move || {
                let replies = common::Replier::new(codec.clone(), replies.clone());
                Box::new(conversation::ConversationHandler::new(codec.clone(), windows, replies))
            })
        }),
        (users::PROCESSOR, topics::COMMANDS_USER, {
            let codec = codec.clone();
            let replies = replies.clone();
            Box::new(move || {
                let replies = common::Replier::new(codec.clone(), replies.clone());
                Box::new(users::UsersHandler { codec: codec.clone(), replies })
            })
        }),
        (inbox::PROCESSOR, topics::DELIVERIES, {
            let codec = codec.clone();
            Box::new(move || Box::new(inbox::InboxHandler::new(codec.clone(), hub.clone())))
        }),
        (history::HISTORY, topics::EVENTS_CONVERSATION, {
            let codec = codec.clone();
            Box::new(move || Box::new(history::HistoryHandler::new(codec.clone())))
        }),
        (history::DIRECTORY, topics::EVENTS_USER, {
            let codec = codec.clone();
            Box::new(move || Box::new(history::DirectoryHandler { codec: codec.clone(), index: index.clone() }))
        }),
        (history::MEDIA, topics::EVENTS_MEDIA, {
            let codec = codec.clone();
            Box::new(move || Box::new(history::MediaCatalogueHandler { codec: codec.clone() }))
        }),
    ];
    let mut handles = Vec::new();
    for (processor, topic, make) in processors {
        for partition in (0..partitions_of(topic)).filter(|partition| place(processor, *partition)) {
            let changelog = topics::changelog_topics()
                .into_iter()
                .map(|spec| spec.name)
                .find(|name| changelogs && *name == topics::changelog_topic(processor));
            let spec = runtime::TaskSpec { processor, input: TopicPartition::new(topic, partition), changelog };
            handles.push(tokio::spawn(runtime::run_task(
                log.clone(),
                db.clone(),
                spec,
                make(),
                metrics.clone(),
                cancel.clone(),
            )));
        }
    }
    handles
}
