//! Presence over WebSocket: watchers see online, then offline with last
//! seen, for the users the owner's privacy lets them see; push
//! notification jobs for users with no connected device, POSTed to a
//! webhook. Runs in both modes (the gateway-crash case is in e2e_kafka/).

mod common;

use std::time::Duration;

use common::{Server, WebhookSink, now_ms, request, send_to_group, send_to_user, until};
use missive_client::Connection;
use serde_json::{Value, json};

fn presence_of<'a>(frames: &'a [Value], user: &str, online: bool) -> Option<&'a Value> {
    frames.iter().find(|frame| frame["type"] == "presence" && frame["user"] == user && frame["online"] == online)
}

async fn watch_for(connection: &mut Connection, user: &str, online: bool) -> Value {
    let frames = until(connection, &format!("{user} online={online}"), |frame| {
        presence_of(std::slice::from_ref(frame), user, online).is_some()
    })
    .await;
    presence_of(&frames, user, online).cloned().expect("presence frame")
}

fn subscribe(req: &str, users: &[&str]) -> Value {
    json!({"type": "subscribe_presence", "req": req, "users": users})
}

#[tokio::test]
async fn watchers_see_online_and_last_seen_as_the_owners_privacy_allows() {
    let server = Server::start().await;
    let alice = server.register("+14155557001", "a").await;
    let bob = server.register("+14155557002", "b").await;
    let carol = server.register("+14155557003", "c").await;
    let dave = server.register("+14155557004", "d").await;
    let mut bob_ws = server.connect(&bob).await;

    // An unknown user is not watched; Alice has never been online.
    let answer = request(&mut bob_ws, "s1", subscribe("s1", &[&alice.user_id, "999"])).await;
    assert_eq!((&answer["type"], &answer["users"]), (&json!("subscribed"), &json!([alice.user_id])), "{answer}");
    let initial = watch_for(&mut bob_ws, &alice.user_id, false).await;
    assert!(initial.get("last_seen").is_none(), "never seen: {initial}");

    let alice_ws = server.connect(&alice).await;
    watch_for(&mut bob_ws, &alice.user_id, true).await;
    let closed_at = now_ms();
    drop(alice_ws);
    let offline = watch_for(&mut bob_ws, &alice.user_id, false).await;
    let last_seen = offline["last_seen"].as_i64().expect("last seen");
    assert!((closed_at - 5_000..=now_ms()).contains(&last_seen), "last seen when the session ended: {offline}");
    // A later subscriber gets the current state at once, last seen included.
    let mut carol_ws = server.connect(&carol).await;
    request(&mut carol_ws, "s2", subscribe("s2", &[&alice.user_id])).await;
    let current = watch_for(&mut carol_ws, &alice.user_id, false).await;
    assert!(current["last_seen"].as_i64().is_some_and(|at| at >= last_seen - 1_000), "{current}");

    // Alice hides her last seen: nobody sees her presence any more.
    let (status, body) = server
        .api
        .put("/v1/privacy", Some(&alice.access_token), &json!({"last_seen": "nobody"}))
        .await
        .expect("privacy");
    assert_eq!(status, 200, "{body}");
    // No pause: in Kafka mode each gateway folds its own copy of the
    // directory, and a read barrier makes the watchers' gateways apply the
    // change before they subscribe anyone or tell a watcher anything.
    let mut dave_ws_watcher = server.connect(&dave).await;
    let answer = request(&mut dave_ws_watcher, "s3", subscribe("s3", &[&alice.user_id, &carol.user_id])).await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    let _alice_again = server.connect(&alice).await;
    // Carol (visible to everyone) is the control: her presence still flows.
    request(&mut bob_ws, "s4", subscribe("s4", &[&carol.user_id])).await;
    drop(carol_ws);
    // The presence topic is one partition folded in order: Alice came back
    // before Carol left, so anything told of Alice arrives before Carol's
    // offline frame, on the same connection.
    for connection in [&mut bob_ws, &mut dave_ws_watcher] {
        let frames = until(connection, "carol offline", |frame| {
            presence_of(std::slice::from_ref(frame), &carol.user_id, false).is_some()
        })
        .await;
        assert!(
            frames.iter().all(|frame| frame["type"] != "presence" || frame["user"] != alice.user_id.as_str()),
            "alice's presence is hidden: {frames:?}"
        );
    }

    // Bad input gets a stable code; the connection stays usable.
    let answer = request(&mut bob_ws, "s5", subscribe("s5", &["alice"])).await;
    assert_eq!(answer["code"], "bad_frame", "{answer}");
    let many: Vec<String> = (0..1025).map(|index| index.to_string()).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let answer = request(&mut bob_ws, "s6", subscribe("s6", &many)).await;
    assert_eq!(answer["code"], "too_large", "{answer}");
    bob_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    until(&mut bob_ws, "pong", |frame| frame["type"] == "pong").await;
}

