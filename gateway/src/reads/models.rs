//! The read models a gateway answers from, on blocking threads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use missive_core::conversation::ReceiptStatus;
use missive_core::users::UserState;
use missive_core::{ConvSeq, ConversationId, FeedSeq, MessageId, Millis, UserId};
use missive_infra::Log;
use missive_processors::{UserIndex, queries};
use missive_projections::{ConversationSummary, FeedEntry, FeedState, HistoryMessage};
use rocksdb::DB;

use super::barrier::{EndSlot, Projection, poll_until};
use crate::protocol::ApiError;

/// Most user ids remembered as existing before the cache starts over.
const KNOWN_USERS_CAP: usize = 1_000_000;
/// Most users whose device sets are remembered before the cache starts over.
const DEVICE_CACHE_CAP: usize = 100_000;

/// A user's device set and the end offset of its directory partition it was read at.
type CachedDevices = (u64, BTreeSet<missive_core::DeviceId>);

/// Each user's end-to-end devices.
pub type DeviceSets = std::collections::BTreeMap<UserId, BTreeSet<missive_core::DeviceId>>;

#[derive(Clone)]
pub struct ReadModels {
    pub(super) db: Arc<DB>,
    /// For read barriers: the end offsets of the folded topics.
    pub(super) log: Arc<dyn Log>,
    /// The last end offset read per (topic, partition) and when its lookup began.
    pub(super) ends: Arc<Mutex<HashMap<(&'static str, u32), EndSlot>>>,
    /// Bloom filter of registered users, kept by the directory projection.
    pub(super) index: UserIndex,
    /// Users seen to exist. Accounts are never deleted, so a positive answer
    /// stays true; negatives are not cached (a user may register any time).
    pub(super) known_users: Arc<RwLock<HashSet<UserId>>>,
    /// Device sets by user, with the end offset of the user's directory
    /// partition they were read at: valid while that end has not moved.
    pub(super) device_cache: Arc<Mutex<HashMap<UserId, CachedDevices>>>,
}

impl ReadModels {
    pub fn new(db: Arc<DB>, log: Arc<dyn Log>, index: UserIndex) -> ReadModels {
        ReadModels {
            db,
            log,
            ends: Arc::default(),
            index,
            known_users: Arc::new(RwLock::new(HashSet::new())),
            device_cache: Arc::default(),
        }
    }

    /// The account as the directory knows it.
    pub async fn directory(&self, user: UserId) -> Result<Option<UserState>, ApiError> {
        self.run(move |db| queries::directory(db, user)).await
    }

    /// The account, behind a read barrier when the directory does not know
    /// it yet: `None` only if no registration was acknowledged before this call.
    pub async fn directory_fresh(&self, user: UserId) -> Result<Option<UserState>, ApiError> {
        if let Some(state) = self.directory(user).await? {
            return Ok(Some(state));
        }
        self.barrier(Projection::Directory, [user.0]).await?;
        self.directory(user).await
    }

    /// Waits (with back-off, up to `wait`) until the directory's view of
    /// `user` satisfies `ready`: read-your-writes after a users command,
    /// since the directory folds `events.user` a moment after the decision.
    pub async fn directory_when(
        &self,
        user: UserId,
        wait: std::time::Duration,
        ready: impl Fn(Option<&UserState>) -> bool,
    ) -> Result<Option<UserState>, ApiError> {
        let ready = &ready;
        poll_until(wait, || async move {
            let state = self.directory(user).await?;
            Ok(ready(state.as_ref()).then_some(state))
        })
        .await?
        .ok_or_else(|| ApiError::unavailable("the change is recorded but not yet visible here; read again shortly"))
    }

