//! Presence at the gateway: announcing this instance's users on the
//! `presence` topic, folding every gateway's announcements into the shared
//! table (`missive_core::presence`), and telling watching sessions when a
//! user they may see comes online or goes offline.
//!
//! Visibility follows the owner's last-seen setting (WhatsApp's "online:
//! same as last seen"): a viewer who may not see last seen sees neither
//! online nor offline, and a blocked viewer sees nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use missive_core::presence::{HEARTBEAT_INTERVAL_MS, PresenceEvent, PresenceTable, Transition};
use missive_core::users::{self, UserCommand, UserState};
use missive_core::{Millis, UserId};
use missive_infra::{Log, OutRecord, TopicPartition};
use missive_processors::topics::PRESENCE;
use missive_schemas::Codec;
use missive_schemas::WireValue;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::commands::CommandBus;
use crate::protocol::ApiError;
use crate::reads::{Projection, ReadModels};
use crate::routing::Routing;
use crate::session::registry::Sessions;
use crate::worker::poll_decoded;

/// How often the table is checked for silent instances.
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);
/// How far back a starting gateway reads `presence`: more than a timeout
/// plus a heartbeat, so every live instance's last heartbeat is included.
const LOOKBACK_MS: i64 = 75_000;

pub struct Presence {
    /// This gateway process: its id and start time (a restart is a new instance).
    instance: String,
    table: Mutex<PresenceTable>,
    /// Users this instance has announced online. Decisions and appends run
    /// under this lock, so the topic always ends with this instance's truth.
    announced: tokio::sync::Mutex<HashSet<UserId>>,
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    sessions: Sessions,
    reads: ReadModels,
    bus: Arc<CommandBus>,
    routing: Routing,
}

/// Whether `viewer` may see `owner`'s presence.
fn may_see(owner: &UserState, viewer: UserId) -> bool {
    users::visible(owner.privacy.last_seen, users::relation(owner, viewer))
}

fn presence_frame(user: UserId, online: bool, last_seen: Option<Millis>) -> Value {
    let mut frame = json!({"type": "presence", "user": user.to_string(), "online": online});
    if let Some(at) = last_seen.filter(|_| !online) {
        frame["last_seen"] = json!(at.0);
    }
    frame
}

impl Presence {
    pub fn new(
        gateway_id: &str,
        log: Arc<dyn Log>,
        codec: Arc<Codec>,
        sessions: Sessions,
        reads: ReadModels,
        bus: Arc<CommandBus>,
        routing: Routing,
    ) -> Presence {
        Presence {
            instance: format!("{gateway_id}@{}", bus.clock().now_ms()),
            table: Mutex::new(PresenceTable::default()),
            announced: tokio::sync::Mutex::new(HashSet::new()),
            log,
            codec,
            sessions,
            reads,
            bus,
            routing,
        }
    }

    async fn append(&self, event: PresenceEvent) -> Result<(), ApiError> {
        let bytes =
            self.codec.encode_value(&WireValue::from(&event)).map_err(|error| ApiError::internal(error.to_string()))?;
        let record = OutRecord {
            topic: PRESENCE.into(),
            partition: Some(0),
            key: self.instance.clone().into_bytes(),
            value: bytes,
            headers: Vec::new(),
            timestamp: None,
        };
        self.log.append(vec![record]).await.map(|_| ()).map_err(|error| ApiError::unavailable(error.to_string()))
    }

    /// Announces a change of `user`'s sessions here (after one opened or closed).
    pub async fn sessions_changed(&self, user: UserId) {
        let mut announced = self.announced.lock().await;
        let online = self.sessions.is_open(user);
        if online == announced.contains(&user) {
            return;
        }
        let changed = PresenceEvent::Changed {
            instance: self.instance.clone(),
            user,
            online,
            at: Millis(self.bus.clock().now_ms()),
        };
        match self.append(changed).await {
            Ok(()) if online => {
                announced.insert(user);
            }
            Ok(()) => {
                announced.remove(&user);
            }
            // The next heartbeat carries the truth.
            Err(error) => tracing::debug!(%error.message, "announcing presence failed"),
        }
    }

    async fn heartbeat(&self) -> Result<(), ApiError> {
        let mut announced = self.announced.lock().await;
        let online = self.sessions.users();
        let heartbeat = PresenceEvent::Heartbeat {
            instance: self.instance.clone(),
            online: online.clone(),
            at: Millis(self.bus.clock().now_ms()),
        };
        self.append(heartbeat).await?;
        *announced = online.into_iter().collect();
        Ok(())
    }

