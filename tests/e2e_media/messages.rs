//! Media in messages and profiles: who may fetch, thumbnails, the sweeper,
//! streamed downloads in bounded memory.

use super::*;

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

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const VCARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann Example\r\nTEL;TYPE=CELL:+14155550100\r\nEND:VCARD\r\n";

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