    /// The end-to-end devices (those with published identity keys) of each
    /// of `users`, behind a read barrier on their directory partitions: any
    /// change acknowledged before the call is seen. Answered from memory
    /// while nothing was appended to those partitions since the sets were
    /// read (a sealed send asks this for every message).
    pub async fn device_sets(&self, users: Vec<UserId>) -> Result<DeviceSets, ApiError> {
        let targets = self.ends(Projection::Directory, users.iter().map(|user| user.0)).await?;
        let end_of = |user: UserId| {
            let partition = Projection::Directory.partition_of(user.0);
            targets.iter().find(|(input, _)| input.partition == partition).map(|(_, end)| *end)
        };
        let cached: Option<DeviceSets> = {
            let cache = self.device_cache.lock();
            users
                .iter()
                .map(|user| {
                    let (end, set) = cache.get(user)?;
                    (Some(*end) == end_of(*user)).then(|| (*user, set.clone()))
                })
                .collect()
        };
        if let Some(sets) = cached {
            return Ok(sets);
        }
        let sets = self
            .read_at(Projection::Directory, targets.clone(), move |db| {
                let mut sets = std::collections::BTreeMap::new();
                for user in &users {
                    let devices: BTreeSet<missive_core::DeviceId> = queries::directory(db, *user)?
                        .map(|state| {
                            state
                                .devices
                                .iter()
                                .filter(|info| info.identity.is_some())
                                .map(|info| info.device_id)
                                .collect()
                        })
                        .unwrap_or_default();
                    sets.insert(*user, devices);
                }
                Ok(sets)
            })
            .await?;
        let mut cache = self.device_cache.lock();
        if cache.len() >= DEVICE_CACHE_CAP {
            cache.clear();
        }
        for (user, set) in &sets {
            if let Some(end) = end_of(*user) {
                cache.insert(*user, (end, set.clone()));
            }
        }
        Ok(sets)
    }

    /// Whether a contact-sync candidate is registered: the Bloom filter
    /// answers most misses without touching the store.
    pub async fn registered(&self, user: UserId) -> Result<bool, ApiError> {
        if !self.index.may_exist(user) {
            return Ok(false);
        }
        self.user_exists(user).await
    }

