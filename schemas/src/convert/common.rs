//! What every conversion shares: its error, sizes and counts, receipt
//! statuses, audiences and attachments.

use missive_core::conversation::ReceiptStatus;
use missive_core::media::{Attachment, MediaKind, MediaRef};
use missive_core::users::Audience;

use crate::wire::{self, RecordType};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("field {0} holds a negative number")]
    Negative(&'static str),
    #[error("a {found:?} record is not a {expected}")]
    WrongType { expected: &'static str, found: RecordType },
    #[error("field {0} is required for this kind")]
    Missing(&'static str),
    #[error("unknown attachment kind {0:?}")]
    AttachmentKind(String),
}

impl From<&Attachment> for wire::Attachment {
    fn from(attachment: &Attachment) -> wire::Attachment {
        let mut wire = wire::Attachment {
            kind: attachment.kind().to_string(),
            media_id: None,
            size: None,
            content_type: None,
            sha256: None,
            key: None,
            caption: None,
            thumbnail: None,
            latitude: None,
            longitude: None,
            name: None,
            vcard: None,
        };
        match attachment {
            Attachment::Media(media) => {
                use base64::Engine as _;
                wire.media_id = Some(media.media_id.clone());
                wire.size = Some(size_to_wire(media.size));
                wire.content_type = Some(media.content_type.clone());
                wire.sha256 = Some(media.sha256.clone());
                wire.key = Some(media.key.clone());
                wire.caption = media.caption.clone();
                // Thumbnails were checked as base64 when the send was accepted.
                wire.thumbnail = media
                    .thumbnail
                    .as_ref()
                    .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok());
            }
            Attachment::Location { latitude, longitude, name } => {
                wire.latitude = Some(*latitude);
                wire.longitude = Some(*longitude);
                wire.name = name.clone();
            }
            Attachment::Contact { vcard } => wire.vcard = Some(vcard.clone()),
        }
        wire
    }
}

impl TryFrom<wire::Attachment> for Attachment {
    type Error = ConvertError;
    fn try_from(wire: wire::Attachment) -> Result<Attachment, ConvertError> {
        use base64::Engine as _;
        Ok(match wire.kind.as_str() {
            "location" => Attachment::Location {
                latitude: wire.latitude.ok_or(ConvertError::Missing("attachment.latitude"))?,
                longitude: wire.longitude.ok_or(ConvertError::Missing("attachment.longitude"))?,
                name: wire.name,
            },
            "contact" => Attachment::Contact { vcard: wire.vcard.ok_or(ConvertError::Missing("attachment.vcard"))? },
            kind => Attachment::Media(MediaRef {
                media_kind: MediaKind::parse(kind).ok_or_else(|| ConvertError::AttachmentKind(kind.to_string()))?,
                media_id: wire.media_id.ok_or(ConvertError::Missing("attachment.media_id"))?,
                size: size_from_wire(wire.size.ok_or(ConvertError::Missing("attachment.size"))?, "attachment.size")?,
                content_type: wire.content_type.ok_or(ConvertError::Missing("attachment.content_type"))?,
                sha256: wire.sha256.ok_or(ConvertError::Missing("attachment.sha256"))?,
                key: wire.key.ok_or(ConvertError::Missing("attachment.key"))?,
                caption: wire.caption,
                thumbnail: wire.thumbnail.map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
            }),
        })
    }
}

/// A byte size or limit: never negative on the wire.
pub(super) fn size_from_wire<T: TryFrom<i64>>(value: i64, field: &'static str) -> Result<T, ConvertError> {
    T::try_from(value).map_err(|_| ConvertError::Negative(field))
}

pub(super) fn size_to_wire(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl From<ReceiptStatus> for wire::ReceiptStatus {
    fn from(status: ReceiptStatus) -> wire::ReceiptStatus {
        match status {
            ReceiptStatus::Delivered => wire::ReceiptStatus::Delivered,
            ReceiptStatus::Read => wire::ReceiptStatus::Read,
        }
    }
}

impl From<wire::ReceiptStatus> for ReceiptStatus {
    fn from(status: wire::ReceiptStatus) -> ReceiptStatus {
        match status {
            wire::ReceiptStatus::Delivered => ReceiptStatus::Delivered,
            wire::ReceiptStatus::Read => ReceiptStatus::Read,
        }
    }
}

impl From<Audience> for wire::Audience {
    fn from(audience: Audience) -> wire::Audience {
        match audience {
            Audience::Everyone => wire::Audience::Everyone,
            Audience::Contacts => wire::Audience::Contacts,
            Audience::Nobody => wire::Audience::Nobody,
        }
    }
}

impl From<wire::Audience> for Audience {
    fn from(audience: wire::Audience) -> Audience {
        match audience {
            wire::Audience::Everyone => Audience::Everyone,
            wire::Audience::Contacts => Audience::Contacts,
            wire::Audience::Nobody => Audience::Nobody,
        }
    }
}

pub(super) fn count_to_wire(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// Counts are never negative; an old record without the field reads 0.
pub(super) fn count_from_wire(count: i32) -> u32 {
    u32::try_from(count).unwrap_or(0)
}

impl From<&missive_core::conversation::Rejection> for crate::Outcome {
    fn from(rejection: &missive_core::conversation::Rejection) -> crate::Outcome {
        use crate::Outcome;
        use missive_core::conversation::Rejection;
        match rejection {
            Rejection::WrongConversation => Outcome::WrongConversation,
            Rejection::NotMember => Outcome::NotMember,
            Rejection::TooLarge => Outcome::TooLarge,
            Rejection::BadClientMsgId => Outcome::BadFrame,
            Rejection::NotAGroup | Rejection::NoSuchMessage => Outcome::NotFound,
            Rejection::AlreadyExists => Outcome::Conflict,
            Rejection::Forbidden => Outcome::Forbidden,
            Rejection::TooManyMembers => Outcome::TooManyMembers,
            Rejection::BadRequest(_) => Outcome::BadRequest,
            Rejection::Deleted => Outcome::MessageDeleted,
            Rejection::TooLate(_) => Outcome::TooLate,
            Rejection::NoInvite => Outcome::NoInvite,
            Rejection::InviteExpired => Outcome::InviteExpired,
        }
    }
}

impl From<&missive_core::users::UserRejection> for crate::Outcome {
    fn from(rejection: &missive_core::users::UserRejection) -> crate::Outcome {
        use crate::Outcome;
        use missive_core::users::UserRejection;
        match rejection {
            UserRejection::UnknownAccount | UserRejection::UnknownDevice => Outcome::NotFound,
            UserRejection::TooManyDevices => Outcome::TooManyDevices,
            UserRejection::TooManyBlocks | UserRejection::TooManyContacts => Outcome::LimitReached,
            UserRejection::BlockSelf | UserRejection::UnsafeCharacters => Outcome::BadRequest,
            UserRejection::AboutTooLong | UserRejection::NameTooLong | UserRejection::PictureTooLong => {
                Outcome::TooLarge
            }
        }
    }
}

impl From<&missive_core::keys::KeyRejection> for crate::Outcome {
    fn from(rejection: &missive_core::keys::KeyRejection) -> crate::Outcome {
        use crate::Outcome;
        use missive_core::keys::KeyRejection;
        match rejection {
            KeyRejection::UnknownDevice | KeyRejection::NoKeys => Outcome::NotFound,
            KeyRejection::IdentityChanged => Outcome::Conflict,
            KeyRejection::TooManyKeys => Outcome::LimitReached,
            KeyRejection::InvalidKey => Outcome::InvalidKey,
        }
    }
}
