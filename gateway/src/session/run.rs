//! A connection from upgrade to close: the hello, the welcome with the
//! resume plan, the session's loop, and what is recorded when it ends.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use missive_core::users::UserCommand;
use missive_core::{Epoch, FeedSeq, Millis};
use missive_projections::FeedState;
use serde_json::json;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::connection::{Acks, Session, SessionDeps, WebSocket, append_ack, expiry_instant};
use super::serve::serve;
use crate::auth::Principal;
use crate::protocol::{ApiError, ClientFrame, error_frame, parse_client_frame, send_error};
use crate::reads::require_device;

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

pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for how long a silent connection lives (`--ws-idle-timeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a device's new session waits for its replaced session to finish
/// an append in progress before it is refused `unavailable`: well within
/// the 10 s a client waits for its welcome, so a slow log turns into an
/// answer the client acts on (connect again) rather than a silent hello.
/// (With 30 s, a Kafka-mode fault run's client gave up on its welcome
/// after a gateway pause; a replaced session's append waiting on the slow
/// test broker is the likely cause.)
const REPLACE_WAIT: Duration = Duration::from_secs(5);

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
    if let Err(error) = require_device(&deps.reads, principal).await {
        let _ = socket.send(refuse(&error.message)).await;
        return None;
    }
    // A resume with an unparsable epoch can never prove continuity.
    let resume = resume.map(|resume| (Epoch(resume.epoch.parse().unwrap_or(u64::MAX)), FeedSeq(resume.seq)));
    Some((principal, resume, expires_at))
}

/// Runs one connection to its end.
pub async fn run(mut socket: WebSocket, deps: SessionDeps) {
    if !*deps.log_reachable.borrow() {
        let refusal = send_error(None, &crate::server::log_watch::cut_off());
        let _ = socket.send(Message::text(refusal.to_string())).await;
        close(&mut socket).await;
        return;
    }
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
        shed: None,
        room: Default::default(),
        expires: expiry_instant(expires_at, &deps.clock),
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
    let seen = UserCommand::RecordLastSeen { user_id: principal.user, at: Millis(deps.clock.now_ms()) };
    close(&mut session.socket).await;
    if let Err(error) = deps.bus.record_user_command(seen).await {
        tracing::debug!(%error.message, "recording last seen failed");
    }
}

/// Longest a closing connection waits for the client to finish closing.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Most a closing connection reads and drops (an oversized message still
/// being written is at most a little over 1 MiB).
const CLOSE_DRAIN_BYTES: usize = 4 << 20;

/// Ends a connection with the closing handshake: sends a close frame (unless
/// one went already), reads what the client still sends until its close
/// frame, then half-closes the TCP stream and reads and drops raw bytes
/// until the client closes too, [`CLOSE_WAIT`] passes or
/// [`CLOSE_DRAIN_BYTES`] were dropped. Dropping a socket whose unread input
/// is still queued makes the kernel reset the connection, and a reset can
/// discard the last frames sent to the client (`session_replaced`, an
/// error, the close frame itself) before it reads them. The raw drain also
/// covers a connection whose WebSocket framing is broken (a frame over
/// 1 MiB still arriving, bytes that are not a frame).
async fn close(socket: &mut WebSocket) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    let _ = tokio::time::timeout_at(deadline, async {
        if socket.close(None).await.is_ok() {
            while let Some(Ok(message)) = socket.next().await {
                if message.is_close() {
                    break;
                }
            }
        }
    })
    .await;
    let io = socket.get_mut();
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = io.shutdown().await;
        let mut dropped = vec![0u8; 16 << 10];
        let mut total = 0;
        while total < CLOSE_DRAIN_BYTES {
            match io.read(&mut dropped).await {
                Ok(0) | Err(_) => break,
                Ok(read) => total += read,
            }
        }
    })
    .await;
}
