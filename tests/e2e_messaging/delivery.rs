//! Delivery: order and gap-free feeds, ticks, devices, backlogs, retries.

use super::*;

#[tokio::test]
async fn a_thousand_messages_each_way_arrive_in_order_with_gap_free_sequences() {
    let server = Server::start().await;
    let alice = server.register("+14155551001", "a").await;
    let bob = server.register("+14155551002", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    const COUNT: usize = 1000;
    const BOTH: usize = COUNT * 2;
    async fn send_then_collect(connection: &mut missive_client::Connection, to: &str, tag: &str) -> Vec<Value> {
        let frame_for = |index: usize| {
            json!({"type": "send", "req": format!("{tag}{index}"), "to": {"user": to},
                "client_msg_id": format!("{tag}-{index}"), "content": format!("{tag} {index}")})
        };
        let mut frames = Vec::new();
        for index in 0..COUNT {
            connection.send_json(&frame_for(index)).await.expect("send");
            // Read while sending, as a real client does (back-pressure).
            frames.extend(connection.drain_ready().await.expect("drain"));
        }
        // As the protocol asks of clients: a send answered `unavailable` (not
        // confirmed in time) is sent again with the same client_msg_id.
        let (mut retried, mut checked, mut messages) = (0, 0, 0);
        let mut confirmed: HashSet<String> = HashSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            for frame in &frames[checked..] {
                match frame["type"].as_str() {
                    Some("event") if frame["event"]["kind"] == "message" => messages += 1,
                    Some("sent") => {
                        confirmed.insert(frame["req"].as_str().expect("req").to_string());
                    }
                    Some("error") if frame["code"] == "unavailable" => {
                        let req = frame["req"].as_str().expect("req");
                        let index: usize = req[tag.len()..].parse().expect("index");
                        connection.send_json(&frame_for(index)).await.expect("resend");
                        retried += 1;
                    }
                    _ => {}
                }
            }
            checked = frames.len();
            // The peer's messages; a device's own come back only to its
            // account's other devices (these accounts have one each).
            if messages >= COUNT && confirmed.len() >= COUNT {
                return frames;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{tag}: {} of {COUNT} sends confirmed, {messages} of {COUNT} messages, {retried} resent; errors: {:?}",
                confirmed.len(),
                frames.iter().filter(|frame| frame["type"] == "error").take(5).collect::<Vec<_>>()
            );
            // Up to 5 s for the next frame (a long wait pings to keep the connection), then what else arrived.
            if let Ok(more) = connection.collect_more(Vec::new(), Duration::from_secs(5), |got| !got.is_empty()).await {
                frames.extend(more);
                frames.extend(connection.drain_ready().await.expect("drain"));
            }
        }
    }
    let (alice_frames, bob_frames) = tokio::join!(
        send_then_collect(&mut alice_ws, &bob.user_id, "a"),
        send_then_collect(&mut bob_ws, &alice.user_id, "b"),
    );
    for (name, frames) in [("alice", &alice_frames), ("bob", &bob_frames)] {
        let seqs: Vec<u64> = events(frames).iter().map(|frame| frame["seq"].as_u64().expect("seq")).collect();
        let expected: Vec<u64> = (seqs[0]..seqs[0] + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "{name}: feed seq is gap-free and ordered");
        let received: Vec<u64> = events(frames)
            .iter()
            .filter(|frame| frame["event"]["kind"] == "message")
            .map(|frame| frame["event"]["conv_seq"].as_u64().expect("conv_seq"))
            .collect();
        assert!(received.windows(2).all(|pair| pair[0] < pair[1]), "{name}: messages arrive in conv_seq order");
        // What arrived plus what this device sent (its `sent` answers) is
        // the whole conversation, without a gap.
        let sent: std::collections::BTreeSet<u64> = frames
            .iter()
            .filter(|frame| frame["type"] == "sent")
            .map(|frame| frame["conv_seq"].as_u64().expect("conv_seq"))
            .collect();
        let mut whole: Vec<u64> = received.iter().copied().chain(sent).collect();
        whole.sort_unstable();
        assert_eq!(whole, (1..=BOTH as u64).collect::<Vec<u64>>(), "{name}: conv_seq gap-free");
    }
    assert_eq!(count_messages_from(&alice_frames, &alice.user_id), 0, "no copy pushed back to the sending device");
    let from_alice: Vec<String> = messages_from(&bob_frames, &alice.user_id)
        .iter()
        .map(|event| event["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        from_alice,
        (0..COUNT).map(|index| format!("a {index}")).collect::<Vec<_>>(),
        "alice's messages in send order"
    );
    let from_bob = count_messages_from(&alice_frames, &bob.user_id);
    assert_eq!(from_bob, COUNT);
    let message_ids: HashSet<&str> = alice_frames
        .iter()
        .filter(|frame| frame["type"] == "sent")
        .filter_map(|frame| frame["message_id"].as_str())
        .collect();
    assert_eq!(message_ids.len(), COUNT, "every send got its own message id");
}

#[tokio::test]
async fn ticks_go_sent_then_delivered_then_read_and_lists_follow() {
    let server = Server::start().await;
    let alice = server.register("+14155552001", "a").await;
    let bob = server.register("+14155552002", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    alice_ws.send_message("r1", &bob.user_id, "m1", "hello bob").await.expect("send");
    let frames = alice_ws.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "sent")).await.expect("sent");
    let sent = frames.iter().find(|f| f["type"] == "sent").expect("sent frame");
    assert_eq!(sent["req"], "r1");
    let message_id = sent["message_id"].as_str().expect("id").to_string();
    let conversation_id = sent["conversation_id"].as_str().expect("conversation").to_string();

    let frames = bob_ws.collect_until(WAIT, |frames| !events(frames).is_empty()).await.expect("bob gets it");
    let event = &events(&frames)[0];
    assert_eq!(event["event"]["message_id"], message_id.as_str());
    assert_eq!(event["event"]["content"], "hello bob");
    let (_, list) = server.api.get("/v1/conversations", Some(&bob.access_token)).await.expect("list");
    assert_eq!(list["conversations"][0]["unread"], 1);
    assert_eq!(list["conversations"][0]["peer"], alice.user_id.as_str());

    bob_ws.ack(event["seq"].as_u64().expect("seq")).await.expect("ack");
    let receipt_status = |status: &'static str| {
        move |frames: &[Value]| {
            events(frames).iter().any(|f| f["event"]["kind"] == "receipt" && f["event"]["status"] == status)
        }
    };
    let frames = alice_ws.collect_until(WAIT, receipt_status("delivered")).await.expect("delivered tick");
    let receipt = events(&frames).into_iter().find(|f| f["event"]["kind"] == "receipt").expect("receipt");
    assert_eq!(receipt["event"]["message_id"], message_id.as_str());
    assert_eq!(receipt["event"]["by"], bob.user_id.as_str());

    bob_ws.send_json(&json!({"type": "read", "conversation_id": conversation_id, "up_to": 1})).await.expect("read");
    alice_ws.collect_until(WAIT, receipt_status("read")).await.expect("read tick");
    server
        .get_until("/v1/conversations", &bob.access_token, "unread never dropped to 0", |list| {
            list["conversations"][0]["unread"] == 0
        })
        .await;

    send_numbered(&mut alice_ws, &bob.user_id, 2..=5, "m", "n").await;
    alice_ws
        .collect_until(WAIT, |frames| frames.iter().filter(|f| f["type"] == "sent").count() >= 4)
        .await
        .expect("sent x4");
    let path = format!("/v1/conversations/{conversation_id}/messages?limit=2");
    let page = server
        .get_until(&path, &bob.access_token, "history never caught up", |page| page["messages"][0]["conv_seq"] == 5)
        .await;
    let seqs: Vec<u64> =
        page["messages"].as_array().expect("array").iter().map(|m| m["conv_seq"].as_u64().unwrap_or(0)).collect();
    assert_eq!(seqs, vec![5, 4], "newest first");
    let (_, older) = server
        .api
        .get(&format!("/v1/conversations/{conversation_id}/messages?before=4&limit=100"), Some(&bob.access_token))
        .await
        .expect("older");
    let seqs: Vec<u64> =
        older["messages"].as_array().expect("array").iter().map(|m| m["conv_seq"].as_u64().unwrap_or(0)).collect();
    assert_eq!(seqs, vec![3, 2, 1]);
    let mallory = server.register("+14155552003", "m").await;
    let (status, body) = server.api.get(&path, Some(&mallory.access_token)).await.expect("foreign history");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "members only");

    // A newer conversation goes to the top of bob's list.
    let mut mallory_ws = server.connect(&mallory).await;
    mallory_ws.send_message("x", &bob.user_id, "mx", "newer").await.expect("send");
    let expected_peers = [mallory.user_id.as_str(), alice.user_id.as_str()];
    let list = server
        .get_until("/v1/conversations", &bob.access_token, "most recent first never held", |list| {
            let peers: Vec<&str> =
                list["conversations"].as_array().into_iter().flatten().filter_map(|c| c["peer"].as_str()).collect();
            peers == expected_peers
        })
        .await;
    assert_eq!(list["conversations"][0]["last_message"]["content"], "newer");
    assert_eq!(list["conversations"][0]["unread"], 1);
    let (status, _) = server
        .api
        .get(&format!("/v1/conversations/{conversation_id}/messages?limit=500"), Some(&bob.access_token))
        .await
        .expect("bad limit");
    assert_eq!(status, 400);
}

