//! The accept loop: TCP_NODELAY, TLS, each request's client address, and
//! the per-address connection cap and header timeout.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::tls;
use crate::auth;
use crate::rest::ClientAddr;

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
/// ([`ClientAddr`], for per-address rate limits), and the
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
            request.extensions_mut().insert(ClientAddr(client));
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
