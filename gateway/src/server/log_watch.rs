//! Whether this gateway reaches the log. A gateway cut off from the broker
//! can neither append its clients' commands nor read their feeds, so after
//! [`DOWN_AFTER`] failed probes in a row it tells every connected client
//! (`unavailable` with `retry_after`, then a close) and answers new
//! connections the same way until a probe succeeds again: clients come
//! back later (or to another gateway) instead of waiting on one that
//! cannot serve them. Nothing is lost: unconfirmed sends are resent on the
//! next connection, and feeds resume where they were acked.

use std::sync::Arc;
use std::time::Duration;

use missive_infra::{Log, TopicPartition};
use missive_processors::topics::REPLIES;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::protocol::ApiError;

/// How often the log is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Failed probes in a row after which the gateway counts itself cut off.
const DOWN_AFTER: u32 = 3;
/// Seconds a client told the gateway lost the log waits before connecting again.
pub const RECONNECT_AFTER: u64 = 5;

/// What a client is told while the gateway cannot reach the log.
pub fn cut_off() -> ApiError {
    ApiError {
        retry_after: Some(RECONNECT_AFTER),
        ..ApiError::unavailable(format!(
            "this gateway lost its connection to the log; connect again in {RECONNECT_AFTER} s and resend what \
             was not confirmed (nothing confirmed is lost)"
        ))
    }
}

/// Probes the log until `cancel`, publishing whether it answers.
pub(crate) async fn run(log: Arc<dyn Log>, reachable: watch::Sender<bool>, cancel: CancellationToken) {
    let partition = TopicPartition::new(REPLIES, 0);
    let mut failures = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
        // The cheapest round trip to the partition's leader (Kafka's
        // ListOffsets), not the verified end: a broker whose fetches are
        // slow still takes appends, and on Tansu 0.6 a fetch of a long
        // partition took past the timeout and cut a serving gateway off
        // (RELIABILITY.md).
        match tokio::time::timeout(PROBE_TIMEOUT, log.end_hint(&partition)).await {
            Ok(Ok(_)) => {
                failures = 0;
                if !*reachable.borrow() {
                    tracing::info!("the log answers again; serving clients");
                    reachable.send_replace(true);
                }
            }
            failed => {
                failures += 1;
                if failures == DOWN_AFTER {
                    let why = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {PROBE_TIMEOUT:?}"),
                    };
                    tracing::warn!(%why, "the log does not answer; telling clients to come back later (check the broker and the network to it)");
                    reachable.send_replace(false);
                }
            }
        }
    }
}
