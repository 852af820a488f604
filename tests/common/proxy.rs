//! A TCP proxy the fault tests put between Missive's processes and the
//! broker (`missive cluster up --broker-advertise`), to inject network
//! faults: added latency each way, every connection dropped at once, and
//! one process cut off (its connections closed, new ones closed at once)
//! until healed. A connection is told apart by the Kafka client id in the
//! header of its first request (`missive-gateway-0-producer`, ...).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

struct Faults {
    target: SocketAddr,
    latency_ms: AtomicU64,
    /// Client-id prefixes cut off.
    cut: Mutex<Vec<String>>,
    /// Bumped to close connections: every one re-checks whether it is cut
    /// (or, on a drop, closes whatever it is).
    changed: watch::Sender<(u64, bool)>,
    dropped: AtomicU64,
}

pub struct FaultProxy {
    pub address: SocketAddr,
    faults: Arc<Faults>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy listener");
        let address = listener.local_addr().expect("proxy address");
        let faults = Arc::new(Faults {
            target,
            latency_ms: AtomicU64::new(0),
            cut: Mutex::new(Vec::new()),
            changed: watch::channel((0, false)).0,
            dropped: AtomicU64::new(0),
        });
        let accept = {
            let faults = faults.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, faults.clone()));
                }
            })
        };
        FaultProxy { address, faults, accept }
    }

    /// Delays every chunk each way by `latency` (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.faults.latency_ms.store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Closes every connection through the proxy once (they may reconnect).
    pub fn drop_all(&self) {
        self.faults.changed.send_modify(|(generation, drop)| {
            *generation += 1;
            *drop = true;
        });
    }

    /// Cuts off the process whose client ids start with `prefix` until [`FaultProxy::heal`].
    pub fn cut(&self, prefix: &str) {
        self.faults.cut.lock().expect("cut").push(prefix.to_string());
        self.faults.changed.send_modify(|(generation, drop)| {
            *generation += 1;
            *drop = false;
        });
    }

    pub fn heal(&self) {
        self.faults.cut.lock().expect("cut").clear();
    }

    /// Connections the proxy closed because of a fault.
    pub fn dropped(&self) -> u64 {
        self.faults.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Faults {
    fn is_cut(&self, client_id: &str) -> bool {
        self.cut.lock().expect("cut").iter().any(|prefix| client_id.starts_with(prefix.as_str()))
    }
}

/// The client id of a Kafka request: `size:i32, api_key:i16,
/// api_version:i16, correlation_id:i32, client_id:nullable string (i16 length)`.
fn client_id_of(request: &[u8]) -> String {
    let Some(length) = request.get(12..14).map(|bytes| i16::from_be_bytes([bytes[0], bytes[1]])) else {
        return String::new();
    };
    let length = usize::try_from(length).unwrap_or(0);
    request.get(14..14 + length).map(|bytes| String::from_utf8_lossy(bytes).into_owned()).unwrap_or_default()
}

async fn relay(mut client: TcpStream, faults: Arc<Faults>) {
    let mut changes = faults.changed.subscribe();
    let started = *changes.borrow_and_update();
    // The first request, whole, names the client.
    let mut size = [0u8; 4];
    if client.read_exact(&mut size).await.is_err() {
        return;
    }
    let length = u32::from_be_bytes(size).min(1 << 20) as usize;
    let mut first = size.to_vec();
    first.resize(4 + length, 0);
    if client.read_exact(&mut first[4..]).await.is_err() {
        return;
    }
    let client_id = client_id_of(&first);
    if faults.is_cut(&client_id) {
        faults.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(faults.target).await else { return };
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let pumps = async {
        tokio::join!(
            pump(client_read, upstream_write, faults.clone()),
            pump(upstream_read, client_write, faults.clone())
        )
    };
    let fault = async {
        loop {
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
            let (generation, drop) = *changes.borrow_and_update();
            if generation != started.0 && (drop || faults.is_cut(&client_id)) {
                faults.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    // Dropping the halves closes both sockets.
    tokio::select! {
        _ = pumps => {}
        () = fault => {}
    }
}

/// Copies one direction, each chunk held back by the current latency
/// (a reader and a delayed writer, so latency does not cut throughput).
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, faults: Arc<Faults>) {
    let (chunks, mut due) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    let latency = Duration::from_millis(faults.latency_ms.load(Ordering::Relaxed));
                    if chunks.send((tokio::time::Instant::now() + latency, buffer[..read].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
