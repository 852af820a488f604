//! Media uploads from outside: ask for a slot, PUT the bytes to the URL
//! given, complete, fetch; and every way of getting it wrong refused with
//! a stable code and nothing stored.

mod common;

use common::{Server, code_of};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn absolute(server: &Server, url: &str) -> String {
    if url.starts_with("http") { url.to_string() } else { format!("{}{url}", server.api.base) }
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

/// Every file under the media directory of an embedded server.
fn stored_files(server: &Server) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, found) } else { found.push(path) }
        }
    }
    let mut found = Vec::new();
    walk(&server.dir.path().join("data").join("media"), &mut found);
    found
}

#[tokio::test]
async fn an_upload_completes_and_only_its_owner_fetches_it_through_a_signed_url() {
    let server = Server::start().await;
    let alice = server.register("+14155558001", "a").await;
    let eve = server.register("+14155558002", "e").await;
    let photo: Vec<u8> = (0..200_000u32).map(|index| (index % 251) as u8).collect();

    let (status, slot) = start_upload(&server, &alice.access_token, "image", "image/jpeg", &photo).await;
    assert_eq!(status, 200, "{slot}");
    let media_id = slot["media_id"].as_str().expect("media id").to_string();
    let upload_url = slot["upload_url"].as_str().expect("upload url").to_string();
    assert!(slot["expires_at"].as_i64().expect("expiry") <= common::now_ms() + 15 * 60 * 1000);
    assert!(!upload_url.contains("jpeg") && upload_url.contains(&media_id), "server-made URL: {upload_url}");

    // Completing before the bytes are there is refused.
    let complete = format!("/v1/media/uploads/{media_id}/complete");
    let (status, body) = server.api.post(&complete, Some(&alice.access_token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (409, Some("not_uploaded")), "{body}");

    let (status, body) = put_bytes(&server, &upload_url, photo.clone()).await;
    assert_eq!(status, 200, "{body}");
    // The URL is single-use: a second PUT is refused.
    let (status, body) = put_bytes(&server, &upload_url, photo.clone()).await;
    assert_eq!((status, code_of(&body)), (409, Some("already_uploaded")), "{body}");
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
    // Stored under a server-made key: media/{user}/{yyyy-mm}/{id}.
    let files = stored_files(&server);
    assert_eq!(files.len(), 1, "{files:?}");
    let path = files[0].to_string_lossy().into_owned();
    assert!(path.contains(&format!("media/{}/", alice.user_id)) && path.ends_with(&media_id), "{path}");

    // Download: a redirect to a signed URL that serves the bytes.
    let response = server
        .api
        .http
        .get(format!("{}/v1/media/{media_id}", server.api.base))
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().expect("location").to_string();
    let fetched = server.api.http.get(absolute(&server, &location)).send().await.expect("fetch");
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/jpeg");
    assert_eq!(fetched.bytes().await.expect("bytes").to_vec(), photo);
    // A tampered signature or object is refused.
    let tampered = location.replace("sig=", "sig=0");
    let (status, body) = {
        let response = server.api.http.get(absolute(&server, &tampered)).send().await.expect("fetch");
        (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
    };
    assert_eq!((status, code_of(&body)), (403, Some("bad_signature")), "{body}");
    let other_expiry = location.replacen("expires=", "expires=9", 1);
    let response = server.api.http.get(absolute(&server, &other_expiry)).send().await.expect("fetch");
    assert_eq!(response.status().as_u16(), 403, "a changed expiry breaks the signature");
    // Someone else's media is not found for Eve.
    let (status, body) = server.api.get(&format!("/v1/media/{media_id}"), Some(&eve.access_token)).await.expect("get");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
}

#[tokio::test]
async fn bad_uploads_are_refused_with_stable_codes_and_nothing_stays_stored() {
    let server = Server::start_with_env(&[("MISSIVE_MEDIA_DAILY_BYTES", "3000000".into())]).await;
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
    let (_, slot) = start_upload(&server, token, "voice", "audio/ogg", &small).await;
    let url = slot["upload_url"].as_str().expect("url").to_string();
    let mut larger = small.clone();
    larger.extend_from_slice(b" and more");
    let (status, body) = put_bytes(&server, &url, larger).await;
    assert_eq!((status, code_of(&body)), (413, Some("too_large")), "{body}");
    // Different bytes of the declared size: stored, then refused at completion and removed.
    let mut wrong = small.clone();
    wrong[0] ^= 1;
    let (status, body) = put_bytes(&server, &url, wrong).await;
    assert_eq!(status, 200, "{body}");
    let complete = format!("/v1/media/uploads/{}/complete", slot["media_id"].as_str().expect("id"));
    let (status, body) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (422, Some("hash_mismatch")), "{body}");
    // Fewer bytes than declared.
    let (_, slot) = start_upload(&server, token, "voice", "audio/ogg", &small).await;
    let (status, _) = put_bytes(&server, slot["upload_url"].as_str().expect("url"), small[..5].to_vec()).await;
    assert_eq!(status, 200);
    let complete = format!("/v1/media/uploads/{}/complete", slot["media_id"].as_str().expect("id"));
    let (status, body) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
    assert_eq!((status, code_of(&body)), (422, Some("size_mismatch")), "{body}");
    assert!(stored_files(&server).is_empty(), "refused uploads leave nothing: {:?}", stored_files(&server));

    // A forged or altered upload URL writes nothing.
    let (_, slot) = start_upload(&server, token, "voice", "audio/ogg", &small).await;
    let url = slot["upload_url"].as_str().expect("url");
    for forged in
        [url.replace("sig=", "sig=f"), url.replacen("expires=", "expires=1", 1), url.replace("/put?", "/get?")]
    {
        let (status, body) = put_bytes(&server, &forged, small.clone()).await;
        assert!(status == 403 || status == 405 || status == 404, "{forged}: {status} {body}");
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
    assert!(stored_files(&server).is_empty(), "{:?}", stored_files(&server));

    // The daily quota (3,000,000 bytes here) counts granted slots.
    let big = vec![7u8; 1_400_000];
    let (status, _) = start_upload(&server, token, "document", "application/pdf", &big).await;
    assert_eq!(status, 200);
    let (status, _) = start_upload(&server, token, "document", "application/pdf", &big).await;
    assert_eq!(status, 200);
    let (status, body) = start_upload(&server, token, "document", "application/pdf", &big).await;
    assert_eq!((status, code_of(&body)), (429, Some("quota_exceeded")), "{body}");
}
