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

/// A local Kafka-mode cluster started with `missive cluster up` in its own
/// directory; `down` runs when it drops.
pub struct Cluster {
    pub dir: PathBuf,
    pub gateways: Vec<String>,
    pub schema_registry: String,
    pub brokers: String,
}

impl Cluster {
    fn command(dir: &std::path::Path) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_missive"));
        command
            .env("MISSIVE_CLUSTER_DIR", dir)
            .env("MISSIVE_LOG", "warn,warp=error,librdkafka=error,missive_processors::runtime=info");
        command
    }

    /// `missive cluster up`, with codes going to `sms_file`.
    pub async fn start(dir: PathBuf, sms_file: &std::path::Path) -> Cluster {
        Cluster::start_with_env(dir, sms_file, &[]).await
    }

    /// Like `start`, with extra environment for every member (`MISSIVE_*` settings).
    pub async fn start_with_env(dir: PathBuf, sms_file: &std::path::Path, env: &[(&str, String)]) -> Cluster {
        let mut command = Cluster::command(&dir);
        command.args(["cluster", "up"]).env("MISSIVE_SMS_SINK", format!("file:{}", sms_file.display()));
        for (name, value) in env {
            command.env(name, value);
        }
        let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("cluster up");
        assert!(output.status.success(), "cluster up failed: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary: Value = serde_json::from_str(stdout.lines().last().expect("summary line")).expect("summary JSON");
        let text = |key: &str| summary[key].as_str().expect("address").to_string();
        Cluster {
            gateways: summary["gateways"]
                .as_array()
                .expect("gateways")
                .iter()
                .filter_map(|url| url.as_str().map(str::to_string))
                .collect(),
            schema_registry: text("schema_registry"),
            brokers: text("brokers"),
            dir,
        }
    }

    /// Runs a `missive cluster` subcommand; returns the summary JSON.
    pub async fn cluster(&self, args: &[&str]) -> Value {
        let mut command = Cluster::command(&self.dir);
        command.arg("cluster").args(args);
        let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("cluster");
        assert!(output.status.success(), "cluster {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
    }

    /// The pid of a member (`gateway-0`, `process-1`, ...).
    pub async fn pid(&self, name: &str) -> u32 {
        let status = self.cluster(&["status"]).await;
        status["processes"]
            .as_array()
            .and_then(|members| members.iter().find(|member| member["name"] == name))
            .and_then(|member| member["pid"].as_u64())
            .expect("member pid") as u32
    }

    /// `kill -9` of one member; returns once it is gone (a process still
    /// exiting holds its port, and `cluster restart` would take it for alive).
    pub async fn kill9(&self, name: &str) {
        let pid = self.pid(name).await;
        let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill -9 {name} ({pid})");
        let deadline = tokio::time::Instant::now() + WAIT;
        while running(pid) {
            assert!(tokio::time::Instant::now() < deadline, "{name} ({pid}) survived kill -9");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn restart(&self, name: &str) {
        self.cluster(&["restart", name]).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Cluster::command(&self.dir).args(["cluster", "down"]).output();
        if std::thread::panicking() {
            // Keep the members' logs of a failed test for diagnosis.
            let kept = std::env::temp_dir().join(format!("missive-failed-cluster-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&kept);
            if let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) {
                for entry in entries.flatten() {
                    let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
                }
            }
            eprintln!("cluster logs kept in {}", kept.display());
        }
    }
}

impl Server {
    /// A fresh server in the mode the suite runs in.
    pub async fn start() -> Server {
        Server::start_with_env(&[]).await
    }

    /// A fresh server in the suite's mode, with extra environment (`MISSIVE_*` settings).
    pub async fn start_with_env(env: &[(&str, String)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
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
        let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
        command.stderr(std::fs::File::create(log).expect("log file"));
        Server::start_embedded_command_env(command, &[], &[("MISSIVE_LOG", level.to_string())]).await
    }

    /// An embedded server in a fresh directory with its SMS sink there, plus `flags`.
    async fn start_embedded_command(command: Command, flags: &[&str]) -> Server {
        Server::start_embedded_command_env(command, flags, &[]).await
    }

    async fn start_embedded_command_env(command: Command, flags: &[&str], env: &[(&str, String)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
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

/// The Missive processes of a local cluster (not the broker or registry).
const CLUSTER_MEMBERS: [&str; 4] = ["process-0", "process-1", "gateway-0", "gateway-1"];

/// Whether a process still runs or is still exiting: a killed
/// multi-threaded process's leader turns zombie while its other threads
/// are still tearing down (its files, RocksDB's lock included, stay open
/// until the last one is gone).
fn running(pid: u32) -> bool {
    let leader_alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    leader_alive || threads > 1
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

/// A webhook receiver on 127.0.0.1: answers every POST with 200 and keeps
/// the JSON bodies, in arrival order.
pub struct WebhookSink {
    pub url: String,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl WebhookSink {
    pub async fn start() -> WebhookSink {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/push", listener.local_addr().expect("address"));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: headers, then content-length bytes of body.
                        let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse().ok())
                            .unwrap_or(0);
                        while buffer.len() < end + 4 + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                        }
                        let body: Vec<u8> = buffer.drain(..end + 4 + length).skip(end + 4).collect();
                        if let Ok(json) = serde_json::from_slice::<Value>(&body) {
                            store.lock().expect("webhook store").push(json);
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WebhookSink { url, bodies }
    }

    pub fn received(&self) -> Vec<Value> {
        self.bodies.lock().expect("webhook store").clone()
    }

    /// Waits until `ready` accepts what was received; fails with `what` at the deadline.
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(what, WAIT, async || {
            let received = self.received();
            if ready(&received) { Ok(received) } else { Err(received) }
        })
        .await
    }
}

/// What a `missive` tool run printed: exit status, JSON lines of stdout, stderr.
pub struct ToolOutput {
    pub success: bool,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl Server {
    /// Where the tools find this server's log: its data directory (embedded) or the brokers.
    pub fn log_source(&self) -> Vec<String> {
        match &self.backend {
            Backend::Kafka(cluster) => vec!["--kafka".into(), cluster.brokers.clone()],
            Backend::Embedded(_) => vec!["--data-dir".into(), self.dir.path().join("data").display().to_string()],
        }
    }

    /// Runs `missive <args> <log source>` while the server keeps running.
    pub async fn tool(&self, args: &[&str]) -> ToolOutput {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).chain(self.log_source()).collect();
        run_tool(args).await
    }

    /// Runs a tool until its lines satisfy `ready` (the log may still be
    /// catching up); panics naming `what` after [`WAIT`].
    pub async fn tool_until(&self, args: &[&str], what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(what, WAIT, async || {
            let output = self.tool(args).await;
            assert!(output.success, "missive {args:?} failed: {}", output.stderr);
            if ready(&output.lines) { Ok(output.lines) } else { Err((output.lines, output.stderr)) }
        })
        .await
    }
}

/// Runs `missive <args>`; stdout must be JSON lines.
pub async fn run_tool(args: Vec<String>) -> ToolOutput {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_missive"));
    command.args(args).env("MISSIVE_LOG", "warn,librdkafka=error");
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run missive");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    ToolOutput { success: output.status.success(), lines, stderr: String::from_utf8_lossy(&output.stderr).into() }
}

impl Server {
    /// The live stores a rebuild compares against: the server's data
    /// directory (embedded), or each gateway's (Kafka mode), by name.
    pub fn live_stores(&self) -> Vec<(String, PathBuf)> {
        match &self.backend {
            Backend::Kafka(cluster) => ["gateway-0", "gateway-1"]
                .into_iter()
                .map(|name| (name.to_string(), cluster.dir.join("data").join(name)))
                .collect(),
            Backend::Embedded(_) => vec![("embedded".into(), self.dir.path().join("data"))],
        }
    }

    /// Runs `missive rebuild` against this server's log.
    pub fn rebuild_tool(&self) -> RebuildTool {
        RebuildTool { brokers: self.cluster().map(|cluster| cluster.brokers.clone()) }
    }

    /// Stops the process owning `store` (kill -9), runs `while_stopped`, starts it again.
    pub async fn with_store_stopped(self, store: &str, while_stopped: impl AsyncFnOnce()) -> Server {
        match self.cluster() {
            Some(cluster) => {
                cluster.kill9(store).await;
                while_stopped().await;
                cluster.restart(store).await;
                self
            }
            None => {
                let dir = self.kill9().await;
                while_stopped().await;
                Server::start_in(dir).await
            }
        }
    }
}

/// `missive rebuild`, pointed at a server's log (`--kafka` in Kafka mode).
#[derive(Clone)]
pub struct RebuildTool {
    brokers: Option<String>,
}

impl RebuildTool {
    /// `missive rebuild <projection> --data-dir <store> <flags>`.
    pub async fn run(&self, projection: &str, store: &std::path::Path, flags: &[&str]) -> ToolOutput {
        let mut args =
            vec!["rebuild".to_string(), projection.to_string(), "--data-dir".into(), store.display().to_string()];
        if let Some(brokers) = &self.brokers {
            args.extend(["--kafka".to_string(), brokers.clone()]);
        }
        args.extend(flags.iter().map(|flag| flag.to_string()));
        run_tool(args).await
    }
}

// Media uploads.

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub fn absolute(server: &Server, url: &str) -> String {
    if url.starts_with("http") { url.to_string() } else { format!("{}{url}", server.api.base) }
}

/// PUTs `bytes` to an upload URL (absolute, or a path on the gateway).
/// PUTs `bytes` as an honest client does: to a presigned S3 URL with the
/// checksum header of the bytes it sends (the slot's `headers` when they are
/// the declared bytes).
pub async fn put_bytes(server: &Server, url: &str, bytes: Vec<u8>) -> (u16, Value) {
    let headers = match url.contains("X-Amz-Signature") {
        true => {
            use base64::Engine;
            use sha2::Digest;
            let checksum = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes));
            json!({"x-amz-checksum-sha256": checksum})
        }
        false => json!({}),
    };
    put_with_headers(server, url, bytes, &headers).await
}

/// PUTs `bytes` with exactly these headers (an upload slot's `headers`).
pub async fn put_with_headers(server: &Server, url: &str, bytes: Vec<u8>, headers: &Value) -> (u16, Value) {
    let mut request = server.api.http.put(absolute(server, url)).body(bytes);
    for (name, value) in headers.as_object().into_iter().flatten() {
        request = request.header(name.as_str(), value.as_str().expect("header value"));
    }
    let response = request.send().await.expect("PUT");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Starts, PUTs and completes an upload; returns the media id.
pub async fn upload(server: &Server, token: &str, slot: Value, bytes: &[u8]) -> String {
    let (status, started) = server.api.post("/v1/media/uploads", Some(token), &slot).await.expect("upload start");
    assert_eq!(status, 200, "{started}");
    let media_id = started["media_id"].as_str().expect("media id").to_string();
    let (status, body) = put_bytes(server, started["upload_url"].as_str().expect("url"), bytes.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let complete = format!("/v1/media/uploads/{media_id}/complete");
    let (status, done) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
    assert_eq!(status, 200, "{done}");
    media_id
}

pub fn slot(kind: &str, content_type: &str, bytes: &[u8]) -> Value {
    json!({"kind": kind, "content_type": content_type, "size": bytes.len(), "sha256": sha256_hex(bytes)})
}

/// Lets `duration` pass because passing time is what is tested (a TTL
/// running out, a window closing, distinct timestamps); `why` says which.
/// Waiting for something to happen polls with a deadline instead.
pub async fn let_time_pass(duration: Duration, why: &str) {
    assert!(!why.is_empty(), "say why the time must pass");
    tokio::time::sleep(duration).await;
}

/// Checks that `holds` stays true for `duration` (asked every 50 ms): a
/// "nothing more happens" assertion that fails as soon as something does.
pub async fn assert_quiet_for(duration: Duration, what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        assert!(holds(), "{what}: it changed before {duration:?} had passed");
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` until it answers `Ok`, and returns that answer; fails
/// after `within` with `what` and the last `Err` it gave (what was seen
/// instead). The named wait for "until this happens": it asks again after
/// 20 ms, then less often, up to every 200 ms.
pub async fn eventually<T, Seen: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, Seen>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        match probe().await {
            Ok(answer) => return answer,
            Err(seen) => {
                assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}; last seen {seen:?}")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
