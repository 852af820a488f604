//! Accounts, devices, profile, privacy, blocking, contacts and the PIN,
//! driven over HTTP and WebSocket against the real binary.

mod common;

use common::{Server, WAIT, code_of, messages_from};
use missive_client::{Account, Connection};
use missive_gateway::auth::contact_hash;
use serde_json::{Value, json};

/// Waits until `connection` has answered `sent` for `req`; returns the frames seen.
async fn sent(connection: &mut Connection, req: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut frames = Vec::new();
    while !frames.iter().any(|frame: &Value| frame["type"] == "sent" && frame["req"] == req) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match connection.next_frame(left).await {
            Ok(Some(frame)) => frames.push(frame),
            outcome => panic!("no sent for {req} ({outcome:?}); frames so far: {frames:?}"),
        }
    }
    assert!(frames.iter().all(|frame| frame["type"] != "error"), "errors: {frames:?}");
    frames
}

#[tokio::test]
async fn devices_are_listed_and_a_removed_device_is_cut_off_everywhere() {
    let server = Server::start().await;
    let phone = server.register("+14155552001", "phone").await;
    let laptop = server.register("+14155552001", "laptop").await;
    let (status, body) = server.api.get("/v1/devices", Some(&phone.access_token)).await.expect("devices");
    assert_eq!(status, 200, "{body}");
    let devices = body["devices"].as_array().expect("list");
    assert_eq!(devices.len(), 2, "{body}");
    let current: Vec<&Value> = devices.iter().filter(|device| device["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["device_id"], phone.device_id.as_str());
    assert!(
        devices.iter().any(|device| device["name"] == "laptop" && device["device_id"] == laptop.device_id.as_str())
    );

    let mut laptop_ws = server.connect(&laptop).await;
    let (status, body) = server
        .api
        .delete(&format!("/v1/devices/{}", laptop.device_id), Some(&phone.access_token))
        .await
        .expect("delete");
    assert_eq!(status, 200, "{body}");
    // Its open connection is told and closed at once.
    let frames = laptop_ws
        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["code"] == "device_removed"))
        .await
        .expect("device_removed frame");
    assert!(frames.iter().any(|frame| frame["type"] == "error"));
    assert!(laptop_ws.next_frame(WAIT).await.expect("close").is_none(), "the connection closes");
    // Its tokens no longer work, though still well signed and unexpired.
    let (status, body) = server.api.get("/v1/profile", Some(&laptop.access_token)).await.expect("profile");
    assert_eq!((status, code_of(&body)), (401, Some("device_removed")), "{body}");
    assert!(Connection::open(&server.ws_url, &laptop.access_token, None).await.is_err(), "hello refused");
    let (status, body) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": laptop.refresh_token}))
        .await
        .expect("refresh");
    assert_eq!(status, 401, "{body}");
    // The remaining device is untouched; an unknown device is a 404.
    let (status, body) = server.api.get("/v1/devices", Some(&phone.access_token)).await.expect("devices");
    assert_eq!((status, body["devices"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    let (status, body) = server
        .api
        .delete(&format!("/v1/devices/{}", laptop.device_id), Some(&phone.access_token))
        .await
        .expect("again");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    let server = Server::start().await;
    let account = server.register("+14155552101", "phone").await;
    let (status, first) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": account.refresh_token}))
        .await
        .expect("refresh");
    assert_eq!(status, 200, "{first}");
    assert_ne!(first["refresh_token"], account.refresh_token.as_str(), "rotated");
    let access = first["access_token"].as_str().expect("access");
    assert_eq!(server.api.get("/v1/profile", Some(access)).await.expect("profile").0, 200);
    let (status, second) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": first["refresh_token"]}))
        .await
        .expect("refresh again");
    assert_eq!(status, 200, "{second}");

    // Replaying the first (used) token: someone copied it. The session ends for everyone.
    let (status, body) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": account.refresh_token}))
        .await
        .expect("reuse");
    assert_eq!((status, code_of(&body)), (401, Some("refresh_token_reused")), "{body}");
    let newest = second["access_token"].as_str().expect("access");
    let (status, body) = server.api.get("/v1/profile", Some(newest)).await.expect("profile");
    assert_eq!((status, code_of(&body)), (401, Some("device_removed")), "{body}");
    let (status, _) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": second["refresh_token"]}))
        .await
        .expect("refresh");
    assert_eq!(status, 401, "the newest refresh token died with the session");
    for junk in ["", "rt1.5.abc", "nonsense", &format!("rt1.{}.{}", account.user_id, "0".repeat(64))] {
        let (status, body) =
            server.api.post("/v1/auth/refresh", None, &json!({"refresh_token": junk})).await.expect("junk");
        assert_eq!((status, code_of(&body)), (401, Some("invalid_token")), "{junk}: {body}");
    }
}

#[tokio::test]
async fn logout_ends_the_device_and_keeps_the_account() {
    let server = Server::start().await;
    let phone = server.register("+14155552201", "phone").await;
    let tablet = server.register("+14155552201", "tablet").await;
    let (status, body) =
        server.api.post("/v1/auth/logout", Some(&tablet.access_token), &json!({})).await.expect("logout");
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.api.get("/v1/devices", Some(&tablet.access_token)).await.expect("devices");
    assert_eq!(status, 401);
    let (status, body) = server.api.get("/v1/devices", Some(&phone.access_token)).await.expect("devices");
    assert_eq!((status, body["devices"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
}

/// Everyone a profile owner can stand in relation to.
struct Cast {
    owner: Account,
    contact: Account,
    stranger: Account,
    blocked: Account,
}

async fn cast(server: &Server, prefix: u32) -> Cast {
    let phone = |n: u32| format!("+1415555{prefix:02}{n:02}");
    let owner = server.register(&phone(1), "phone").await;
    let contact = server.register(&phone(2), "phone").await;
    let stranger = server.register(&phone(3), "phone").await;
    let blocked = server.register(&phone(4), "phone").await;
    // The blocked user is in the owner's contacts too: a block beats it.
    // In Kafka mode each gateway folds its own directory; a read barrier
    // makes users registered through the other gateway found at once.
    let hashes = json!({"hashes": [contact_hash(&phone(2)), contact_hash(&phone(4)), contact_hash("+19995550000")]});
    let (status, body) = server.api.post("/v1/contacts/sync", Some(&owner.access_token), &hashes).await.expect("sync");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"].as_array().map(Vec::len), Some(2), "{body}");
    let (status, body) = server
        .api
        .put(&format!("/v1/blocks/{}", blocked.user_id), Some(&owner.access_token), &json!({}))
        .await
        .expect("block");
    assert_eq!(status, 200, "{body}");
    Cast { owner, contact, stranger, blocked }
}

#[tokio::test]
async fn profile_visibility_follows_every_privacy_setting_and_relation() {
    let server = Server::start().await;
    let cast = cast(&server, 23).await;
    let owner = &cast.owner;
    let picture = profile_picture(&server, owner).await;
    let (status, body) = server
        .api
        .put(
            "/v1/profile",
            Some(&owner.access_token),
            &json!({"display_name": "Olive", "about": "é".repeat(139), "picture": picture}),
        )
        .await
        .expect("profile");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .api
        .put("/v1/profile", Some(&owner.access_token), &json!({"about": "x".repeat(140)}))
        .await
        .expect("long");
    assert_eq!((status, code_of(&body)), (400, Some("too_large")), "about is at most 139 characters: {body}");
    let (status, body) =
        server.api.put("/v1/profile", Some(&owner.access_token), &json!({"bio": "x"})).await.expect("unknown field");
    assert_eq!(status, 400, "{body}");
    // Last seen exists once a connection has ended.
    let connection = server.connect(owner).await;
    drop(connection);
    let own = server
        .get_until("/v1/profile", &owner.access_token, "last seen recorded", |body| body["last_seen"].is_i64())
        .await;
    assert_eq!(own["about"].as_str().map(|about| about.chars().count()), Some(139));

    const AUDIENCES: [&str; 3] = ["everyone", "contacts", "nobody"];
    // Each round gives the three settings different audiences, so that
    // three rounds cover every setting x audience x relation.
    for round in 0..3 {
        let (last_seen, photo, about) = (AUDIENCES[round], AUDIENCES[(round + 1) % 3], AUDIENCES[(round + 2) % 3]);
        let (status, body) = server
            .api
            .put(
                "/v1/privacy",
                Some(&owner.access_token),
                &json!({"last_seen": last_seen, "photo": photo, "about": about}),
            )
            .await
            .expect("privacy");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"last_seen": last_seen, "photo": photo, "about": about, "read_receipts": true, "groups": "everyone"})
        );
        let viewers = [
            ("self", owner, [true, true, true]),
            ("contact", &cast.contact, [true, true, false]),
            ("non-contact", &cast.stranger, [true, false, false]),
            ("blocked", &cast.blocked, [false, false, false]),
        ];
        let sees = |audience: &str, expected: [bool; 3]| {
            expected[AUDIENCES.iter().position(|a| *a == audience).expect("test step")]
        };
        for (relation, viewer, expected) in viewers {
            let (status, view) = server
                .api
                .get(&format!("/v1/users/{}/profile", owner.user_id), Some(&viewer.access_token))
                .await
                .expect("view");
            assert_eq!(status, 200, "{view}");
            assert_eq!(view["display_name"], "Olive", "the name is always shown");
            let case = format!("round {round}, {relation}: {view}");
            assert_eq!(view["last_seen"].is_i64(), sees(last_seen, expected), "last_seen={last_seen} {case}");
            assert_eq!(view["picture"] == picture.as_str(), sees(photo, expected), "photo={photo} {case}");
            assert_eq!(view["about"] == own["about"], sees(about, expected), "about={about} {case}");
            for field in ["last_seen", "picture", "about"] {
                assert!(view[field].is_null() || view[field] == own[field], "a hidden field is null: {case}");
            }
        }
    }
    let (status, body) =
        server.api.put("/v1/privacy", Some(&owner.access_token), &json!({"photo": "friends"})).await.expect("bad");
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{body}");
    let (status, body) = server.api.get("/v1/users/12345/profile", Some(&owner.access_token)).await.expect("unknown");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
}

/// Bob's sends to a blocker: `sent` (one tick), never delivered, no receipts.
async fn assert_withheld(server: &Server, alice: &Account, bob: &Account, carol: &Account, tag: &str) {
    let mut alice_ws = server.connect(alice).await;
    let mut bob_ws = server.connect(bob).await;
    let mut carol_ws = server.connect(carol).await;
    bob_ws
        .send_message(&format!("b{tag}"), &alice.user_id, &format!("b{tag}"), &format!("from bob {tag}"))
        .await
        .expect("test step");
    sent(&mut bob_ws, &format!("b{tag}")).await;
    // Carol's later message is the marker: once it arrives, Bob's would have.
    carol_ws
        .send_message(&format!("c{tag}"), &alice.user_id, &format!("c{tag}"), &format!("from carol {tag}"))
        .await
        .expect("test step");
    sent(&mut carol_ws, &format!("c{tag}")).await;
    let frames = alice_ws
        .collect_until(WAIT, |frames| !messages_from(frames, &carol.user_id).is_empty())
        .await
        .expect("carol's message");
    for frame in common::events(&frames) {
        alice_ws.ack(frame["seq"].as_u64().expect("test step")).await.expect("test step");
    }
    assert!(
        messages_from(&frames, &bob.user_id).is_empty(),
        "a blocked sender's message reached the blocker: {frames:?}"
    );
    // Carol's message was delivered (two ticks); Bob never gets a receipt.
    carol_ws
        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["event"]["status"] == "delivered"))
        .await
        .expect("carol's delivered tick");
    let bob_frames = bob_ws.drain_ready().await.expect("test step");
    assert!(
        bob_frames.iter().all(|frame| frame["event"]["kind"] != "receipt"),
        "no tick beyond sent for a withheld message: {bob_frames:?}"
    );
}

#[tokio::test]
async fn blocking_withholds_messages_hides_the_profile_and_survives_restart_and_rebuild() {
    let server = Server::start().await;
    let alice = server.register("+14155552401", "a").await;
    let bob = server.register("+14155552402", "b").await;
    let carol = server.register("+14155552403", "c").await;
    let picture = profile_picture(&server, &alice).await;
    let (status, body) = server
        .api
        .put("/v1/profile", Some(&alice.access_token), &json!({"about": "hi", "picture": picture}))
        .await
        .expect("test step");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .api
        .put(&format!("/v1/blocks/{}", bob.user_id), Some(&alice.access_token), &json!({}))
        .await
        .expect("block");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .api
        .put(&format!("/v1/blocks/{}", alice.user_id), Some(&alice.access_token), &json!({}))
        .await
        .expect("test step");
    assert_eq!(status, 400, "blocking yourself: {body}");
    let (status, body) =
        server.api.put("/v1/blocks/777", Some(&alice.access_token), &json!({})).await.expect("test step");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
    assert_withheld(&server, &alice, &bob, &carol, "1").await;
    let hidden = |view: &Value| view["about"].is_null() && view["picture"].is_null() && view["last_seen"].is_null();
    let path = format!("/v1/users/{}/profile", alice.user_id);
    let (_, view) = server.api.get(&path, Some(&bob.access_token)).await.expect("test step");
    assert!(hidden(&view), "{view}");
    // Alice's history of the chat does not show Bob's message either.
    let conversations = server.api.get("/v1/conversations", Some(&bob.access_token)).await.expect("test step").1;
    let conversation = conversations["conversations"][0]["conversation_id"].as_str().expect("bob's chat").to_string();
    let (status, history) = server
        .api
        .get(&format!("/v1/conversations/{conversation}/messages"), Some(&bob.access_token))
        .await
        .expect("test step");
    assert_eq!((status, history["messages"].as_array().map(Vec::len)), (200, Some(1)), "the sender sees it: {history}");
    let (status, history) = server
        .api
        .get(&format!("/v1/conversations/{conversation}/messages"), Some(&alice.access_token))
        .await
        .expect("test step");
    assert_eq!((status, history["messages"].as_array().map(Vec::len)), (200, Some(0)), "{history}");

    // kill -9 and restart: the block is in the log and the deciders' state.
    let server = server.crash_and_restart().await;
    assert_withheld(&server, &alice, &bob, &carol, "2").await;

    // Drop the directory projection and refold it from events.user.
    let server = server.rebuild_directory().await;
    let blocks = server
        .get_until("/v1/blocks", &alice.access_token, "blocks refolded", |body| body["blocked"] == json!([bob.user_id]))
        .await;
    assert_eq!(blocks["blocked"], json!([bob.user_id]));
    let (_, view) = server.api.get(&path, Some(&bob.access_token)).await.expect("test step");
    assert!(hidden(&view), "after the rebuild: {view}");
    let (_, view) = server.api.get(&path, Some(&carol.access_token)).await.expect("test step");
    assert_eq!(view["about"], "hi", "others still see it: {view}");
    assert_withheld(&server, &alice, &bob, &carol, "3").await;

    // Unblocking lets new messages through; withheld ones stay withheld.
    let (status, body) =
        server.api.delete(&format!("/v1/blocks/{}", bob.user_id), Some(&alice.access_token)).await.expect("test step");
    assert_eq!(status, 200, "unblock: {body}");
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    bob_ws.send_message("after", &alice.user_id, "after", "after unblock").await.expect("test step");
    sent(&mut bob_ws, "after").await;
    let frames = alice_ws
        .collect_until(WAIT, |frames| !messages_from(frames, &bob.user_id).is_empty())
        .await
        .expect("delivered after unblock");
    let contents: Vec<&str> =
        messages_from(&frames, &bob.user_id).iter().filter_map(|event| event["content"].as_str()).collect();
    assert_eq!(contents, vec!["after unblock"]);
}

#[tokio::test]
async fn read_receipts_off_is_reciprocal() {
    let server = Server::start().await;
    let alice = server.register("+14155552501", "a").await;
    let bob = server.register("+14155552502", "b").await;
    let (status, body) = server
        .api
        .put("/v1/privacy", Some(&alice.access_token), &json!({"read_receipts": false}))
        .await
        .expect("test step");
    assert_eq!((status, &body["read_receipts"]), (200, &json!(false)), "{body}");
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    // Alice reads Bob's message: Bob gets delivered, never read.
    bob_ws.send_message("1", &alice.user_id, "1", "to alice").await.expect("test step");
    let sent_frame = sent(&mut bob_ws, "1").await;
    let _ = sent_frame;
    let frames =
        alice_ws.collect_until(WAIT, |frames| !messages_from(frames, &bob.user_id).is_empty()).await.expect("message");
    let message = messages_from(&frames, &bob.user_id)[0].clone();
    let seq = common::events(&frames).last().expect("test step")["seq"].as_u64().expect("test step");
    alice_ws.ack(seq).await.expect("test step");
    let conversation = message["conversation_id"].as_str().expect("test step").to_string();
    alice_ws.send_json(&json!({"type": "read", "conversation_id": conversation, "up_to": 1})).await.expect("test step");
    // Bob reads Alice's message: Alice gets no read tick either (reciprocal).
    alice_ws.send_message("2", &bob.user_id, "2", "to bob").await.expect("test step");
    let frames =
        bob_ws.collect_until(WAIT, |frames| !messages_from(frames, &alice.user_id).is_empty()).await.expect("message");
    let seq = common::events(&frames).last().expect("test step")["seq"].as_u64().expect("test step");
    bob_ws.ack(seq).await.expect("test step");
    bob_ws.send_json(&json!({"type": "read", "conversation_id": conversation, "up_to": 2})).await.expect("test step");
    // Unread counts still follow the reads: the reader's own list drops to zero.
    server
        .get_until("/v1/conversations", &bob.access_token, "bob's read applied", |body| {
            body["conversations"][0]["unread"] == 0
        })
        .await;
    server
        .get_until("/v1/conversations", &alice.access_token, "alice's read applied", |body| {
            body["conversations"][0]["unread"] == 0
        })
        .await;
    // A last message each way, sent after the reads on the same connection:
    // the conversation decides it after the read, and the recipient's feed
    // gets it after any receipt that read caused. Everything up to it is checked.
    alice_ws.send_message("3", &bob.user_id, "3", "after my read").await.expect("test step");
    bob_ws.send_message("4", &alice.user_id, "4", "after my read").await.expect("test step");
    // Wait for the delivered tick too (it travels its own path) and the last message.
    let done = |from: &str| {
        let from = from.to_string();
        move |frames: &[serde_json::Value]| {
            messages_from(frames, &from).iter().any(|event| event["content"] == "after my read")
                && frames.iter().any(|frame| frame["event"]["status"] == "delivered")
        }
    };
    let bob_frames = bob_ws.collect_more(frames, WAIT, done(&alice.user_id)).await.expect("delivered and 3");
    let alice_frames = alice_ws.collect_until(WAIT, done(&bob.user_id)).await.expect("delivered and 4");
    for (who, frames) in [("bob", bob_frames), ("alice", alice_frames)] {
        assert!(frames.iter().all(|frame| frame["event"]["status"] != "read"), "{who} got a read tick: {frames:?}");
        assert!(frames.iter().all(|frame| frame["type"] != "error"), "{who}'s frames were refused: {frames:?}");
    }
}

#[tokio::test]
async fn a_pin_is_required_at_verify_once_set() {
    let server = Server::start().await;
    let phone = "+14155552601";
    let account = server.register(phone, "phone").await;
    let (status, body) = server
        .api
        .put("/v1/account/pin", Some(&account.access_token), &json!({"pin": "12a456"}))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("invalid_pin")), "{body}");
    let (status, body) = server
        .api
        .put("/v1/account/pin", Some(&account.access_token), &json!({"pin": "246810"}))
        .await
        .expect("test step");
    assert_eq!(status, 200, "{body}");
    // The log holds a salted, memory-hard hash of the PIN, never the PIN or a fast hash of it.
    let args = ["replay", "events.user", "--type", "PinChanged", "--key", &account.user_id];
    let lines = server.tool_until(&args, "the PIN change", |lines| !lines.is_empty()).await;
    let stored = lines[0]["value"]["pin_hash"].as_str().unwrap_or_default();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "an argon2id PHC string: {}", lines[0]);
    assert!(!stored.contains("246810"), "{stored}");

    let (status, _) = server.api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step");
    assert_eq!(status, 202);
    let code = missive_client::code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");
    let verify = |pin: Option<&str>| {
        let mut body = json!({"phone": phone, "code": code, "device_name": "new"});
        if let Some(pin) = pin {
            body["pin"] = json!(pin);
        }
        body
    };
    let (status, body) = server.api.post("/v1/auth/verify", None, &verify(None)).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("pin_required")), "{body}");
    let (status, body) = server.api.post("/v1/auth/verify", None, &verify(Some("000000"))).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_pin")), "{body}");
    let (status, body) = server.api.post("/v1/auth/verify", None, &verify(Some("246810"))).await.expect("test step");
    assert_eq!(status, 200, "the same code works with the right PIN: {body}");
    assert_eq!(body["user_id"], account.user_id.as_str());

    // Changing or removing the PIN needs the current one (a stolen session
    // cannot lock the owner out), and guessing it is rate limited.
    let token = Some(body["access_token"].as_str().expect("token").to_string());
    let token = token.as_deref();
    let (status, body) = server.api.put("/v1/account/pin", token, &json!({"pin": "111111"})).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("pin_required")), "{body}");
    let (status, body) = server.api.delete("/v1/account/pin", token).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("pin_required")), "{body}");
    let wrong = json!({"pin": "111111", "current_pin": "000000"});
    let (status, body) = server.api.put("/v1/account/pin", token, &wrong).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_pin")), "{body}");
    let change = json!({"pin": "135790", "current_pin": "246810"});
    let (status, body) = server.api.put("/v1/account/pin", token, &change).await.expect("test step");
    assert_eq!(status, 200, "{body}");
    let remove = json!({"current_pin": "135790"});
    let (status, body) =
        server.api.request("DELETE", "/v1/account/pin", token, Some(&remove)).await.expect("test step");
    assert_eq!(status, 200, "{body}");
    server.register(phone, "after").await;

    // Five tries of the current PIN an hour (all used above): then even the right one waits.
    let (status, _) = server.api.put("/v1/account/pin", token, &json!({"pin": "246810"})).await.expect("test step");
    assert_eq!(status, 200, "no PIN at the time: nothing to try");
    let right = json!({"pin": "111111", "current_pin": "246810"});
    let (status, body) = server.api.put("/v1/account/pin", token, &right).await.expect("test step");
    assert_eq!((status, code_of(&body)), (429, Some("rate_limited")), "{body}");
}

