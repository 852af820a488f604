//! `missive bench`: a load generator speaking the real protocol over real
//! sockets. It registers users, connects one WebSocket each, has every user
//! send 1:1 messages to a partner, and prints send->deliver latency
//! percentiles and delivered messages per second. With `--idle N` it also
//! opens N idle connections and reports the server's RSS per connection.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use missive_client::{Account, Api, code_from_sink_file};
use missive_replay::progress::Progress;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A running server (`http://host:port`, started with `--sms-sink file:PATH`);
    /// without it the bench starts its own embedded server in a temporary directory.
    #[arg(long)]
    pub server: Option<String>,
    /// The SMS sink file of `--server`, to read one-time codes from.
    #[arg(long)]
    pub sms_file: Option<PathBuf>,
    /// Connected users, each sending to the next one.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Messages each user sends.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Total send rate in messages per second (0: as fast as the window allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Sends a user may have awaiting `sent` at once.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// After the message run, open this many idle connections and report RSS per connection.
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// Group fan-out instead of 1:1: one group of `--users` members, all
    /// connected; the first member sends `--messages` at `--rate` per second;
    /// reports the time from a send to its delivery at the last member.
    #[arg(long, default_value_t = false, conflicts_with = "profiles")]
    pub group: bool,
    /// Account changes instead of messages: every user changes its profile
    /// `--messages` times over HTTP, one request at a time (each answered
    /// once the change is in the directory); reports changes per second and
    /// request latency percentiles.
    #[arg(long, default_value_t = false)]
    pub profiles: bool,
    /// Media uploads instead of messages: every user uploads `--messages`
    /// objects of `--media-bytes` one after another (start, PUT to the
    /// URL given, complete); reports latency percentiles of each step and
    /// upload throughput. The server stores them where it is configured to
    /// (`MISSIVE_S3_*` in the environment: presigned S3 URLs).
    #[arg(long, default_value_t = false, conflicts_with_all = ["profiles", "group"])]
    pub media: bool,
    /// Reconnect with a backlog: the first user sends `--messages` to the
    /// second while the second is offline; then the second connects and the
    /// bench reports the time from its hello to the last backlog entry.
    #[arg(long, default_value_t = false, conflicts_with_all = ["profiles", "group", "media"])]
    pub backlog: bool,
    /// Size of each `--media` upload.
    #[arg(long, default_value_t = 5_000_000)]
    pub media_bytes: usize,
    /// Abuse: this many seconds of one address requesting codes for fresh
    /// numbers at `--flood-rate`, against a server with its default limits,
    /// while a connected user's WebSocket ping and `GET /healthz` are timed
    /// (10 s idle baseline first); prints their percentiles and the
    /// server's RSS.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["profiles", "group", "media", "backlog"])]
    pub flood: u64,
    /// Code requests per second during `--flood`.
    #[arg(long, default_value_t = 500)]
    pub flood_rate: u64,
}

struct Server {
    base: String,
    sms_file: PathBuf,
    child: Option<tokio::process::Child>,
    _dir: Option<tempfile::TempDir>,
}

async fn start_server(args: &BenchArgs) -> anyhow::Result<Server> {
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

/// Writes user `me`'s send frame number `sent` to `partner` into `frame`;
/// the content is the send time in µs since `epoch`. Ids are digits and
/// the content a number: nothing to escape.
fn send_frame(frame: &mut String, sent: usize, partner: &str, me: &str, epoch: Instant) {
    use std::fmt::Write;
    let stamp = epoch.elapsed().as_micros() as u64;
    frame.clear();
    let _ = write!(
        frame,
        r#"{{"type":"send","req":"{sent}","to":{{"user":"{partner}"}},"client_msg_id":"{me}-{sent}","content":"{stamp}"}}"#
    );
}

/// What a client reads of a server frame: borrowed views, no JSON tree.
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    seq: u64,
    #[serde(default, borrow)]
    event: Option<IncomingEvent<'a>>,
}

