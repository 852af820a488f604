//! Many clients under repeated `kill -9` (issue 20's fault runs, embedded):
//! each user sends to random others with a window of unconfirmed sends,
//! reads its feed and acks as it goes; at a random moment of every cycle the
//! server is killed with SIGKILL and restarted; the clients reconnect,
//! resuming their feeds where they acked, and resend what was never
//! confirmed, in order; every third message a client gets is marked read,
//! so senders get read receipts through the kills. At the end every client drains its feed and the
//! history checker (`missive_client::history`) reads the whole run: nothing
//! lost, duplicated, reordered or invented, no feed gap.
//!
//! In Kafka mode (`MISSIVE_E2E_MODE=kafka`) each cycle kills one or two of
//! the cluster's gateways and processor instances at once instead. Every
//! fourth cycle pauses a process (SIGSTOP for 1 to 5 s, then SIGCONT)
//! instead of killing it, while the clients go on sending. In Kafka mode
//! the processes reach the broker through a fault proxy
//! (`common::proxy`), and every fourth cycle (from the second) injects a
//! network fault instead: the first cuts a gateway off the broker for
//! `RELIABILITY_CUT_SECONDS` (30), later ones add 50 to 300 ms of latency
//! each way for a few seconds, drop every connection, or cut a processor
//! instance off for 5 s.
//!
//! `RELIABILITY_CYCLES` sets the number of cycles (10 here by default, the
//! short version CI runs); `infra/scripts/reliability.sh --cycles 1000` is the
//! long run.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::proxy::FaultProxy;
use common::{CLUSTER_MEMBERS, Server, WAIT, kafka_mode};
use missive_client::history::{Op, Recorder, check};
use missive_client::{Account, Connection};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

const USERS: usize = 4;
const WINDOW: usize = 8;

struct Client {
    name: String,
    account: Account,
    epoch: Option<String>,
    /// The feed position this client acked.
    seq: u64,
    /// Sends not confirmed yet: index -> recipient user id, in send order.
    outstanding: BTreeMap<u64, usize>,
    next: u64,
    confirmed: u64,
    /// Messages from others seen (every third is marked read).
    received: u64,
}

impl Client {
    fn frame(&self, index: u64, to: &str) -> Value {
        let content = format!("{}-{index}", self.name);
        json!({"type": "send", "req": index.to_string(), "to": {"user": to}, "client_msg_id": content, "content": content})
    }
}

