//! Test harness: starts the real `missive` binary on 127.0.0.1:0 in a
//! temporary data directory, registers users through the SMS file sink and
//! opens WebSocket connections. Waits poll with deadlines; no fixed sleeps.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use missive_gateway::client::{Account, Api, Connection, code_from_sink_file};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Server {
    child: Child,
    pub api: Api,
    pub ws_url: String,
    pub dir: Arc<tempfile::TempDir>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await
    }

    /// Starts a server on an existing data directory (a restart).
    pub async fn start_in(dir: Arc<tempfile::TempDir>) -> Server {
        let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
        let data = dir.path().join("data").display().to_string();
        Server::start_with(dir, &["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink], &[]).await
    }

    /// Starts `missive serve` with exactly these flags and extra environment.
    pub async fn start_with(dir: Arc<tempfile::TempDir>, flags: &[&str], env: &[(&str, String)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
        command.arg("serve").args(flags).env("MISSIVE_LOG", "warn,warp=error");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("start missive serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(WAIT, async {
            loop {
                let line = lines.next_line().await.expect("read stdout").expect("server exited before listening");
                if let Some(address) = line.strip_prefix("listening on ") {
                    return address.to_string();
                }
            }
        })
        .await
        .expect("server did not start within the deadline");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ws_url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        Server { child, api: Api::new(&base), ws_url, dir }
    }

    pub fn sms_file(&self) -> PathBuf {
        self.dir.path().join("sms.jsonl")
    }

    /// `kill -9`: no shutdown hooks run.
    pub async fn kill9(mut self) -> Arc<tempfile::TempDir> {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
        self.dir.clone()
    }

    pub async fn register(&self, phone: &str, device: &str) -> Account {
        let sms = self.sms_file();
        self.api
            .register(phone, device, |phone| async move { code_from_sink_file(&sms, &phone, WAIT).await })
            .await
            .expect("registration")
    }

    pub async fn connect(&self, account: &Account) -> Connection {
        Connection::open(&self.ws_url, &account.access_token, None).await.expect("connect")
    }

    pub async fn connect_resume(&self, account: &Account, epoch: &str, seq: u64) -> Connection {
        Connection::open(&self.ws_url, &account.access_token, Some((epoch, seq))).await.expect("connect")
    }
}

/// Feed `event` frames among `frames`.
pub fn events(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|frame| frame["type"] == "event").collect()
}

pub fn messages_from<'a>(frames: &'a [Value], from: &str) -> Vec<&'a Value> {
    events(frames)
        .into_iter()
        .map(|frame| &frame["event"])
        .filter(|event| event["kind"] == "message" && event["from"] == from)
        .collect()
}

pub fn count_messages_from(frames: &[Value], from: &str) -> usize {
    messages_from(frames, from).len()
}

impl Server {
    /// GETs `path` (as `token`) until `ready` accepts the 200 body; fails
    /// with `what` and the last body at the deadline.
    pub async fn get_until(&self, path: &str, token: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self.api.get(path, Some(token)).await.expect("GET");
            assert_eq!(status, 200, "GET {path}: {body}");
            if ready(&body) {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends message `index` for each index: req `r<index>`, client id
/// `<id_prefix><index>`, content `<content_prefix><index>`.
pub async fn send_numbered(
    connection: &mut Connection,
    to: &str,
    indices: impl IntoIterator<Item = usize>,
    id_prefix: &str,
    content_prefix: &str,
) {
    for index in indices {
        connection
            .send_message(&format!("r{index}"), to, &format!("{id_prefix}{index}"), &format!("{content_prefix}{index}"))
            .await
            .expect("send");
    }
}
