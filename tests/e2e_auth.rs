//! Authorization and auth hardening, black-box: the authorization matrix
//! (every endpoint and frame type x bad credentials), OTP brute force
//! against the attempt and rate limits, TLS, and the signing-key checks.

mod common;

use std::process::Stdio;
use std::sync::Arc;

use common::{Server, WAIT};
use futures::{SinkExt, StreamExt};
use missive_client::{Account, Api, code_from_sink_file};
use missive_gateway::auth::{AUDIENCE, Claims, DEV_JWT_SECRET, ISSUER};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn code_of(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("test step").as_secs() as i64
}

fn token(account: &Account, secret: &[u8], algorithm: jsonwebtoken::Algorithm, exp: i64) -> String {
    token_with(account, secret, algorithm, |claims| claims.exp = exp)
}

/// A token for `account`'s device signed with `secret`, its claims adjusted by `adjust`.
fn token_with(
    account: &Account,
    secret: &[u8],
    algorithm: jsonwebtoken::Algorithm,
    adjust: impl Fn(&mut Claims),
) -> String {
    let mut claims = Claims {
        sub: account.user_id.clone(),
        dev: account.device_id.clone(),
        iat: now() - 7200,
        nbf: now() - 7200,
        exp: now() + 3600,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
    };
    adjust(&mut claims);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// The same claims with `"alg":"none"` and no signature.
fn unsigned(account: &Account) -> String {
    use base64_url::encode;
    let header = encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({"sub": account.user_id, "dev": account.device_id, "iat": now(), "nbf": now() - 5,
        "exp": now() + 3600, "iss": ISSUER, "aud": AUDIENCE});
    format!("{header}.{}.", encode(&claims.to_string()))
}

mod base64_url {
    /// Unpadded base64url, enough to hand-craft a token.
    pub fn encode(text: &str) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

async fn appended(server: &Server) -> u64 {
    let text =
        reqwest::get(format!("{}/metrics", server.api.base)).await.expect("test step").text().await.expect("test step");
    text.lines()
        .find_map(|line| line.strip_prefix("missive_log_append_seconds_count "))
        .and_then(|count| count.trim().parse().ok())
        .expect("append counter")
}

/// Sends `frames` on a fresh socket and returns what came back before the close.
async fn ws_exchange(ws_url: &str, frames: &[Value]) -> Vec<Value> {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("connect");
    for frame in frames {
        if socket.send(Message::text(frame.to_string())).await.is_err() {
            break;
        }
    }
    let mut answers = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, socket.next()).await {
        match message {
            Message::Text(text) => answers.push(serde_json::from_str(&text).expect("json")),
            Message::Close(_) => break,
            _ => {}
        }
    }
    answers
}

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
async fn guessing_codes_is_cut_off_by_attempt_and_rate_limits() {
    let server = Server::start().await;
    let phone = "+14155553101";
    let otp = |phone: String| {
        let api = server.api.clone();
        async move { api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step") }
    };
    let verify = |code: String| {
        let api = server.api.clone();
        async move { api.post("/v1/auth/verify", None, &json!({"phone": phone, "code": code})).await.expect("test step") }
    };
    assert_eq!(otp(phone.into()).await.0, 202);
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");
    let wrong = |code: &str| format!("{:06}", (code.parse::<u32>().expect("test step") + 1) % 1_000_000);
    // Five wrong guesses end this address's tries: the right code no longer works from here.
    for _ in 0..5 {
        let (status, body) = verify(wrong(&code)).await;
        assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "{body}");
    }
    let (status, body) = verify(code.clone()).await;
    assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "no more tries after 5 wrong ones: {body}");
    // Ten verify attempts per number per hour, whatever the codes.
    assert_eq!(otp(phone.into()).await.0, 202);
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");
    for _ in 0..4 {
        assert_eq!(verify(wrong(&code)).await.0, 401);
    }
    let (status, body) = verify(code.clone()).await;
    assert_eq!((status, code_of(&body)), (429, Some("rate_limited")), "the 11th attempt in an hour: {body}");
    let retry_after = body["error"]["retry_after"].as_u64().expect("retry_after");
    assert!((1..=360).contains(&retry_after), "one attempt comes back every 6 minutes: {retry_after}");
    // Five codes per number per hour.
    for _ in 0..3 {
        assert_eq!(otp(phone.into()).await.0, 202);
    }
    let (status, body) = otp(phone.into()).await;
    assert_eq!((status, code_of(&body)), (429, Some("rate_limited")), "the 6th code in an hour: {body}");
    assert!(body["error"]["retry_after"].as_u64().is_some_and(|seconds| (1..=720).contains(&seconds)), "{body}");
    // A hundred code requests per client address per hour, across numbers.
    // The address is checked first, so the request refused for the number
    // above counted against it too (and a refused one stores nothing).
    let mut granted = 6;
    for n in 0..200 {
        let (status, body) = otp(format!("+1415700{n:04}")).await;
        if status == 429 {
            assert!(body["error"]["message"].as_str().expect("test step").contains("address"), "{body}");
            break;
        }
        assert_eq!(status, 202, "{body}");
        granted += 1;
    }
    assert_eq!(granted, 100, "code requests from one address in an hour");
}

