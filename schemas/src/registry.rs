//! The embedded schema registry: subjects, versions and ids stored in the
//! `_schemas` topic in Confluent's own record format (key
//! `{"keytype":"SCHEMA","subject","version","magic":1}`, value
//! `{"subject","version","id","schema"}`), so a Confluent-compatible
//! registry could read the same topic.

use std::collections::BTreeMap;
use std::time::Duration;

use missive_infra::{Log, LogError, Offset, OutRecord, Retention, TopicPartition, TopicSpec};
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CodecError, parse_schema};
use crate::wire::RecordType;

pub const SCHEMAS_TOPIC: &str = "_schemas";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema storage: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("corrupt _schemas record at offset {offset}: {detail}")]
    Corrupt { offset: u64, detail: String },
}

#[derive(Serialize, Deserialize)]
struct SchemaKey {
    keytype: String,
    subject: String,
    version: u32,
    magic: u32,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

/// Subjects and their versions, folded from `_schemas`.
#[derive(Default)]
pub struct Subjects {
    pub versions: BTreeMap<String, Vec<SchemaValue>>,
    pub max_id: u32,
}

impl Subjects {
    pub fn apply(&mut self, value: SchemaValue) {
        self.max_id = self.max_id.max(value.id);
        let versions = self.versions.entry(value.subject.clone()).or_default();
        if !versions.iter().any(|known| known.version == value.version) {
            versions.push(value);
            versions.sort_by_key(|known| known.version);
        }
    }

    /// The id under which `subject` already holds this exact (canonical) schema.
    pub fn find(&self, subject: &str, canonical: &str) -> Option<u32> {
        self.versions.get(subject)?.iter().find(|known| known.schema == canonical).map(|known| known.id)
    }

    /// The same schema text under another subject keeps its id, as in Confluent's registry.
    fn id_of_schema(&self, canonical: &str) -> Option<u32> {
        self.versions.values().flatten().find(|known| known.schema == canonical).map(|known| known.id)
    }
}

/// Reads `_schemas`, registers any of Missive's schemas that are missing,
/// and returns a codec holding every id.
pub async fn register_all(log: &dyn Log) -> Result<Codec, RegistryError> {
    log.create_topic(&TopicSpec {
        name: SCHEMAS_TOPIC.into(),
        partitions: 1,
        retention: Retention::Forever,
        compacted: true,
    })
    .await?;
    let mut subjects = read_subjects(log).await?;
    let mut ids = Vec::new();
    for record_type in RecordType::ALL {
        let canonical = parse_schema(*record_type)?.canonical_form();
        let subject = record_type.subject();
        if let Some(id) = subjects.find(&subject, &canonical) {
            ids.push((*record_type, id));
            continue;
        }
        let id = subjects.id_of_schema(&canonical).unwrap_or(subjects.max_id + 1);
        let version = subjects.versions.get(&subject).map_or(1, |versions| versions.len() as u32 + 1);
        let value = SchemaValue { subject: subject.clone(), version, id, schema: canonical };
        let key = SchemaKey { keytype: "SCHEMA".into(), subject, version, magic: 1 };
        let record = OutRecord {
            topic: SCHEMAS_TOPIC.into(),
            partition: Some(0),
            key: serde_json::to_vec(&key)
                .map_err(|error| RegistryError::Corrupt { offset: 0, detail: error.to_string() })?,
            value: serde_json::to_vec(&value)
                .map_err(|error| RegistryError::Corrupt { offset: 0, detail: error.to_string() })?,
            headers: Vec::new(),
            timestamp: None,
        };
        log.append(vec![record]).await?;
        subjects.apply(value);
        ids.push((*record_type, id));
    }
    Ok(Codec::new(&ids)?)
}

/// Folds the whole `_schemas` topic.
pub async fn read_subjects(log: &dyn Log) -> Result<Subjects, RegistryError> {
    let partition = TopicPartition::new(SCHEMAS_TOPIC, 0);
    let marks = log.watermarks(&partition).await?;
    let mut consumer = log.consumer(vec![(partition, marks.low)]).await?;
    let mut subjects = Subjects::default();
    let mut next = marks.low;
    while next < marks.high {
        for record in consumer.poll(1000, Duration::from_secs(5)).await? {
            next = Offset(record.offset.0 + 1);
            let value: SchemaValue = serde_json::from_slice(&record.value)
                .map_err(|error| RegistryError::Corrupt { offset: record.offset.0, detail: error.to_string() })?;
            subjects.apply(value);
        }
    }
    Ok(subjects)
}
