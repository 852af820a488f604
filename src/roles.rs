//! Kafka mode: the platform as separate processes on a Kafka-protocol
//! cluster. `missive schema-registry` serves the Confluent REST subset over
//! `_schemas`; `missive process` runs the deciders (conversation, users) for
//! its share of partitions; `missive gateway` serves clients and runs the
//! read side beside them: the inbox of the `deliveries` partitions it owns
//! (partition affinity), history and the directory. Each process keeps its
//! state in its own RocksDB; the log is the only thing they share.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use missive_core::media::MediaLimits;
use missive_gateway::auth::{AuthConfig, AuthLimits, DEV_JWT_SECRET, MIN_SECRET_BYTES, SmsSink};
use missive_gateway::routing::Routing;
use missive_gateway::{GatewayConfig, MediaSettings};
use missive_infra::objects::ObjectsConfig;
use missive_infra::{KafkaConfig, KafkaLog, Log};
use missive_processors::{
    Placement, ReadSide, RuntimeError, RuntimeMetrics, conversation, history, inbox, topics, users,
};

/// Accounts the contact-sync Bloom filter is sized for (1 % false positives; ~1.2 MB).
pub const USER_INDEX_CAPACITY: usize = 1_000_000;

/// The read side a client-serving process shares with its projections, its
/// registered-users filter filled from the directory already in `db`.
pub fn read_side(db: &rocksdb::DB) -> anyhow::Result<ReadSide> {
    let read_side = ReadSide::new(USER_INDEX_CAPACITY);
    let loaded = read_side.users.load(db)?;
    tracing::debug!(loaded, "registered users loaded into the contact-sync filter");
    Ok(read_side)
}
use missive_registry::{Registry, register_remote};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    pub jwt_secret: String,
    pub phone_secret: String,
    /// Signing keys being rotated out: tokens they signed are still accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_jwt_secrets: Vec<String>,
}

/// Flags every process that serves clients takes (`serve` and `gateway`).
#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// Where one-time codes go: log, file:PATH or webhook:URL.
    #[arg(long, env = "MISSIVE_SMS_SINK", default_value = "log")]
    pub sms_sink: SmsSink,
    /// Seconds of silence after which a WebSocket is closed.
    #[arg(long, env = "MISSIVE_WS_IDLE_TIMEOUT", default_value_t = 60)]
    pub ws_idle_timeout: u64,
    /// Serve HTTPS and WSS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "MISSIVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "MISSIVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Access-token signing key (overrides the secrets file). At least 32 bytes outside --dev.
    #[arg(long, env = "MISSIVE_JWT_SECRET", hide_env_values = true, conflicts_with = "jwt_secret_file")]
    pub jwt_secret: Option<String>,
    /// Read the access-token signing key from this file (owner-only, like the
    /// secrets file), so it appears in no process list or environment.
    #[arg(long, env = "MISSIVE_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Development mode: without a configured key, tokens are signed with a
    /// built-in key anyone can read. Never in production.
    #[arg(long, env = "MISSIVE_DEV", default_value_t = false)]
    pub dev: bool,
    /// One-time codes requested per phone number per hour.
    #[arg(long, env = "MISSIVE_OTP_PER_PHONE_PER_HOUR", default_value_t = AuthLimits::default().otp_per_phone_per_hour)]
    pub otp_per_phone_per_hour: u32,
    /// One-time codes requested per client address per hour.
    #[arg(long, env = "MISSIVE_OTP_PER_ADDRESS_PER_HOUR", default_value_t = AuthLimits::default().otp_per_address_per_hour)]
    pub otp_per_address_per_hour: u32,
    /// Verify attempts per phone number per hour.
    #[arg(long, env = "MISSIVE_VERIFY_PER_PHONE_PER_HOUR", default_value_t = AuthLimits::default().verify_per_phone_per_hour)]
    pub verify_per_phone_per_hour: u32,
    /// Verify attempts per client address per hour.
    #[arg(long, env = "MISSIVE_VERIFY_PER_ADDRESS_PER_HOUR", default_value_t = AuthLimits::default().verify_per_address_per_hour)]
    pub verify_per_address_per_hour: u32,
    /// Contact-sync requests per account per day.
    #[arg(long, env = "MISSIVE_CONTACT_SYNCS_PER_DAY", default_value_t = AuthLimits::default().contact_syncs_per_day)]
    pub contact_syncs_per_day: u32,
    /// Seconds a one-time code stays valid (1..=3600).
    #[arg(long, env = "MISSIVE_OTP_TTL_SECONDS", default_value_t = AuthLimits::default().otp_ttl_seconds,
          value_parser = clap::value_parser!(i64).range(1..=3600))]
    pub otp_ttl_seconds: i64,
    /// Seconds an access token lives (5..=86400); a WebSocket session ends
    /// when its token expires unless the client sends a `reauth` frame.
    #[arg(long, env = "MISSIVE_ACCESS_TTL_SECONDS", default_value_t = AuthLimits::default().access_ttl_seconds,
          value_parser = clap::value_parser!(i64).range(5..=86_400))]
    pub access_ttl_seconds: i64,
    /// POST push notification jobs (users with no connected device) to this URL.
    /// Without it jobs are still recorded on the `notifications` topic.
    #[arg(long, env = "MISSIVE_PUSH_WEBHOOK")]
    pub push_webhook: Option<String>,
    /// Serve `/metrics` on this address only (for example an internal
    /// interface); the public port then answers it `404`.
    #[arg(long, env = "MISSIVE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Open connections one client address (an IPv6 client: its /64) may
    /// hold; past it new ones are closed at once.
    #[arg(long, env = "MISSIVE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = missive_gateway::ConnectionLimits::default().per_address as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// A reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For
    /// names the client for rate limits; from anyone else the header is
    /// ignored.
    #[arg(long = "trusted-proxy", env = "MISSIVE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    #[command(flatten)]
    pub media: MediaArgs,
}