async fn connect(server: &Server, client: &mut Client, history: &Recorder) -> Connection {
    // A gateway that cannot reach the log yet (just after a network fault)
    // answers `unavailable` with `retry_after`: come back then, as a client does.
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    let connection = loop {
        let resume = client.epoch.as_deref().map(|epoch| (epoch, client.seq));
        match Connection::open(&server.ws_url, &client.account.access_token, resume).await {
            Ok(connection) => break connection,
            Err(error) if error.to_string().contains("\"unavailable\"") && tokio::time::Instant::now() < deadline => {
                eprintln!("{}: {error}; connecting again in 1 s", client.name);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => panic!("{} cannot connect: {error}", client.name),
        }
    };
    history.saw(&client.name, &connection.welcome);
    client.epoch = connection.welcome["epoch"].as_str().map(str::to_string);
    connection
}

async fn send(connection: &mut Connection, client: &Client, index: u64, to: &Account, history: &Recorder) {
    let frame = client.frame(index, &to.user_id);
    history.record(Op::Send {
        device: client.name.clone(),
        req: index.to_string(),
        content: frame["content"].as_str().unwrap_or_default().to_string(),
    });
    // A server killed a moment ago refuses the write; the send stays outstanding.
    let _ = connection.send_json(&frame).await;
}

/// A new message to a random other user.
async fn send_new(
    connection: &mut Connection,
    (client, n): (&mut Client, usize),
    accounts: &[Account],
    history: &Recorder,
    rng: &mut impl Rng,
) {
    let to = (n + rng.random_range(1..USERS)) % USERS;
    let index = client.next;
    client.next += 1;
    client.outstanding.insert(index, to);
    send(connection, client, index, &accounts[to], history).await;
}

/// Every client connects again (resuming its feed) and first resends what
/// was never confirmed, in order, with the same client_msg_id.
async fn reconnect_all(
    server: &Server,
    clients: &mut [Client],
    accounts: &[Account],
    history: &Recorder,
) -> Vec<Connection> {
    let mut connections = Vec::new();
    for client in clients.iter_mut() {
        connections.push(reconnect(server, client, accounts, history).await);
    }
    connections
}

/// One client connects again and resends what was never confirmed, in order.
async fn reconnect(server: &Server, client: &mut Client, accounts: &[Account], history: &Recorder) -> Connection {
    let mut connection = connect(server, client, history).await;
    for (index, to) in client.outstanding.clone() {
        send(&mut connection, client, index, &accounts[to], history).await;
    }
    connection
}

/// Takes what the server sent this client within `wait`: confirmations and
/// feed entries (acked as they come). False once the connection is gone.
async fn take(connection: &mut Connection, client: &mut Client, wait: Duration, history: &Recorder) -> bool {
    loop {
        let frame = match connection.next_frame(wait).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return false,
            Err(_) => return true, // nothing more for now
        };
        history.saw(&client.name, &frame);
        if frame["type"] == "error" {
            eprintln!("{}: {frame}", client.name);
        }
        match frame["type"].as_str() {
            Some("sent") => {
                let index: u64 = frame["req"].as_str().and_then(|req| req.parse().ok()).expect("req is the index");
                if let Some(to) = client.outstanding.remove(&index) {
                    client.confirmed += 1;
                    let devices = vec![client.name.clone(), format!("u{to}")];
                    let conversation_id = frame["conversation_id"].as_str().expect("conversation").to_string();
                    history.record(Op::Expect { conversation_id, devices });
                }
            }
            Some("event") => {
                // Every third message from someone else is read: its
                // sender's read receipts must never go back, kills or not.
                let event = &frame["event"];
                if event["kind"] == "message" && event["from"] != client.account.user_id.as_str() {
                    client.received += 1;
                    if client.received.is_multiple_of(3) {
                        let read = json!({"type": "read", "conversation_id": event["conversation_id"], "up_to": event["conv_seq"]});
                        if connection.send_json(&read).await.is_err() {
                            return false;
                        }
                    }
                }
                let seq = frame["seq"].as_u64().expect("seq");
                if seq > client.seq {
                    client.seq = seq;
                    history.record(Op::Ack { device: client.name.clone(), seq });
                    if connection.ack(seq).await.is_err() {
                        return false;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The clients go on sending (within their windows) and reading for `lasts`,
/// while a fault is on.
async fn keep_sending(
    lasts: Duration,
    (clients, connections): (&mut [Client], &mut [Connection]),
    accounts: &[Account],
    history: &Recorder,
    rng: &mut impl Rng,
) {
    let until = tokio::time::Instant::now() + lasts;
    while tokio::time::Instant::now() < until {
        for (n, client) in clients.iter_mut().enumerate() {
            if client.outstanding.len() < WINDOW {
                send_new(&mut connections[n], (client, n), accounts, history, rng).await;
            }
            take(&mut connections[n], client, Duration::from_millis(5), history).await;
        }
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_through_repeated_kill_minus_nine_pass_the_history_checker() {
    let cycles: usize = std::env::var("RELIABILITY_CYCLES").ok().and_then(|text| text.parse().ok()).unwrap_or(10);
    // Kafka mode: the processes reach the broker through the fault proxy.
    let (proxy, env) = if kafka_mode() {
        let broker_port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|free| free.local_addr()).expect("port").port();
        let proxy = FaultProxy::start(([127, 0, 0, 1], broker_port).into()).await;
        let env = vec![
            ("MISSIVE_BROKER_PORT", broker_port.to_string()),
            ("MISSIVE_BROKER_ADVERTISE", proxy.address.to_string()),
        ];
        (Some(proxy), env)
    } else {
        (None, Vec::new())
    };
    let cut_seconds: u64 =
        std::env::var("RELIABILITY_CUT_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(30);
    let mut network_faults = 0;
    let mut server = Server::start_with_env(&env).await;
    let mut accounts = Vec::new();
    for n in 0..USERS {
        accounts.push(server.register(&format!("+1415555780{n}"), "r").await);
    }
    let mut clients: Vec<Client> = accounts
        .iter()
        .enumerate()
        .map(|(n, account)| Client {
            name: format!("u{n}"),
            account: account.clone(),
            epoch: None,
            seq: 0,
            outstanding: BTreeMap::new(),
            next: 0,
            confirmed: 0,
            received: 0,
        })
        .collect();
    let history = Recorder::new();
    let mut rng = rand::rng();
    for cycle in 0..cycles {
        let mut connections = reconnect_all(&server, &mut clients, &accounts, &history).await;
        let kill_at = tokio::time::Instant::now() + Duration::from_millis(rng.random_range(20..400));
        while tokio::time::Instant::now() < kill_at {
            for (n, client) in clients.iter_mut().enumerate() {
                if client.outstanding.len() < WINDOW {
                    send_new(&mut connections[n], (client, n), &accounts, &history, &mut rng).await;
                }
                take(&mut connections[n], client, Duration::from_millis(1), &history).await;
            }
        }
        // A last burst, unread: the kill lands while these are in flight.
        for (n, client) in clients.iter_mut().enumerate() {
            while client.outstanding.len() < WINDOW {
                send_new(&mut connections[n], (client, n), &accounts, &history, &mut rng).await;
            }
        }
        if let Some(proxy) = proxy.as_ref().filter(|_| cycle % 4 == 1) {
            // A network fault between the processes and the broker while the clients go on.
            let (what, lasts) = match (network_faults, rng.random_range(0..3)) {
                (0, _) => {
                    let gateway = ["missive-gateway-0", "missive-gateway-1"].choose(&mut rng).expect("gateways");
                    proxy.cut(gateway);
                    (format!("cut {gateway} off the broker"), Duration::from_secs(cut_seconds))
                }
                (_, 0) => {
                    let latency = Duration::from_millis(rng.random_range(50..300));
                    proxy.set_latency(latency);
                    (format!("{latency:?} of latency each way"), Duration::from_secs(3))
                }
                (_, 1) => {
                    proxy.drop_all();
                    ("dropped every broker connection".to_string(), Duration::from_secs(1))
                }
                _ => {
                    let process = ["missive-process-0", "missive-process-1"].choose(&mut rng).expect("processes");
                    proxy.cut(process);
                    (format!("cut {process} off the broker"), Duration::from_secs(5))
                }
            };
            network_faults += 1;
            keep_sending(lasts, (&mut clients, &mut connections), &accounts, &history, &mut rng).await;
            proxy.heal();
            proxy.set_latency(Duration::ZERO);
            eprintln!("cycle {cycle}: {what} for {lasts:?} ({} connections closed so far)", proxy.dropped());
        } else if cycle % 4 == 3 {
            // Every fourth cycle pauses a process instead (SIGSTOP, then
            // SIGCONT 1 to 5 s later) while the clients go on sending.
            let (name, pid) = match server.cluster() {
                Some(cluster) => {
                    let name = *CLUSTER_MEMBERS.choose(&mut rng).expect("members");
                    (name.to_string(), cluster.pid(name).await)
                }
                None => ("the server".to_string(), server.embedded_pid()),
            };
            let pause = Duration::from_millis(rng.random_range(1_000..5_000));
            signal(pid, "-STOP");
            keep_sending(pause, (&mut clients, &mut connections), &accounts, &history, &mut rng).await;
            signal(pid, "-CONT");
            eprintln!("cycle {cycle}: paused {name} for {pause:?}");
        } else {
            match server.cluster() {
                // Kafka mode: one or two of the gateways and processor
                // instances at once. (The broker stays: see RELIABILITY.md
                // on a broker that keeps its log on S3.)
                Some(cluster) => {
                    let count = rng.random_range(1..=2);
                    let victims: Vec<&str> = CLUSTER_MEMBERS.choose_multiple(&mut rng, count).copied().collect();
                    for victim in &victims {
                        cluster.kill9(victim).await;
                    }
                    for victim in &victims {
                        cluster.restart(victim).await;
                    }
                    eprintln!("cycle {cycle}: killed {victims:?}");
                }
                None => server = Server::start_in(server.kill9().await).await,
            }
        }
        let sent: u64 = clients.iter().map(|client| client.next).sum();
        let confirmed: u64 = clients.iter().map(|client| client.confirmed).sum();
        eprintln!("cycle {cycle}: {confirmed} confirmed of {sent} sent");
    }
    // Every client comes back, gets its unconfirmed sends confirmed and drains its feed.
    // A connection the server closes now (a gateway whose log came back a
    // moment ago may still refuse an append) is opened again, as a client does.
    let mut connections = reconnect_all(&server, &mut clients, &accounts, &history).await;
    let deadline = tokio::time::Instant::now() + WAIT * 6;
    loop {
        for (n, client) in clients.iter_mut().enumerate() {
            if !take(&mut connections[n], client, Duration::from_millis(200), &history).await {
                eprintln!("{}: the connection closed while draining; connecting again", client.name);
                connections[n] = reconnect(&server, client, &accounts, &history).await;
            }
        }
        let delivered =
            history.ops().iter().filter(|op| matches!(op, Op::Entry { message: Some(_), .. })).count() as u64;
        let sent: u64 = clients.iter().map(|client| client.next).sum();
        if clients.iter().all(|client| client.outstanding.is_empty()) && delivered >= sent {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not everything arrived: {delivered} delivered of {sent} sent");
    }
    let report = check(&history.ops());
    eprintln!("{cycles} kill -9 cycles, {USERS} clients\n{report}");
    assert!(report.ok(), "the history checker found violations:\n{report}");
    assert!(report.acknowledged >= cycles * 4, "a meaningful amount was sent: {report}");
}