#[derive(serde::Deserialize)]
struct IncomingEvent<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    from: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

/// The server's count of appended log records (`/metrics`, refreshed
/// every second), if it exposes one.
async fn log_records(api: &Api) -> Option<f64> {
    let text = api.get_text("/metrics").await.ok()?;
    text.lines().find_map(|line| line.strip_prefix("missive_log_records_appended_total ")?.trim().parse().ok())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

async fn register_all(api: &Api, sms_file: &std::path::Path, count: usize, tag: &str) -> anyhow::Result<Vec<Account>> {
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

fn percentile(sorted: &[u64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.flood > 0 {
        let server = start_server(&args).await?;
        return flood::run(&args, &server.base, &server.sms_file, server.child.as_ref().and_then(|child| child.id()))
            .await;
    }
    if args.users < 2 {
        bail!("--users must be at least 2 (every user sends to a partner)");
    }
    let server = start_server(&args).await?;
    let api = Api::new(&server.base);
    let ws_url = format!("{}/v1/ws", server.base.replacen("http", "ws", 1));
    let tag = format!("{:03}", rand::random::<u16>() % 1000);
    let accounts = register_all(&api, &server.sms_file, args.users, &tag).await?;
    if args.group {
        return group_fan_out(&args, &api, &ws_url, &accounts).await;
    }
    if args.profiles {
        return profile_changes(&args, &api, &accounts).await;
    }
    if args.media {
        return media_uploads(&args, &api, &accounts).await;
    }
    if args.backlog {
        return backlog_push(&args, &ws_url, &accounts).await;
    }

    let epoch = Instant::now();
    let expected = (args.users * args.messages) as u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(samples::Latencies::default());
    let per_user_interval =
        if args.rate == 0 { None } else { Some(Duration::from_secs_f64(args.users as f64 / args.rate as f64)) };
    let mut sockets = Vec::new();
    for account in &accounts {
        let mut socket = missive_client::connect_socket(&ws_url, &account.access_token).await?;
        socket.send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string())).await?;
        sockets.push(socket);
    }
    eprintln!("bench: {} connections open; sending {} messages", sockets.len(), expected);
    let started = Instant::now();
    let cpu_before = missive_infra::process_cpu();
    let mut tasks = Vec::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let me = accounts[index].user_id.clone();
        let partner = accounts[(index + 1) % accounts.len()].user_id.clone();
        let delivered = delivered.clone();
        let latencies = latencies.clone();
        let messages = args.messages;
        let users = args.users;
        let window = args.window.max(1);
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = socket.split();
            let mut sent = 0usize;
            let mut confirmed = 0usize;
            let mut received = 0usize;
            let mut highest_seq = 0u64;
            let mut acked_seq = 0u64;
            // Spread users evenly over one interval so the load is steady, not bursts.
            let mut next_send = tokio::time::Instant::now()
                + per_user_interval.map_or(Duration::ZERO, |interval| interval.mul_f64(index as f64 / users as f64));
            // Two timers made once and moved, not one per loop turn: the
            // next send (fixed rate only) and the next ack, at most 20 ms
            // after the first unacked event (cumulative), so no per-user
            // timer ticks when there is nothing to ack.
            let send_timer = tokio::time::sleep_until(next_send);
            let ack_timer = tokio::time::sleep_until(next_send);
            tokio::pin!(send_timer, ack_timer);
            let mut ack_pending = false;
            let mut frame = String::with_capacity(160);
            loop {
                if confirmed >= messages && received >= messages {
                    return Ok::<(), anyhow::Error>(());
                }
                // Saturation: fill the window in one write.
                if per_user_interval.is_none() && sent < messages && sent - confirmed < window {
                    while sent < messages && sent - confirmed < window {
                        send_frame(&mut frame, sent, &partner, &me, epoch);
                        sink.feed(Message::text(frame.as_str())).await.map_err(|_| anyhow::anyhow!("send failed"))?;
                        sent += 1;
                    }
                    sink.flush().await.map_err(|_| anyhow::anyhow!("send failed"))?;
                }
                let timed_send = per_user_interval.is_some() && sent < messages && sent - confirmed < window;
                tokio::select! {
                    _ = &mut send_timer, if timed_send => {
                        send_frame(&mut frame, sent, &partner, &me, epoch);
                        sink.send(Message::text(frame.as_str())).await.map_err(|_| anyhow::anyhow!("send failed"))?;
                        sent += 1;
                        if let Some(interval) = per_user_interval {
                            next_send += interval;
                            send_timer.as_mut().reset(next_send);
                        }
                    }
                    _ = &mut ack_timer, if ack_pending => {
                        ack_pending = false;
                        if highest_seq > acked_seq {
                            acked_seq = highest_seq;
                            let _ = sink.send(Message::text(format!(r#"{{"type":"ack","seq":{acked_seq}}}"#))).await;
                        }
                    }
                    incoming = stream.next() => {
                        let Some(Ok(Message::Text(text))) = incoming else { return Err(anyhow::anyhow!("connection closed")) };
                        let incoming: Incoming<'_> = serde_json::from_str(&text)?;
                        match &*incoming.kind {
                            "sent" => confirmed += 1,
                            "event" => {
                                highest_seq = highest_seq.max(incoming.seq);
                                if !ack_pending {
                                    ack_pending = true;
                                    ack_timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(20));
                                }
                                if let Some(event) = incoming.event
                                    && event.kind == "message"
                                    && event.from.as_deref() != Some(me.as_str())
                                {
                                    if let Some(stamp) = event.content.and_then(|c| c.parse::<u64>().ok()) {
                                        latencies.record(epoch.elapsed().as_micros() as u64 - stamp);
                                    }
                                    received += 1;
                                    delivered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            "error" => return Err(anyhow::anyhow!("server error: {}", &*text)),
                            _ => {}
                        }
                    }
                }
            }
        }));
    }
    let progress = Progress::start("bench", "messages delivered", expected, delivered.clone());
    let mut failures = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(600), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                failures += 1;
                eprintln!("bench: client failed: {error}");
            }
            _ => failures += 1,
        }
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = missive_infra::process_cpu().saturating_sub(cpu_before);
    let mut samples = latencies.take();
    samples.sort_unstable();
    let total = delivered.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "users": args.users, "messages_per_user": args.messages, "rate_target": args.rate,
            "delivered": total, "expected": expected, "failed_clients": failures,
            // The load generator's own cost: sending, reading and acking, per delivered message.
            "bench_cpu_us_per_message": ((cpu.as_secs_f64() * 1e6 / total.max(1) as f64) * 10.0).round() / 10.0,
            "seconds": (elapsed * 100.0).round() / 100.0,
            "delivered_per_second": (total as f64 / elapsed).round(),
            "latency_ms": {"p50": percentile(&samples, 0.50), "p99": percentile(&samples, 0.99), "p999": percentile(&samples, 0.999), "max": percentile(&samples, 1.0)},
        })
    );
    if args.idle > 0 {
        let pid = server
            .child
            .as_ref()
            .and_then(|child| child.id())
            .context("--idle needs the bench's own server (omit --server)")?;
        let idle_accounts = register_all(&api, &server.sms_file, args.idle.min(1000), &format!("{tag}9")).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss_kib(pid).unwrap_or(0);
        let mut idle = Vec::with_capacity(args.idle);
        for index in 0..args.idle {
            let account = &idle_accounts[index % idle_accounts.len()];
            let (mut socket, _) =
                tokio_tungstenite::connect_async_with_config(&ws_url, None, true).await.context("idle connect")?;
            socket.send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string())).await?;
            let _welcome = socket.next().await;
            idle.push(socket);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid).unwrap_or(0);
        println!(
            "{}",
            json!({"idle_connections": args.idle, "server_rss_kib_before": before, "server_rss_kib_after": after,
                   "bytes_per_connection": ((after.saturating_sub(before)) * 1024) as f64 / args.idle as f64})
        );
        drop(idle);
    }
    if failures > 0 || total < expected {
        bail!("{failures} clients failed; {total} of {expected} messages delivered");
    }
    Ok(())
}

