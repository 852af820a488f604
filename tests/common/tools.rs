//! The operator tools (`replay`, `stats`, `dead-letters`, `rebuild`) run
//! against a running server.

use super::*;

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
