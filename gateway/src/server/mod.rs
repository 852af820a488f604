//! Wiring: builds the gateway's parts from the log and the store, starts
//! its background loops, and serves the routes every feature exposes.

mod accept;
mod background;
pub mod log_watch;
mod routes;
pub mod tls;
pub mod web;

use std::sync::Arc;

use missive_infra::{Clock, Log};
use missive_processors::ReadSide;
use missive_schemas::Codec;
use prometheus::Registry;
use rocksdb::DB;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use accept::{ConnectionLimits, serve_connections};

use crate::auth::{Auth, AuthConfig};
use crate::commands::{CommandBus, ReplyRouter};
use crate::media::{Media, MediaSettings};
use crate::messaging::MessagingDeps;
use crate::metrics::GatewayMetrics;
use crate::presence::Presence;
use crate::reads::ReadModels;
use crate::rest::Context;
use crate::routing::Routing;
use crate::session::SessionDeps;
use crate::session::limits::FrameLimits;
use crate::session::registry::Sessions;

pub struct GatewayConfig {
    /// Names this gateway on the `replies` topic.
    pub gateway_id: String,
    /// Snowflake node id (0..=1023), unique per running gateway.
    pub node_id: u16,
    pub auth: AuthConfig,
    /// A WebSocket that sends nothing for this long is closed (protocol: 60 s).
    pub idle_timeout: std::time::Duration,
    /// Which users this gateway serves (all of them in embedded mode).
    pub routing: Routing,
    /// Serve HTTPS/WSS with this certificate (`--tls-cert/--tls-key`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where push notification jobs are POSTed (`--push-webhook`).
    pub push_webhook: Option<String>,
    /// Accept plaintext message bodies (`--allow-plaintext`); otherwise only
    /// end-to-end encrypted ones.
    pub allow_plaintext: bool,
    /// Media storage and upload limits.
    pub media: MediaSettings,
    /// The built web client served at `/` (`--web-dir`; see `web::locate`).
    pub web_dir: Option<std::path::PathBuf>,
    /// Serve `/metrics` here instead of on the public listener (`--metrics-listen`).
    pub metrics_listener: Option<TcpListener>,
    /// Per-address connection cap and header timeout.
    pub connection_limits: ConnectionLimits,
    /// Sends and forwards appended and unanswered at most, and how long a
    /// new one waits for room; past it new ones are refused `unavailable`
    /// with `retry_after` (`session::limits`).
    pub send_admission: crate::session::limits::SendAdmission,
    /// The wall clock the gateway reads (the system's; a manual one in tests).
    pub clock: Clock,
}

/// What a gateway reads and writes: the log, the local store with its read
/// models, the codec, the read side shared with in-process projections,
/// and the metrics registry.
pub struct Backend {
    pub log: Arc<dyn Log>,
    pub db: Arc<DB>,
    pub codec: Arc<Codec>,
    pub read_side: ReadSide,
    pub registry: Registry,
}

/// The parts every feature is built from.
#[derive(Clone)]
pub(crate) struct Parts {
    pub log: Arc<dyn Log>,
    pub codec: Arc<Codec>,
    pub auth: Arc<Auth>,
    pub bus: Arc<CommandBus>,
    pub reads: ReadModels,
    pub sessions: Sessions,
    pub presence: Arc<Presence>,
    pub media: Media,
    pub routing: Routing,
    pub metrics: GatewayMetrics,
    pub clock: Clock,
}

