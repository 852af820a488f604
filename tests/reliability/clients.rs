//! The fault runs' clients: each sends new messages (to a random other user
//! or to the group) within a window of unconfirmed sends, now and then edits
//! its last confirmed message, reads every third message it gets and acks
//! its feed as it goes, recording everything in the history.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use missive_client::history::{Op, Recorder, entry_id};
use missive_client::{Account, Connection};
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{Server, WAIT};

pub const USERS: usize = 4;
pub const WINDOW: usize = 8;
/// At most one edit per client in this time (the account allows 20 a second).
const EDIT_EVERY: Duration = Duration::from_millis(250);

/// What the clients share: the users' accounts, their group, the history.
pub struct World {
    pub accounts: Vec<Account>,
    pub group: String,
    pub history: Recorder,
}

/// Where a send goes.
#[derive(Clone, Copy)]
pub enum Target {
    User(usize),
    Group,
}

pub struct Client {
    pub name: String,
    pub account: Account,
    epoch: Option<String>,
    /// The feed position this client acked.
    seq: u64,
    /// Sends not confirmed yet, by index, in send order.
    pub outstanding: BTreeMap<u64, Target>,
    pub next: u64,
    pub confirmed: u64,
    /// Messages from others seen (every third is marked read).
    received: u64,
    /// The last message of this client the server confirmed (conversation, message id).
    last_sent: Option<(String, String)>,
    /// Edits sent on this connection and not answered yet: req -> conversation.
    edits: HashMap<String, String>,
    edited_at: tokio::time::Instant,
    pub edits_done: u64,
}

impl Client {
    pub fn new(n: usize, account: &Account) -> Client {
        Client {
            name: format!("u{n}"),
            account: account.clone(),
            epoch: None,
            seq: 0,
            outstanding: BTreeMap::new(),
            next: 0,
            confirmed: 0,
            received: 0,
            last_sent: None,
            edits: HashMap::new(),
            edited_at: tokio::time::Instant::now(),
            edits_done: 0,
        }
    }

    fn frame(&self, index: u64, to: Target, world: &World) -> Value {
        let content = format!("{}-{index}", self.name);
        let to = match to {
            Target::User(user) => json!({"user": world.accounts[user].user_id}),
            Target::Group => json!({"group": world.group}),
        };
        json!({"type": "send", "req": index.to_string(), "to": to, "client_msg_id": content, "content": content})
    }
}

