//! `missive replay` against a running server, in both modes: decoded JSON
//! lines whose counts match what was sent, filtered by type, conversation,
//! user, key and time; bad input refused with a message.

mod common;

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

/// Changes the first value under `prefix` in a stopped store (a JSON object
/// gets an extra field; anything else an extra byte). Returns its key.
fn corrupt(data_dir: &std::path::Path, prefix: &[u8]) -> Vec<u8> {
    use missive_infra::db::{CF_STATE, family, open_db};
    let db = open_db(&data_dir.join("store")).expect("open the stopped store");
    let state = family(&db, CF_STATE);
    let (key, value) = db
        .iterator_cf(state, rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward))
        .map(|item| item.expect("read"))
        .find(|(key, _)| key.starts_with(prefix))
        .expect("a key to corrupt");
    let changed = match serde_json::from_slice::<Value>(&value) {
        Ok(Value::Object(mut fields)) => {
            fields.insert("corrupted".into(), Value::Bool(true));
            serde_json::to_vec(&fields).expect("json")
        }
        _ => [value.as_ref(), b"!"].concat(),
    };
    db.put_cf(state, &key, changed).expect("write");
    db.flush_cf(state).expect("flush");
    key.to_vec()
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

#[tokio::test]
async fn rebuilt_projections_equal_the_live_ones_and_a_swap_keeps_every_message() {
    let server = Server::start().await;
    let alice = server.register("+14155558301", "a").await;
    let bob = server.register("+14155558302", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    for index in 0..5 {
        send_to_user(&mut alice_ws, &bob.user_id, &format!("m{index}")).await;
    }
    let frames = common::until(&mut bob_ws, "m4", |frame| frame["event"]["content"] == "m4").await;
    let epoch = bob_ws.welcome["epoch"].as_str().expect("epoch").to_string();
    let third =
        frames.iter().find(|frame| frame["event"]["content"] == "m2").and_then(|f| f["seq"].as_u64()).expect("seq");
    bob_ws.ack(third).await.expect("ack");
    let acks = ["replay", "deliveries", "--type", "DeviceAcked", "--key", &bob.user_id];
    server.tool_until(&acks, "bob's ack is in the log", |lines| !lines.is_empty()).await;
    drop(bob_ws);
    for index in 5..7 {
        send_to_user(&mut alice_ws, &bob.user_id, &format!("m{index}")).await;
    }
    // A completed upload, for the media catalogue.
    let picture = b"\x89PNG not really a picture".to_vec();
    common::upload(
        &server,
        &alice.access_token,
        common::slot("document", "application/octet-stream", &picture),
        &picture,
    )
    .await;
    let uploads = ["replay", "events.media", "--type", "MediaUploaded"];
    server.tool_until(&uploads, "the upload is in the log", |lines| !lines.is_empty()).await;

    // Every projection of every live store rebuilds equal, while serving.
    let tool = server.rebuild_tool();
    for (name, store) in server.live_stores() {
        for projection in ["history", "directory", "inbox", "media"] {
            let output = tool.run(projection, &store, &["--verify-only"]).await;
            assert!(output.success, "{name} {projection}: {}", output.stderr);
            let report = &output.lines[0];
            assert_eq!(report["equal"], true, "{name} {projection}: {report}");
            assert_eq!(report["keys"]["live"], report["keys"]["shadow"], "{report}");
            assert_eq!(report["digest"]["live"], report["digest"]["shadow"], "{report}");
        }
    }

    // Corrupt Bob's store (stopped), see it reported, swap the rebuilt projections in.
    let (owner, store) = store_of(&server, &bob).await;
    let mut bob_inbox = b"inbox/".to_vec();
    bob_inbox.extend(bob.user_id.parse::<u64>().expect("id").to_be_bytes());
    bob_inbox.extend(b"/c/");
    let server = server
        .with_store_stopped(&owner, async || {
            let key = corrupt(&store, b"hist/");
            let output = tool.run("history", &store, &["--verify-only"]).await;
            assert!(!output.success, "a corrupted history must not verify: {:?}", output.lines);
            let report = &output.lines[0];
            assert_eq!(report["equal"], false, "{report}");
            let shown = report["first_difference"]["key"].as_str().expect("first differing key");
            assert!(shown.starts_with("hist/") && key.starts_with(b"hist/"), "{report}");
            assert!(output.stderr.contains("differs"), "{}", output.stderr);
            corrupt(&store, &bob_inbox);
            for projection in ["history", "inbox"] {
                let output = tool.run(projection, &store, &["--swap"]).await;
                assert!(output.success, "{projection} --swap: {}", output.stderr);
                let swapped = output.lines.iter().find(|line| line["swapped"] == projection).expect("swap report");
                if projection == "inbox" {
                    assert!(swapped["feeds_moved_to_a_new_epoch"].as_u64() >= Some(1), "{swapped}");
                }
            }
        })
        .await;

    // Bob's feed moved to a new epoch: his device resyncs and gets every unacknowledged message.
    let mut bob_ws = server.connect_resume(&bob, &epoch, third).await;
    assert_eq!(bob_ws.welcome["recovered"], false, "{}", bob_ws.welcome);
    assert_ne!(bob_ws.welcome["epoch"], epoch.as_str());
    let frames = common::until(&mut bob_ws, "m6", |frame| frame["event"]["content"] == "m6").await;
    let got: Vec<&str> = frames.iter().filter_map(|frame| frame["event"]["content"].as_str()).collect();
    assert_eq!(got, vec!["m3", "m4", "m5", "m6"], "every message after his ack, once");
    let history = server
        .get_until("/v1/conversations?limit=5", &alice.access_token, "conversation", |body| {
            body["conversations"].as_array().is_some_and(|list| !list.is_empty())
        })
        .await;
    let conversation = history["conversations"][0]["conversation_id"].as_str().expect("id").to_string();
    let messages = server
        .get_until(&format!("/v1/conversations/{conversation}/messages"), &alice.access_token, "history", |body| {
            body["messages"].as_array().is_some_and(|list| list.len() == 7)
        })
        .await;
    assert!(!messages.to_string().contains("corrupted"), "the swap replaced the corrupted value: {messages}");
    for (name, store) in server.live_stores() {
        let output = tool.run("history", &store, &["--verify-only"]).await;
        assert!(output.success && output.lines[0]["equal"] == true, "{name} after the swap: {}", output.stderr);
    }
}

/// Appends records to the server's log: straight to Kafka, or (embedded)
/// to the stopped server's store, which then starts again.
async fn inject(server: Server, records: Vec<missive_infra::OutRecord>) -> Server {
    use missive_infra::Log;
    match server.cluster() {
        Some(cluster) => {
            let log = missive_infra::KafkaLog::connect(missive_infra::KafkaConfig::new(cluster.brokers.clone()))
                .expect("kafka");
            log.wait_ready(WAIT).await.expect("ready");
            log.append(records).await.expect("append");
            server
        }
        None => {
            let store = server.live_stores()[0].1.join("store");
            server
                .with_store_stopped("embedded", async || {
                    let db = missive_infra::db::open_db(&store).expect("open the stopped store");
                    let log = missive_infra::EmbeddedLog::open(db, false).expect("log");
                    log.append(records).await.expect("append");
                })
                .await
        }
    }
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_error_and_redriven_to_their_origin() {
    use missive_core::conversation::{ConversationCommand, SendMessage};
    use missive_core::{ConversationId, DeviceId, MessageId, UserId};
    use missive_infra::{Header, Log, OutRecord};
    let server = Server::start().await;
    let alice = server.register("+14155558401", "a").await;
    let bob = server.register("+14155558402", "b").await;
    let (alice_id, bob_id): (u64, u64) = (alice.user_id.parse().expect("id"), bob.user_id.parse().expect("id"));
    let conversation = ConversationId::direct(UserId(alice_id), UserId(bob_id));
    // A record no processor can decode, and a valid send that "a bug" had dead-lettered.
    let codec = {
        let opened_log: std::sync::Arc<dyn Log> = match server.cluster() {
            Some(cluster) => {
                let log = missive_infra::KafkaLog::connect(missive_infra::KafkaConfig::new(cluster.brokers.clone()))
                    .expect("kafka");
                log.wait_ready(WAIT).await.expect("ready");
                std::sync::Arc::new(log)
            }
            None => {
                let scratch = tempfile::tempdir().expect("scratch");
                let db = missive_infra::db::open_db_secondary(&server.live_stores()[0].1.join("store"), scratch.path())
                    .expect("view");
                std::sync::Arc::new(missive_infra::EmbeddedLog::open(db, false).expect("log"))
            }
        };
        missive_registry::codec_from_log(opened_log).await.expect("codec")
    };
    let send = ConversationCommand::Send(SendMessage {
        conversation_id: conversation,
        message_id: MessageId(4242),
        from: UserId(alice_id),
        from_device: DeviceId(alice.device_id.parse().expect("device")),
        to: UserId(bob_id),
        client_msg_id: "redriven".into(),
        content: "redriven".into(),
        reply_to: None,
        forward_count: 0,
        attachment: None,
    });
    let value = codec.encode_value(&missive_schemas::WireValue::from(&send)).expect("encode");
    let key = conversation.0.to_string().into_bytes();
    let origin_partition =
        missive_infra::log::kafka_partition(&key, missive_processors::partitions_of("commands.conversation"));
    let records = vec![
        OutRecord {
            topic: "commands.conversation".into(),
            partition: None,
            key: b"1".to_vec(),
            value: b"not avro".to_vec(),
            headers: Vec::new(),
            timestamp: None,
        },
        OutRecord {
            topic: "dead-letters".into(),
            partition: None,
            key: key.clone(),
            value,
            headers: vec![
                Header { key: "missive-error".into(), value: b"a bug, since fixed".to_vec() },
                Header {
                    key: "missive-origin".into(),
                    value: format!("commands.conversation/{origin_partition}@0").into_bytes(),
                },
            ],
            timestamp: None,
        },
    ];
    let server = inject(server, records).await;

    let listed = server.tool_until(&["dead-letters", "list"], "two dead letters", |lines| lines.len() == 2).await;
    let poison = listed.iter().find(|line| line["type"] == "undecodable").expect("the poison record");
    assert!(poison["error"].as_str().is_some_and(|error| !error.is_empty()), "{poison}");
    assert!(poison["origin"].as_str().is_some_and(|origin| origin.starts_with("commands.conversation/")), "{poison}");
    let fixed = listed.iter().find(|line| line["type"] == "SendMessage").expect("the send");
    let poison_offset = poison["offset"].as_u64().expect("offset").to_string();
    let shown = server.tool(&["dead-letters", "show", "--offset", &poison_offset]).await;
    assert!(shown.success, "{}", shown.stderr);
    assert_eq!(shown.lines[0]["value"]["hex"], hex_of(b"not avro"), "{:?}", shown.lines);
    assert!(shown.lines[0]["headers"]["missive-error"].is_string(), "{:?}", shown.lines);

    // Re-driving the fixed send delivers it; re-driving the poison dead-letters it again, marked.
    let fixed_offset = fixed["offset"].as_u64().expect("offset").to_string();
    let redrive = |offset: String| {
        let args: Vec<String> = ["dead-letters", "redrive", "--offset", &offset]
            .iter()
            .map(|arg| arg.to_string())
            .chain(server.log_source())
            .collect();
        async move {
            let output = common::run_tool(args).await;
            assert!(output.success, "redrive: {}", output.stderr);
        }
    };
    let server = match server.cluster() {
        Some(_) => {
            redrive(fixed_offset).await;
            redrive(poison_offset.clone()).await;
            server
        }
        None => {
            let (first, second) = (redrive(fixed_offset), redrive(poison_offset.clone()));
            server
                .with_store_stopped("embedded", async || {
                    first.await;
                    second.await;
                })
                .await
        }
    };
    let mut bob_ws = server.connect(&bob).await;
    common::until(&mut bob_ws, "the re-driven send", |frame| frame["event"]["content"] == "redriven").await;
    let lines = server
        .tool_until(&["dead-letters", "list"], "the poison record dead-lettered again", |lines| {
            lines.iter().any(|line| line["redriven_from"].is_string())
        })
        .await;
    let again = lines.iter().find(|line| line["redriven_from"].is_string()).expect("found above");
    assert_eq!(again["redriven_from"], format!("dead-letters@{poison_offset}"), "{again}");
    assert_eq!(lines.len(), 3, "the fixed send was processed, not dead-lettered again: {lines:?}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn reset_moves_stopped_positions_and_refuses_what_would_process_twice() {
    let server = Server::start().await;
    let alice = server.register("+14155558501", "a").await;
    let bob = server.register("+14155558502", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut conversation = String::new();
    for index in 0..3 {
        let sent = send_to_user(&mut alice_ws, &bob.user_id, &format!("r{index}")).await;
        conversation = sent["conversation_id"].as_str().expect("conversation").to_string();
    }
    drop(alice_ws);
    let (owner, store) = store_of(&server, &bob).await;
    let tool = server.rebuild_tool();
    let reset = |processor: &'static str, store: std::path::PathBuf| {
        let mut args: Vec<String> =
            ["reset", processor, "--to-offset", "0", "--data-dir"].iter().map(|arg| arg.to_string()).collect();
        args.push(store.display().to_string());
        if let Some(cluster) = server.cluster() {
            args.extend(["--kafka".to_string(), cluster.brokers.clone()]);
        }
        common::run_tool(args)
    };
    let refused = reset("history", store.clone()).await;
    assert!(
        !refused.success && refused.stderr.contains("stop the process"),
        "a running store is refused: {}",
        refused.stderr
    );
    let (first_try, second_try) = (reset("inbox", store.clone()), reset("history", store.clone()));
    let server = server
        .with_store_stopped(&owner, async || {
            let inbox = first_try.await;
            assert!(
                !inbox.success && inbox.stderr.contains("only forward moves"),
                "the inbox may not go back: {}",
                inbox.stderr
            );
            let history = second_try.await;
            assert!(history.success, "history may go back: {}", history.stderr);
            let report = &history.lines[0];
            let moves = report["moves"].as_array().expect("moves");
            assert!(!moves.is_empty() && moves.iter().all(|m| m["to"] == 0), "{report}");
        })
        .await;
    // The restarted process refolds history from the start: the same history, verified equal.
    let path = format!("/v1/conversations/{conversation}/messages");
    server
        .get_until(&path, &alice.access_token, "three messages", |body| {
            body["messages"].as_array().is_some_and(|messages| messages.len() == 3)
        })
        .await;
    let output = tool.run("history", &store, &["--verify-only"]).await;
    assert!(output.success && output.lines[0]["equal"] == true, "{:?} {}", output.lines, output.stderr);
}
