//! Kafka mode end to end, against a local cluster (`missive cluster up`: a
//! Kafka-protocol broker, the schema registry, two gateways, two processor
//! instances): partition-affinity redirects, interop with Confluent's own
//! Python client for the registry and the topic bytes, and failover under
//! `kill -9` of processors and gateways while traffic flows.

mod common;

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

const CYCLES: usize = 10;
const PAIRS: usize = 4;
const WINDOW: usize = 8;

/// One sender's view: what it sent and which ids the platform confirmed.
#[derive(Default)]
struct SenderLog {
    next_index: u64,
    confirmed: BTreeMap<u64, String>,
    /// The `conv_seq` each confirmed index was ordered at.
    ordered_at: BTreeMap<u64, u64>,
}

/// One recipient's view: every message event it was pushed, and where to resume.
#[derive(Default)]
struct RecipientLog {
    epoch: Option<String>,
    last_seq: u64,
    /// (content index, message id, feed seq) in arrival order.
    received: Vec<(u64, String, u64)>,
}

/// Connects, retrying while the owning gateway restarts.
async fn connect_retrying(url: &str, account: &Account, resume: Option<(&str, u64)>) -> Connection {
    // A loop, not `common::eventually`: this runs in spawned tasks, and an
    // async closure borrowing its arguments is not `Send` there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match Connection::open(url, &account.access_token, resume).await {
            Ok(connection) => return connection,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "cannot reconnect {}: {error:#}", account.user_id);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn send_indexed(connection: &mut Connection, to: &str, index: u64) -> anyhow::Result<()> {
    connection
        .send_json(&json!({"type": "send", "req": index.to_string(), "to": {"user": to},
            "client_msg_id": format!("failover-{index}"), "content": index.to_string()}))
        .await
}

/// Sends until `stop`, resending whatever was not confirmed first.
async fn sender_cycle(url: String, me: Account, to: String, mut log: SenderLog, stop: Arc<AtomicBool>) -> SenderLog {
    let mut connection = connect_retrying(&url, &me, None).await;
    let mut outstanding: BTreeSet<u64> =
        (0..log.next_index).filter(|index| !log.confirmed.contains_key(index)).collect();
    for index in outstanding.clone() {
        if send_indexed(&mut connection, &to, index).await.is_err() {
            return log;
        }
    }
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping && outstanding.len() < WINDOW {
            if send_indexed(&mut connection, &to, log.next_index).await.is_err() {
                return log;
            }
            outstanding.insert(log.next_index);
            log.next_index += 1;
        }
        match connection.next_frame(Duration::from_millis(20)).await {
            Ok(Some(frame)) if frame["type"] == "sent" => {
                let index: u64 = frame["req"].as_str().and_then(|req| req.parse().ok()).expect("req echoes the index");
                let id = frame["message_id"].as_str().expect("message id").to_string();
                if let Some(previous) = log.confirmed.insert(index, id.clone()) {
                    assert_eq!(previous, id, "a retry returns the original message id");
                }
                let conv_seq = frame["conv_seq"].as_u64().expect("conv_seq");
                if let Some(previous) = log.ordered_at.insert(index, conv_seq) {
                    assert_eq!(previous, conv_seq, "a retry returns the original conv_seq");
                }
                outstanding.remove(&index);
            }
            Ok(Some(_)) => {}
            Ok(None) => return log, // the gateway went away
            Err(_) if stopping => return log,
            Err(_) => {}
        }
    }
}