#[tokio::test]
async fn contact_sync_is_capped_per_request_and_rate_limited_per_account() {
    let server = Server::start().await;
    let account = server.register("+14155552701", "phone").await;
    let too_many: Vec<String> = (0..1001).map(|n| contact_hash(&format!("+1415666{n:04}"))).collect();
    let (status, body) = server
        .api
        .post("/v1/contacts/sync", Some(&account.access_token), &json!({"hashes": too_many}))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("too_many_contacts")), "{body:.200}");
    let page: Vec<String> = too_many[..1000].to_vec();
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let (status, body) = server
            .api
            .post("/v1/contacts/sync", Some(&account.access_token), &json!({"hashes": page}))
            .await
            .expect("test step");
        statuses.push(status);
        if status == 429 {
            assert_eq!(code_of(&body), Some("rate_limited"));
            assert!(body["error"]["retry_after"].as_u64().is_some_and(|seconds| seconds > 0), "{body}");
        }
    }
    assert!(statuses[..24].iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(statuses[24], 429, "the 25th sync of the day is refused");
    let (status, body) = server.api.get("/v1/contacts", Some(&account.access_token)).await.expect("test step");
    assert_eq!((status, body["contacts"].as_array().map(Vec::len)), (200, Some(0)), "nobody there is registered");
}

