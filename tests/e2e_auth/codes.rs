//! Verification codes: guessing is cut off, codes expire and are used up
//! once, numbers are never stored in clear, the README's tour with curl.

use super::*;

#[tokio::test]
async fn guessing_codes_is_cut_off_by_attempt_and_rate_limits() {
    let server = Server::start().await;
    let phone = "+14155553101";
    let otp = |phone: String| {
        let api = server.api.clone();
        async move { api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step") }
    };
    let verify = |code: String| {
        let api = server.api.clone();
        async move { api.post("/v1/auth/verify", None, &json!({"phone": phone, "code": code})).await.expect("test step") }
    };
    assert_eq!(otp(phone.into()).await.0, 202);
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");
    let wrong = |code: &str| format!("{:06}", (code.parse::<u32>().expect("test step") + 1) % 1_000_000);
    // Five wrong guesses end this address's tries: the right code no longer works from here.
    for _ in 0..5 {
        let (status, body) = verify(wrong(&code)).await;
        assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "{body}");
    }
    let (status, body) = verify(code.clone()).await;
    assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "no more tries after 5 wrong ones: {body}");
    // Ten verify attempts per number per hour, whatever the codes.
    assert_eq!(otp(phone.into()).await.0, 202);
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");
    for _ in 0..4 {
        assert_eq!(verify(wrong(&code)).await.0, 401);
    }
    let (status, body) = verify(code.clone()).await;
    assert_eq!((status, code_of(&body)), (429, Some("rate_limited")), "the 11th attempt in an hour: {body}");
    let retry_after = body["error"]["retry_after"].as_u64().expect("retry_after");
    assert!((1..=360).contains(&retry_after), "one attempt comes back every 6 minutes: {retry_after}");
    // Five codes per number per hour.
    for _ in 0..3 {
        assert_eq!(otp(phone.into()).await.0, 202);
    }
    let (status, body) = otp(phone.into()).await;
    assert_eq!((status, code_of(&body)), (429, Some("rate_limited")), "the 6th code in an hour: {body}");
    assert!(body["error"]["retry_after"].as_u64().is_some_and(|seconds| (1..=720).contains(&seconds)), "{body}");
    // A hundred code requests per client address per hour, across numbers.
    // The address is checked first, so the request refused for the number
    // above counted against it too (and a refused one stores nothing).
    let mut granted = 6;
    for n in 0..200 {
        let (status, body) = otp(format!("+1415700{n:04}")).await;
        if status == 429 {
            assert!(body["error"]["message"].as_str().expect("test step").contains("address"), "{body}");
            break;
        }
        assert_eq!(status, 202, "{body}");
        granted += 1;
    }
    assert_eq!(granted, 100, "code requests from one address in an hour");
}

#[tokio::test]
async fn codes_expire_and_numbers_are_never_stored_in_clear() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
    let data = dir.path().join("data").display().to_string();
    let server = Server::start_with(
        dir.clone(),
        &["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink, "--otp-ttl-seconds", "1"],
        &[],
    )
    .await;
    let phone = "+14155553301";
    let (status, body) = server.api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("otp");
    assert_eq!((status, &body["expires_in"]), (202, &json!(1)), "{body}");
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("code");
    common::let_time_pass(std::time::Duration::from_millis(2500), "the code lives 1 s").await;
    let (status, body) =
        server.api.post("/v1/auth/verify", None, &json!({"phone": phone, "code": code})).await.expect("verify");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "an expired code: {body}");

    // Register two users (fast enough for the 1 s codes), sync one from the other.
    let alice = server.register(phone, "phone").await;
    let bob_phone = "+14155553302";
    let bob = server.register(bob_phone, "phone").await;
    let hash = missive_gateway::auth::contact_hash(bob_phone);
    let (status, body) = server
        .api
        .post("/v1/contacts/sync", Some(&alice.access_token), &json!({"hashes": [hash]}))
        .await
        .expect("sync");
    assert_eq!((status, &body["users"][0]["user_id"]), (200, &json!(bob.user_id)), "{body}");
    // Neither the numbers nor their unkeyed hashes (reversible by trying
    // every number) are anywhere in the store: log, state, WAL, credentials.
    let mut needles: Vec<Vec<u8>> = vec![phone.into(), bob_phone.into(), hash.clone().into_bytes()];
    needles.push(missive_gateway::auth::contact_hash(phone).into_bytes());
    let mut scanned = 0;
    let mut control = false;
    for entry in walk(&dir.path().join("data").join("store")) {
        let bytes = std::fs::read(&entry).expect("read store file");
        scanned += bytes.len();
        // Control: the scan does see what the store holds (the user id, in JSON state).
        control |= bytes.windows(alice.user_id.len()).any(|window| window == alice.user_id.as_bytes());
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle.as_slice()),
                "{} holds {}",
                entry.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert!(scanned > 10_000, "the store was read ({scanned} bytes)");
    assert!(control, "the scan finds the user id, so it would find a number");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A code is used up atomically: two correct verifies of it at once
