//! Bad, expired, rotated and logged credentials: refused everywhere,
//! persisting nothing, and never written to a log.

use super::*;

#[tokio::test]
async fn every_endpoint_and_frame_refuses_bad_credentials_and_persists_nothing() {
    let server = Server::start().await;
    let victim = server.register("+14155553001", "phone").await;
    let removed = server.register("+14155553001", "old laptop").await;
    let attacker = server.register("+14155553002", "phone").await;
    let friend = server.register("+14155553003", "phone").await;
    // The victim has a conversation, a profile and a second device that gets removed.
    let mut victim_ws = server.connect(&victim).await;
    victim_ws.send_message("r1", &friend.user_id, "c1", "private").await.expect("test step");
    let frames =
        victim_ws.collect_until(WAIT, |frames| frames.iter().any(|frame| frame["type"] == "sent")).await.expect("sent");
    let conversation = frames.iter().find(|frame| frame["type"] == "sent").expect("test step")["conversation_id"]
        .as_str()
        .expect("test step")
        .to_string();
    server.api.put("/v1/profile", Some(&victim.access_token), &json!({"about": "mine"})).await.expect("test step");
    let (status, _) = server
        .api
        .delete(&format!("/v1/devices/{}", removed.device_id), Some(&victim.access_token))
        .await
        .expect("test step");
    assert_eq!(status, 200);
    drop(victim_ws);
    let secrets: Value =
        serde_json::from_str(&std::fs::read_to_string(server.dir.path().join("data/secrets.json")).expect("test step"))
            .expect("test step");
    let secret = secrets["jwt_secret"].as_str().expect("test step").as_bytes().to_vec();
    let victim_device = victim.device_id.clone();
    let state_before = victim_state(&server, &victim).await;
    // The closed session's last-seen command lands before counting.
    server
        .get_until("/v1/profile", &victim.access_token, "last seen recorded", |body| body["last_seen"].is_i64())
        .await;
    let before = appended(&server).await;

    // The helper makes tokens the server accepts when nothing is wrong with
    // them, so each refusal below is due to the one defect it names.
    let good = token_with(&victim, &secret, jsonwebtoken::Algorithm::HS256, |_| {});
    assert_eq!(server.api.get("/v1/profile", Some(&good)).await.expect("profile").0, 200);
    let credentials: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "unauthorized"),
        ("expired", Some(token(&victim, &secret, jsonwebtoken::Algorithm::HS256, now() - 60)), "unauthorized"),
        (
            "wrong key",
            Some(token(&victim, b"some-other-key-of-thirty-two-bytes!", jsonwebtoken::Algorithm::HS256, now() + 3600)),
            "unauthorized",
        ),
        ("alg HS512", Some(token(&victim, &secret, jsonwebtoken::Algorithm::HS512, now() + 3600)), "unauthorized"),
        ("alg none", Some(unsigned(&victim)), "unauthorized"),
        (
            "not yet valid",
            Some(token_with(&victim, &secret, jsonwebtoken::Algorithm::HS256, |c| c.nbf = now() + 600)),
            "unauthorized",
        ),
        (
            "wrong audience",
            Some(token_with(&victim, &secret, jsonwebtoken::Algorithm::HS256, |c| c.aud = "someone-else".into())),
            "unauthorized",
        ),
        (
            "wrong issuer",
            Some(token_with(&victim, &secret, jsonwebtoken::Algorithm::HS256, |c| c.iss = "evil".into())),
            "unauthorized",
        ),
        ("garbage", Some("not.a.jwt".to_string()), "unauthorized"),
        ("removed device", Some(removed.access_token.clone()), "device_removed"),
    ];
    let endpoints: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/devices".into(), None),
        ("DELETE", format!("/v1/devices/{victim_device}"), None),
        ("GET", "/v1/profile".into(), None),
        ("PUT", "/v1/profile".into(), Some(json!({"about": "pwned"}))),
        ("GET", format!("/v1/users/{}/profile", friend.user_id), None),
        ("GET", "/v1/privacy".into(), None),
        ("PUT", "/v1/privacy".into(), Some(json!({"last_seen": "nobody"}))),
        ("GET", "/v1/blocks".into(), None),
        ("PUT", format!("/v1/blocks/{}", friend.user_id), Some(json!({}))),
        ("DELETE", format!("/v1/blocks/{}", friend.user_id), None),
        ("PUT", "/v1/account/pin".into(), Some(json!({"pin": "123456"}))),
        ("DELETE", "/v1/account/pin".into(), None),
        ("POST", "/v1/contacts/sync".into(), Some(json!({"hashes": []}))),
        ("GET", "/v1/contacts".into(), None),
        ("DELETE", format!("/v1/contacts/{}", friend.user_id), None),
        ("GET", "/v1/conversations".into(), None),
        ("GET", format!("/v1/conversations/{conversation}/messages"), None),
        ("PUT", "/v1/keys".into(), Some(json!({"identity_keys": {"curve25519": "x", "ed25519": "y"}}))),
        ("POST", "/v1/keys/claim".into(), Some(json!({"user_id": friend.user_id, "device_id": "1"}))),
        ("GET", format!("/v1/users/{}/devices", friend.user_id), None),
        ("POST", "/v1/auth/logout".into(), Some(json!({}))),
    ];
    for (method, path, body) in &endpoints {
        for (name, credential, code) in &credentials {
            let (status, answer) =
                server.api.request(method, path, credential.as_deref(), body.as_ref()).await.expect("test step");
            assert_eq!((status, code_of(&answer)), (401, Some(*code)), "{method} {path} with {name}: {answer}");
        }
    }
    // Refresh takes its own token: forged, unknown and removed-device ones are refused.
    for refresh in ["", "rt1.1.zz", &removed.refresh_token] {
        let (status, answer) =
            server.api.post("/v1/auth/refresh", None, &json!({"refresh_token": refresh})).await.expect("test step");
        assert_eq!(status, 401, "refresh {refresh:?}: {answer}");
    }
    // WebSocket: every frame type before hello, and hello with each bad credential.
    let frame_types = [
        json!({"type": "send", "to": {"user": friend.user_id}, "client_msg_id": "x", "content": "x"}),
        json!({"type": "ack", "seq": 1}),
        json!({"type": "read", "conversation_id": conversation, "up_to": 1}),
        json!({"type": "ping"}),
    ];
    for frame in &frame_types {
        let answers = ws_exchange(&server.ws_url, std::slice::from_ref(frame)).await;
        assert_eq!(answers.len(), 1, "{frame}: {answers:?}");
        assert_eq!(answers[0]["code"], "unauthorized", "{frame} before hello: {answers:?}");
    }
    for (name, credential, _) in &credentials {
        let hello = json!({"type": "hello", "token": credential.clone().unwrap_or_default()});
        let mut frames = vec![hello];
        frames.extend(frame_types.iter().cloned());
        let answers = ws_exchange(&server.ws_url, &frames).await;
        assert_eq!(answers.len(), 1, "hello with {name}: {answers:?}");
        assert_eq!(
            (answers[0]["type"].as_str(), answers[0]["code"].as_str()),
            (Some("error"), Some("unauthorized")),
            "{name}"
        );
    }
    assert_eq!(appended(&server).await, before, "a refused call appended to the log");

    // Another user's valid token reaches only its own account: the victim's
    // device, conversation and state stay out of reach.
    let (status, answer) = server
        .api
        .delete(&format!("/v1/devices/{victim_device}"), Some(&attacker.access_token))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&answer)), (404, Some("not_found")), "{answer}");
    let (status, answer) = server
        .api
        .get(&format!("/v1/conversations/{conversation}/messages"), Some(&attacker.access_token))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&answer)), (404, Some("not_found")), "{answer}");
    let mut attacker_ws = server.connect(&attacker).await;
    attacker_ws
        .send_json(&json!({"type": "read", "conversation_id": conversation, "up_to": 1}))
        .await
        .expect("test step");
    let answers = attacker_ws
        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["type"] == "error"))
        .await
        .expect("error frame");
    assert!(answers.iter().any(|frame| frame["code"] == "not_found"), "{answers:?}");
    for (method, path, body) in &endpoints {
        let (status, _) =
            server.api.request(method, path, Some(&attacker.access_token), body.as_ref()).await.expect("test step");
        assert!(status < 500, "{method} {path} as the attacker answered {status}");
    }
    assert_eq!(victim_state(&server, &victim).await, state_before, "the victim's account changed");
}