/// Names others see refuse control and bidirectional override characters
/// (a name that reorders the text around it can pose as someone else).
#[tokio::test]
async fn names_refuse_control_and_bidirectional_override_characters() {
    let server = Server::start().await;
    let ann = server.register("+14155552501", "a").await;
    let bob = server.register("+14155552502", "b").await;
    for (field, text) in [
        ("display_name", "Bob\u{202E}gnp.exe"),
        ("display_name", "A\u{2067}B"),
        ("about", "line\nbreak"),
        ("about", "bell\u{7}"),
    ] {
        let (status, body) =
            server.api.put("/v1/profile", Some(&ann.access_token), &json!({ field: text })).await.expect("profile");
        assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{field}={text:?}: {body}");
    }
    let (status, body) = server
        .api
        .put("/v1/profile", Some(&ann.access_token), &json!({"display_name": "Ann ✓", "about": "שלום world"}))
        .await
        .expect("profile");
    assert_eq!(status, 200, "ordinary names in any script pass: {body}");
    let (_, own) = server.api.get("/v1/profile", Some(&ann.access_token)).await.expect("profile");
    assert_eq!(own["display_name"], "Ann ✓", "nothing refused was stored: {own}");
    let (status, body) = server
        .api
        .post("/v1/groups", Some(&ann.access_token), &json!({"name": "team\u{202E}", "members": [bob.user_id]}))
        .await
        .expect("group");
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{body}");
}

