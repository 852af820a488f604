//! The other scenarios: backlog push, profile changes, media uploads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use missive_client::{Account, Api};
use missive_replay::progress::Progress;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::args::BenchArgs;
use super::samples;
use super::support::*;

/// `--backlog`: the time a reconnecting device takes to get a backlog.
pub(super) async fn backlog_push(args: &BenchArgs, ws_url: &str, accounts: &[Account]) -> anyhow::Result<()> {
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
pub(super) async fn group_member(
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
pub(super) async fn profile_changes(args: &BenchArgs, api: &Api, accounts: &[Account]) -> anyhow::Result<()> {
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
pub(super) async fn media_uploads(args: &BenchArgs, api: &Api, accounts: &[Account]) -> anyhow::Result<()> {
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
