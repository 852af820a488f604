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

/// What an upload is for. Message media may be end-to-end encrypted and
/// is only relayed; profile pictures and group icons are plain images the
/// media processor makes thumbnails of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    #[default]
    Message,
    ProfilePicture,
    GroupIcon,
}

impl Purpose {
    pub fn parse(text: &str) -> Option<Purpose> {
        match text {
            "message" => Some(Purpose::Message),
            "profile_picture" => Some(Purpose::ProfilePicture),
            "group_icon" => Some(Purpose::GroupIcon),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Message => "message",
            Purpose::ProfilePicture => "profile_picture",
            Purpose::GroupIcon => "group_icon",
        }
    }

    /// Whether the server makes thumbnails of it (plain images only).
    pub fn has_thumbnails(self) -> bool {
        !matches!(self, Purpose::Message)
    }
}

/// Thumbnail sizes (longest side, pixels) made for profile pictures and group icons.
pub const THUMBNAIL_SIZES: [u32; 2] = [150, 400];

/// The storage key of a thumbnail of the media stored at `key`
/// (`media/{user}/{yyyy-mm}/{id}` -> `thumbs/{user}/{yyyy-mm}/{id}-{size}.jpg`).
pub fn thumbnail_key(key: &str, size: u32) -> String {
    let rest = key.strip_prefix("media/").unwrap_or(key);
    format!("thumbs/{rest}-{size}.jpg")
}

/// An upload was completed: its bytes are stored under `key` and match the
/// declared size and hash. Recorded on `events.media`, keyed by media id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediaUploaded {
    pub media_id: String,
    pub owner: crate::ids::UserId,
    pub kind: MediaKind,
    pub purpose: Purpose,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub key: String,
    pub at: crate::ids::Millis,
}

/// Media ids are 32 lower-case hex characters (a UUID without dashes).
pub fn is_media_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Longest caption of a media message, in bytes of UTF-8.
pub const MAX_CAPTION_BYTES: usize = 4096;
/// Largest client-made thumbnail (for encrypted media), in bytes.
pub const MAX_THUMBNAIL_BYTES: usize = 64 * 1024;
/// Largest contact card (vCard text), in bytes.
pub const MAX_VCARD_BYTES: usize = 16 * 1024;
/// Longest place name of a shared location, in bytes.
pub const MAX_PLACE_NAME_BYTES: usize = 256;

/// What a message carries besides its text.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attachment {
    /// A completed upload (image, video, voice note or document).
    Media(MediaRef),
    /// A point on the map, with an optional place name.
    Location { latitude: f64, longitude: f64, name: Option<String> },
    /// A contact card (vCard 3.0/4.0 text).
    Contact { vcard: String },
}

impl Eq for Attachment {}

/// A reference to a completed upload, as a message carries it. `key` is the
/// server-made storage key (never shown to clients).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediaRef {
    pub media_id: String,
    pub media_kind: MediaKind,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub key: String,
    pub caption: Option<String>,
    /// Base64 of a client-made thumbnail, at most [`MAX_THUMBNAIL_BYTES`] decoded.
    pub thumbnail: Option<String>,
}

impl Attachment {
    pub fn kind(&self) -> &'static str {
        match self {
            Attachment::Media(media) => media.media_kind.as_str(),
            Attachment::Location { .. } => "location",
            Attachment::Contact { .. } => "contact",
        }
    }

    /// The media this message refers to, if any.
    pub fn media(&self) -> Option<&MediaRef> {
        match self {
            Attachment::Media(media) => Some(media),
            _ => None,
        }
    }
}

/// Why an attachment was refused (stable code + message for the client).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AttachmentRejection {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> AttachmentRejection {
    AttachmentRejection { code, message: message.into() }
}