/// Everything about the victim that the matrix must not change.
async fn victim_state(server: &Server, victim: &Account) -> Value {
    let mut state = json!({});
    for path in ["/v1/devices", "/v1/profile", "/v1/privacy", "/v1/blocks", "/v1/contacts", "/v1/conversations"] {
        let (status, body) = server.api.get(path, Some(&victim.access_token)).await.expect("test step");
        assert_eq!(status, 200, "{path}: {body}");
        state[path] = body;
    }
    // Last seen moves whenever a session ends; it is not the attacker's doing.
    state["/v1/profile"]["last_seen"] = Value::Null;
    state
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires_unless_the_client_reauths() {
    const TTL: u64 = 6;
    let server = Server::start_with_env(&[("MISSIVE_ACCESS_TTL_SECONDS", TTL.to_string())]).await;
    let alice = server.register("+14155553901", "phone").await;
    let bob = server.register("+14155553902", "phone").await;
    let started = tokio::time::Instant::now();
    let mut kept = server.connect(&alice).await;
    let mut lapsing = server.connect(&bob).await;

    // A bad token is refused and the session goes on with the one it has.
    kept.send_json(&json!({"type": "reauth", "req": "r0", "token": "not-a-token"})).await.expect("reauth");
    let frames = kept.collect_until(WAIT, |frames| frames.iter().any(|f| f["req"] == "r0")).await.expect("answer");
    let answer = frames.iter().find(|f| f["req"] == "r0").expect("answer");
    assert_eq!((&answer["type"], &answer["code"]), (&json!("error"), &json!("unauthorized")), "{answer}");
    // Another device's valid token does not take over this session.
    kept.send_json(&json!({"type": "reauth", "req": "r1", "token": bob.access_token})).await.expect("reauth");
    let frames = kept.collect_until(WAIT, |frames| frames.iter().any(|f| f["req"] == "r1")).await.expect("answer");
    let answer = frames.iter().find(|f| f["req"] == "r1").expect("answer");
    assert_eq!(answer["code"], "unauthorized", "{answer}");

    // A fresh token of the same device (from the refresh endpoint) extends the session.
    common::let_time_pass(std::time::Duration::from_secs(3), "a fresh token expires later than the current one").await;
    let (status, fresh) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": alice.refresh_token}))
        .await
        .expect("refresh");
    assert_eq!(status, 200, "{fresh}");
    let fresh_token = fresh["access_token"].as_str().expect("access token");
    kept.send_json(&json!({"type": "reauth", "req": "r2", "token": fresh_token})).await.expect("reauth");
    let frames = kept.collect_until(WAIT, |frames| frames.iter().any(|f| f["req"] == "r2")).await.expect("answer");
    let answer = frames.iter().find(|f| f["req"] == "r2").expect("answer");
    assert_eq!(answer["type"], "reauthed", "{answer}");
    assert!(answer["expires_at"].as_i64().expect("expires_at") > now() + TTL as i64 - 3, "{answer}");

    // The session without a fresh token ends when its token expires.
    let mut told = Vec::new();
    while let Ok(Some(frame)) = lapsing.next_frame(WAIT).await {
        told.push(frame);
    }
    let elapsed = started.elapsed();
    let last = told.last().expect("a frame before the close");
    assert_eq!(last["code"], "token_expired", "{told:?}");
    assert!(elapsed >= std::time::Duration::from_secs(TTL - 2), "not before the token expired: {elapsed:?}");

    // The reauthed one outlives its first token.
    kept.send_json(&json!({"type": "ping"})).await.expect("ping");
    let frames = kept.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "pong")).await.expect("pong");
    assert!(frames.iter().all(|f| f["code"] != "token_expired"), "{frames:?}");
}

