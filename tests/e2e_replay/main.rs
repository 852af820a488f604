//! `missive replay` against a running server, in both modes: decoded JSON
//! lines whose counts match what was sent, filtered by type, conversation,
//! user, key and time; bad input refused with a message.

#[path = "../common/mod.rs"]
mod common;
mod dead_letters;
mod poison;
mod rebuild;

use std::time::Duration;

use common::{Server, WAIT, now_ms, send_to_user};
use serde_json::Value;

/// Replays until `ready` accepts the lines (the outbox reaches the log a moment after `sent`).
async fn replay_until(server: &Server, args: &[&str], what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    server.tool_until(args, what, ready).await
}

fn contents(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|line| line["value"]["content"].as_str()).collect()
}

/// Contents of deliveries (the message is nested).
fn contents_nested(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|line| line["value"]["message"]["content"].as_str()).collect()
}

#[tokio::test]
async fn replay_decodes_filters_and_counts_what_was_sent() {
    let server = Server::start().await;
    let alice = server.register("+14155558001", "a").await;
    let bob = server.register("+14155558002", "b").await;
    let carol = server.register("+14155558003", "c").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut conversation = String::new();
    for index in 0..5 {
        let sent = send_to_user(&mut alice_ws, &bob.user_id, &format!("to-bob-{index}")).await;
        conversation = sent["conversation_id"].as_str().expect("conversation").to_string();
    }
    common::let_time_pass(Duration::from_millis(50), "records before `between` are older").await;
    let between = now_ms().to_string();
    common::let_time_pass(Duration::from_millis(50), "records after `between` are newer").await;
    for index in 0..3 {
        send_to_user(&mut alice_ws, &carol.user_id, &format!("to-carol-{index}")).await;
    }

    // Every message of one conversation, decoded, in order.
    let args = ["replay", "events.conversation", "--type", "MessageSent", "--conversation", &conversation];
    let lines = replay_until(&server, &args, "alice and bob's five", |lines| lines.len() == 5).await;
    assert_eq!(contents(&lines), (0..5).map(|index| format!("to-bob-{index}")).collect::<Vec<_>>());
    for line in &lines {
        assert_eq!((&line["type"], &line["topic"]), (&Value::from("MessageSent"), &Value::from("events.conversation")));
        assert_eq!(line["key"], conversation.as_str(), "{line}");
    }
    // Deliveries about Carol, found through the nested message: her three, and Alice's own copies.
    let args = ["replay", "deliveries", "--type", "DeliverMessage", "--user", &carol.user_id];
    let lines = replay_until(&server, &args, "carol's messages", |lines| lines.len() == 6).await;
    let to_carol = lines
        .iter()
        .filter(|line| line["value"]["recipient"].as_u64().map(|id| id.to_string()) == Some(carol.user_id.clone()))
        .count();
    assert_eq!(to_carol, 3, "{lines:?}");
    assert!(contents_nested(&lines).iter().all(|content| content.starts_with("to-carol-")), "{lines:?}");
    // By key and by time.
    let args = ["replay", "deliveries", "--key", &bob.user_id, "--type", "DeliverMessage"];
    let lines = replay_until(&server, &args, "bob's key", |lines| lines.len() == 5).await;
    assert_eq!(contents_nested(&lines), (0..5).map(|index| format!("to-bob-{index}")).collect::<Vec<_>>());
    let args = ["replay", "events.conversation", "--type", "MessageSent", "--from-time", &between];
    let lines = replay_until(&server, &args, "after the first five", |lines| lines.len() == 3).await;
    assert!(contents(&lines).iter().all(|content| content.starts_with("to-carol-")), "{lines:?}");
    let args = ["replay", "events.conversation", "--type", "MessageSent", "--to-time", &between, "--limit", "2"];
    let lines = server.tool(&args).await.lines;
    assert_eq!(contents(&lines), vec!["to-bob-0", "to-bob-1"]);

    // Bad input: a clear error, nothing printed.
    for (args, expected) in [
        (vec!["replay", "no.such.topic"], "no topic"),
        (vec!["replay", "deliveries", "--from-time", "yesterday"], "RFC 3339"),
        (vec!["replay", "deliveries", "--partition", "99"], "partitions"),
    ] {
        let output = server.tool(&args).await;
        assert!(!output.success && output.lines.is_empty(), "{args:?} should fail");
        assert!(output.stderr.contains(expected), "{args:?}: {}", output.stderr);
    }
}

