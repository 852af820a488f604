//! Test harness: starts the real `missive` binary on 127.0.0.1:0 in a
//! temporary data directory, registers users through the SMS file sink and
//! opens WebSocket connections. Waits poll with deadlines; no fixed sleeps.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use missive_client::{Account, Api, Connection, code_from_sink_file};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod browser;
mod cluster;
pub mod proxy;
mod s3;
mod tools;
mod uploads;
mod waits;
mod webhook;

// Each suite uses some of these; the re-exports keep `common::name` paths.
#[allow(unused_imports)]
pub use {cluster::*, s3::*, tools::*, uploads::*, waits::*, webhook::*};

pub const WAIT: Duration = Duration::from_secs(20);

/// What runs behind a [`Server`]: one embedded-mode process, or a local
/// Kafka-mode cluster (`MISSIVE_E2E_MODE=kafka`).
enum Backend {
    Embedded(Child),
    Kafka(Cluster),
}

pub struct Server {
    backend: Backend,
    pub api: Api,
    pub ws_url: String,
    pub dir: Arc<tempfile::TempDir>,
}

/// Whether the end-to-end suites run against a Kafka-mode cluster.
pub fn kafka_mode() -> bool {
    std::env::var("MISSIVE_E2E_MODE").is_ok_and(|mode| mode == "kafka")
}

/// A fresh directory for a server's data and logs, removed when the test
/// ends unless `MISSIVE_TEST_KEEP_DIRS` is set (for looking into a failure:
/// the path is printed).
fn test_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("MISSIVE_TEST_KEEP_DIRS").is_some();
    let dir = tempfile::Builder::new().prefix("missive-test-").disable_cleanup(keep).tempdir().expect("temp dir");
    if keep {
        eprintln!("test directory (kept): {}", dir.path().display());
    }
    dir
}

impl Server {
    /// A fresh server in the mode the suite runs in.
    pub async fn start() -> Server {
        Server::start_with_env(&[]).await
    }

