//! One connection's state and what it sends: frames written through the
//! socket's buffer with a deadline, the feed pushed from the store or from
//! a published update, and cumulative acks appended one at a time.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, SinkExt};
use hyper_util::rt::TokioIo;
use missive_core::FeedSeq;
use missive_infra::Clock;
use missive_processors::FeedHub;
use missive_processors::hub::FeedUpdate;
use missive_projections::FeedEntry;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::limits::FrameLimits;
use super::registry::Sessions;
use crate::auth::{Auth, Principal};
use crate::commands::CommandBus;
use crate::messaging::MessagingDeps;
use crate::metrics::GatewayMetrics;
use crate::presence::Presence;
use crate::protocol::{ApiError, event_frame_text};
use crate::reads::ReadModels;
use crate::routing::Routing;

/// The server side of an upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Feed entries read per store query while catching up.
const PUSH_CHUNK: usize = 256;

/// What a session needs; each a narrow handle.
#[derive(Clone)]
pub struct SessionDeps {
    pub auth: Arc<Auth>,
    pub bus: Arc<CommandBus>,
    pub reads: ReadModels,
    pub hub: FeedHub,
    pub metrics: GatewayMetrics,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    pub routing: Routing,
    pub sessions: Sessions,
    /// Per-account allowances of frames that write to the log.
    pub limits: Arc<FrameLimits>,
    pub presence: Arc<Presence>,
    /// What sends, forwards and message operations use.
    pub messaging: MessagingDeps,
    /// What token expiry, typing signals and last seen are reckoned with.
    pub clock: Clock,
    /// Whether the gateway reaches the log (`server::log_watch`): while it
    /// does not, sessions end and new ones are turned away.
    pub log_reachable: tokio::sync::watch::Receiver<bool>,
}

pub(super) struct Session {
    pub(super) socket: WebSocket,
    /// Shared, so a frame's handling holds it for one reference count.
    pub(super) deps: Arc<SessionDeps>,
    pub(super) principal: Principal,
    /// This session among the user's sessions (presence subscriptions).
    pub(super) id: u64,
    pub(super) sent_through: FeedSeq,
    /// The device's writer lock (`sessions.rs`): held while a command is appended.
    pub(super) writer: Arc<tokio::sync::Mutex<()>>,
    /// Fires when the device connected again: this session appends nothing more.
    pub(super) replaced: tokio_util::sync::CancellationToken,
    pub(super) acks: Acks,
    /// The `client_msg_id` of a send refused for overload: later sends are
    /// refused the same way until that one comes again, so none overtakes it.
    pub(super) shed: Option<Box<str>>,
    /// The places this connection holds in the gateway's room for pending
    /// sends (`room.rs`): the fewer, the sooner it gets the next one.
    pub(super) room: super::room::Holder,
    /// When the session's access token expires: the session ends then
    /// unless a `reauth` frame brings a fresh token.
    pub(super) expires: Instant,
}

/// An ack append and its outcome.
pub(super) type AckAppend = Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>>;

/// Acks are cumulative, so a connection appends one at a time: while one
/// is on its way to the log, later ones only raise the position the next
/// append carries. Under load that is one ack record per append round
/// trip instead of one per frame, and the connection never waits for an
/// ack's append before reading its next frame.
#[derive(Default)]
pub(super) struct Acks {
    pub(super) in_flight: Option<AckAppend>,
    pub(super) next: Option<FeedSeq>,
}

impl Acks {
    pub(super) fn offer(&mut self, seq: FeedSeq, append: impl FnOnce(FeedSeq) -> AckAppend) {
        if self.in_flight.is_none() {
            self.in_flight = Some(append(seq));
        } else {
            self.next = Some(self.next.map_or(seq, |next| next.max(seq)));
        }
    }

    /// Waits for the append in flight, then appends the last position offered.
    pub(super) async fn flush(&mut self, append: impl FnOnce(FeedSeq) -> AckAppend) {
        if let Some(in_flight) = self.in_flight.take() {
            let _ = in_flight.await;
        }
        if let Some(next) = self.next.take() {
            let _ = append(next).await;
        }
    }