/// Serves until `cancel` fires. The listener is bound by the caller so it
/// can report the real address (port 0 picks a free one).
pub async fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    backend: Backend,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Backend { log, db, codec, read_side, registry } = backend;
    let objects = missive_infra::objects::Objects::open(&config.media.objects)?;
    let clock = config.clock.clone();
    let media = Media::new(
        objects,
        &config.media,
        &media_key(&config.auth),
        db.clone(),
        log.clone(),
        codec.clone(),
        clock.clone(),
    )
    .served_at(config.routing.own_url());
    let metrics = GatewayMetrics::new(&registry)?;
    metrics.send_room.set(config.send_admission.max_pending as i64);
    let replies = ReplyRouter::new(config.gateway_id.clone(), &clock);
    replies.start_at_end(log.as_ref()).await?;
    // Deciders running in this process (embedded mode) hand outcomes over
    // in memory; the router still reads those of other processes.
    {
        let router = replies.clone();
        read_side.replies.attach(&config.gateway_id, move |reply| router.complete(reply));
    }
    let sessions = Sessions::default();
    let auth = Arc::new(Auth::new(db.clone(), config.auth, clock.clone()));
    let reads = ReadModels::new(db, log.clone(), read_side.users);
    let bus = Arc::new(CommandBus::new(
        log.clone(),
        codec.clone(),
        replies.clone(),
        config.node_id,
        metrics.clone(),
        clock.clone(),
    ));
    // Presence: this instance's heartbeats, and the fold of every gateway's.
    let presence = Arc::new(Presence::new(
        &config.gateway_id,
        log.clone(),
        codec.clone(),
        sessions.clone(),
        reads.clone(),
        bus.clone(),
        config.routing.clone(),
    ));
    let parts = Parts {
        log,
        codec,
        auth,
        bus,
        reads,
        sessions,
        presence,
        media,
        routing: config.routing.clone(),
        metrics,
        clock,
    };
    let (log_reachable, reachable) = tokio::sync::watch::channel(true);
    let watch_task = tokio::spawn(log_watch::run(parts.log.clone(), log_reachable, cancel.clone()));
    let tasks = background::start(
        &parts,
        replies,
        read_side.hub.offline_messages(),
        &config.media,
        config.push_webhook.clone(),
        &cancel,
    )
    .await?;
    let session = SessionDeps {
        auth: parts.auth.clone(),
        bus: parts.bus.clone(),
        reads: parts.reads.clone(),
        hub: read_side.hub,
        metrics: parts.metrics.clone(),
        idle_timeout: config.idle_timeout,
        routing: parts.routing.clone(),
        sessions: parts.sessions.clone(),
        limits: Arc::new(FrameLimits::new(config.send_admission)),
        presence: parts.presence.clone(),
        messaging: MessagingDeps {
            bus: parts.bus.clone(),
            reads: parts.reads.clone(),
            media: parts.media.clone(),
            allow_plaintext: config.allow_plaintext,
        },
        clock: parts.clock.clone(),
        log_reachable: reachable,
    };
    let context = Context {
        auth: parts.auth.clone(),
        bus: parts.bus.clone(),
        reads: parts.reads.clone(),
        routing: parts.routing.clone(),
        sessions: parts.sessions.clone(),
    };
    // With `--metrics-listen`, `/metrics` is served there only.
    let metrics_task = config.metrics_listener.map(|listener| {
        let (service, cancel) = (routes::metrics_only(registry.clone()), cancel.clone());
        let limits = config.connection_limits.clone();
        tokio::spawn(async move { serve_connections(listener, warp::service(service), None, limits, &cancel).await })
    });
    let public_metrics = metrics_task.is_none().then_some(registry);
    let service = routes::public(context, session, parts.media.clone(), public_metrics, config.web_dir.clone());
    serve_connections(listener, warp::service(service), config.tls, config.connection_limits, &cancel).await;
    cancel.cancel();
    for task in tasks.into_iter().chain(metrics_task).chain([watch_task]) {
        let _ = task.await;
    }
    Ok(())
}

/// Local media URLs are signed with a key of their own, derived from the token key.
fn media_key(auth: &AuthConfig) -> Vec<u8> {
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&auth.jwt_secret).expect("HMAC accepts keys of any length");
    mac.update(b"missive media url signing");
    mac.finalize().into_bytes().to_vec()
}
