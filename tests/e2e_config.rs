//! `missive serve` configuration: environment variables, flags winning over
//! them, and the SMS sinks.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Server, WAIT};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn the_environment_configures_the_server_and_flags_win_over_it() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let from_env = dir.path().join("env-sink.jsonl");
    let from_flag = dir.path().join("flag-sink.jsonl");
    let server = Server::start_with(
        dir.clone(),
        &["--sms-sink", &format!("file:{}", from_flag.display())],
        &[
            ("MISSIVE_LISTEN", "127.0.0.1:0".to_string()),
            ("MISSIVE_DATA_DIR", dir.path().join("data-from-env").display().to_string()),
            ("MISSIVE_SMS_SINK", format!("file:{}", from_env.display())),
        ],
    )
    .await;
    let (status, _) = server.api.post("/v1/auth/otp", None, &json!({"phone": "+14155558001"})).await.expect("otp");
    assert_eq!(status, 202);
    let code = missive_client::code_from_sink_file(&from_flag, "+14155558001", WAIT).await;
    assert!(code.is_ok(), "the --sms-sink flag wins over MISSIVE_SMS_SINK");
    assert!(!from_env.exists(), "the environment's sink is not used when the flag is given");
    assert!(dir.path().join("data-from-env").join("store").exists(), "MISSIVE_DATA_DIR chooses the data directory");
}

/// A one-request HTTP server that records the body it was POSTed.
async fn one_shot_webhook() -> (String, tokio::task::JoinHandle<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/sms", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request);
            if let Some(split) = text.find("\r\n\r\n") {
                let length = text[..split]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                    })
                    .and_then(|value| value.parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= split + 4 + length {
                    let body = &request[split + 4..split + 4 + length];
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.expect("respond");
                    assert!(text.starts_with("POST /sms"), "the sink POSTs: {text}");
                    return serde_json::from_slice(body).expect("JSON body");
                }
            }
            assert!(read > 0, "connection closed early");
        }
    });
    (url, task)
}