/// Where media objects are stored and what may be uploaded.
#[derive(clap::Args, Clone, Debug)]
pub struct MediaArgs {
    /// S3-compatible endpoint for media (e.g. http://127.0.0.1:8333); without
    /// it media are stored under the data directory (`<data-dir>/media`).
    #[arg(long, env = "MISSIVE_S3_ENDPOINT", requires_all = ["s3_bucket", "s3_access_key", "s3_secret_key"])]
    pub s3_endpoint: Option<String>,
    /// The bucket media objects go to (it must exist).
    #[arg(long, env = "MISSIVE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "MISSIVE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, env = "MISSIVE_S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    #[arg(long, env = "MISSIVE_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// Largest image upload, in bytes.
    #[arg(long, env = "MISSIVE_MEDIA_IMAGE_MAX_BYTES", default_value_t = MediaLimits::default().image)]
    pub media_image_max_bytes: u64,
    /// Largest video upload, in bytes.
    #[arg(long, env = "MISSIVE_MEDIA_VIDEO_MAX_BYTES", default_value_t = MediaLimits::default().video)]
    pub media_video_max_bytes: u64,
    /// Largest voice note upload, in bytes.
    #[arg(long, env = "MISSIVE_MEDIA_VOICE_MAX_BYTES", default_value_t = MediaLimits::default().voice)]
    pub media_voice_max_bytes: u64,
    /// Largest document upload, in bytes.
    #[arg(long, env = "MISSIVE_MEDIA_DOCUMENT_MAX_BYTES", default_value_t = MediaLimits::default().document)]
    pub media_document_max_bytes: u64,
    /// Bytes one user may be granted for uploads per UTC day.
    #[arg(long, env = "MISSIVE_MEDIA_DAILY_BYTES", default_value_t = MediaLimits::default().daily_bytes_per_user)]
    pub media_daily_bytes: u64,
    /// Seconds an upload or download URL stays valid (at most 900).
    #[arg(long, env = "MISSIVE_MEDIA_URL_TTL_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=900))]
    pub media_url_ttl_seconds: u64,
    /// How long media of messages deleted for everyone is kept before removal.
    #[arg(long, env = "MISSIVE_MEDIA_RETENTION_SECONDS", default_value_t = 7 * 86_400)]
    pub media_retention_seconds: u64,
    /// How long after its URL expired a never-completed upload (and its staging object) is removed.
    #[arg(long, env = "MISSIVE_MEDIA_ABANDONED_SECONDS", default_value_t = 86_400)]
    pub media_abandoned_seconds: u64,
    /// How often the media sweeper looks for what to remove.
    #[arg(long, env = "MISSIVE_MEDIA_SWEEP_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub media_sweep_seconds: u64,
}

