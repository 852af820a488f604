//! Privacy: profile visibility, blocking, read receipts, group adds.

use super::*;

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