#[tokio::test]
async fn tls_serves_https_and_wss() {
    let dir = Arc::new(tempfile::tempdir().expect("test step"));
    let (cert, key, ca) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("ca.pem"));
    // A test CA and a server certificate it signs (webpki refuses a CA
    // certificate used as the server's own).
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("openssl (Debian package openssl) makes the test certificates");
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("test step");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=missive-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let data = dir.path().join("data").display().to_string();
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start_with(
        dir.clone(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--sms-sink",
            &sink,
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
        ],
        &[],
    )
    .await;
    assert!(server.api.base.starts_with("https://"), "{}", server.api.base);
    let pem = std::fs::read(&ca).expect("test step");
    let api = Api::with_builder(
        &server.api.base,
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("test step")),
    );
    let (status, body) = api.get("/healthz", None).await.expect("https");
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    assert!(server.api.get("/healthz", None).await.is_err(), "a client that does not trust the certificate fails");
    let sms = server.sms_file();
    let account = api
        .register("+14155553201", "phone", |phone| async move { code_from_sink_file(&sms, &phone, WAIT).await })
        .await
        .expect("register over https");

    // WSS with a client trusting the test certificate.
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(certificate.expect("test step")).expect("test step");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("test step")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = server.api.base.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("test step");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("test step");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS handshake");
    let url = format!("wss://{address}/v1/ws");
    let (mut socket, _) = tokio_tungstenite::client_async(url, tls).await.expect("wss upgrade");
    socket
        .send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string()))
        .await
        .expect("test step");
    let welcome =
        tokio::time::timeout(WAIT, socket.next()).await.expect("test step").expect("test step").expect("test step");
    let welcome: Value = serde_json::from_str(welcome.to_text().expect("test step")).expect("test step");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["user_id"], account.user_id.as_str());
}

