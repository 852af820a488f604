//! What the registry knows: subjects, their versions and ids, compatibility
//! levels, folded from `_schemas` records, and the errors clients see.

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use missive_infra::{LogError, Offset};
use missive_schemas::CodecError;
use serde::{Deserialize, Serialize};

pub const SCHEMAS_TOPIC: &str = "_schemas";

/// The compatibility rule applied when none is configured.
pub const DEFAULT_LEVEL: Level = Level::BackwardTransitive;

/// Errors, each with the Confluent REST `error_code` clients expect.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("subject '{0}' not found")]
    SubjectNotFound(String),
    #[error("version {version} of subject '{subject}' not found")]
    VersionNotFound { subject: String, version: String },
    #[error("schema not found")]
    SchemaNotFound,
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("the version must be a positive integer or 'latest', got '{0}'")]
    InvalidVersion(String),
    #[error(
        "invalid compatibility level '{0}': use NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE"
    )]
    InvalidLevel(String),
    #[error(
        "schema being registered is incompatible with an earlier schema for subject '{subject}' ({level}): {details}"
    )]
    Incompatible { subject: String, level: &'static str, details: String },
    #[error("schema storage: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("corrupt _schemas record at offset {offset}: {detail}")]
    Corrupt { offset: u64, detail: String },
    #[error("registering under '{0}' kept losing to concurrent registrations; retry")]
    Contended(String),
}

impl RegistryError {
    /// Confluent's `error_code` (HTTP status = first three digits).
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound => 40403,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidLevel(_) => 42203,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::Log(_) | RegistryError::Codec(_) | RegistryError::Corrupt { .. } => 50001,
            RegistryError::Contended(_) => 50003,
        }
    }
}

/// Compatibility levels, as Confluent names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn parse(name: &str) -> Result<Level, RegistryError> {
        [
            Level::None,
            Level::Backward,
            Level::BackwardTransitive,
            Level::Forward,
            Level::ForwardTransitive,
            Level::Full,
            Level::FullTransitive,
        ]
        .into_iter()
        .find(|level| level.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| RegistryError::InvalidLevel(name.to_string()))
    }

    pub(crate) fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    /// Why `new` may not follow `old` under this level (empty when it may).
    pub(crate) fn violations(self, old: &Schema, new: &Schema) -> Vec<String> {
        let backward =
            matches!(self, Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive);
        let forward = matches!(self, Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive);
        let mut problems = Vec::new();
        if backward && let Err(error) = SchemaCompatibility::can_read(old, new) {
            problems.push(format!("the new schema cannot read data written with the old one: {error}"));
        }
        if forward && let Err(error) = SchemaCompatibility::can_read(new, old) {
            problems.push(format!("the old schema cannot read data written with the new one: {error}"));
        }
        problems
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RecordKey {
    pub(crate) keytype: String,
    #[serde(default)]
    pub(crate) subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u32>,
    pub(crate) magic: u32,
}

/// A registered version: the schema text as submitted, normalized (docs and
/// defaults matter to compatibility and to readers).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SchemaValue {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    /// Normalized `schema` (see [`canonical`]), filled in when folded.
    #[serde(skip)]
    pub canonical: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    pub(crate) compatibility_level: String,
}

/// Subjects, versions, ids and levels, folded from `_schemas`.
#[derive(Default)]
pub struct Subjects {
    pub versions: BTreeMap<String, Vec<SchemaValue>>,
    /// Schema text and canonical form by id.
    pub by_id: BTreeMap<u32, (String, String)>,
    pub levels: BTreeMap<String, Level>,
    pub global_level: Option<Level>,
}

