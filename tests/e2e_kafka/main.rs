//! Kafka mode end to end, against a local cluster (`missive cluster up`: a
//! Kafka-protocol broker, the schema registry, two gateways, two processor
//! instances): partition-affinity redirects, interop with Confluent's own
//! Python client for the registry and the topic bytes, and failover under
//! `kill -9` of processors and gateways while traffic flows.

#[path = "../common/mod.rs"]
mod common;
mod crashes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cluster, WAIT};
use missive_client::{Account, Api, Connection, code_from_sink_file};
use serde_json::{Value, json};

/// One cluster at a time: each is six processes on a two-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fields drop in order: the cluster stops before the next test may start.
struct Fixture {
    cluster: Cluster,
    api: Api,
    sms: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with_env(&[]).await
    }

    /// A cluster whose members get extra `MISSIVE_*` settings.
    async fn start_with_env(env: &[(&str, String)]) -> Fixture {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let sms = dir.path().join("sms.jsonl");
        let cluster = Cluster::start_with_env(dir.path().join("cluster"), &sms, env).await;
        let api = Api::new(&cluster.gateways[0]);
        Fixture { _serial: serial, cluster, api, sms, _dir: dir }
    }

    async fn register(&self, phone: &str) -> Account {
        let sms = self.sms.clone();
        self.api
            .register(phone, "phone", |phone| async move { code_from_sink_file(&sms, &phone, WAIT).await })
            .await
            .expect("registration")
    }

    fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.cluster.gateways[0].replacen("http", "ws", 1))
    }
}

