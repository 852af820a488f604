//! Media uploads and downloads. A client asks for an upload slot
//! (`POST /v1/media/uploads`: kind, type, size and hash checked against
//! the limits and its daily quota), PUTs the bytes to the URL it gets —
//! presigned S3, or this gateway's own HMAC-signed URL for the local store —
//! then completes it (`POST /v1/media/uploads/{id}/complete`: the stored
//! object's size and SHA-256 must be the declared ones). Keys are made here
//! (`media/{user}/{yyyy-mm}/{uuid}`); nothing a client sends becomes a path.
//!
//! Upload slots are the owner's gateway's local state (like OTP
//! challenges): every media request of a user is served by that user's
//! gateway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use missive_core::UserId;
use missive_core::media::{
    MediaKind, MediaLimits, MediaRef, MediaUploaded, Purpose, THUMBNAIL_SIZES, UploadRequest, check_upload,
    is_media_id, thumbnail_key,
};
use missive_core::users::{relation, visible};
use missive_infra::db::{CF_AUTH, family};
use missive_infra::objects::{Objects, ObjectsError};
use missive_infra::{Log, OutRecord};
use missive_processors::{queries, topics};
use missive_schemas::Codec;
use missive_schemas::wire::WireValue;
use parking_lot::Mutex;
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::api::{Context, json_body, ok, respond, served, with};
use crate::auth::{Principal, blocking};
use crate::errors::ApiError;
use crate::protocol::MediaFrame;

/// Longest an upload or download URL stays valid.
pub const MAX_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// Local uploads buffered at once (each up to the largest kind's limit).
/// A PUT takes its place only once its body starts to arrive.
const LOCAL_UPLOADS_AT_ONCE: usize = 4;
/// A local upload whose body sends nothing for this long is cut off.
pub const UPLOAD_BODY_IDLE: Duration = Duration::from_secs(10);
/// Local downloads streamed at once; more wait for a place.
const DOWNLOADS_AT_ONCE: usize = 64;
/// A download whose client takes no data for this long is cut off.
const DOWNLOAD_STALL: Duration = Duration::from_secs(30);
/// Upload slots one user may hold open (started, not completed, not expired).
pub const OPEN_UPLOADS_PER_USER: usize = 16;

/// How long a presigned URL expiring at `expires_ms` stays valid from now (at least a second).
fn ttl_until(expires_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(expires_ms - missive_infra::now_ms()).unwrap_or(0).max(1000))
}

/// An open upload slot: its media id and when its URL expires (ms).
type OpenSlot = (String, i64);

/// What the media endpoints need.
#[derive(Clone)]
pub struct Media {
    objects: Objects,
    limits: MediaLimits,
    url_ttl: Duration,
    signing_key: Arc<[u8]>,
    db: Arc<DB>,
    /// Bytes granted per user and UTC day (per gateway, in memory, like the rate limits).
    granted: Arc<Mutex<HashMap<(UserId, i64), u64>>>,
    local_uploads: Arc<tokio::sync::Semaphore>,
    downloads: Arc<tokio::sync::Semaphore>,
    /// Open upload slots per user (media id, expiry ms), in memory per gateway.
    open_slots: Arc<Mutex<HashMap<UserId, Vec<OpenSlot>>>>,
    /// Where completed uploads are announced (`events.media`).
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    /// How long media of messages deleted for everyone is kept.
    retention: Duration,
    /// How long after its URL expired a never-completed upload is kept.
    abandoned_after: Duration,
    /// This gateway's base URL among several (Kafka mode): its signed URLs
    /// name it, since the slot they write lives here. Paths alone otherwise.
    own_url: Arc<str>,
}

/// One upload slot, kept until completed or expired.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Upload {
    owner: UserId,
    kind: MediaKind,
    content_type: String,
    size: u64,
    sha256: String,
    /// Where the client's PUT lands (`uploads/{user}/{id}`).
    staging_key: String,
    /// Where a completed object lives (`media/{user}/{yyyy-mm}/{id}`): no
    /// upload URL ever names it, so reusing one cannot change a completed object.
    key: String,
    created_ms: i64,
    expires_ms: i64,
    /// The bytes reached the store through this gateway's URL (local only).
    stored: bool,
    completed: bool,
    #[serde(default)]
    purpose: Purpose,
}

