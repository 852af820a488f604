//! Blocking and read-receipt privacy on every path.

use super::*;

/// A user someone blocked reaches them by no other path in their chat:
/// no typing signal, no reaction, no edit (live or in history), no group
/// add (refused with a code that does not name the block). In a group
/// they share, the blocked user's messages stay visible, as in WhatsApp.
#[tokio::test]
async fn a_blocked_user_reaches_the_blocker_by_no_other_path() {
    let server = Server::start().await;
    let alice = server.register("+14155556701", "a").await;
    let bob = server.register("+14155556702", "b").await;
    let carol = server.register("+14155556703", "c").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let mut carol_ws = server.connect(&carol).await;
    let sent = send_to_user(&mut bob_ws, &alice.user_id, "before").await;
    let (chat, before) = (
        sent["conversation_id"].as_str().expect("conversation").to_string(),
        sent["message_id"].as_str().expect("message").to_string(),
    );
    receive(&mut alice_ws, "before").await;
    let carol_chat = send_to_user(&mut carol_ws, &alice.user_id, "from carol").await["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    receive(&mut alice_ws, "from carol").await;
    let (status, body) = server
        .api
        .put(&format!("/v1/blocks/{}", bob.user_id), Some(&alice.access_token), &json!({}))
        .await
        .expect("block");
    assert_eq!(status, 200, "{body}");

    // Typing: Bob's signal is dropped; Carol's, sent after it, is the marker.
    bob_ws.send_json(&json!({"type": "typing", "conversation_id": chat, "state": "typing"})).await.expect("typing");
    let head_start = "bob's signal, were it delivered, would reach alice before carol's marker";
    common::let_time_pass(Duration::from_millis(300), head_start).await;
    carol_ws
        .send_json(&json!({"type": "typing", "conversation_id": carol_chat, "state": "typing"}))
        .await
        .expect("typing");
    let frames = until(&mut alice_ws, "carol typing", |frame| frame["type"] == "typing").await;
    assert!(frames.iter().all(|frame| frame["from"] != bob.user_id.as_str()), "bob's typing reached alice: {frames:?}");

    // Reactions and edits: Bob's never reach Alice; hers reach him.
    for (req, frame) in [
        ("r1", with(operation("react", "r1", &chat, &before), "emoji", "👍")),
        ("e1", with(operation("edit", "e1", &chat, &before), "content", "edited")),
    ] {
        assert_eq!(request(&mut bob_ws, req, frame).await["type"], "done", "{req}");
    }
    // Her own reaction is in her feed after anything Bob's operations would
    // have put there; it may come before or after the answer to her frame.
    let own = with(operation("react", "r2", &chat, &before), "emoji", "😂");
    alice_ws.send_json(&own).await.expect("react");
    let own_reaction =
        |frame: &Value| is_modified(frame, "react", &before) && frame["event"]["by"] == alice.user_id.as_str();
    let frames = alice_ws
        .collect_until(WAIT, |frames| {
            frames.iter().any(own_reaction) && frames.iter().any(|frame| frame["req"] == "r2")
        })
        .await
        .expect("her own reaction and the answer to it");
    let answer = frames.iter().find(|frame| frame["req"] == "r2").expect("answer");
    assert_eq!(answer["type"], "done", "{answer}");
    assert!(
        frames.iter().all(|frame| frame["event"]["kind"] != "modified" || frame["event"]["by"] != bob.user_id.as_str()),
        "bob's reaction or edit reached alice: {frames:?}"
    );
    until(&mut bob_ws, "alice's reaction", |frame| {
        is_modified(frame, "react", &before) && frame["event"]["by"] == alice.user_id.as_str()
    })
    .await;
    let history_path = format!("/v1/conversations/{chat}/messages");
    let his = server
        .get_until(&history_path, &bob.access_token, "both reactions in bob's history", |body| {
            history_entry(body, &before).and_then(|entry| entry["reactions"].as_object()).map(|map| map.len())
                == Some(2)
        })
        .await;
    assert_eq!(history_entry(&his, &before).expect("entry")["content"], "edited", "{his}");
    let (_, hers) = server.api.get(&history_path, Some(&alice.access_token)).await.expect("history");
    let entry = history_entry(&hers, &before).expect("alice still has the message");
    assert_eq!(
        (&entry["content"], entry.get("edited_at"), &entry["reactions"]),
        (&json!("before"), None, &json!({alice.user_id.clone(): "😂"})),
        "alice's history shows the message as she got it: {entry}"
    );

    // Group adds: Bob cannot add Alice, neither when creating a group nor later.
    let (status, body) = server
        .api
        .post("/v1/groups", Some(&bob.access_token), &json!({"name": "g", "members": [alice.user_id, carol.user_id]}))
        .await
        .expect("create");
    assert_eq!((status, code_of(&body)), (403, Some("add_not_allowed")), "{body}");
    assert!(!body.to_string().contains("block"), "the refusal does not reveal the block: {body}");
    let bobs_group = create_group(&server, &bob, &[&carol]).await;
    let (status, body) = server
        .api
        .post(&format!("/v1/groups/{bobs_group}/members"), Some(&bob.access_token), &json!({"users": [alice.user_id]}))
        .await
        .expect("add");
    assert_eq!((status, code_of(&body)), (403, Some("add_not_allowed")), "{body}");
    // In a group Carol made with both, Bob's messages reach Alice.
    let shared = create_group(&server, &carol, &[&alice, &bob]).await;
    send_to_group(&mut bob_ws, &shared, "in the group").await;
    receive(&mut alice_ws, "in the group").await;
}

/// Read receipts off in a 1:1 chat: no read tick reaches the sender, the
/// receipts endpoint lists no read (not even after the setting is turned
/// back on: the read time was never kept), and it is reciprocal (the one
/// with receipts off learns no read times either). Delivered ticks stay.
#[tokio::test]
async fn read_receipts_off_reveal_no_read_time_on_any_path_and_are_reciprocal() {
    let server = Server::start().await;
    let alice = server.register("+14155556801", "a").await;
    let bob = server.register("+14155556802", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let privacy = |on: bool| json!({"read_receipts": on});
    let (status, body) =
        server.api.put("/v1/privacy", Some(&bob.access_token), &privacy(false)).await.expect("privacy");
    assert_eq!(status, 200, "{body}");

    // Alice -> Bob; Bob (receipts off) reads it.
    let sent = send_to_user(&mut alice_ws, &bob.user_id, "to bob").await;
    let (chat, to_bob) = (
        sent["conversation_id"].as_str().expect("conversation").to_string(),
        sent["message_id"].as_str().expect("message").to_string(),
    );
    let conv_seq = sent["conv_seq"].as_u64().expect("conv_seq");
    let frame = receive(&mut bob_ws, "to bob").await;
    bob_ws.ack(frame["seq"].as_u64().expect("seq")).await.expect("ack");
    bob_ws.send_json(&json!({"type": "read", "conversation_id": chat, "up_to": conv_seq})).await.expect("read");
    // The read is folded once Bob's chat shows nothing unread.
    server
        .get_until("/v1/conversations", &bob.access_token, "bob's read folded", |body| {
            body["conversations"][0]["unread"] == 0
        })
        .await;
    let receipts_of = |message: &str| format!("/v1/conversations/{chat}/messages/{message}/receipts");
    let info = server
        .get_until(&receipts_of(&to_bob), &alice.access_token, "delivered listed", |body| {
            body["delivered"].as_array().is_some_and(|list| list.len() == 1)
        })
        .await;
    assert_eq!(info["read"], json!([]), "bob's read time is hidden: {info}");
    let frames = alice_ws.drain_ready().await.expect("frames");
    assert!(frames.iter().all(|frame| frame["event"]["status"] != "read"), "no read tick reached alice: {frames:?}");
    // Turned back on: the earlier read stays unknown.
    let (status, _) = server.api.put("/v1/privacy", Some(&bob.access_token), &privacy(true)).await.expect("privacy");
    assert_eq!(status, 200);
    let (_, info) = server.api.get(&receipts_of(&to_bob), Some(&alice.access_token)).await.expect("receipts");
    assert_eq!(info["read"], json!([]), "a read made while off is never revealed: {info}");

    // Reciprocal: Alice turns hers off and learns no read time of Bob's.
    let (status, _) = server.api.put("/v1/privacy", Some(&alice.access_token), &privacy(false)).await.expect("privacy");
    assert_eq!(status, 200);
    let sent = send_to_user(&mut alice_ws, &bob.user_id, "second").await;
    let (second, conv_seq) =
        (sent["message_id"].as_str().expect("message").to_string(), sent["conv_seq"].as_u64().expect("conv_seq"));
    let frame = receive(&mut bob_ws, "second").await;
    bob_ws.ack(frame["seq"].as_u64().expect("seq")).await.expect("ack");
    bob_ws.send_json(&json!({"type": "read", "conversation_id": chat, "up_to": conv_seq})).await.expect("read");
    server
        .get_until("/v1/conversations", &bob.access_token, "bob's second read folded", |body| {
            body["conversations"][0]["unread"] == 0
        })
        .await;
    let info = server
        .get_until(&receipts_of(&second), &alice.access_token, "delivered listed", |body| {
            body["delivered"].as_array().is_some_and(|list| list.len() == 1)
        })
        .await;
    assert_eq!(info["read"], json!([]), "alice, with receipts off, learns no read time: {info}");

    // In a group, reads are still listed (as in WhatsApp).
    let group = create_group(&server, &alice, &[&bob]).await;
    let sent = send_to_group(&mut alice_ws, &group, "in group").await;
    let (in_group, conv_seq) =
        (sent["message_id"].as_str().expect("message").to_string(), sent["conv_seq"].as_u64().expect("conv_seq"));
    receive(&mut bob_ws, "in group").await;
    bob_ws.send_json(&json!({"type": "read", "conversation_id": group, "up_to": conv_seq})).await.expect("read");
    server
        .get_until(
            &format!("/v1/conversations/{group}/messages/{in_group}/receipts"),
            &alice.access_token,
            "group read listed",
            |body| body["read"].as_array().is_some_and(|list| list.len() == 1),
        )
        .await;
}
