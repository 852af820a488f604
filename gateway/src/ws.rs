//! A WebSocket session: hello/welcome, feed push with resume, and the
//! client's sends, acks and reads.
//!
//! One task per connection drives everything with `select!`: frames from
//! the client, feed wake-ups from the inbox, finished sends, and a timer for
//! idle detection. Sends are pipelined (up to `MAX_IN_FLIGHT` per
//! connection; beyond that the session stops reading until some finish).
//! A client that does not take its frames within `SEND_TIMEOUT` is
//! disconnected rather than allowed to grow server memory.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Future, FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use missive_core::users::UserCommand;
use missive_core::{ConvSeq, ConversationId, Epoch, FeedSeq, Millis, UserId};
use missive_processors::FeedHub;
use missive_processors::hub::FeedUpdate;
use missive_projections::{FeedEntry, FeedState};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The server side of an upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Buffers sized for many idle connections: tungstenite's defaults
/// (128 KiB read buffer, touched in full on the first read) would cost
/// ~130 KiB per connection; frames larger than the buffer still work.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(4 << 20)
        .max_message_size(Some(crate::protocol::MAX_FRAME_BYTES))
        .max_frame_size(Some(crate::protocol::MAX_FRAME_BYTES))
}

/// Completes an HTTP upgrade and runs the session.
pub async fn accept(on_upgrade: hyper::upgrade::OnUpgrade, deps: SessionDeps) {
    match on_upgrade.await {
        Ok(upgraded) => {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(websocket_config())).await;
            run(socket, deps).await;
        }
        Err(error) => tracing::debug!(%error, "websocket upgrade failed"),
    }
}

use crate::api::require_member;
use crate::auth::{Auth, Principal};
use crate::commands::CommandBus;
use crate::errors::ApiError;
use crate::metrics::GatewayMetrics;
use crate::operations;
use crate::protocol::{ClientFrame, error_frame, event_frame_text, parse_client_frame};
use crate::reads::ReadModels;
use missive_core::operations::Operation;

pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for how long a silent connection lives (`--ws-idle-timeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_IN_FLIGHT: usize = 256;
/// Longest a device's new session waits for its replaced session to finish
/// an append in progress before it is refused `unavailable`.
const REPLACE_WAIT: Duration = Duration::from_secs(30);
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
    pub routing: crate::routing::Routing,
    pub sessions: crate::sessions::Sessions,
    /// Per-account allowances of frames that write to the log.
    pub limits: Arc<crate::limits::FrameLimits>,
    pub presence: Arc<crate::presence::Presence>,
    /// Completed uploads, for media messages.
    pub media: crate::media::Media,
}

/// A command's reply frame, once its outcome is known.
pub type Pending = Pin<Box<dyn Future<Output = Value> + Send>>;

struct Session {
    socket: WebSocket,
    /// Shared, so a frame's handling holds it for one reference count.
    deps: Arc<SessionDeps>,
    principal: Principal,
    /// This session among the user's sessions (presence subscriptions).
    id: u64,
    sent_through: FeedSeq,
    /// The device's writer lock (`sessions.rs`): held while a command is appended.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Fires when the device connected again: this session appends nothing more.
    replaced: tokio_util::sync::CancellationToken,
    acks: Acks,
    /// When the session's access token expires: the session ends then
    /// unless a `reauth` frame brings a fresh token.
    expires: Instant,
}

/// An ack append and its outcome.
type AckAppend = Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>>;

/// Acks are cumulative, so a connection appends one at a time: while one
/// is on its way to the log, later ones only raise the position the next
/// append carries. Under load that is one ack record per append round
/// trip instead of one per frame, and the connection never waits for an
/// ack's append before reading its next frame.
#[derive(Default)]
struct Acks {
    in_flight: Option<AckAppend>,
    next: Option<FeedSeq>,
}

impl Acks {
    fn offer(&mut self, seq: FeedSeq, append: impl FnOnce(FeedSeq) -> AckAppend) {
        if self.in_flight.is_none() {
            self.in_flight = Some(append(seq));
        } else {
            self.next = Some(self.next.map_or(seq, |next| next.max(seq)));
        }
    }

    /// Waits for the append in flight, then appends the last position offered.
    async fn flush(&mut self, append: impl FnOnce(FeedSeq) -> AckAppend) {
        if let Some(in_flight) = self.in_flight.take() {
            let _ = in_flight.await;
        }
        if let Some(next) = self.next.take() {
            let _ = append(next).await;
        }
    }

    /// After the in-flight append finished: starts the next one, if any.
    fn finished(&mut self, append: impl FnOnce(FeedSeq) -> AckAppend) {
        self.in_flight = self.next.take().map(append);
    }
}

fn append_ack(bus: &Arc<CommandBus>, principal: Principal) -> impl FnOnce(FeedSeq) -> AckAppend + use<> {
    let bus = bus.clone();
    move |seq| Box::pin(async move { bus.ack(principal, seq).await })
}

fn frame_type(frame: &Value) -> &str {
    frame.get("type").and_then(Value::as_str).unwrap_or("unknown")
}

impl Session {
    /// The device's writer lock, for appending one command; `Err` once a
    /// newer session of the device took over (this one must append nothing).
    fn writer(&self) -> impl Future<Output = Result<tokio::sync::OwnedMutexGuard<()>, ()>> + Send + use<> {
        let (writer, replaced) = (self.writer.clone(), self.replaced.clone());
        async move {
            let permit = writer.lock_owned().await;
            if replaced.is_cancelled() { Err(()) } else { Ok(permit) }
        }
    }

    /// Sends one frame now.
    async fn push(&mut self, frame: Value) -> Result<(), ()> {
        self.push_buffered(frame).await?;
        self.flush().await
    }

    /// Queues one frame in the socket's write buffer (written out once the
    /// buffer is full); [`Session::flush`] sends what is queued, so frames
    /// pushed in one wake-up leave in one write.
    async fn push_buffered(&mut self, frame: Value) -> Result<(), ()> {
        let text = frame.to_string();
        self.push_text(frame_type(&frame), text).await
    }

    /// [`Session::push_buffered`] for a frame already written as text.
    async fn push_text(&mut self, kind: &str, text: String) -> Result<(), ()> {
        self.deps.metrics.frames_out.with_label_values(&[kind]).inc();
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.feed(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn flush(&mut self) -> Result<(), ()> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Pushes every stored entry after `sent_through`.
    async fn push_feed(&mut self) -> Result<(), ()> {
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

    async fn push_entry(&mut self, seq: FeedSeq, entry: &FeedEntry) -> Result<(), ()> {
        if seq <= self.sent_through {
            return Ok(());
        }
        if let FeedEntry::Message(message) = entry
            && message.from != self.principal.user
        {
            let waited = (missive_infra::now_ms() - message.sent_at.0).max(0);
            self.deps.metrics.send_to_deliver.observe(waited as f64 / 1000.0);
        }
        self.push_text("event", event_frame_text(seq.0, entry)).await?;
        self.sent_through = seq;
        Ok(())
    }

    /// Pushes a published update from memory when it continues what this
    /// session sent; otherwise (a publication was missed) reads the store.
    async fn push_update(&mut self, update: FeedUpdate) -> Result<(), ()> {
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

pub fn send_error(req: Option<&str>, error: &ApiError) -> Value {
    let mut frame = error_frame(req, error.code, &error.message);
    if let Some(seconds) = error.retry_after {
        frame["retry_after"] = json!(seconds);
    }
    frame
}

/// Who a connection is, where it resumes, and when its token expires (Unix seconds).
type Authenticated = (Principal, Option<(Epoch, FeedSeq)>, i64);

async fn authenticate(socket: &mut WebSocket, deps: &SessionDeps) -> Option<Authenticated> {
    let refuse = |message: &str| Message::text(error_frame(None, "unauthorized", message).to_string());
    let first = match tokio::time::timeout(HELLO_TIMEOUT, socket.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(_) => return None,
        Err(_) => {
            let _ = socket.send(refuse("no hello within 10 s")).await;
            return None;
        }
    };
    let text = first.to_text().unwrap_or("");
    let (token, resume) = match parse_client_frame(text) {
        Ok(ClientFrame::Hello { token, resume }) => (token, resume),
        _ => {
            let _ = socket.send(refuse("the first frame must be a hello with a token")).await;
            return None;
        }
    };
    let (principal, expires_at) = match deps.auth.verify_access_until(&token) {
        Ok(verified) => verified,
        Err(error) => {
            let _ = socket.send(refuse(&error.message)).await;
            return None;
        }
    };
    // Clients that did not name themselves at the upgrade (`access_token`
    // in the URL) learn their gateway here.
    if let Some(base) = deps.routing.elsewhere(principal.user) {
        let location = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        let mut frame = error_frame(None, "wrong_gateway", "this user is served by another gateway; reconnect there");
        frame["location"] = json!(location);
        let _ = socket.send(Message::text(frame.to_string())).await;
        return None;
    }
    // A removed device's tokens stay well-signed until they expire; the
    // directory says whether the device still exists.
    if let Err(error) = crate::api::require_device(&deps.reads, principal).await {
        let _ = socket.send(refuse(&error.message)).await;
        return None;
    }
    // A resume with an unparsable epoch can never prove continuity.
    let resume = resume.map(|resume| (Epoch(resume.epoch.parse().unwrap_or(u64::MAX)), FeedSeq(resume.seq)));
    Some((principal, resume, expires_at))
}

/// When a token that expires at `expires_at` (Unix seconds) runs out, on the tokio clock.
fn expiry_instant(expires_at: i64) -> Instant {
    let left = expires_at.saturating_mul(1000).saturating_sub(missive_infra::now_ms()).max(0);
    Instant::now() + Duration::from_millis(left as u64)
}

/// Runs one connection to its end.
pub async fn run(mut socket: WebSocket, deps: SessionDeps) {
    let Some((principal, resume, expires_at)) = authenticate(&mut socket, &deps).await else {
        close(&mut socket).await;
        return;
    };
    deps.metrics.frames_in.with_label_values(&["hello"]).inc();
    let mut guard = deps.sessions.open(principal.user, principal.device);
    // A replaced session of this device may be appending a command: wait
    // until it is done, so nothing it had can land after this session's.
    if tokio::time::timeout(REPLACE_WAIT, guard.writer.lock()).await.is_err() {
        let error = ApiError::unavailable("this device's previous connection is still finishing a command; retry");
        let _ = socket.send(Message::text(send_error(None, &error).to_string())).await;
        close(&mut socket).await;
        return;
    }
    deps.presence.sessions_changed(principal.user).await;
    // Subscribe before reading the feed so no entry slips between the two.
    let mut subscription = deps.hub.subscribe(principal.user);
    let feed = match deps.reads.feed_state(principal.user).await {
        Ok(feed) => feed,
        Err(error) => {
            let _ = socket.send(Message::text(send_error(None, &error).to_string())).await;
            return;
        }
    };
    // No feed yet (nothing delivered, or the inbox has not caught up with
    // the registration): it will be created in the user's initial epoch.
    let feed = feed.unwrap_or_else(|| FeedState::new(Epoch::initial(principal.user)));
    let (epoch, plan) = (feed.epoch, feed.resume_plan(principal.device, resume));
    deps.metrics.connections.inc();
    let deps = Arc::new(deps);
    let mut session = Session {
        socket,
        deps: deps.clone(),
        principal,
        id: guard.id(),
        sent_through: plan.send_after,
        writer: guard.writer.clone(),
        replaced: guard.replaced.clone(),
        acks: Acks::default(),
        expires: expiry_instant(expires_at),
    };
    let welcome = json!({
        "type": "welcome",
        "user_id": principal.user.to_string(),
        "device_id": principal.device.to_string(),
        "epoch": epoch.0.to_string(),
        "recovered": plan.recovered,
    });
    if session.push(welcome).await.is_ok() && session.push_feed().await.is_ok() {
        let _ = serve(&mut session, &mut subscription.changes, &guard.revoked, &mut guard.live).await;
        // The client sent these acks: append them even though the connection
        // ended (not for a removed device, whose position is gone, nor for a
        // replaced session, which appends nothing more: its successor acks).
        if !guard.revoked.is_cancelled() && !guard.replaced.is_cancelled() {
            session.acks.flush(append_ack(&deps.bus, principal)).await;
        }
        if guard.replaced.is_cancelled() {
            let message = "this device connected again; this connection is closed";
            let _ = session.push(error_frame(None, "session_replaced", message)).await;
        }
    }
    drop(guard);
    deps.presence.sessions_changed(principal.user).await;
    deps.metrics.connections.dec();
    // Last seen is when the connection ended; the privacy settings decide who may see it.
    let seen = UserCommand::RecordLastSeen { user_id: principal.user, at: Millis(missive_infra::now_ms()) };
    close(&mut session.socket).await;
    if let Err(error) = deps.bus.record_user_command(seen).await {
        tracing::debug!(%error.message, "recording last seen failed");
    }
}

/// Longest a closing connection waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Ends a connection with the closing handshake: sends a close frame, then
/// reads (and drops) what the client still sends until its close frame
/// arrives or [`CLOSE_WAIT`] passes. Dropping a socket whose unread input
/// is still queued makes the kernel reset the connection, and a reset can
/// discard the last frames sent to the client (`session_replaced`, an
/// error) before it reads them.
async fn close(socket: &mut WebSocket) {
    if socket.close(None).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

async fn serve(
    session: &mut Session,
    changes: &mut tokio::sync::watch::Receiver<FeedUpdate>,
    revoked: &tokio_util::sync::CancellationToken,
    live: &mut tokio::sync::mpsc::Receiver<Arc<Value>>,
) -> Result<(), ()> {
    let mut in_flight: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut last_heard = Instant::now();
    let idle_timeout = session.deps.idle_timeout;
    let mut idle_check =
        tokio::time::interval((idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)));
    // Made once, not per turn of the loop: each new one locks the token and
    // registers a waiter again.
    let replaced_token = session.replaced.clone();
    let replaced = replaced_token.cancelled();
    let revoked = revoked.cancelled();
    tokio::pin!(replaced, revoked);
    loop {
        tokio::select! {
            // First: a replaced or revoked session must not handle another frame.
            biased;
            _ = &mut replaced => return Ok(()),
            _ = &mut revoked => {
                let _ = session.push(error_frame(None, "device_removed", "this device was removed from the account; verify again to use it")).await;
                return Ok(());
            }
            Some(frame) = in_flight.next() => {
                // Every reply ready by now leaves in the same write.
                session.push_buffered(frame).await?;
                while let Some(Some(frame)) = in_flight.next().now_or_never() {
                    session.push_buffered(frame).await?;
                }
                session.flush().await?;
            }
            appended = async { session.acks.in_flight.as_mut().expect("guarded by the condition").await },
                if session.acks.in_flight.is_some() => {
                session.acks.finished(append_ack(&session.deps.bus, session.principal));
                if let Err(error) = appended {
                    session.push(send_error(None, &error)).await?;
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let update = changes.borrow_and_update().clone();
                session.push_update(update).await?;
            }
            Some(frame) = live.recv() => {
                session.push(Value::clone(&frame)).await?;
            }
            // Last: what the server owes the client (replies, feed entries,
            // live signals) goes out before another frame is read, so a
            // client sending faster than the server folds is slowed down
            // instead of starving its own deliveries.
            incoming = session.socket.next(), if in_flight.len() < MAX_IN_FLIGHT => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    // Closed, or a protocol violation such as a frame over 1 MiB.
                    _ => return Ok(()),
                };
                last_heard = Instant::now();
                if message.is_close() {
                    return Ok(());
                }
                if message.is_ping() || message.is_pong() {
                    continue;
                }
                let Message::Text(text) = message else {
                    session.push(error_frame(None, "bad_frame", "frames are JSON text")).await?;
                    continue;
                };
                // Boxed: a frame's handling (sends, forwards, presence...) is
                // heap-allocated while it runs instead of sizing every idle
                // connection's task for the largest of them.
                if let Some(frame) = Box::pin(handle_frame(session, text.as_str())).await? {
                    in_flight.push(frame);
                }
            }
            _ = tokio::time::sleep_until(session.expires) => {
                let message = "the access token expired; refresh it and connect again (send reauth with a fresh token before it expires to keep a connection)";
                let _ = session.push(error_frame(None, "token_expired", message)).await;
                return Ok(());
            }
            _ = idle_check.tick() => {
                if last_heard.elapsed() > idle_timeout {
                    let message = format!("no frame for {} s; closing (send ping to keep a connection open)", idle_timeout.as_secs());
                    let _ = session.push(error_frame(None, "idle_timeout", &message)).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Watches the presence of `users` (ids as strings); returns who is watched
/// now and the current presence of those the caller may see.
async fn subscribe_presence(
    deps: &SessionDeps,
    principal: Principal,
    session: u64,
    users: &[String],
) -> Result<(Vec<String>, Vec<Value>), ApiError> {
    if users.len() > crate::sessions::MAX_WATCHED {
        let message = format!("watch at most {} users per connection", crate::sessions::MAX_WATCHED);
        return Err(ApiError::bad_request("too_large", message));
    }
    let ids = users
        .iter()
        .map(|user| user.parse::<UserId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::bad_request("bad_frame", "users must be decimal user id strings"))?;
    let frames = deps.presence.subscribe(principal.user, session, &ids).await?;
    let watched = deps.sessions.watching(principal.user, session);
    Ok((watched.iter().map(ToString::to_string).collect(), frames))
}

/// A typing signal from a member to the conversation's other members.
async fn typing(deps: &SessionDeps, principal: Principal, conversation: &str, state: &str) -> Result<(), ApiError> {
    let conversation: ConversationId = conversation
        .parse()
        .map_err(|_| ApiError::bad_request("bad_frame", "conversation_id must be a decimal id string"))?;
    let state = missive_schemas::wire::TypingState::parse(state)
        .ok_or_else(|| ApiError::bad_request("bad_frame", "state must be typing, recording or paused"))?;
    let members = crate::api::require_members(&deps.reads, principal.user, conversation).await?;
    deps.limits.typing(principal.user)?;
    let mut others: Vec<UserId> = members.into_iter().filter(|member| *member != principal.user).collect();
    // In a 1:1 chat, a member who blocked the sender gets no signal from
    // it; the sender is told nothing (the block stays private).
    if let [other] = others[..]
        && conversation == ConversationId::direct(principal.user, other)
        && deps.reads.has_blocked(other, principal.user).await?
    {
        others.clear();
    }
    if others.is_empty() {
        return Ok(());
    }
    let expires_at = missive_infra::now_ms() + crate::live::TYPING_TTL_MS;
    deps.bus.typing(principal, conversation, state, &others, expires_at).await
}

/// A started command becomes a pending reply; a refusal is answered at once.
///
/// A command that could not be appended for a reason other than its content
/// (`unavailable`: the log or a read model did not answer; `internal`) also
/// closes the connection: the client's later frames are already on their
/// way, and appending them would put them before this one. The client
/// reconnects and resends what was not confirmed, in order.
async fn started(session: &mut Session, result: Result<Pending, Value>) -> Result<Option<Pending>, ()> {
    match result {
        Ok(pending) => Ok(Some(pending)),
        Err(frame) => {
            let transient = frame["code"] == "unavailable" || frame["code"] == "internal";
            session.push(frame).await?;
            if transient { Err(()) } else { Ok(None) }
        }
    }
}

/// Handles one client frame; returns a pending reply if a command was started.
async fn handle_frame(session: &mut Session, text: &str) -> Result<Option<Pending>, ()> {
    let frame = match parse_client_frame(text) {
        Ok(frame) => frame,
        Err(error) => {
            session.deps.metrics.frames_in.with_label_values(&["invalid"]).inc();
            session.push(error_frame(error.req.as_deref(), error.code, &error.message)).await?;
            return Ok(None);
        }
    };
    let principal = session.principal;
    let deps = session.deps.clone();
    match frame {
        ClientFrame::Hello { .. } => {
            deps.metrics.frames_in.with_label_values(&["hello"]).inc();
            session.push(error_frame(None, "bad_frame", "already authenticated")).await?;
        }
        ClientFrame::Typing { conversation_id, state } => {
            deps.metrics.frames_in.with_label_values(&["typing"]).inc();
            if let Err(error) = typing(&deps, principal, &conversation_id, &state).await {
                session.push(send_error(None, &error)).await?;
            }
        }
        ClientFrame::SubscribePresence { req, users } => {
            deps.metrics.frames_in.with_label_values(&["subscribe_presence"]).inc();
            match subscribe_presence(&deps, principal, session.id, &users).await {
                Ok((watched, frames)) => {
                    let mut answer = json!({"type": "subscribed", "users": watched});
                    if let Some(req) = req {
                        answer["req"] = json!(req);
                    }
                    session.push(answer).await?;
                    for frame in frames {
                        session.push(frame).await?;
                    }
                }
                Err(error) => session.push(send_error(req.as_deref(), &error)).await?,
            }
        }
        ClientFrame::Ping => {
            deps.metrics.frames_in.with_label_values(&["ping"]).inc();
            session.push(json!({"type": "pong", "server_time": missive_infra::now_ms()})).await?;
        }
        ClientFrame::Reauth { req, token } => {
            deps.metrics.frames_in.with_label_values(&["reauth"]).inc();
            let answer = match deps.auth.verify_access_until(&token) {
                Ok((fresh, expires_at)) if fresh == principal => {
                    session.expires = expiry_instant(expires_at);
                    operations::with_req(json!({"type": "reauthed", "expires_at": expires_at}), &req)
                }
                Ok(_) => {
                    error_frame(req.as_deref(), "unauthorized", "the token is another device's; send this device's own")
                }
                // The session keeps its current token until that one expires.
                Err(error) => send_error(req.as_deref(), &error),
            };
            session.push(answer).await?;
        }
        ClientFrame::Ack { seq } => {
            deps.metrics.frames_in.with_label_values(&["ack"]).inc();
            session.acks.offer(FeedSeq(seq), append_ack(&deps.bus, principal));
        }
        ClientFrame::Read { conversation_id, up_to } => {
            deps.metrics.frames_in.with_label_values(&["read"]).inc();
            let Ok(conversation) = conversation_id.parse::<ConversationId>() else {
                session.push(error_frame(None, "bad_frame", "conversation_id must be a decimal id string")).await?;
                return Ok(None);
            };
            if let Err(error) = deps.limits.write(principal.user, "read marks") {
                session.push(send_error(None, &error)).await?;
                return Ok(None);
            }
            let result = match require_member(&deps.reads, principal.user, conversation).await {
                Ok(()) => match deps.reads.read_receipts_on(conversation).await {
                    Ok(notify) => deps.bus.read(principal, conversation, ConvSeq(up_to), notify).await,
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                session.push(send_error(None, &error)).await?;
            }
        }
        ClientFrame::Send { req, to, client_msg_id, content, reply_to, media, location, contact } => {
            deps.metrics.frames_in.with_label_values(&["send"]).inc();
            let outgoing = operations::Outgoing { client_msg_id, content, reply_to, media, location, contact };
            deps.limits.pace_send(principal.user).await;
            let permit = session.writer().await?;
            let result = operations::start_send(&deps, principal, req, to, outgoing).await;
            drop(permit);
            return started(session, result).await;
        }
        ClientFrame::Forward { req, of, to, client_msg_id, content } => {
            deps.metrics.frames_in.with_label_values(&["forward"]).inc();
            deps.limits.pace_send(principal.user).await;
            let permit = session.writer().await?;
            let started_forward =
                operations::start_forward(&deps, principal, req, of, to, client_msg_id, content).await;
            drop(permit);
            return started(session, started_forward).await;
        }
        ClientFrame::Edit { req, conversation_id, message_id, content } => {
            deps.metrics.frames_in.with_label_values(&["edit"]).inc();
            if let Err(error) = deps.limits.write(principal.user, "edits, deletes and reactions") {
                session.push(send_error(req.as_deref(), &error)).await?;
                return Ok(None);
            }
            let operation = Ok(Operation::Edit { content });
            let permit = session.writer().await?;
            let modify =
                operations::start_modify(&deps, principal, req, &conversation_id, &message_id, operation).await;
            drop(permit);
            return started(session, modify).await;
        }
        ClientFrame::Delete { req, conversation_id, message_id, scope } => {
            deps.metrics.frames_in.with_label_values(&["delete"]).inc();
            if let Err(error) = deps.limits.write(principal.user, "edits, deletes and reactions") {
                session.push(send_error(req.as_deref(), &error)).await?;
                return Ok(None);
            }
            let operation = match scope.as_str() {
                "everyone" => Ok(Operation::DeleteForEveryone),
                "me" => Ok(Operation::DeleteForMe),
                _ => Err(ApiError::bad_request("bad_frame", "scope must be everyone or me")),
            };
            let permit = session.writer().await?;
            let modify =
                operations::start_modify(&deps, principal, req, &conversation_id, &message_id, operation).await;
            drop(permit);
            return started(session, modify).await;
        }
        ClientFrame::React { req, conversation_id, message_id, emoji } => {
            deps.metrics.frames_in.with_label_values(&["react"]).inc();
            if let Err(error) = deps.limits.write(principal.user, "edits, deletes and reactions") {
                session.push(send_error(req.as_deref(), &error)).await?;
                return Ok(None);
            }
            let operation = Ok(Operation::React { emoji });
            let permit = session.writer().await?;
            let modify =
                operations::start_modify(&deps, principal, req, &conversation_id, &message_id, operation).await;
            drop(permit);
            return started(session, modify).await;
        }
    }
    Ok(None)
}