#[derive(Deserialize)]
struct UploadBody {
    kind: String,
    content_type: String,
    size: u64,
    sha256: String,
    /// `message` (default), `profile_picture` or `group_icon`.
    purpose: Option<String>,
}

/// Image types the media processor can make thumbnails of.
const THUMBNAIL_SOURCE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

#[derive(Deserialize)]
struct DownloadQuery {
    /// A thumbnail's size (profile pictures and group icons).
    size: Option<u32>,
}

#[derive(Deserialize)]
struct Signed {
    expires: i64,
    sig: String,
}

type HmacSha256 = Hmac<Sha256>;

impl Media {
    pub fn new(
        objects: Objects,
        settings: &crate::MediaSettings,
        signing_key: &[u8],
        db: Arc<DB>,
        log: Arc<dyn Log>,
        codec: Arc<Codec>,
    ) -> Media {
        Media {
            objects,
            limits: settings.limits,
            url_ttl: settings.url_ttl.min(MAX_URL_TTL),
            signing_key: signing_key.into(),
            db,
            granted: Arc::default(),
            local_uploads: Arc::new(tokio::sync::Semaphore::new(LOCAL_UPLOADS_AT_ONCE)),
            downloads: Arc::new(tokio::sync::Semaphore::new(DOWNLOADS_AT_ONCE)),
            open_slots: Arc::default(),
            log,
            codec,
            retention: settings.retention,
            abandoned_after: settings.abandoned_after,
            own_url: "".into(),
        }
    }

