//! Downloads: who may fetch an object (its uploader, the members of a
//! chat it was sent in, the audience of a profile picture or group icon),
//! and the bytes behind this gateway's own signed URLs.

use bytes::Bytes;
use missive_core::UserId;
use missive_core::media::{Purpose, THUMBNAIL_SIZES, is_media_id, thumbnail_key};
use missive_core::users::{relation, visible};
use missive_processors::queries;
use rocksdb::DB;
use serde::Deserialize;
use warp::Reply;
use warp::http::StatusCode;

use super::store::*;
use crate::auth::{Principal, blocking};
use crate::protocol::ApiError;

#[derive(Deserialize)]
pub(super) struct DownloadQuery {
    /// A thumbnail's size (profile pictures and group icons).
    pub(super) size: Option<u32>,
}

/// Where a media object is stored, and what it is.
pub(super) struct Stored {
    key: String,
    content_type: String,
}

/// Where `media_id` is stored, as the catalogue and history know it, if `viewer`
/// (`None`: anyone, for a URL this gateway signed) may read it.
pub(super) fn shared_object(db: &DB, media_id: &str, viewer: Option<UserId>) -> Result<Option<Stored>, ApiError> {
    let internal = |error: queries::QueryError| ApiError::internal(error.to_string());
    if let Some(uploaded) = queries::media(db, media_id).map_err(internal)? {
        // (Message media is its uploader's through the upload slot, which
        // the sweeper removes with the media.)
        let allowed = match (viewer, uploaded.purpose) {
            (None, _) => true,
            (_, Purpose::Message) => false,
            (Some(viewer), Purpose::GroupIcon) => {
                viewer == uploaded.owner || queries::sees_icon(db, media_id, viewer).map_err(internal)?
            }
            (Some(viewer), Purpose::ProfilePicture) => queries::directory(db, uploaded.owner)
                .map_err(internal)?
                .is_some_and(|owner| visible(owner.privacy.photo, relation(&owner, viewer))),
        };
        if allowed {
            return Ok(Some(Stored { key: uploaded.key, content_type: uploaded.content_type }));
        }
    }
    for (conversation, seq) in queries::media_messages(db, media_id, 256).map_err(internal)? {
        let Some(message) = queries::message_at(db, conversation, seq).map_err(internal)? else { continue };
        let sent = &message.message;
        let may_read =
            viewer.is_none_or(|viewer| sent.members.contains(&viewer) && !sent.withheld_from.contains(&viewer));
        if message.deleted_at.is_none()
            && may_read
            && let Some(media) = sent.attachment.as_ref().and_then(|attachment| attachment.media())
        {
            return Ok(Some(Stored { key: media.key.clone(), content_type: media.content_type.clone() }));
        }
    }
    Ok(None)
}

impl Media {
    /// A download URL for `operation` (`get`, `thumb-150`...) on `key`:
    /// presigned by the object store, or signed by this gateway.
    pub(super) async fn download_url(
        &self,
        operation: &str,
        media_id: &str,
        key: &str,
        expires_ms: i64,
    ) -> Result<String, ApiError> {
        match self.objects.presigned_get(key, ttl_until(expires_ms, self.clock.now_ms())).await.map_err(storage)? {
            Some(url) => Ok(url),
            None => Ok(self.signed_path(operation, media_id, expires_ms)),
        }
    }

