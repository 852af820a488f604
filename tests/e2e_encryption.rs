//! End-to-end encryption with the reference client (`missive_client::secure`
//! on vodozemac), black-box, in both modes, against a server that refuses
//! plaintext: chats and groups on several devices read what was sealed for
//! them; a device added mid-conversation is caught by `device_mismatch` and
//! reads what follows; a removed member holds no key for what is sent after
//! its removal; edits and reactions travel sealed too.

mod common;

use common::{S3, Server, kafka_mode};
use missive_client::secure::{Received, SecureDevice, To};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A server that refuses plaintext; in Kafka mode its gateways share an S3
/// server for media (each gateway's own disk is its alone).
async fn encrypting_server() -> (Server, Option<S3>) {
    let mut env = vec![("MISSIVE_ALLOW_PLAINTEXT", "false".to_string())];
    let s3 = match kafka_mode() {
        true => Some(S3::start().await),
        false => None,
    };
    env.extend(s3.iter().flat_map(S3::env));
    (Server::start_with_env(&env).await, s3)
}

/// A registered device (a new one of the account if `phone` has one) with its keys published.
async fn device(server: &Server, phone: &str, name: &str) -> SecureDevice {
    let account = server.register(phone, name).await;
    SecureDevice::start(server.api.clone(), &server.ws_url, account).await.expect("the device starts")
}

fn text(payload: &Value) -> &str {
    payload["text"].as_str().unwrap_or_default()
}

/// Waits until `device` has read a sealed body whose text is `expected`; returns its entry.
async fn reads(device: &mut SecureDevice, expected: &str) -> Value {
    let got = device
        .receive_until(WAIT, |got| {
            got.iter().any(|item| matches!(item, Received::Message { payload, .. } if text(payload) == expected))
        })
        .await
        .unwrap_or_else(|error| panic!("device {} never read {expected:?}: {error:#}", device.account.device_id));
    assert!(
        !got.iter().any(|item| matches!(item, Received::Unreadable { .. })),
        "device {} met entries it could not open: {got:?}",
        device.account.device_id
    );
    got.into_iter()
        .find_map(|item| match item {
            Received::Message { entry, payload } if text(&payload) == expected => Some(entry),
            _ => None,
        })
        .expect("found above")
}

/// A 1 MB picture (what it shows does not matter to the server, which never opens it).
fn picture() -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Sends the picture sealed, and checks each reader downloads and opens exactly it.
async fn picture_reaches(sender: &mut SecureDevice, to: &To, caption: &str, readers: Vec<&mut SecureDevice>) {
    let image = picture();
    let sent = sender.send_media(to, caption, &image, ("image", "image/png"), caption).await.expect("send media");
    assert_eq!(sent["type"], "sent", "{sent}");
    for reader in readers {
        let entry = reads(reader, caption).await;
        assert!(entry["attachment"]["caption"].is_null(), "the caption travels sealed: {entry}");
        let opened =
            reader.crypto.open(entry["conversation_id"].as_str().expect("id"), &entry["encrypted"]).expect("opens");
        let downloaded = reader.download(&opened.payload).await.expect("download and open");
        assert!(downloaded == image, "device {} got other bytes", reader.account.device_id);
    }
}

async fn send(device: &mut SecureDevice, to: &To, id: &str, message: &str) -> Value {
    let sent = device.send(to, id, &json!({"text": message}), json!({})).await.expect("send");
    assert_eq!(sent["type"], "sent", "{sent}");
    sent
}

