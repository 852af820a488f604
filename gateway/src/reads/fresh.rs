//! The read barrier on the read models: bring this process's projection
//! up to the log's end for the partitions a question names, then read
//! (see the module above for why).

use std::collections::BTreeSet;

use missive_infra::TopicPartition;
use missive_processors::{queries, runtime};
use rocksdb::DB;

use super::ReadModels;
use super::barrier::{BARRIER_WAIT, Projection, poll_until};
use crate::protocol::ApiError;

impl ReadModels {
    /// The read barrier: waits until this process's `projection` has
    /// applied every record that the partitions of `ids` held when called.
    /// `unavailable` if it has not within [`BARRIER_WAIT`].
    pub async fn barrier(&self, projection: Projection, ids: impl IntoIterator<Item = u64>) -> Result<(), ApiError> {
        self.read_fresh(projection, ids, |_| Ok(())).await
    }

    /// Runs `query` once this process's `projection` has applied every
    /// record the partitions of `ids` held when called (a read barrier and
    /// the read in one trip to the store).
    pub async fn read_fresh<T: Send + 'static>(
        &self,
        projection: Projection,
        ids: impl IntoIterator<Item = u64>,
        query: impl Fn(&DB) -> Result<T, queries::QueryError> + Clone + Send + 'static,
    ) -> Result<T, ApiError> {
        let targets = self.ends(projection, ids).await?;
        self.read_at(projection, targets, query).await
    }

    /// The end offsets, as of now, of the partitions holding `ids`.
    pub(super) async fn ends(
        &self,
        projection: Projection,
        ids: impl IntoIterator<Item = u64>,
    ) -> Result<Vec<(TopicPartition, u64)>, ApiError> {
        let partitions: BTreeSet<u32> = ids.into_iter().map(|id| projection.partition_of(id)).collect();
        self.partition_ends(projection, partitions).await
    }

    /// The read barrier over every partition of `projection`'s topic: for
    /// a miss that names no key (a media object carried by some message).
    pub async fn barrier_all(&self, projection: Projection) -> Result<(), ApiError> {
        let partitions = (0..missive_processors::partitions_of(projection.topic())).collect();
        let targets = self.partition_ends(projection, partitions).await?;
        self.read_at(projection, targets, |_| Ok(())).await
    }

    async fn partition_ends(
        &self,
        projection: Projection,
        partitions: BTreeSet<u32>,
    ) -> Result<Vec<(TopicPartition, u64)>, ApiError> {
        let asked_at = tokio::time::Instant::now();
        let mut targets = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let end = self.end_since(projection.topic(), partition, asked_at).await?;
            targets.push((TopicPartition::new(projection.topic(), partition), end));
        }
        Ok(targets)
    }

    /// Runs `query` once `projection` has applied its partitions up to `targets`.
    pub(super) async fn read_at<T: Send + 'static>(
        &self,
        projection: Projection,
        targets: Vec<(TopicPartition, u64)>,
        query: impl Fn(&DB) -> Result<T, queries::QueryError> + Clone + Send + 'static,
    ) -> Result<T, ApiError> {
        let processor = projection.processor();
        let attempt = move |db: &DB,
                            targets: Vec<(TopicPartition, u64)>,
                            query: &dyn Fn(&DB) -> Result<T, queries::QueryError>|
              -> Result<Option<T>, queries::QueryError> {
            for (input, end) in targets {
                if runtime::stored_position(db, processor, input).map_err(queries::QueryError)? < end {
                    return Ok(None);
                }
            }
            query(db).map(Some)
        };
        // Usually the projection is there already: the first look is a few
        // point reads, made here rather than on a blocking thread (a thread
        // hand-off costs more than the reads); later looks wait their turn.
        let internal = |error: queries::QueryError| ApiError::internal(error.to_string());
        if let Some(found) = attempt(&self.db, targets.clone(), &query).map_err(internal)? {
            return Ok(found);
        }
        let reached = poll_until(BARRIER_WAIT, || {
            let (targets, query) = (targets.clone(), query.clone());
            async move { self.run(move |db| attempt(db, targets, &query)).await }
        })
        .await?;
        reached.ok_or_else(|| {
            ApiError::unavailable(format!(
                "this server's {processor} view is more than {} s behind the log; retry shortly",
                BARRIER_WAIT.as_secs()
            ))
        })
    }

    /// The end offset of a partition as read at or after `asked_at`.
    /// Concurrent barriers share lookups: one that waited for another's
    /// lookup, begun after it was asked, takes that answer (in Kafka mode a
    /// verified end costs a broker round trip or two).
    async fn end_since(
        &self,
        topic: &'static str,
        partition: u32,
        asked_at: tokio::time::Instant,
    ) -> Result<u64, ApiError> {
        let slot = self.ends.lock().entry((topic, partition)).or_default().clone();
        let mut last = slot.lock().await;
        if let Some((taken_at, end)) = *last
            && taken_at >= asked_at
        {
            return Ok(end);
        }
        let taken_at = tokio::time::Instant::now();
        let input = TopicPartition::new(topic, partition);
        let end = self.log.watermarks(&input).await.map_err(|error| {
            ApiError::unavailable(format!("cannot read the end of {input} ({error}); retry shortly"))
        })?;
        *last = Some((taken_at, end.high.0));
        Ok(end.high.0)
    }
}
