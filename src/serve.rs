//! Embedded mode: one process, one RocksDB holding the log and all state.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use missive_gateway::GatewayConfig;
use missive_gateway::auth::{AuthConfig, SmsSink};
use missive_infra::{EmbeddedLog, Log};
use missive_processors::{FeedHub, RuntimeMetrics};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MISSIVE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the store (log + state) and the server's secrets.
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Where one-time codes go: log, file:PATH or webhook:URL.
    #[arg(long, env = "MISSIVE_SMS_SINK", default_value = "log")]
    pub sms_sink: SmsSink,
    /// Seconds of silence after which a WebSocket is closed.
    #[arg(long, env = "MISSIVE_WS_IDLE_TIMEOUT", default_value_t = 60)]
    pub ws_idle_timeout: u64,
    /// fsync every log append (survives power loss, not only process crashes).
    #[arg(long, env = "MISSIVE_SYNC_WRITES", default_value_t = false)]
    pub sync_writes: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Secrets {
    jwt_secret: String,
    phone_secret: String,
}

/// Loads the server's secrets, creating random ones on first start.
fn load_or_create_secrets(dir: &Path) -> anyhow::Result<Secrets> {
    let path = dir.join("secrets.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is corrupt; restore it or delete it (all sessions end)", path.display()));
    }
    let random = || {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let secrets = Secrets { jwt_secret: random(), phone_secret: random() };
    let temporary = dir.join("secrets.json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(serde_json::to_string_pretty(&secrets)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    Ok(secrets)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    let secrets = load_or_create_secrets(&args.data_dir)?;
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let embedded = EmbeddedLog::open(db.clone(), args.sync_writes)?;
    let log: Arc<dyn Log> = Arc::new(embedded.clone());
    missive_processors::create_topics(log.as_ref()).await?;
    let codec = Arc::new(missive_schemas::registry::register_all(log.as_ref()).await?);
    let registry = prometheus::Registry::new();
    let metrics = RuntimeMetrics::new(&registry)?;
    let hub = FeedHub::default();
    let cancel = CancellationToken::new();

    let tasks =
        missive_processors::spawn_all(log.clone(), db.clone(), codec.clone(), hub.clone(), metrics, cancel.clone());
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
    let watchdog = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let (result, _, _) = futures::future::select_all(tasks).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "a processor task failed; shutting down"),
                Err(error) => tracing::error!(%error, "a processor task panicked; shutting down"),
            }
            cancel.cancel();
        })
    };
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            tracing::info!("shutting down");
            cancel.cancel();
        });
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another server running there?", args.listen))?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    std::io::stdout().flush()?;
    tracing::info!(%address, data_dir = %args.data_dir.display(), "missive serving (embedded mode)");
    let config = GatewayConfig {
        gateway_id: "embedded".into(),
        node_id: 0,
        idle_timeout: Duration::from_secs(args.ws_idle_timeout.max(1)),
        auth: AuthConfig {
            jwt_secret: secrets.jwt_secret.into_bytes(),
            phone_secret: secrets.phone_secret.into_bytes(),
            sms_sink: args.sms_sink,
        },
    };
    missive_gateway::serve(listener, config, log, db, codec, hub, registry, cancel.clone()).await?;
    cancel.cancel();
    janitor.abort();
    watchdog.abort();
    Ok(())
}