#[tokio::test]
async fn two_devices_receive_and_ack_independently() {
    let server = Server::start().await;
    let alice = server.register("+14155553001", "a").await;
    let bob_phone = server.register("+14155553002", "phone").await;
    let bob_laptop = server.register("+14155553002", "laptop").await;
    let mut phone = server.connect(&bob_phone).await;
    let mut alice_ws = server.connect(&alice).await;
    send_numbered(&mut alice_ws, &bob_phone.user_id, 0..3, "c", "m").await;
    let frames =
        phone.collect_until(WAIT, |frames| count_messages_from(frames, &alice.user_id) >= 3).await.expect("phone");
    let last_seq = events(&frames).last().expect("event")["seq"].as_u64().expect("seq");
    phone.ack(last_seq).await.expect("ack");
    // Receipts are watermarks: one may cover all three messages (conv_seq 1..3).
    alice_ws
        .collect_until(WAIT, |frames| {
            events(frames)
                .iter()
                .any(|f| f["event"]["status"] == "delivered" && f["event"]["up_to"].as_u64() >= Some(3))
        })
        .await
        .expect("delivered after the first device's ack");
    // The laptop was offline: its backlog is kept although the phone acked.
    let mut laptop = server.connect(&bob_laptop).await;
    let frames =
        laptop.collect_until(WAIT, |frames| count_messages_from(frames, &alice.user_id) >= 3).await.expect("laptop");
    assert_eq!(count_messages_from(&frames, &alice.user_id), 3);
    // Bob's own message reaches his other device.
    phone.send_message("own", &alice.user_id, "own-1", "from my phone").await.expect("send");
    let frames =
        laptop.collect_until(WAIT, |frames| count_messages_from(frames, &bob_phone.user_id) >= 1).await.expect("own");
    assert_eq!(messages_from(&frames, &bob_phone.user_id)[0]["from_device"], bob_phone.device_id.as_str());
}