/// `--backlog`: the time a reconnecting device takes to get a backlog.
async fn backlog_push(args: &BenchArgs, ws_url: &str, accounts: &[Account]) -> anyhow::Result<()> {
    let (sender, recipient) = (&accounts[0], &accounts[1]);
    let socket = missive_client::connect_socket(ws_url, &sender.access_token).await?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(json!({"type": "hello", "token": sender.access_token}).to_string())).await?;
    let to = &recipient.user_id;
    let window = args.window.max(1);
    let (mut sent, mut confirmed) = (0usize, 0usize);
    while confirmed < args.messages {
        while sent < args.messages && sent - confirmed < window {
            let frame = format!(
                r#"{{"type":"send","req":"{sent}","to":{{"user":"{to}"}},"client_msg_id":"backlog-{sent}","content":"{sent}"}}"#
            );
            sink.send(Message::text(frame)).await?;
            sent += 1;
        }
        let Some(Ok(Message::Text(text))) = stream.next().await else { bail!("the sender's connection closed") };
        let frame: Incoming<'_> = serde_json::from_str(&text)?;
        match &*frame.kind {
            "sent" => confirmed += 1,
            "error" => bail!("server error: {}", &*text),
            _ => {}
        }
    }
    eprintln!("bench: {} messages waiting for an offline user; connecting it", args.messages);
    let started = Instant::now();
    let socket = missive_client::connect_socket(ws_url, &recipient.access_token).await?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(json!({"type": "hello", "token": recipient.access_token}).to_string())).await?;
    let mut first = None;
    let mut received = 0usize;
    while received < args.messages {
        let Some(Ok(Message::Text(text))) = tokio::time::timeout(Duration::from_secs(60), stream.next()).await? else {
            bail!("the recipient's connection closed after {received} entries")
        };
        let frame: Incoming<'_> = serde_json::from_str(&text)?;
        if frame.kind == "event" && frame.event.is_some_and(|event| event.kind == "message") {
            first.get_or_insert_with(|| started.elapsed());
            received += 1;
        }
    }
    let elapsed = started.elapsed();
    let millis = |duration: Duration| (duration.as_secs_f64() * 1e4).round() / 10.0;
    println!(
        "{}",
        json!({
            "backlog": args.messages, "received": received,
            "connect_to_first_ms": millis(first.unwrap_or_default()),
            "connect_to_last_ms": millis(elapsed),
            "entries_per_second": (received as f64 / elapsed.as_secs_f64()).round(),
        })
    );
    Ok(())
}

