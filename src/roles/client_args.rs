//! The client-facing settings every gateway takes (embedded or Kafka mode).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use missive_core::media::MediaLimits;
use missive_gateway::GatewayConfig;
use missive_gateway::MediaSettings;
use missive_gateway::auth::{AuthConfig, AuthLimits, DEV_JWT_SECRET, MIN_SECRET_BYTES, SmsSink};
use missive_gateway::routing::Routing;
use missive_infra::objects::ObjectsConfig;

use super::common::*;
use super::kafka_args::*;

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
    /// Accept plaintext messages (`content`, captions, places, contact cards,
    /// emoji reactions). Off by default: clients send end-to-end encrypted
    /// bodies and the server refuses plaintext with `plaintext_not_allowed`.
    /// For bots, load tests and development.
    #[arg(long, env = "MISSIVE_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
    /// The built web client to serve at `/` (default: `web/dist` under the
    /// working directory, else `web` beside the binary; built by
    /// `infra/scripts/build-web.sh`).
    #[arg(long, env = "MISSIVE_WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,
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
    /// Sends and forwards this gateway holds appended and not yet answered;
    /// past it new ones are refused `unavailable` with `retry_after` (the
    /// client sends them again), so overload is refused, not queued.
    #[arg(long, env = "MISSIVE_MAX_PENDING_SENDS", default_value_t = missive_gateway::session::limits::MAX_PENDING_SENDS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pending_sends: u64,
    /// Milliseconds a send waits for room among the pending ones before it
    /// is refused.
    #[arg(long, env = "MISSIVE_ADMISSION_WAIT_MS", default_value_t = missive_gateway::session::limits::ADMISSION_WAIT.as_millis() as u64)]
    pub admission_wait_ms: u64,
    /// Milliseconds a send may take longer than the quietest lately before
    /// the gateway lets fewer sends in at once (down to a sixteenth of
    /// --max-pending-sends), so that under overload sends wait for room,
    /// fairly, rather than inside the pipeline (20 is a good value: a
    /// person's latency under overload halves, goodput drops ~13 %);
    /// 0, the default, keeps the room at --max-pending-sends.
    #[arg(long, env = "MISSIVE_SEND_QUEUE_SLACK_MS", default_value_t = 0)]
    pub send_queue_slack_ms: u64,
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
    /// The gateway's configuration from these settings, for the gateway
    /// `gateway_id` (Snowflake node `node_id`) serving `routing`'s users.
    pub async fn gateway_config(
        &self,
        data_dir: &std::path::Path,
        (gateway_id, node_id): (String, u16),
        routing: Routing,
        auth: AuthConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<GatewayConfig> {
        Ok(GatewayConfig {
            gateway_id,
            node_id,
            idle_timeout: self.idle_timeout(),
            routing,
            auth,
            tls,
            push_webhook: self.push_webhook.clone(),
            allow_plaintext: self.allow_plaintext,
            web_dir: missive_gateway::server::web::locate(self.web_dir.as_deref()),
            media: self.media.settings(data_dir),
            metrics_listener: self.metrics_listener().await?,
            connection_limits: self.connection_limits(),
            send_admission: missive_gateway::session::limits::SendAdmission {
                max_pending: self.max_pending_sends as usize,
                wait: Duration::from_millis(self.admission_wait_ms),
                slack: (self.send_queue_slack_ms > 0).then(|| Duration::from_millis(self.send_queue_slack_ms)),
            },
            clock: missive_infra::Clock::system(),
        })
    }

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
