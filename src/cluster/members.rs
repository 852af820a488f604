//! The members of a local cluster: how one is started and stopped, and the
//! state file (`<dir>/cluster.json`) that remembers them.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Member {
    pub(super) name: String,
    pub(super) pid: u32,
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    /// The member is ready once it accepts TCP connections here (or prints `ready_line`).
    pub(super) port: Option<u16>,
    pub(super) ready_line: Option<String>,
    pub(super) cwd: PathBuf,
    /// The `MISSIVE_*` and `AWS_*` settings of `up`, for `restart` to start it as it was.
    #[serde(default)]
    pub(super) env: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct State {
    pub(super) brokers: String,
    pub(super) schema_registry: String,
    pub(super) gateways: Vec<String>,
    pub(super) members: Vec<Member>,
}

impl State {
    pub(super) fn summary(&self) -> serde_json::Value {
        let processes: Vec<_> = self
            .members
            .iter()
            .map(|member| json!({"name": member.name, "pid": member.pid, "running": alive(member.pid)}))
            .collect();
        json!({
            "gateways": self.gateways,
            "schema_registry": self.schema_registry,
            "brokers": self.brokers,
            "processes": processes,
        })
    }
}

pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub(super) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; Z is a zombie.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether a process is on its way out (the kernel's PF_EXITING flag, the
/// ninth field of /proc/PID/stat) but not yet gone.
pub(super) fn exiting(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
            .is_some_and(|flags| flags & PF_EXITING != 0)
    })
}

pub(super) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").args([format!("-{name}"), pid.to_string()]).stderr(Stdio::null()).status();
}

pub(super) fn state_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

pub(super) fn load(dir: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read_to_string(state_path(dir)) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is corrupt; stop what runs and delete it", state_path(dir).display()))?,
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

pub(super) fn save(dir: &Path, state: &State) -> anyhow::Result<()> {
    let temporary = dir.join("cluster.json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&temporary, state_path(dir))?;
    Ok(())
}

pub(super) fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

/// Starts a member detached (own process group, output to its log) and waits until it is ready.
pub(super) fn launch(dir: &Path, member: &mut Member) -> anyhow::Result<()> {
    let log = log_path(dir, &member.name);
    std::fs::create_dir_all(log.parent().unwrap_or(dir))?;
    std::fs::create_dir_all(&member.cwd)?;
    let start_len = std::fs::metadata(&log).map(|meta| meta.len()).unwrap_or(0);
    let output = OpenOptions::new().create(true).append(true).open(&log)?;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(&member.program)
            .args(&member.args)
            .envs(member.env.iter().map(|(key, value)| (key, value)))
            .current_dir(&member.cwd)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} ({})", member.name, member.program.display()))?
    };
    member.pid = child.id();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = match (&member.port, &member.ready_line) {
            (_, Some(line)) => std::fs::read(&log)
                .map(|bytes| {
                    String::from_utf8_lossy(&bytes[start_len.min(bytes.len() as u64) as usize..])
                        .contains(line.as_str())
                })
                .unwrap_or(false),
            (Some(port), None) => std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok(),
            (None, None) => true,
        };
        if ready {
            eprintln!("cluster: {} ready (pid {})", member.name, member.pid);
            return Ok(());
        }
        if !alive(member.pid) {
            bail!("{} exited during start-up; see {}", member.name, log.display());
        }
        if Instant::now() > deadline {
            bail!("{} not ready after {READY_TIMEOUT:?}; see {}", member.name, log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, up to 10 s of grace, then SIGKILL.
pub(super) fn stop_all(members: &[&Member]) {
    for member in members.iter().filter(|member| alive(member.pid)) {
        signal(member.pid, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while members.iter().any(|member| alive(member.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for member in members.iter().filter(|member| alive(member.pid)) {
        eprintln!("cluster: {} did not stop on SIGTERM; killing it", member.name);
        signal(member.pid, "KILL");
    }
}
