//! The gateway: HTTP (warp) and WebSocket endpoints for clients. It
//! authenticates devices, turns client frames into commands on the log,
//! and pushes each connected user's feed. It writes no domain state itself.
//! `client` is a small Rust client of the same protocol, used by the
//! end-to-end tests and the load generator.

pub mod api;
pub mod auth;
pub mod client;
pub mod commands;
pub mod errors;
pub mod groups;
pub mod limits;
pub mod live;
pub mod media;
pub mod metrics;
pub mod operations;
pub mod presence;
pub mod protocol;
pub mod push;
pub mod reads;
pub mod replies;
pub mod routing;
pub mod sessions;
pub mod snowflake;
pub mod thumbnails;
pub mod tls;
pub mod worker;
pub mod ws;

use std::sync::Arc;

use missive_infra::Log;
use missive_processors::ReadSide;
use missive_schemas::Codec;
use prometheus::{Encoder, Registry, TextEncoder};
use rocksdb::DB;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::{Filter, Reply};

use crate::auth::{Auth, AuthConfig};
use crate::commands::CommandBus;
use crate::metrics::GatewayMetrics;
use crate::reads::ReadModels;
use crate::replies::ReplyRouter;
use crate::ws::SessionDeps;

/// How long open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What one client address may hold of a listener, and how long a
/// connection may stay silent before its first request is complete.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Open connections per client address (an IPv6 client by its /64);
    /// past it a new connection is closed at once.
    pub per_address: usize,
    /// A connection that sends no byte for this long after it opened, or
    /// whose request headers take longer, is closed.
    pub header_timeout: std::time::Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client
    /// (`--trusted-proxy`); they are not held to `per_address`.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            per_address: 4096,
            header_timeout: std::time::Duration::from_secs(10),
            trusted_proxies: Arc::new([]),
        }
    }
}

impl ConnectionLimits {
    fn trusts(&self, address: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|proxy| proxy.contains(&address))
    }

    /// The client a request comes from: the peer, or for a trusted proxy
    /// the last address in `X-Forwarded-For` that is not a trusted proxy
    /// (what each proxy appended; anything further left the client could
    /// have written itself).
    fn client_of(&self, peer: std::net::SocketAddr, headers: &warp::http::HeaderMap) -> std::net::SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|part| part.trim().parse::<std::net::IpAddr>())
            .collect::<Vec<_>>();
        for address in forwarded.into_iter().rev() {
            match address {
                Ok(address) if self.trusts(address) => continue,
                Ok(address) => return std::net::SocketAddr::new(address, 0),
                // An entry that is no address: nothing to its left can be trusted.
                Err(_) => break,
            }
        }
        peer
    }
}

