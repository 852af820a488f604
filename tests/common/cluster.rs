//! A local Kafka-mode cluster (broker, registry, two processors, two
//! gateways) driven through `infra/scripts/cluster.py`.

use super::*;

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
            .env("MISSIVE_ALLOW_PLAINTEXT", "true")
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
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            panic!("cluster up failed: {stderr}{}", log_tail(&stderr));
        }
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
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            panic!("cluster {args:?}: {stderr}{}", log_tail(&stderr));
        }
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

/// The Missive processes of a local cluster (not the broker or registry).
pub const CLUSTER_MEMBERS: [&str; 4] = ["process-0", "process-1", "gateway-0", "gateway-1"];

/// Whether a process still runs or is still exiting: a killed
/// multi-threaded process's leader turns zombie while its other threads
/// are still tearing down (its files, RocksDB's lock included, stay open
/// until the last one is gone).
pub fn running(pid: u32) -> bool {
    let leader_alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    leader_alive || threads > 1
}

/// The last lines of the member log a `missive cluster` error points to
/// ("see PATH"): the cluster's directory is gone once the test fails.
fn log_tail(stderr: &str) -> String {
    let Some(path) = stderr.split("see ").nth(1).and_then(|rest| rest.split_whitespace().next()) else {
        return String::new();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("\nthe last lines of {path}:\n{}", lines[lines.len().saturating_sub(40)..].join("\n"))
}