    pub(super) async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&DB) -> Result<T, queries::QueryError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || query(&db))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?
            .map_err(|error| ApiError::internal(error.to_string()))
    }

    pub async fn user_exists(&self, user: UserId) -> Result<bool, ApiError> {
        if self.known_users.read().contains(&user) {
            return Ok(true);
        }
        let exists = self.run(move |db| queries::directory(db, user).map(|entry| entry.is_some())).await?;
        if exists {
            let mut known = self.known_users.write();
            if known.len() >= KNOWN_USERS_CAP {
                known.clear();
            }
            known.insert(user);
        }
        Ok(exists)
    }

    /// Whether `user` is registered, behind a read barrier on a miss: `false`
    /// only if no registration was acknowledged before this call.
    pub async fn user_registered(&self, user: UserId) -> Result<bool, ApiError> {
        Ok(self.unregistered(&[user]).await?.is_empty())
    }

    /// Which of `users` are not registered, with one read barrier over the
    /// partitions of those not found at first.
    pub async fn unregistered(&self, users: &[UserId]) -> Result<Vec<UserId>, ApiError> {
        let mut missing = Vec::new();
        for user in users {
            if !self.user_exists(*user).await? {
                missing.push(*user);
            }
        }
        if missing.is_empty() {
            return Ok(missing);
        }
        self.barrier(Projection::Directory, missing.iter().map(|user| user.0)).await?;
        let mut still_missing = Vec::new();
        for user in missing {
            if !self.user_exists(user).await? {
                still_missing.push(user);
            }
        }
        Ok(still_missing)
    }

    /// Which contact-sync candidates are registered: the Bloom filter
    /// answers most misses without touching the store, and misses get one
    /// read barrier, so a number registered a moment ago elsewhere is found.
    pub async fn registered_among(&self, candidates: &[UserId]) -> Result<Vec<bool>, ApiError> {
        let mut found = Vec::with_capacity(candidates.len());
        for user in candidates {
            found.push(self.registered(*user).await?);
        }
        if found.iter().all(|found| *found) {
            return Ok(found);
        }
        let misses = candidates.iter().zip(&found).filter(|(_, found)| !**found).map(|(user, _)| user.0);
        self.barrier(Projection::Directory, misses).await?;
        for (user, found) in candidates.iter().zip(found.iter_mut()) {
            if !*found {
                *found = self.registered(*user).await?;
            }
        }
        Ok(found)
    }

    pub async fn feed_state(&self, user: UserId) -> Result<Option<FeedState>, ApiError> {
        self.run(move |db| queries::feed_state(db, user)).await
    }

    pub async fn feed_entries(
        &self,
        user: UserId,
        after: FeedSeq,
        limit: usize,
    ) -> Result<Vec<(FeedSeq, FeedEntry)>, ApiError> {
        self.run(move |db| queries::feed_entries(db, user, after, limit)).await
    }

    pub async fn conversations(&self, user: UserId, limit: usize) -> Result<Vec<ConversationSummary>, ApiError> {
        self.run(move |db| queries::conversations(db, user, limit)).await
    }

    pub async fn group(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<missive_core::groups::GroupChanged>, ApiError> {
        self.run(move |db| queries::group(db, conversation)).await
    }

    /// The members of `conversation` if they include `user`, behind a read
    /// barrier on a miss: the history projection folds `events.conversation`
    /// beside the inbox, so a client may act on a message (read it, open the
    /// chat) a moment before history has the conversation. `None` only if
    /// `user` was not a member when this call began.
    pub async fn members_including(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<Option<Vec<UserId>>, ApiError> {
        let including = |members: Option<Vec<UserId>>| members.filter(|members| members.contains(&user));
        if let Some(members) = including(self.members(conversation).await?) {
            return Ok(Some(members));
        }
        self.barrier(Projection::History, [conversation.0]).await?;
        Ok(including(self.members(conversation).await?))
    }

    /// Whether `owner` blocked `user` (as this gateway's directory has it).
    pub async fn has_blocked(&self, owner: UserId, user: UserId) -> Result<bool, ApiError> {
        Ok(self.directory(owner).await?.is_some_and(|state| state.blocked.contains(&user)))
    }

    /// Whether reads in this conversation are told: in a 1:1 chat, only
    /// when both members have read receipts on (off is reciprocal); in
    /// groups always (as in WhatsApp).
    pub async fn read_receipts_on(&self, conversation: ConversationId) -> Result<bool, ApiError> {
        let members = self.members(conversation).await?.unwrap_or_default();
        if members.len() != 2 || conversation != ConversationId::direct(members[0], members[1]) {
            return Ok(true);
        }
        for member in members {
            if self.directory(member).await?.is_some_and(|state| !state.privacy.read_receipts) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub async fn members(&self, conversation: ConversationId) -> Result<Option<Vec<UserId>>, ApiError> {
        self.run(move |db| queries::members(db, conversation)).await
    }

    /// A page of history as `reader` sees it (without what it deleted for itself).
    pub async fn history(
        &self,
        conversation: ConversationId,
        reader: UserId,
        before: Option<ConvSeq>,
        limit: usize,
    ) -> Result<Vec<HistoryMessage>, ApiError> {
        self.run(move |db| queries::history(db, conversation, reader, before, limit)).await
    }

    /// A message by id, behind a read barrier on a miss (a client may act on
    /// a message it was just sent, before history folded it here).
    pub async fn message_fresh(
        &self,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<Option<HistoryMessage>, ApiError> {
        if let Some(found) = self.run(move |db| queries::message(db, conversation, message)).await? {
            return Ok(Some(found));
        }
        self.barrier(Projection::History, [conversation.0]).await?;
        self.run(move |db| queries::message(db, conversation, message)).await
    }

    pub async fn hidden(&self, conversation: ConversationId, user: UserId, seq: ConvSeq) -> Result<bool, ApiError> {
        self.run(move |db| queries::hidden(db, conversation, user, seq)).await
    }

    /// When each of `users` first reached `status` at `seq` (`None`: not yet).
    pub async fn reached(
        &self,
        conversation: ConversationId,
        users: Vec<UserId>,
        status: ReceiptStatus,
        seq: ConvSeq,
    ) -> Result<Vec<(UserId, Option<Millis>)>, ApiError> {
        self.run(move |db| {
            users
                .into_iter()
                .map(|user| queries::reached(db, conversation, user, status, seq).map(|at| (user, at)))
                .collect()
        })
        .await
    }
}