impl MediaArgs {
    /// The media settings of a gateway whose data directory is `data_dir`.
    pub fn settings(&self, data_dir: &std::path::Path) -> MediaSettings {
        let objects = match (&self.s3_endpoint, &self.s3_bucket, &self.s3_access_key, &self.s3_secret_key) {
            (Some(endpoint), Some(bucket), Some(access_key), Some(secret_key)) => ObjectsConfig::S3 {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                region: self.s3_region.clone(),
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
            },
            _ => ObjectsConfig::Local { root: data_dir.join("media") },
        };
        let limits = MediaLimits {
            image: self.media_image_max_bytes,
            video: self.media_video_max_bytes,
            voice: self.media_voice_max_bytes,
            document: self.media_document_max_bytes,
            daily_bytes_per_user: self.media_daily_bytes,
        };
        MediaSettings {
            objects,
            limits,
            url_ttl: Duration::from_secs(self.media_url_ttl_seconds),
            retention: Duration::from_secs(self.media_retention_seconds),
            abandoned_after: Duration::from_secs(self.media_abandoned_seconds),
            sweep_every: Duration::from_secs(self.media_sweep_seconds),
        }
    }
}

impl ClientArgs {
    pub fn connection_limits(&self) -> missive_gateway::ConnectionLimits {
        missive_gateway::ConnectionLimits {
            per_address: self.max_connections_per_address as usize,
            trusted_proxies: self.trusted_proxies.clone().into(),
            ..missive_gateway::ConnectionLimits::default()
        }
    }

    /// The `--metrics-listen` socket, bound (and announced on stdout).
    pub async fn metrics_listener(&self) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        let Some(address) = self.metrics_listen else { return Ok(None) };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for --metrics-listen: is the port free?"))?;
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        Ok(Some(listener))
    }

    /// The auth settings from the secrets and these flags. Refuses the
    /// built-in development key (and short keys) unless `--dev`, and the
    /// `log` SMS sink (codes in the server log: whoever reads it can take
    /// over accounts) unless `--dev` or `log_sink_default`, the one-process
    /// server's out-of-the-box default, which then warns loudly.
    pub fn auth_config(&self, secrets: Secrets, log_sink_default: bool) -> anyhow::Result<AuthConfig> {
        if self.sms_sink == SmsSink::Log && !self.dev {
            if !log_sink_default {
                anyhow::bail!(
                    "--sms-sink log writes one-time codes into the server log, where anyone who reads it can take over accounts; use --sms-sink file:PATH or webhook:URL (MISSIVE_SMS_SINK), or --dev on a machine nobody else uses"
                );
            }
            tracing::warn!(
                "ONE-TIME CODES ARE WRITTEN TO THIS LOG (--sms-sink log, the default): anyone who reads it can take over accounts. Set --sms-sink file:PATH or webhook:URL (MISSIVE_SMS_SINK) for anything but a local trial"
            );
        }
        let from_file = match &self.jwt_secret_file {
            Some(path) => Some(read_private(path)?.trim().to_string()),
            None => None,
        };
        let jwt_secret = match (self.jwt_secret.clone().or(from_file), self.dev) {
            (Some(secret), _) => secret,
            (None, true) => DEV_JWT_SECRET.to_string(),
            (None, false) => secrets.jwt_secret,
        };
        if !self.dev {
            if jwt_secret == DEV_JWT_SECRET {
                anyhow::bail!(
                    "the access-token signing key is the built-in development key; set MISSIVE_JWT_SECRET (or the secrets file's jwt_secret) to {MIN_SECRET_BYTES}+ random bytes, or run with --dev on a machine nobody else uses"
                );
            }
            if jwt_secret.len() < MIN_SECRET_BYTES {
                anyhow::bail!(
                    "the access-token signing key is {} bytes; use at least {MIN_SECRET_BYTES} random bytes (for example `openssl rand -hex 32`)",
                    jwt_secret.len()
                );
            }
        }
        let limits = AuthLimits {
            otp_per_phone_per_hour: self.otp_per_phone_per_hour,
            otp_per_address_per_hour: self.otp_per_address_per_hour,
            verify_per_phone_per_hour: self.verify_per_phone_per_hour,
            verify_per_address_per_hour: self.verify_per_address_per_hour,
            contact_syncs_per_day: self.contact_syncs_per_day,
            otp_ttl_seconds: self.otp_ttl_seconds,
            access_ttl_seconds: self.access_ttl_seconds,
        };
        Ok(AuthConfig {
            jwt_secret: jwt_secret.into_bytes(),
            previous_jwt_secrets: secrets.previous_jwt_secrets.into_iter().map(String::into_bytes).collect(),
            phone_secret: secrets.phone_secret.into_bytes(),
            sms_sink: self.sms_sink.clone(),
            limits,
        })
    }

    pub fn tls(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(missive_gateway::tls::acceptor(cert, key)?)),
            _ => Ok(None),
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_idle_timeout.max(1))
    }
}

