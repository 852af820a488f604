//! What an encrypting device reads: answers to its requests, and feed
//! entries (session keys for it, sealed bodies to open, device changes,
//! low-key notices), each acked once handled.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::Value;

use super::{KEY_BATCH, Received, SecureDevice};

/// How long to wait for a frame the server owes (an answer, an entry).
const ANSWER_WAIT: Duration = Duration::from_secs(20);

impl SecureDevice {
    /// Waits for the answer to request `req`, handling feed entries that arrive meanwhile.
    pub(super) async fn answer(&mut self, req: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.connection.next_frame(left).await?.ok_or_else(|| anyhow!("connection closed"))?;
            if frame["req"] == req {
                return Ok(frame);
            }
            if frame["type"] == "event" {
                let received = self.handle_event(&frame).await?;
                self.pending.push(received);
            }
        }
    }

    /// Handles one `event` frame and acks it: a session key for this
    /// device goes to the key store, sealed bodies (messages, edits,
    /// reactions) are opened, a low-key notice for this device uploads more.
    pub(super) async fn handle_event(&mut self, frame: &Value) -> anyhow::Result<Received> {
        let seq = frame["seq"].as_u64().unwrap_or_default();
        let entry = frame["event"].clone();
        let mine = entry["device_id"] == self.account.device_id.as_str();
        let received = if entry["kind"] == "to_device" && mine && entry.get("body").is_some() {
            let (from, from_device) =
                (entry["from"].as_str().unwrap_or_default(), entry["from_device"].as_str().unwrap_or_default());
            let opened = match self.identity_of(from, from_device).await {
                Ok(identity) => self.crypto.receive_to_device(&entry, &identity),
                Err(error) => Err(error),
            };
            match opened {
                Ok(()) => Received::Other(entry),
                Err(error) => Received::Unreadable { entry, error: error.to_string() },
            }
        } else if let Some(encrypted) = entry.get("encrypted") {
            let conversation = entry["conversation_id"].as_str().unwrap_or_default();
            match self.crypto.open(conversation, encrypted) {
                Ok(opened) => Received::Message { payload: opened.payload, entry },
                Err(error) => Received::Unreadable { entry, error: error.to_string() },
            }
        } else {
            if entry["kind"] == "devices_changed" {
                // Fetch that user's devices afresh before the next send.
                self.known.remove(entry["user"].as_str().unwrap_or_default());
                self.device_changes.push(entry.clone());
            }
            if entry["kind"] == "keys_low" && mine {
                let body = self.crypto.upload_body(KEY_BATCH);
                let (status, answer) = self.api.put("/v1/keys", Some(&self.account.access_token), &body).await?;
                if status != 200 {
                    bail!("key upload answered {status}: {answer}");
                }
            }
            Received::Other(entry)
        };
        if seq > self.seq {
            self.seq = seq;
            self.connection.ack(seq).await?;
        }
        self.save()?;
        Ok(received)
    }

    /// Waits until a `devices_changed` entry about `user` arrived.
    pub async fn device_change_of(&mut self, user: &str, timeout: Duration) -> anyhow::Result<Value> {
        let about = |entry: &Value| entry["user"] == user;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(entry) = self.device_changes.iter().find(|entry| about(entry)) {
                return Ok(entry.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("no devices_changed entry about {user} in {timeout:?}");
            }
            let frame = self.connection.next_frame(left).await.unwrap_or(None);
            if let Some(frame) = frame.filter(|frame| frame["type"] == "event") {
                let received = self.handle_event(&frame).await?;
                self.pending.push(received);
            }
        }
    }

    /// Handles a frame read from [`SecureDevice::connection`] by the caller
    /// (which may wait on it beside other input): a feed entry is handled
    /// and acked; other frames come back as `Other`.
    pub async fn take_frame(&mut self, frame: Value) -> anyhow::Result<Received> {
        if frame["type"] == "event" { self.handle_event(&frame).await } else { Ok(Received::Other(frame)) }
    }

    /// Everything that arrives within `duration` (entries handled while
    /// waiting for answers first).
    pub async fn receive_for(&mut self, duration: Duration) -> anyhow::Result<Vec<Received>> {
        let mut got = std::mem::take(&mut self.pending);
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(got);
            }
            match self.connection.next_frame(left).await {
                Ok(Some(frame)) if frame["type"] == "event" => got.push(self.handle_event(&frame).await?),
                Ok(Some(_)) => {}
                Ok(None) => bail!("the connection closed"),
                Err(_) => return Ok(got),
            }
        }
    }

    /// What arrives until `done` says stop (entries handled while waiting
    /// for answers come first); an error when `timeout` passes first.
    pub async fn receive_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let mut got = std::mem::take(&mut self.pending);
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&got) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("{} entries in {timeout:?}, not what was awaited: {got:?}", got.len());
            }
            let frame = match self.connection.next_frame(left).await {
                Ok(Some(frame)) => frame,
                Ok(None) => bail!("the connection closed; received so far: {got:?}"),
                Err(_) => continue,
            };
            if frame["type"] == "event" {
                got.push(self.handle_event(&frame).await?);
            }
        }
        Ok(got)
    }
}
