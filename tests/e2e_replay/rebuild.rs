//! Rebuilt projections against the live ones, and a swap after corruption.

use super::*;

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