#[tokio::test]
async fn a_rotated_signing_key_keeps_old_tokens_until_they_expire() {
    // Embedded mode, whatever the suite's mode: the test edits the server's own secrets file.
    let server = Server::start_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await;
    let old = server.register("+14155553401", "phone").await;
    let dir = server.kill9().await;
    let path = dir.path().join("data/secrets.json");
    let mut secrets: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("secrets")).expect("json");
    let old_key = secrets["jwt_secret"].as_str().expect("key").to_string();
    let new_key = "f".repeat(64);
    secrets["previous_jwt_secrets"] = json!([old_key]);
    secrets["jwt_secret"] = json!(new_key);
    std::fs::write(&path, secrets.to_string()).expect("write secrets");
    let server = Server::start_in(dir).await;
    let (status, body) = server.api.get("/v1/profile", Some(&old.access_token)).await.expect("profile");
    assert_eq!(status, 200, "a token signed with the previous key still works: {body}");
    let new = server.register("+14155553402", "phone").await;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[AUDIENCE]);
    let verify = |key: &str| {
        jsonwebtoken::decode::<Claims>(
            &new.access_token,
            &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()),
            &validation,
        )
    };
    assert!(verify(&new_key).is_ok(), "new tokens are signed with the new key");
    assert!(verify(&old_key).is_err(), "not with the old one");
}

