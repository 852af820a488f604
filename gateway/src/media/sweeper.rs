//! The media sweeper: abandoned uploads and the media of messages deleted
//! for everyone, once retention allows.

use std::time::Duration;

use missive_core::media::{THUMBNAIL_SIZES, thumbnail_key};
use missive_infra::db::{CF_AUTH, family};
use missive_processors::queries;

use super::store::*;
use crate::auth::blocking;
use crate::protocol::ApiError;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub abandoned_uploads: usize,
    pub deleted_media: usize,
}

/// Where the sweeper got to in the deleted-media queue (CF_AUTH).
pub(super) const SWEPT_THROUGH: &[u8] = b"media/sweep/gone";
/// Entries of the deleted-media queue handled per pass.
pub(super) const SWEEP_BATCH: usize = 1000;

impl Media {
    /// Removes never-completed uploads (slot and staging object) whose URL
    /// expired more than `abandoned_after` ago, and the objects (with
    /// thumbnails) of media whose every message was deleted for everyone
    /// more than `retention` ago and that no message carries again.
    pub async fn sweep(&self) -> Result<Swept, ApiError> {
        let now = self.clock.now_ms();
        let mut swept = Swept::default();
        let abandoned_before = now - i64::try_from(self.abandoned_after.as_millis()).unwrap_or(i64::MAX);
        let db = self.db.clone();
        // Slots are found through their expiry index: a pass reads only what is due.
        let abandoned = blocking(move || {
            let family = family(&db, CF_AUTH);
            let end = expiry_key(abandoned_before, "");
            let mut due = Vec::new();
            let start = rocksdb::IteratorMode::From(EXPIRY_PREFIX, rocksdb::Direction::Forward);
            for item in db.iterator_cf(family, start).take(SWEEP_BATCH) {
                let (key, staging) = item.map_err(|error| ApiError::internal(error.to_string()))?;
                if !key.starts_with(EXPIRY_PREFIX) || key.as_ref() >= end.as_slice() {
                    break;
                }
                let media_id =
                    String::from_utf8_lossy(key.get(EXPIRY_PREFIX.len() + 8..).unwrap_or_default()).into_owned();
                let slot_key = Media::slot_key(&media_id);
                let never_completed = db
                    .get_cf(family, &slot_key)
                    .map_err(|error| ApiError::internal(error.to_string()))?
                    .and_then(|bytes| serde_json::from_slice::<Upload>(&bytes).ok())
                    .is_some_and(|upload| !upload.completed);
                let staging = String::from_utf8_lossy(&staging).into_owned();
                due.push((key.to_vec(), staging, never_completed.then_some(slot_key)));
            }
            Ok(due)
        })
        .await?;
        // Index entries (and abandoned slots) handled, removed in one write.
        let mut handled = rocksdb::WriteBatch::default();
        for (index_key, staging_key, abandoned_slot) in abandoned {
            // Completed or not, nothing may stay at the staging key (a
            // presigned PUT reused before it expired can write it again).
            if !staging_key.is_empty() {
                self.objects.delete(&staging_key).await.map_err(storage)?;
            }
            if let Some(slot_key) = abandoned_slot {
                handled.delete_cf(family(&self.db, CF_AUTH), slot_key);
                swept.abandoned_uploads += 1;
            }
            handled.delete_cf(family(&self.db, CF_AUTH), index_key);
        }
        if !handled.is_empty() {
            let db = self.db.clone();
            blocking(move || db.write(handled).map_err(|error| ApiError::internal(error.to_string()))).await?;
        }

        let until = now - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let db = self.db.clone();
        let (gone, through) = blocking(move || {
            let internal = |error: String| ApiError::internal(error);
            let from = db
                .get_cf(family(&db, CF_AUTH), SWEPT_THROUGH)
                .map_err(|error| internal(error.to_string()))?
                .and_then(|bytes| bytes.try_into().ok().map(i64::from_be_bytes))
                .unwrap_or(0);
            if until <= from {
                return Ok((Vec::new(), from));
            }
            let found = queries::media_gone(&db, missive_core::Millis(from), missive_core::Millis(until), SWEEP_BATCH)
                .map_err(|error| internal(error.to_string()))?;
            let through = match found.last() {
                Some((at, _, _)) if found.len() == SWEEP_BATCH => at.0,
                _ => until,
            };
            // Still gone? A later message may carry the same media again.
            let mut gone = Vec::new();
            for (_, media_id, key) in found {
                if queries::media_messages(&db, &media_id, 1).map_err(|error| internal(error.to_string()))?.is_empty() {
                    gone.push((media_id, key));
                }
            }
            Ok((gone, through))
        })
        .await?;
        for (media_id, key) in gone {
            self.objects.delete(&key).await.map_err(storage)?;
            for size in THUMBNAIL_SIZES {
                self.objects.delete(&thumbnail_key(&key, size)).await.map_err(storage)?;
            }
            // Its uploader can no longer attach it.
            if self.load(&media_id).await?.is_some() {
                self.save(&media_id, None).await?;
            }
            swept.deleted_media += 1;
        }
        let db = self.db.clone();
        blocking(move || {
            db.put_cf(family(&db, CF_AUTH), SWEPT_THROUGH, through.to_be_bytes())
                .map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
        Ok(swept)
    }
}

/// Runs [`Media::sweep`] every `every` until cancelled.
pub async fn run_sweeper(media: Media, every: Duration, cancel: tokio_util::sync::CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match media.sweep().await {
            Ok(swept) if swept != Swept::default() => tracing::info!(?swept, "media sweeper removed objects"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error.message, "media sweep failed; trying again next round"),
        }
    }
}