    /// Sends heartbeats until `cancel`.
    pub async fn run_heartbeats(self: Arc<Self>, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS as u64));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    if let Err(error) = self.heartbeat().await {
                        tracing::warn!(%error.message, "presence heartbeat failed");
                    }
                }
            }
        }
    }

    /// Tails `presence` (from a little before now), folds it, expires
    /// silent instances, and tells watchers. Until `cancel`.
    pub async fn run_router(self: Arc<Self>, cancel: CancellationToken) -> anyhow::Result<()> {
        let partition = TopicPartition::new(PRESENCE, 0);
        let start = self.log.offset_for_time(&partition, self.bus.clock().now_ms() - LOOKBACK_MS).await?;
        let mut consumer = self.log.consumer(vec![(partition, start)]).await?;
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            let transitions = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = sweep.tick() => {
                    let expired = self.table.lock().expire(Millis(self.bus.clock().now_ms()));
                    self.record_last_seen(&expired).await;
                    expired
                }
                polled = poll_decoded::<PresenceEvent>(consumer.as_mut(), &self.codec, 1024) => {
                    let mut table = self.table.lock();
                    polled?.items.iter().flat_map(|event| table.apply(event)).collect::<Vec<_>>()
                }
            };
            // Whoever watches these users sees them as their privacy allows
            // now: a read barrier brings this gateway's directory up to every
            // change acknowledged (possibly through another gateway) so far.
            // If it cannot, nothing is told rather than something hidden.
            let watched: Vec<u64> = transitions
                .iter()
                .filter(|transition| !self.sessions.watchers_of(transition.user).is_empty())
                .map(|transition| transition.user.0)
                .collect();
            if !watched.is_empty()
                && let Err(error) = self.reads.barrier(Projection::Directory, watched).await
            {
                tracing::warn!(%error.message, "presence changes not told: the directory is behind");
                continue;
            }
            for transition in transitions {
                if let Err(error) = self.notify(transition).await {
                    tracing::debug!(%error.message, "presence notification failed");
                }
            }
        }
    }

    /// Users of a dead instance whose own gateway is this one get their last
    /// seen recorded (a gateway killed mid-session never wrote it).
    async fn record_last_seen(&self, expired: &[Transition]) {
        for transition in expired.iter().filter(|transition| self.routing.elsewhere(transition.user).is_none()) {
            let seen = UserCommand::RecordLastSeen { user_id: transition.user, at: transition.at };
            if let Err(error) = self.bus.record_user_command(seen).await {
                tracing::debug!(%error.message, "recording last seen failed");
            }
        }
    }

    async fn notify(&self, transition: Transition) -> Result<(), ApiError> {
        let watchers = self.sessions.watchers_of(transition.user);
        if watchers.is_empty() {
            return Ok(());
        }
        let Some(owner) = self.reads.directory(transition.user).await? else { return Ok(()) };
        let frame = Arc::new(presence_frame(transition.user, transition.online, Some(transition.at)));
        for (watcher, session) in watchers {
            if may_see(&owner, watcher) {
                self.sessions.push_to_session(watcher, session, &frame);
            }
        }
        Ok(())
    }

    /// Subscribes a session to `users`' presence; returns the current
    /// presence of those the watcher may see (others stay silent).
    pub async fn subscribe(&self, watcher: UserId, session: u64, users: &[UserId]) -> Result<Vec<Value>, ApiError> {
        // A read barrier first: this gateway's directory then holds every
        // registration and privacy change acknowledged before the call, so
        // a user who registered through another gateway a moment ago is
        // watched, and one who just hid their last seen stays hidden.
        if !users.is_empty() {
            self.reads.barrier(Projection::Directory, users.iter().map(|user| user.0)).await?;
        }
        let mut known = Vec::with_capacity(users.len());
        for user in users {
            if self.reads.user_exists(*user).await? {
                known.push(*user);
            }
        }
        let watched = self.sessions.watch(watcher, session, &known);
        let mut frames = Vec::new();
        for user in watched {
            let Some(owner) = self.reads.directory(user).await? else { continue };
            if !may_see(&owner, watcher) {
                continue;
            }
            let (online, last_offline) = {
                let table = self.table.lock();
                (table.is_online(user), table.last_offline(user))
            };
            let last_seen = last_offline.max(owner.last_seen);
            frames.push(presence_frame(user, online, last_seen));
        }
        Ok(frames)
    }
}
