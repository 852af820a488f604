//! What every scenario uses: a server to load (started here or given),
//! registered accounts, frames, figures.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use missive_client::{Account, Api, code_from_sink_file};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::args::BenchArgs;

pub(super) struct Server {
    pub(super) base: String,
    pub(super) sms_file: PathBuf,
    pub(super) child: Option<tokio::process::Child>,
    pub(super) _dir: Option<tempfile::TempDir>,
}

pub(super) async fn start_server(args: &BenchArgs) -> anyhow::Result<Server> {
    // Thousands of registrations from one address: lift the per-address
    // limits (not for --flood, which measures them).
    let lifted: &[&str] = if args.flood > 0 {
        &[]
    } else {
        &["--otp-per-address-per-hour", "100000000", "--verify-per-address-per-hour", "100000000"]
    };
    if let Some(base) = &args.server {
        let sms_file = args.sms_file.clone().context("--server needs --sms-file (the server's file: SMS sink)")?;
        return Ok(Server { base: base.clone(), sms_file, child: None, _dir: None });
    }
    let dir = tempfile::tempdir()?;
    let sms_file = dir.path().join("sms.jsonl");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--sms-sink")
        .arg(format!("file:{}", sms_file.display()))
        .args(lifted)
        // The load is plaintext frames (its cost is what it measures).
        .arg("--allow-plaintext")
        .env("MISSIVE_LOG", "warn,warp=error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next_line().await?.context("server exited before listening")?;
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_string();
        }
    };
    eprintln!("bench: started embedded server at {base} (pid {:?})", child.id());
    Ok(Server { base, sms_file, child: Some(child), _dir: Some(dir) })
}

/// What a 1:1 send carries: plaintext `content`, or a sealed body naming
/// the partner's device; both padded to `pad` bytes.
#[derive(Clone)]
pub(super) struct BodyShape {
    /// `Some(partner's device id)`: an `encrypted` body.
    pub(super) sealed_for: Option<String>,
    pub(super) pad: usize,
}

/// Writes user `me`'s send frame number `sent` to `partner` into `frame`;
/// the body starts with the send time in µs since `epoch` (digits, which
/// are base64 too), padded with `A`s. Ids are digits: nothing to escape.
pub(super) fn send_frame(
    frame: &mut String,
    sent: usize,
    (partner, me): (&str, &str),
    body: &BodyShape,
    epoch: Instant,
) {
    use std::fmt::Write;
    let stamp = epoch.elapsed().as_micros() as u64;
    frame.clear();
    let _ =
        write!(frame, r#"{{"type":"send","req":"{sent}","to":{{"user":"{partner}"}},"client_msg_id":"{me}-{sent}","#);
    let text_at = match &body.sealed_for {
        Some(_) => {
            frame.push_str(r#""encrypted":{"session_id":"benchsessionbenchsessionbenchsessionbench","ciphertext":""#);
            frame.len()
        }
        None => {
            frame.push_str(r#""content":""#);
            frame.len()
        }
    };
    let _ = write!(frame, "{stamp}");
    let written = frame.len() - text_at;
    frame.extend(std::iter::repeat_n('A', body.pad.saturating_sub(written)));
    match &body.sealed_for {
        Some(device) => {
            let _ = write!(frame, r#"","devices":{{"{partner}":["{device}"]}}}}}}"#);
        }
        None => frame.push_str(r#""}"#),
    }
}

/// The send time a body starts with (see [`send_frame`]).
pub(super) fn stamp_of(body: &str) -> Option<u64> {
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    body[..digits].parse().ok()
}

/// What a client reads of a server frame: borrowed views, no JSON tree.
#[derive(serde::Deserialize)]
pub(super) struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub(super) seq: u64,
    #[serde(default, borrow)]
    pub(super) event: Option<IncomingEvent<'a>>,
}

#[derive(serde::Deserialize)]
pub(super) struct IncomingEvent<'a> {
    #[serde(borrow)]
    pub(super) kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) from: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) encrypted: Option<IncomingSealed<'a>>,
}

#[derive(serde::Deserialize)]
pub(super) struct IncomingSealed<'a> {
    #[serde(borrow)]
    pub(super) ciphertext: std::borrow::Cow<'a, str>,
}

/// Publishes identity keys for each account (a sealed send names devices that have them).
pub(super) async fn publish_keys(api: &Api, accounts: &[Account]) -> anyhow::Result<()> {
    for account in accounts {
        let body = missive_client::keys::DeviceKeys::new().upload_body(&account.user_id, &account.device_id, 1);
        let (status, answer) = api.put("/v1/keys", Some(&account.access_token), &body).await?;
        anyhow::ensure!(status == 200, "key upload answered {status}: {answer}");
    }
    Ok(())
}

/// The server's count of appended log records (`/metrics`, refreshed
/// every second), if it exposes one.
pub(super) async fn log_records(api: &Api) -> Option<f64> {
    let text = api.get_text("/metrics").await.ok()?;
    text.lines().find_map(|line| line.strip_prefix("missive_log_records_appended_total ")?.trim().parse().ok())
}

/// The server's processor lag (`missive_processor_lag_records`, refreshed
/// every few seconds) summed over partitions, by processor.
pub(super) async fn processor_lag(api: &Api) -> Vec<(String, u64)> {
    let Ok(text) = api.get_text("/metrics").await else { return Vec::new() };
    let mut lag = std::collections::BTreeMap::<String, u64>::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("missive_processor_lag_records{") else { continue };
        let Some((labels, value)) = rest.split_once("} ") else { continue };
        let processor = labels.split(',').find_map(|label| label.strip_prefix("processor=\"")?.strip_suffix('"'));
        if let (Some(processor), Ok(value)) = (processor, value.trim().parse::<f64>()) {
            *lag.entry(processor.to_string()).or_default() += value.max(0.0) as u64;
        }
    }
    lag.into_iter().collect()
}

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

pub(super) async fn register_all(
    api: &Api,
    sms_file: &std::path::Path,
    count: usize,
    tag: &str,
) -> anyhow::Result<Vec<Account>> {
    let started = Instant::now();
    let mut accounts = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
        let registrations = chunk.iter().map(|index| {
            let phone = format!("+1{}{:07}", tag, index);
            let api = api.clone();
            let sms_file = sms_file.to_path_buf();
            async move {
                api.register(&phone, "bench", |phone| async move {
                    code_from_sink_file(&sms_file, &phone, Duration::from_secs(30)).await
                })
                .await
            }
        });
        for account in futures::future::join_all(registrations).await {
            accounts.push(account.map_err(|error| {
                if error.to_string().contains("429") {
                    error.context(
                        "the server rate-limits registrations per client address; for load tests start it with \
                         MISSIVE_OTP_PER_ADDRESS_PER_HOUR=1000000 MISSIVE_VERIFY_PER_ADDRESS_PER_HOUR=1000000",
                    )
                } else {
                    error
                }
            })?);
        }
    }
    eprintln!("bench: registered {count} users in {:.1}s", started.elapsed().as_secs_f64());
    Ok(accounts)
}

pub(super) fn percentile(sorted: &[u64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}