/// Receives and acks until `stop`, resuming where the last connection left off.
async fn recipient_cycle(url: String, me: Account, mut log: RecipientLog, stop: Arc<AtomicBool>) -> RecipientLog {
    let resume = log.epoch.clone().map(|epoch| (epoch, log.last_seq));
    let mut connection = connect_retrying(&url, &me, resume.as_ref().map(|(epoch, seq)| (epoch.as_str(), *seq))).await;
    let epoch = connection.welcome["epoch"].as_str().expect("epoch").to_string();
    if log.epoch.is_some() {
        assert_eq!(connection.welcome["recovered"], true, "the feed continues after failover: {}", connection.welcome);
    }
    log.epoch = Some(epoch);
    while !stop.load(Ordering::Relaxed) {
        match connection.next_frame(Duration::from_millis(50)).await {
            Ok(Some(frame)) if frame["type"] == "event" => {
                let seq = frame["seq"].as_u64().expect("seq");
                assert_eq!(seq, log.last_seq + 1, "feed seqs are gap-free and never repeat");
                log.last_seq = seq;
                let event = &frame["event"];
                if event["kind"] == "message" {
                    let index = event["content"].as_str().and_then(|c| c.parse().ok()).expect("index");
                    log.received.push((index, event["message_id"].as_str().expect("id").to_string(), seq));
                }
                if connection.ack(seq).await.is_err() {
                    return log;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return log,
            Err(_) => {}
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_processors_and_gateways_loses_and_duplicates_nothing() {
    let fixture = Fixture::start().await;
    let url = fixture.ws_url();
    let mut senders = Vec::new();
    let mut recipients = Vec::new();
    for pair in 0..PAIRS {
        senders.push(fixture.register(&format!("+1415557000{pair}")).await);
        recipients.push(fixture.register(&format!("+1415557100{pair}")).await);
    }
    let mut sender_logs: Vec<SenderLog> = (0..PAIRS).map(|_| SenderLog::default()).collect();
    let mut recipient_logs: Vec<RecipientLog> = (0..PAIRS).map(|_| RecipientLog::default()).collect();
    for cycle in 0..=CYCLES {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sending = Vec::new();
        let mut receiving = Vec::new();
        for pair in 0..PAIRS {
            let log = std::mem::take(&mut sender_logs[pair]);
            sending.push(tokio::spawn(sender_cycle(
                url.clone(),
                senders[pair].clone(),
                recipients[pair].user_id.clone(),
                log,
                stop.clone(),
            )));
            let log = std::mem::take(&mut recipient_logs[pair]);
            receiving.push(tokio::spawn(recipient_cycle(url.clone(), recipients[pair].clone(), log, stop.clone())));
        }
        let load_for = Duration::from_millis(300 + (cycle as u64 * 97) % 500);
        common::let_time_pass(load_for, "the faults land at varied moments of the load").await;
        let victims = [format!("process-{}", cycle % 2), format!("gateway-{}", (cycle / 2) % 2)];
        if cycle < CYCLES {
            for victim in &victims {
                fixture.cluster.kill9(victim).await;
            }
        }
        common::let_time_pass(Duration::from_millis(200), "the clients keep working through the kill").await;
        stop.store(true, Ordering::Relaxed);
        for (pair, task) in sending.into_iter().enumerate() {
            sender_logs[pair] = task.await.expect("sender task");
        }
        for (pair, task) in receiving.into_iter().enumerate() {
            recipient_logs[pair] = task.await.expect("recipient task");
        }
        if cycle < CYCLES {
            for victim in &victims {
                fixture.cluster.restart(victim).await;
            }
        }
        let confirmed: usize = sender_logs.iter().map(|log| log.confirmed.len()).sum();
        eprintln!("cycle {cycle}: killed {victims:?}; {confirmed} messages confirmed so far");
    }

    // Settle: every sender gets every message confirmed, every recipient receives them.
    for pair in 0..PAIRS {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while sender_logs[pair].confirmed.len() as u64 != sender_logs[pair].next_index {
            assert!(tokio::time::Instant::now() < deadline, "sender {pair} never got all confirmations");
            let stop = Arc::new(AtomicBool::new(false));
            let log = std::mem::take(&mut sender_logs[pair]);
            let to = recipients[pair].user_id.clone();
            let task = tokio::spawn(sender_cycle(url.clone(), senders[pair].clone(), to, log, stop.clone()));
            common::let_time_pass(Duration::from_secs(1), "the sender retries its unconfirmed sends").await;
            stop.store(true, Ordering::Relaxed);
            sender_logs[pair] = task.await.expect("sender");
        }
        let expected = sender_logs[pair].next_index as usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while recipient_logs[pair].received.len() < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "recipient {pair} got {} of {expected}",
                recipient_logs[pair].received.len()
            );
            let stop = Arc::new(AtomicBool::new(false));
            let log = std::mem::take(&mut recipient_logs[pair]);
            let task = tokio::spawn(recipient_cycle(url.clone(), recipients[pair].clone(), log, stop.clone()));
            common::let_time_pass(Duration::from_secs(1), "the recipient drains its backlog").await;
            stop.store(true, Ordering::Relaxed);
            recipient_logs[pair] = task.await.expect("recipient");
        }
    }
    let mut total = 0;
    for pair in 0..PAIRS {
        let sent = &sender_logs[pair];
        let received = &recipient_logs[pair].received;
        // The order the conversation decided: one sender per conversation,
        // so conv_seq is 1, 2, 3... in the order the sender sent.
        let decided: Vec<u64> = sent.ordered_at.values().copied().collect();
        assert_eq!(decided, (1..=sent.next_index).collect::<Vec<u64>>(), "pair {pair}: ordered as sent, by index");
        let indices: Vec<u64> = received.iter().map(|(index, _, _)| *index).collect();
        assert_eq!(indices, (0..sent.next_index).collect::<Vec<u64>>(), "pair {pair}: exactly once, in send order");
        for (index, id, _) in received {
            assert_eq!(sent.confirmed.get(index), Some(id), "delivered with the id the sender was given");
        }
        total += received.len();
    }
    assert!(total >= 200, "the test should move a meaningful amount of traffic ({total})");
    eprintln!("failover: {total} messages delivered exactly once in order across {CYCLES} kill cycles");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_that_lost_its_store_restores_from_the_changelog() {
    let fixture = Fixture::start().await;
    let alice = fixture.register("+14155580001").await;
    let bob = fixture.register("+14155580002").await;
    let mut alice_ws = Connection::open(&fixture.ws_url(), &alice.access_token, None).await.expect("alice");
    let send_all = async |connection: &mut Connection, range: std::ops::Range<usize>| {
        for index in range.clone() {
            connection
                .send_message(&format!("r{index}"), &bob.user_id, &format!("c{index}"), &format!("m{index}"))
                .await
                .expect("send");
        }
        let frames = connection
            .collect_until(WAIT, |frames| frames.iter().filter(|frame| frame["type"] == "sent").count() == range.len())
            .await
            .expect("sent");
        frames
            .into_iter()
            .filter(|frame| frame["type"] == "sent")
            .map(|frame| (frame["req"].as_str().expect("req").to_string(), frame))
            .collect::<BTreeMap<String, Value>>()
    };
    let before = send_all(&mut alice_ws, 0..20).await;
    drop(alice_ws);

    // Both decider instances lose their disks.
    for instance in ["process-0", "process-1"] {
        fixture.cluster.kill9(instance).await;
        std::fs::remove_dir_all(fixture.cluster.dir.join("data").join(instance)).expect("wipe the store");
        fixture.cluster.restart(instance).await;
    }

    let restored = || -> usize {
        ["process-0", "process-1"]
            .iter()
            .map(|instance| {
                let log = std::fs::read_to_string(fixture.cluster.dir.join("logs").join(format!("{instance}.log")))
                    .expect("member log");
                log.matches("state restored from the changelog").count()
            })
            .sum()
    };
    common::eventually(
        "the wiped instances restored from their changelogs (not by replaying their inputs)",
        WAIT,
        async || if restored() > 0 { Ok(()) } else { Err("no \"state restored\" line in their logs") },
    )
    .await;

    let mut alice_ws = Connection::open(&fixture.ws_url(), &alice.access_token, None).await.expect("alice again");
    let retried = send_all(&mut alice_ws, 5..6).await;
    assert_eq!(
        retried["r5"]["message_id"], before["r5"]["message_id"],
        "the dedupe window survived: a retry gets the original id"
    );
    let after = send_all(&mut alice_ws, 20..30).await;
    let seqs: BTreeSet<u64> = before.values().chain(after.values()).filter_map(|f| f["conv_seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=30).collect::<BTreeSet<u64>>(), "conv_seq continues where it was: state restored");

    let mut bob_ws = Connection::open(&fixture.ws_url(), &bob.access_token, None).await.expect("bob");
    let frames = bob_ws
        .collect_until(WAIT, |frames| common::count_messages_from(frames, &alice.user_id) >= 30)
        .await
        .expect("bob receives all");
    let contents: Vec<String> = common::messages_from(&frames, &alice.user_id)
        .iter()
        .map(|event| event["content"].as_str().expect("content").to_string())
        .collect();
    assert_eq!(contents, (0..30).map(|index| format!("m{index}")).collect::<Vec<_>>(), "each once, in order");
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