/// Waits for the directory to fold `events.user` up to its current end
/// before serving: tokens, PINs and privacy are checked against it.
pub async fn directory_ready(log: &dyn Log, db: &rocksdb::DB) -> anyhow::Result<()> {
    missive_processors::wait_caught_up(log, db, history::DIRECTORY, topics::EVENTS_USER, Duration::from_secs(3600))
        .await
        .map_err(anyhow::Error::msg)
        .context("the directory did not catch up with events.user")
}

/// Binds the client listener and announces it on stdout (`listening on
/// http://ADDR`, or https with TLS: the line scripts and tests wait for).
pub async fn listen(address: SocketAddr, tls: bool) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}; is another server running there?"))?;
    let bound = listener.local_addr()?;
    println!("listening on {}://{bound}", if tls { "https" } else { "http" });
    std::io::stdout().flush()?;
    Ok((listener, bound))
}

/// Loads the platform's secrets, creating random ones on first start. In
/// Kafka mode every gateway must load the same file: user ids are derived
/// from phone numbers with `phone_secret`, and tokens are signed with
/// `jwt_secret`.
pub fn load_or_create_secrets(path: &Path) -> anyhow::Result<Secrets> {
    if path.exists() {
        let text = read_private(path)?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is corrupt; restore it or delete it (all sessions end)", path.display()));
    }
    let secrets = Secrets { jwt_secret: random_hex(), phone_secret: random_hex(), previous_jwt_secrets: Vec::new() };
    write_private(path, serde_json::to_string_pretty(&secrets)?.as_bytes())?;
    Ok(secrets)
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
}

/// Writes a secret file readable by its owner only (0600), atomically.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// The token in `path`, created (random, mode 0600) if there is none.
pub fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        write_private(path, random_hex().as_bytes())?;
    }
    read_token(path)
}

/// Reads a file holding a secret, refusing one that other users can read.
fn read_private(path: &Path) -> anyhow::Result<String> {
    let mode = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} holds secrets but other users may read it (mode {:o}); run `chmod 600 {}` and start again",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates a directory (and its parents) readable by its owner only (0700);
/// an existing one is left as it is.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))
}

/// Cancels `cancel` when any task ends (fail-stop: a failed partition task
/// stops the process, and a supervisor or `infra/cluster` restarts it).
pub fn stop_when_any_task_ends(
    tasks: Vec<JoinHandle<Result<(), RuntimeError>>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if tasks.is_empty() {
            return;
        }
        let (result, _, _) = futures::future::select_all(tasks).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "a processor task failed; shutting down"),
            Err(error) => tracing::error!(%error, "a processor task panicked; shutting down"),
        }
        cancel.cancel();
    })
}

