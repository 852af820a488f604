//! The gateway's background loops, each restarted after a failure: the
//! reply router, the live-signal router, presence, push notifications, and
//! the media processor and sweeper.

use std::sync::Arc;

use missive_core::notifications::OfflineMessage;
use missive_processors::partitions_of;
use missive_processors::topics::{EVENTS_MEDIA, NOTIFICATIONS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Parts;
use crate::commands::ReplyRouter;
use crate::media::{self, MediaSettings};
use crate::push;
use crate::session::live;
use crate::worker::restart_on_failure;

/// Starts every background loop; they end when `cancel` fires.
pub(super) async fn start(
    parts: &Parts,
    replies: Arc<ReplyRouter>,
    offline: mpsc::Receiver<OfflineMessage>,
    media_settings: &MediaSettings,
    push_webhook: Option<String>,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let Parts { log, codec, sessions, reads, presence, media, routing, clock, .. } = parts.clone();
    let mut tasks = Vec::new();
    // The router is how sends learn their outcome: if it fails (broker
    // trouble), it starts again instead of leaving every send to time out.
    tasks.push({
        let (log, codec, cancel) = (log.clone(), codec.clone(), cancel.clone());
        restart_on_failure("reply router", cancel.clone(), move || {
            replies.clone().run(log.clone(), codec.clone(), cancel.clone())
        })
    });
    // Live signals start at the end of `ephemeral`, found before serving;
    // after a failure, from the end again (what was missed is stale anyway).
    tasks.push({
        let mut first = Some(live::start_positions(log.as_ref()).await?);
        let (log, codec, clock, cancel) = (log.clone(), codec.clone(), clock.clone(), cancel.clone());
        restart_on_failure("live router", cancel.clone(), move || {
            let (start, log, codec, sessions, reads, clock, cancel) = (
                first.take(),
                log.clone(),
                codec.clone(),
                sessions.clone(),
                reads.clone(),
                clock.clone(),
                cancel.clone(),
            );
            async move {
                let start = match start {
                    Some(start) => start,
                    None => live::start_positions(log.as_ref()).await?,
                };
                live::run(log, codec, sessions, reads, start, clock, cancel).await
            }
        })
    });
    // Push: messages for users without a session become jobs; a webhook
    // worker (when configured) sends the jobs of this gateway's users.
    tasks.push(tokio::spawn(push::run_notifier(offline, log.clone(), codec.clone(), clock.clone(), cancel.clone())));
    let owned = |topic: &str| -> Vec<u32> {
        (0..partitions_of(topic)).filter(|partition| routing.owns_partition(*partition)).collect()
    };
    if let Some(url) = push_webhook {
        let partitions = owned(NOTIFICATIONS);
        let (log, codec, cancel) = (log.clone(), codec.clone(), cancel.clone());
        tasks.push(restart_on_failure("push webhook", cancel.clone(), move || {
            push::run_webhook(url.clone(), log.clone(), codec.clone(), partitions.clone(), cancel.clone())
        }));
    }
    // The media processor (thumbnails) works the `events.media` partitions
    // this gateway owns; the sweeper removes what retention allows.
    {
        let partitions = owned(EVENTS_MEDIA);
        let (objects, log, codec, stop) = (media.objects().clone(), log.clone(), codec.clone(), cancel.clone());
        tasks.push(restart_on_failure("media thumbnails", cancel.clone(), move || {
            media::thumbnails::run(objects.clone(), log.clone(), codec.clone(), partitions.clone(), stop.clone())
        }));
        tasks.push(tokio::spawn(media::run_sweeper(media.clone(), media_settings.sweep_every, cancel.clone())));
    }
    tasks.push(restart_on_failure("presence heartbeats", cancel.clone(), {
        let (presence, cancel) = (presence.clone(), cancel.clone());
        move || presence.clone().run_heartbeats(cancel.clone())
    }));
    tasks.push(restart_on_failure("presence router", cancel.clone(), {
        let (presence, cancel) = (presence.clone(), cancel.clone());
        move || presence.clone().run_router(cancel.clone())
    }));
    Ok(tasks)
}