/// A completed upload of `account`'s for its profile picture.
async fn profile_picture(server: &Server, account: &Account) -> String {
    let bytes = b"\x89PNG\r\n\x1a\n not decoded here";
    let mut slot = common::slot("image", "image/png", bytes);
    slot["purpose"] = json!("profile_picture");
    common::upload(server, &account.access_token, slot, bytes).await
}

#[tokio::test]
async fn profile_pictures_and_group_icons_are_the_callers_own_completed_uploads() {
    let server = Server::start().await;
    let alice = server.register("+14155552901", "a").await;
    let bob = server.register("+14155552902", "b").await;
    let bobs_picture = profile_picture(&server, &bob).await;
    let alices_picture = profile_picture(&server, &alice).await;
    let bytes = b"a message photo";
    let message_photo =
        common::upload(&server, &alice.access_token, common::slot("image", "image/png", bytes), bytes).await;
    let refused = |value: &str| json!({"picture": value});
    for (picture, why) in [
        ("https://evil.example/track.png", "free text"),
        (bobs_picture.as_str(), "someone else's upload"),
        (message_photo.as_str(), "an upload made for a message"),
        ("0123456789abcdef0123456789abcdef", "no such upload"),
    ] {
        let (status, body) =
            server.api.put("/v1/profile", Some(&alice.access_token), &refused(picture)).await.expect("test step");
        assert_eq!((status, code_of(&body)), (400, Some("invalid_media")), "{why}: {body}");
    }
    let (status, body) =
        server.api.put("/v1/profile", Some(&alice.access_token), &refused(&alices_picture)).await.expect("test step");
    assert_eq!((status, body["picture"].as_str()), (200, Some(alices_picture.as_str())), "{body}");
    let (status, body) =
        server.api.put("/v1/profile", Some(&alice.access_token), &refused("")).await.expect("test step");
    assert_eq!(status, 200, "an empty picture removes it: {body}");

    // Group icons: the same rule, at creation and on change.
    let create = json!({"name": "g", "members": [bob.user_id], "icon": alices_picture});
    let (status, body) = server.api.post("/v1/groups", Some(&alice.access_token), &create).await.expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("invalid_media")), "a profile picture is no group icon: {body}");
    let create = json!({"name": "g", "members": [bob.user_id]});
    let (status, group) = server.api.post("/v1/groups", Some(&alice.access_token), &create).await.expect("test step");
    assert_eq!(status, 200, "{group}");
    let group_id = group["conversation_id"].as_str().expect("group id");
    let (status, body) = server
        .api
        .request("PATCH", &format!("/v1/groups/{group_id}"), Some(&alice.access_token), Some(&json!({"icon": "x"})))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("invalid_media")), "{body}");
    let mut slot = common::slot("image", "image/png", bytes);
    slot["purpose"] = json!("group_icon");
    let icon = common::upload(&server, &alice.access_token, slot, bytes).await;
    let (status, body) = server
        .api
        .request("PATCH", &format!("/v1/groups/{group_id}"), Some(&alice.access_token), Some(&json!({"icon": icon})))
        .await
        .expect("test step");
    assert_eq!(status, 200, "{body}");
}

