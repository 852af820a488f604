//! Crash safety: while a client sends, the server is killed with SIGKILL at
//! random moments and restarted, 20 times. Every message the sender got
//! `sent` for must reach the recipient exactly once, in send order; the
//! history checker (`missive_client::history`) reads the whole run too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Server, WAIT, messages_from};
use missive_client::Connection;
use missive_client::history::{Op, Recorder, check};
use rand::Rng;
use serde_json::json;

const CYCLES: usize = 20;
const WINDOW: usize = 16;

/// Sends (or re-sends) message `index`; the content is the index.
async fn send(connection: &mut Connection, to: &str, index: u64, history: &Recorder) -> anyhow::Result<()> {
    history.record(Op::Send { device: "alice".into(), req: index.to_string(), content: index.to_string() });
    connection
        .send_json(&json!({"type": "send", "req": index.to_string(), "to": {"user": to},
            "client_msg_id": format!("crash-{index}"), "content": index.to_string()}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_at_random_moments_loses_and_duplicates_nothing() {
    let mut server = Server::start().await;
    let alice = server.register("+14155557001", "a").await;
    let bob = server.register("+14155557002", "b").await;
    // message index -> message id, once `sent` arrived.
    let mut confirmed: BTreeMap<u64, String> = BTreeMap::new();
    let mut next_index = 0u64;
    let mut rng = rand::rng();
    let history = Recorder::new();
    for cycle in 0..CYCLES {
        let mut connection = server.connect(&alice).await;
        history.saw("alice", &connection.welcome);
        // Resend what was never confirmed, in order, before anything new.
        let mut outstanding: BTreeSet<u64> = (0..next_index).filter(|index| !confirmed.contains_key(index)).collect();
        for index in outstanding.clone() {
            send(&mut connection, &bob.user_id, index, &history).await.expect("resend");
        }
        let kill_at = tokio::time::Instant::now() + Duration::from_millis(rng.random_range(20..400));
        while tokio::time::Instant::now() < kill_at {
            if outstanding.len() < WINDOW {
                send(&mut connection, &bob.user_id, next_index, &history).await.expect("send");
                outstanding.insert(next_index);
                next_index += 1;
            }
            let wait = if outstanding.len() < WINDOW { Duration::from_millis(1) } else { Duration::from_millis(50) };
            if let Ok(Some(frame)) = connection.next_frame(wait).await
                && frame["type"] == "sent"
            {
                history.saw("alice", &frame);
                let index: u64 = frame["req"].as_str().and_then(|req| req.parse().ok()).expect("req echoes the index");
                let id = frame["message_id"].as_str().expect("message id").to_string();
                if let Some(previous) = confirmed.insert(index, id.clone()) {
                    assert_eq!(previous, id, "a retry must return the original message id");
                }
                outstanding.remove(&index);
            }
        }
        let dir = server.kill9().await;
        server = Server::start_in(dir).await;
        eprintln!("cycle {cycle}: {} confirmed of {next_index} sent", confirmed.len());
    }
    // Confirm the stragglers after the last restart.
    let mut connection = server.connect(&alice).await;
    history.saw("alice", &connection.welcome);
    let pending: Vec<u64> = (0..next_index).filter(|index| !confirmed.contains_key(index)).collect();
    for index in &pending {
        send(&mut connection, &bob.user_id, *index, &history).await.expect("resend");
    }
    let frames = connection
        .collect_until(WAIT, |frames| frames.iter().filter(|frame| frame["type"] == "sent").count() >= pending.len())
        .await
        .expect("stragglers confirmed");
    for frame in frames.iter().filter(|frame| frame["type"] == "sent") {
        history.saw("alice", frame);
        let index: u64 = frame["req"].as_str().and_then(|req| req.parse().ok()).expect("index");
        confirmed.insert(index, frame["message_id"].as_str().expect("id").to_string());
    }
    assert_eq!(confirmed.len() as u64, next_index);
    assert!(next_index >= 40, "the test should have sent a meaningful amount ({next_index})");

    let mut bob_ws = server.connect(&bob).await;
    // Counted as frames arrive: a recount of every frame on each new one is
    // quadratic, and the run sends tens of thousands.
    let (mut counted, mut seen) = (0, 0);
    let frames = bob_ws
        .collect_until(Duration::from_secs(60), |frames| {
            counted += messages_from(&frames[seen..], &alice.user_id).len();
            seen = frames.len();
            counted >= confirmed.len()
        })
        .await
        .expect("bob receives everything");
    let received: Vec<(u64, String)> = messages_from(&frames, &alice.user_id)
        .iter()
        .map(|event| {
            (
                event["content"].as_str().and_then(|c| c.parse().ok()).expect("index"),
                event["message_id"].as_str().expect("id").to_string(),
            )
        })
        .collect();
    let indices: Vec<u64> = received.iter().map(|(index, _)| *index).collect();
    if let Some(position) = indices.iter().enumerate().position(|(position, index)| *index != position as u64) {
        let around = &indices[position.saturating_sub(3)..(position + 5).min(indices.len())];
        panic!(
            "exactly once, in send order: first difference at position {position}: {around:?} ({} received, {next_index} sent)",
            indices.len()
        );
    }
    assert_eq!(indices.len() as u64, next_index, "every confirmed message delivered");
    for (index, id) in &received {
        assert_eq!(confirmed.get(index), Some(id), "delivered with the id the sender was given");
    }
    bob_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    let rest = bob_ws.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "pong")).await.expect("pong");
    assert!(messages_from(&rest, &alice.user_id).is_empty(), "no duplicates trail behind");

    // The whole history: nothing lost, duplicated, reordered or invented, no feed gap.
    history.saw("bob", &bob_ws.welcome);
    let conversation = frames.iter().find_map(|frame| frame["event"]["conversation_id"].as_str()).expect("a message");
    history.record(Op::Expect { conversation_id: conversation.to_string(), devices: vec!["bob".into()] });
    for frame in frames.iter().chain(&rest) {
        history.saw("bob", frame);
    }
    let report = check(&history.ops());
    eprintln!("{report}");
    assert!(report.ok(), "the history checker found violations:\n{report}");
    assert_eq!(report.deliveries as u64, next_index, "{report}");
}