    /// Where the caller may fetch a media object (or one of its
    /// thumbnails): a short-lived URL.
    pub(super) async fn download(
        &self,
        principal: Principal,
        media_id: &str,
        size: Option<u32>,
    ) -> Result<String, ApiError> {
        let key = self.readable_key(principal.user, media_id).await?;
        let (operation, key) = match size {
            None => ("get".to_string(), key),
            Some(size) if THUMBNAIL_SIZES.contains(&size) => {
                let thumbnail = thumbnail_key(&key, size);
                if self.objects.size(&thumbnail).await.map_err(storage)?.is_none() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "not_ready",
                        "thumbnails are made of profile pictures and group icons shortly after upload; try again",
                    ));
                }
                (format!("thumb-{size}"), thumbnail)
            }
            Some(_) => {
                let sizes: Vec<String> = THUMBNAIL_SIZES.iter().map(ToString::to_string).collect();
                return Err(ApiError::bad_request("bad_request", format!("size must be one of {}", sizes.join(", "))));
            }
        };
        let expires_ms = self.clock.now_ms() + i64::try_from(self.url_ttl.as_millis()).unwrap_or(i64::MAX);
        self.download_url(&operation, media_id, &key, expires_ms).await
    }

    /// The storage key of `media_id` if `viewer` may fetch it: the uploader;
    /// for message media, the members a message carrying it was sent to
    /// (until it is deleted for everyone); a profile picture, whoever the
    /// owner's photo privacy shows it to; a group icon, anyone signed in.
    pub(super) async fn readable_key(&self, viewer: UserId, media_id: &str) -> Result<String, ApiError> {
        let missing = || ApiError::not_found("not_found", "no such media, or not yours to see");
        if !is_media_id(media_id) {
            return Err(missing());
        }
        if let Some(upload) = self.load(media_id).await?
            && upload.completed
            && upload.owner == viewer
        {
            return Ok(upload.key);
        }
        let (db, media_id) = (self.db.clone(), media_id.to_string());
        let stored = blocking(move || shared_object(&db, &media_id, Some(viewer))).await?;
        stored.map(|stored| stored.key).ok_or_else(missing)
    }

    /// The bytes behind this gateway's signed download URL (local storage).
    pub(super) async fn serve(
        &self,
        media_id: &str,
        operation: &str,
        signed: Signed,
    ) -> Result<warp::reply::Response, ApiError> {
        let missing = || ApiError::not_found("not_found", "no such media");
        if operation != "get" && !operation.starts_with("thumb-") {
            return Err(missing());
        }
        self.check_signature(operation, media_id, &signed)?;
        // The signature says who may read it; here only where it is.
        let stored = match self.load(media_id).await?.filter(|upload| upload.completed) {
            Some(upload) => Stored { key: upload.key, content_type: upload.content_type },
            None => {
                let (db, id) = (self.db.clone(), media_id.to_string());
                blocking(move || shared_object(&db, &id, None)).await?.ok_or_else(missing)?
            }
        };
        let (key, content_type) = match operation.strip_prefix("thumb-").and_then(|size| size.parse().ok()) {
            Some(size) => (thumbnail_key(&stored.key, size), "image/jpeg".to_string()),
            None => (stored.key, stored.content_type),
        };
        // A place among the downloads streamed at once, held until the last byte is sent.
        let permit =
            self.downloads.clone().acquire_owned().await.map_err(|_| ApiError::unavailable("shutting down"))?;
        let (size, mut chunks) = self.objects.get_stream(&key).await.map_err(storage)?.ok_or_else(missing)?;
        // The store's chunks go out through a small channel: memory per
        // download stays a few chunks, and a client that stops reading is
        // cut off after DOWNLOAD_STALL.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tokio::spawn(async move {
            let _permit = permit;
            while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
                let chunk = chunk.map_err(|error| std::io::Error::other(error.to_string()));
                let failed = chunk.is_err();
                if !matches!(tokio::time::timeout(DOWNLOAD_STALL, sender.send(chunk)).await, Ok(Ok(()))) || failed {
                    return;
                }
            }
        });
        let body = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
        let mut response = warp::reply::stream(body).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = warp::http::HeaderValue::from_str(&content_type) {
            headers.insert(warp::http::header::CONTENT_TYPE, value);
        }
        headers.insert(warp::http::header::CONTENT_LENGTH, warp::http::HeaderValue::from(size));
        Ok(response)
    }
}