    /// Signed URLs name this gateway (`base`: `http://host:port`).
    pub fn served_at(mut self, base: Option<&str>) -> Media {
        self.own_url = base.unwrap_or_default().into();
        self
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    fn slot_key(media_id: &str) -> Vec<u8> {
        format!("media/upload/{media_id}").into_bytes()
    }

    /// The upload slot `media_id` names, read off the async workers.
    async fn load(&self, media_id: &str) -> Result<Option<Upload>, ApiError> {
        if !is_media_id(media_id) {
            return Ok(None);
        }
        let (db, key) = (self.db.clone(), Self::slot_key(media_id));
        let bytes = blocking(move || {
            db.get_cf(family(&db, CF_AUTH), key).map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
        bytes
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|error| ApiError::internal(format!("corrupt upload record: {error}")))
    }

    /// Writes a new slot and its expiry index entry together.
    async fn save_new(&self, media_id: &str, upload: &Upload) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(upload).map_err(|error| ApiError::internal(error.to_string()))?;
        let (db, key, index) = (self.db.clone(), Self::slot_key(media_id), expiry_key(upload.expires_ms, media_id));
        // The index names the staging key itself: it is cleared even when
        // the slot went first (media removed by retention).
        let staging = upload.staging_key.clone().into_bytes();
        blocking(move || {
            let family = family(&db, CF_AUTH);
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(family, key, bytes);
            batch.put_cf(family, index, staging);
            db.write(batch).map_err(|error| ApiError::internal(error.to_string()))
        })
        .await
    }

    /// Writes (`Some`) or removes (`None`) an upload slot, off the async workers.
    async fn save(&self, media_id: &str, upload: Option<&Upload>) -> Result<(), ApiError> {
        let bytes =
            upload.map(serde_json::to_vec).transpose().map_err(|error| ApiError::internal(error.to_string()))?;
        let (db, key) = (self.db.clone(), Self::slot_key(media_id));
        blocking(move || {
            let family = family(&db, CF_AUTH);
            match bytes {
                Some(bytes) => db.put_cf(family, key, bytes),
                None => db.delete_cf(family, key),
            }
            .map_err(|error| ApiError::internal(error.to_string()))
        })
        .await
    }

    /// The signature of a local URL: operation, object and expiry.
    fn signature(&self, operation: &str, media_id: &str, expires: i64) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).expect("HMAC accepts keys of any length");
        mac.update(format!("missive-media\n{operation}\n{media_id}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn signed_path(&self, operation: &str, media_id: &str, expires: i64) -> String {
        format!(
            "{}/v1/media/blobs/{media_id}/{operation}?expires={expires}&sig={}",
            self.own_url,
            self.signature(operation, media_id, expires)
        )
    }

    fn check_signature(&self, operation: &str, media_id: &str, signed: &Signed) -> Result<(), ApiError> {
        let expected = self.signature(operation, media_id, signed.expires);
        if !bool::from(expected.as_bytes().ct_eq(signed.sig.as_bytes())) {
            return Err(
                ApiError::forbidden("the URL's signature does not match; ask for a new URL").with_code("bad_signature")
            );
        }
        if signed.expires < missive_infra::now_ms() {
            return Err(ApiError::forbidden("the URL has expired; ask for a new one").with_code("expired"));
        }
        Ok(())
    }

    /// A download URL for `operation` (`get`, `thumb-150`...) on `key`:
    /// presigned by the object store, or signed by this gateway.
    async fn download_url(
        &self,
        operation: &str,
        media_id: &str,
        key: &str,
        expires_ms: i64,
    ) -> Result<String, ApiError> {
        match self.objects.presigned_get(key, ttl_until(expires_ms)).await.map_err(storage)? {
            Some(url) => Ok(url),
            None => Ok(self.signed_path(operation, media_id, expires_ms)),
        }
    }

    async fn start(&self, principal: Principal, body: UploadBody) -> Result<serde_json::Value, ApiError> {
        let now = missive_infra::now_ms();
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
            .presigned_put(&staging_key, &slot.sha256, ttl_until(expires_ms))
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
    async fn admit(&self, media_id: &str, signed: &Signed, length: Option<u64>) -> Result<Upload, ApiError> {
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
    async fn receive(
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

    async fn complete(&self, principal: Principal, media_id: &str) -> Result<serde_json::Value, ApiError> {
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
    async fn announce(&self, media_id: &str, upload: &Upload) -> Result<(), ApiError> {
        let uploaded = MediaUploaded {
            media_id: media_id.to_string(),
            owner: upload.owner,
            kind: upload.kind,
            purpose: upload.purpose,
            content_type: upload.content_type.clone(),
            size: upload.size,
            sha256: upload.sha256.clone(),
            key: upload.key.clone(),
            at: missive_core::Millis(missive_infra::now_ms()),
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

    /// Where the caller may fetch a media object (or one of its
    /// thumbnails): a short-lived URL.
    async fn download(&self, principal: Principal, media_id: &str, size: Option<u32>) -> Result<String, ApiError> {
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
        let expires_ms = missive_infra::now_ms() + i64::try_from(self.url_ttl.as_millis()).unwrap_or(i64::MAX);
        self.download_url(&operation, media_id, &key, expires_ms).await
    }

    /// The storage key of `media_id` if `viewer` may fetch it: the uploader;
    /// for message media, the members a message carrying it was sent to
    /// (until it is deleted for everyone); a profile picture, whoever the
    /// owner's photo privacy shows it to; a group icon, anyone signed in.
    async fn readable_key(&self, viewer: UserId, media_id: &str) -> Result<String, ApiError> {
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
    async fn serve(&self, media_id: &str, operation: &str, signed: Signed) -> Result<warp::reply::Response, ApiError> {
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

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub abandoned_uploads: usize,
    pub deleted_media: usize,
}

/// Upload slots by expiry (`media/expiry/<ms><id>`, CF_AUTH), for the sweeper.
const EXPIRY_PREFIX: &[u8] = b"media/expiry/";

fn expiry_key(expires_ms: i64, media_id: &str) -> Vec<u8> {
    let mut key = EXPIRY_PREFIX.to_vec();
    key.extend_from_slice(&expires_ms.max(0).to_be_bytes());
    key.extend_from_slice(media_id.as_bytes());
    key
}

/// Where the sweeper got to in the deleted-media queue (CF_AUTH).
const SWEPT_THROUGH: &[u8] = b"media/sweep/gone";
/// Entries of the deleted-media queue handled per pass.
const SWEEP_BATCH: usize = 1000;

impl Media {
    /// Removes never-completed uploads (slot and staging object) whose URL
    /// expired more than `abandoned_after` ago, and the objects (with
    /// thumbnails) of media whose every message was deleted for everyone
    /// more than `retention` ago and that no message carries again.
    pub async fn sweep(&self) -> Result<Swept, ApiError> {
        let now = missive_infra::now_ms();
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

/// Where a media object is stored, and what it is.
struct Stored {
    key: String,
    content_type: String,
}

/// Where `media_id` is stored, as the catalogue and history know it, if `viewer`
/// (`None`: anyone, for a URL this gateway signed) may read it.
fn shared_object(db: &DB, media_id: &str, viewer: Option<UserId>) -> Result<Option<Stored>, ApiError> {
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

fn too_large(upload: &Upload) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("this upload was declared as {} bytes", upload.size),
    )
}

fn storage(error: ObjectsError) -> ApiError {
    ApiError::unavailable(format!("media storage is not answering ({error}); try again"))
}

/// The media routes.
pub fn routes(context: Context, media: Media) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let served = served(context);
    let largest = [media.limits.image, media.limits.video, media.limits.voice, media.limits.document]
        .into_iter()
        .max()
        .unwrap_or(0);
    let media = move || with(media.clone());
    let start = warp::path!("v1" / "media" / "uploads")
        .and(warp::post())
        .and(served.clone())
        .and(json_body())
        .and(media())
        .and_then(|principal: Principal, body: UploadBody, media: Media| async move {
            respond(async { ok(media.start(principal, body).await?) }.await)
        })
        .boxed();
    let receive = warp::path!("v1" / "media" / "blobs" / String / "put")
        .and(warp::put())
        .and(warp::query::<Signed>())
        .and(warp::header::optional::<u64>("content-length"))
        .and(media())
        .and_then(|media_id: String, signed: Signed, length: Option<u64>, media: Media| async move {
            // Refused requests are answered before their body is read.
            let upload = media
                .admit(&media_id, &signed, length)
                .await
                .map_err(|error| warp::reject::custom(error.before_body()))?;
            Ok::<_, warp::Rejection>((media_id, upload, media))
        })
        .untuple_one()
        .and(warp::body::content_length_limit(largest))
        .and(warp::body::stream())
        .and_then(|media_id: String, upload: Upload, media: Media, body| async move {
            let body = Box::pin(body);
            respond(async { ok(media.receive(&media_id, upload, body).await?) }.await)
        })
        .boxed();
    let complete = warp::path!("v1" / "media" / "uploads" / String / "complete")
        .and(warp::post())
        .and(served.clone())
        .and(media())
        .and_then(|media_id: String, principal: Principal, media: Media| async move {
            respond(async { ok(media.complete(principal, &media_id).await?) }.await)
        })
        .boxed();
    let download = warp::path!("v1" / "media" / String)
        .and(warp::get())
        .and(warp::query::<DownloadQuery>())
        .and(served)
        .and(media())
        .and_then(|media_id: String, query: DownloadQuery, principal: Principal, media: Media| async move {
            respond(
                async {
                    let url = media.download(principal, &media_id, query.size).await?;
                    let mut response = warp::reply::with_status(warp::reply(), StatusCode::FOUND).into_response();
                    let location = warp::http::HeaderValue::from_str(&url)
                        .map_err(|error| ApiError::internal(error.to_string()))?;
                    response.headers_mut().insert(warp::http::header::LOCATION, location);
                    Ok(response)
                }
                .await,
            )
        })
        .boxed();
    let fetch = warp::path!("v1" / "media" / "blobs" / String / String)
        .and(warp::get())
        .and(warp::query::<Signed>())
        .and(media())
        .and_then(|media_id: String, operation: String, signed: Signed, media: Media| async move {
            respond(media.serve(&media_id, &operation, signed).await)
        })
        .boxed();
    vec![start, receive, complete, download, fetch]
}