/// register one device; the other is told the code is no longer valid.
#[tokio::test]
async fn two_simultaneous_correct_verifies_of_one_code_register_one_device() {
    let server = Server::start().await;
    // The race is timing-dependent: many rounds make a lost one all but certain to show.
    for round in 0..20 {
        let phone = format!("+141555584{round:02}");
        let (status, _) = server.api.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("otp");
        assert_eq!(status, 202);
        let code = code_from_sink_file(&server.sms_file(), &phone, WAIT).await.expect("code");
        let body = json!({"phone": phone, "code": code, "device_name": "twin"});
        let (first, second) = tokio::join!(
            server.api.post("/v1/auth/verify", None, &body),
            server.api.post("/v1/auth/verify", None, &body)
        );
        let (first, second) = (first.expect("verify"), second.expect("verify"));
        let mut outcomes =
            [(first.0, code_of(&first.1).map(str::to_string)), (second.0, code_of(&second.1).map(str::to_string))];
        outcomes.sort();
        assert_eq!(
            outcomes,
            [(200, None), (401, Some("invalid_code".to_string()))],
            "round {round}: {first:?} {second:?}"
        );
        let token = [&first.1, &second.1].into_iter().find_map(|body| body["access_token"].as_str()).expect("token");
        let (status, devices) = server.api.get("/v1/devices", Some(token)).await.expect("devices");
        assert_eq!((status, devices["devices"].as_array().map(Vec::len)), (200, Some(1)), "{devices}");
    }
}

#[tokio::test]
async fn nobody_else_can_keep_a_numbers_owner_from_registering() {
    let server = Server::start().await;
    let phone = "+14155553801";
    // The owner and an attacker on other addresses (127.0.0.0/8 is all loopback).
    let from = |address: &str| {
        let builder = reqwest::Client::builder().local_address(address.parse::<std::net::IpAddr>().expect("address"));
        Api::with_builder(&server.api.base, builder)
    };
    let (owner, attacker) = (from("127.0.0.1"), from("127.0.0.2"));
    let (status, _) = owner.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step");
    assert_eq!(status, 202);
    let owners_code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("test step");

    // The attacker asks for another code: it goes to the owner's phone, and
    // the one the owner is typing stays good.
    let (status, _) = attacker.post("/v1/auth/otp", None, &json!({"phone": phone})).await.expect("test step");
    assert_eq!(status, 202);
    // ... and guesses until its own tries, then its verify allowance, are used up.
    let wrong = format!("{:06}", (owners_code.parse::<u32>().expect("code") + 500_000) % 1_000_000);
    let mut answers = Vec::new();
    for _ in 0..12 {
        let body = json!({"phone": phone, "code": wrong, "device_name": "attacker"});
        let (status, body) = attacker.post("/v1/auth/verify", None, &body).await.expect("test step");
        answers.push((status, code_of(&body).map(str::to_string)));
    }
    assert!(
        answers[..10].iter().all(|(status, code)| (*status, code.as_deref()) == (401, Some("invalid_code"))),
        "{answers:?}"
    );
    assert!(
        answers[10..].iter().all(|(status, code)| (*status, code.as_deref()) == (429, Some("rate_limited"))),
        "{answers:?}"
    );

    // The owner registers with the code it got first.
    let body = json!({"phone": phone, "code": owners_code, "device_name": "phone"});
    let (status, body) = owner.post("/v1/auth/verify", None, &body).await.expect("test step");
    assert_eq!(status, 200, "the owner is not locked out: {body}");
    // The codes are used up by that registration.
    let sms = std::fs::read_to_string(server.sms_file()).expect("sink");
    let second_code =
        sms.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).next_back().expect("line");
    let body = json!({"phone": phone, "code": second_code["code"], "device_name": "later"});
    let (status, body) = owner.post("/v1/auth/verify", None, &body).await.expect("test step");
    assert_eq!((status, code_of(&body)), (401, Some("invalid_code")), "{body}");
}

