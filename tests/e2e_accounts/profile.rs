//! Profiles and contacts: names, pictures and icons, contact sync limits.

use super::*;

#[tokio::test]
async fn contact_sync_is_capped_per_request_and_rate_limited_per_account() {
    let server = Server::start().await;
    let account = server.register("+14155552701", "phone").await;
    let too_many: Vec<String> = (0..1001).map(|n| contact_hash(&format!("+1415666{n:04}"))).collect();
    let (status, body) = server
        .api
        .post("/v1/contacts/sync", Some(&account.access_token), &json!({"hashes": too_many}))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("too_many_contacts")), "{body:.200}");
    let page: Vec<String> = too_many[..1000].to_vec();
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let (status, body) = server
            .api
            .post("/v1/contacts/sync", Some(&account.access_token), &json!({"hashes": page}))
            .await
            .expect("test step");
        statuses.push(status);
        if status == 429 {
            assert_eq!(code_of(&body), Some("rate_limited"));
            assert!(body["error"]["retry_after"].as_u64().is_some_and(|seconds| seconds > 0), "{body}");
        }
    }
    assert!(statuses[..24].iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(statuses[24], 429, "the 25th sync of the day is refused");
    let (status, body) = server.api.get("/v1/contacts", Some(&account.access_token)).await.expect("test step");
    assert_eq!((status, body["contacts"].as_array().map(Vec::len)), (200, Some(0)), "nobody there is registered");
}

/// Names others see refuse control and bidirectional override characters
/// (a name that reorders the text around it can pose as someone else).
#[tokio::test]
async fn names_refuse_control_and_bidirectional_override_characters() {
    let server = Server::start().await;
    let ann = server.register("+14155552501", "a").await;
    let bob = server.register("+14155552502", "b").await;
    for (field, text) in [
        ("display_name", "Bob\u{202E}gnp.exe"),
        ("display_name", "A\u{2067}B"),
        ("about", "line\nbreak"),
        ("about", "bell\u{7}"),
    ] {
        let (status, body) =
            server.api.put("/v1/profile", Some(&ann.access_token), &json!({ field: text })).await.expect("profile");
        assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{field}={text:?}: {body}");
    }
    let (status, body) = server
        .api
        .put("/v1/profile", Some(&ann.access_token), &json!({"display_name": "Ann ✓", "about": "שלום world"}))
        .await
        .expect("profile");
    assert_eq!(status, 200, "ordinary names in any script pass: {body}");
    let (_, own) = server.api.get("/v1/profile", Some(&ann.access_token)).await.expect("profile");
    assert_eq!(own["display_name"], "Ann ✓", "nothing refused was stored: {own}");
    let (status, body) = server
        .api
        .post("/v1/groups", Some(&ann.access_token), &json!({"name": "team\u{202E}", "members": [bob.user_id]}))
        .await
        .expect("group");
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "{body}");
}

#[tokio::test]
async fn profile_pictures_and_group_icons_are_the_callers_own_completed_uploads() {
    let server = Server::start().await;
    let alice = server.register("+14155552901", "a").await;
    let bob = server.register("+14155552902", "b").await;
    let bobs_picture = profile_picture(&server, &bob).await;
    let alices_picture = profile_picture(&server, &alice).await;
    let bytes = b"a message photo";
    let message_photo =
        common::upload(&server, &alice.access_token, common::slot("image", "image/png", bytes), bytes).await;
    let refused = |value: &str| json!({"picture": value});
    for (picture, why) in [
        ("https://evil.example/track.png", "free text"),
        (bobs_picture.as_str(), "someone else's upload"),
        (message_photo.as_str(), "an upload made for a message"),
        ("0123456789abcdef0123456789abcdef", "no such upload"),
    ] {
        let (status, body) =
            server.api.put("/v1/profile", Some(&alice.access_token), &refused(picture)).await.expect("test step");
        assert_eq!((status, code_of(&body)), (400, Some("invalid_media")), "{why}: {body}");
    }
    let (status, body) =
        server.api.put("/v1/profile", Some(&alice.access_token), &refused(&alices_picture)).await.expect("test step");
    assert_eq!((status, body["picture"].as_str()), (200, Some(alices_picture.as_str())), "{body}");
    let (status, body) =
        server.api.put("/v1/profile", Some(&alice.access_token), &refused("")).await.expect("test step");
    assert_eq!(status, 200, "an empty picture removes it: {body}");

    // Group icons: the same rule, at creation and on change.
    let create = json!({"name": "g", "members": [bob.user_id], "icon": alices_picture});
    let (status, body) = server.api.post("/v1/groups", Some(&alice.access_token), &create).await.expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("invalid_media")), "a profile picture is no group icon: {body}");
    let create = json!({"name": "g", "members": [bob.user_id]});
    let (status, group) = server.api.post("/v1/groups", Some(&alice.access_token), &create).await.expect("test step");
    assert_eq!(status, 200, "{group}");
    let group_id = group["conversation_id"].as_str().expect("group id");
    let (status, body) = server
        .api
        .request("PATCH", &format!("/v1/groups/{group_id}"), Some(&alice.access_token), Some(&json!({"icon": "x"})))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("invalid_media")), "{body}");
    let mut slot = common::slot("image", "image/png", bytes);
    slot["purpose"] = json!("group_icon");
    let icon = common::upload(&server, &alice.access_token, slot, bytes).await;
    let (status, body) = server
        .api
        .request("PATCH", &format!("/v1/groups/{group_id}"), Some(&alice.access_token), Some(&json!({"icon": icon})))
        .await
        .expect("test step");
    assert_eq!(status, 200, "{body}");
}