impl Subjects {
    /// Folds one schema record; the first claim of a (subject, version) or
    /// of an id wins, later conflicting claims are ignored by everyone.
    pub fn apply(&mut self, mut value: SchemaValue) -> bool {
        let Ok((_, canonical)) = canonical(&value.schema) else { return false };
        value.canonical = canonical;
        let versions = self.versions.entry(value.subject.clone()).or_default();
        let next_version = versions.last().map_or(1, |last| last.version + 1);
        if value.version != next_version || versions.iter().any(|known| known.canonical == value.canonical) {
            return false;
        }
        match self.by_id.get(&value.id) {
            Some((_, canonical)) if *canonical != value.canonical => return false,
            _ => {}
        }
        if self.by_id.iter().any(|(id, (_, canonical))| *canonical == value.canonical && *id != value.id) {
            return false;
        }
        self.by_id.entry(value.id).or_insert_with(|| (value.schema.clone(), value.canonical.clone()));
        versions.push(value);
        true
    }

    pub(crate) fn apply_record(&mut self, offset: Offset, key: &[u8], value: &[u8]) -> Result<(), RegistryError> {
        let corrupt = |detail: String| RegistryError::Corrupt { offset: offset.0, detail };
        let key: Option<RecordKey> = serde_json::from_slice(key).ok();
        match key.as_ref().map(|key| key.keytype.as_str()) {
            Some("CONFIG") => {
                let config: ConfigValue = serde_json::from_slice(value).map_err(|error| corrupt(error.to_string()))?;
                let level = Level::parse(&config.compatibility_level)?;
                match key.and_then(|key| key.subject) {
                    Some(subject) => self.levels.insert(subject, level),
                    None => self.global_level.replace(level),
                };
            }
            Some("SCHEMA") | None => {
                if value.is_empty() {
                    return Ok(()); // a tombstone (soft delete is not supported)
                }
                let value: SchemaValue = serde_json::from_slice(value).map_err(|error| corrupt(error.to_string()))?;
                self.apply(value);
            }
            Some(_) => {} // other Confluent key types (NOOP, DELETE_SUBJECT) are ignored
        }
        Ok(())
    }

    /// The id under which `subject` already holds this exact (canonical) schema.
    pub fn find(&self, subject: &str, canonical: &str) -> Option<&SchemaValue> {
        self.versions.get(subject)?.iter().find(|known| known.canonical == canonical)
    }

    pub(crate) fn id_of_schema(&self, canonical: &str) -> Option<u32> {
        self.by_id.iter().find(|(_, (_, known))| known.as_str() == canonical).map(|(id, _)| *id)
    }

    pub fn level(&self, subject: Option<&str>) -> Level {
        subject.and_then(|subject| self.levels.get(subject)).copied().or(self.global_level).unwrap_or(DEFAULT_LEVEL)
    }
}

/// Which earlier versions a candidate schema is checked against.
#[derive(Clone, Debug)]
pub enum Against {
    /// What the subject's level demands (all versions if transitive, else the latest).
    Configured,
    Version(String),
}

/// Parses a schema and returns it with its normalized text: the JSON
/// re-serialized compactly with sorted keys. Two submissions are the same
/// schema when their normalized texts are equal. (Avro's Parsing Canonical
/// Form is too coarse for identity: it drops defaults, which decide
/// compatibility.)
pub fn canonical(schema: &str) -> Result<(Schema, String), RegistryError> {
    let parsed = Schema::parse_str(schema).map_err(|error| RegistryError::InvalidSchema(error.to_string()))?;
    let normalized = serde_json::from_str::<serde_json::Value>(schema)
        .map_err(|error| RegistryError::InvalidSchema(error.to_string()))?
        .to_string();
    Ok((parsed, normalized))
}

pub(crate) fn parse_version(version: &str, versions: &[SchemaValue]) -> Result<Option<usize>, RegistryError> {
    if version == "latest" || version == "-1" {
        return Ok(versions.len().checked_sub(1));
    }
    let number: u32 = version
        .parse()
        .ok()
        .filter(|number| *number > 0)
        .ok_or_else(|| RegistryError::InvalidVersion(version.into()))?;
    Ok(versions.iter().position(|known| known.version == number))
}
