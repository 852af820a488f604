//! Object storage for media, through the `object_store` crate: a local
//! directory (embedded mode, under the data directory) or an S3-compatible
//! service (Kafka mode). Keys are always made by the server; this module
//! never sees a client-chosen path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

/// The header binding a presigned PUT to the declared content.
pub const CHECKSUM_HEADER: &str = "x-amz-checksum-sha256";

/// Where media objects live.
#[derive(Clone, Debug)]
pub enum ObjectsConfig {
    /// A directory on this machine (created if missing).
    Local { root: PathBuf },
    /// An S3-compatible service.
    S3 { endpoint: String, bucket: String, region: String, access_key: String, secret_key: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("object storage refused the configuration: {0}")]
    Config(String),
    #[error("the object already exists")]
    Exists,
    #[error("object storage failed: {0}")]
    Store(#[from] object_store::Error),
    #[error("{0}")]
    Invalid(String),
}

/// An object's bytes, chunk by chunk.
pub type ObjectStream = futures::stream::BoxStream<'static, Result<Bytes, ObjectsError>>;

/// What a stored object holds: its size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectDigest {
    pub size: u64,
    pub sha256: [u8; 32],
}

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Set for S3: it signs URLs clients use directly.
    s3: Option<Arc<AmazonS3>>,
}

impl Objects {
    pub fn open(config: &ObjectsConfig) -> Result<Objects, ObjectsError> {
        match config {
            ObjectsConfig::Local { root } => {
                std::fs::create_dir_all(root)
                    .map_err(|error| ObjectsError::Config(format!("cannot create {}: {error}", root.display())))?;
                let store = LocalFileSystem::new_with_prefix(root)?;
                Ok(Objects { store: Arc::new(store), s3: None })
            }
            ObjectsConfig::S3 { endpoint, bucket, region, access_key, secret_key } => {
                let s3 = AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key)
                    .with_secret_access_key(secret_key)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false)
                    .build()?;
                let s3 = Arc::new(s3);
                Ok(Objects { store: s3.clone(), s3: Some(s3) })
            }
        }
    }

    /// True when clients upload and download with presigned S3 URLs; false
    /// when the gateway serves the bytes under its own signed URLs.
    pub fn presigns(&self) -> bool {
        self.s3.is_some()
    }

    /// A presigned PUT of `key`, valid for `ttl`, bound to the declared
    /// content: the SHA-256 (hex) is signed as the `x-amz-checksum-sha256`
    /// header, which the uploader must send as returned, and S3 refuses a
    /// body whose checksum differs (so neither other bytes nor another
    /// length are stored). Returns the URL and the headers to send (S3 only).
    pub async fn presigned_put(
        &self,
        key: &str,
        sha256_hex: &str,
        ttl: Duration,
    ) -> Result<Option<(String, Vec<(&'static str, String)>)>, ObjectsError> {
        use base64::Engine;
        let Some(s3) = &self.s3 else { return Ok(None) };
        let digest = hex::decode(sha256_hex)
            .ok()
            .filter(|digest| digest.len() == 32)
            .ok_or_else(|| ObjectsError::Invalid("the declared SHA-256 is not 64 hex digits".into()))?;
        let checksum = base64::engine::general_purpose::STANDARD.encode(digest);
        let value = http::HeaderValue::from_str(&checksum).map_err(|error| ObjectsError::Invalid(error.to_string()))?;
        let options = object_store::signer::SignedUrlOptions::default()
            .with_signed_header(http::HeaderName::from_static(CHECKSUM_HEADER), value);
        let url = s3.signed_url_opts(http::Method::PUT, &Path::from(key), ttl, &options).await?;
        Ok(Some((url.to_string(), vec![(CHECKSUM_HEADER, checksum)])))
    }

    /// A presigned GET of `key`, valid for `ttl` (S3 only).
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<Option<String>, ObjectsError> {
        match &self.s3 {
            Some(s3) => Ok(Some(s3.signed_url(http::Method::GET, &Path::from(key), ttl).await?.to_string())),
            None => Ok(None),
        }
    }

    /// Writes `key` once: an existing object is never replaced.
    pub async fn put_once(&self, key: &str, bytes: Bytes) -> Result<(), ObjectsError> {
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&Path::from(key), PutPayload::from(bytes), options).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(ObjectsError::Exists),
            Err(error) => Err(error.into()),
        }
    }

    /// Size and SHA-256 of a stored object, read as a stream; `None` if absent.
    pub async fn digest(&self, key: &str) -> Result<Option<ObjectDigest>, ObjectsError> {
        let result = match self.store.get(&Path::from(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let mut stream = result.into_stream();
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some(ObjectDigest { size, sha256: hasher.finalize().into() }))
    }

    /// The size of a stored object, without reading it; `None` if absent.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, ObjectsError> {
        match self.store.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Writes (or replaces) `key`: for server-made objects such as thumbnails.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectsError> {
        self.store.put(&Path::from(key), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The object's size and its bytes as a stream of chunks (read as they
    /// are sent, never whole in memory); `None` if absent.
    pub async fn get_stream(&self, key: &str) -> Result<Option<(u64, ObjectStream)>, ObjectsError> {
        match self.store.get(&Path::from(key)).await {
            Ok(result) => {
                let size = result.meta.size;
                Ok(Some((size, result.into_stream().map(|chunk| chunk.map_err(ObjectsError::from)).boxed())))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The whole object (thumbnail sources and other small server-side reads).
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectsError> {
        match self.store.get(&Path::from(key)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Copies `from` to `to` inside the store (server-side for S3).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), ObjectsError> {
        Ok(self.store.copy(&Path::from(from), &Path::from(to)).await?)
    }

    /// Every key under `prefix`, for tests and retention sweeps.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectsError> {
        let prefix = Path::from(prefix);
        let mut keys = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            keys.push(meta?.location.to_string());
        }
        keys.sort();
        Ok(keys)
    }

    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
