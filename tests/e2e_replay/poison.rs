//! Poison records on every topic a processor reads (issue 20): an
//! undecodable value, a value naming a schema id no registry holds, and a
//! well-formed record of a type that does not belong on the topic. Each
//! goes to the dead-letter topic exactly once, naming its origin; the
//! processors go on with the records behind it, and a restart does not
//! dead-letter anything again.

use missive_core::conversation::{ConversationCommand, SendMessage};
use missive_core::users::UserCommand;
use missive_core::{ConversationId, DeviceId, MessageId, UserId};
use missive_infra::OutRecord;
use missive_schemas::WireValue;

use super::dead_letters::{codec_of, inject};
use super::*;

/// Every topic a processor consumes.
const PROCESSED: [&str; 6] =
    ["commands.conversation", "commands.user", "deliveries", "events.conversation", "events.user", "events.media"];

#[tokio::test]
async fn poison_on_every_processed_topic_is_dead_lettered_once_and_processing_goes_on() {
    let server = Server::start().await;
    let alice = server.register("+14155558701", "a").await;
    let bob = server.register("+14155558702", "b").await;
    let (alice_id, bob_id): (u64, u64) = (alice.user_id.parse().expect("id"), bob.user_id.parse().expect("id"));
    let codec = codec_of(&server).await;
    let conversation = ConversationId::direct(UserId(alice_id), UserId(bob_id));
    let send = WireValue::from(&ConversationCommand::Send(SendMessage {
        conversation_id: conversation,
        message_id: MessageId(77),
        from: UserId(alice_id),
        from_device: DeviceId(alice.device_id.parse().expect("device")),
        to: UserId(bob_id),
        client_msg_id: "poison".into(),
        content: "poison".into(),
        reply_to: None,
        forward_count: 0,
        attachment: None,
        session_id: None,
    }));
    let block =
        WireValue::from(&UserCommand::SetBlock { user_id: UserId(alice_id), target: UserId(bob_id), blocked: true });
    let mut unknown_schema = vec![0u8, 0x00, 0x0f, 0x42, 0x40];
    unknown_schema.extend_from_slice(b"\x02\x04ab");
    let mut records = Vec::new();
    for topic in PROCESSED {
        // A type from another topic: a send everywhere but on the
        // conversation commands, which get a user command.
        let misplaced = if topic == "commands.conversation" { &block } else { &send };
        let values = [b"not avro".to_vec(), unknown_schema.clone(), codec.encode_value(misplaced).expect("encode")];
        for value in values {
            records.push(OutRecord {
                topic: topic.into(),
                partition: None,
                key: alice.user_id.clone().into_bytes(),
                value,
                headers: Vec::new(),
                timestamp: None,
            });
        }
    }
    let server = inject(server, records).await;
    let expected = PROCESSED.len() * 3;
    let listed = server
        .tool_until(&["dead-letters", "list"], "every poison record dead-lettered", |lines| lines.len() >= expected)
        .await;
    for topic in PROCESSED {
        let from_topic = listed
            .iter()
            .filter(|line| line["origin"].as_str().is_some_and(|origin| origin.starts_with(&format!("{topic}/"))))
            .count();
        assert_eq!(from_topic, 3, "three dead letters from {topic}: {listed:?}");
    }
    assert!(listed.iter().all(|line| line["error"].as_str().is_some_and(|error| !error.is_empty())), "{listed:?}");

    // Processing goes on: a message sent now arrives.
    let mut alice_ws = server.connect(&alice).await;
    send_to_user(&mut alice_ws, &bob.user_id, "after the poison").await;
    let mut bob_ws = server.connect(&bob).await;
    common::until(&mut bob_ws, "the message after the poison", |frame| frame["event"]["content"] == "after the poison")
        .await;
    drop((alice_ws, bob_ws));

    // A restart (kill -9) of what runs the processors reads on from the
    // committed positions: nothing is dead-lettered twice.
    let processors = if server.cluster().is_some() { "process-0" } else { "embedded" };
    let server = server.with_store_stopped(processors, async || {}).await;
    let mut bob_ws = server.connect(&bob).await;
    send_to_user(&mut bob_ws, &alice.user_id, "after the restart").await;
    let listed = server.tool(&["dead-letters", "list"]).await;
    assert!(listed.success, "{}", listed.stderr);
    assert_eq!(listed.lines.len(), expected, "each dead-lettered once: {:?}", listed.lines);
}
