//! `kill -9` of processors and gateways under load: nothing lost, nothing
//! duplicated, order kept; a wiped processor restores from its changelog.

use super::*;

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
