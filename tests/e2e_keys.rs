//! The key directory of end-to-end encryption, black-box: devices upload
//! keys made and signed by vodozemac; malformed and forged keys are refused
//! and persist nothing; concurrent claims hand each one-time key out once,
//! then the fallback key, also across a `kill -9`. Runs in both modes.

mod common;

use std::collections::BTreeSet;

use common::{Server, code_of};
use futures::future::join_all;
use missive_client::keys::DeviceKeys;
use missive_client::{Account, Api};
use serde_json::{Value, json};

async fn upload(server: &Server, account: &Account, body: &Value) -> (u16, Value) {
    server.api.put("/v1/keys", Some(&account.access_token), body).await.expect("PUT /v1/keys")
}

async fn claim(api: &Api, by: &Account, owner: &Account) -> (u16, Value) {
    let body = json!({"user_id": owner.user_id, "device_id": owner.device_id});
    api.post("/v1/keys/claim", Some(&by.access_token), &body).await.unwrap_or_else(|error| {
        // A claim in flight when the server died: the client sees no answer.
        (0, json!({"error": {"code": "no_answer", "message": format!("{error:#}")}}))
    })
}

/// Registers `count` users who will claim keys (numbers `+1415555<base + i>`).
async fn claimers(server: &Server, base: u32, count: u32) -> Vec<Account> {
    let mut accounts = Vec::new();
    for index in 0..count {
        accounts.push(server.register(&format!("+1415555{:04}", base + index), "claimer").await);
    }
    accounts
}

/// `claimers` each claim `per_claimer` keys of `owner` at once; the answers.
async fn claim_all(api: &Api, claimers: &[Account], owner: &Account, per_claimer: usize) -> Vec<(u16, Value)> {
    let claims = claimers.iter().flat_map(|by| (0..per_claimer).map(move |_| claim(api, by, owner)));
    join_all(claims).await
}

fn key_id(answer: &Value) -> String {
    answer["one_time_key"]["key_id"].as_str().expect("a key id").to_string()
}

#[tokio::test]
async fn uploaded_keys_are_listed_and_each_one_time_key_is_claimed_once_then_the_fallback() {
    let server = Server::start().await;
    let owner = server.register("+14155557001", "phone").await;
    let mut keys = DeviceKeys::new();
    let body = keys.upload_body(&owner.user_id, &owner.device_id, 20);
    let (status, answer) = upload(&server, &owner, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["one_time_keys"], 20);

    let claimers = claimers(&server, 7100, 5).await;
    let (status, listed) = server
        .api
        .get(&format!("/v1/users/{}/devices", owner.user_id), Some(&claimers[0].access_token))
        .await
        .expect("devices");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["devices"][0]["device_id"], owner.device_id.as_str());
    assert_eq!(listed["devices"][0]["identity_keys"], keys.identity_json(), "{listed}");

    // 5 devices x 10 claims at once: 20 distinct one-time keys, 30 fallbacks.
    let answers = claim_all(&server.api, &claimers, &owner, 10).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let (fallbacks, one_time): (Vec<&Value>, Vec<&Value>) =
        answers.iter().map(|(_, answer)| answer).partition(|answer| answer["fallback"] == true);
    let distinct: BTreeSet<String> = one_time.iter().map(|answer| key_id(answer)).collect();
    assert_eq!((one_time.len(), distinct.len(), fallbacks.len()), (20, 20, 30), "each one-time key once");
    let uploaded: BTreeSet<String> = body["one_time_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["key_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(distinct, uploaded, "the keys handed out are the ones uploaded");
    assert!(fallbacks.iter().all(|answer| answer["one_time_key"] == body["fallback_key"]), "{fallbacks:?}");
    for (_, answer) in &answers {
        assert_eq!(answer["identity_keys"], keys.identity_json());
        assert!(
            DeviceKeys::verify_signed(&keys.ed25519(), &owner.user_id, &owner.device_id, &answer["one_time_key"]),
            "a claimed key carries its device's signature: {answer}"
        );
    }

    // The owner heard twice: when fewer than ten were left, and when none were.
    let mut owner_ws = server.connect(&owner).await;
    let frames = common::until(&mut owner_ws, "the low-key notices", |frame| {
        frame["event"]["kind"] == "keys_low" && frame["event"]["remaining"] == 0
    })
    .await;
    let notices: Vec<&Value> = frames.iter().filter(|frame| frame["event"]["kind"] == "keys_low").collect();
    let remaining: Vec<Option<u64>> = notices.iter().map(|frame| frame["event"]["remaining"].as_u64()).collect();
    assert_eq!(remaining, vec![Some(9), Some(0)], "{notices:?}");
    assert!(notices.iter().all(|frame| frame["event"]["device_id"] == owner.device_id.as_str()), "{notices:?}");

    // The same device past its allowance is refused, and nothing is claimed.
    let (status, refused) = claim(&server.api, &claimers[0], &owner).await;
    assert_eq!((status, code_of(&refused)), (429, Some("rate_limited")), "{refused}");
}

