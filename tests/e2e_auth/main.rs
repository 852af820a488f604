//! Authorization and auth hardening, black-box: the authorization matrix
//! (every endpoint and frame type x bad credentials), OTP brute force
//! against the attempt and rate limits, TLS, and the signing-key checks.

mod codes;
#[path = "../common/mod.rs"]
mod common;
mod credentials;
mod matrix;
mod transport;

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
