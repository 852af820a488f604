//! The session's loop: one task per connection drives everything with
//! `select!` (the client's frames, feed wake-ups, finished sends, live
//! signals, token expiry and idle detection).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use missive_processors::hub::FeedUpdate;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::connection::{Session, append_ack};
use super::frames::handle_frame;
use crate::messaging::Pending;
use crate::protocol::{error_frame, send_error};

pub const MAX_IN_FLIGHT: usize = 256;

/// Tells the client why its connection closes after a WebSocket protocol
/// violation: a close frame with the RFC 6455 code and a reason that starts
/// with the protocol's error code (PROTOCOL.md, Errors).
async fn close_violation(session: &mut Session, error: &tungstenite::Error) {
    use tungstenite::protocol::CloseFrame;
    use tungstenite::protocol::frame::coding::CloseCode;
    let (code, reason) = match error {
        tungstenite::Error::Capacity(_) => (CloseCode::Size, "too_large: a message is at most 1 MiB"),
        tungstenite::Error::Utf8(_) => (CloseCode::Invalid, "bad_frame: text frames must be UTF-8"),
        tungstenite::Error::Protocol(_) => (CloseCode::Protocol, "bad_frame: not a valid WebSocket frame"),
        _ => return,
    };
    let close = session.socket.close(Some(CloseFrame { code, reason: reason.into() }));
    let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
}

pub(super) async fn serve(
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
    let mut reachable = session.deps.log_reachable.clone();
    let cut_off = async move {
        if reachable.wait_for(|reachable| !reachable).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(replaced, revoked, cut_off);
    loop {
        tokio::select! {
            // First: a replaced or revoked session must not handle another frame.
            biased;
            _ = &mut replaced => return Ok(()),
            () = &mut cut_off => {
                let _ = session.push(send_error(None, &crate::server::log_watch::cut_off())).await;
                return Ok(());
            }
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
                    tracing::debug!(user = %session.principal.user, "connection ends: its feed closed");
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
                    Some(Err(error)) => {
                        tracing::debug!(%error, user = %session.principal.user, "connection ends: a protocol error");
                        close_violation(session, &error).await;
                        return Ok(());
                    }
                    None => return Ok(()),
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
