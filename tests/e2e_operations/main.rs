//! Message operations and group receipts, driven over WebSocket and HTTP
//! against the real binary: delivered/read k-of-n ticks and receipt lists,
//! edit, delete for everyone (reaching offline members), delete for me,
//! reactions, forwarding with counts and limits. Runs in both modes.

mod changes;
#[path = "../common/mod.rs"]
mod common;
mod privacy;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Server, WAIT, code_of, request, send_to_group, send_to_user, until};
use missive_client::{Account, Connection};
use serde_json::{Value, json};

async fn create_group(server: &Server, admin: &Account, members: &[&Account]) -> String {
    let members: Vec<&str> = members.iter().map(|member| member.user_id.as_str()).collect();
    let (status, group) = server
        .api
        .post("/v1/groups", Some(&admin.access_token), &json!({"name": "ops", "members": members}))
        .await
        .expect("create group");
    assert_eq!(status, 200, "{group}");
    group["conversation_id"].as_str().expect("group id").to_string()
}

/// The feed frame carrying the message with this content.
async fn receive(connection: &mut Connection, content: &str) -> Value {
    let frames = until(connection, content, |frame| frame["event"]["content"] == content).await;
    frames.into_iter().find(|frame| frame["event"]["content"] == content).expect("the message")
}

fn operation(kind: &str, req: &str, conversation: &str, message: &str) -> Value {
    json!({"type": kind, "req": req, "conversation_id": conversation, "message_id": message})
}

fn with(mut frame: Value, field: &str, value: &str) -> Value {
    frame[field] = json!(value);
    frame
}

fn is_modified(frame: &Value, operation: &str, message: &str) -> bool {
    frame["event"]["kind"] == "modified"
        && frame["event"]["operation"] == operation
        && frame["event"]["message_id"] == message
}

fn history_entry<'a>(history: &'a Value, message: &str) -> Option<&'a Value> {
    history["messages"].as_array()?.iter().find(|entry| entry["message_id"] == message)
}

fn users(list: &Value) -> BTreeSet<String> {
    list.as_array().into_iter().flatten().filter_map(|entry| entry["user"].as_str().map(str::to_string)).collect()
}