/// Runs one of the Python interop scripts; returns its JSON line.
fn python(script: &str, args: &[&str]) -> Value {
    // The checkout the test runs in (cargo sets this when it runs a test),
    // not the one it was compiled in: a shared build cache may hold a test
    // binary built from another clone.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let path = Path::new(&root).join("tests/interop").join(script);
    let output = std::process::Command::new("python3").arg(&path).args(args).output().expect("run python3");
    assert!(
        output.status.success(),
        "{script} failed (run infra/scripts/install-deps.sh for its packages):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_is_served_by_one_gateway_and_the_others_redirect_there() {
    let fixture = Fixture::start().await;
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut owners = BTreeSet::new();
    // Owners follow a keyed hash of the phone number (the key is random per
    // cluster), so register until both gateways have users: 24 users all on
    // one of two gateways happens once in 8 million runs.
    for index in 0..24 {
        if index >= 6 && owners.len() == 2 {
            break;
        }
        let account = fixture.register(&format!("+141555590{index:02}")).await;
        let mut served = Vec::new();
        for gateway in &fixture.cluster.gateways {
            let response = no_redirects
                .get(format!("{gateway}/v1/conversations?limit=1"))
                .bearer_auth(&account.access_token)
                .send()
                .await
                .expect("GET");
            match response.status().as_u16() {
                200 => served.push(gateway.clone()),
                307 => {
                    let location = response.headers()["location"].to_str().expect("location").to_string();
                    let body: Value = response.json().await.expect("JSON error");
                    assert_eq!(body["error"]["code"], "wrong_gateway");
                    assert!(location.ends_with("/v1/conversations?limit=1"), "path and query kept: {location}");
                    owners.insert(location.trim_end_matches("/v1/conversations?limit=1").to_string());
                }
                status => panic!("unexpected status {status}"),
            }
        }
        assert_eq!(served.len(), 1, "exactly one gateway serves {}", account.user_id);
        owners.insert(served[0].clone());
        // The WebSocket upgrade is redirected the same way; the client follows it.
        let connection = Connection::open(&fixture.ws_url(), &account.access_token, None).await.expect("connect");
        assert_eq!(connection.welcome["user_id"], json!(account.user_id));
    }
    assert_eq!(owners.len(), 2, "users spread over both gateways: {owners:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_clients_use_the_registry_and_decode_every_event() {
    let fixture = Fixture::start().await;
    let registry = fixture.cluster.schema_registry.clone();
    // `cluster up` made the registry's admin token (0600) for its members.
    let token_file = fixture.cluster.dir.join("schema-registry.token");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token_file).expect("token").permissions());
    assert_eq!(mode & 0o777, 0o600, "the admin token is the owner's only");
    let token = std::fs::read_to_string(&token_file).expect("token").trim().to_string();
    let report =
        tokio::task::spawn_blocking(move || python("registry_client.py", &[&registry, &token])).await.expect("join");
    assert_eq!(report["compatibility"], "BACKWARD_TRANSITIVE");

    // Traffic: three pairs exchange messages and read receipts.
    let mut sent_ids = BTreeSet::new();
    for pair in 0..3 {
        let alice = fixture.register(&format!("+1415556000{pair}")).await;
        let bob = fixture.register(&format!("+1415556100{pair}")).await;
        let mut alice_ws = Connection::open(&fixture.ws_url(), &alice.access_token, None).await.expect("alice");
        let mut bob_ws = Connection::open(&fixture.ws_url(), &bob.access_token, None).await.expect("bob");
        // A client resends what was not confirmed, with the same client
        // ids (the platform dedupes them); the ids it is given are final.
        let mut confirmed: BTreeMap<String, String> = BTreeMap::new();
        let mut frames = Vec::new();
        for round in 0..3 {
            for index in (0..10).filter(|index| !confirmed.contains_key(&format!("r{index}"))) {
                alice_ws
                    .send_message(&format!("r{index}"), &bob.user_id, &format!("c{index}"), "hello")
                    .await
                    .expect("send");
            }
            let deadline = tokio::time::Instant::now() + WAIT;
            while confirmed.len() < 10 && tokio::time::Instant::now() < deadline {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match alice_ws.next_frame(left).await {
                    Ok(Some(frame)) => {
                        if frame["type"] == "sent" {
                            let id = frame["message_id"].as_str().expect("id").to_string();
                            let req = frame["req"].as_str().expect("req").to_string();
                            let previous = confirmed.insert(req, id.clone());
                            assert!(previous.is_none_or(|previous| previous == id), "a retry keeps the message id");
                        }
                        frames.push(frame);
                    }
                    Ok(None) => panic!("pair {pair}: connection closed; frames: {frames:?}"),
                    Err(_) => break,
                }
            }
            if confirmed.len() == 10 {
                break;
            }
            eprintln!("pair {pair}, round {round}: {} of 10 confirmed, resending; frames: {frames:?}", confirmed.len());
        }
        assert_eq!(confirmed.len(), 10, "pair {pair}: every send confirmed; frames: {frames:?}");
        sent_ids.extend(confirmed.into_values());
        let received = bob_ws
            .collect_until(WAIT, |frames| common::count_messages_from(frames, &alice.user_id) == 10)
            .await
            .expect("delivered");
        let last = received.iter().filter_map(|frame| frame["seq"].as_u64()).max().expect("seq");
        bob_ws.ack(last).await.expect("ack");
    }

    let brokers = fixture.cluster.brokers.clone();
    let registry = fixture.cluster.schema_registry.clone();
    let minimum = sent_ids.len().to_string();
    let report = tokio::task::spawn_blocking(move || python("consume_events.py", &[&brokers, &registry, &minimum]))
        .await
        .expect("join");
    assert_eq!(report["errors"], json!([]), "every record decodes: {report}");
    assert_eq!(report["records"], report["decoded"]);
    let decoded_ids: BTreeSet<String> =
        report["message_ids"].as_array().expect("ids").iter().map(|id| id.as_str().expect("id").to_string()).collect();
    assert_eq!(decoded_ids, sent_ids, "the Python consumer sees exactly the messages sent");
    assert!(report["types"]["ReceiptsAdvanced"].as_u64().unwrap_or(0) >= 3, "receipts decode too: {report}");

    // The operators' view agrees with the independent consumer.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["topics", "--kafka", &fixture.cluster.brokers])
        .env("MISSIVE_LOG", "error")
        .output()
        .expect("missive topics");
    assert!(output.status.success(), "missive topics: {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let events: Vec<&Value> = lines.iter().filter(|line| line["topic"] == "events.conversation").collect();
    assert_eq!(events.len(), 8, "one line per partition");
    let total: u64 = events.iter().map(|line| line["records"].as_u64().expect("records")).sum();
    assert_eq!(Some(total), report["records"].as_u64(), "missive topics counts what the consumer read");
}

/// Which gateway (index into `cluster.gateways`) serves `account`.
async fn owner_index(fixture: &Fixture, account: &Account) -> usize {
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = no_redirects
        .get(format!("{}/v1/conversations?limit=1", fixture.cluster.gateways[0]))
        .bearer_auth(&account.access_token)
        .send()
        .await
        .expect("GET");
    match response.status().as_u16() {
        200 => 0,
        307 => 1,
        status => panic!("unexpected status {status}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_users_show_offline_to_watchers_within_70_seconds() {
    let fixture = Fixture::start().await;
    // One user on each gateway (owners follow a keyed hash: register until both have one).
    let mut on: [Option<Account>; 2] = [None, None];
    for index in 0..24 {
        let account = fixture.register(&format!("+141555591{index:02}")).await;
        let owner = owner_index(&fixture, &account).await;
        on[owner].get_or_insert(account);
        if on.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(watched), Some(watcher)] = on else { panic!("no user landed on one of the gateways") };
    let victim = owner_index(&fixture, &watched).await;
    let _watched_ws = Connection::open(&fixture.ws_url(), &watched.access_token, None).await.expect("watched");
    let mut watcher_ws = Connection::open(&fixture.ws_url(), &watcher.access_token, None).await.expect("watcher");
    let is_presence = |frame: &Value, online: bool| {
        frame["type"] == "presence" && frame["user"] == watched.user_id.as_str() && frame["online"] == online
    };
    watcher_ws.send_json(&json!({"type": "subscribe_presence", "users": [watched.user_id]})).await.expect("subscribe");
    watcher_ws.collect_until(WAIT, |frames| frames.iter().any(|frame| is_presence(frame, true))).await.expect("online");

    let killed_at = tokio::time::Instant::now();
    fixture.cluster.kill9(&format!("gateway-{victim}")).await;
    // Watch (pinging, so the watcher's own connection stays open) until the watched user goes offline.
    let offline =
        common::eventually("the watched user offline after its gateway died", Duration::from_secs(75), async || {
            watcher_ws.send_json(&json!({"type": "ping"})).await.expect("ping");
            let frames = watcher_ws.collect_until(Duration::from_secs(10), |frames| {
                frames.iter().any(|frame| is_presence(frame, false) || frame["type"] == "pong")
            });
            let frames = frames.await.expect("the watcher's gateway is alive");
            frames.iter().find(|frame| is_presence(frame, false)).cloned().ok_or(frames)
        })
        .await;
    let elapsed = killed_at.elapsed();
    eprintln!("presence: offline {:.1} s after kill -9 of gateway-{victim}: {offline}", elapsed.as_secs_f64());
    assert!(elapsed <= Duration::from_secs(70), "offline only after {elapsed:?}");
    assert!(offline["last_seen"].as_i64().is_some_and(|at| at <= common::now_ms()), "{offline}");
}

/// Keeps the cluster busy until `stop`: two users exchange messages (and
/// ack them), and a third rewrites its profile (records on the users
/// topic, which every gateway's directory folds). Returns how many sends
/// were confirmed.
async fn background_load(fixture: &Fixture, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let sender = fixture.register("+14155582001").await;
    let recipient = fixture.register("+14155582002").await;
    let profiler = fixture.register("+14155582003").await;
    let (url, api) = (fixture.ws_url(), Api::new(&fixture.cluster.gateways[0]));
    tokio::spawn(async move {
        let mut sending = Connection::open(&url, &sender.access_token, None).await.expect("load sender");
        let mut receiving = Connection::open(&url, &recipient.access_token, None).await.expect("load recipient");
        let (mut confirmed, mut next, mut outstanding) = (0u64, 0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            while outstanding < 16 {
                let (req, id) = (format!("load{next}"), format!("load-{next}"));
                sending.send_message(&req, &recipient.user_id, &id, "background").await.expect("load send");
                (next, outstanding) = (next + 1, outstanding + 1);
            }
            for frame in sending.drain_ready().await.expect("load frames") {
                if frame["type"] == "sent" {
                    (confirmed, outstanding) = (confirmed + 1, outstanding - 1);
                }
            }
            let events = receiving.drain_ready().await.expect("load events");
            if let Some(seq) = events.iter().filter_map(|frame| frame["seq"].as_u64()).max() {
                receiving.ack(seq).await.expect("load ack");
            }
            let about = json!({"about": format!("busy {next}")});
            let (status, body) = api.put("/v1/profile", Some(&profiler.access_token), &about).await.expect("profile");
            assert_eq!(status, 200, "background profile change: {body}");
            common::let_time_pass(Duration::from_millis(5), "the background load is paced").await;
        }
        confirmed
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_registered_through_one_gateway_is_found_at_once_through_the_other() {
    // About a hundred registrations and fifty contact syncs from one address and user.
    let fixture = Fixture::start_with_env(&[
        ("MISSIVE_OTP_PER_ADDRESS_PER_HOUR", "10000".into()),
        ("MISSIVE_VERIFY_PER_ADDRESS_PER_HOUR", "10000".into()),
        ("MISSIVE_CONTACT_SYNCS_PER_DAY", "10000".into()),
    ])
    .await;
    let friend = fixture.register("+14155583000").await;
    let friend_gateway = owner_index(&fixture, &friend).await;
    let api = Api::new(&fixture.cluster.gateways[0]);
    let token = friend.access_token.as_str();
    let mut friend_ws = Connection::open(&fixture.ws_url(), token, None).await.expect("friend");
    let stop = Arc::new(AtomicBool::new(false));
    let load = background_load(&fixture, stop.clone()).await;

    let mut checked = 0;
    for index in 0..400 {
        if checked == 50 {
            break;
        }
        let phone = format!("+1415558{index:04}");
        let newcomer = fixture.register(&phone).await;
        if owner_index(&fixture, &newcomer).await == friend_gateway {
            continue; // registered through the friend's own gateway: not the case under test
        }
        let user = newcomer.user_id.as_str();
        let context = format!("newcomer {index} ({user}) registered through the other gateway");

        let group = json!({"name": format!("g{index}"), "members": [user]});
        let (status, body) = api.post("/v1/groups", Some(token), &group).await.expect("create group");
        assert_eq!(status, 200, "{context}: create a group with them: {body}");

        let (status, body) = api.post("/v1/groups", Some(token), &json!({"name": "later"})).await.expect("group");
        assert_eq!(status, 200, "{context}: {body}");
        let members = format!("/v1/groups/{}/members", body["conversation_id"].as_str().expect("group id"));
        let (status, body) = api.post(&members, Some(token), &json!({"users": [user]})).await.expect("add member");
        assert_eq!(status, 200, "{context}: add them: {body}");

        let hashes = json!({"hashes": [common::sha256_hex(phone.as_bytes())]});
        let (status, body) = api.post("/v1/contacts/sync", Some(token), &hashes).await.expect("contact sync");
        assert_eq!(status, 200, "{context}: sync them as a contact: {body}");
        assert_eq!(body["users"][0]["user_id"], user, "{context}: contact sync finds them: {body}");

        let (status, body) = api.get(&format!("/v1/users/{user}/profile"), Some(token)).await.expect("profile");
        assert_eq!(status, 200, "{context}: read their profile: {body}");

        let req = format!("watch{index}");
        let frame = json!({"type": "subscribe_presence", "req": req, "users": [user]});
        let answer = common::request(&mut friend_ws, &req, frame).await;
        assert_eq!(answer["type"], "subscribed", "{context}: subscribe to their presence: {answer}");
        assert!(answer["users"].as_array().is_some_and(|users| users.contains(&json!(user))), "{context}: {answer}");
        checked += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let confirmed = load.await.expect("background load");
    assert_eq!(checked, 50, "50 newcomers landed on the other gateway");
    assert!(confirmed > 0, "the background load moved messages ({confirmed})");
    eprintln!("read barrier: 50 newcomers found at once through the other gateway, {confirmed} background messages");
}
