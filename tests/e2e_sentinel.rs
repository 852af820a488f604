//! The server never holds a plaintext. A string no one else could write is
//! sent, sealed by the reference client, through every feature — text, an
//! edit, a reaction, a forward, a media caption, a place name, a group
//! message — and then looked for in every file of the data directory (the
//! log's segments, the stores, the media), in every topic as `missive
//! replay` prints it, and in the server's debug log. It is nowhere. Each
//! search is shown able to find what the server does see (a group's name).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, now_ms};
use missive_client::secure::{Received, SecureDevice, To};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const TOPICS: [&str; 10] = [
    "commands.conversation",
    "commands.user",
    "events.conversation",
    "events.user",
    "deliveries",
    "replies",
    "ephemeral",
    "presence",
    "notifications",
    "events.media",
];

async fn device(server: &Server, phone: &str, name: &str) -> SecureDevice {
    let account = server.register(phone, name).await;
    SecureDevice::start(server.api.clone(), &server.ws_url, account).await.expect("the device starts")
}

/// Waits until `device` opened a body for which `check` holds; returns its entry.
async fn opened(device: &mut SecureDevice, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let got = device
        .receive_until(WAIT, |got| {
            got.iter().any(|item| matches!(item, Received::Message { payload, .. } if check(payload)))
        })
        .await
        .unwrap_or_else(|error| panic!("never opened {what}: {error:#}"));
    got.into_iter()
        .find_map(|item| match item {
            Received::Message { entry, payload } if check(&payload) => Some(entry),
            _ => None,
        })
        .expect("found above")
}

fn sent(answer: Value) -> Value {
    assert_eq!(answer["type"], "sent", "{answer}");
    answer
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).expect("read dir").map(|entry| entry.expect("entry").path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|window| window == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn a_sentinel_sent_through_every_feature_is_nowhere_on_the_server() {
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("server.log");
    let env = [("MISSIVE_ALLOW_PLAINTEXT", "false".to_string())];
    let server = Server::start_embedded_logging_with("debug,hyper=info,warp=info", &log, &env).await;
    let secret = format!("sentinel-{}-quartz-heron", now_ms());
    let visible = format!("group-name-{}-visible", now_ms());
    let mut alice = device(&server, "+14155556201", "alice").await;
    let mut bob = device(&server, "+14155556202", "bob").await;
    let mut carol = device(&server, "+14155556203", "carol").await;
    let to_bob = To::User(bob.account.user_id.clone());
    let to_alice = To::User(alice.account.user_id.clone());
    let has = |payload: &Value, text: &str| payload.to_string().contains(text);

    // Text, then an edit of it and a reaction to it.
    let first = sent(alice.send(&to_bob, "s1", &json!({"text": secret}), json!({})).await.expect("send"));
    opened(&mut bob, "the text", |payload| payload["text"] == secret.as_str()).await;
    let (conversation, message) = (first["conversation_id"].clone(), first["message_id"].clone());
    let edit = alice.seal_for(&to_bob, &json!({"text": format!("{secret} (edited)")})).await.expect("seal");
    let frame =
        json!({"type": "edit", "req": "e", "conversation_id": conversation, "message_id": message, "encrypted": edit});
    alice.connection.send_json(&frame).await.expect("edit");
    opened(&mut bob, "the edit", |payload| has(payload, "(edited)")).await;
    let reaction = bob.seal_for(&to_alice, &json!({"text": secret, "reaction": true})).await.expect("seal");
    let frame = json!({"type": "react", "req": "r", "conversation_id": conversation, "message_id": message, "encrypted": reaction});
    bob.connection.send_json(&frame).await.expect("react");
    opened(&mut alice, "the reaction", |payload| payload["reaction"] == true).await;

    // A caption and a place name, sealed in their messages.
    alice.send_media(&to_bob, "s2", b"not really a picture", ("image", "image/png"), &secret).await.expect("media");
    opened(&mut bob, "the caption", |payload| payload["attachment"].is_object()).await;
    let place = json!({"location": {"latitude": 52.52, "longitude": 13.40, "name": secret}});
    sent(alice.send(&to_bob, "s3", &place, json!({})).await.expect("send"));
    opened(&mut bob, "the place", |payload| payload["location"]["name"] == secret.as_str()).await;

    // A group message, and a forward of the first message into the group.
    let members = json!([bob.account.user_id, carol.account.user_id]);
    let (status, group) = server
        .api
        .post("/v1/groups", Some(&alice.account.access_token), &json!({"name": visible, "members": members}))
        .await
        .expect("create");
    assert_eq!(status, 200, "{group}");
    let to_group = To::Group(group["conversation_id"].as_str().expect("id").to_string());
    sent(carol.send(&to_group, "s4", &json!({"text": secret, "group": true}), json!({})).await.expect("send"));
    opened(&mut bob, "the group message", |payload| payload["group"] == true).await;
    let forward = json!({"forward_of": {"conversation_id": conversation, "message_id": message}});
    let forwarded = bob.send(&to_group, "s5", &json!({"text": secret, "forward": true}), forward).await.expect("send");
    opened(&mut carol, "the forward", |payload| payload["forward"] == true).await;
    assert!(sent(forwarded)["conv_seq"].as_u64().is_some());

    // Nowhere in the data directory (the search finds the group's name there).
    let data = server.dir.path().join("data");
    assert!(!files_containing(&data, visible.as_bytes()).is_empty(), "the file search finds what the server sees");
    let leaked = files_containing(&data, secret.as_bytes());
    assert!(leaked.is_empty(), "plaintext on disk in {leaked:?}");
    // Nowhere in any topic as replay prints it (which shows the group's name).
    let mut shown = String::new();
    for topic in TOPICS {
        let output = server.tool(&["replay", topic]).await;
        assert!(output.success, "replay {topic}: {}", output.stderr);
        shown.extend(output.lines.iter().map(|line| line.to_string()));
    }
    assert!(shown.contains(&visible), "replay shows what the server sees");
    assert!(!shown.contains(&secret), "plaintext in a topic");
    // Nowhere in the server's debug log.
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.lines().count() > 10, "the server logged at debug level");
    assert!(!logged.contains(&secret), "plaintext in the server log");
}