/// The README's tour with plain curl, whose `-d` declares a form: JSON
/// bodies are read as JSON whatever the declared type, and each refusal is
/// reported as itself (not as `405` from some other route).
#[tokio::test]
async fn the_readme_tour_works_with_plain_curl_and_errors_are_what_they_say() {
    let server = Server::start().await;
    let base = server.api.base.clone();
    let phone = "+14155558301";
    let (status, body) =
        curl(&["-XPOST", &format!("{base}/v1/auth/otp"), "-d", &json!({"phone": phone}).to_string()]).await;
    assert_eq!((status, &body["expires_in"]), (202, &json!(300)), "{body}");
    let code = code_from_sink_file(&server.sms_file(), phone, WAIT).await.expect("code");
    let verify = json!({"phone": phone, "code": code, "device_name": "laptop"}).to_string();
    let (status, tokens) = curl(&["-XPOST", &format!("{base}/v1/auth/verify"), "-d", &verify]).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().expect("access token");
    let bearer = format!("Authorization: Bearer {token}");
    let (status, body) =
        curl(&["-XPUT", &format!("{base}/v1/profile"), "-H", &bearer, "-d", r#"{"display_name":"Ann"}"#]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&[&format!("{base}/v1/profile"), "-H", &bearer]).await;
    assert_eq!((status, &body["display_name"]), (200, &json!("Ann")), "{body}");
    // Each refusal is the one it is.
    let (status, body) = curl(&["-XPOST", &format!("{base}/v1/auth/otp"), "-d", "phone=+14155558301"]).await;
    assert_eq!((status, code_of(&body)), (400, Some("bad_request")), "a form is not JSON: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|message| message.contains("JSON")), "{body}");
    let (status, body) = curl(&["-XDELETE", &format!("{base}/v1/auth/otp")]).await;
    assert_eq!((status, code_of(&body)), (405, Some("method_not_allowed")), "{body}");
    let (status, body) = curl(&[&format!("{base}/v1/nowhere")]).await;
    assert_eq!((status, code_of(&body)), (404, Some("not_found")), "{body}");
    let large = server.dir.path().join("large.json");
    std::fs::write(&large, format!(r#"{{"phone":"{}"}}"#, "9".repeat(300_000))).expect("large body");
    let (status, body) =
        curl(&["-XPOST", &format!("{base}/v1/auth/otp"), "-d", &format!("@{}", large.display())]).await;
    assert_eq!((status, code_of(&body)), (413, Some("too_large")), "{body}");
}

/// `curl` with these arguments: status and JSON body (`-w` appends the status).
async fn curl(args: &[&str]) -> (u16, Value) {
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl (infra/scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.parse().expect("status"), serde_json::from_str(body).unwrap_or(Value::Null))
}
