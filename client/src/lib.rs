//! A small client of the Missive protocol over real sockets: registration,
//! HTTP calls and a WebSocket connection. Used by the end-to-end tests and
//! by `missive bench`.

pub mod crypto;
pub mod history;
pub mod keys;
pub mod media;
pub mod secure;

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as i64)
        .unwrap_or(0)
}

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Clone, Debug)]
pub struct Account {
    pub phone: String,
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// How often a long [`Connection::collect_more`] pings (the server's idle timeout is 60 s).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// HTTP side of a server at `base` (like `http://127.0.0.1:8080`).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api::with_builder(base, reqwest::Client::builder())
    }

    /// With a customised HTTP client (for example one trusting a test CA).
    pub fn with_builder(base: &str, builder: reqwest::ClientBuilder) -> Api {
        // Redirects are followed here, not by reqwest: it drops the
        // Authorization header when a redirect changes host or port, and
        // in Kafka mode a 307 points at another gateway.
        let http = builder.redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
        Api { base: base.trim_end_matches('/').to_string(), http }
    }

    /// Sends a request, repeating it (same method, headers and body) at
    /// the `Location` of a 307/308, up to three times.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut url = format!("{}{}", self.base, path);
        for _hop in 0..4 {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            if matches!(status, 307 | 308)
                && let Some(location) = response.headers().get("location").and_then(|value| value.to_str().ok())
            {
                url = location.to_string();
                continue;
            }
            return Ok((status, response.json().await.unwrap_or(Value::Null)));
        }
        bail!("more than three redirects for {path}")
    }

    /// POSTs JSON; returns status and body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// GETs a plain-text body (like `/metrics`).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self.http.get(format!("{}{}", self.base, path)).send().await?.error_for_status()?.text().await?)
    }

    /// Any method, for tables of calls.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        self.call(method, path, token, body).await
    }

    /// Registers `phone`: requests a code, reads it with `read_code`, verifies.
    pub async fn register<F, Fut>(&self, phone: &str, device_name: &str, read_code: F) -> anyhow::Result<Account>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<String>>,
    {
        let (status, body) = self.post("/v1/auth/otp", None, &json!({"phone": phone})).await?;
        if status != 202 {
            bail!("otp request answered {status}: {body}");
        }
        let code = read_code(phone.to_string()).await?;
        let (status, body) = self
            .post("/v1/auth/verify", None, &json!({"phone": phone, "code": code, "device_name": device_name}))
            .await?;
        if status != 200 {
            bail!("verify answered {status}: {body}");
        }
        let field =
            |name: &str| body[name].as_str().map(str::to_string).ok_or_else(|| anyhow!("verify: no {name} in {body}"));
        Ok(Account {
            phone: phone.to_string(),
            user_id: field("user_id")?,
            device_id: field("device_id")?,
            access_token: field("access_token")?,
            refresh_token: field("refresh_token")?,
        })
    }
}

