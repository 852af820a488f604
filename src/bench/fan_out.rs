//! `--group`: one sender's messages fanned out to a large group.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use missive_client::{Account, Api};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::args::BenchArgs;
use super::scenarios::group_member;
use super::support::*;

/// `--group`: fan-out of one sender's messages to a group of every user.
pub(super) async fn group_fan_out(
    args: &BenchArgs,
    api: &Api,
    ws_url: &str,
    accounts: &[Account],
) -> anyhow::Result<()> {
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