#[tokio::test]
async fn an_offline_recipient_gets_its_backlog_once_and_a_wrong_epoch_is_not_recovered() {
    let server = Server::start().await;
    let alice = server.register("+14155554001", "a").await;
    let bob = server.register("+14155554002", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    alice_ws.send_message("r0", &bob.user_id, "c0", "first").await.expect("send");
    let frames =
        bob_ws.collect_until(WAIT, |frames| count_messages_from(frames, &alice.user_id) >= 1).await.expect("first");
    let epoch = bob_ws.welcome["epoch"].as_str().expect("epoch").to_string();
    let seen = events(&frames).last().expect("event")["seq"].as_u64().expect("seq");
    bob_ws.ack(seen).await.expect("ack");
    drop(bob_ws);

    send_numbered(&mut alice_ws, &bob.user_id, 1..=10, "c", "m").await;
    alice_ws
        .collect_until(WAIT, |frames| frames.iter().filter(|f| f["type"] == "sent").count() >= 11)
        .await
        .expect("sent");

    let mut bob_ws = server.connect_resume(&bob, &epoch, seen).await;
    assert_eq!(bob_ws.welcome["recovered"], true, "continuity proven from the resume point");
    let frames =
        bob_ws.collect_until(WAIT, |frames| count_messages_from(frames, &alice.user_id) >= 10).await.expect("backlog");
    let contents: Vec<&str> =
        messages_from(&frames, &alice.user_id).iter().map(|m| m["content"].as_str().unwrap_or("")).collect();
    assert_eq!(
        contents,
        (1..=10).map(|i| format!("m{i}")).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>()
    );
    bob_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    let rest = bob_ws.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "pong")).await.expect("pong");
    assert_eq!(count_messages_from(&rest, &alice.user_id), 0, "nothing delivered twice");
    drop(bob_ws);

    let bob_ws = server.connect_resume(&bob, "12345", 1).await;
    assert_eq!(bob_ws.welcome["recovered"], false, "a wrong epoch is never silently recovered");
    let bob_ws2 = server.connect_resume(&bob, &epoch, 999_999).await;
    assert_eq!(bob_ws2.welcome["recovered"], false, "a position beyond the feed is not continuity");
}