/// Cancels `cancel` on SIGINT or SIGTERM.
pub fn stop_on_signal(cancel: CancellationToken) {
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

/// Serves the schema registry's REST API on `address` until cancelled.
pub async fn serve_registry(
    address: SocketAddr,
    registry: Arc<Registry>,
    writers: missive_registry::http::Writers,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the schema registry; is the port taken?"))?;
    let bound = listener.local_addr()?;
    let service = warp::service(missive_registry::http::service(registry, writers));
    let limits = missive_gateway::ConnectionLimits::default();
    tokio::spawn(async move { missive_gateway::serve_connections(listener, service, None, limits, &cancel).await });
    Ok(bound)
}

/// Connection to the Kafka cluster and the schema registry.
#[derive(clap::Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,host:port`).
    #[arg(long = "kafka", env = "MISSIVE_KAFKA")]
    pub brokers: String,
    /// Replication factor for the topics Missive creates (3 on a production cluster).
    #[arg(long, env = "MISSIVE_KAFKA_REPLICATION", default_value_t = 1)]
    pub replication_factor: i32,
    /// Longest a consumer fetch waits on the broker, in ms (latency vs. broker load).
    #[arg(long, env = "MISSIVE_KAFKA_FETCH_WAIT_MS", default_value_t = 10)]
    pub fetch_wait_ms: u32,
    /// Producer linger, in ms (batching vs. latency).
    #[arg(long, env = "MISSIVE_KAFKA_LINGER_MS", default_value_t = 1)]
    pub linger_ms: u32,
    /// Extra librdkafka property `key=value` (repeatable), e.g. security settings.
    #[arg(long = "kafka-property", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// One librdkafka consumer per process with a queue per partition task
    /// (fewer broker fetches; experimental, see docs/design/kafka-mode.md).
    #[arg(long, env = "MISSIVE_KAFKA_SHARED_CONSUMER", default_value_t = false)]
    pub kafka_shared_consumer: bool,
    /// Do not write state changelogs (`changelog.<processor>`): faster, but an
    /// instance whose store is lost must then replay its inputs.
    #[arg(long, env = "MISSIVE_NO_CHANGELOG", default_value_t = false)]
    pub no_changelog: bool,
}

/// An address (one host) or a CIDR network.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("expected an address or CIDR such as 10.0.0.0/8, got {text:?}"))
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

impl KafkaArgs {
    pub fn changelogs(&self) -> bool {
        !self.no_changelog
    }

    pub async fn connect(&self, client_id: &str) -> anyhow::Result<Arc<dyn Log>> {
        let mut config = KafkaConfig::new(self.brokers.clone());
        config.replication = self.replication_factor;
        config.client_id = client_id.to_string();
        config.fetch_wait_ms = self.fetch_wait_ms;
        config.linger_ms = self.linger_ms;
        config.extra = self.properties.clone();
        config.shared_consumer = self.kafka_shared_consumer;
        let log = KafkaLog::connect(config)?;
        log.wait_ready(Duration::from_secs(60)).await?;
        Ok(Arc::new(log))
    }
}

#[derive(clap::Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Address to serve the REST API on.
    #[arg(long, env = "MISSIVE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// File (mode 0600) holding the admin token that registering schemas
    /// and setting compatibility need (`Authorization: Bearer`); without
    /// it the registry is read-only.
    #[arg(long, env = "MISSIVE_SCHEMA_REGISTRY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// The token in a private file (whitespace around it ignored).
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = read_private(path)?.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("{} is empty; write the token into it", path.display());
    }
    Ok(token)
}

pub async fn schema_registry(args: RegistryArgs) -> anyhow::Result<()> {
    let log = args.kafka.connect("missive-schema-registry").await?;
    let registry = Registry::open(log).await?;
    let cancel = CancellationToken::new();
    stop_on_signal(cancel.clone());
    let admin_token = args.admin_token_file.as_deref().map(read_token).transpose()?;
    if admin_token.is_none() {
        tracing::warn!("no --admin-token-file: the schema registry is read-only (Missive's members cannot register)");
    }
    let writers = missive_registry::http::Writers::new(admin_token);
    let bound = serve_registry(args.listen, registry, writers, cancel.clone()).await?;
    println!("listening on http://{bound}");
    std::io::stdout().flush()?;
    tracing::info!(address = %bound, "schema registry serving");
    cancel.cancelled().await;
    Ok(())
}

