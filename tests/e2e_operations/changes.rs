//! Receipts, edits, reactions, deletes, forwards and replies.

use super::*;

#[tokio::test]
async fn group_receipts_tell_the_sender_k_of_n_and_list_who_got_and_read_it_when() {
    let server = Server::start().await;
    let alice = server.register("+14155556001", "a").await;
    let bob = server.register("+14155556002", "b").await;
    let carol = server.register("+14155556003", "c").await;
    let eve = server.register("+14155556004", "e").await;
    let group = create_group(&server, &alice, &[&bob, &carol]).await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let mut carol_ws = server.connect(&carol).await;
    let sent = send_to_group(&mut alice_ws, &group, "m1").await;
    assert_eq!(sent["type"], "sent", "{sent}");
    let message = sent["message_id"].as_str().expect("message id").to_string();
    let conv_seq = sent["conv_seq"].as_u64().expect("conv_seq");
    let receipt = |status: &'static str, count: u64| {
        let message = message.clone();
        move |frame: &Value| {
            let event = &frame["event"];
            event["kind"] == "receipt"
                && event["message_id"] == message.as_str()
                && event["status"] == status
                && event["count"] == count
        }
    };

    // Bob's device acknowledges the message: delivered 1 of 2.
    let frame = receive(&mut bob_ws, "m1").await;
    bob_ws.ack(frame["seq"].as_u64().expect("seq")).await.expect("ack");
    let frames = until(&mut alice_ws, "delivered 1/2", receipt("delivered", 1)).await;
    let tick = frames.iter().find(|frame| receipt("delivered", 1)(frame)).expect("tick");
    assert_eq!((&tick["event"]["of"], &tick["event"]["by"]), (&json!(2), &json!(bob.user_id)), "{tick}");

    // Carol reads without acknowledging first: reading implies delivery.
    receive(&mut carol_ws, "m1").await;
    carol_ws.send_json(&json!({"type": "read", "conversation_id": group, "up_to": conv_seq})).await.expect("read");
    let frames = until(&mut alice_ws, "read 1/2", receipt("read", 1)).await;
    assert!(frames.iter().any(receipt("delivered", 2)), "delivered 2/2 before read 1/2: {frames:?}");
    bob_ws.send_json(&json!({"type": "read", "conversation_id": group, "up_to": conv_seq})).await.expect("read");
    until(&mut alice_ws, "read 2/2", receipt("read", 2)).await;

    // Message info: who got it and who read it, and when; the sender only.
    let path = format!("/v1/conversations/{group}/messages/{message}/receipts");
    let info = server
        .get_until(&path, &alice.access_token, "both read", |body| {
            body["read"].as_array().is_some_and(|read| read.len() == 2)
        })
        .await;
    assert_eq!(info["recipients"], 2, "{info}");
    let both: BTreeSet<String> = [bob.user_id.clone(), carol.user_id.clone()].into();
    assert_eq!((users(&info["delivered"]), users(&info["read"])), (both.clone(), both), "{info}");
    for entry in info["read"].as_array().expect("read") {
        let delivered = info["delivered"].as_array().expect("delivered").iter().find(|d| d["user"] == entry["user"]);
        let delivered_at = delivered.and_then(|d| d["at"].as_i64()).expect("delivered at");
        assert!(entry["at"].as_i64().expect("read at") >= delivered_at, "read after delivery: {info}");
    }
    let (status, body) = server.api.get(&path, Some(&bob.access_token)).await.expect("GET");
    assert_eq!((status, code_of(&body)), (403, Some("forbidden")), "{body}");
    let (status, body) = server.api.get(&path, Some(&eve.access_token)).await.expect("GET");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
    let unknown = format!("/v1/conversations/{group}/messages/12345/receipts");
    let (status, body) = server.api.get(&unknown, Some(&alice.access_token)).await.expect("GET");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
}