#[tokio::test]
async fn a_device_that_connects_again_replaces_its_old_connection_and_its_order_holds() {
    let server = Server::start().await;
    let alice = server.register("+14155555101", "a").await;
    let bob = server.register("+14155555102", "b").await;
    // The old connection has a long pipeline of sends in flight when the
    // same device connects again (a phone that switched networks).
    const OLD: usize = 200;
    const NEW: usize = 20;
    let mut old = server.connect(&alice).await;
    send_numbered(&mut old, &bob.user_id, 0..OLD, "old", "old").await;
    let mut new = server.connect(&alice).await;
    send_numbered(&mut new, &bob.user_id, 0..NEW, "new", "new").await;
    let sent = new
        .collect_until(WAIT, |frames| frames.iter().filter(|frame| frame["type"] == "sent").count() == NEW)
        .await
        .expect("the new connection's sends are confirmed");
    assert!(sent.iter().all(|frame| frame["type"] != "error"), "{sent:?}");

    // The old one was told, then closed.
    let mut told = Vec::new();
    while let Ok(Some(frame)) = old.next_frame(WAIT).await {
        told.push(frame);
    }
    let last = told.last().expect("frames on the old connection");
    assert_eq!(last["code"], "session_replaced", "the old connection ends with session_replaced: {last}");

    // Whatever the old connection got appended comes before everything
    // sent on the new one: old0..old<k>, then new0..new19.
    let mut bob_ws = server.connect(&bob).await;
    let frames = bob_ws
        .collect_until(WAIT, |frames| messages_from(frames, &alice.user_id).iter().any(|m| m["content"] == "new19"))
        .await
        .expect("bob gets the new connection's messages");
    let contents: Vec<&str> =
        messages_from(&frames, &alice.user_id).iter().map(|m| m["content"].as_str().unwrap_or("")).collect();
    let appended_by_old = contents.iter().take_while(|content| content.starts_with("old")).count();
    let expected: Vec<String> = (0..appended_by_old)
        .map(|index| format!("old{index}"))
        .chain((0..NEW).map(|index| format!("new{index}")))
        .collect();
    assert_eq!(contents, expected, "the old connection's appends all precede the new one's");
    eprintln!("reconnect: {appended_by_old} of {OLD} old sends appended before the new connection took over");
}

#[tokio::test]
async fn a_retried_client_msg_id_is_delivered_once_with_the_same_message_id() {
    let server = Server::start().await;
    let alice = server.register("+14155555001", "a").await;
    let bob = server.register("+14155555002", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    alice_ws.send_message("first", &bob.user_id, "same-id", "once").await.expect("send");
    alice_ws.send_message("retry", &bob.user_id, "same-id", "once").await.expect("send");
    let frames = alice_ws
        .collect_until(WAIT, |frames| frames.iter().filter(|f| f["type"] == "sent").count() >= 2)
        .await
        .expect("sent");
    let ids: Vec<&str> =
        frames.iter().filter(|f| f["type"] == "sent").filter_map(|f| f["message_id"].as_str()).collect();
    assert_eq!(ids[0], ids[1], "the retry returns the original message id");
    alice_ws.send_message("next", &bob.user_id, "other-id", "after").await.expect("send");
    let frames =
        bob_ws.collect_until(WAIT, |frames| count_messages_from(frames, &alice.user_id) >= 2).await.expect("bob");
    let contents: Vec<&str> =
        messages_from(&frames, &alice.user_id).iter().map(|m| m["content"].as_str().unwrap_or("")).collect();
    assert_eq!(contents, vec!["once", "after"], "the retried message arrives exactly once");
}
