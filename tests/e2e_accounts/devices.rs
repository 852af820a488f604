//! Devices and sessions: listing, removal, refresh rotation, logout, PINs.

use super::*;

#[tokio::test]
async fn devices_are_listed_and_a_removed_device_is_cut_off_everywhere() {
    let server = Server::start().await;
    let phone = server.register("+14155552001", "phone").await;
    let laptop = server.register("+14155552001", "laptop").await;
    let (status, body) = server.api.get("/v1/devices", Some(&phone.access_token)).await.expect("devices");
    assert_eq!(status, 200, "{body}");
    let devices = body["devices"].as_array().expect("list");
    assert_eq!(devices.len(), 2, "{body}");
    let current: Vec<&Value> = devices.iter().filter(|device| device["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["device_id"], phone.device_id.as_str());
    assert!(
        devices.iter().any(|device| device["name"] == "laptop" && device["device_id"] == laptop.device_id.as_str())
    );

    let mut laptop_ws = server.connect(&laptop).await;
    let (status, body) = server
        .api
        .delete(&format!("/v1/devices/{}", laptop.device_id), Some(&phone.access_token))
        .await
        .expect("delete");
    assert_eq!(status, 200, "{body}");
    // Its open connection is told and closed at once.
    let frames = laptop_ws
        .collect_until(WAIT, |frames| frames.iter().any(|frame| frame["code"] == "device_removed"))
        .await
        .expect("device_removed frame");
    assert!(frames.iter().any(|frame| frame["type"] == "error"));
    assert!(laptop_ws.next_frame(WAIT).await.expect("close").is_none(), "the connection closes");
    // Its tokens no longer work, though still well signed and unexpired.
    let (status, body) = server.api.get("/v1/profile", Some(&laptop.access_token)).await.expect("profile");
    assert_eq!((status, code_of(&body)), (401, Some("device_removed")), "{body}");
    assert!(Connection::open(&server.ws_url, &laptop.access_token, None).await.is_err(), "hello refused");
    let (status, body) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": laptop.refresh_token}))
        .await
        .expect("refresh");
    assert_eq!(status, 401, "{body}");
    // The remaining device is untouched; an unknown device is a 404.
    let (status, body) = server.api.get("/v1/devices", Some(&phone.access_token)).await.expect("devices");
    assert_eq!((status, body["devices"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    let (status, body) = server
        .api
        .delete(&format!("/v1/devices/{}", laptop.device_id), Some(&phone.access_token))
        .await
        .expect("again");
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    let server = Server::start().await;
    let account = server.register("+14155552101", "phone").await;
    let (status, first) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": account.refresh_token}))
        .await
        .expect("refresh");
    assert_eq!(status, 200, "{first}");
    assert_ne!(first["refresh_token"], account.refresh_token.as_str(), "rotated");
    let access = first["access_token"].as_str().expect("access");
    assert_eq!(server.api.get("/v1/profile", Some(access)).await.expect("profile").0, 200);
    let (status, second) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": first["refresh_token"]}))
        .await
        .expect("refresh again");
    assert_eq!(status, 200, "{second}");

    // Replaying the first (used) token: someone copied it. The session ends for everyone.
    let (status, body) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": account.refresh_token}))
        .await
        .expect("reuse");
    assert_eq!((status, code_of(&body)), (401, Some("refresh_token_reused")), "{body}");
    let newest = second["access_token"].as_str().expect("access");
    let (status, body) = server.api.get("/v1/profile", Some(newest)).await.expect("profile");
    assert_eq!((status, code_of(&body)), (401, Some("device_removed")), "{body}");
    let (status, _) = server
        .api
        .post("/v1/auth/refresh", None, &json!({"refresh_token": second["refresh_token"]}))
        .await
        .expect("refresh");
    assert_eq!(status, 401, "the newest refresh token died with the session");
    for junk in ["", "rt1.5.abc", "nonsense", &format!("rt1.{}.{}", account.user_id, "0".repeat(64))] {
        let (status, body) =
            server.api.post("/v1/auth/refresh", None, &json!({"refresh_token": junk})).await.expect("junk");
        assert_eq!((status, code_of(&body)), (401, Some("invalid_token")), "{junk}: {body}");
    }
}

#[tokio::test]
async fn logout_ends_the_device_and_keeps_the_account() {
    let server = Server::start().await;
    let phone = server.register("+14155552201", "phone").await;
    let tablet = server.register("+14155552201", "tablet").await;
    let (status, body) =
        server.api.post("/v1/auth/logout", Some(&tablet.access_token), &json!({})).await.expect("logout");
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.api.get("/v1/devices", Some(&tablet.access_token)).await.expect("devices");
    assert_eq!(status, 401);
    let (status, body) = server.api.get("/v1/devices", Some(&phone.access_token)).await.expect("devices");
    assert_eq!((status, body["devices"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
}

#[tokio::test]
async fn a_pin_is_required_at_verify_once_set() {
    let server = Server::start().await;
    let phone = "+14155552601";
    let account = server.register(phone, "phone").await;
    let (status, body) = server
        .api
        .put("/v1/account/pin", Some(&account.access_token), &json!({"pin": "12a456"}))
        .await
        .expect("test step");
    assert_eq!((status, code_of(&body)), (400, Some("invalid_pin")), "{body}");
    let (status, body) = server
        .api
        .put("/v1/account/pin", Some(&account.access_token), &json!({"pin": "246810"}))
        .await
        .expect("test step");
    assert_eq!(status, 200, "{body}");
    // The log holds a salted, memory-hard hash of the PIN, never the PIN or a fast hash of it.
    let args = ["replay", "events.user", "--type", "PinChanged", "--key", &account.user_id];
    let lines = server.tool_until(&args, "the PIN change", |lines| !lines.is_empty()).await;
    let stored = lines[0]["value"]["pin_hash"].as_str().unwrap_or_default();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "an argon2id PHC string: {}", lines[0]);
    assert!(!stored.contains("246810"), "{stored}");

    let (status, _) = server.api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step");
    assert_eq!(status, 202);
    let code = missive_client::code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");
    let verify = |pin: Option<&str>| {
        let mut body = json!({"phone": phone, "code": code, "device_name": "new"});
        if let Some(pin) = pin {
            body["pin"] = json!(pin);
        }
        body
    };
    let (status, body) = server.api.post("/v1/auth/verify", None, &verify(None)).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("pin_required")), "{body}");
    let (status, body) = server.api.post("/v1/auth/verify", None, &verify(Some("000000"))).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_pin")), "{body}");
    let (status, body) = server.api.post("/v1/auth/verify", None, &verify(Some("246810"))).await.expect("test step");
    assert_eq!(status, 200, "the same code works with the right PIN: {body}");
    assert_eq!(body["user_id"], account.user_id.as_str());

    // Changing or removing the PIN needs the current one (a stolen session
    // cannot lock the owner out), and guessing it is rate limited.
    let token = Some(body["access_token"].as_str().expect("token").to_string());
    let token = token.as_deref();
    let (status, body) = server.api.put("/v1/account/pin", token, &json!({"pin": "111111"})).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("pin_required")), "{body}");
    let (status, body) = server.api.delete("/v1/account/pin", token).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("pin_required")), "{body}");
    let wrong = json!({"pin": "111111", "current_pin": "000000"});
    let (status, body) = server.api.put("/v1/account/pin", token, &wrong).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_pin")), "{body}");
    let change = json!({"pin": "135790", "current_pin": "246810"});
    let (status, body) = server.api.put("/v1/account/pin", token, &change).await.expect("test step");
    assert_eq!(status, 200, "{body}");
    let remove = json!({"current_pin": "135790"});
    let (status, body) =
        server.api.request("DELETE", "/v1/account/pin", token, Some(&remove)).await.expect("test step");
    assert_eq!(status, 200, "{body}");
    server.register(phone, "after").await;

    // Five tries of the current PIN an hour (all used above): then even the right one waits.
    let (status, _) = server.api.put("/v1/account/pin", token, &json!({"pin": "246810"})).await.expect("test step");
    assert_eq!(status, 200, "no PIN at the time: nothing to try");
    let right = json!({"pin": "111111", "current_pin": "246810"});
    let (status, body) = server.api.put("/v1/account/pin", token, &right).await.expect("test step");
    assert_eq!((status, code_of(&body)), (429, Some("rate_limited")), "{body}");
}