/// A per-connection reader for the group bench: acks its feed, and for
/// each message from someone else records (message index, arrival).
async fn group_member(
    socket: missive_client::Socket,
    me: String,
    messages: usize,
    epoch: Instant,
    arrivals: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let mut received = 0;
    while received < messages {
        let Some(Ok(Message::Text(text))) = stream.next().await else { bail!("connection closed") };
        let frame: Value = serde_json::from_str(&text)?;
        if frame["type"] == "error" {
            bail!("server error: {frame}");
        }
        if frame["type"] != "event" {
            continue;
        }
        let event = &frame["event"];
        if event["kind"] == "message" && event["from"] != me.as_str() {
            let (index, _) =
                event["content"].as_str().and_then(|content| content.split_once(':')).context("content")?;
            let at = epoch.elapsed().as_micros() as u64;
            if let Ok(mut arrivals) = arrivals.lock() {
                arrivals.push((index.parse()?, at));
            }
            received += 1;
        }
        if received % 8 == 0 || received == messages {
            let seq = frame["seq"].as_u64().unwrap_or(0);
            sink.send(Message::text(json!({"type": "ack", "seq": seq}).to_string())).await?;
        }
    }
    Ok(())
}

/// `--profiles`: every user changes its `about` `--messages` times, one
/// request at a time.
async fn profile_changes(args: &BenchArgs, api: &Api, accounts: &[Account]) -> anyhow::Result<()> {
    let expected = (accounts.len() * args.messages) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(samples::Latencies::default());
    let progress = Progress::start("bench", "profile changes", expected, done.clone());
    let started = Instant::now();
    let changes = accounts.iter().map(|account| {
        let (api, done, latencies) = (api.clone(), done.clone(), latencies.clone());
        let (token, messages) = (account.access_token.clone(), args.messages);
        async move {
            for index in 0..messages {
                let sent = Instant::now();
                let change = json!({"about": format!("change {index}")});
                let mut tries = 0;
                loop {
                    let (status, body) = api.put("/v1/profile", Some(&token), &change).await?;
                    match status {
                        200 => break,
                        // Accepted but not yet answered: the same change again, as a client would.
                        503 if tries < 10 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        _ => bail!("a profile change answered {status}: {body}"),
                    }
                }
                latencies.record(sent.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    });
    let results = futures::future::join_all(changes).await;
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    let mut samples = latencies.take();
    samples.sort_unstable();
    let total = done.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "users": accounts.len(), "changes_per_user": args.messages, "changes": total, "expected": expected,
            "failed_clients": failures.len(), "seconds": (elapsed * 100.0).round() / 100.0,
            "changes_per_second": (total as f64 / elapsed).round(),
            "latency_ms": {"p50": percentile(&samples, 0.50), "p99": percentile(&samples, 0.99), "max": percentile(&samples, 1.0)},
        })
    );
    if let Some(error) = failures.first() {
        bail!("{} clients failed, the first with: {error}", failures.len());
    }
    Ok(())
}

