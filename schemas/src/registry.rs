//! The schema registry: subjects, versions and ids stored in the compacted
//! `_schemas` topic in Confluent's own record format (key
//! `{"keytype":"SCHEMA","subject","version","magic":1}`, value
//! `{"subject","version","id","schema"}`; config records keyed
//! `{"keytype":"CONFIG","subject","magic":0}`), so every registry instance
//! folds the same topic to the same answer, and a Confluent registry could
//! read it too.
//!
//! Agreement without a leader: a registration is an append; every instance
//! folds `_schemas` in offset order and the *first* record to claim a
//! (subject, version) or an id wins. The writer reads back past its own
//! record and, if another instance got there first, tries again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use missive_infra::{Log, LogError, Offset, OutRecord, Retention, TopicPartition, TopicSpec};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CodecError, parse_schema};
use crate::wire::RecordType;

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

    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    /// Why `new` may not follow `old` under this level (empty when it may).
    fn violations(self, old: &Schema, new: &Schema) -> Vec<String> {
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
struct RecordKey {
    keytype: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    magic: u32,
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
struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: String,
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

    fn apply_record(&mut self, offset: Offset, key: &[u8], value: &[u8]) -> Result<(), RegistryError> {
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

    fn id_of_schema(&self, canonical: &str) -> Option<u32> {
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

/// The registry over a log: answers from the folded `_schemas`, writes by appending.
pub struct Registry {
    log: Arc<dyn Log>,
    state: RwLock<Subjects>,
    position: tokio::sync::Mutex<Offset>,
    writes: tokio::sync::Mutex<()>,
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

fn parse_version(version: &str, versions: &[SchemaValue]) -> Result<Option<usize>, RegistryError> {
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

impl Registry {
    /// Creates `_schemas` if needed and folds it.
    pub async fn open(log: Arc<dyn Log>) -> Result<Arc<Registry>, RegistryError> {
        log.create_topic(&TopicSpec {
            name: SCHEMAS_TOPIC.into(),
            partitions: 1,
            retention: Retention::Forever,
            compacted: true,
        })
        .await?;
        let registry = Arc::new(Registry {
            log,
            state: RwLock::new(Subjects::default()),
            position: tokio::sync::Mutex::new(Offset(0)),
            writes: tokio::sync::Mutex::new(()),
        });
        registry.catch_up().await?;
        Ok(registry)
    }

    /// Folds `_schemas` up to its current end (other instances' writes).
    pub async fn catch_up(&self) -> Result<(), RegistryError> {
        let partition = TopicPartition::new(SCHEMAS_TOPIC, 0);
        let mut position = self.position.lock().await;
        let marks = self.log.watermarks(&partition).await?;
        let start = (*position).max(marks.low);
        if start >= marks.high {
            return Ok(());
        }
        let mut consumer = self.log.consumer(vec![(partition, start)]).await?;
        let mut next = start;
        while next < marks.high {
            let records = consumer.poll(1000, Duration::from_secs(5)).await?;
            let mut state = self.state.write();
            for record in records {
                next = Offset(record.offset.0 + 1);
                state.apply_record(record.offset, &record.key, &record.value)?;
            }
        }
        *position = next;
        Ok(())
    }

    pub fn read<T>(&self, read: impl FnOnce(&Subjects) -> T) -> T {
        read(&self.state.read())
    }

    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        self.read(|subjects| subjects.by_id.get(&id).map(|(schema, _)| schema.clone()))
            .ok_or(RegistryError::SchemaNotFound)
    }

    pub fn version(&self, subject: &str, version: &str) -> Result<SchemaValue, RegistryError> {
        self.read(|subjects| {
            let versions =
                subjects.versions.get(subject).ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
            let index = parse_version(version, versions)?
                .ok_or_else(|| RegistryError::VersionNotFound { subject: subject.into(), version: version.into() })?;
            Ok(versions[index].clone())
        })
    }

    /// The registered version of `schema` under `subject`.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<SchemaValue, RegistryError> {
        let (_, canonical) = canonical(schema)?;
        self.read(|subjects| {
            if !subjects.versions.contains_key(subject) {
                return Err(RegistryError::SubjectNotFound(subject.into()));
            }
            subjects.find(subject, &canonical).cloned().ok_or(RegistryError::SchemaNotFound)
        })
    }

    /// Compatibility problems of `schema` against earlier versions (empty: compatible).
    pub fn check(&self, subject: &str, schema: &str, against: Against) -> Result<Vec<String>, RegistryError> {
        let (parsed, _) = canonical(schema)?;
        let (level, earlier) = self.read(|subjects| -> Result<_, RegistryError> {
            let level = subjects.level(Some(subject));
            let versions = subjects.versions.get(subject).cloned().unwrap_or_default();
            let earlier = match &against {
                Against::Configured if level.transitive() => versions,
                Against::Configured => versions.last().cloned().into_iter().collect(),
                Against::Version(version) => {
                    if versions.is_empty() {
                        return Err(RegistryError::SubjectNotFound(subject.into()));
                    }
                    let index = parse_version(version, &versions)?.ok_or_else(|| RegistryError::VersionNotFound {
                        subject: subject.into(),
                        version: version.clone(),
                    })?;
                    vec![versions[index].clone()]
                }
            };
            Ok((level, earlier))
        })?;
        let mut problems = Vec::new();
        for old in earlier {
            let old_schema = Schema::parse_str(&old.schema).map_err(|error| RegistryError::Corrupt {
                offset: 0,
                detail: format!("stored schema {} does not parse: {error}", old.id),
            })?;
            for problem in level.violations(&old_schema, &parsed) {
                problems.push(format!("version {}: {problem}", old.version));
            }
        }
        Ok(problems)
    }

    /// Registers `schema` under `subject` (idempotent); returns its entry.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<SchemaValue, RegistryError> {
        // Stored normalized but complete: docs, defaults and aliases kept.
        let (_, canonical) = canonical(schema)?;
        let text = canonical.clone();
        let _writer = self.writes.lock().await;
        for _attempt in 0..10 {
            self.catch_up().await?;
            if let Some(found) = self.read(|subjects| subjects.find(subject, &canonical).cloned()) {
                return Ok(found);
            }
            let problems = self.check(subject, schema, Against::Configured)?;
            if !problems.is_empty() {
                let level = self.read(|subjects| subjects.level(Some(subject)));
                return Err(RegistryError::Incompatible {
                    subject: subject.into(),
                    level: level.name(),
                    details: problems.join("; "),
                });
            }
            let value = self.read(|subjects| SchemaValue {
                subject: subject.into(),
                version: subjects
                    .versions
                    .get(subject)
                    .and_then(|versions| versions.last())
                    .map_or(1, |last| last.version + 1),
                id: subjects
                    .id_of_schema(&canonical)
                    .unwrap_or_else(|| subjects.by_id.keys().last().map_or(1, |id| id + 1)),
                schema: text.clone(),
                canonical: canonical.clone(),
            });
            let key = RecordKey {
                keytype: "SCHEMA".into(),
                subject: Some(subject.into()),
                version: Some(value.version),
                magic: 1,
            };
            self.append(&key, &value).await?;
        }
        Err(RegistryError::Contended(subject.into()))
    }

    /// Sets the compatibility level of a subject, or the global one.
    pub async fn set_level(&self, subject: Option<&str>, level: Level) -> Result<(), RegistryError> {
        let key = RecordKey { keytype: "CONFIG".into(), subject: subject.map(str::to_string), version: None, magic: 0 };
        self.append(&key, &ConfigValue { compatibility_level: level.name().into() }).await?;
        self.catch_up().await
    }

    async fn append(&self, key: &RecordKey, value: &impl Serialize) -> Result<(), RegistryError> {
        let encode =
            |value: &dyn erased::Json| value.to_json().map_err(|detail| RegistryError::Corrupt { offset: 0, detail });
        let record = OutRecord {
            topic: SCHEMAS_TOPIC.into(),
            partition: Some(0),
            key: encode(key)?,
            value: encode(value)?,
            headers: Vec::new(),
            timestamp: None,
        };
        self.log.append(vec![record]).await?;
        Ok(())
    }
}

mod erased {
    /// Object-safe JSON encoding, so one closure serves keys and values.
    pub trait Json {
        fn to_json(&self) -> Result<Vec<u8>, String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Vec<u8>, String> {
            serde_json::to_vec(self).map_err(|error| error.to_string())
        }
    }
}

/// Registers Missive's schemas in an in-process registry (embedded mode)
/// and returns a codec holding their ids.
pub async fn register_all(log: Arc<dyn Log>) -> Result<(Arc<Registry>, Codec), RegistryError> {
    let registry = Registry::open(log).await?;
    let mut ids = Vec::new();
    for record_type in RecordType::ALL {
        parse_schema(*record_type)?;
        let entry = registry.register(&record_type.subject(), record_type.schema_text()).await?;
        ids.push((*record_type, entry.id));
    }
    let codec = Codec::new(&ids)?;
    Ok((registry, codec))
}

/// A codec for the schemas `_schemas` already holds, registering nothing
/// (tools reading the log). Record types never registered are left out.
pub async fn codec_from_log(log: Arc<dyn Log>) -> Result<Codec, RegistryError> {
    let registry = Registry::open(log).await?;
    let mut ids = Vec::new();
    for record_type in RecordType::ALL {
        match registry.lookup(&record_type.subject(), record_type.schema_text()) {
            Ok(entry) => ids.push((*record_type, entry.id)),
            Err(RegistryError::SubjectNotFound(_) | RegistryError::SchemaNotFound) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Codec::new(&ids)?)
}

/// Registers Missive's schemas with a Confluent-compatible registry over
/// HTTP (Kafka mode), through `schema_registry_converter`, retrying while
/// the registry starts; returns a codec holding their ids.
/// `token` is the registry's admin token (`--admin-token-file` there);
/// without it registering fails unless the registry allows it.
pub async fn register_remote(url: &str, token: Option<&str>, timeout: Duration) -> Result<Codec, RegistryError> {
    use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
    use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

    let mut builder = SrSettings::new_builder(url.to_string());
    if let Some(token) = token {
        builder.set_token_authorization(token);
    }
    let settings = builder
        .build()
        .map_err(|error| RegistryError::Log(LogError::Unavailable(format!("schema registry client: {error}"))))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut ids = Vec::new();
    for record_type in RecordType::ALL {
        let schema =
            SuppliedSchema::new(Some(record_type.full_name()), SchemaType::Avro, record_type.schema_text().to_string());
        let id = loop {
            match post_schema(&settings, record_type.subject(), schema.clone()).await {
                Ok(registered) => break registered.id,
                Err(error) if error.retriable && tokio::time::Instant::now() < deadline => {
                    tracing::info!(%error, url, "schema registry not ready, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => {
                    return Err(RegistryError::Log(LogError::Unavailable(format!(
                        "registering {} at {url} failed: {error}; check --schema-registry, and give \
                         --schema-registry-token-file the registry's admin token",
                        record_type.subject()
                    ))));
                }
            }
        };
        ids.push((*record_type, id));
    }
    Ok(Codec::new(&ids)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)).expect("schema")
    }

    #[test]
    fn backward_levels_need_defaults_for_new_fields() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        let v3 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert!(Level::Backward.violations(&v1, &v2).is_empty(), "a new field with a default reads old data");
        assert!(Level::Backward.violations(&v2, &v3).is_empty(), "v3 reads v2 data");
        assert!(!Level::Backward.violations(&v1, &v3).is_empty(), "v3 cannot read v1 data");
        assert!(Level::None.violations(&v1, &v3).is_empty());
        assert!(Level::Forward.violations(&v1, &v3).is_empty(), "old readers skip a field the new schema adds");
        assert!(!Level::Forward.violations(&v3, &v1).is_empty(), "an old reader needs a field the new schema drops");
        assert_eq!(Level::Full.violations(&v1, &v3).len(), 1, "full: backward fails, forward holds");
    }
}
