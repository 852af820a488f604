//! Embedded mode: one process, one RocksDB holding the log and all state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use missive_gateway::routing::Routing;
use missive_infra::{EmbeddedLog, Log};
use missive_processors::RuntimeMetrics;
use tokio_util::sync::CancellationToken;

use crate::roles;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MISSIVE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the store (log + state) and the server's secrets.
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub client: roles::ClientArgs,
    /// fsync every log append (survives power loss, not only process crashes).
    #[arg(long, env = "MISSIVE_SYNC_WRITES", default_value_t = false)]
    pub sync_writes: bool,
    /// Also serve the Confluent-compatible schema registry REST API here.
    #[arg(long, env = "MISSIVE_SCHEMA_REGISTRY_LISTEN")]
    pub schema_registry_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub rules: roles::RulesArgs,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    roles::create_private_dir(&args.data_dir)?;
    let secrets = roles::load_or_create_secrets(&args.data_dir.join("secrets.json"))?;
    let auth = args.client.auth_config(secrets, true)?;
    let tls = args.client.tls()?;
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let cancel = CancellationToken::new();
    let embedded = EmbeddedLog::open(db.clone(), args.sync_writes)?;
    let log: Arc<dyn Log> = Arc::new(embedded.clone());
    missive_processors::create_topics(log.as_ref(), false).await?;
    let (schemas, codec) = missive_registry::register_all(log.clone()).await?;
    let codec = Arc::new(codec);
    if let Some(address) = args.schema_registry_listen {
        // Read-only: Missive registers its schemas in the log itself.
        let writers = missive_registry::http::Writers::new(None);
        roles::serve_registry(address, schemas, writers, cancel.clone()).await?;
    }
    let registry = prometheus::Registry::new();
    let metrics = RuntimeMetrics::new(&registry)?;
    let read_side = roles::read_side(&db)?;
    let tasks = missive_processors::spawn_all(
        log.clone(),
        db.clone(),
        codec.clone(),
        read_side.clone(),
        metrics,
        cancel.clone(),
        args.rules.windows(),
    );
    let embedded_stats = embedded.clone();
    let janitor = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        let log = embedded.clone();
                        match tokio::task::spawn_blocking(move || log.enforce_retention(missive_infra::now_ms())).await {
                            Ok(Err(error)) => tracing::warn!(%error, "retention pass failed"),
                            Err(error) => tracing::warn!(%error, "retention pass panicked"),
                            Ok(Ok(_)) => {}
                        }
                    }
                }
            }
        })
    };
    mirror_log_stats(embedded_stats, &registry, cancel.clone())?;
    let watchdog = roles::stop_when_any_task_ends(tasks, cancel.clone(), roles::OnTaskFailure::StayUpOnStorageFailure);
    roles::stop_on_signal(cancel.clone());
    roles::directory_ready(log.as_ref(), &db).await?;

    let (listener, address) = roles::listen(args.listen, tls.is_some()).await?;
    tracing::info!(%address, data_dir = %args.data_dir.display(), "missive serving (embedded mode)");
    let config = args
        .client
        .gateway_config(
            &args.data_dir,
            ("embedded".into(), 0),
            Routing::single(missive_processors::partitions_of(missive_processors::topics::DELIVERIES)),
            auth,
            tls,
        )
        .await?;
    let backend = missive_gateway::Backend { log, db, codec, read_side, registry };
    missive_gateway::serve(listener, config, backend, cancel.clone()).await?;
    cancel.cancel();
    janitor.abort();
    watchdog.abort();
    Ok(())
}

/// Exposes what the embedded log's writer has written (records, RocksDB
/// write calls, keys, bytes) as Prometheus counters, refreshed every second:
/// the cost of the message path per delivered message, for benchmarks.
fn mirror_log_stats(
    log: EmbeddedLog,
    registry: &prometheus::Registry,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let counter = |name: &str, help: &str| -> anyhow::Result<prometheus::IntCounter> {
        let counter = prometheus::IntCounter::new(name, help)?;
        registry.register(Box::new(counter.clone()))?;
        Ok(counter)
    };
    let records = counter("missive_log_records_appended_total", "Records appended to the embedded log")?;
    let writes = counter("missive_log_writes_total", "RocksDB write calls of the embedded log (state and records)")?;
    let keys = counter("missive_log_write_keys_total", "Keys put or deleted by the embedded log's writes")?;
    let bytes = counter("missive_log_write_bytes_total", "Bytes of the embedded log's writes")?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = missive_infra::LogStatsSnapshot::default();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    let now = log.stats();
                    records.inc_by(now.records - last.records);
                    writes.inc_by(now.writes - last.writes);
                    keys.inc_by(now.keys - last.keys);
                    bytes.inc_by(now.bytes - last.bytes);
                    last = now;
                }
            }
        }
    });
    Ok(())
}