#[tokio::test]
async fn replay_follow_tails_new_records_of_a_running_server() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = Server::start().await;
    let alice = server.register("+14155558101", "a").await;
    let bob = server.register("+14155558102", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    send_to_user(&mut alice_ws, &bob.user_id, "before").await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["replay", "events.conversation", "--type", "MessageSent", "--follow"])
        .args(server.log_source())
        .env("MISSIVE_LOG", "warn,librdkafka=error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start replay --follow");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await.expect("a line in time").expect("read");
        serde_json::from_str(&line.expect("replay still running")).expect("JSON line")
    };
    assert_eq!(next().await["value"]["content"], "before");
    send_to_user(&mut alice_ws, &bob.user_id, "while following").await;
    assert_eq!(next().await["value"]["content"], "while following", "the new message is tailed");
    child.start_kill().expect("stop replay");
}

#[tokio::test]
async fn stats_count_messages_shares_and_delivery_latency_from_the_log() {
    let server = Server::start().await;
    let alice = server.register("+14155558201", "a").await;
    let bob = server.register("+14155558202", "b").await;
    let carol = server.register("+14155558203", "c").await;
    let (status, group) = server
        .api
        .post(
            "/v1/groups",
            Some(&alice.access_token),
            &serde_json::json!({"name": "s", "members": [bob.user_id, carol.user_id]}),
        )
        .await
        .expect("create group");
    assert_eq!(status, 200, "{group}");
    let group = group["conversation_id"].as_str().expect("group").to_string();
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    for index in 0..4 {
        send_to_user(&mut alice_ws, &bob.user_id, &format!("direct-{index}")).await;
    }
    for index in 0..2 {
        common::send_to_group(&mut alice_ws, &group, &format!("group-{index}")).await;
    }
    // Bob's device acknowledges everything: 4 + 2 deliveries with latencies.
    let frames = common::until(&mut bob_ws, "group-1", |frame| frame["event"]["content"] == "group-1").await;
    let last = frames.iter().filter_map(|frame| frame["seq"].as_u64()).max().expect("a seq");
    bob_ws.ack(last).await.expect("ack");
    let report = server
        .tool_until(&["stats"], "bob's six deliveries", |lines| {
            lines.first().is_some_and(|report| report["delivery_latency_ms"]["deliveries"] == 6)
        })
        .await
        .remove(0);
    assert_eq!(report["messages"], 6, "{report}");
    assert!((report["group_share"].as_f64().expect("share") - 2.0 / 6.0).abs() < 1e-9, "{report}");
    let latency = &report["delivery_latency_ms"];
    assert!(latency["p50"].as_i64().is_some_and(|p50| (0..10_000).contains(&p50)), "{report}");
    assert_eq!(report["top_conversations"][0]["messages"], 4, "{report}");
    assert_eq!(report["active_users_per_day"][0]["users"], 2, "alice sent, bob received: {report}");
    let hours: u64 =
        report["messages_per_hour"].as_array().expect("hours").iter().filter_map(|h| h["messages"].as_u64()).sum();
    assert_eq!(hours, 6, "{report}");
}

/// The live store holding `account`'s feed (Kafka mode: its gateway's).
async fn store_of(server: &Server, account: &missive_client::Account) -> (String, std::path::PathBuf) {
    let stores = server.live_stores();
    let Some(cluster) = server.cluster() else { return stores[0].clone() };
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = no_redirects
        .get(format!("{}/v1/conversations?limit=1", cluster.gateways[0]))
        .bearer_auth(&account.access_token)
        .send()
        .await
        .expect("GET");
    stores[if response.status().as_u16() == 200 { 0 } else { 1 }].clone()
}
