//! Media uploads from outside: ask for a slot, PUT the bytes to the URL
//! given, complete, fetch; and every way of getting it wrong refused with
//! a stable code and nothing stored. Embedded mode stores media in a local
//! directory behind the gateway's own signed URLs; Kafka mode in a real
//! S3 server (SeaweedFS, started here) behind presigned URLs.

#[path = "../common/mod.rs"]
mod common;
mod messages;
mod uploads;

use std::time::Duration;

use common::{
    S3, Server, WAIT, absolute, code_of, count_messages_from, kafka_mode, messages_from, put_bytes, put_with_headers,
    request, sha256_hex, slot, upload,
};
use missive_infra::objects::{Objects, ObjectsConfig};
use serde_json::{Value, json};

/// A server and a view of the object storage it writes to.
struct MediaServer {
    server: Server,
    objects: Objects,
    /// The S3 server of Kafka mode (stopped when dropped).
    _s3: Option<S3>,
}

async fn media_server(env: &[(&str, String)]) -> MediaServer {
    if !kafka_mode() {
        let server = Server::start_with_env(env).await;
        let root = server.dir.path().join("data").join("media");
        let objects = Objects::open(&ObjectsConfig::Local { root }).expect("local objects");
        return MediaServer { server, objects, _s3: None };
    }
    let s3 = S3::start().await;
    let mut env: Vec<(&str, String)> = env.to_vec();
    env.extend(s3.env());
    let server = Server::start_with_env(&env).await;
    MediaServer { server, objects: s3.objects(), _s3: Some(s3) }
}

impl MediaServer {
    /// Every stored object: completed media and upload staging.
    async fn stored(&self) -> Vec<String> {
        let mut keys = self.objects.list("media").await.expect("list media");
        keys.extend(self.objects.list("uploads").await.expect("list uploads"));
        keys
    }
}

async fn start_upload(server: &Server, token: &str, kind: &str, content_type: &str, bytes: &[u8]) -> (u16, Value) {
    let body = json!({"kind": kind, "content_type": content_type, "size": bytes.len(), "sha256": sha256_hex(bytes)});
    server.api.post("/v1/media/uploads", Some(token), &body).await.expect("upload start")
}

/// GETs `path` as `token`, following 307s to the user's gateway; a 302 is
/// followed to its signed URL and gives the bytes there.
async fn fetch(server: &Server, token: &str, path: &str) -> Result<Vec<u8>, (u16, Value)> {
    let mut url = format!("{}{path}", server.api.base);
    for _ in 0..3 {
        let response = server.api.http.get(&url).bearer_auth(token).send().await.expect("download");
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|value| value.to_str().ok()).map(str::to_owned);
        match (status, location) {
            (307, Some(location)) => url = location,
            (302, Some(location)) => {
                let fetched = server.api.http.get(absolute(server, &location)).send().await.expect("fetch");
                assert_eq!(fetched.status().as_u16(), 200, "the signed URL serves");
                return Ok(fetched.bytes().await.expect("bytes").to_vec());
            }
            _ => return Err((status, response.json().await.unwrap_or(Value::Null))),
        }
    }
    panic!("more than two redirects for {path}");
}

/// Fetches until `ready` holds for the outcome (read models of other gateways lag).
async fn fetch_until(
    server: &Server,
    token: &str,
    path: &str,
    what: &str,
    ready: impl Fn(&Result<Vec<u8>, (u16, Value)>) -> bool,
) -> Result<Vec<u8>, (u16, Value)> {
    common::eventually(what, Duration::from_secs(20), async || {
        let outcome = fetch(server, token, path).await;
        if ready(&outcome) { Ok(outcome) } else { Err(outcome.err()) }
    })
    .await
}
