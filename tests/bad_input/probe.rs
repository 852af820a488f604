//! Sends one input and tells what the server made of it: refused with a
//! code, accepted, or the connection closed.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use missive_client::{Api, Connection};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Frames answered by a frame carrying their `req`.
const ANSWERED: [&str; 8] =
    ["send", "forward", "edit", "delete", "react", "share_keys", "subscribe_presence", "reauth"];

/// The `req` of the frame sent after each input, answered in order with
/// nothing appended: its answer marks where the input's inline answers end
/// (a plain ping would not, since an input may be a ping too).
const MARK: &str = "probe-mark";

/// The answers those frames get.
const ANSWERS: [&str; 7] = ["sent", "forwarded", "done", "shared", "subscribed", "reauthed", "error"];

#[derive(Debug)]
pub enum Outcome {
    Refused(String),
    Accepted(String),
    /// The connection closed: `<close code> <reason>`.
    Closed(String),
    /// A 5xx answer.
    Failed(String),
}

/// Sends `bytes` as a text frame (invalid UTF-8 too), then a marker frame;
/// reads until the marker's answer and, for a frame that is answered,
/// until its answer.
pub async fn frame(connection: &mut Connection, bytes: &[u8]) -> Outcome {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let req = parsed.as_ref().and_then(|value| value.get("req")).and_then(Value::as_str).map(str::to_string);
    let kind = parsed.as_ref().and_then(|value| value.get("type")).and_then(Value::as_str).unwrap_or("");
    // Frames of these types get an answer, with their `req` if they had a
    // string one, also when they had none; it may come after the pong.
    let answered = ANSWERED.contains(&kind)
        && parsed.as_ref().is_some_and(|value| value["req"].is_string() || value.get("req").is_none());
    let message = match std::str::from_utf8(bytes) {
        Ok(text) => Message::text(text.to_string()),
        Err(_) => Message::Frame(Frame::message(Bytes::copy_from_slice(bytes), OpCode::Data(Data::Text), true)),
    };
    if connection.socket.send(message).await.is_err()
        || connection
            .send_json(&serde_json::json!({"type": "subscribe_presence", "req": MARK, "users": []}))
            .await
            .is_err()
    {
        return Outcome::Closed(leftovers(connection).await);
    }
    let (mut ponged, mut refused, mut answer) = (false, None::<String>, None::<String>);
    while !ponged || (answered && refused.is_none() && answer.is_none()) {
        let next = match tokio::time::timeout(Duration::from_secs(20), connection.socket.next()).await {
            Err(_) => panic!("no answer to {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])),
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<Value>(&text).expect("frames are JSON"),
            Ok(Some(Ok(Message::Close(close)))) => return Outcome::Closed(closing(close)),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => return Outcome::Closed(format!("no close frame ({error})")),
            Ok(None) => return Outcome::Closed("no close frame".into()),
        };
        let of_this = next.get("req").is_none() || next.get("req").and_then(Value::as_str) == req.as_deref();
        match next["type"].as_str() {
            Some("subscribed") if next["req"] == MARK => ponged = true,
            Some("error") if of_this && refused.is_none() => {
                refused = Some(next["code"].as_str().unwrap_or("<no code>").to_string())
            }
            Some(other) if ANSWERS.contains(&other) && next.get("req").and_then(Value::as_str) == req.as_deref() => {
                answer = Some(other.to_string())
            }
            _ => {}
        }
    }
    match refused {
        Some(code) => Outcome::Refused(code),
        None => Outcome::Accepted(answer.unwrap_or_else(|| if kind.is_empty() { "?".into() } else { kind.into() })),
    }
}

/// How the server closed: `<code> <reason>` of its close frame.
fn closing(close: Option<CloseFrame>) -> String {
    match close {
        Some(close) => format!("{} {}", u16::from(close.code), close.reason),
        None => "a close frame without a code".into(),
    }
}

/// The close frame a connection that failed to send still holds.
async fn leftovers(connection: &mut Connection) -> String {
    while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(2), connection.socket.next()).await {
        match next {
            Ok(Message::Close(close)) => return closing(close),
            Ok(_) => continue,
            Err(error) => return format!("no close frame ({error})"),
        }
    }
    "no close frame".into()
}

/// An HTTP request with a raw body; refused is a 4xx with a JSON `code`.
pub async fn http(api: &Api, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Outcome {
    let verb = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = api.http.request(verb, format!("{}{}", api.base, path));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status >= 500 {
        return Outcome::Failed(format!("{method} {path}: {status} {text}"));
    }
    if status < 400 {
        return Outcome::Accepted(format!("{status}"));
    }
    let code = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|body| body.pointer("/error/code").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("<{status} without a code: {}>", &text[..text.len().min(200)]));
    Outcome::Refused(code)
}
