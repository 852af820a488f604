//! Uploads: completed, refused with stable codes, expired, stalled, capped per user.

use super::*;

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