/// Group-add privacy: someone the owner's `groups` setting does not allow
/// only invites the owner (an `invited` entry in the owner's feed); the
/// owner joins by accepting, or declines. Contacts are added directly
/// under `contacts`; under `nobody` everyone invites.
#[tokio::test]
async fn group_adds_follow_the_group_privacy_setting_with_invites() {
    let server = Server::start().await;
    let Cast { owner, contact, stranger, .. } = cast(&server, 71).await;
    let (status, body) = server
        .api
        .put("/v1/privacy", Some(&owner.access_token), &json!({"groups": "contacts"}))
        .await
        .expect("privacy");
    assert_eq!((status, &body["groups"]), (200, &json!("contacts")), "{body}");
    let (status, body) =
        server.api.put("/v1/privacy", Some(&owner.access_token), &json!({"groups": "friends"})).await.expect("bad");
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{body}");
    let mut owner_ws = server.connect(&owner).await;
    let ids = |body: &Value, field: &str| -> Vec<String> {
        body[field]
            .as_array()
            .map(|users| users.iter().filter_map(|user| user.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };

    // A stranger creating a group with the owner and a contact: the contact is
    // added (their setting is the default, everyone), the owner invited.
    let (status, created) = server
        .api
        .post(
            "/v1/groups",
            Some(&stranger.access_token),
            &json!({"name": "g1", "members": [owner.user_id, contact.user_id]}),
        )
        .await
        .expect("create");
    assert_eq!(status, 200, "{created}");
    let group = created["conversation_id"].as_str().expect("id").to_string();
    assert!(ids(&created, "members").contains(&contact.user_id), "{created}");
    assert!(!ids(&created, "members").contains(&owner.user_id), "the owner was added without consent: {created}");
    assert_eq!(ids(&created, "invited"), vec![owner.user_id.clone()], "{created}");
    assert_eq!(created["invites"][0]["user"], owner.user_id.as_str(), "{created}");
    let frames = common::until(&mut owner_ws, "the invite in the owner's feed", |frame| {
        frame["event"]["change"] == "invited" && frame["event"]["conversation_id"] == group.as_str()
    })
    .await;
    let invite = frames.iter().find(|frame| frame["event"]["change"] == "invited").expect("invite");
    assert_eq!(invite["event"]["subjects"], json!([owner.user_id]), "{invite}");
    assert_eq!(invite["event"]["by"], stranger.user_id.as_str(), "{invite}");
    let path = format!("/v1/groups/{group}");
    let (status, _) = server.api.get(&path, Some(&owner.access_token)).await.expect("get");
    assert_eq!(status, 404, "an invitee is no member before accepting");
    // Nobody else can accept the owner's invite.
    let (status, body) = server
        .api
        .post(&format!("{path}/invite/accept"), Some(&contact.access_token), &json!({}))
        .await
        .expect("accept");
    assert_eq!(status, 200, "a member accepting changes nothing: {body}");
    let third = server.register("+14155557199", "phone").await;
    let (status, body) =
        server.api.post(&format!("{path}/invite/accept"), Some(&third.access_token), &json!({})).await.expect("accept");
    assert_eq!((status, code_of(&body)), (404, Some("no_invite")), "{body}");

    // The owner accepts and is a member from then on.
    let (status, body) =
        server.api.post(&format!("{path}/invite/accept"), Some(&owner.access_token), &json!({})).await.expect("accept");
    assert_eq!((status, &body["change"]), (200, &json!("joined")), "{body}");
    assert!(ids(&body, "members").contains(&owner.user_id), "{body}");
    assert_eq!(body["invites"], json!([]), "{body}");
    let (status, _) = server.api.get(&path, Some(&owner.access_token)).await.expect("get");
    assert_eq!(status, 200);

    // A contact adds the owner directly under "contacts".
    let (status, body) = server
        .api
        .post("/v1/groups", Some(&contact.access_token), &json!({"name": "g2", "members": [owner.user_id]}))
        .await
        .expect("create");
    assert_eq!(status, 200, "{body}");
    assert!(ids(&body, "members").contains(&owner.user_id), "{body}");
    assert_eq!(ids(&body, "invited"), Vec::<String>::new(), "{body}");

    // Under "nobody" even a contact only invites; a declined invite is gone.
    let (status, _) =
        server.api.put("/v1/privacy", Some(&owner.access_token), &json!({"groups": "nobody"})).await.expect("privacy");
    assert_eq!(status, 200);
    let (status, body) = server
        .api
        .post("/v1/groups", Some(&contact.access_token), &json!({"name": "g3", "members": []}))
        .await
        .expect("create");
    assert_eq!(status, 200, "{body}");
    let third_group = body["conversation_id"].as_str().expect("id").to_string();
    let members_path = format!("/v1/groups/{third_group}/members");
    let (status, body) = server
        .api
        .post(&members_path, Some(&contact.access_token), &json!({"users": [owner.user_id]}))
        .await
        .expect("add");
    assert_eq!((status, &body["change"]), (200, &json!("invited")), "{body}");
    assert!(!ids(&body, "members").contains(&owner.user_id), "{body}");
    let decline = format!("/v1/groups/{third_group}/invite/decline");
    let (status, body) = server.api.post(&decline, Some(&owner.access_token), &json!({})).await.expect("decline");
    assert_eq!((status, &body["change"]), (200, &json!("invite_declined")), "{body}");
    let accept = format!("/v1/groups/{third_group}/invite/accept");
    let (status, body) = server.api.post(&accept, Some(&owner.access_token), &json!({})).await.expect("accept");
    assert_eq!((status, code_of(&body)), (404, Some("no_invite")), "{body}");
}
