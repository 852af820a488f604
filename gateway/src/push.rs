//! Push notifications. The inbox hands this gateway the messages it
//! appended for users with no open session (their sessions would be here:
//! a user's feed and connections live on the same gateway). The notifier
//! batches them (`missive_core::notifications`) into jobs on the
//! `notifications` topic; the webhook worker POSTs each job to the
//! configured provider (`--push-webhook`) and records how far it got, so a
//! restart resumes there (at least once).

use std::sync::Arc;
use std::time::Duration;

use missive_core::Millis;
use missive_core::notifications::{Batcher, OfflineMessage, PushJob};
use missive_infra::Clock;
use missive_infra::{Log, OutRecord};
use missive_processors::topics::NOTIFICATIONS;
use missive_schemas::Codec;
use missive_schemas::WireValue;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::worker::{self, StartAt, Tail};

/// The consumer group under which the webhook worker records its positions.
const WEBHOOK_GROUP: &str = "push-webhook";
/// Tries per job before it is given up (logged).
const WEBHOOK_ATTEMPTS: u32 = 4;

async fn emit(log: &dyn Log, codec: &Codec, job: &PushJob) {
    let value = match codec.encode_value(&WireValue::from(job)) {
        Ok(value) => value,
        Err(error) => return tracing::warn!(%error, "encoding a push job failed"),
    };
    let record = OutRecord {
        topic: NOTIFICATIONS.into(),
        partition: None,
        key: job.user.0.to_string().into_bytes(),
        value,
        headers: Vec::new(),
        timestamp: None,
    };
    if let Err(error) = log.append(vec![record]).await {
        tracing::warn!(%error, user = %job.user, "a push job could not be recorded; dropped");
    }
}

/// Turns offline messages into push jobs until `cancel`: 1:1 at once,
/// groups once their 3 s window ends.
pub async fn run_notifier(
    mut offline: mpsc::Receiver<OfflineMessage>,
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    clock: Clock,
    cancel: CancellationToken,
) {
    let now = || Millis(clock.now_ms());
    let mut batcher = Batcher::default();
    loop {
        let wait = batcher.next_due().map_or(Duration::from_secs(3600), |due| {
            Duration::from_millis(u64::try_from(due.0 - now().0).unwrap_or(0))
        });
        tokio::select! {
            _ = cancel.cancelled() => return,
            message = offline.recv() => {
                let Some(message) = message else { return };
                if let Some(job) = batcher.add(&message, now()) {
                    emit(log.as_ref(), &codec, &job).await;
                }
            }
            _ = tokio::time::sleep(wait) => {
                for job in batcher.due(now()) {
                    emit(log.as_ref(), &codec, &job).await;
                }
            }
        }
    }
}

/// The JSON a provider receives: ids and counts only.
pub fn job_json(job: &PushJob) -> serde_json::Value {
    json!({
        "user": job.user.to_string(),
        "conversation_id": job.conversation_id.to_string(),
        "group": job.group,
        "count": job.count,
        "message_ids": job.message_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "senders": job.senders.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "first_at": job.first_at.0,
        "at": job.at.0,
    })
}

async fn deliver(http: &reqwest::Client, url: &str, job: &PushJob) -> bool {
    let body = job_json(job);
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match http.post(url).json(&body).send().await {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => tracing::warn!(status = %response.status(), attempt, "push webhook refused a job"),
            Err(error) => tracing::warn!(%error, attempt, "push webhook unreachable"),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    false
}

/// POSTs the jobs of `partitions` to `url` until `cancel`, resuming from
/// the positions it recorded last time (the end of the topic at first).
pub async fn run_webhook(
    url: String,
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    partitions: Vec<u32>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let tail = Tail { group: WEBHOOK_GROUP, topic: NOTIFICATIONS, partitions, start: StartAt::End, batch: 256 };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    worker::run(log.as_ref(), &codec, &tail, &cancel, |job: PushJob| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            if !deliver(&http, &url, &job).await {
                tracing::warn!(user = %job.user, "a push job was given up after {WEBHOOK_ATTEMPTS} tries");
            }
            Ok(())
        }
    })
    .await
}