/// No credential reaches the logs, even at the most verbose level: not the
/// WebSocket URL's `access_token`, not a `hello` or `reauth` frame, not a
/// bad frame carrying a token, not a forged `Authorization` header, not a
/// refresh or its answer; nor a message's content.
#[tokio::test]
async fn tokens_never_reach_the_logs_even_at_trace_level() {
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("server.log");
    let server = Server::start_embedded_logging("trace", &log).await;
    let alice = server.register("+14155554101", "phone").await;
    let bob = server.register("+14155554102", "phone").await;
    // The URL carries the token (the client library's way), then frames do.
    let mut connection = server.connect(&alice).await;
    connection.send_json(&json!({"type": "reauth", "req": "r1", "token": alice.access_token})).await.expect("reauth");
    connection.send_text(&format!("{{\"type\":\"hello\",\"token\":\"{}\"", bob.access_token)).await.expect("bad frame");
    connection.send_json(&json!({"type": "nonsense", "token": bob.refresh_token})).await.expect("bad frame");
    let frames = connection
        .collect_until(WAIT, |frames| frames.iter().filter(|frame| frame["type"] == "error").count() >= 2)
        .await
        .expect("answers");
    assert!(frames.iter().any(|frame| frame["type"] == "reauthed"), "{frames:?}");
    // Nor what people write.
    common::send_to_user(&mut connection, &bob.user_id, "lavender-owl-4471").await;
    let forged = format!("{}x", alice.access_token);
    let (status, _) = server.api.get("/v1/devices", Some(&forged)).await.expect("forged");
    assert_eq!(status, 401);
    let (status, _) =
        server.api.get(&format!("/v1/devices?access_token={}", bob.access_token), None).await.expect("query");
    assert_eq!(status, 401, "a token in an HTTP query is no credential");
    let (status, fresh) =
        server.api.post("/v1/auth/refresh", None, &json!({"refresh_token": bob.refresh_token})).await.expect("refresh");
    assert_eq!(status, 200, "{fresh}");
    let (status, _) = server.api.post("/v1/auth/logout", Some(&alice.access_token), &json!({})).await.expect("logout");
    assert_eq!(status, 200);
    drop(connection);
    let logged = "the server logs the closed connection before it stops";
    common::let_time_pass(std::time::Duration::from_millis(500), logged).await;
    drop(server);

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.lines().count() > 100,
        "trace logging is on (else this test proves nothing): {} lines",
        text.lines().count()
    );
    assert!(text.contains("/v1/ws") && text.contains("/v1/auth/refresh"), "the requests were logged");
    let secrets = [
        ("alice's access token", alice.access_token.as_str()),
        ("alice's refresh token", alice.refresh_token.as_str()),
        ("bob's access token", bob.access_token.as_str()),
        ("bob's refresh token", bob.refresh_token.as_str()),
        ("the refreshed access token", fresh["access_token"].as_str().expect("token")),
        ("the refreshed refresh token", fresh["refresh_token"].as_str().expect("token")),
    ];
    assert!(!text.contains("lavender-owl-4471"), "a message's content is in the log");
    for (what, secret) in secrets {
        // A JWT's signature (its last part) alone is enough to give it away.
        let tail = secret.rsplit('.').next().unwrap_or(secret);
        let tail = &tail[tail.len().saturating_sub(24)..];
        assert!(
            !text.contains(tail),
            "{what} is in the log: {}",
            text.lines().find(|line| line.contains(tail)).unwrap_or("")
        );
    }
}
