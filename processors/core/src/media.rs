//! Media uploads: what may be uploaded and how much (pure rules; the
//! gateway signs, stores and records). Clients upload straight to object
//! storage, never through the message path; a message carries only a
//! reference to a completed upload.

use std::fmt;

/// What a media object is, which decides its size limit and allowed types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Voice,
    Document,
}

impl MediaKind {
    pub fn parse(text: &str) -> Option<MediaKind> {
        match text {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            "voice" => Some(MediaKind::Voice),
            "document" => Some(MediaKind::Document),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Voice => "voice",
            MediaKind::Document => "document",
        }
    }

    /// The content types a client may declare for this kind (of the plain
    /// media: encrypted uploads declare what they encrypt).
    pub fn content_types(self) -> &'static [&'static str] {
        match self {
            MediaKind::Image => &["image/jpeg", "image/png", "image/webp", "image/gif", "image/heic"],
            MediaKind::Video => &["video/mp4", "video/3gpp", "video/quicktime", "video/webm"],
            MediaKind::Voice => &["audio/ogg", "audio/mpeg", "audio/aac", "audio/mp4", "audio/amr", "audio/opus"],
            MediaKind::Document => &[
                "application/pdf",
                "application/zip",
                "application/octet-stream",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "text/plain",
                "text/csv",
            ],
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Size limits per kind and the daily upload quota per user, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaLimits {
    pub image: u64,
    pub video: u64,
    pub voice: u64,
    pub document: u64,
    pub daily_bytes_per_user: u64,
}

const MIB: u64 = 1 << 20;

impl Default for MediaLimits {
    fn default() -> Self {
        MediaLimits {
            image: 16 * MIB,
            video: 16 * MIB,
            voice: 16 * MIB,
            document: 100 * MIB,
            daily_bytes_per_user: 2048 * MIB,
        }
    }
}

impl MediaLimits {
    pub fn of(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Video => self.video,
            MediaKind::Voice => self.voice,
            MediaKind::Document => self.document,
        }
    }
}

/// An upload as the client declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRequest {
    pub kind: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// An upload the rules accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidUpload {
    pub kind: MediaKind,
    pub content_type: &'static str,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaRejection {
    #[error("unknown media kind {0:?}: use image, video, voice or document")]
    UnknownKind(String),
    #[error("content type {content_type:?} is not accepted for {kind}; accepted: {accepted}")]
    ContentType { kind: MediaKind, content_type: String, accepted: String },
    #[error("an upload must declare at least one byte")]
    Empty,
    #[error("{kind} uploads are limited to {limit} bytes; {size} declared")]
    TooLarge { kind: MediaKind, size: u64, limit: u64 },
    #[error("sha256 must be 64 hexadecimal characters (the SHA-256 of the bytes to upload)")]
    BadHash,
    #[error("daily upload quota reached: {used} of {limit} bytes used today, {size} more asked")]
    Quota { used: u64, size: u64, limit: u64 },
}

impl MediaRejection {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            MediaRejection::UnknownKind(_) => "bad_kind",
            MediaRejection::ContentType { .. } => "bad_content_type",
            MediaRejection::Empty | MediaRejection::BadHash => "bad_request",
            MediaRejection::TooLarge { .. } => "too_large",
            MediaRejection::Quota { .. } => "quota_exceeded",
        }
    }
}

/// Checks a declared upload against the limits, given the bytes the user
/// has already been granted today.
pub fn check_upload(
    request: &UploadRequest,
    used_today: u64,
    limits: &MediaLimits,
) -> Result<ValidUpload, MediaRejection> {
    let kind = MediaKind::parse(&request.kind).ok_or_else(|| MediaRejection::UnknownKind(request.kind.clone()))?;
    let declared = request.content_type.trim().to_ascii_lowercase();
    let content_type =
        kind.content_types().iter().copied().find(|accepted| *accepted == declared).ok_or_else(|| {
            MediaRejection::ContentType {
                kind,
                content_type: request.content_type.clone(),
                accepted: kind.content_types().join(", "),
            }
        })?;
    if request.size == 0 {
        return Err(MediaRejection::Empty);
    }
    let limit = limits.of(kind);
    if request.size > limit {
        return Err(MediaRejection::TooLarge { kind, size: request.size, limit });
    }
    let sha256 = request.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(MediaRejection::BadHash);
    }
    if used_today.saturating_add(request.size) > limits.daily_bytes_per_user {
        return Err(MediaRejection::Quota { used: used_today, size: request.size, limit: limits.daily_bytes_per_user });
    }
    Ok(ValidUpload { kind, content_type, size: request.size, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: &str, content_type: &str, size: u64) -> UploadRequest {
        UploadRequest { kind: kind.into(), content_type: content_type.into(), size, sha256: "ab".repeat(32) }
    }

    #[test]
    fn kinds_types_sizes_hashes_and_quota_are_checked() {
        let limits = MediaLimits::default();
        let ok = check_upload(&request("image", "Image/JPEG", 1000), 0, &limits).expect("accepted");
        assert_eq!((ok.kind, ok.content_type), (MediaKind::Image, "image/jpeg"));
        let refuse = |request: UploadRequest, used: u64| {
            check_upload(&request, used, &limits).map(|_| ()).expect_err("refused").code()
        };
        assert_eq!(refuse(request("sticker", "image/png", 1), 0), "bad_kind");
        assert_eq!(refuse(request("image", "application/pdf", 1), 0), "bad_content_type");
        assert_eq!(refuse(request("image", "image/png/../../etc", 1), 0), "bad_content_type");
        assert_eq!(refuse(request("image", "image/png", 0), 0), "bad_request");
        assert_eq!(refuse(request("image", "image/png", 16 * MIB + 1), 0), "too_large");
        assert!(
            check_upload(&request("image", "image/png", 16 * MIB), 0, &limits).is_ok(),
            "the limit itself is allowed"
        );
        assert!(check_upload(&request("document", "application/pdf", 100 * MIB), 0, &limits).is_ok());
        assert_eq!(refuse(request("document", "application/pdf", 100 * MIB + 1), 0), "too_large");
        let mut bad_hash = request("image", "image/png", 1);
        bad_hash.sha256 = "zz".repeat(32);
        assert_eq!(refuse(bad_hash, 0), "bad_request");
        assert_eq!(refuse(request("image", "image/png", 10), limits.daily_bytes_per_user - 9), "quota_exceeded");
        assert!(check_upload(&request("image", "image/png", 10), limits.daily_bytes_per_user - 10, &limits).is_ok());
    }
}