/// Where the schema registry is.
#[derive(clap::Args, Clone, Debug)]
pub struct SchemaRegistryUrl {
    /// Base URL of a Confluent-compatible schema registry (`missive schema-registry`).
    #[arg(long = "schema-registry", env = "MISSIVE_SCHEMA_REGISTRY")]
    pub url: String,
    /// File (mode 0600) holding the registry's admin token, for registering
    /// Missive's schemas.
    #[arg(long = "schema-registry-token-file", env = "MISSIVE_SCHEMA_REGISTRY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl SchemaRegistryUrl {
    /// Registers Missive's schemas there; returns the codec.
    pub async fn register(&self) -> anyhow::Result<missive_schemas::Codec> {
        let token = self.token_file.as_deref().map(read_token).transpose()?;
        Ok(register_remote(&self.url, token.as_deref(), Duration::from_secs(60)).await?)
    }
}

#[derive(clap::Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryUrl,
    /// Directory for this instance's state store.
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// This instance's number, 0-based: it runs the partitions p with p % instances == instance.
    #[arg(long, env = "MISSIVE_INSTANCE", default_value_t = 0)]
    pub instance: u32,
    /// How many instances share the partitions.
    #[arg(long, env = "MISSIVE_INSTANCES", default_value_t = 1)]
    pub instances: u32,
    /// Which deciders to run (comma-separated): conversation, users.
    #[arg(long, env = "MISSIVE_PROCESSORS", value_delimiter = ',', default_value = "conversation,users")]
    pub processors: Vec<String>,
    #[command(flatten)]
    pub rules: RulesArgs,
}

/// The conversation decider's configurable rules.
#[derive(clap::Args, Clone, Copy)]
pub struct RulesArgs {
    /// How long after sending a message it may be deleted for everyone, in seconds.
    #[arg(long, env = "MISSIVE_DELETE_FOR_EVERYONE_SECONDS", default_value_t = 3600)]
    pub delete_for_everyone_seconds: u32,
}

impl RulesArgs {
    pub fn windows(&self) -> missive_core::operations::OperationWindows {
        missive_core::operations::OperationWindows {
            delete_ms: i64::from(self.delete_for_everyone_seconds) * 1000,
            ..Default::default()
        }
    }
}

