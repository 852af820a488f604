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
use missive_core::media::{MediaKind, MediaLimits, UploadRequest, check_upload};
use missive_infra::db::{CF_AUTH, family};
use missive_infra::objects::{Objects, ObjectsError};
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

/// Longest an upload or download URL stays valid.
pub const MAX_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// Local uploads buffered at once (each up to the largest kind's limit).
const LOCAL_UPLOADS_AT_ONCE: usize = 4;

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
}

#[derive(Deserialize)]
struct UploadBody {
    kind: String,
    content_type: String,
    size: u64,
    sha256: String,
}

#[derive(Deserialize)]
struct Signed {
    expires: i64,
    sig: String,
}

type HmacSha256 = Hmac<Sha256>;

impl Media {
    pub fn new(objects: Objects, limits: MediaLimits, url_ttl: Duration, signing_key: &[u8], db: Arc<DB>) -> Media {
        Media {
            objects,
            limits,
            url_ttl: url_ttl.min(MAX_URL_TTL),
            signing_key: signing_key.into(),
            db,
            granted: Arc::default(),
            local_uploads: Arc::new(tokio::sync::Semaphore::new(LOCAL_UPLOADS_AT_ONCE)),
        }
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
            "/v1/media/blobs/{media_id}/{operation}?expires={expires}&sig={}",
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

    async fn url(
        &self,
        method: warp::http::Method,
        media_id: &str,
        key: &str,
        expires_ms: i64,
    ) -> Result<String, ApiError> {
        let operation = if method == warp::http::Method::PUT { "put" } else { "get" };
        let ttl = Duration::from_millis(u64::try_from(expires_ms - missive_infra::now_ms()).unwrap_or(0).max(1000));
        match self.objects.presigned(method, key, ttl).await.map_err(storage)? {
            Some(url) => Ok(url),
            None => Ok(self.signed_path(operation, media_id, expires_ms)),
        }
    }

    async fn start(&self, principal: Principal, body: UploadBody) -> Result<serde_json::Value, ApiError> {
        let now = missive_infra::now_ms();
        let day = now.div_euclid(86_400_000);
        let request =
            UploadRequest { kind: body.kind, content_type: body.content_type, size: body.size, sha256: body.sha256 };
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
        };
        self.save(&id, Some(&slot)).await?;
        let upload_url = self.url(warp::http::Method::PUT, &id, &staging_key, expires_ms).await?;
        Ok(json!({
            "media_id": id,
            "upload_url": upload_url,
            "method": "PUT",
            "expires_at": expires_ms,
            "max_bytes": slot.size,
        }))
    }

    /// Admits a PUT to this gateway's signed URL (local storage) before its
    /// body is read: the signature, the slot, the declared length, and a
    /// place among the uploads buffered at once.
    async fn admit(
        &self,
        media_id: &str,
        signed: &Signed,
        length: Option<u64>,
    ) -> Result<(Upload, tokio::sync::OwnedSemaphorePermit), ApiError> {
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
        let permit =
            self.local_uploads.clone().acquire_owned().await.map_err(|_| ApiError::unavailable("shutting down"))?;
        Ok((upload, permit))
    }

    /// Stores an admitted PUT's body.
    async fn receive(&self, media_id: &str, mut upload: Upload, body: Bytes) -> Result<serde_json::Value, ApiError> {
        if body.len() as u64 > upload.size {
            return Err(too_large(&upload));
        }
        match self.objects.put_once(&upload.staging_key, body).await {
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
        let digest = self.objects.digest(&upload.staging_key).await.map_err(storage)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_uploaded",
                "nothing was uploaded yet; PUT the bytes to upload_url first",
            )
        })?;
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
        // The checked bytes move to the key no URL can write.
        self.objects.copy(&upload.staging_key, &upload.key).await.map_err(storage)?;
        self.objects.delete(&upload.staging_key).await.map_err(storage)?;
        upload.completed = true;
        self.save(media_id, Some(&upload)).await?;
        Ok(json!({
            "media_id": media_id,
            "kind": upload.kind,
            "content_type": upload.content_type,
            "size": upload.size,
            "sha256": upload.sha256,
        }))
    }

    /// Where the caller may fetch a media object: a short-lived URL.
    async fn download(&self, principal: Principal, media_id: &str) -> Result<String, ApiError> {
        let upload = self
            .load(media_id)
            .await?
            .filter(|upload| upload.completed && upload.owner == principal.user)
            .ok_or_else(|| ApiError::not_found("not_found", "no such media, or not yours to see"))?;
        let expires_ms = missive_infra::now_ms() + i64::try_from(self.url_ttl.as_millis()).unwrap_or(i64::MAX);
        self.url(warp::http::Method::GET, media_id, &upload.key, expires_ms).await
    }

    /// The bytes behind this gateway's signed download URL (local storage).
    async fn serve(&self, media_id: &str, signed: Signed) -> Result<warp::reply::Response, ApiError> {
        self.check_signature("get", media_id, &signed)?;
        let upload = self
            .load(media_id)
            .await?
            .filter(|upload| upload.completed)
            .ok_or_else(|| ApiError::not_found("not_found", "no such media"))?;
        let bytes = self
            .objects
            .get(&upload.key)
            .await
            .map_err(storage)?
            .ok_or_else(|| ApiError::not_found("not_found", "no such media"))?;
        let mut response = warp::reply::Response::new(bytes.into());
        if let Ok(value) = warp::http::HeaderValue::from_str(&upload.content_type) {
            response.headers_mut().insert(warp::http::header::CONTENT_TYPE, value);
        }
        Ok(response)
    }
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

/// Media ids are 32 lower-case hex characters (a UUID without dashes).
fn is_media_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
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
            let (upload, permit) = media
                .admit(&media_id, &signed, length)
                .await
                .map_err(|error| warp::reject::custom(error.before_body()))?;
            Ok::<_, warp::Rejection>((media_id, upload, permit, media))
        })
        .untuple_one()
        .and(warp::body::content_length_limit(largest))
        .and(warp::body::bytes())
        .and_then(
            |media_id: String,
             upload: Upload,
             _permit: tokio::sync::OwnedSemaphorePermit,
             media: Media,
             body: Bytes| async move {
                respond(async { ok(media.receive(&media_id, upload, body).await?) }.await)
            },
        )
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
        .and(served)
        .and(media())
        .and_then(|media_id: String, principal: Principal, media: Media| async move {
            respond(
                async {
                    let url = media.download(principal, &media_id).await?;
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
    let fetch = warp::path!("v1" / "media" / "blobs" / String / "get")
        .and(warp::get())
        .and(warp::query::<Signed>())
        .and(media())
        .and_then(|media_id: String, signed: Signed, media: Media| async move {
            respond(media.serve(&media_id, signed).await)
        })
        .boxed();
    vec![start, receive, complete, download, fetch]
}
