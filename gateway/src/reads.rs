//! Async wrappers over the read models (RocksDB reads on blocking threads).

use std::sync::Arc;

use missive_core::conversation::MessageSent;
use missive_core::{ConvSeq, ConversationId, FeedSeq, UserId};
use missive_processors::queries;
use missive_projections::{ConversationSummary, FeedEntry, FeedState};
use rocksdb::DB;

use crate::errors::ApiError;

#[derive(Clone)]
pub struct ReadModels {
    db: Arc<DB>,
}

impl ReadModels {
    pub fn new(db: Arc<DB>) -> ReadModels {
        ReadModels { db }
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
        self.run(move |db| queries::directory(db, user).map(|entry| entry.is_some())).await
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

    pub async fn members(&self, conversation: ConversationId) -> Result<Option<Vec<UserId>>, ApiError> {
        self.run(move |db| queries::members(db, conversation)).await
    }

    pub async fn history(
        &self,
        conversation: ConversationId,
        before: Option<ConvSeq>,
        limit: usize,
    ) -> Result<Vec<MessageSent>, ApiError> {
        self.run(move |db| queries::history(db, conversation, before, limit)).await
    }
}