#[tokio::test]
async fn a_chat_is_relayed_sealed_and_read_on_every_device_and_plaintext_is_refused() {
    let (server, _s3) = encrypting_server().await;
    let mut alice = device(&server, "+14155556001", "alice").await;
    let mut bob_phone = device(&server, "+14155556002", "phone").await;
    let mut bob_tablet = device(&server, "+14155556002", "tablet").await;
    let bob = To::User(bob_phone.account.user_id.clone());

    let sent = send(&mut alice, &bob, "m1", "hello bob").await;
    for bob in [&mut bob_phone, &mut bob_tablet] {
        let entry = reads(bob, "hello bob").await;
        assert!(entry.get("content").is_none(), "the server relays no plaintext field: {entry}");
        assert_eq!(entry["message_id"], sent["message_id"]);
    }
    // A reply reaches the sender and the replier's other device, sealed.
    let to_alice = To::User(alice.account.user_id.clone());
    send(&mut bob_phone, &to_alice, "r1", "hi alice").await;
    reads(&mut alice, "hi alice").await;
    reads(&mut bob_tablet, "hi alice").await;
    picture_reaches(&mut alice, &bob, "a picture for bob", vec![&mut bob_phone, &mut bob_tablet]).await;

    // Edits and reactions are sealed too.
    let conversation = sent["conversation_id"].as_str().expect("id").to_string();
    let message_id = sent["message_id"].as_str().expect("id").to_string();
    let edit = alice.seal_for(&bob, &json!({"text": "hello bob (edited)"})).await.expect("seal");
    let frame = json!({"type": "edit", "req": "e1", "conversation_id": conversation, "message_id": message_id, "encrypted": edit});
    alice.connection.send_json(&frame).await.expect("edit");
    let edited = reads(&mut bob_phone, "hello bob (edited)").await;
    assert_eq!((edited["kind"].as_str(), edited["operation"].as_str()), (Some("modified"), Some("edit")), "{edited}");
    let reaction = bob_phone.seal_for(&to_alice, &json!({"text": "👍"})).await.expect("seal");
    let frame = json!({"type": "react", "req": "x1", "conversation_id": conversation, "message_id": message_id, "encrypted": reaction});
    bob_phone.connection.send_json(&frame).await.expect("react");
    let reacted = reads(&mut alice, "👍").await;
    assert_eq!(reacted["operation"], "react", "{reacted}");

    // History keeps the ciphertext, never a plaintext field.
    let (status, history) = server
        .api
        .get(&format!("/v1/conversations/{conversation}/messages"), Some(&bob_phone.account.access_token))
        .await
        .expect("history");
    assert_eq!(status, 200, "{history}");
    let messages = history["messages"].as_array().expect("messages");
    assert!(!messages.is_empty() && messages.iter().all(|message| message.get("content").is_none()), "{history}");
    assert!(messages.iter().all(|message| message["encrypted"]["ciphertext"].is_string()), "{history}");

    // Plaintext is refused with a stable code, nothing is appended, and the connection stays usable.
    let plain = json!({"type": "send", "req": "p1", "to": {"user": bob_phone.account.user_id}, "client_msg_id": "p1", "content": "in clear"});
    alice.connection.send_json(&plain).await.expect("send");
    let refused = alice
        .connection
        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["req"] == "p1"))
        .await
        .expect("an answer");
    let refused = refused.iter().find(|frame| frame["req"] == "p1").expect("answer");
    assert_eq!(refused["code"], "plaintext_not_allowed", "{refused}");
    send(&mut alice, &bob, "m2", "still here").await;
    reads(&mut bob_phone, "still here").await;

    // A delete for everyone takes the ciphertext out of the backlog of a device that was away.
    bob_tablet.connection.socket.close(None).await.expect("close");
    let gone = send(&mut alice, &bob, "m3", "soon gone").await;
    let frame = json!({"type": "delete", "req": "d1", "conversation_id": gone["conversation_id"],
                       "message_id": gone["message_id"], "scope": "everyone"});
    alice.connection.send_json(&frame).await.expect("delete");
    let done =
        alice.connection.collect_until(WAIT, |frames| frames.iter().any(|f| f["req"] == "d1")).await.expect("done");
    assert!(done.iter().any(|frame| frame["req"] == "d1" && frame["type"] == "done"), "{done:?}");
    let deleted =
        |item: &Received| matches!(item, Received::Other(entry) if entry["operation"] == "delete_for_everyone");
    // Once bob's phone has the delete entry, bob's inbox has applied it.
    bob_phone.receive_until(WAIT, |got| got.iter().any(deleted)).await.expect("the phone gets the delete");
    bob_tablet.reconnect().await.expect("the tablet comes back");
    let got = bob_tablet.receive_until(WAIT, |got| got.iter().any(deleted)).await.expect("the delete entry");
    let place = got
        .iter()
        .find_map(|item| match item {
            Received::Other(entry) if entry["kind"] == "message" && entry["message_id"] == gone["message_id"] => {
                Some(entry)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("the message keeps its place in the feed: {got:?}"));
    assert!(place.get("encrypted").is_none() && place.get("attachment").is_none(), "a tombstone: {place}");
}

#[tokio::test]
async fn a_group_on_five_devices_catches_a_new_device_and_shuts_out_a_removed_member() {
    let (server, _s3) = encrypting_server().await;
    let mut alice = device(&server, "+14155556101", "alice").await;
    let mut alice_laptop = device(&server, "+14155556101", "laptop").await;
    let mut bob = device(&server, "+14155556102", "bob").await;
    let mut bob_tablet = device(&server, "+14155556102", "tablet").await;
    let mut carol = device(&server, "+14155556103", "carol").await;
    let members = json!([bob.account.user_id, carol.account.user_id]);
    let (status, group) = server
        .api
        .post("/v1/groups", Some(&alice.account.access_token), &json!({"name": "sealed", "members": members}))
        .await
        .expect("create");
    assert_eq!(status, 200, "{group}");
    let group_id = group["conversation_id"].as_str().expect("id").to_string();
    let to_group = To::Group(group_id.clone());

    send(&mut alice, &to_group, "g1", "one for all").await;
    for reader in [&mut alice_laptop, &mut bob, &mut bob_tablet, &mut carol] {
        reads(reader, "one for all").await;
    }
    send(&mut bob, &to_group, "g2", "bob answers").await;
    for reader in [&mut alice, &mut alice_laptop, &mut bob_tablet, &mut carol] {
        reads(reader, "bob answers").await;
    }
    let readers = vec![&mut alice, &mut alice_laptop, &mut bob, &mut bob_tablet];
    picture_reaches(&mut carol, &to_group, "a picture for the group", readers).await;

    // Carol adds a device: alice's send names the old set, is refused with
    // device_mismatch (nothing delivered), shares with it and goes through.
    let mut carol_laptop = device(&server, "+14155556103", "laptop").await;
    send(&mut alice, &to_group, "g3", "welcome, new laptop").await;
    let mismatch = alice.mismatches.last().expect("alice's send was told of the new device");
    assert_eq!(mismatch["missing"][&carol.account.user_id], json!([carol_laptop.account.device_id]), "{mismatch}");
    for reader in [&mut carol_laptop, &mut carol, &mut bob] {
        reads(reader, "welcome, new laptop").await;
    }
    // Everyone sharing a conversation with carol hears her devices changed.
    for member in [&mut bob, &mut bob_tablet, &mut alice_laptop] {
        let change = member.device_change_of(&carol.account.user_id, WAIT).await.expect("devices_changed");
        assert_eq!(change["conversation_id"], group_id.as_str(), "{change}");
    }

    // Carol is removed: the next message is sealed with a new session she never gets.
    let path = format!("/v1/groups/{group_id}/members/{}", carol.account.user_id);
    let (status, answer) = server.api.delete(&path, Some(&alice.account.access_token)).await.expect("remove");
    assert_eq!(status, 200, "{answer}");
    let before = reads(&mut bob_tablet, "welcome, new laptop").await;
    send(&mut alice, &to_group, "g4", "after carol left").await;
    let after = reads(&mut bob_tablet, "after carol left").await;
    assert_ne!(after["encrypted"]["session_id"], before["encrypted"]["session_id"], "the session rotated");
    for removed in [&mut carol, &mut carol_laptop] {
        let opened = removed.crypto.open(&group_id, &after["encrypted"]);
        assert!(opened.is_err(), "a removed member's device opened a later message: {opened:?}");
    }
}
