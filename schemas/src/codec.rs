//! Confluent wire format: byte 0 (magic), 4-byte big-endian schema id, Avro
//! binary body. The same bytes in both modes, so Kafka tools read them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::wire::{RecordType, WireRecord, WireValue, decode_as, decode_value_as};

pub const MAGIC_BYTE: u8 = 0;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record is not in Confluent wire format (too short or magic byte is not 0)")]
    NotConfluentFraming,
    #[error("schema id {0} is unknown to this codec; is the registry the one the producer used?")]
    UnknownSchemaId(u32),
    #[error("record type {0:?} has no registered schema id")]
    UnregisteredType(RecordType),
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),
    #[error("schema {name} does not parse: {source}")]
    BadSchema { name: String, source: apache_avro::Error },
}

struct Known {
    record_type: RecordType,
    id: u32,
    /// Resolved once: building a reader or writer resolves every named
    /// type of the schema, which cost more than the encoding itself.
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

/// A registered version of a record type's subject other than this
/// build's (older, from before an upgrade; or newer, from a process already
/// upgraded): its records are read with the schema they were written with
/// and resolved against this build's schema (Avro schema resolution).
struct Writer {
    record_type: RecordType,
    reader: GenericDatumReader<'static>,
}

/// Encodes and decodes every Missive record type with registered ids.
/// Records are encoded with this build's schemas; they are decoded by the
/// schema id they carry, which may name another version of the subject.
pub struct Codec {
    by_type: HashMap<RecordType, usize>,
    by_id: HashMap<u32, usize>,
    known: Vec<Known>,
    writers: HashMap<u32, Writer>,
}

/// Parses a record type's `.avsc`.
pub fn parse_schema(record_type: RecordType) -> Result<Schema, CodecError> {
    Schema::parse_str(record_type.schema_text())
        .map_err(|source| CodecError::BadSchema { name: record_type.full_name(), source })
}

/// The parsed schema of a record type, parsed once per process: the cached
/// readers and writers borrow it for the life of the process.
fn schema_of(record_type: RecordType) -> Result<&'static Schema, CodecError> {
    static PARSED: OnceLock<Mutex<HashMap<RecordType, &'static Schema>>> = OnceLock::new();
    let mut parsed = PARSED.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(schema) = parsed.get(&record_type) {
        return Ok(schema);
    }
    let schema: &'static Schema = Box::leak(Box::new(parse_schema(record_type)?));
    parsed.insert(record_type, schema);
    Ok(schema)
}

impl Codec {
    /// Builds a codec from the ids the registry assigned.
    pub fn new(ids: &[(RecordType, u32)]) -> Result<Codec, CodecError> {
        let mut codec =
            Codec { by_type: HashMap::new(), by_id: HashMap::new(), known: Vec::new(), writers: HashMap::new() };
        for (record_type, id) in ids {
            let schema = schema_of(*record_type)?;
            let writer = GenericDatumWriter::builder(schema).human_readable(false).build()?;
            let reader = GenericDatumReader::builder(schema).human_readable(false).build()?;
            codec.by_type.insert(*record_type, codec.known.len());
            codec.by_id.insert(*id, codec.known.len());
            codec.known.push(Known { record_type: *record_type, id: *id, writer, reader });
        }
        Ok(codec)
    }

    /// Also reads records written under `id`, another registered version
    /// of `record_type`'s subject whose text is `schema`. An id this codec
    /// already writes with is left as it is.
    pub fn add_writer(&mut self, record_type: RecordType, id: u32, schema: &str) -> Result<(), CodecError> {
        if self.by_id.contains_key(&id) || self.writers.contains_key(&id) {
            return Ok(());
        }
        let written = Schema::parse_str(schema).map_err(|source| CodecError::BadSchema {
            name: format!("{} (schema id {id})", record_type.full_name()),
            source,
        })?;
        // Kept for the life of the process, like this build's own schemas:
        // a subject has a handful of versions.
        let written: &'static Schema = Box::leak(Box::new(written));
        let reader = GenericDatumReader::builder(written)
            .reader_schema(schema_of(record_type)?)
            .human_readable(false)
            .build()?;
        self.writers.insert(id, Writer { record_type, reader });
        Ok(())
    }

    pub fn schema_id(&self, record_type: RecordType) -> Option<u32> {
        self.by_type.get(&record_type).map(|index| self.known[*index].id)
    }

    pub fn encode<T: WireRecord>(&self, record: &T) -> Result<Vec<u8>, CodecError> {
        self.frame(T::TYPE, |writer| writer.write_ser_to_vec(record))
    }

    pub fn encode_value(&self, record: &WireValue) -> Result<Vec<u8>, CodecError> {
        self.frame(record.record_type(), |writer| record.write_with(writer))
    }

    fn frame(
        &self,
        record_type: RecordType,
        write: impl FnOnce(&GenericDatumWriter<'_>) -> Result<Vec<u8>, apache_avro::Error>,
    ) -> Result<Vec<u8>, CodecError> {
        let index = *self.by_type.get(&record_type).ok_or(CodecError::UnregisteredType(record_type))?;
        let known = &self.known[index];
        let body = write(&known.writer)?;
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&known.id.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The record type and reader for a framed record's schema id, and its body.
    fn framed<'a>(&self, bytes: &'a [u8]) -> Result<(Reading<'_>, &'a [u8]), CodecError> {
        if bytes.len() < 5 || bytes[0] != MAGIC_BYTE {
            return Err(CodecError::NotConfluentFraming);
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let reading = match (self.by_id.get(&id), self.writers.get(&id)) {
            (Some(index), _) => Reading::Current(&self.known[*index]),
            (None, Some(writer)) => Reading::Resolved(writer),
            (None, None) => return Err(CodecError::UnknownSchemaId(id)),
        };
        Ok((reading, &bytes[5..]))
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<WireValue, CodecError> {
        match self.framed(bytes)? {
            (Reading::Current(known), mut body) => Ok(decode_as(known.record_type, &known.reader, &mut body)?),
            (Reading::Resolved(writer), mut body) => {
                let value = writer.reader.read_value(&mut body)?;
                Ok(decode_value_as(writer.record_type, &value)?)
            }
        }
    }

    pub fn decode_json(&self, bytes: &[u8]) -> Result<(RecordType, serde_json::Value), CodecError> {
        let (record_type, value) = match self.framed(bytes)? {
            (Reading::Current(known), mut body) => (known.record_type, known.reader.read_value(&mut body)?),
            (Reading::Resolved(writer), mut body) => (writer.record_type, writer.reader.read_value(&mut body)?),
        };
        Ok((record_type, serde_json::Value::try_from(value)?))
    }
}

/// How a record's schema id is read: with this build's schema, or with
/// the schema it was written with, resolved against this build's.
enum Reading<'a> {
    Current(&'a Known),
    Resolved(&'a Writer),
}