#[tokio::test]
async fn the_webhook_sink_posts_each_code_as_json() {
    let (url, received) = one_shot_webhook().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let data = dir.path().join("data").display().to_string();
    let server = Server::start_with(
        dir.clone(),
        &["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &format!("webhook:{url}")],
        &[],
    )
    .await;
    let (status, _) = server.api.post("/v1/auth/otp", None, &json!({"phone": "+14155558002"})).await.expect("otp");
    assert_eq!(status, 202);
    let body = tokio::time::timeout(Duration::from_secs(20), received).await.expect("webhook called").expect("task");
    assert_eq!(body["to"], "+14155558002");
    let code = body["code"].as_str().expect("code");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "six digits: {code}");
    let (status, verified) = server
        .api
        .post("/v1/auth/verify", None, &json!({"phone": "+14155558002", "code": code}))
        .await
        .expect("verify");
    assert_eq!(status, 200, "the posted code verifies: {verified}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout_and_ping_keeps_it_open() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let data = dir.path().join("data").display().to_string();
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let server = Server::start_with(
        dir.clone(),
        &["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink, "--ws-idle-timeout", "2"],
        &[],
    )
    .await;
    // Two devices of one account (a device's second connection would replace its first).
    let phone = server.register("+14155558003", "phone").await;
    let laptop = server.register("+14155558003", "laptop").await;
    let mut pinging = server.connect(&phone).await;
    // The server starts the silent connection's clock after this instant.
    let started = tokio::time::Instant::now();
    let mut silent = server.connect(&laptop).await;
    let mut closed_at = None;
    while started.elapsed() < Duration::from_secs(6) {
        pinging.send_json(&json!({"type": "ping"})).await.expect("ping");
        let pong = pinging.next_frame(WAIT).await.expect("pong").expect("the pinging connection stays open");
        assert_eq!(pong["type"], "pong");
        if closed_at.is_none()
            && let Ok(frame) = silent.next_frame(Duration::from_millis(500)).await
        {
            match frame {
                Some(frame) => assert_eq!(frame["code"], "idle_timeout", "the server says why it closes"),
                None => closed_at = Some(started.elapsed()),
            }
        }
    }
    let closed_at = closed_at.expect("the silent connection was closed");
    assert!(closed_at >= Duration::from_secs(2), "not before the timeout: {closed_at:?}");
}

/// `missive serve` with these flags, expected to refuse to start: its stderr.
async fn refused_start(flags: &[&str]) -> String {
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_missive")).arg("serve").args(flags).output(),
    )
    .await
    .expect("the server gave up within the deadline")
    .expect("run missive serve");
    assert!(!output.status.success(), "the server started: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Secrets stay the owner's: the data directory is created 0700 and the
/// secrets file 0600; a secrets or key file others may read is refused
/// with the command that fixes it; `--jwt-secret-file` keeps the signing
/// key out of process lists.
#[tokio::test]
async fn secrets_are_owner_only_and_a_readable_secrets_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let data = dir.path().join("data");
    let key_file = dir.path().join("jwt.key");
    std::fs::write(&key_file, format!("{}\n", "k".repeat(40))).expect("key file");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let (data_flag, key_flag) = (data.display().to_string(), key_file.display().to_string());
    let flags = ["--listen", "127.0.0.1:0", "--data-dir", &data_flag, "--sms-sink", &sink];
    let server = Server::start_with(dir.clone(), &[&flags[..], &["--jwt-secret-file", &key_flag]].concat(), &[]).await;
    let account = server.register("+14155558101", "phone").await;
    // The access token is signed with the key from the file.
    let key = jsonwebtoken::DecodingKey::from_secret("k".repeat(40).as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(&account.access_token, &key, &validation);
    assert!(claims.is_ok(), "signed with the file's key: {claims:?}");
    assert_eq!(mode(&data), 0o700, "the data directory is the owner's only");
    assert_eq!(mode(&data.join("secrets.json")), 0o600, "the secrets file is the owner's only");
    drop(server);

    std::fs::set_permissions(data.join("secrets.json"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let stderr = refused_start(&flags).await;
    assert!(stderr.contains("chmod 600") && stderr.contains("secrets.json"), "the fix is named: {stderr}");
    std::fs::set_permissions(data.join("secrets.json"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let stderr = refused_start(&[&flags[..], &["--jwt-secret-file", &key_flag]].concat()).await;
    assert!(stderr.contains("chmod 600") && stderr.contains("jwt.key"), "the fix is named: {stderr}");
}

/// The `log` SMS sink writes codes into the server log: a gateway refuses
/// it outside `--dev` (naming the sinks to use instead), while `missive
/// serve`'s out-of-the-box default keeps it with a loud warning.
#[tokio::test]
async fn the_log_sms_sink_needs_dev_except_the_one_process_default_which_warns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("gateway").display().to_string();
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_missive"))
            .args(["gateway", "--kafka", "127.0.0.1:1", "--schema-registry", "http://127.0.0.1:1"])
            .args(["--data-dir", &data, "--sms-sink", "log"])
            .env_remove("MISSIVE_DEV")
            .output(),
    )
    .await
    .expect("the gateway gave up within the deadline")
    .expect("run missive gateway");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a gateway started with the log sink");
    assert!(stderr.contains("--sms-sink file:PATH or webhook:URL"), "the alternatives are named: {stderr}");

    let data = dir.path().join("serve").display().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .env_remove("MISSIVE_SMS_SINK")
        .env_remove("MISSIVE_DEV")
        .env("MISSIVE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start missive serve");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let warned = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ONE-TIME CODES ARE WRITTEN TO THIS LOG") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(warned, Ok(true), "missive serve warns that codes go to its log");
}

/// `--metrics-listen` serves `/metrics` on its own address only: the
/// public port answers it `404`, and the metrics port serves nothing else.
#[tokio::test]
async fn metrics_move_off_the_public_port_with_metrics_listen() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let data = dir.path().join("data").display().to_string();
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let metrics_address = format!("127.0.0.1:{port}");
    let flags =
        ["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink, "--metrics-listen", &metrics_address];
    let server = Server::start_with(dir.clone(), &flags, &[]).await;
    let (status, body) = server.api.get("/metrics", None).await.expect("public /metrics");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let metrics = reqwest::get(format!("http://{metrics_address}/metrics")).await.expect("metrics port");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("missive_log_records_appended_total"), "Prometheus text: {}", &text[..text.len().min(300)]);
    let other = reqwest::get(format!("http://{metrics_address}/healthz")).await.expect("metrics port");
    assert_eq!(other.status(), 404, "the metrics port serves metrics only");
    let (status, _) = server.api.get("/healthz", None).await.expect("public port");
    assert_eq!(status, 200);
}