/// `--media`: every user uploads `--messages` objects of `--media-bytes`,
/// one at a time: start, PUT, complete.
async fn media_uploads(args: &BenchArgs, api: &Api, accounts: &[Account]) -> anyhow::Result<()> {
    use sha2::Digest as _;
    let payload: bytes::Bytes = (0..args.media_bytes).map(|index| (index % 251) as u8).collect::<Vec<u8>>().into();
    let sha256 = hex::encode(sha2::Sha256::digest(&payload));
    let expected = (accounts.len() * args.messages) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let [starts, puts, completes, totals] = std::array::from_fn(|_| Arc::new(samples::Latencies::default()));
    let progress = Progress::start("bench", "uploads", expected, done.clone());
    let started = Instant::now();
    let uploads = accounts.iter().map(|account| {
        let (api, done, payload, sha256) = (api.clone(), done.clone(), payload.clone(), sha256.clone());
        let (starts, puts, completes, totals) = (starts.clone(), puts.clone(), completes.clone(), totals.clone());
        let token = account.access_token.clone();
        async move {
            for _ in 0..args.messages {
                let begun = Instant::now();
                let slot = json!({"kind": "document", "content_type": "application/octet-stream",
                    "size": payload.len(), "sha256": sha256});
                let (status, body) = api.post("/v1/media/uploads", Some(&token), &slot).await?;
                if status != 200 {
                    bail!("an upload start answered {status}: {body}");
                }
                starts.record(begun.elapsed().as_micros() as u64);
                let url = body["upload_url"].as_str().context("upload_url")?;
                let url = if url.starts_with("http") { url.to_string() } else { format!("{}{url}", api.base) };
                let put_begun = Instant::now();
                let response = api.http.put(&url).body(payload.clone()).send().await?;
                if !response.status().is_success() {
                    bail!(
                        "the upload PUT answered {}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    );
                }
                puts.record(put_begun.elapsed().as_micros() as u64);
                let media_id = body["media_id"].as_str().context("media_id")?;
                let complete_begun = Instant::now();
                let path = format!("/v1/media/uploads/{media_id}/complete");
                let (status, body) = api.post(&path, Some(&token), &json!({})).await?;
                if status != 200 {
                    bail!("an upload complete answered {status}: {body}");
                }
                completes.record(complete_begun.elapsed().as_micros() as u64);
                totals.record(begun.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    });
    let results = futures::future::join_all(uploads).await;
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    let summary = |latencies: &samples::Latencies| {
        let mut samples = latencies.take();
        samples.sort_unstable();
        json!({"p50": percentile(&samples, 0.50), "p99": percentile(&samples, 0.99), "max": percentile(&samples, 1.0)})
    };
    let total = done.load(Ordering::Relaxed);
    let megabytes = (total as f64 * args.media_bytes as f64) / 1e6;
    println!(
        "{}",
        json!({
            "users": accounts.len(), "uploads_per_user": args.messages, "bytes_each": args.media_bytes,
            "uploads": total, "expected": expected, "failed_clients": failures.len(),
            "seconds": (elapsed * 100.0).round() / 100.0,
            "megabytes_per_second": (megabytes / elapsed * 10.0).round() / 10.0,
            "start_ms": summary(&starts), "put_ms": summary(&puts), "complete_ms": summary(&completes),
            "upload_total_ms": summary(&totals),
        })
    );
    if let Some(error) = failures.first() {
        bail!("{} clients failed, the first with: {error}", failures.len());
    }
    Ok(())
}

/// `--group`: fan-out of one sender's messages to a group of every user.
async fn group_fan_out(args: &BenchArgs, api: &Api, ws_url: &str, accounts: &[Account]) -> anyhow::Result<()> {
    let (sender, members) = accounts.split_first().context("no users")?;
    let body = json!({"name": "bench", "members": members.iter().map(|a| a.user_id.clone()).collect::<Vec<_>>(),
        "max_members": accounts.len().max(256)});
    let (status, group) = api.post("/v1/groups", Some(&sender.access_token), &body).await?;
    if status != 200 {
        bail!("creating the group answered {status}: {group}");
    }
    let group_id = group["conversation_id"].as_str().context("group id")?.to_string();
    let epoch = Instant::now();
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for account in members {
        let mut socket = missive_client::connect_socket(ws_url, &account.access_token).await?;
        socket.send(Message::text(json!({"type": "hello", "token": account.access_token}).to_string())).await?;
        readers.push(tokio::spawn(group_member(
            socket,
            account.user_id.clone(),
            args.messages,
            epoch,
            arrivals.clone(),
        )));
    }
    let mut socket = missive_client::connect_socket(ws_url, &sender.access_token).await?;
    socket.send(Message::text(json!({"type": "hello", "token": sender.access_token}).to_string())).await?;
    eprintln!("bench: group of {} connected; sending {} messages at {}/s", accounts.len(), args.messages, args.rate);
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut sent_at = vec![0u64; args.messages];
    let mut next = tokio::time::Instant::now();
    let (mut sink, mut stream) = socket.split();
    // What the sender's own feed brings it: receipt entries, counted.
    let receipts = Arc::new(AtomicU64::new(0));
    let drain = {
        let receipts = receipts.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                if let Ok(frame) = serde_json::from_str::<Incoming<'_>>(&text)
                    && frame.event.is_some_and(|event| event.kind == "receipt")
                {
                    receipts.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let records_before = log_records(api).await;
    for (index, stamp) in sent_at.iter_mut().enumerate() {
        tokio::time::sleep_until(next).await;
        next += interval;
        *stamp = epoch.elapsed().as_micros() as u64;
        let frame = json!({"type": "send", "req": index.to_string(), "to": {"group": group_id},
            "client_msg_id": format!("g{index}"), "content": format!("{index}:{stamp}")});
        sink.send(Message::text(frame.to_string())).await?;
    }
    let mut failures = 0;
    for reader in readers {
        match tokio::time::timeout(Duration::from_secs(300), reader).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                failures += 1;
                eprintln!("bench: member failed: {error}");
            }
            _ => failures += 1,
        }
    }
    // The sender's receipts trail the last delivery by an ack round.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drain.abort();
    let records = match (records_before, log_records(api).await) {
        (Some(before), Some(after)) => json!(((after - before) / args.messages.max(1) as f64).round()),
        _ => Value::Null,
    };
    let arrivals = arrivals.lock().map(|arrivals| arrivals.clone()).unwrap_or_default();
    let mut last = vec![0u64; args.messages];
    let mut each: Vec<u64> = Vec::with_capacity(arrivals.len());
    for (index, at) in &arrivals {
        let index = *index as usize;
        let latency = at.saturating_sub(sent_at[index]);
        last[index] = last[index].max(latency);
        each.push(latency);
    }
    last.sort_unstable();
    each.sort_unstable();
    println!(
        "{}",
        json!({
            "group_members": accounts.len(), "messages": args.messages, "rate": args.rate,
            "deliveries": arrivals.len(), "expected_deliveries": members.len() * args.messages, "failed_members": failures,
            "last_member_ms": {"p50": percentile(&last, 0.50), "p99": percentile(&last, 0.99), "max": percentile(&last, 1.0)},
            "each_delivery_ms": {"p50": percentile(&each, 0.50), "p99": percentile(&each, 0.99)},
            "sender_receipts_per_message": receipts.load(Ordering::Relaxed) as f64 / args.messages.max(1) as f64,
            // Every record the server appended meanwhile (deliveries, acks, receipts), per message sent.
            "log_records_per_message": records,
        })
    );
    if failures > 0 || arrivals.len() < members.len() * args.messages {
        bail!("{failures} members failed; {} of {} deliveries", arrivals.len(), members.len() * args.messages);
    }
    Ok(())
}

mod samples {
    use std::sync::Mutex;

    /// Latency samples in microseconds.
    #[derive(Default)]
    pub struct Latencies(Mutex<Vec<u64>>);

    impl Latencies {
        pub fn record(&self, micros: u64) {
            if let Ok(mut samples) = self.0.lock() {
                samples.push(micros);
            }
        }
        pub fn take(&self) -> Vec<u64> {
            self.0.lock().map(|mut samples| std::mem::take(&mut *samples)).unwrap_or_default()
        }
    }
}

/// `--flood`: code requests from one address for fresh numbers, while the
/// service a connected user sees is timed.
mod flood {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use missive_client::{Api, Connection, code_from_sink_file};
    use serde_json::json;

    use super::{BenchArgs, percentile, rss_kib};

    /// WebSocket ping and `GET /healthz` round trips (µs), one of each every 50 ms.
    async fn probe(connection: &mut Connection, api: &Api, stop: &AtomicBool) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
        let (mut pings, mut health) = (Vec::new(), Vec::new());
        let http = api.http.clone();
        let healthz = format!("{}/healthz", api.base);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            connection.send_json(&json!({"type": "ping"})).await?;
            connection
                .collect_until(Duration::from_secs(30), |frames| frames.iter().any(|f| f["type"] == "pong"))
                .await?;
            pings.push(started.elapsed().as_micros() as u64);
            let started = Instant::now();
            let status = http.get(&healthz).send().await?.status();
            anyhow::ensure!(status.is_success(), "healthz answered {status}");
            health.push(started.elapsed().as_micros() as u64);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pings.sort_unstable();
        health.sort_unstable();
        Ok((pings, health))
    }

    fn line(what: &str, sorted: &[u64]) -> String {
        format!(
            "{what}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
            sorted.len(),
            percentile(sorted, 0.50),
            percentile(sorted, 0.99),
            percentile(sorted, 1.0)
        )
    }

    pub async fn run(args: &BenchArgs, base: &str, sms_file: &std::path::Path, pid: Option<u32>) -> anyhow::Result<()> {
        let api = Api::new(base);
        let tag = format!("{:03}", rand::random::<u16>() % 1000);
        let account = api
            .register(&format!("+1{tag}5550000"), "bench", |phone| async move {
                code_from_sink_file(sms_file, &phone, Duration::from_secs(30)).await
            })
            .await?;
        let ws_url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        let mut connection = Connection::open(&ws_url, &account.access_token, None).await?;
        let rss = || pid.and_then(rss_kib).unwrap_or(0);

        eprintln!("bench: 10 s idle baseline");
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        let (idle_pings, idle_health) = probe(&mut connection, &api, &stop).await?;
        stopper.await?;
        let rss_before = rss();

        eprintln!("bench: {} s of {} code requests/s from one address", args.flood, args.flood_rate);
        let (sent, accepted, refused) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let peak = Arc::new(AtomicU64::new(rss_before));
        stop.store(false, Ordering::Relaxed);
        let flooder = {
            let (stop, sent, accepted, refused, peak) =
                (stop.clone(), sent.clone(), accepted.clone(), refused.clone(), peak.clone());
            let (url, seconds, rate) = (format!("{base}/v1/auth/otp"), args.flood, args.flood_rate.max(1));
            let http = api.http.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
                let mut in_flight = tokio::task::JoinSet::new();
                let mut number = 0u64;
                while started.elapsed() < Duration::from_secs(seconds) {
                    tick.tick().await;
                    number += 1;
                    let (http, url) = (http.clone(), url.clone());
                    let (accepted, refused) = (accepted.clone(), refused.clone());
                    in_flight.spawn(async move {
                        let body = json!({"phone": format!("+1999{number:08}")});
                        match http.post(&url).json(&body).send().await.map(|response| response.status().as_u16()) {
                            Ok(202) => accepted.fetch_add(1, Ordering::Relaxed),
                            _ => refused.fetch_add(1, Ordering::Relaxed),
                        };
                    });
                    sent.fetch_add(1, Ordering::Relaxed);
                    if number.is_multiple_of(rate) {
                        peak.fetch_max(pid.and_then(rss_kib).unwrap_or(0), Ordering::Relaxed);
                        eprintln!("bench: {} s, {} requests", started.elapsed().as_secs(), number);
                    }
                    while in_flight.try_join_next().is_some() {}
                }
                while in_flight.join_next().await.is_some() {}
                stop.store(true, Ordering::Relaxed);
            })
        };
        let (flood_pings, flood_health) = probe(&mut connection, &api, &stop).await?;
        flooder.await?;
        let rss_after = rss();
        println!("{}", line("idle   ws ping ", &idle_pings));
        println!("{}", line("idle   healthz ", &idle_health));
        println!("{}", line("flood  ws ping ", &flood_pings));
        println!("{}", line("flood  healthz ", &flood_health));
        let ratio = |flood: &[u64], idle: &[u64]| percentile(flood, 0.99) / percentile(idle, 0.99).max(0.001);
        println!(
            "p99 flood/idle: ws ping {:.2}x, healthz {:.2}x (target <= 2x)",
            ratio(&flood_pings, &idle_pings),
            ratio(&flood_health, &idle_health)
        );
        println!(
            "code requests: {} sent, {} accepted (202), {} refused; server RSS {} MiB before, {} MiB peak, {} MiB after",
            sent.load(Ordering::Relaxed),
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            rss_before >> 10,
            peak.load(Ordering::Relaxed).max(rss_after) >> 10,
            rss_after >> 10
        );
        Ok(())
    }
}