/// Runs `missive serve` with these extra arguments and environment; returns
/// (started, stderr) — stopping it once it listens.
async fn try_serve(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("test step");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_missive"));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data")).args(args);
    command.env_remove("MISSIVE_JWT_SECRET").env_remove("MISSIVE_DEV");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child =
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().expect("test step");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("test step"));
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    let started =
        tokio::time::timeout(WAIT, stdout.read_line(&mut line)).await.is_ok_and(|read| read.is_ok_and(|n| n > 0))
            && line.starts_with("listening on");
    let _ = child.start_kill();
    let output = child.wait_with_output().await.expect("test step");
    (started, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn the_server_refuses_the_development_key_and_short_keys_outside_dev_mode() {
    let (started, stderr) = try_serve(&[], &[("MISSIVE_JWT_SECRET", DEV_JWT_SECRET)]).await;
    assert!(!started, "started with the development key");
    assert!(stderr.contains("development key"), "{stderr}");
    let (started, stderr) = try_serve(&["--jwt-secret", "short"], &[]).await;
    assert!(!started);
    assert!(stderr.contains("at least 32"), "{stderr}");
    let (started, stderr) = try_serve(&["--dev"], &[]).await;
    assert!(started, "--dev starts with the built-in key: {stderr}");
    let (started, stderr) = try_serve(&[], &[]).await;
    assert!(started, "the default generates a random key per data directory: {stderr}");
}

#[tokio::test]
async fn codes_expire_and_numbers_are_never_stored_in_clear() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let data = dir.path().join("data").display().to_string();
    let server = Server::start_with(
        dir.clone(),
        &["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink, "--otp-ttl-seconds", "1"],
        &[],
    )
    .await;
    let phone = "+14155553301";
    let (status, body) = server.api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("otp");
    assert_eq!((status, &body["expires_in"]), (202, &json!(1)), "{body}");
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("code");
    common::let_time_pass(std::time::Duration::from_millis(2500), "the code lives 1 s").await;
    let (status, body) =
        server.api.post("/v1/auth/verify", None, &json!({"phone": phone, "code": code})).await.expect("verify");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "an expired code: {body}");

    // Register two users (fast enough for the 1 s codes), sync one from the other.
    let alice = server.register(phone, "phone").await;
    let bob_phone = "+14155553302";
    let bob = server.register(bob_phone, "phone").await;
    let hash = missive_gateway::auth::contact_hash(bob_phone);
    let (status, body) = server
        .api
        .post("/v1/contacts/sync", Some(&alice.access_token), &json!({"hashes": [hash]}))
        .await
        .expect("sync");
    assert_eq!((status, &body["users"][0]["user_id"]), (200, &json!(bob.user_id)), "{body}");
    // Neither the numbers nor their unkeyed hashes (reversible by trying
    // every number) are anywhere in the store: log, state, WAL, credentials.
    let mut needles: Vec<Vec<u8>> = vec![phone.into(), bob_phone.into(), hash.clone().into_bytes()];
    needles.push(missive_gateway::auth::contact_hash(phone).into_bytes());
    let mut scanned = 0;
    let mut control = false;
    for entry in walk(&dir.path().join("data").join("store")) {
        let bytes = std::fs::read(&entry).expect("read store file");
        scanned += bytes.len();
        // Control: the scan does see what the store holds (the user id, in JSON state).
        control |= bytes.windows(alice.user_id.len()).any(|window| window == alice.user_id.as_bytes());
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle.as_slice()),
                "{} holds {}",
                entry.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert!(scanned > 10_000, "the store was read ({scanned} bytes)");
    assert!(control, "the scan finds the user id, so it would find a number");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
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

/// `curl` with these arguments: status and JSON body (`-w` appends the status).
async fn curl(args: &[&str]) -> (u16, Value) {
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl (infra/scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.parse().expect("status"), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The README's tour with plain curl, whose `-d` declares a form: JSON
/// bodies are read as JSON whatever the declared type, and each refusal is
/// reported as itself (not as `405` from some other route).
#[tokio::test]
async fn the_readme_tour_works_with_plain_curl_and_errors_are_what_they_say() {
    let server = Server::start().await;
    let base = server.api.base.clone();
    let phone = "+14155558301";
    let (status, body) =
        curl(&["-XPOST", &format!("{base}/v1/auth/otp"), "-d", &json!({"phone": phone}).to_string()]).await;
    assert_eq!((status, &body["expires_in"]), (202, &json!(300)), "{body}");
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("code");
    let verify = json!({"phone": phone, "code": code, "device_name": "laptop"}).to_string();
    let (status, tokens) = curl(&["-XPOST", &format!("{base}/v1/auth/verify"), "-d", &verify]).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().expect("access token");
    let bearer = format!("Authorization: Bearer {token}");
    let (status, body) =
        curl(&["-XPUT", &format!("{base}/v1/profile"), "-H", &bearer, "-d", r#"{"display_name":"Ann"}"#]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&[&format!("{base}/v1/profile"), "-H", &bearer]).await;
    assert_eq!((status, &body["display_name"]), (200, &json!("Ann")), "{body}");
    // Each refusal is the one it is.
    let (status, body) = curl(&["-XPOST", &format!("{base}/v1/auth/otp"), "-d", "phone=+14155558301"]).await;
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "a form is not JSON: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|message| message.contains("JSON")), "{body}");
    let (status, body) = curl(&["-XDELETE", &format!("{base}/v1/auth/otp")]).await;
    assert_eq!((status, code_of(&body)), (405, Some("method_not_allowed")), "{body}");
    let (status, body) = curl(&[&format!("{base}/v1/nowhere")]).await;
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
    let large = server.dir.path().join("large.json");
    std::fs::write(&large, format!(r#"{{"phone":"{}"}}"#, "9".repeat(300_000))).expect("large body");
    let (status, body) =
        curl(&["-XPOST", &format!("{base}/v1/auth/otp"), "-d", &format!("@{}", large.display())]).await;
    assert_eq!((status, code_of(&body)), (413, Some("too_large")), "{body}");
}

/// A code is used up atomically: two correct verifies of it at once
/// register one device; the other is told the code is no longer valid.
#[tokio::test]
async fn two_simultaneous_correct_verifies_of_one_code_register_one_device() {
    let server = Server::start().await;
    // The race is timing-dependent: many rounds make a lost one all but certain to show.
    for round in 0..20 {
        let phone = format!("+141555584{round:02}");
        let (status, _) = server.api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("otp");
        assert_eq!(status, 202);
        let code = code_from_sink_file(&server.sms_file(), &phone, WAIT).await.expect("code");
        let body = json!({"phone": phone, "code": code, "device_name": "twin"});
        let (first, second) = tokio::join!(
            server.api.post("/v1/auth/verify", None, &body),
            server.api.post("/v1/auth/verify", None, &body)
        );
        let (first, second) = (first.expect("verify"), second.expect("verify"));
        let mut outcomes =
            [(first.0, code_of(&first.1).map(str::to_string)), (second.0, code_of(&second.1).map(str::to_string))];
        outcomes.sort();
        assert_eq!(
            outcomes,
            [(200, None), (401, Some("invalid_code".to_string()))],
            "round {round}: {first:?} {second:?}"
        );
        let token = [&first.1, &second.1].into_iter().find_map(|body| body["access_token"].as_str()).expect("token");
        let (status, devices) = server.api.get("/v1/devices", Some(token)).await.expect("devices");
        assert_eq!((status, devices["devices"].as_array().map(Vec::len)), (200, Some(1)), "{devices}");
    }
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
async fn nobody_else_can_keep_a_numbers_owner_from_registering() {
    let server = Server::start().await;
    let phone = "+14155553801";
    // The owner and an attacker on other addresses (127.0.0.0/8 is all loopback).
    let from = |address: &str| {
        let builder = reqwest::Client::builder().local_address(address.parse::<std::net::IpAddr>().expect("address"));
        Api::with_builder(&server.api.base, builder)
    };
    let (owner, attacker) = (from("127.0.0.1"), from("127.0.0.2"));
    let (status, _) = owner.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step");
    assert_eq!(status, 202);
    let owners_code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");

    // The attacker asks for another code: it goes to the owner's phone, and
    // the one the owner is typing stays good.
    let (status, _) = attacker.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step");
    assert_eq!(status, 202);
    // ... and guesses until its own tries, then its verify allowance, are used up.
    let wrong = format!("{:06}", (owners_code.parse::<u32>().expect("code") + 500_000) % 1_000_000);
    let mut answers = Vec::new();
    for _ in 0..12 {
        let body = json!({"phone": phone, "code": wrong, "device_name": "attacker"});
        let (status, body) = attacker.post("/v1/auth/verify", None, &body).await.expect("test step");
        answers.push((status, code_of(&body).map(str::to_string)));
    }
    assert!(
        answers[..10].iter().all(|(status, code)| (*status, code.as_deref()) == (401, Some("invalid_code"))),
        "{answers:?}"
    );
    assert!(
        answers[10..].iter().all(|(status, code)| (*status, code.as_deref()) == (429, Some("rate_limited"))),
        "{answers:?}"
    );

    // The owner registers with the code it got first.
    let body = json!({"phone": phone, "code": owners_code, "device_name": "phone"});
    let (status, body) = owner.post("/v1/auth/verify", None, &body).await.expect("test step");
    assert_eq!(status, 200, "the owner is not locked out: {body}");
    // The codes are used up by that registration.
    let sms = std::fs::read_to_string(server.sms_file()).expect("sink");
    let second_code =
        sms.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).next_back().expect("line");
    let body = json!({"phone": phone, "code": second_code["code"], "device_name": "later"});
    let (status, body) = owner.post("/v1/auth/verify", None, &body).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "{body}");
}

#[tokio::test]
async fn an_account_flooding_read_marks_is_refused_past_its_allowance_and_stays_connected() {
    let server = Server::start().await;
    let alice = server.register("+14155553701", "a").await;
    let bob = server.register("+14155553702", "b").await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    alice_ws.send_message("m", &bob.user_id, "c-m", "hello").await.expect("send");
    let frames = bob_ws.collect_until(WAIT, |frames| common::count_messages_from(frames, &alice.user_id) == 1).await;
    let frames = frames.expect("delivered");
    let message = frames.iter().find(|frame| frame["type"] == "event").expect("event");
    let conversation = message["event"]["conversation_id"].as_str().expect("conversation").to_string();
    // 300 read marks at once: the first 100 (the burst) are taken, then 20
    // a second; the rest are refused with a retry time, and the connection stays.
    for _ in 0..300 {
        bob_ws.send_json(&json!({"type": "read", "conversation_id": conversation, "up_to": 1})).await.expect("read");
    }
    bob_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    let frames = bob_ws.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "pong")).await.expect("pong");
    let refused: Vec<&Value> = frames.iter().filter(|f| f["code"] == "rate_limited").collect();
    assert!((100..=200).contains(&refused.len()), "200 past the burst, some refilled: {}", refused.len());
    assert!(refused.iter().all(|f| f["retry_after"].as_u64() == Some(1)), "{refused:?}");
    // Another account is not affected.
    alice_ws.send_json(&json!({"type": "read", "conversation_id": conversation, "up_to": 1})).await.expect("read");
    alice_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
    let frames = alice_ws.collect_until(WAIT, |frames| frames.iter().any(|f| f["type"] == "pong")).await.expect("pong");
    assert!(frames.iter().all(|f| f["code"] != "rate_limited"), "{frames:?}");
}

#[tokio::test]
async fn thousands_of_silent_sockets_from_one_address_keep_nobody_else_out() {
    // The server starts with 1,024 open files allowed and raises itself to
    // 8,192; one address may hold 1,000 connections.
    let server = Server::start_with_nofile(&["--max-connections-per-address", "1000"], 1024, 8192).await;
    let bob = server.register("+14155553601", "b").await;
    let mut bob_ws = server.connect(&bob).await;
    rlimit::increase_nofile_limit(u64::MAX).expect("the test's own open-files limit");
    let target: std::net::SocketAddr = server.api.base.trim_start_matches("http://").parse().expect("server address");
    // 5,000 connections from 127.0.0.2 that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..5_000 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.2:0".parse().expect("address")).expect("bind");
        if let Ok(Ok(stream)) = tokio::time::timeout(std::time::Duration::from_secs(2), socket.connect(target)).await {
            silent.push(stream);
        }
    }
    assert!(silent.len() >= 1_000, "the flood connected: {}", silent.len());
    // Meanwhile a new client registers and chats.
    let alice = server.register("+14155553602", "a").await;
    let mut alice_ws = server.connect(&alice).await;
    alice_ws.send_message("m", &bob.user_id, "c-m", "still here").await.expect("send");
    let frames = bob_ws.collect_until(WAIT, |frames| common::count_messages_from(frames, &alice.user_id) == 1).await;
    assert!(frames.is_ok(), "bob got the message during the flood");
    // The silent ones are closed: those over the cap at once, the others
    // after the 10 s header timeout.
    let mut buffer = [0u8; 1];
    let mut closed = 0;
    let mut seen = Vec::new();
    for stream in silent.iter_mut().step_by(250) {
        use tokio::io::AsyncReadExt;
        // End of stream or a reset: either way the server let go of it.
        let result = tokio::time::timeout(WAIT, stream.read(&mut buffer)).await;
        seen.push(format!("{result:?}"));
        if matches!(result, Ok(Ok(0) | Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, silent.len().div_ceil(250), "every sampled silent socket was closed: {seen:?}");
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_when_a_trusted_proxy_sends_it() {
    let flags = ["--trusted-proxy", "127.0.0.2", "--otp-per-address-per-hour", "2"];
    let server = Server::start_embedded_with(&flags).await;
    let from = |address: &str| {
        let builder = reqwest::Client::builder().local_address(address.parse::<std::net::IpAddr>().expect("address"));
        Api::with_builder(&server.api.base, builder)
    };
    let (direct, proxy) = (from("127.0.0.1"), from("127.0.0.3"));
    let trusted = from("127.0.0.2");
    let otp = |api: &Api, n: u32, forwarded: &'static str| {
        let (http, url) = (api.http.clone(), format!("{}/v1/auth/otp", api.base));
        async move {
            let response = http
                .post(url)
                .header("x-forwarded-for", forwarded)
                .json(&json!({"phone": format!("+1415554{n:04}")}))
                .send()
                .await
                .expect("otp");
            response.status().as_u16()
        }
    };
    // An untrusted peer cannot pick its address: every request counts against 127.0.0.1.
    let statuses =
        [otp(&direct, 1, "10.0.0.1").await, otp(&direct, 2, "10.0.0.2").await, otp(&direct, 3, "10.0.0.3").await];
    assert_eq!(statuses, [202, 202, 429], "X-Forwarded-For from an untrusted peer is ignored");
    let statuses =
        [otp(&proxy, 4, "10.0.0.4").await, otp(&proxy, 5, "10.0.0.5").await, otp(&proxy, 6, "10.0.0.6").await];
    assert_eq!(statuses, [202, 202, 429], "only the configured proxy is trusted");
    // Through the trusted proxy each client has its own allowance; entries
    // left of what the proxy appended are the client's own and do not count.
    let statuses = [
        otp(&trusted, 7, "10.0.0.7").await,
        otp(&trusted, 8, "192.0.2.1, 10.0.0.7").await,
        otp(&trusted, 9, "10.0.0.7").await,
        otp(&trusted, 10, "10.0.0.8").await,
    ];
    assert_eq!(statuses, [202, 202, 429, 202], "X-Forwarded-For from the trusted proxy names the client");
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
