//! Black-box end-to-end tests of embedded mode: the `missive` binary on
//! 127.0.0.1:0, driven over HTTP and WebSocket like a real client.

#[path = "../common/mod.rs"]
mod common;
mod delivery;
mod overload;

use std::collections::HashSet;
use std::time::Duration;

use common::{Server, WAIT, count_messages_from, events, messages_from, send_numbered};
use missive_gateway::auth::contact_hash;
use serde_json::{Value, json};

#[tokio::test]
async fn health_metrics_and_http_errors() {
    let server = Server::start().await;
    let (status, body) = server.api.get("/healthz", None).await.expect("healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let text = reqwest::get(format!("{}/metrics", server.api.base)).await.expect("metrics").text().await.expect("body");
    for name in [
        "missive_ws_connections",
        "missive_log_append_seconds",
        "missive_processor_lag_records",
        "missive_send_to_deliver_seconds",
        "missive_ws_send_room",
    ] {
        assert!(text.contains(name), "metrics lack {name}");
    }
    let (status, body) = server.api.get("/v1/conversations", None).await.expect("no token");
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = server.api.get("/v1/conversations", Some("not-a-jwt")).await.expect("bad token");
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = server.api.get("/v1/nowhere", None).await.expect("404");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn otp_registration_rules() {
    let server = Server::start().await;
    let (status, body) = server.api.post("/v1/auth/otp", None, &json!({"phone": "555-0100"})).await.expect("otp");
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_phone")));
    let (status, body) = server.api.post("/v1/auth/otp", None, &json!({"phone": "+14155550100"})).await.expect("otp");
    assert_eq!(status, 202);
    assert!(body["expires_in"].as_i64().unwrap_or(0) > 0);
    let sms = server.sms_file();
    let code = missive_client::code_from_sink_file(&sms, "+14155550100", WAIT).await.expect("code");
    assert_eq!(code.len(), 6);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let (status, body) = server
            .api
            .post("/v1/auth/verify", None, &json!({"phone": "+14155550100", "code": wrong}))
            .await
            .expect("verify");
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_code")));
    }
    let (status, _) = server
        .api
        .post("/v1/auth/verify", None, &json!({"phone": "+14155550100", "code": code}))
        .await
        .expect("verify");
    assert_eq!(status, 401, "five wrong tries kill the code");

    let first = server.register("+14155550100", "phone").await;
    let sms_text = std::fs::read_to_string(&sms).expect("sink");
    let last_code = sms_text.lines().last().and_then(|line| serde_json::from_str::<Value>(line).ok()).expect("line");
    let (status, _) = server
        .api
        .post("/v1/auth/verify", None, &json!({"phone": "+14155550100", "code": last_code["code"]}))
        .await
        .expect("verify");
    assert_eq!(status, 401, "a code is single-use");
    let second = server.register("+14155550100", "laptop").await;
    assert_eq!(first.user_id, second.user_id, "the same phone is the same account");
    assert_ne!(first.device_id, second.device_id, "a new verification adds a device");

    let other = server.register("+14155550199", "phone").await;
    // In Kafka mode the caller's gateway keeps its own directory, which sees
    // a registration made through another gateway a moment later.
    server.wait_status(&format!("/v1/users/{}/profile", other.user_id), &first.access_token, 200).await;
    let (found, unknown) = (contact_hash("+14155550199"), contact_hash("+14155550777"));
    let (status, body) = server
        .api
        .post("/v1/contacts/sync", Some(&first.access_token), &json!({"hashes": [found, unknown]}))
        .await
        .expect("contacts");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"], json!([{"hash": found, "user_id": other.user_id}]));
    let (status, body) = server
        .api
        .post("/v1/contacts/sync", Some(&first.access_token), &json!({"hashes": ["+14155550199"]}))
        .await
        .expect("contacts");
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "raw numbers are refused: {body}");
}

#[tokio::test]
async fn bad_frames_get_stable_errors_persist_nothing_and_keep_the_connection() {
    let server = Server::start().await;
    let alice = server.register("+14155556001", "a").await;
    let bob = server.register("+14155556002", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let cases: Vec<(String, &str)> = vec![
        ("{not json".to_string(), "bad_frame"),
        (json!({"type": "teleport", "req": "t"}).to_string(), "unknown_type"),
        (json!({"req": "x"}).to_string(), "bad_frame"),
        (json!({"type": "send", "req": "m", "to": {"user": bob.user_id}, "content": "no id"}).to_string(), "bad_frame"),
        (json!({"type": "send", "req": "w", "to": {"user": 42}, "client_msg_id": "c", "content": "x"}).to_string(), "bad_frame"),
        (json!({"type": "ack", "seq": "ten"}).to_string(), "bad_frame"),
        (json!({"type": "send", "req": "big", "to": {"user": bob.user_id}, "client_msg_id": "c2", "content": "x".repeat(65_537)}).to_string(), "too_large"),
        (json!({"type": "send", "req": "who", "to": {"user": "12345"}, "client_msg_id": "c3", "content": "hi"}).to_string(), "unknown_recipient"),
        (json!({"type": "read", "conversation_id": "777", "up_to": 3}).to_string(), "not_found"),
    ];
    for (text, code) in &cases {
        alice_ws.send_text(text).await.expect("send frame");
        let frame = alice_ws.next_frame(WAIT).await.expect("answer").expect("connection stays open");
        assert_eq!((frame["type"].as_str(), frame["code"].as_str()), (Some("error"), Some(*code)), "frame {text:.80}");
        assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()), "errors explain themselves");
    }
    alice_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    let pong = alice_ws.next_frame(WAIT).await.expect("pong").expect("open");
    assert_eq!(pong["type"], "pong", "the connection is healthy after bad frames");
    let (_, list) = server.api.get("/v1/conversations", Some(&alice.access_token)).await.expect("list");
    assert_eq!(list["conversations"], json!([]), "nothing persisted");
    let mut bob_ws = server.connect(&bob).await;
    bob_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    let frames = bob_ws.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "pong")).await.expect("bob");
    assert!(events(&frames).is_empty(), "the recipient got nothing");

    // The server may cut the connection while the frame is still being written.
    let closed = match alice_ws.send_text(&"x".repeat((1 << 20) + 10)).await {
        Err(_) => true,
        Ok(()) => alice_ws.next_frame(WAIT).await.expect("close").is_none(),
    };
    assert!(closed, "frames over 1 MiB close the connection");

    let (mut raw, _) = tokio_tungstenite::connect_async(&server.ws_url).await.expect("connect");
    use futures::{SinkExt, StreamExt};
    raw.send(tokio_tungstenite::tungstenite::Message::text(json!({"type": "hello", "token": "forged"}).to_string()))
        .await
        .expect("hello");
    let reply = raw.next().await.expect("reply").expect("frame");
    let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("unauthorized")));
}
