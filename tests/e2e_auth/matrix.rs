//! The authorization matrix: every endpoint and frame, by kind of caller.

use super::*;

/// The authorization matrix: every HTTP endpoint and every WebSocket frame,
/// called as each kind of caller, with the answer each must get. The three
/// bad credentials (no token, a forged one, a removed device's) are refused
/// everywhere with 401; for the four real users the table says what they
/// may do to the owner's resources: a stranger (no member of anything of
/// the owner's), a non-admin member of the owner's group, a user the owner
/// blocked (also a member of that group) and the owner (the group's admin,
/// the 1:1 chat's member, the media's uploader). Group rows run against a
/// fresh group per call, so one caller's change never decides another's.
#[tokio::test]
async fn authorization_matrix_every_endpoint_and_frame_by_caller() {
    let server = Server::start_embedded().await;
    let owner = server.register("+14155554201", "phone").await;
    let tablet = server.register("+14155554201", "tablet").await;
    let removed = server.register("+14155554201", "old laptop").await;
    let member = server.register("+14155554202", "phone").await;
    let blocked = server.register("+14155554203", "phone").await;
    let stranger = server.register("+14155554204", "phone").await;
    let friend = server.register("+14155554205", "phone").await;
    let third = server.register("+14155554206", "phone").await;
    let bystander = server.register("+14155554207", "phone").await;
    let api = &server.api;
    let (status, _) =
        api.delete(&format!("/v1/devices/{}", removed.device_id), Some(&owner.access_token)).await.expect("remove");
    assert_eq!(status, 200);
    let (status, _) = api
        .put(&format!("/v1/blocks/{}", blocked.user_id), Some(&owner.access_token), &json!({}))
        .await
        .expect("block");
    assert_eq!(status, 200);
    // The owner's 1:1 chat with a friend, one message in it.
    let mut owner_ws = server.connect(&owner).await;
    let sent = common::send_to_user(&mut owner_ws, &friend.user_id, "m1").await;
    let chat = sent["conversation_id"].as_str().expect("chat").to_string();
    let message = sent["message_id"].as_str().expect("message").to_string();
    // The owner's media: one completed (never shared), one uploaded but not completed.
    let photo = b"the owner's photo".to_vec();
    let media = common::upload(&server, &owner.access_token, common::slot("image", "image/jpeg", &photo), &photo).await;
    let (status, pending) = api
        .post("/v1/media/uploads", Some(&owner.access_token), &common::slot("image", "image/jpeg", b"second"))
        .await
        .expect("slot");
    assert_eq!(status, 200, "{pending}");
    let pending_id = pending["media_id"].as_str().expect("id").to_string();
    let (status, _) =
        common::put_bytes(&server, pending["upload_url"].as_str().expect("url"), b"second".to_vec()).await;
    assert_eq!(status, 200);
    // The owner's keys: claimable by anyone signed in; an upload signed for
    // the owner's device verifies for no other.
    let owner_keys = missive_client::keys::DeviceKeys::new().upload_body(&owner.user_id, &owner.device_id, 10);
    let (status, answer) = api.put("/v1/keys", Some(&owner.access_token), &owner_keys).await.expect("keys");
    assert_eq!(status, 200, "{answer}");
    let new_group = || async {
        let members = json!([member.user_id, blocked.user_id, third.user_id]);
        let (status, group) = api
            .post("/v1/groups", Some(&owner.access_token), &json!({"name": "team", "members": members}))
            .await
            .expect("group");
        assert_eq!(status, 200, "{group}");
        group["conversation_id"].as_str().expect("group id").to_string()
    };

    let callers: [(&str, &Account); 4] =
        [("stranger", &stranger), ("non-admin", &member), ("blocked", &blocked), ("owner", &owner)];
    // (method, path, body, [stranger, non-admin, blocked, owner]); `{group}`
    // is a fresh group, `{chat}` the owner's 1:1 chat.
    let own = ["200"; 4];
    let owners_only = ["404 not_found", "404 not_found", "404 not_found", "200"];
    let members_only = ["404 not_found", "200", "200", "200"];
    let admins_only = ["404 not_found", "403 forbidden", "403 forbidden", "200"];
    let rows: Vec<(&str, String, Option<Value>, [&str; 4])> = vec![
        // The caller's own account: every user may, nobody reaches another's.
        ("GET", "/v1/devices".into(), None, own),
        ("GET", "/v1/profile".into(), None, own),
        ("PUT", "/v1/profile".into(), Some(json!({"about": "hi"})), own),
        ("GET", "/v1/privacy".into(), None, own),
        ("PUT", "/v1/privacy".into(), Some(json!({"last_seen": "contacts"})), own),
        ("GET", "/v1/blocks".into(), None, own),
        ("PUT", format!("/v1/blocks/{}", bystander.user_id), Some(json!({})), own),
        ("DELETE", format!("/v1/blocks/{}", bystander.user_id), None, own),
        ("PUT", "/v1/account/pin".into(), Some(json!({"pin": "246810"})), own),
        ("DELETE", "/v1/account/pin".into(), Some(json!({"current_pin": "246810"})), own),
        ("POST", "/v1/contacts/sync".into(), Some(json!({"hashes": []})), own),
        ("GET", "/v1/contacts".into(), None, own),
        ("DELETE", format!("/v1/contacts/{}", bystander.user_id), None, own),
        ("GET", "/v1/conversations".into(), None, own),
        ("POST", "/v1/media/uploads".into(), Some(common::slot("image", "image/png", b"x")), own),
        // Someone else's: a device of the owner, a profile.
        ("DELETE", format!("/v1/devices/{}", tablet.device_id), None, owners_only),
        ("GET", format!("/v1/users/{}/profile", owner.user_id), None, own),
        // Keys: the owner's devices and one-time keys are public; uploads are for one's own device.
        ("GET", format!("/v1/users/{}/devices", owner.user_id), None, own),
        ("POST", "/v1/keys/claim".into(), Some(json!({"user_id": owner.user_id, "device_id": owner.device_id})), own),
        (
            "PUT",
            "/v1/keys".into(),
            Some(owner_keys.clone()),
            ["400 invalid_key", "400 invalid_key", "400 invalid_key", "200"],
        ),
        // The owner's 1:1 chat and media.
        ("GET", format!("/v1/conversations/{chat}/messages"), None, owners_only),
        ("GET", format!("/v1/conversations/{chat}/messages/{message}/receipts"), None, owners_only),
        ("GET", format!("/v1/media/{media}"), None, ["404 not_found", "404 not_found", "404 not_found", "302"]),
        ("POST", format!("/v1/media/uploads/{pending_id}/complete"), Some(json!({})), owners_only),
        // The owner's group (a fresh one per call).
        ("GET", "/v1/groups/{group}".into(), None, members_only),
        ("GET", "/v1/conversations/{group}/messages".into(), None, members_only),
        ("PATCH", "/v1/groups/{group}".into(), Some(json!({"name": "renamed"})), members_only),
        ("PUT", "/v1/groups/{group}/settings".into(), Some(json!({"only_admins_send": true})), admins_only),
        ("POST", "/v1/groups/{group}/members".into(), Some(json!({"users": [bystander.user_id]})), admins_only),
        ("DELETE", format!("/v1/groups/{{group}}/members/{}", third.user_id), None, admins_only),
        ("PUT", format!("/v1/groups/{{group}}/admins/{}", third.user_id), None, admins_only),
        ("DELETE", format!("/v1/groups/{{group}}/admins/{}", third.user_id), None, admins_only),
        ("POST", "/v1/groups/{group}/leave".into(), Some(json!({})), members_only),
        ("POST", "/v1/groups/{group}/invite/accept".into(), Some(json!({})), ["404 no_invite", "200", "200", "200"]),
        ("POST", "/v1/groups/{group}/invite/decline".into(), Some(json!({})), ["404 no_invite", "200", "200", "200"]),
        // Creating a group with the owner in it: refused only to the one the owner blocked.
        (
            "POST",
            "/v1/groups".into(),
            Some(json!({"name": "with the owner", "members": [owner.user_id]})),
            ["200", "200", "403 add_not_allowed", "200"],
        ),
    ];
    let forged = format!("{}x", owner.access_token);
    let bad_credentials: [(&str, Option<&str>, &str); 3] = [
        ("no token", None, "401 unauthorized"),
        ("forged token", Some(&forged), "401 unauthorized"),
        ("removed device", Some(&removed.access_token), "401 device_removed"),
    ];
    let outcome = |status: u16, body: &Value| match status {
        ..400 => status.to_string(),
        _ => format!("{status} {}", code_of(body).unwrap_or("?")),
    };
    let mut mismatches = Vec::new();
    for (method, template, body, expected) in &rows {
        let mut calls: Vec<(&str, Option<&str>, &str)> = bad_credentials.to_vec();
        calls.extend(
            callers
                .iter()
                .zip(expected)
                .map(|((name, account), want)| (*name, Some(account.access_token.as_str()), *want)),
        );
        for (caller, token, want) in calls {
            let path = match template.contains("{group}") {
                true => template.replace("{group}", &new_group().await),
                false => template.clone(),
            };
            let (status, answer) = api.request(method, &path, token, body.as_ref()).await.expect("call");
            let got = outcome(status, &answer);
            if got != want {
                mismatches.push(format!("{method} {template} as {caller}: want {want}, got {got} {answer}"));
            }
        }
    }

    // WebSocket frames, each on the caller's own session, then a ping: the
    // outcome is the answer's type, the error's code, or "ok" (no answer,
    // no error) before the pong.
    let group = new_group().await;
    let target = |conversation: &str| json!({"conversation_id": conversation, "message_id": message});
    let with = |mut frame: Value, extra: Value| {
        for (key, value) in extra.as_object().expect("object") {
            frame[key] = value.clone();
        }
        frame
    };
    let frames: Vec<(&str, Value, [&str; 4])> = vec![
        (
            "send to the owner",
            json!({"type": "send", "req": "q", "to": {"user": owner.user_id}, "client_msg_id": "a1", "content": "hi"}),
            ["sent"; 4],
        ),
        (
            "send to the group",
            json!({"type": "send", "req": "q", "to": {"group": group}, "client_msg_id": "a2", "content": "hi"}),
            ["error not_member", "sent", "sent", "sent"],
        ),
        (
            "read the chat",
            json!({"type": "read", "conversation_id": chat, "up_to": 1}),
            ["error not_found", "error not_found", "error not_found", "ok"],
        ),
        (
            "typing in the chat",
            json!({"type": "typing", "conversation_id": chat, "state": "typing"}),
            ["error not_found", "error not_found", "error not_found", "ok"],
        ),
        (
            "edit the message",
            with(json!({"type": "edit", "req": "q", "content": "changed"}), target(&chat)),
            ["error not_found", "error not_found", "error not_found", "done"],
        ),
        (
            "react to it",
            with(json!({"type": "react", "req": "q", "emoji": "👍"}), target(&chat)),
            ["error not_found", "error not_found", "error not_found", "done"],
        ),
        (
            "forward it",
            json!({"type": "forward", "req": "q", "of": target(&chat), "to": [{"user": friend.user_id}], "client_msg_id": "a3"}),
            ["error not_found", "error not_found", "error not_found", "forwarded"],
        ),
        (
            "delete it for everyone",
            with(json!({"type": "delete", "req": "q", "scope": "everyone"}), target(&chat)),
            ["error not_found", "error not_found", "error not_found", "done"],
        ),
        (
            "subscribe to presence",
            json!({"type": "subscribe_presence", "req": "q", "users": [owner.user_id]}),
            ["subscribed"; 4],
        ),
        ("ack", json!({"type": "ack", "seq": 0}), ["ok"; 4]),
        ("ping", json!({"type": "ping"}), ["pong"; 4]),
    ];
    let mut sessions = Vec::new();
    for (_, account) in &callers {
        sessions.push(server.connect(account).await);
    }
    let mut calls = 0;
    for (what, frame, expected) in &frames {
        for (((caller, _), session), want) in callers.iter().zip(sessions.iter_mut()).zip(expected) {
            // A frame with a `req` is answered by a frame carrying it; one
            // without is followed by a ping: an error before the pong, or "ok".
            calls += 1;
            let mut frame = frame.clone();
            let req = frame.get("req").map(|_| format!("q{calls}"));
            if let Some(req) = &req {
                frame["req"] = json!(req);
            }
            session.send_json(&frame).await.expect("frame");
            let got = match &req {
                Some(req) => {
                    let seen = session
                        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["req"] == req.as_str()))
                        .await
                        .expect("answer");
                    let answer = seen.iter().find(|frame| frame["req"] == req.as_str()).expect("answer");
                    match answer["type"].as_str() {
                        Some("error") => format!("error {}", answer["code"].as_str().unwrap_or("?")),
                        other => other.unwrap_or("?").to_string(),
                    }
                }
                None => {
                    if frame["type"] != "ping" {
                        session.send_json(&json!({"type": "ping"})).await.expect("ping");
                    }
                    let seen = session
                        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["type"] == "pong"))
                        .await
                        .expect("pong");
                    match seen.iter().find(|frame| frame["type"] == "error" && frame.get("req").is_none()) {
                        Some(error) => format!("error {}", error["code"].as_str().unwrap_or("?")),
                        None if frame["type"] == "ping" => "pong".to_string(),
                        None => "ok".to_string(),
                    }
                }
            };
            if got != *want {
                mismatches.push(format!("{what} as {caller}: want {want}, got {got}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} of the matrix differ:\n{}", mismatches.len(), mismatches.join("\n"));
}
