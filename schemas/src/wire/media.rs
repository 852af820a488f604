//! Attachments and completed uploads.

use missive_core::{Millis, UserId};
use serde::{Deserialize, Serialize};

/// A media reference, location or contact card: one flat record whose
/// `kind` says which fields are set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: String,
    #[serde(default)]
    pub media_id: Option<String>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default, with = "apache_avro::serde::bytes_opt")]
    pub thumbnail: Option<Vec<u8>>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub vcard: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaUploaded {
    pub media_id: String,
    #[serde(with = "super::ids::one")]
    pub owner: UserId,
    pub kind: String,
    #[serde(default = "message_purpose")]
    pub purpose: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub key: String,
    pub at: Millis,
}

fn message_purpose() -> String {
    "message".into()
}