/// Checks the parts of an attachment a client writes: caption, thumbnail,
/// coordinates, place name and vCard. (Media references are checked against
/// the completed upload by the gateway.)
pub fn check_attachment(attachment: &Attachment) -> Result<(), AttachmentRejection> {
    match attachment {
        Attachment::Media(media) => {
            if let Some(caption) = &media.caption
                && caption.len() > MAX_CAPTION_BYTES
            {
                return Err(refuse("too_large", format!("captions are limited to {MAX_CAPTION_BYTES} bytes")));
            }
            if let Some(thumbnail) = &media.thumbnail {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(thumbnail)
                    .map_err(|_| refuse("bad_frame", "media.thumbnail must be standard base64"))?;
                if bytes.len() > MAX_THUMBNAIL_BYTES {
                    return Err(refuse(
                        "too_large",
                        format!("thumbnails are limited to {MAX_THUMBNAIL_BYTES} bytes; {} given", bytes.len()),
                    ));
                }
            }
            Ok(())
        }
        Attachment::Location { latitude, longitude, name } => {
            if !(latitude.is_finite() && (-90.0..=90.0).contains(latitude)) {
                return Err(refuse("bad_request", "location.latitude must be between -90 and 90"));
            }
            if !(longitude.is_finite() && (-180.0..=180.0).contains(longitude)) {
                return Err(refuse("bad_request", "location.longitude must be between -180 and 180"));
            }
            if name.as_ref().is_some_and(|name| name.len() > MAX_PLACE_NAME_BYTES) {
                return Err(refuse("too_large", format!("place names are limited to {MAX_PLACE_NAME_BYTES} bytes")));
            }
            Ok(())
        }
        Attachment::Contact { vcard } => {
            if vcard.len() > MAX_VCARD_BYTES {
                return Err(refuse("too_large", format!("contact cards are limited to {MAX_VCARD_BYTES} bytes")));
            }
            let text = vcard.trim();
            let upper = text.to_ascii_uppercase();
            if !(upper.starts_with("BEGIN:VCARD") && upper.ends_with("END:VCARD")) {
                return Err(refuse("bad_request", "contact.vcard must be a vCard (BEGIN:VCARD ... END:VCARD)"));
            }
            Ok(())
        }
    }
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

    #[test]
    fn attachments_are_checked_for_sizes_coordinates_and_shapes() {
        use base64::Engine as _;
        let media = |caption: Option<String>, thumbnail: Option<Vec<u8>>| {
            Attachment::Media(MediaRef {
                media_id: "ab".repeat(16),
                media_kind: MediaKind::Image,
                size: 10,
                content_type: "image/jpeg".into(),
                sha256: "ab".repeat(32),
                key: String::new(),
                caption,
                thumbnail: thumbnail.map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
            })
        };
        let code = |attachment: &Attachment| check_attachment(attachment).map(|_| "ok").unwrap_or_else(|e| e.code);
        assert_eq!(code(&media(Some("hi".into()), Some(vec![1; MAX_THUMBNAIL_BYTES]))), "ok");
        assert_eq!(code(&media(None, Some(vec![1; MAX_THUMBNAIL_BYTES + 1]))), "too_large");
        assert_eq!(code(&media(Some("x".repeat(MAX_CAPTION_BYTES + 1)), None)), "too_large");
        let mut bad = media(None, None);
        if let Attachment::Media(media) = &mut bad {
            media.thumbnail = Some("not base64!".into());
        }
        assert_eq!(code(&bad), "bad_frame");
        let place = |latitude: f64, longitude: f64| Attachment::Location { latitude, longitude, name: None };
        assert_eq!(code(&place(48.85, 2.35)), "ok");
        assert_eq!(code(&place(90.5, 0.0)), "bad_request");
        assert_eq!(code(&place(0.0, -180.5)), "bad_request");
        assert_eq!(code(&place(f64::NAN, 0.0)), "bad_request");
        let card = |vcard: &str| Attachment::Contact { vcard: vcard.into() };
        assert_eq!(code(&card("BEGIN:VCARD\nVERSION:3.0\nFN:Ann\nEND:VCARD\n")), "ok");
        assert_eq!(code(&card("FN:Ann")), "bad_request");
        assert_eq!(code(&card(&format!("BEGIN:VCARD\n{}\nEND:VCARD", "x".repeat(MAX_VCARD_BYTES)))), "too_large");
    }
}
