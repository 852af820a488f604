//! Command outcomes for this gateway: processors write a `CommandReply` to
//! the `replies` topic (keyed by gateway id); this router tails the
//! gateway's partition and completes the waiting request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use missive_infra::{Clock, Log, Offset, TopicPartition};
use missive_processors::topics::REPLIES;
use missive_schemas::wire::CommandReply;
use missive_schemas::{Codec, WireValue};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::worker::poll_decoded;

tokio::task_local! {
    /// Room among the gateway's pending sends (`session::limits`): the
    /// first command registered within its scope takes it and holds it
    /// until that command is answered or given up, whether or not its
    /// session is polling for the answer then (a session waiting for room
    /// for its next send does not hold on to the room of its answered ones).
    pub static ROOM: std::cell::Cell<Option<crate::session::Place>>;
}

/// A waiting request: where its reply goes, and the room it holds.
type Waiting = (oneshot::Sender<CommandReply>, Option<crate::session::Place>);

pub struct ReplyRouter {
    pub gateway_id: String,
    next_request: AtomicI64,
    waiting: Mutex<HashMap<i64, Waiting>>,
    /// Where the router reads next. Fixed before the gateway accepts its
    /// first command (`start_at_end`) and kept across router restarts, so
    /// no reply to a command this gateway sent can be skipped.
    position: Mutex<Option<(TopicPartition, Offset)>>,
}

/// A request waiting for its reply; forgets itself when dropped.
pub struct PendingReply {
    router: Arc<ReplyRouter>,
    pub request: i64,
    answer: oneshot::Receiver<CommandReply>,
}

impl PendingReply {
    /// `reply-to` header value for the command.
    pub fn address(&self) -> Vec<u8> {
        format!("{}/{}", self.router.gateway_id, self.request).into_bytes()
    }

    pub async fn wait(mut self, timeout: Duration) -> Option<CommandReply> {
        tokio::time::timeout(timeout, &mut self.answer).await.ok().and_then(Result::ok)
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        self.router.waiting.lock().remove(&self.request);
    }
}

impl ReplyRouter {
    pub fn new(gateway_id: String, clock: &Clock) -> Arc<ReplyRouter> {
        // Request ids start from the clock so a restarted gateway never
        // reuses an id whose old reply might still be relayed.
        let start = clock.now_ms() << 16;
        Arc::new(ReplyRouter {
            gateway_id,
            next_request: AtomicI64::new(start),
            waiting: Mutex::new(HashMap::new()),
            position: Mutex::new(None),
        })
    }

    /// Positions the router at the current end of this gateway's replies
    /// partition. Call before accepting commands: a reply written before
    /// the router knows where to start would be missed.
    pub async fn start_at_end(&self, log: &dyn Log) -> anyhow::Result<()> {
        let partition = log.partition_for(REPLIES, self.gateway_id.as_bytes()).await?;
        let partition = TopicPartition::new(REPLIES, partition);
        // A lower bound will do: replies to other requests are ignored.
        let start = log.end_hint(&partition).await?;
        *self.position.lock() = Some((partition, start));
        Ok(())
    }

    pub fn register(self: &Arc<Self>) -> PendingReply {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = oneshot::channel();
        let room = ROOM.try_with(std::cell::Cell::take).ok().flatten();
        self.waiting.lock().insert(request, (sender, room));
        PendingReply { router: self.clone(), request, answer }
    }

    /// Completes the request `reply` answers, if it is still waiting.
    pub fn complete(&self, reply: CommandReply) {
        if reply.gateway != self.gateway_id {
            return;
        }
        let waiting = self.waiting.lock().remove(&reply.request);
        if let Some((sender, _room)) = waiting {
            let _ = sender.send(reply);
        }
    }

    /// Tails this gateway's replies partition from its current end.
    pub async fn run(
        self: Arc<Self>,
        log: Arc<dyn Log>,
        codec: Arc<Codec>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        if self.position.lock().is_none() {
            self.start_at_end(log.as_ref()).await?;
        }
        let Some((partition, start)) = self.position.lock().clone() else { anyhow::bail!("no reply position") };
        let mut consumer = log.consumer(vec![(partition.clone(), start)]).await?;
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let batch = tokio::select! {
                _ = &mut cancelled => return Ok(()),
                polled = poll_decoded::<WireValue>(consumer.as_mut(), &codec, 1024) => polled?,
            };
            if let Some((_, next)) = batch.positions.last() {
                *self.position.lock() = Some((partition.clone(), *next));
            }
            for value in batch.items {
                match value {
                    WireValue::CommandReply(reply) => self.complete(reply),
                    other => tracing::warn!(record_type = ?other.record_type(), "unexpected record on replies"),
                }
            }
        }
    }
}
