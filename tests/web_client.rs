//! The web client beyond a 1:1 chat, in real Chromium: the gateway serves
//! it (headers), a browser and `missive chat` converse both ways and agree
//! on the security code, a group of two browsers and one terminal with
//! receipts, edits, reactions and deletes, and a 5,000-message chat that
//! pages and windows instead of loading everything. Embedded mode (the
//! Kafka-mode browser test is web_chat.rs).

mod common;

use common::Server;
use common::browser::{run_scenario, web_dir};
use serde_json::json;

#[tokio::test]
async fn the_gateway_serves_the_web_client_with_its_headers() {
    let server = Server::start_embedded_with(&["--web-dir", &web_dir()]).await;
    let http = reqwest::Client::new();
    let page = http.get(&server.api.base).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(header("content-type").starts_with("text/html"), "{:?}", page.headers());
    assert!(header("content-security-policy").contains("script-src 'self' 'wasm-unsafe-eval'"), "{:?}", page.headers());
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-frame-options"), "DENY");
    let html = page.text().await.expect("body");
    let script = html.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script").to_string();
    assert!(script.starts_with("/assets/"), "the app is served locally, no CDN: {script}");
    let asset = http.get(format!("{}{script}", server.api.base)).send().await.expect("asset");
    assert_eq!(asset.status(), 200);
    assert!(asset.headers()["cache-control"].to_str().unwrap_or_default().contains("immutable"));
    let missing = http.get(format!("{}/assets/nothing.js", server.api.base)).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    let escape = http.get(format!("{}/../Cargo.toml", server.api.base)).send().await.expect("traversal");
    assert_eq!(escape.status(), 404, "nothing outside the client's directory");
    // The API answers browsers of any origin (bearer tokens, no cookies).
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/keys/claim", server.api.base))
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,missive-redirect")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 200);
    assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap_or_default().contains("authorization"));
}

#[tokio::test]
async fn a_browser_and_missive_chat_converse_and_a_group_of_three_talks_with_receipts() {
    let server =
        Server::start_with_env(&[("MISSIVE_ALLOW_PLAINTEXT", "false".into()), ("MISSIVE_WEB_DIR", web_dir())]).await;
    let result = run_scenario(&server, &server.api.base, "group", &[]).await;
    assert_eq!(result["security_code"].as_str().map(str::len), Some(71), "{result}");
}

#[tokio::test]
async fn a_chat_of_5000_messages_pages_and_windows_as_you_scroll() {
    const SENDERS: usize = 5;
    const EACH: usize = 1000;
    let server = Server::start_with_env(&[("MISSIVE_WEB_DIR", web_dir())]).await;
    let reader = server.register("+14155557301", "seed").await;
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        senders.push(server.register(&format!("+1415555740{n}"), "sender").await);
    }
    let mut members: Vec<String> = senders[1..].iter().map(|sender| sender.user_id.clone()).collect();
    members.push(reader.user_id.clone());
    let body = json!({"name": "Long history", "members": members});
    let (status, group) = server.api.post("/v1/groups", Some(&senders[0].access_token), &body).await.expect("group");
    assert_eq!(status, 200, "{group}");
    let group = group["conversation_id"].as_str().expect("id").to_string();
    // Each sender sends its thousand in turn, numbered in the chat's order.
    for (n, sender) in senders.iter().enumerate() {
        let mut connection = server.connect(sender).await;
        for batch in 0..EACH / 200 {
            for i in 0..200 {
                let index = n * EACH + batch * 200 + i;
                let frame = json!({"type": "send", "req": format!("r{index}"), "to": {"group": group},
                    "client_msg_id": format!("m{index}"), "content": format!("m{index}")});
                connection.send_json(&frame).await.expect("send");
            }
            let last = format!("r{}", n * EACH + batch * 200 + 199);
            common::until(&mut connection, "the batch's sends", |frame| frame["req"] == last.as_str()).await;
        }
    }
    let result = run_scenario(&server, &server.api.base, "scroll", &[("READER_PHONE", "+14155557301".into())]).await;
    println!("5,000-message chat: {result}");
    assert!(result["loaded"].as_u64().expect("loaded") < 1250, "{result}");
}