pub async fn process(args: ProcessArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.instances >= 1 && args.instance < args.instances,
        "--instance must be below --instances ({} of {})",
        args.instance,
        args.instances
    );
    let mut selected: Vec<&'static str> = Vec::new();
    for name in &args.processors {
        match name.as_str() {
            "conversation" => selected.push(conversation::PROCESSOR),
            "users" => selected.push(users::PROCESSOR),
            other => anyhow::bail!(
                "unknown processor {other:?}: `missive process` runs conversation and users; inbox, history and the directory run inside `missive gateway`"
            ),
        }
    }
    create_private_dir(&args.data_dir)?;
    let log = args.kafka.connect(&format!("missive-process-{}", args.instance)).await?;
    missive_processors::create_topics(log.as_ref(), args.kafka.changelogs()).await?;
    let codec = Arc::new(args.registry.register().await?);
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let metrics = RuntimeMetrics::new(&prometheus::Registry::new())?;
    let cancel = CancellationToken::new();
    let (instance, instances) = (args.instance, args.instances);
    let place =
        |processor: &'static str, partition: u32| selected.contains(&processor) && partition % instances == instance;
    let changelogs = args.kafka.changelogs();
    let tasks = missive_processors::spawn_placed(
        log,
        db,
        codec,
        ReadSide::new(1024),
        metrics,
        cancel.clone(),
        Placement { changelogs, place: &place, windows: args.rules.windows() },
    );
    let count = tasks.len();
    let watchdog = stop_when_any_task_ends(tasks, cancel.clone());
    stop_on_signal(cancel.clone());
    println!("processing {count} partitions ({}) as instance {instance} of {instances}", args.processors.join(","));
    std::io::stdout().flush()?;
    cancel.cancelled().await;
    watchdog.abort();
    Ok(())
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryUrl,
    /// Address to listen on.
    #[arg(long, env = "MISSIVE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for this gateway's state (inbox of its partitions, history, directory, OTPs).
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Base URLs of all gateways, in index order (`http://host:port,...`); clients are
    /// redirected to the one owning their feed. Default: this gateway alone.
    #[arg(long, env = "MISSIVE_GATEWAYS", value_delimiter = ',')]
    pub gateways: Vec<String>,
    /// This gateway's position in --gateways.
    #[arg(long, env = "MISSIVE_GATEWAY_INDEX", default_value_t = 0)]
    pub index: usize,
    /// Secrets shared by every gateway (JSON with jwt_secret and phone_secret; created if missing).
    #[arg(long, env = "MISSIVE_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    create_private_dir(&args.data_dir)?;
    let secrets_path = args.secrets_file.clone().unwrap_or_else(|| args.data_dir.join("secrets.json"));
    let secrets = load_or_create_secrets(&secrets_path)?;
    let auth = args.client.auth_config(secrets, false)?;
    let tls = args.client.tls()?;
    let partitions = missive_processors::partitions_of(topics::DELIVERIES);
    let routing = if args.gateways.is_empty() {
        Routing::single(partitions)
    } else {
        Routing::new(args.index, args.gateways.clone(), partitions).map_err(anyhow::Error::msg)?
    };
    let node_id = u16::try_from(args.index + 1).ok().filter(|id| *id < 1024).context("at most 1023 gateways")?;
    let log = args.kafka.connect(&format!("missive-gateway-{}", args.index)).await?;
    missive_processors::create_topics(log.as_ref(), args.kafka.changelogs()).await?;
    let codec = Arc::new(args.registry.register().await?);
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let registry = prometheus::Registry::new();
    let metrics = RuntimeMetrics::new(&registry)?;
    let read_side = read_side(&db)?;
    let cancel = CancellationToken::new();
    let place = |processor: &'static str, partition: u32| match processor {
        inbox::PROCESSOR => routing.owns_partition(partition),
        history::HISTORY | history::DIRECTORY | history::MEDIA => true,
        _ => false,
    };
    let tasks = missive_processors::spawn_placed(
        log.clone(),
        db.clone(),
        codec.clone(),
        read_side.clone(),
        metrics,
        cancel.clone(),
        Placement { changelogs: args.kafka.changelogs(), place: &place, windows: Default::default() },
    );
    let watchdog = stop_when_any_task_ends(tasks, cancel.clone());
    stop_on_signal(cancel.clone());
    directory_ready(log.as_ref(), &db).await?;
    let (listener, address) = listen(args.listen, tls.is_some()).await?;
    tracing::info!(%address, index = args.index, gateways = args.gateways.len(), "missive gateway serving (Kafka mode)");
    if args.gateways.len() > 1 && args.client.media.s3_endpoint.is_none() {
        tracing::warn!(
            "media is stored in this gateway's own directory: users of other gateways cannot fetch it; \
             give every gateway the same --s3-endpoint/--s3-bucket to share media"
        );
    }
    let config = GatewayConfig {
        gateway_id: format!("gateway-{}", args.index),
        node_id,
        idle_timeout: args.client.idle_timeout(),
        routing,
        auth,
        tls,
        push_webhook: args.client.push_webhook.clone(),
        media: args.client.media.settings(&args.data_dir),
        metrics_listener: args.client.metrics_listener().await?,
        connection_limits: args.client.connection_limits(),
    };
    let backend = missive_gateway::Backend { log, db, codec, read_side, registry };
    missive_gateway::serve(listener, config, backend, cancel.clone()).await?;
    cancel.cancel();
    watchdog.abort();
    Ok(())
}
