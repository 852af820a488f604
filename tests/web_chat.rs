//! The web client in real Chromium (headless, driven by playwright-core):
//! two people register in two browser contexts and chat both ways with
//! ticks, typing, presence and a quoted reply; one goes offline and comes
//! back to its backlog; sends made offline go out once, in order; a sealed
//! picture is sent and shown; a reload keeps the session and the keys; the
//! phone-sized layout. The server refuses plaintext. Both modes: in Kafka
//! mode the page comes from one gateway and Alice is served by another, so
//! her browser follows the redirects (`Missive-Redirect: manual`, 421) to it.

mod common;

use common::browser::{run_scenario, web_dir};
use common::{S3, Server, kafka_mode};

/// A phone number whose owner gateway is (or is not) the one at `base`.
async fn phone_served(server: &Server, base: &str, by_base: bool, from: u64) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    for n in from..from + 40 {
        let phone = format!("+1415555{n:04}");
        let answer = http
            .post(format!("{base}/v1/auth/otp"))
            .json(&serde_json::json!({"phone": phone}))
            .send()
            .await
            .expect("otp");
        if (answer.status().as_u16() == 202) == by_base {
            return phone;
        }
    }
    panic!(
        "no phone number among 40 is served {} {base} ({} gateways)",
        if by_base { "by" } else { "away from" },
        server.api.base
    );
}

#[tokio::test]
async fn two_people_chat_in_two_browsers_offline_and_back_a_picture_and_a_reload() {
    // In Kafka mode the gateways keep media on a shared S3 server, which the browser reaches directly.
    let s3 = if kafka_mode() { Some(S3::start().await) } else { None };
    let mut env = vec![("MISSIVE_ALLOW_PLAINTEXT", "false".to_string()), ("MISSIVE_WEB_DIR", web_dir())];
    env.extend(s3.iter().flat_map(S3::env));
    let server = Server::start_with_env(&env).await;
    let page = server.api.base.clone();
    let (alice, bob) = if kafka_mode() {
        (phone_served(&server, &page, false, 7100).await, phone_served(&server, &page, true, 7200).await)
    } else {
        ("+14155557001".to_string(), "+14155557002".to_string())
    };
    let result = run_scenario(&server, &page, "chat", &[("ALICE_PHONE", alice), ("BOB_PHONE", bob)]).await;
    let first_load = result["first_load_ms"].as_f64().expect("first load time");
    println!("first load to an interactive chat list: {first_load} ms");
    if kafka_mode() {
        assert_ne!(
            result["alice_base"],
            page.as_str(),
            "Alice's browser moved to the gateway that serves her: {result}"
        );
    }
    assert_eq!(result["bob_base"], page.as_str(), "{result}");
}
