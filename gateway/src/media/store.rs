//! The media service's state: upload slots (gateway-local, like OTP
//! challenges), signed local URLs, and the object store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use missive_core::UserId;
use missive_core::media::{MediaKind, MediaLimits, Purpose, is_media_id};
use missive_infra::db::{CF_AUTH, family};
use missive_infra::objects::{Objects, ObjectsError};
use missive_infra::{Clock, Log};
use missive_schemas::Codec;
use parking_lot::Mutex;
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::blocking;
use crate::protocol::ApiError;

/// Longest an upload or download URL stays valid.
pub const MAX_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// Local uploads buffered at once (each up to the largest kind's limit).
/// A PUT takes its place only once its body starts to arrive.
pub(super) const LOCAL_UPLOADS_AT_ONCE: usize = 4;
/// A local upload whose body sends nothing for this long is cut off.
pub const UPLOAD_BODY_IDLE: Duration = Duration::from_secs(10);
/// Local downloads streamed at once; more wait for a place.
pub(super) const DOWNLOADS_AT_ONCE: usize = 64;
/// A download whose client takes no data for this long is cut off.
pub(super) const DOWNLOAD_STALL: Duration = Duration::from_secs(30);
/// Upload slots one user may hold open (started, not completed, not expired).
pub const OPEN_UPLOADS_PER_USER: usize = 16;

/// How long a presigned URL expiring at `expires_ms` stays valid from now (at least a second).
pub(super) fn ttl_until(expires_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(expires_ms - now_ms).unwrap_or(0).max(1000))
}

/// An open upload slot: its media id and when its URL expires (ms).
pub(super) type OpenSlot = (String, i64);

/// What the media endpoints need.
#[derive(Clone)]
pub struct Media {
    pub(super) objects: Objects,
    pub(super) limits: MediaLimits,
    pub(super) url_ttl: Duration,
    pub(super) signing_key: Arc<[u8]>,
    pub(super) db: Arc<DB>,
    /// Bytes granted per user and UTC day (per gateway, in memory, like the rate limits).
    pub(super) granted: Arc<Mutex<HashMap<(UserId, i64), u64>>>,
    pub(super) local_uploads: Arc<tokio::sync::Semaphore>,
    pub(super) downloads: Arc<tokio::sync::Semaphore>,
    /// Open upload slots per user (media id, expiry ms), in memory per gateway.
    pub(super) open_slots: Arc<Mutex<HashMap<UserId, Vec<OpenSlot>>>>,
    /// Where completed uploads are announced (`events.media`).
    pub(super) log: Arc<dyn Log>,
    pub(super) codec: Arc<Codec>,
    /// How long media of messages deleted for everyone is kept.
    pub(super) retention: Duration,
    /// How long after its URL expired a never-completed upload is kept.
    pub(super) abandoned_after: Duration,
    /// This gateway's base URL among several (Kafka mode): its signed URLs
    /// name it, since the slot they write lives here. Paths alone otherwise.
    pub(super) own_url: Arc<str>,
    /// What URL expiry, upload days and retention are reckoned with.
    pub(super) clock: Clock,
}

/// One upload slot, kept until completed or expired.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Upload {
    pub(super) owner: UserId,
    pub(super) kind: MediaKind,
    pub(super) content_type: String,
    pub(super) size: u64,
    pub(super) sha256: String,
    /// Where the client's PUT lands (`uploads/{user}/{id}`).
    pub(super) staging_key: String,
    /// Where a completed object lives (`media/{user}/{yyyy-mm}/{id}`): no
    /// upload URL ever names it, so reusing one cannot change a completed object.
    pub(super) key: String,
    pub(super) created_ms: i64,
    pub(super) expires_ms: i64,
    /// The bytes reached the store through this gateway's URL (local only).
    pub(super) stored: bool,
    pub(super) completed: bool,
    #[serde(default)]
    pub(super) purpose: Purpose,
}

/// Image types the media processor can make thumbnails of.
pub(super) const THUMBNAIL_SOURCE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

#[derive(Deserialize)]
pub(super) struct Signed {
    pub(super) expires: i64,
    pub(super) sig: String,
}

pub(super) type HmacSha256 = Hmac<Sha256>;

impl Media {
    pub fn new(
        objects: Objects,
        settings: &MediaSettings,
        signing_key: &[u8],
        db: Arc<DB>,
        log: Arc<dyn Log>,
        codec: Arc<Codec>,
        clock: Clock,
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
            clock,
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

    pub(super) fn slot_key(media_id: &str) -> Vec<u8> {
        format!("media/upload/{media_id}").into_bytes()
    }

    /// The upload slot `media_id` names, read off the async workers.
    pub(super) async fn load(&self, media_id: &str) -> Result<Option<Upload>, ApiError> {
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
    pub(super) async fn save_new(&self, media_id: &str, upload: &Upload) -> Result<(), ApiError> {
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
    pub(super) async fn save(&self, media_id: &str, upload: Option<&Upload>) -> Result<(), ApiError> {
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
    pub(super) fn signature(&self, operation: &str, media_id: &str, expires: i64) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).expect("HMAC accepts keys of any length");
        mac.update(format!("missive-media\n{operation}\n{media_id}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub(super) fn signed_path(&self, operation: &str, media_id: &str, expires: i64) -> String {
        format!(
            "{}/v1/media/blobs/{media_id}/{operation}?expires={expires}&sig={}",
            self.own_url,
            self.signature(operation, media_id, expires)
        )
    }

    pub(super) fn check_signature(&self, operation: &str, media_id: &str, signed: &Signed) -> Result<(), ApiError> {
        let expected = self.signature(operation, media_id, signed.expires);
        if !bool::from(expected.as_bytes().ct_eq(signed.sig.as_bytes())) {
            return Err(
                ApiError::forbidden("the URL's signature does not match; ask for a new URL").with_code("bad_signature")
            );
        }
        if signed.expires < self.clock.now_ms() {
            return Err(ApiError::forbidden("the URL has expired; ask for a new one").with_code("expired"));
        }
        Ok(())
    }
}

pub(super) fn storage(error: ObjectsError) -> ApiError {
    ApiError::unavailable(format!("media storage is not answering ({error}); try again"))
}

/// Where media objects live, what may be uploaded, how long URLs last.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    pub objects: missive_infra::objects::ObjectsConfig,
    pub limits: missive_core::media::MediaLimits,
    pub url_ttl: std::time::Duration,
    /// How long media of messages deleted for everyone is kept.
    pub retention: std::time::Duration,
    /// How long after its URL expired a never-completed upload is removed.
    pub abandoned_after: std::time::Duration,
    /// How often the media sweeper runs.
    pub sweep_every: std::time::Duration,
}

/// Upload slots by expiry (`media/expiry/<ms><id>`, CF_AUTH), for the sweeper.
pub(super) const EXPIRY_PREFIX: &[u8] = b"media/expiry/";

pub(super) fn expiry_key(expires_ms: i64, media_id: &str) -> Vec<u8> {
    let mut key = EXPIRY_PREFIX.to_vec();
    key.extend_from_slice(&expires_ms.max(0).to_be_bytes());
    key.extend_from_slice(media_id.as_bytes());
    key
}