#[tokio::test]
async fn malformed_and_forged_keys_are_refused_and_persist_nothing() {
    let server = Server::start().await;
    let owner = server.register("+14155557201", "phone").await;
    let claimer = server.register("+14155557202", "claimer").await;
    let mut keys = DeviceKeys::new();
    let good = keys.upload_body(&owner.user_id, &owner.device_id, 3);
    let with = |path: &[&str], value: Value| {
        let mut body = good.clone();
        let mut slot = &mut body;
        for part in path {
            slot = match part.parse::<usize>() {
                Ok(index) => &mut slot[index],
                Err(_) => &mut slot[*part],
            };
        }
        *slot = value;
        body
    };
    // Signed by another device's key: the server checks with the uploader's.
    let mut other = DeviceKeys::new();
    let forged = other.upload_body(&owner.user_id, &owner.device_id, 3);
    let cases = [
        ("not base64", with(&["identity_keys", "curve25519"], json!("%%%"))),
        ("a short key", with(&["identity_keys", "ed25519"], json!("AAAA"))),
        ("a one-time key that is not a key", with(&["one_time_keys", "0", "key"], json!("bm90IGEga2V5"))),
        ("an empty key id", with(&["one_time_keys", "1", "key_id"], json!(""))),
        (
            "a signature of something else",
            with(&["one_time_keys", "2", "signature"], forged["one_time_keys"][0]["signature"].clone()),
        ),
        ("the fallback key signed by another device", with(&["fallback_key"], forged["fallback_key"].clone())),
        ("keys of another device's identity", with(&["identity_keys"], forged["identity_keys"].clone())),
    ];
    for (what, body) in cases {
        let (status, answer) = upload(&server, &owner, &body).await;
        assert_eq!((status, code_of(&answer)), (400, Some("invalid_key")), "{what}: {answer}");
    }
    let many: Vec<Value> = (0..101).map(|_| good["one_time_keys"][0].clone()).collect();
    let (status, answer) = upload(&server, &owner, &with(&["one_time_keys"], json!(many))).await;
    assert_eq!((status, code_of(&answer)), (400, Some("too_large")), "{answer}");
    let (status, answer) = server.api.put("/v1/keys", None, &good).await.expect("PUT");
    assert_eq!(status, 401, "{answer}");

    // Nothing was stored: there is no key to claim.
    let (status, answer) = claim(&server.api, &claimer, &owner).await;
    assert_eq!((status, code_of(&answer)), (404, Some("not_found")), "{answer}");

    // A device's identity is fixed once uploaded.
    assert_eq!(upload(&server, &owner, &good).await.0, 200);
    let renewed = DeviceKeys::new().upload_body(&owner.user_id, &owner.device_id, 1);
    let (status, answer) = upload(&server, &owner, &renewed).await;
    assert_eq!((status, code_of(&answer)), (409, Some("conflict")), "{answer}");
    let (status, answer) = claim(&server.api, &claimer, &owner).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        DeviceKeys::verify_signed(&keys.ed25519(), &owner.user_id, &owner.device_id, &answer["one_time_key"]),
        "{answer}"
    );
    // Another user's device and an unknown one are not found.
    let unknown = json!({"user_id": owner.user_id, "device_id": "12345"});
    let (status, answer) =
        server.api.post("/v1/keys/claim", Some(&claimer.access_token), &unknown).await.expect("claim");
    assert_eq!((status, code_of(&answer)), (404, Some("not_found")), "{answer}");
}

#[tokio::test]
async fn claims_across_a_kill_9_never_hand_out_a_one_time_key_twice() {
    let server = Server::start().await;
    let owner = server.register("+14155557301", "phone").await;
    let mut keys = DeviceKeys::new();
    let body = keys.upload_body(&owner.user_id, &owner.device_id, 40);
    assert_eq!(upload(&server, &owner, &body).await.0, 200);
    let claimers = claimers(&server, 7310, 10).await;

    // Ten claims, then fifty more at once, and a kill -9 once a few of those are answered.
    let mut answers = claim_all(&server.api, &claimers, &owner, 1).await;
    let in_flight: Vec<tokio::task::JoinHandle<(u16, Value)>> = claimers
        .iter()
        .flat_map(|by| std::iter::repeat_n(by, 5))
        .map(|by| {
            let (api, by, owner) = (server.api.clone(), by.clone(), owner.clone());
            tokio::spawn(async move { claim(&api, &by, &owner).await })
        })
        .collect();
    // Polled every millisecond (claims take a few): the kill lands among them.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while in_flight.iter().filter(|task| task.is_finished()).count() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no claim answered");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let server = server.crash_and_restart().await;
    for task in in_flight {
        answers.push(task.await.expect("a claim task"));
    }
    // After the restart the claimers retry what got no answer, and claim ten more.
    let unanswered = answers.iter().filter(|(status, _)| *status != 200).count();
    eprintln!("{unanswered} of the 50 claims in flight at the kill got no answer");
    answers.retain(|(status, _)| *status == 200);
    let retries = claimers.iter().cycle().take(unanswered + 10).collect::<Vec<_>>();
    for chunk in retries.chunks(10) {
        answers.extend(join_all(chunk.iter().map(|by| claim(&server.api, by, &owner))).await);
    }
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let one_time: Vec<String> =
        answers.iter().filter(|(_, answer)| answer["fallback"] == false).map(|(_, answer)| key_id(answer)).collect();
    let distinct: BTreeSet<&String> = one_time.iter().collect();
    assert_eq!(distinct.len(), one_time.len(), "no one-time key handed out twice: {one_time:?}");
    // A claim decided while its answer was lost uses a key up; no more than 40 exist.
    let handed = one_time.len();
    assert!(
        handed <= 40 && handed >= 40_usize.saturating_sub(unanswered),
        "{handed} one-time keys, {unanswered} unanswered"
    );
    assert!(answers.iter().any(|(_, answer)| answer["fallback"] == true), "the fallback once they ran out");
}
