//! The registry over a log: answers from the folded `_schemas`, writes by
//! appending and reading back.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use missive_infra::{Log, Offset, OutRecord, Retention, TopicPartition, TopicSpec};
use parking_lot::RwLock;
use serde::Serialize;

use crate::subjects::*;

/// The registry over a log: answers from the folded `_schemas`, writes by appending.
pub struct Registry {
    log: Arc<dyn Log>,
    state: RwLock<Subjects>,
    position: tokio::sync::Mutex<Offset>,
    writes: tokio::sync::Mutex<()>,
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