async fn connect(server: &Server, client: &mut Client, history: &Recorder) -> Connection {
    // A gateway that cannot reach the log yet (just after a network fault)
    // answers `unavailable` with `retry_after`: come back then, as a client
    // does. So does a client whose hello got no answer within 10 s.
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    let connection = loop {
        let resume = client.epoch.as_deref().map(|epoch| (epoch, client.seq));
        match Connection::open(&server.ws_url, &client.account.access_token, resume).await {
            Ok(connection) => break connection,
            Err(error)
                if (error.to_string().contains("\"unavailable\"")
                    || error.to_string().contains("timed out waiting for a frame"))
                    && tokio::time::Instant::now() < deadline =>
            {
                eprintln!("{}: {error}; connecting again in 1 s", client.name);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => panic!("{} cannot connect: {error}", client.name),
        }
    };
    history.saw(&client.name, &connection.welcome);
    client.epoch = connection.welcome["epoch"].as_str().map(str::to_string);
    // Edits asked on the old connection are answered nowhere now: unacknowledged.
    client.edits.clear();
    connection
}

async fn send(connection: &mut Connection, client: &Client, index: u64, to: Target, world: &World) {
    let frame = client.frame(index, to, world);
    world.history.record(Op::Send {
        device: client.name.clone(),
        req: index.to_string(),
        content: frame["content"].as_str().unwrap_or_default().to_string(),
    });
    // A server killed a moment ago refuses the write; the send stays outstanding.
    let _ = connection.send_json(&frame).await;
}

/// A new message to a random other user or (one in four) to the group, and
/// now and then an edit of this client's last confirmed message.
pub async fn send_new(
    connection: &mut Connection,
    (client, n): (&mut Client, usize),
    world: &World,
    rng: &mut impl Rng,
) {
    let to = match rng.random_range(0..4) {
        0 => Target::Group,
        _ => Target::User((n + rng.random_range(1..USERS)) % USERS),
    };
    let index = client.next;
    client.next += 1;
    client.outstanding.insert(index, to);
    send(connection, client, index, to, world).await;
    if client.edited_at.elapsed() >= EDIT_EVERY
        && let Some((conversation_id, message_id)) = client.last_sent.clone()
    {
        client.edited_at = tokio::time::Instant::now();
        let req = format!("e{index}");
        let content = format!("{}-{index} edited", client.name);
        world.history.record(Op::Send { device: client.name.clone(), req: req.clone(), content: content.clone() });
        let edit = json!({"type": "edit", "req": req, "conversation_id": conversation_id, "message_id": message_id, "content": content});
        if connection.send_json(&edit).await.is_ok() {
            client.edits.insert(req, conversation_id);
        }
    }
}

/// Every client connects again (resuming its feed) and first resends what
/// was never confirmed, in order, with the same client_msg_id.
pub async fn reconnect_all(server: &Server, clients: &mut [Client], world: &World) -> Vec<Connection> {
    let mut connections = Vec::new();
    for client in clients.iter_mut() {
        connections.push(reconnect(server, client, world).await);
    }
    connections
}

/// One client connects again and resends what was never confirmed, in order.
pub async fn reconnect(server: &Server, client: &mut Client, world: &World) -> Connection {
    let mut connection = connect(server, client, &world.history).await;
    for (index, to) in client.outstanding.clone() {
        send(&mut connection, client, index, to, world).await;
    }
    connection
}

/// Takes what the server sent this client within `wait`: confirmations and
/// feed entries (acked as they come). False once the connection is gone.
pub async fn take(connection: &mut Connection, client: &mut Client, wait: Duration, world: &World) -> bool {
    let history = &world.history;
    loop {
        let frame = match connection.next_frame(wait).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return false,
            Err(_) => return true, // nothing more for now
        };
        history.saw(&client.name, &frame);
        match frame["type"].as_str() {
            Some("sent") => {
                let index: u64 = frame["req"].as_str().and_then(|req| req.parse().ok()).expect("req is the index");
                if let Some(to) = client.outstanding.remove(&index) {
                    client.confirmed += 1;
                    let conversation_id = frame["conversation_id"].as_str().expect("conversation").to_string();
                    if let Target::User(to) = to {
                        let devices = vec![client.name.clone(), format!("u{to}")];
                        history.record(Op::Expect { conversation_id: conversation_id.clone(), devices });
                    }
                    let message_id = frame["message_id"].as_str().expect("message id").to_string();
                    client.last_sent = Some((conversation_id, message_id));
                }
            }
            Some("done") => {
                let req = frame["req"].as_str().unwrap_or_default();
                if let Some(conversation_id) = client.edits.remove(req) {
                    let id = entry_id(&conversation_id, frame["conv_seq"].as_u64().expect("conv_seq"));
                    history.record(Op::Changed { device: client.name.clone(), id, conversation_id });
                    client.edits_done += 1;
                }
            }
            Some("error") => {
                eprintln!("{}: {frame}", client.name);
                client.edits.remove(frame["req"].as_str().unwrap_or_default());
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
pub async fn keep_sending(
    lasts: Duration,
    (clients, connections): (&mut [Client], &mut [Connection]),
    world: &World,
    rng: &mut impl Rng,
) {
    let until = tokio::time::Instant::now() + lasts;
    while tokio::time::Instant::now() < until {
        for (n, client) in clients.iter_mut().enumerate() {
            if client.outstanding.len() < WINDOW {
                send_new(&mut connections[n], (client, n), world, rng).await;
            }
            take(&mut connections[n], client, Duration::from_millis(5), world).await;
        }
    }
}