    /// A fresh server in the suite's mode, with extra environment (`MISSIVE_*` settings).
    pub async fn start_with_env(env: &[(&str, String)]) -> Server {
        let dir = Arc::new(test_dir());
        if !kafka_mode() {
            let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
            let data = dir.path().join("data").display().to_string();
            let flags = ["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink];
            return Server::start_with(dir.clone(), &flags, env).await;
        }
        let cluster = Cluster::start_with_env(dir.path().join("cluster"), &dir.path().join("sms.jsonl"), env).await;
        let base = cluster.gateways[0].clone();
        let ws_url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        Server { backend: Backend::Kafka(cluster), api: Api::new(&base), ws_url, dir }
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.backend {
            Backend::Kafka(cluster) => Some(cluster),
            Backend::Embedded(_) => None,
        }
    }

    /// Starts a server on an existing data directory (a restart).
    pub async fn start_in(dir: Arc<tempfile::TempDir>) -> Server {
        let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
        let data = dir.path().join("data").display().to_string();
        Server::start_with(dir, &["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink], &[]).await
    }

    /// Starts `missive serve` with exactly these flags and extra environment.
    pub async fn start_with(dir: Arc<tempfile::TempDir>, flags: &[&str], env: &[(&str, String)]) -> Server {
        Server::start_command(dir, Command::new(env!("CARGO_BIN_EXE_missive")), flags, env).await
    }

    /// An embedded server whose open-files limit starts at `soft` and may be
    /// raised to `hard` (set with util-linux's `prlimit`).
    pub async fn start_with_nofile(flags: &[&str], soft: u64, hard: u64) -> Server {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={soft}:{hard}")).arg("--").arg(env!("CARGO_BIN_EXE_missive"));
        Server::start_embedded_command(command, flags).await
    }

    /// An embedded server logging at `level` (`MISSIVE_LOG`) into `log`.
    pub async fn start_embedded_logging(level: &str, log: &std::path::Path) -> Server {
        Server::start_embedded_logging_with(level, log, &[]).await
    }

    /// [`Server::start_embedded_logging`] with extra environment (`MISSIVE_*` settings).
    pub async fn start_embedded_logging_with(level: &str, log: &std::path::Path, env: &[(&str, String)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
        command.stderr(std::fs::File::create(log).expect("log file"));
        let mut all = vec![("MISSIVE_LOG", level.to_string())];
        all.extend(env.iter().cloned());
        Server::start_embedded_command_env(command, &[], &all).await
    }

    /// An embedded server in a fresh directory with its SMS sink there, plus `flags`.
    async fn start_embedded_command(command: Command, flags: &[&str]) -> Server {
        Server::start_embedded_command_env(command, flags, &[]).await
    }

    async fn start_embedded_command_env(command: Command, flags: &[&str], env: &[(&str, String)]) -> Server {
        let dir = Arc::new(test_dir());
        let sink = format!("file:{}", dir.path().join("sms.jsonl").display());
        let data = dir.path().join("data").display().to_string();
        let mut all = vec!["--listen", "127.0.0.1:0", "--data-dir", &data, "--sms-sink", &sink];
        all.extend_from_slice(flags);
        Server::start_command(dir.clone(), command, &all, env).await
    }

    async fn start_command(
        dir: Arc<tempfile::TempDir>,
        mut command: Command,
        flags: &[&str],
        env: &[(&str, String)],
    ) -> Server {
        // The suites speak plaintext frames; the encryption suite turns
        // the policy back on with `MISSIVE_ALLOW_PLAINTEXT=false`.
        command.arg("serve").args(flags).env("MISSIVE_LOG", "warn,warp=error").env("MISSIVE_ALLOW_PLAINTEXT", "true");
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
        Server { backend: Backend::Embedded(child), api: Api::new(&base), ws_url, dir }
    }

    /// An embedded server whatever mode the suite runs in (for what only
    /// the gateway's own media storage shows: local uploads and downloads).
    pub async fn start_embedded() -> Server {
        Server::start_embedded_with(&[]).await
    }

    /// [`Server::start_embedded`] with extra `missive serve` flags.
    pub async fn start_embedded_with(flags: &[&str]) -> Server {
        Server::start_embedded_command(Command::new(env!("CARGO_BIN_EXE_missive")), flags).await
    }

    /// The embedded server's process id.
    pub fn embedded_pid(&self) -> u32 {
        match &self.backend {
            Backend::Embedded(child) => child.id().expect("the server runs"),
            Backend::Kafka(_) => panic!("a Kafka-mode cluster has no single process"),
        }
    }

    pub fn sms_file(&self) -> PathBuf {
        self.dir.path().join("sms.jsonl")
    }

    /// `kill -9`: no shutdown hooks run.
    pub async fn kill9(mut self) -> Arc<tempfile::TempDir> {
        let Backend::Embedded(child) = &mut self.backend else {
            panic!("kill9 of a whole cluster: use Cluster::kill9")
        };
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
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
        eventually(what, WAIT, async || {
            let (status, body) = self.api.get(path, Some(token)).await.expect("GET");
            assert_eq!(status, 200, "GET {path}: {body}");
            if ready(&body) { Ok(body) } else { Err(body) }
        })
        .await
    }
}

impl Server {
    /// `kill -9` of every Missive process, then a start on the same state
    /// (embedded: the one server; Kafka: processors and gateways).
    pub async fn crash_and_restart(self) -> Server {
        let Some(cluster) = self.cluster() else { return Server::start_in(self.kill9().await).await };
        for name in CLUSTER_MEMBERS {
            cluster.kill9(name).await;
        }
        for name in CLUSTER_MEMBERS {
            cluster.restart(name).await;
        }
        self
    }

    /// Stops the gateways, drops their directory projections with
    /// `missive rebuild directory`, and starts them again (they refold it
    /// from `events.user` before serving).
    pub async fn rebuild_directory(self) -> Server {
        let rebuild = |data: PathBuf| {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_missive"))
                .args(["rebuild", "directory", "--drop", "--data-dir"])
                .arg(data)
                .output()
                .expect("missive rebuild");
            assert!(output.status.success(), "rebuild: {}", String::from_utf8_lossy(&output.stderr));
            assert!(String::from_utf8_lossy(&output.stdout).contains("dropped"), "{output:?}");
        };
        let Some(cluster) = self.cluster() else {
            let dir = self.kill9().await;
            rebuild(dir.path().join("data"));
            return Server::start_in(dir).await;
        };
        for name in ["gateway-0", "gateway-1"] {
            cluster.kill9(name).await;
            rebuild(cluster.dir.join("data").join(name));
            cluster.restart(name).await;
        }
        self
    }

    /// GETs `path` until it answers `status` (read models of other gateways lag).
    pub async fn wait_status(&self, path: &str, token: &str, status: u16) -> Value {
        eventually(&format!("GET {path} answers {status}"), WAIT, async || {
            let (got, body) = self.api.get(path, Some(token)).await.expect("GET");
            if got == status { Ok(body) } else { Err((got, body)) }
        })
        .await
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The stable error code of an HTTP error body.
pub fn code_of(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// Frames until one satisfies `done`; fails with what arrived otherwise.
pub async fn until(connection: &mut Connection, what: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    connection
        .collect_until(WAIT, |frames| frames.iter().any(&done))
        .await
        .unwrap_or_else(|error| panic!("{what}: {error:#}"))
}

/// Sends `frame` (which carries `"req": req`) and returns the answer to it.
pub async fn request(connection: &mut Connection, req: &str, frame: Value) -> Value {
    connection.send_json(&frame).await.expect("send frame");
    let frames = until(connection, req, |frame| frame["req"] == req).await;
    frames.into_iter().find(|frame| frame["req"] == req).expect("answer")
}

/// Sends `tag` (as req, client id and content) to a group; returns the answer.
pub async fn send_to_group(connection: &mut Connection, group: &str, tag: &str) -> Value {
    let frame = json!({"type": "send", "req": tag, "to": {"group": group}, "client_msg_id": tag, "content": tag});
    request(connection, tag, frame).await
}

/// Sends `tag` (as req, client id and content) to a user; returns the answer.
pub async fn send_to_user(connection: &mut Connection, user: &str, tag: &str) -> Value {
    let frame = json!({"type": "send", "req": tag, "to": {"user": user}, "client_msg_id": tag, "content": tag});
    request(connection, tag, frame).await
}