/// Open connections per client address; a [`Slot`] gives its place back when dropped.
#[derive(Clone, Default)]
struct OpenConnections {
    counts: Arc<parking_lot::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

struct Slot {
    open: OpenConnections,
    address: std::net::IpAddr,
}

impl OpenConnections {
    fn take(&self, address: std::net::IpAddr, most: usize) -> Option<Slot> {
        let address = auth::address_key(address);
        let mut counts = self.counts.lock();
        let count = counts.entry(address).or_default();
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(Slot { open: self.clone(), address })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock();
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Accepts connections until cancelled. Our own loop rather than
/// `warp::serve` so every socket gets TCP_NODELAY (feed pushes are small
/// frames, and Nagle's algorithm with delayed ACKs would add ~40 ms each),
/// TLS when configured, its client address in each request's extensions
/// ([`api::ClientAddr`], for per-address rate limits), and the
/// [`ConnectionLimits`]: silent and slow-header sockets are closed, and one
/// address cannot hold every file descriptor.
pub async fn serve_connections<S>(
    listener: TcpListener,
    service: S,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    cancel: &CancellationToken,
) where
    S: tower_service::Service<
            warp::http::Request<hyper::body::Incoming>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = OpenConnections::default();
    let mut refused_logged = std::time::Instant::now() - std::time::Duration::from_secs(60);
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A trusted proxy carries many clients: it is not held to the cap.
        let most = if limits.trusts(peer.ip()) { usize::MAX } else { limits.per_address };
        let Some(slot) = open.take(peer.ip(), most) else {
            if refused_logged.elapsed() > std::time::Duration::from_secs(10) {
                refused_logged = std::time::Instant::now();
                tracing::warn!(address = %peer.ip(), most = limits.per_address, "connections from one address over the cap are closed");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let proxies = limits.clone();
        let service = hyper::service::service_fn(move |mut request: warp::http::Request<hyper::body::Incoming>| {
            let client = proxies.client_of(peer, request.headers());
            request.extensions_mut().insert(api::ClientAddr(client));
            let mut service = service.clone();
            tower_service::Service::call(&mut service, request)
        });
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let result = match tls {
                None => {
                    // A socket that never sends a byte would wait in HTTP
                    // version detection, before any header timeout starts.
                    let mut first = [0u8; 1];
                    let peeked = tokio::time::timeout(header_timeout, stream.peek(&mut first)).await;
                    if !matches!(peeked, Ok(Ok(1..))) {
                        tracing::debug!(%peer, "no request within the header timeout");
                        return;
                    }
                    let io = hyper_util::rt::TokioIo::new(stream);
                    watcher.watch(builder.serve_connection_with_upgrades(io, service)).await
                }
                Some(acceptor) => {
                    // The handshake runs in the connection's task: a slow client never stalls accepting.
                    let handshake = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let Ok(Ok(stream)) = handshake else {
                        tracing::debug!(%peer, "TLS handshake failed or timed out");
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    watcher.watch(builder.serve_connection_with_upgrades(io, service)).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// Runs a background loop until `cancel`, starting it again (after a short
/// pause) whenever it fails.
fn restart_on_failure<Run, Loop>(
    what: &'static str,
    cancel: CancellationToken,
    mut run: Run,
) -> tokio::task::JoinHandle<()>
where
    Run: FnMut() -> Loop + Send + 'static,
    Loop: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        while !cancel.is_cancelled() {
            match run().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, what, "background loop failed; restarting it");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    })
}

/// The `access_token` query parameter of a request path, if any.
fn access_token_in(path_and_query: &str) -> Option<String> {
    let (_, query) = path_and_query.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("access_token=")).map(str::to_string)
}

pub struct GatewayConfig {
    /// Names this gateway on the `replies` topic.
    pub gateway_id: String,
    /// Snowflake node id (0..=1023), unique per running gateway.
    pub node_id: u16,
    pub auth: AuthConfig,
    /// A WebSocket that sends nothing for this long is closed (protocol: 60 s).
    pub idle_timeout: std::time::Duration,
    /// Which users this gateway serves (all of them in embedded mode).
    pub routing: routing::Routing,
    /// Serve HTTPS/WSS with this certificate (`--tls-cert/--tls-key`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where push notification jobs are POSTed (`--push-webhook`).
    pub push_webhook: Option<String>,
    /// Media storage and upload limits.
    pub media: MediaSettings,
    /// Serve `/metrics` here instead of on the public listener (`--metrics-listen`).
    pub metrics_listener: Option<TcpListener>,
    /// Per-address connection cap and header timeout.
    pub connection_limits: ConnectionLimits,
}

/// Where media objects live, what may be uploaded, how long URLs last.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    pub objects: missive_infra::objects::ObjectsConfig,
    pub limits: missive_core::media::MediaLimits,
    pub url_ttl: std::time::Duration,
    /// How long media of messages deleted for everyone is kept.
    pub retention: std::time::Duration,
    /// How long after its URL expired a never-completed upload is removed.
    pub abandoned_after: std::time::Duration,
    /// How often the media sweeper runs.
    pub sweep_every: std::time::Duration,
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
    // Local media URLs are signed with a key of their own, derived from the token key.
    let media_key = {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&config.auth.jwt_secret)
            .expect("HMAC accepts keys of any length");
        mac.update(b"missive media url signing");
        mac.finalize().into_bytes().to_vec()
    };
    let media = media::Media::new(objects, &config.media, &media_key, db.clone(), log.clone(), codec.clone())
        .served_at(config.routing.own_url());
    let metrics = GatewayMetrics::new(&registry)?;
    let replies = ReplyRouter::new(config.gateway_id.clone());
    replies.start_at_end(log.as_ref()).await?;
    // Deciders running in this process (embedded mode) hand outcomes over
    // in memory; the router still reads those of other processes.
    {
        let router = replies.clone();
        read_side.replies.attach(&config.gateway_id, move |reply| router.complete(reply));
    }
    // The router is how sends learn their outcome: if it fails (broker
    // trouble), it starts again instead of leaving every send to time out.
    let reply_task = {
        let (replies, log, codec, cancel) = (replies.clone(), log.clone(), codec.clone(), cancel.clone());
        restart_on_failure("reply router", cancel.clone(), move || {
            replies.clone().run(log.clone(), codec.clone(), cancel.clone())
        })
    };
    let sessions = sessions::Sessions::default();
    let auth = Arc::new(Auth::new(db.clone(), config.auth));
    let reads = ReadModels::new(db, log.clone(), read_side.users);
    // Live signals start at the end of `ephemeral`, found before serving;
    // after a failure, from the end again (what was missed is stale anyway).
    let live_task = {
        let mut first = Some(live::start_positions(log.as_ref()).await?);
        let (log, codec, sessions, reads, cancel) =
            (log.clone(), codec.clone(), sessions.clone(), reads.clone(), cancel.clone());
        restart_on_failure("live router", cancel.clone(), move || {
            let (start, log, codec, sessions, reads, cancel) =
                (first.take(), log.clone(), codec.clone(), sessions.clone(), reads.clone(), cancel.clone());
            async move {
                let start = match start {
                    Some(start) => start,
                    None => live::start_positions(log.as_ref()).await?,
                };
                live::run(log, codec, sessions, reads, start, cancel).await
            }
        })
    };
    let bus = Arc::new(CommandBus::new(log.clone(), codec.clone(), replies, config.node_id, metrics.clone()));
    // Presence: this instance's heartbeats, and the fold of every gateway's.
    let presence = Arc::new(presence::Presence::new(
        &config.gateway_id,
        log.clone(),
        codec.clone(),
        sessions.clone(),
        reads.clone(),
        bus.clone(),
        config.routing.clone(),
    ));
    // Push: messages for users without a session become jobs; a webhook
    // worker (when configured) sends the jobs of this gateway's users.
    let notifier =
        tokio::spawn(push::run_notifier(read_side.hub.offline_messages(), log.clone(), codec.clone(), cancel.clone()));
    let webhook = config.push_webhook.clone().map(|url| {
        let partitions: Vec<u32> = (0..missive_processors::partitions_of(missive_processors::topics::NOTIFICATIONS))
            .filter(|partition| config.routing.owns_partition(*partition))
            .collect();
        let (log, codec, cancel) = (log.clone(), codec.clone(), cancel.clone());
        restart_on_failure("push webhook", cancel.clone(), move || {
            push::run_webhook(url.clone(), log.clone(), codec.clone(), partitions.clone(), cancel.clone())
        })
    });
    // The media processor (thumbnails) works the `events.media` partitions
    // this gateway owns; the sweeper removes what retention allows.
    let media_tasks = {
        let partitions: Vec<u32> = (0..missive_processors::partitions_of(missive_processors::topics::EVENTS_MEDIA))
            .filter(|partition| config.routing.owns_partition(*partition))
            .collect();
        let (objects, log, codec, stop) = (media.objects().clone(), log.clone(), codec.clone(), cancel.clone());
        [
            restart_on_failure("media thumbnails", cancel.clone(), move || {
                thumbnails::run(objects.clone(), log.clone(), codec.clone(), partitions.clone(), stop.clone())
            }),
            tokio::spawn(media::run_sweeper(media.clone(), config.media.sweep_every, cancel.clone())),
        ]
    };
    let presence_tasks = [
        restart_on_failure("presence heartbeats", cancel.clone(), {
            let (presence, cancel) = (presence.clone(), cancel.clone());
            move || presence.clone().run_heartbeats(cancel.clone())
        }),
        restart_on_failure("presence router", cancel.clone(), {
            let (presence, cancel) = (presence.clone(), cancel.clone());
            move || presence.clone().run_router(cancel.clone())
        }),
    ];
    let deps = SessionDeps {
        auth: auth.clone(),
        bus: bus.clone(),
        reads: reads.clone(),
        hub: read_side.hub,
        metrics,
        idle_timeout: config.idle_timeout,
        routing: config.routing.clone(),
        sessions: sessions.clone(),
        limits: Arc::new(crate::limits::FrameLimits::default()),
        presence,
        media: media.clone(),
    };
    let upgrade_routing = (auth.clone(), config.routing.clone());

    // The upgrade is done here rather than with warp's `ws()` filter so the
    // WebSocket buffers can be sized (see `ws::websocket_config`).
    let websocket = warp::path!("v1" / "ws")
        .and(warp::get())
        .and(warp::header::exact_ignore_case("upgrade", "websocket"))
        .and(warp::header::<String>("sec-websocket-key"))
        .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
        .and(api::path_and_query())
        .map(move |key: String, on_upgrade: Option<hyper::upgrade::OnUpgrade>, path: String| {
            // A client that names itself in the URL (`?access_token=`) is
            // redirected to its gateway before the upgrade.
            let (auth, routing) = &upgrade_routing;
            if let Some(principal) = access_token_in(&path).and_then(|token| auth.verify_access(&token).ok())
                && let Err(redirect) = routing.check(principal.user, &path)
            {
                return redirect.into_response();
            }
            let Some(on_upgrade) = on_upgrade else {
                return errors::ApiError::bad_request("bad_request", "this connection cannot be upgraded")
                    .into_response();
            };
            tokio::spawn(ws::accept(on_upgrade, deps.clone()));
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            warp::http::Response::builder()
                .status(warp::http::StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(warp::hyper::body::Bytes::new().into())
                .unwrap_or_default()
        });
    let health =
        warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let metrics_route = move |registry: Registry| {
        warp::path!("metrics").and(warp::get()).map(move || {
            let mut buffer = Vec::new();
            let _ = TextEncoder::new().encode(&registry.gather(), &mut buffer);
            warp::http::Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(buffer)
                .unwrap_or_default()
        })
    };
    // With `--metrics-listen`, `/metrics` is served there only.
    let metrics_task = config.metrics_listener.map(|listener| {
        let (routes, cancel) = (metrics_route(registry.clone()).recover(api::handle_rejection), cancel.clone());
        let limits = config.connection_limits.clone();
        tokio::spawn(async move { serve_connections(listener, warp::service(routes), None, limits, &cancel).await })
    });
    let public_metrics = metrics_task.is_none();
    let metrics_route = warp::any()
        .and_then(move || async move { if public_metrics { Ok(()) } else { Err(warp::reject::not_found()) } })
        .untuple_one()
        .and(metrics_route(registry));
    let context = api::Context { auth, bus, reads, routing: config.routing, sessions, media: media.clone() };
    let media_routes = media::routes(context.clone(), media)
        .into_iter()
        .reduce(|routes, route| routes.or(route).unify().boxed())
        .expect("media routes");
    let routes = websocket
        .or(health)
        .or(metrics_route)
        .or(media_routes)
        .or(api::routes(context))
        .recover(api::handle_rejection)
        .with(warp::trace::request());
    serve_connections(listener, warp::service(routes), config.tls, config.connection_limits, &cancel).await;
    cancel.cancel();
    let _ = reply_task.await;
    let _ = live_task.await;
    for task in presence_tasks.into_iter().chain(media_tasks).chain(webhook) {
        let _ = task.await;
    }
    let _ = notifier.await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    Ok(())
}