#[tokio::test]
async fn users_without_a_connected_device_get_push_jobs_batched_per_group() {
    let webhook = WebhookSink::start().await;
    let server = Server::start_with_env(&[("MISSIVE_PUSH_WEBHOOK", webhook.url.clone())]).await;
    let alice = server.register("+14155557101", "a").await;
    let bob = server.register("+14155557102", "b").await;
    let carol = server.register("+14155557103", "c").await;
    let (status, group) = server
        .api
        .post(
            "/v1/groups",
            Some(&alice.access_token),
            &json!({"name": "push", "members": [bob.user_id, carol.user_id]}),
        )
        .await
        .expect("create group");
    assert_eq!(status, 200, "{group}");
    let group = group["conversation_id"].as_str().expect("group id").to_string();
    // Carol is connected, Bob is not.
    let mut carol_ws = server.connect(&carol).await;
    let mut alice_ws = server.connect(&alice).await;

    let direct = send_to_user(&mut alice_ws, &bob.user_id, "secret-direct").await;
    let for_bob = |jobs: &[Value], group_job: bool| -> Vec<Value> {
        jobs.iter().filter(|job| job["user"] == bob.user_id.as_str() && job["group"] == group_job).cloned().collect()
    };
    let jobs = webhook.wait_for("bob's 1:1 job", |jobs| !for_bob(jobs, false).is_empty()).await;
    let job = &for_bob(&jobs, false)[0];
    assert_eq!((&job["count"], &job["message_ids"]), (&json!(1), &json!([direct["message_id"]])), "{job}");
    assert_eq!((&job["senders"], &job["conversation_id"]), (&json!([alice.user_id]), &direct["conversation_id"]));

    // Three group messages in a burst: one job for Bob, none for Carol (connected) or Alice (the sender).
    let started = now_ms();
    for tag in ["secret-g1", "secret-g2", "secret-g3"] {
        assert_eq!(send_to_group(&mut alice_ws, &group, tag).await["type"], "sent");
    }
    until(&mut carol_ws, "g3", |frame| frame["event"]["content"] == "secret-g3").await;
    let jobs = webhook.wait_for("bob's group job", |jobs| !for_bob(jobs, true).is_empty()).await;
    let job = &for_bob(&jobs, true)[0];
    let batched_for = job["at"].as_i64().expect("at") - started;
    assert_eq!((&job["count"], &job["conversation_id"]), (&json!(3), &json!(group)), "one job for the burst: {job}");
    assert!(batched_for >= 2_500, "sent when the 3 s window closed ({batched_for} ms)");
    common::assert_quiet_for(Duration::from_millis(3_500), "one group job for the burst", || {
        for_bob(&webhook.received(), true).len() == 1
    })
    .await;
    let jobs = webhook.received();
    assert!(
        jobs.iter().all(|job| job["user"] == bob.user_id.as_str()),
        "connected members and senders get no push: {jobs:?}"
    );
    assert!(!serde_json::to_string(&jobs).expect("json").contains("secret"), "no content in push jobs: {jobs:?}");
}
