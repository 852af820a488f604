//! Uploads: a slot with its URL, the PUT to this gateway's own URL (local
//! storage), completion against the declared size and hash, and the
//! checks that a message or profile names the caller's own upload.

use missive_core::UserId;
use missive_core::media::{MediaRef, MediaUploaded, Purpose, UploadRequest, check_upload};
use missive_infra::OutRecord;
use missive_infra::objects::ObjectsError;
use missive_processors::topics;
use missive_schemas::wire::WireValue;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::store::*;
use crate::auth::Principal;
use crate::protocol::{ApiError, MediaFrame};

#[derive(Deserialize)]
pub(super) struct UploadBody {
    kind: String,
    content_type: String,
    size: u64,
    sha256: String,
    /// `message` (default), `profile_picture` or `group_icon`.
    purpose: Option<String>,
}

pub(super) fn too_large(upload: &Upload) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("this upload was declared as {} bytes", upload.size),
    )
}

impl Media {
    pub(super) async fn start(&self, principal: Principal, body: UploadBody) -> Result<serde_json::Value, ApiError> {
        let now = self.clock.now_ms();
        let day = now.div_euclid(86_400_000);
        let purpose = match body.purpose.as_deref() {
            None => Purpose::Message,
            Some(text) => Purpose::parse(text).ok_or_else(|| {
                ApiError::bad_request("bad_request", "purpose must be message, profile_picture or group_icon")
            })?,
        };
        if purpose.has_thumbnails()
            && (body.kind != "image"
                || !THUMBNAIL_SOURCE_TYPES.contains(&body.content_type.to_ascii_lowercase().as_str()))
        {
            return Err(ApiError::bad_request(
                "bad_content_type",
                format!("profile pictures and group icons are images of type {}", THUMBNAIL_SOURCE_TYPES.join(", ")),
            ));
        }
        let request =
            UploadRequest { kind: body.kind, content_type: body.content_type, size: body.size, sha256: body.sha256 };
        {
            let mut open = self.open_slots.lock();
            let slots = open.entry(principal.user).or_default();
            slots.retain(|(_, expires_ms)| *expires_ms > now);
            if slots.len() >= OPEN_UPLOADS_PER_USER {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_uploads",
                    format!("{OPEN_UPLOADS_PER_USER} uploads of yours are open; complete them or let them expire"),
                ));
            }
        }
        let upload = {
            let mut granted = self.granted.lock();
            granted.retain(|(_, granted_day), _| *granted_day >= day);
            let used = granted.get(&(principal.user, day)).copied().unwrap_or(0);
            let valid = check_upload(&request, used, &self.limits).map_err(|rejection| {
                let status = match rejection.code() {
                    "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                    "quota_exceeded" => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, rejection.code(), rejection.to_string())
            })?;
            *granted.entry((principal.user, day)).or_default() += valid.size;
            valid
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let month = &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..7];
        let key = format!("media/{}/{month}/{id}", principal.user);
        let staging_key = format!("uploads/{}/{id}", principal.user);
        let expires_ms = now + i64::try_from(self.url_ttl.as_millis()).unwrap_or(i64::MAX);
        let slot = Upload {
            owner: principal.user,
            kind: upload.kind,
            content_type: upload.content_type.to_string(),
            size: upload.size,
            sha256: upload.sha256,
            staging_key: staging_key.clone(),
            key,
            created_ms: now,
            expires_ms,
            stored: false,
            completed: false,
            purpose,
        };
        self.save_new(&id, &slot).await?;
        self.open_slots.lock().entry(principal.user).or_default().push((id.clone(), expires_ms));
        let (upload_url, headers) = match self
            .objects
            .presigned_put(&staging_key, &slot.sha256, ttl_until(expires_ms, self.clock.now_ms()))
            .await
            .map_err(storage)?
        {
            Some((url, headers)) => (url, headers),
            None => (self.signed_path("put", &id, expires_ms), Vec::new()),
        };
        let headers: serde_json::Map<String, serde_json::Value> =
            headers.into_iter().map(|(name, value)| (name.to_string(), value.into())).collect();
        Ok(json!({
            "media_id": id,
            "upload_url": upload_url,
            "method": "PUT",
            "headers": headers,
            "expires_at": expires_ms,
            "max_bytes": slot.size,
        }))
    }

    /// Admits a PUT to this gateway's signed URL (local storage) before its
    /// body is read: the signature, the slot, the declared length, and a
    /// place among the uploads buffered at once.
    pub(super) async fn admit(&self, media_id: &str, signed: &Signed, length: Option<u64>) -> Result<Upload, ApiError> {
        self.check_signature("put", media_id, signed)?;
        let upload = self.load(media_id).await?.ok_or_else(|| ApiError::not_found("not_found", "no such upload"))?;
        if upload.stored || upload.completed {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_uploaded",
                "this upload URL was already used; ask for a new upload",
            ));
        }
        if length.is_some_and(|length| length > upload.size) {
            return Err(too_large(&upload));
        }
        Ok(upload)
    }

    /// Reads and stores an admitted PUT's body. It takes a place among the
    /// uploads buffered at once when its first bytes arrive (a PUT that
    /// sends nothing holds none), and is cut off when no bytes come for
    /// [`UPLOAD_BODY_IDLE`].
    pub(super) async fn receive(
        &self,
        media_id: &str,
        mut upload: Upload,
        body: impl futures::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Unpin,
    ) -> Result<serde_json::Value, ApiError> {
        let mut body = body;
        let stalled = || {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("no bytes for {} s; PUT the bytes again", UPLOAD_BODY_IDLE.as_secs()),
            )
        };
        let broken = |error: warp::Error| ApiError::bad_request("bad_request", format!("reading the body: {error}"));
        let mut permit = None;
        let mut bytes = bytes::BytesMut::new();
        loop {
            let next = tokio::time::timeout(UPLOAD_BODY_IDLE, futures::StreamExt::next(&mut body)).await;
            let Some(chunk) = next.map_err(|_| stalled())? else { break };
            let mut chunk = chunk.map_err(broken)?;
            if permit.is_none() {
                let place = self.local_uploads.clone().acquire_owned();
                permit = Some(place.await.map_err(|_| ApiError::unavailable("shutting down"))?);
            }
            if (bytes.len() + chunk.remaining()) as u64 > upload.size {
                return Err(too_large(&upload));
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                bytes.extend_from_slice(part);
                let taken = part.len();
                chunk.advance(taken);
            }
        }
        match self.objects.put_once(&upload.staging_key, bytes.freeze()).await {
            Ok(()) => {}
            Err(ObjectsError::Exists) => {
                return Err(ApiError::new(StatusCode::CONFLICT, "already_uploaded", "this upload was already stored"));
            }
            Err(error) => return Err(storage(error)),
        }
        upload.stored = true;
        self.save(media_id, Some(&upload)).await?;
        Ok(json!({"media_id": media_id, "stored": true}))
    }

    pub(super) async fn complete(&self, principal: Principal, media_id: &str) -> Result<serde_json::Value, ApiError> {
        let mut upload = self
            .load(media_id)
            .await?
            .filter(|upload| upload.owner == principal.user)
            .ok_or_else(|| ApiError::not_found("not_found", "no such upload of yours"))?;
        if upload.completed {
            return Err(ApiError::new(StatusCode::CONFLICT, "already_completed", "this upload is already complete"));
        }
        // A complete retried after the bytes moved finds them at their key.
        let staged = self.objects.digest(&upload.staging_key).await.map_err(storage)?;
        let was_staged = staged.is_some();
        let digest = match staged {
            Some(digest) => digest,
            None => self.objects.digest(&upload.key).await.map_err(storage)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "not_uploaded",
                    "nothing was uploaded yet; PUT the bytes to upload_url first",
                )
            })?,
        };
        let refuse =
            |code: &'static str, message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
        let problem = if digest.size != upload.size {
            Some(refuse("size_mismatch", format!("{} bytes were declared, {} uploaded", upload.size, digest.size)))
        } else if hex::encode(digest.sha256) != upload.sha256 {
            Some(refuse("hash_mismatch", "the uploaded bytes do not have the declared SHA-256".into()))
        } else {
            None
        };
        if let Some(problem) = problem {
            // Nothing that failed its checks stays stored.
            self.objects.delete(&upload.staging_key).await.map_err(storage)?;
            self.save(media_id, None).await?;
            return Err(problem);
        }
        if was_staged {
            // The checked bytes move to the key no URL can write.
            self.objects.copy(&upload.staging_key, &upload.key).await.map_err(storage)?;
            self.objects.delete(&upload.staging_key).await.map_err(storage)?;
        }
        self.announce(media_id, &upload).await?;
        upload.completed = true;
        self.save(media_id, Some(&upload)).await?;
        if let Some(slots) = self.open_slots.lock().get_mut(&principal.user) {
            slots.retain(|(id, _)| id != media_id);
        }
        Ok(json!({
            "media_id": media_id,
            "kind": upload.kind,
            "purpose": upload.purpose,
            "content_type": upload.content_type,
            "size": upload.size,
            "sha256": upload.sha256,
        }))
    }

    /// Appends `MediaUploaded` to `events.media` (the catalogue and the
    /// thumbnail maker read it). Done before the slot says completed, so a
    /// completed upload was always announced; a retry announces again,
    /// which both readers take as the same fact.
    pub(super) async fn announce(&self, media_id: &str, upload: &Upload) -> Result<(), ApiError> {
        let uploaded = MediaUploaded {
            media_id: media_id.to_string(),
            owner: upload.owner,
            kind: upload.kind,
            purpose: upload.purpose,
            content_type: upload.content_type.clone(),
            size: upload.size,
            sha256: upload.sha256.clone(),
            key: upload.key.clone(),
            at: missive_core::Millis(self.clock.now_ms()),
        };
        let value = self
            .codec
            .encode_value(&WireValue::from(&uploaded))
            .map_err(|error| ApiError::internal(error.to_string()))?;
        let record = OutRecord {
            topic: topics::EVENTS_MEDIA.to_string(),
            partition: None,
            key: media_id.as_bytes().to_vec(),
            value,
            headers: Vec::new(),
            timestamp: None,
        };
        self.log.append(vec![record]).await.map(|_| ()).map_err(|error| {
            ApiError::unavailable(format!("the log did not take the upload ({error}); complete again"))
        })
    }

    /// Checks that `media_id` names `owner`'s own completed upload made for
    /// `purpose` (a profile picture or a group icon is no free text).
    pub async fn require_own(&self, owner: UserId, media_id: &str, purpose: Purpose) -> Result<(), ApiError> {
        let fits = self
            .load(media_id)
            .await?
            .is_some_and(|upload| upload.owner == owner && upload.completed && upload.purpose == purpose);
        if fits {
            return Ok(());
        }
        let field = if purpose == Purpose::GroupIcon { "icon" } else { "picture" };
        Err(ApiError::bad_request(
            "invalid_media",
            format!(
                "{field} must be the media_id of your own completed upload with purpose {} (or \"\" for none)",
                purpose.as_str()
            ),
        ))
    }

    /// The media reference a message carries: the sender's own completed
    /// upload, as stored (what the client says of it must match).
    pub async fn attach(&self, sender: UserId, frame: MediaFrame) -> Result<MediaRef, ApiError> {
        let upload = self
            .load(&frame.media_id)
            .await?
            .filter(|upload| upload.owner == sender && upload.completed)
            .ok_or_else(|| {
                ApiError::not_found("not_found", "no completed upload of yours has this media_id; complete it first")
            })?;
        let mismatch = frame.kind.as_deref().is_some_and(|kind| kind != upload.kind.as_str())
            || frame.size.is_some_and(|size| size != upload.size)
            || frame.content_type.as_deref().is_some_and(|kind| !kind.eq_ignore_ascii_case(&upload.content_type));
        if mismatch {
            return Err(ApiError::bad_request(
                "media_mismatch",
                format!("the upload is {} ({}), {} bytes", upload.kind, upload.content_type, upload.size),
            ));
        }
        Ok(MediaRef {
            media_id: frame.media_id,
            media_kind: upload.kind,
            size: upload.size,
            content_type: upload.content_type,
            sha256: upload.sha256,
            key: upload.key,
            caption: frame.caption,
            thumbnail: frame.thumbnail,
        })
    }
}

/// Parses `bytes` as each request body of this module (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    let _ = crate::rest::parse_json::<UploadBody>(bytes);
}