#[tokio::test]
async fn edits_reactions_and_deletes_reach_every_member_and_history() {
    let server = Server::start().await;
    let alice = server.register("+14155556101", "a").await;
    let bob = server.register("+14155556102", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let sent = send_to_user(&mut alice_ws, &bob.user_id, "helo").await;
    let (conversation, first) = (
        sent["conversation_id"].as_str().expect("conversation").to_string(),
        sent["message_id"].as_str().expect("message").to_string(),
    );
    receive(&mut bob_ws, "helo").await;
    let history_path = format!("/v1/conversations/{conversation}/messages");

    // Edit: the sender only; the edit reaches the other member.
    let edit = with(operation("edit", "e1", &conversation, &first), "content", "hello");
    let done = request(&mut alice_ws, "e1", edit).await;
    assert_eq!(done["type"], "done", "{done}");
    let frames = until(&mut bob_ws, "edit", |frame| is_modified(frame, "edit", &first)).await;
    assert!(
        frames
            .iter()
            .any(|frame| frame["event"]["content"] == "hello" && frame["event"]["by"] == alice.user_id.as_str())
    );
    let refused =
        request(&mut bob_ws, "e2", with(operation("edit", "e2", &conversation, &first), "content", "x")).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // Reactions: one per member, replaced, removable.
    for (by_bob, req, emoji) in [(false, "r1", "😂"), (false, "r2", ""), (true, "r3", "👍"), (true, "r4", "❤️")]
    {
        let connection = if by_bob { &mut bob_ws } else { &mut alice_ws };
        let done = request(connection, req, with(operation("react", req, &conversation, &first), "emoji", emoji)).await;
        assert_eq!(done["type"], "done", "{req}: {done}");
    }
    until(&mut alice_ws, "bob's ❤️", |frame| {
        is_modified(frame, "react", &first) && frame["event"]["emoji"] == "❤️"
    })
    .await;
    let history = server
        .get_until(&history_path, &alice.access_token, "edit and reactions in history", |body| {
            history_entry(body, &first).is_some_and(|entry| entry["reactions"] == json!({bob.user_id.clone(): "❤️"}))
        })
        .await;
    let entry = history_entry(&history, &first).expect("entry");
    assert_eq!(entry["content"], "hello", "{entry}");
    assert!(entry["edited_at"].as_i64().is_some(), "{entry}");

    // Delete for me: gone from Bob's history only.
    let sent = send_to_user(&mut alice_ws, &bob.user_id, "second").await;
    let second = sent["message_id"].as_str().expect("message").to_string();
    receive(&mut bob_ws, "second").await;
    let done = request(&mut bob_ws, "d1", with(operation("delete", "d1", &conversation, &second), "scope", "me")).await;
    assert_eq!(done["type"], "done", "{done}");
    server
        .get_until(&history_path, &bob.access_token, "hidden for bob", |body| history_entry(body, &second).is_none())
        .await;
    let (_, history) = server.api.get(&history_path, Some(&alice.access_token)).await.expect("history");
    assert!(history_entry(&history, &second).is_some(), "alice still has it: {history}");

    // Delete for everyone while Bob is offline: the tombstone reaches him on reconnect.
    drop(bob_ws);
    let delete = with(operation("delete", "d2", &conversation, &first), "scope", "everyone");
    assert_eq!(request(&mut alice_ws, "d2", delete).await["type"], "done");
    let mut bob_ws = server.connect(&bob).await;
    until(&mut bob_ws, "tombstone", |frame| is_modified(frame, "delete_for_everyone", &first)).await;
    let history = server
        .get_until(&history_path, &bob.access_token, "tombstone in history", |body| {
            history_entry(body, &first).is_some_and(|entry| entry["deleted"] == true)
        })
        .await;
    let entry = history_entry(&history, &first).expect("entry");
    assert_eq!((&entry["content"], entry.get("reactions")), (&json!(""), None), "{entry}");
    let again =
        request(&mut alice_ws, "e3", with(operation("edit", "e3", &conversation, &first), "content", "x")).await;
    assert_eq!(again["code"], "message_deleted", "{again}");

    // Bad input gets a stable code and the connection stays usable.
    let cases = [
        (with(operation("delete", "b1", &conversation, &second), "scope", "all"), "bad_frame"),
        (with(operation("edit", "b2", &conversation, "x1"), "content", "y"), "bad_frame"),
        (with(operation("react", "b3", &conversation, "12345"), "emoji", "👍"), "not_found"),
        (with(operation("react", "b4", &conversation, &second), "emoji", &"x".repeat(65)), "bad_request"),
        (with(operation("edit", "b5", "777", &second), "content", "y"), "not_found"),
    ];
    for (frame, code) in cases {
        let req = frame["req"].as_str().expect("req").to_string();
        let answer = request(&mut alice_ws, &req, frame).await;
        assert_eq!((answer["type"].as_str(), answer["code"].as_str()), (Some("error"), Some(code)), "{req}: {answer}");
    }
    alice_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    until(&mut alice_ws, "pong", |frame| frame["type"] == "pong").await;
}

#[tokio::test]
async fn group_operations_reach_those_who_got_the_message_and_admins_may_delete() {
    let server = Server::start().await;
    let alice = server.register("+14155556201", "a").await;
    let bob = server.register("+14155556202", "b").await;
    let carol = server.register("+14155556203", "c").await;
    let dave = server.register("+14155556204", "d").await;
    let group = create_group(&server, &alice, &[&bob, &carol]).await;
    let mut bob_ws = server.connect(&bob).await;
    let mut carol_ws = server.connect(&carol).await;
    let mut alice_ws = server.connect(&alice).await;
    let sent = send_to_group(&mut bob_ws, &group, "g1").await;
    let message = sent["message_id"].as_str().expect("message").to_string();
    receive(&mut carol_ws, "g1").await;
    let (status, body) = server
        .api
        .post(&format!("/v1/groups/{group}/members"), Some(&alice.access_token), &json!({"users": [dave.user_id]}))
        .await
        .expect("add dave");
    assert_eq!(status, 200, "{body}");
    let mut dave_ws = server.connect(&dave).await;

    // Dave joined after g1: he cannot act on it.
    let react = with(operation("react", "r1", &group, &message), "emoji", "👍");
    assert_eq!(request(&mut dave_ws, "r1", react).await["code"], "not_found");
    // Carol is no admin and not the sender; Alice is an admin.
    let delete = |req: &str| with(operation("delete", req, &group, &message), "scope", "everyone");
    assert_eq!(request(&mut carol_ws, "d1", delete("d1")).await["code"], "forbidden");
    assert_eq!(request(&mut alice_ws, "d2", delete("d2")).await["type"], "done");
    for connection in [&mut bob_ws, &mut carol_ws] {
        until(connection, "tombstone", |frame| is_modified(frame, "delete_for_everyone", &message)).await;
    }
    // Dave never got g1, so he gets no tombstone either: a later message arrives first and alone.
    send_to_group(&mut alice_ws, &group, "g2").await;
    let frames = until(&mut dave_ws, "g2", |frame| frame["event"]["content"] == "g2").await;
    // g1's tombstone was decided before g2: had Dave been told, it would have come first.
    assert!(frames.iter().all(|frame| frame["event"]["kind"] != "modified"), "{frames:?}");
}

#[tokio::test]
async fn forwards_carry_a_count_and_go_to_at_most_five_chats_then_one_at_a_time() {
    let server = Server::start().await;
    let alice = server.register("+14155556301", "a").await;
    let bob = server.register("+14155556302", "b").await;
    let carol = server.register("+14155556303", "c").await;
    let dave = server.register("+14155556304", "d").await;
    let eve = server.register("+14155556305", "e").await;
    let group = create_group(&server, &bob, &[&eve]).await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let mut carol_ws = server.connect(&carol).await;
    let mut dave_ws = server.connect(&dave).await;
    let mut eve_ws = server.connect(&eve).await;
    let sent = send_to_user(&mut alice_ws, &bob.user_id, "pass it on").await;
    let original = json!({"conversation_id": sent["conversation_id"], "message_id": sent["message_id"]});
    receive(&mut bob_ws, "pass it on").await;
    let forward = |req: &str, of: &Value, to: Vec<Value>| json!({"type": "forward", "req": req, "of": of, "to": to, "client_msg_id": req});
    let user = |account: &Account| json!({"user": account.user_id});

    let answer =
        request(&mut bob_ws, "f1", forward("f1", &original, vec![user(&carol), user(&dave), json!({"group": group})]))
            .await;
    assert_eq!((answer["type"].as_str(), answer["forward_count"].as_u64()), (Some("forwarded"), Some(1)), "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert!(results.len() == 3 && results.iter().all(|result| result["message_id"].is_string()), "{answer}");
    for connection in [&mut carol_ws, &mut dave_ws, &mut eve_ws] {
        let frame = receive(connection, "pass it on").await;
        assert_eq!((&frame["event"]["forwarded"], &frame["event"]["forward_count"]), (&json!(true), &json!(1)));
    }
    let six = vec![user(&carol), user(&dave), user(&eve), user(&alice), json!({"group": group}), user(&carol)];
    let answer = request(&mut bob_ws, "f2", forward("f2", &original, six)).await;
    assert_eq!(answer["code"], "too_many_targets", "{answer}");
    // Eve is in neither chat of the original: she cannot forward it.
    assert_eq!(request(&mut eve_ws, "f3", forward("f3", &original, vec![user(&carol)])).await["code"], "not_found");

    // Carol and Dave pass it back and forth until it was forwarded five times.
    let mut holder_is_carol = true;
    let mut copy = json!({"conversation_id": results[0]["conversation_id"], "message_id": results[0]["message_id"]});
    for count in 2..=5u64 {
        let req = format!("chain{count}");
        let (from, to, target) = if holder_is_carol {
            (&mut carol_ws, &mut dave_ws, user(&dave))
        } else {
            (&mut dave_ws, &mut carol_ws, user(&carol))
        };
        let answer = request(from, &req, forward(&req, &copy, vec![target])).await;
        assert_eq!(answer["forward_count"], count, "{answer}");
        let result = &answer["results"][0];
        let frames = until(to, &req, |frame| frame["event"]["message_id"] == result["message_id"]).await;
        let frame = frames.iter().find(|frame| frame["event"]["message_id"] == result["message_id"]).expect("copy");
        assert_eq!(frame["event"]["forwarded_many_times"], json!(count >= 5), "{frame}");
        copy = json!({"conversation_id": result["conversation_id"], "message_id": result["message_id"]});
        holder_is_carol = !holder_is_carol;
    }
    // Carol holds the fifth copy: forwarded many times, so one chat at a time.
    let answer = request(&mut carol_ws, "f4", forward("f4", &copy, vec![user(&alice), user(&eve)])).await;
    assert_eq!(answer["code"], "too_many_targets", "{answer}");
    let answer = request(&mut carol_ws, "f5", forward("f5", &copy, vec![user(&alice)])).await;
    assert_eq!((answer["type"].as_str(), answer["forward_count"].as_u64()), (Some("forwarded"), Some(6)), "{answer}");
}

/// The delete-for-everyone window is configurable (`--delete-for-everyone-seconds`).
/// Runs one embedded server in either suite mode: the flag is the decider's, the same in both.
#[tokio::test]
async fn deleting_for_everyone_is_refused_after_the_configured_window() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let data = dir.path().join("data").display().to_string();
    let flags =
        ["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink, "--delete-for-everyone-seconds", "1"];
    let server = Server::start_with(dir.clone(), &flags, &[]).await;
    let alice = server.register("+14155556401", "a").await;
    let bob = server.register("+14155556402", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let early = send_to_user(&mut alice_ws, &bob.user_id, "early").await;
    let conversation = early["conversation_id"].as_str().expect("conversation").to_string();
    let delete = |req: &str, message: &Value| {
        with(operation("delete", req, &conversation, message.as_str().expect("id")), "scope", "everyone")
    };
    let late = send_to_user(&mut alice_ws, &bob.user_id, "late").await;
    assert_eq!(request(&mut alice_ws, "d1", delete("d1", &late["message_id"])).await["type"], "done");
    common::let_time_pass(Duration::from_millis(1_500), "the 1 s delete window closes").await;
    let answer = request(&mut alice_ws, "d2", delete("d2", &early["message_id"])).await;
    assert_eq!(answer["code"], "too_late", "{answer}");
}

#[tokio::test]
async fn replies_quote_a_message_of_the_same_chat() {
    let server = Server::start().await;
    let alice = server.register("+14155556501", "a").await;
    let bob = server.register("+14155556502", "b").await;
    let carol = server.register("+14155556503", "c").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let mut carol_ws = server.connect(&carol).await;
    let question = send_to_user(&mut alice_ws, &bob.user_id, "lunch?").await;
    let quoted = question["message_id"].as_str().expect("id").to_string();
    receive(&mut bob_ws, "lunch?").await;
    let reply = |req: &str, to: &Account, quote: &str| json!({"type": "send", "req": req, "to": {"user": to.user_id}, "client_msg_id": req, "content": req, "reply_to": quote});
    let answer = request(&mut bob_ws, "yes", reply("yes", &alice, &quoted)).await;
    assert_eq!(answer["type"], "sent", "{answer}");
    let frame = receive(&mut alice_ws, "yes").await;
    assert_eq!(frame["event"]["reply_to"], quoted.as_str(), "{frame}");
    let history = server
        .get_until(
            &format!("/v1/conversations/{}/messages", question["conversation_id"].as_str().expect("conversation")),
            &alice.access_token,
            "the reply in history",
            |body| history_entry(body, answer["message_id"].as_str().unwrap_or_default()).is_some(),
        )
        .await;
    let entry = history_entry(&history, answer["message_id"].as_str().expect("id")).expect("entry");
    assert_eq!(entry["reply_to"], quoted.as_str(), "{entry}");
    // Quoting a message of another chat, an unknown one, or a malformed id is refused.
    let refused = request(&mut carol_ws, "other", reply("other", &bob, &quoted)).await;
    assert_eq!(refused["code"], "not_found", "carol cannot quote alice and bob's message: {refused}");
    let refused = request(&mut bob_ws, "unknown", reply("unknown", &alice, "12345")).await;
    assert_eq!(refused["code"], "not_found", "{refused}");
    let refused = request(&mut bob_ws, "bad", reply("bad", &alice, "x")).await;
    assert_eq!(refused["code"], "bad_frame", "{refused}");
}
