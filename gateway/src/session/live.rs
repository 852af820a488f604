//! Live signals: typing and recording indicators. A gateway appends one
//! `Typing` record per signal to the `ephemeral` topic (keyed by
//! conversation); every gateway tails every partition of it from the end
//! and hands each signal to its own open sessions of the recipients. Never
//! stored in feeds, never replayed to a device that connects later, and
//! dropped if it has expired by the time it is read. In a 1:1 chat the
//! recipient's gateway drops a signal from someone the recipient blocked:
//! its directory shows the block as soon as the block call was answered
//! (the sender's gateway checks too, but its directory may be a moment
//! behind).

use std::sync::Arc;

use missive_core::ConversationId;
use missive_infra::{Clock, Log, Offset, TopicPartition};
use missive_processors::partitions_of;
use missive_processors::topics::EPHEMERAL;
use missive_schemas::wire::Typing;
use missive_schemas::{Codec, WireValue};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::reads::ReadModels;
use crate::session::registry::Sessions;
use crate::worker::poll_decoded;

/// An indicator lasts this long unless renewed.
pub const TYPING_TTL_MS: i64 = 5_000;

/// Where the live router starts: the end of every `ephemeral` partition,
/// found before the gateway serves (nothing older is ever delivered).
pub async fn start_positions(log: &dyn Log) -> anyhow::Result<Vec<(TopicPartition, Offset)>> {
    let mut positions = Vec::new();
    for partition in 0..partitions_of(EPHEMERAL) {
        let partition = TopicPartition::new(EPHEMERAL, partition);
        // A lower bound will do: signals read late have expired and are dropped.
        let end = log.end_hint(&partition).await?;
        positions.push((partition, end));
    }
    Ok(positions)
}

/// Tails `ephemeral` and pushes each live signal to local sessions.
pub async fn run(
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    sessions: Sessions,
    reads: ReadModels,
    positions: Vec<(TopicPartition, Offset)>,
    clock: Clock,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut consumer = log.consumer(positions).await?;
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            polled = poll_decoded::<WireValue>(consumer.as_mut(), &codec, 1024) => polled?,
        };
        let now = clock.now_ms();
        for value in batch.items {
            let WireValue::Typing(typing) = value else { continue };
            if typing.expires_at.0 <= now || blocked_by_recipient(&reads, &typing).await {
                continue;
            }
            deliver(&sessions, &typing);
        }
    }
}

/// Whether `typing` is a 1:1 chat's signal to someone who blocked its sender.
async fn blocked_by_recipient(reads: &ReadModels, typing: &Typing) -> bool {
    let [recipient] = typing.recipients.as_slice() else { return false };
    let (from, recipient) = (typing.from, *recipient);
    let direct = typing.conversation_id == ConversationId::direct(from, recipient);
    // A directory that cannot be read drops the signal: it is only a hint.
    direct && reads.has_blocked(recipient, from).await.unwrap_or(true)
}

fn deliver(sessions: &Sessions, typing: &Typing) {
    let frame = Arc::new(json!({
        "type": "typing",
        "conversation_id": typing.conversation_id.to_string(),
        "from": typing.from.to_string(),
        "state": typing.state.as_str(),
        "expires_at": typing.expires_at.0,
    }));
    for recipient in &typing.recipients {
        sessions.push_live(*recipient, &frame);
    }
}
