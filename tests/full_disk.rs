//! A full disk (issue 20): the embedded server's data directory sits on a
//! small tmpfs that one user fills with large messages. Writes are then
//! refused with `unavailable`, the server stays up, and once space returns
//! the store opens cleanly after a `kill -9`: every acknowledged message
//! reaches its recipient exactly once, and sending works again.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Server, WAIT, messages_from};
use missive_client::Connection;
use serde_json::{Value, json};

/// A tmpfs of a given size mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, megabytes: u32) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (this suite runs as root in CI)");
        Tmpfs(path.to_path_buf())
    }

    fn resize(&self, megabytes: u32) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={megabytes}m")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Sends one large message and returns the answer (`None`: the connection closed).
async fn send(connection: &mut Connection, to: &str, index: usize, body: &str) -> Option<Value> {
    let id = format!("fill-{index}");
    let frame = json!({"type": "send", "req": id, "to": {"user": to}, "client_msg_id": id, "content": body});
    connection.send_json(&frame).await.ok()?;
    loop {
        let frame = connection.next_frame(WAIT).await.expect("an answer within the wait")?;
        if frame["req"] == id {
            return Some(frame);
        }
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_loses_nothing_acknowledged_and_recovers() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let disk = Tmpfs::mount(&dir.path().join("data"), 48);
    let server = Server::start_in(dir.clone()).await;
    let alice = server.register("+14155557401", "a").await;
    let bob = server.register("+14155557402", "b").await;
    let mut connection = server.connect(&alice).await;
    let body = "x".repeat(60_000);
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for index in 0..5_000 {
        match send(&mut connection, &bob.user_id, index, &body).await {
            Some(answer) if answer["type"] == "sent" => {
                acknowledged.push(answer["message_id"].as_str().expect("message id").to_string())
            }
            Some(answer) => {
                refusal = Some(answer);
                break;
            }
            None => break,
        }
    }
    let refusal = refusal.expect("the full disk refused a send with an error frame");
    assert_eq!(refusal["code"], "unavailable", "{refusal}");
    assert!(!acknowledged.is_empty(), "some sends fitted first");
    eprintln!("full disk: {} sends acknowledged, then {refusal}", acknowledged.len());
    // The server stays up: a new connection's send is refused the same way.
    let mut again = server.connect(&alice).await;
    let answer = send(&mut again, &bob.user_id, 5_000, "small").await.expect("an answer");
    assert_eq!(answer["code"], "unavailable", "{answer}");

    // Space returns; the store opens cleanly after a kill -9.
    disk.resize(1024);
    let server = Server::start_in(server.kill9().await).await;
    let mut bob_connection = server.connect(&bob).await;
    let frames = bob_connection
        .collect_until(WAIT, |frames| messages_from(frames, &alice.user_id).len() >= acknowledged.len())
        .await
        .expect("every acknowledged message");
    let ids = |frames: &[Value]| -> Vec<String> {
        messages_from(frames, &alice.user_id)
            .iter()
            .filter_map(|event| event["message_id"].as_str().map(str::to_string))
            .collect()
    };
    let seen = ids(&frames);
    for id in &acknowledged {
        assert_eq!(seen.iter().filter(|seen| *seen == id).count(), 1, "{id} delivered once: {seen:?}");
    }
    // Nothing more arrives (no duplicates behind the last one), and sending works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = bob_connection.drain_ready().await.expect("drain");
    assert!(ids(&late).iter().all(|id| !acknowledged.contains(id)), "delivered again: {late:?}");
    let mut alice_connection = server.connect(&alice).await;
    let after = send(&mut alice_connection, &bob.user_id, 9_999, "after").await.expect("answer");
    assert_eq!(after["type"], "sent", "{after}");
    drop(server);
    drop(disk);
}
