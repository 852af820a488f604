//! Accounts, devices, profile, privacy, blocking, contacts and the PIN,
//! driven over HTTP and WebSocket against the real binary.

#[path = "../common/mod.rs"]
mod common;
mod devices;
mod privacy;
mod profile;

use common::{Server, WAIT, code_of, messages_from};
use missive_client::{Account, Connection};
use missive_gateway::auth::contact_hash;
use serde_json::{Value, json};

/// Waits until `connection` has answered `sent` for `req`; returns the frames seen.
async fn sent(connection: &mut Connection, req: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut frames = Vec::new();
    while !frames.iter().any(|frame: &Value| frame["type"] == "sent" && frame["req"] == req) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match connection.next_frame(left).await {
            Ok(Some(frame)) => frames.push(frame),
            outcome => panic!("no sent for {req} ({outcome:?}); frames so far: {frames:?}"),
        }
    }
    assert!(frames.iter().all(|frame| frame["type"] != "error"), "errors: {frames:?}");
    frames
}

/// A completed upload of `account`'s for its profile picture.
async fn profile_picture(server: &Server, account: &Account) -> String {
    let bytes = b"\x89PNG\r\n\x1a\n not decoded here";
    let mut slot = common::slot("image", "image/png", bytes);
    slot["purpose"] = json!("profile_picture");
    common::upload(server, &account.access_token, slot, bytes).await
}
