//! Async wrappers over the read models (RocksDB reads on blocking threads).

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::RwLock;

use missive_core::conversation::ReceiptStatus;
use missive_core::users::UserState;
use missive_core::{ConvSeq, ConversationId, FeedSeq, MessageId, Millis, UserId};
use missive_processors::{UserIndex, queries};
use missive_projections::{ConversationSummary, FeedEntry, FeedState, HistoryMessage};
use rocksdb::DB;

use crate::errors::ApiError;

/// Most user ids remembered as existing before the cache starts over.
const KNOWN_USERS_CAP: usize = 1_000_000;

/// Asks `probe` again, with back-off (1 ms doubling to 50 ms), until it
/// answers `Some` or `wait` has passed (`None`). Read models fold the log a
/// moment after a decision, and in Kafka mode each gateway folds its own
/// copy: callers use this to wait for a change they know is coming.
pub async fn poll_until<T, Probe>(
    wait: std::time::Duration,
    mut probe: impl FnMut() -> Probe,
) -> Result<Option<T>, ApiError>
where
    Probe: std::future::Future<Output = Result<Option<T>, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if let Some(found) = probe().await? {
            return Ok(Some(found));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

#[derive(Clone)]
pub struct ReadModels {
    db: Arc<DB>,
    /// Bloom filter of registered users, kept by the directory projection.
    index: UserIndex,
    /// Users seen to exist. Accounts are never deleted, so a positive answer
    /// stays true; negatives are not cached (a user may register any time).
    known_users: Arc<RwLock<HashSet<UserId>>>,
}

impl ReadModels {
    pub fn new(db: Arc<DB>, index: UserIndex) -> ReadModels {
        ReadModels { db, index, known_users: Arc::new(RwLock::new(HashSet::new())) }
    }

    /// The account as the directory knows it.
    pub async fn directory(&self, user: UserId) -> Result<Option<UserState>, ApiError> {
        self.run(move |db| queries::directory(db, user)).await
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

    /// Whether a contact-sync candidate is registered: the Bloom filter
    /// answers most misses without touching the store.
    pub async fn registered(&self, user: UserId) -> Result<bool, ApiError> {
        if !self.index.may_exist(user) {
            return Ok(false);
        }
        self.user_exists(user).await
    }

    async fn run<T: Send + 'static>(
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

    /// Like `user_exists`, but an unknown user is looked for again (with
    /// back-off) until `wait` has passed: read models of other gateways lag.
    pub async fn user_exists_soon(&self, user: UserId, wait: std::time::Duration) -> Result<bool, ApiError> {
        let found = poll_until(wait, || async move { Ok(self.user_exists(user).await?.then_some(())) }).await?;
        Ok(found.is_some())
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

    /// The members of `conversation` once they include `user`, waiting up to
    /// `wait`: the history projection folds `events.conversation` beside the
    /// inbox, so a client may act on a message (read it, open the chat)
    /// a moment before history has the conversation. `None` if `user` is
    /// still not a member by then.
    pub async fn members_including(
        &self,
        conversation: ConversationId,
        user: UserId,
        wait: std::time::Duration,
    ) -> Result<Option<Vec<UserId>>, ApiError> {
        poll_until(
            wait,
            || async move { Ok(self.members(conversation).await?.filter(|members| members.contains(&user))) },
        )
        .await
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

    /// A message by id, waiting up to `wait` for the history projection to
    /// fold it (a client may act on a message it was just sent).
    pub async fn message_soon(
        &self,
        conversation: ConversationId,
        message: MessageId,
        wait: std::time::Duration,
    ) -> Result<Option<HistoryMessage>, ApiError> {
        poll_until(wait, || self.run(move |db| queries::message(db, conversation, message))).await
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