    /// After the in-flight append finished: starts the next one, if any.
    pub(super) fn finished(&mut self, append: impl FnOnce(FeedSeq) -> AckAppend) {
        self.in_flight = self.next.take().map(append);
    }
}

pub(super) fn append_ack(bus: &Arc<CommandBus>, principal: Principal) -> impl FnOnce(FeedSeq) -> AckAppend + use<> {
    let bus = bus.clone();
    move |seq| Box::pin(async move { bus.ack(principal, seq).await })
}

fn frame_type(frame: &Value) -> &str {
    frame.get("type").and_then(Value::as_str).unwrap_or("unknown")
}

impl Session {
    /// The device's writer lock, for appending one command; `Err` once a
    /// newer session of the device took over (this one must append nothing).
    pub(super) fn writer(&self) -> impl Future<Output = Result<tokio::sync::OwnedMutexGuard<()>, ()>> + Send + use<> {
        let (writer, replaced) = (self.writer.clone(), self.replaced.clone());
        async move {
            let permit = writer.lock_owned().await;
            if replaced.is_cancelled() { Err(()) } else { Ok(permit) }
        }
    }

    /// Sends one frame now.
    pub(super) async fn push(&mut self, frame: Value) -> Result<(), ()> {
        self.push_buffered(frame).await?;
        self.flush().await
    }

    /// Queues one frame in the socket's write buffer (written out once the
    /// buffer is full); [`Session::flush`] sends what is queued, so frames
    /// pushed in one wake-up leave in one write.
    pub(super) async fn push_buffered(&mut self, frame: Value) -> Result<(), ()> {
        let text = frame.to_string();
        self.push_text(frame_type(&frame), text).await
    }

    /// [`Session::push_buffered`] for a frame already written as text.
    pub(super) async fn push_text(&mut self, kind: &str, text: String) -> Result<(), ()> {
        self.deps.metrics.frames_out.with_label_values(&[kind]).inc();
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.feed(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    pub(super) async fn flush(&mut self) -> Result<(), ()> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Pushes every stored entry after `sent_through`.
    pub(super) async fn push_feed(&mut self) -> Result<(), ()> {
        loop {
            let entries = match self.deps.reads.feed_entries(self.principal.user, self.sent_through, PUSH_CHUNK).await {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::error!(%error.message, "reading the feed failed");
                    return Err(());
                }
            };
            let count = entries.len();
            for (seq, entry) in &entries {
                self.push_entry(*seq, entry).await?;
            }
            self.flush().await?;
            if count < PUSH_CHUNK {
                return Ok(());
            }
        }
    }

    pub(super) async fn push_entry(&mut self, seq: FeedSeq, entry: &FeedEntry) -> Result<(), ()> {
        if seq <= self.sent_through {
            return Ok(());
        }
        if let FeedEntry::Message(message) = entry
            && message.from != self.principal.user
        {
            let waited = (self.deps.clock.now_ms() - message.sent_at.0).max(0);
            self.deps.metrics.send_to_deliver.observe(waited as f64 / 1000.0);
        }
        self.push_text("event", event_frame_text(seq.0, entry, self.principal.device)).await?;
        self.sent_through = seq;
        Ok(())
    }

    /// Pushes a published update from memory when it continues what this
    /// session sent; otherwise (a publication was missed) reads the store.
    pub(super) async fn push_update(&mut self, update: FeedUpdate) -> Result<(), ()> {
        if update.head <= self.sent_through {
            return Ok(());
        }
        let contiguous = update.entries.first().is_some_and(|(first, _)| *first <= self.sent_through.next());
        if !contiguous {
            return self.push_feed().await;
        }
        for (seq, entry) in update.entries.iter() {
            self.push_entry(*seq, entry).await?;
        }
        self.flush().await
    }
}

/// When a token that expires at `expires_at` (Unix seconds) runs out, on
/// the tokio clock, as `clock` reads the time now.
pub(super) fn expiry_instant(expires_at: i64, clock: &Clock) -> Instant {
    let left = expires_at.saturating_mul(1000).saturating_sub(clock.now_ms()).max(0);
    Instant::now() + Duration::from_millis(left as u64)
}
