//! `missive`: the command-line entry point. `missive serve` runs the whole
//! platform in one process (embedded mode); `missive bench` drives a running
//! server with many WebSocket clients; `missive chat` is a terminal client
//! for people; `missive topics` lists the log.

mod bench;
mod chat;
mod cluster;
mod roles;
mod serve;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the message path allocates many small
/// short-lived buffers, and glibc's free/consolidate showed up at ~15% of
/// server CPU in profiles (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "missive", version, about = "Missive: an event-sourced messaging backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: embedded log, processors, gateway.
    Serve(serve::ServeArgs),
    /// Load generator: N WebSocket users sending 1:1 messages to each other.
    Bench(bench::BenchArgs),
    /// A terminal chat client, end-to-end encrypted: register, chats, send, read, talk, groups, verify.
    Chat(chat::ChatArgs),
    /// List topics with partitions, offsets and processor positions (embedded data directory or --kafka).
    Topics(missive_replay::TopicsArgs),
    /// Read a topic by offset or time, filter it (key, type, user, conversation), print decoded JSON lines.
    Replay(missive_replay::ReplayArgs),
    /// Figures from the log over a time range: messages per hour, active users, shares, delivery latency.
    Stats(missive_replay::StatsArgs),
    /// Kafka mode: serve the Confluent-compatible schema registry over the `_schemas` topic.
    SchemaRegistry(roles::RegistryArgs),
    /// Kafka mode: run the deciders (conversation, users) for a share of the partitions.
    Process(roles::ProcessArgs),
    /// Kafka mode: serve clients; runs the inbox of the feed partitions it owns, history and directory.
    Gateway(roles::GatewayArgs),
    /// A local Kafka-mode cluster on 127.0.0.1: broker, registry, gateways, processors.
    Cluster(cluster::ClusterArgs),
    /// Move a stopped processor's input positions (to an offset, a time or the end).
    Reset(missive_replay::ResetArgs),
    /// Records no processor could handle: list, show, re-drive after a fix.
    DeadLetters(missive_replay::DeadLettersArgs),
    /// Rebuild a projection (history, directory, inbox) from the log into a shadow store, compare, and swap.
    Rebuild(missive_replay::RebuildArgs),
}

/// Logs to stderr at the levels `MISSIVE_LOG` names (default `info`).
/// Whatever it says, the WebSocket and HTTP libraries never log below
/// `debug`: at `trace` they print every frame and header they read, and
/// those carry access tokens and message contents.
fn init_logging(cap_log_crate: bool) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let chosen =
        tracing_subscriber::EnvFilter::try_from_env("MISSIVE_LOG").unwrap_or_else(|_| "info,warp=error".into());
    let most_verbose = chosen.max_level_hint();
    let never_contents = Targets::new().with_default(LevelFilter::TRACE).with_targets(
        ["tungstenite", "tokio_tungstenite", "hyper", "hyper_util", "h2", "warp", "reqwest"]
            .map(|target| (target, LevelFilter::DEBUG)),
    );
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(chosen)
                .with_filter(never_contents),
        )
        .init();
    // Crates logging through `log` (tungstenite, rdkafka) are bridged into
    // tracing, which lets every record through to the filters: tungstenite's
    // per-frame trace records cost the bench ~9% of its CPU. `log`'s own
    // level check is one comparison: the bench and the embedded server set
    // it to the most verbose level chosen. Not the processes that talk to
    // Kafka: there the cap made a changelog restore hang now and then
    // (e2e_kafka's a_processor_that_lost_its_store_restores_from_the_changelog),
    // a timing-dependent fault the slower logging hides; see docs/design/known-gaps.md.
    if cap_log_crate {
        tracing_log::log::set_max_level(tracing_log::AsLog::as_log(&most_verbose.unwrap_or(LevelFilter::TRACE)));
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Bench(_) | Command::Serve(_)));
    // Sockets and RocksDB's files share one limit: take all the hard limit
    // allows (RocksDB keeps to a quarter of it, `missive_infra::db`).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 4096 => {
            tracing::warn!(limit, "few open files allowed (ulimit -n): raise the hard limit for many connections")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
    // A small blocking pool: RocksDB calls are short, and hundreds of threads
    // (tokio's default cap is 512) only add context switches and page faults.
    let runtime = match cli.command {
        // The load generator on one thread: its clients wait on sockets and
        // timers, and waking a task on the other core (a futex and a context
        // switch) cost more than the work the wake-up was for.
        Command::Bench(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_multi_thread().max_blocking_threads(16).enable_all().build()?,
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Chat(args) => runtime.block_on(chat::run(args)),
        Command::Topics(args) => runtime.block_on(missive_replay::topics(args)),
        Command::Replay(args) => runtime.block_on(missive_replay::replay(args)),
        Command::Stats(args) => runtime.block_on(missive_replay::stats(args)),
        Command::SchemaRegistry(args) => runtime.block_on(roles::schema_registry(args)),
        Command::Process(args) => runtime.block_on(roles::process(args)),
        Command::Gateway(args) => runtime.block_on(roles::gateway(args)),
        Command::Cluster(args) => cluster::run(args),
        Command::Reset(args) => runtime.block_on(missive_replay::reset(args)),
        Command::DeadLetters(args) => runtime.block_on(missive_replay::dead_letters_command(args)),
        Command::Rebuild(args) => runtime.block_on(missive_replay::rebuild(args)),
    }
}
