//! Dead letters listed, shown and re-driven; positions reset safely.

use super::*;

/// Appends records to the server's log: straight to Kafka, or (embedded)
/// to the stopped server's store, which then starts again.
pub(super) async fn inject(server: Server, records: Vec<missive_infra::OutRecord>) -> Server {
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

/// The server's codec (schemas registered in its log), to write records as it would.
pub(super) async fn codec_of(server: &Server) -> missive_schemas::Codec {
    use missive_infra::Log;
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
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_error_and_redriven_to_their_origin() {
    use missive_core::conversation::{ConversationCommand, SendMessage};
    use missive_core::{ConversationId, DeviceId, MessageId, UserId};
    use missive_infra::{Header, OutRecord};
    let server = Server::start().await;
    let alice = server.register("+14155558401", "a").await;
    let bob = server.register("+14155558402", "b").await;
    let (alice_id, bob_id): (u64, u64) = (alice.user_id.parse().expect("id"), bob.user_id.parse().expect("id"));
    let conversation = ConversationId::direct(UserId(alice_id), UserId(bob_id));
    // A record no processor can decode, and a valid send that "a bug" had dead-lettered.
    let codec = codec_of(&server).await;
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
        session_id: None,
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