/// Reads the newest code for `phone` from a `file:` SMS sink, waiting for it.
pub async fn code_from_sink_file(path: &std::path::Path, phone: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(text) = tokio::fs::read_to_string(path).await {
            let newest = text
                .lines()
                .rev()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|entry| entry["to"] == phone)
                .and_then(|entry| entry["code"].as_str().map(str::to_string));
            if let Some(code) = newest {
                return Ok(code);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no code for {phone} in {}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the WebSocket (before hello). The token also rides in the URL so
/// that, in Kafka mode, a gateway not serving this user answers the upgrade
/// with a 307 to the one that does; up to three redirects are followed.
pub async fn connect_socket(ws_url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut url = format!("{ws_url}?access_token={token}");
    for _hop in 0..4 {
        // tungstenite's default 128 KiB read buffer is zeroed on every read
        // (a third of the bench's CPU); larger frames still arrive whole.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
        match tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await {
            Ok((socket, _)) => return Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status().is_redirection() => {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| anyhow!("redirect without a Location"))?;
                url = location.replacen("http", "ws", 1);
            }
            Err(error) => return Err(anyhow::Error::new(error).context("websocket connect")),
        }
    }
    bail!("more than three redirects from {ws_url}")
}

/// A WebSocket connection after `welcome`.
pub struct Connection {
    pub socket: Socket,
    pub welcome: Value,
}

impl Connection {
    /// Connects to `ws_url` (like `ws://127.0.0.1:8080/v1/ws`) and says hello.
    /// Connects to `ws_url` (like `ws://127.0.0.1:8080/v1/ws`) and says hello.
    pub async fn open(ws_url: &str, token: &str, resume: Option<(&str, u64)>) -> anyhow::Result<Connection> {
        let mut socket = connect_socket(ws_url, token).await?;
        let mut hello = json!({"type": "hello", "token": token});
        if let Some((epoch, seq)) = resume {
            hello["resume"] = json!({"epoch": epoch, "seq": seq});
        }
        socket.send(Message::text(hello.to_string())).await?;
        let mut connection = Connection { socket, welcome: Value::Null };
        let welcome =
            connection.next_frame(Duration::from_secs(10)).await?.ok_or_else(|| anyhow!("closed before welcome"))?;
        if welcome["type"] != "welcome" {
            bail!("expected welcome, got {welcome}");
        }
        connection.welcome = welcome;
        Ok(connection)
    }

    pub async fn send_json(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.socket.send(Message::text(frame.to_string())).await?;
        Ok(())
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::text(text.to_string())).await?;
        Ok(())
    }

    /// The next JSON frame; `None` when the server closed; error on timeout.
    pub async fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<Option<Value>> {
        loop {
            let message =
                tokio::time::timeout(timeout, self.socket.next()).await.context("timed out waiting for a frame")?;
            match message {
                None => return Ok(None),
                Some(Err(_)) => return Ok(None),
                Some(Ok(Message::Text(text))) => return Ok(Some(serde_json::from_str(&text)?)),
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Frames that have already arrived, without waiting. Clients that send
    /// a burst should drain between sends: the server stops reading a
    /// connection that does not read (back-pressure).
    pub async fn drain_ready(&mut self) -> anyhow::Result<Vec<Value>> {
        let mut frames = Vec::new();
        while let Ok(message) = tokio::time::timeout(Duration::ZERO, self.socket.next()).await {
            match message {
                Some(Ok(Message::Text(text))) => frames.push(serde_json::from_str(&text)?),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            }
        }
        Ok(frames)
    }

    /// Frames until `done` says stop or the deadline passes.
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        done: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        self.collect_more(Vec::new(), timeout, done).await
    }

    /// Like [`Connection::collect_until`], starting from frames already collected.
    pub async fn collect_more(
        &mut self,
        mut frames: Vec<Value>,
        timeout: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        // A long wait sends pings, as a client does to keep its connection
        // (the server closes one that sends nothing for its idle timeout);
        // their pongs are not collected.
        let mut next_ping = tokio::time::Instant::now() + KEEPALIVE;
        let mut pings_out = 0usize;
        while !done(&frames) {
            let now = tokio::time::Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                bail!("deadline passed with {} frames collected", frames.len());
            }
            if now >= next_ping {
                self.send_json(&json!({"type": "ping"})).await?;
                pings_out += 1;
                next_ping = now + KEEPALIVE;
            }
            let wait = left.min(next_ping.saturating_duration_since(now)).max(Duration::from_millis(1));
            let Ok(frame) = tokio::time::timeout(wait, self.next_frame(left)).await else { continue };
            match frame? {
                Some(frame) if pings_out > 0 && frame["type"] == "pong" => pings_out -= 1,
                Some(frame) => frames.push(frame),
                None => bail!("connection closed after {} frames: {:?}", frames.len(), frames.last()),
            }
        }
        Ok(frames)
    }

    pub async fn send_message(
        &mut self,
        req: &str,
        to: &str,
        client_msg_id: &str,
        content: &str,
    ) -> anyhow::Result<()> {
        self.send_json(&json!({"type": "send", "req": req, "to": {"user": to}, "client_msg_id": client_msg_id, "content": content}))
            .await
    }

    pub async fn ack(&mut self, seq: u64) -> anyhow::Result<()> {
        self.send_json(&json!({"type": "ack", "seq": seq})).await
    }
}
