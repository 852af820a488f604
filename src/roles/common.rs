//! What every role shares: the read side, secrets and tokens on disk,
//! listening, and stopping together.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use missive_infra::{Log, LogError};
use missive_processors::{HandleError, ReadSide, RuntimeError, history, topics};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Accounts the contact-sync Bloom filter is sized for (1 % false positives; ~1.2 MB).
pub const USER_INDEX_CAPACITY: usize = 1_000_000;

/// The read side a client-serving process shares with its projections, its
/// registered-users filter filled from the directory already in `db`.
pub fn read_side(db: &rocksdb::DB) -> anyhow::Result<ReadSide> {
    let read_side = ReadSide::new(USER_INDEX_CAPACITY);
    let loaded = read_side.users.load(db)?;
    tracing::debug!(loaded, "registered users loaded into the contact-sync filter");
    Ok(read_side)
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    pub jwt_secret: String,
    pub phone_secret: String,
    /// Signing keys being rotated out: tokens they signed are still accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_jwt_secrets: Vec<String>,
}

/// Waits for the directory to fold `events.user` up to its current end
/// before serving: tokens, PINs and privacy are checked against it.
pub async fn directory_ready(log: &dyn Log, db: &rocksdb::DB) -> anyhow::Result<()> {
    missive_processors::wait_caught_up(log, db, history::DIRECTORY, topics::EVENTS_USER, Duration::from_secs(3600))
        .await
        .map_err(anyhow::Error::msg)
        .context("the directory did not catch up with events.user")
}

/// Binds the client listener and announces it on stdout (`listening on
/// http://ADDR`, or https with TLS: the line scripts and tests wait for).
pub async fn listen(address: SocketAddr, tls: bool) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}; is another server running there?"))?;
    let bound = listener.local_addr()?;
    println!("listening on {}://{bound}", if tls { "https" } else { "http" });
    std::io::stdout().flush()?;
    Ok((listener, bound))
}

/// Loads the platform's secrets, creating random ones on first start. In
/// Kafka mode every gateway must load the same file: user ids are derived
/// from phone numbers with `phone_secret`, and tokens are signed with
/// `jwt_secret`.
pub fn load_or_create_secrets(path: &Path) -> anyhow::Result<Secrets> {
    if path.exists() {
        let text = read_private(path)?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is corrupt; restore it or delete it (all sessions end)", path.display()));
    }
    let secrets = Secrets { jwt_secret: random_hex(), phone_secret: random_hex(), previous_jwt_secrets: Vec::new() };
    write_private(path, serde_json::to_string_pretty(&secrets)?.as_bytes())?;
    Ok(secrets)
}

/// 32 random bytes as hex.
pub(super) fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
}

/// Writes a secret file readable by its owner only (0600), atomically.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// The token in `path`, created (random, mode 0600) if there is none.
pub fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        write_private(path, random_hex().as_bytes())?;
    }
    read_token(path)
}

/// Reads a file holding a secret, refusing one that other users can read.
pub(super) fn read_private(path: &Path) -> anyhow::Result<String> {
    let mode = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} holds secrets but other users may read it (mode {:o}); run `chmod 600 {}` and start again",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates a directory (and its parents) readable by its owner only (0700);
/// an existing one is left as it is.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))
}

/// What a process does when one of its processor tasks fails.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnTaskFailure {
    /// Fail-stop: the process ends, and a supervisor or `infra/cluster`
    /// restarts it (Kafka mode: another instance may take its partitions).
    Stop,
    /// Embedded mode: when the store refuses writes (a full disk), the
    /// process stays up, serving reads and answering writes `unavailable`,
    /// until an operator frees space and restarts it; any other failure stops it.
    StayUpOnStorageFailure,
}

fn is_storage_failure(error: &RuntimeError) -> bool {
    matches!(
        error,
        RuntimeError::Log(LogError::Storage(_))
            | RuntimeError::Store { .. }
            | RuntimeError::Handle { source: HandleError::Storage(_), .. }
    )
}

/// Cancels `cancel` when any task ends, as `policy` says.
pub fn stop_when_any_task_ends(
    tasks: Vec<JoinHandle<Result<(), RuntimeError>>>,
    cancel: CancellationToken,
    policy: OnTaskFailure,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if tasks.is_empty() {
            return;
        }
        let (result, _, _) = futures::future::select_all(tasks).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) if policy == OnTaskFailure::StayUpOnStorageFailure && is_storage_failure(&error) => {
                tracing::error!(
                    %error,
                    "the store refuses writes: processing has stopped and writes are answered `unavailable`; free space in the data directory, then restart the server (nothing acknowledged is lost)"
                );
                return;
            }
            Ok(Err(error)) => tracing::error!(%error, "a processor task failed; shutting down"),
            Err(error) => tracing::error!(%error, "a processor task panicked; shutting down"),
        }
        cancel.cancel();
    })
}

/// Cancels `cancel` on SIGINT or SIGTERM.
pub fn stop_on_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
}

/// The token in a private file (whitespace around it ignored).
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = read_private(path)?.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("{} is empty; write the token into it", path.display());
    }
    Ok(token)
}
