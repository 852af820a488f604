//! The transport: TLS, the signing-key checks at start, silent sockets,
//! trusted proxies and per-account allowances.

use super::*;

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
