//! Schema evolution: a record carries the id of the schema it was written
//! with, and decodes by it. A record written under an earlier registered
//! version of its subject (before an upgrade), or a later one (by a process
//! already upgraded during a rolling upgrade), is resolved against this
//! build's schema: fields this build added take their defaults, fields it
//! does not know are skipped.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use missive_core::{ConvSeq, ConversationId, UserId};
use missive_infra::db::open_db;
use missive_infra::{EmbeddedLog, Log};
use missive_registry::{Registry, codec_from_log, register_all};
use missive_schemas::wire::{MarkReceipt, ReceiptStatus};
use missive_schemas::{Codec, CodecError, RecordType, WireValue};
use serde_json::{Value, json};

fn open_log(dir: &std::path::Path) -> Arc<dyn Log> {
    Arc::new(EmbeddedLog::open(open_db(dir).expect("db"), false).expect("log"))
}

/// This build's `MarkReceipt` schema as JSON, changed by `edit`.
fn mark_receipt_schema(edit: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut schema: Value = serde_json::from_str(RecordType::MarkReceipt.schema_text()).expect("the schema is JSON");
    let fields = schema["fields"].as_array_mut().expect("a record has fields");
    edit(fields);
    schema.to_string()
}

/// A record in Confluent framing: magic byte, schema id, Avro body.
fn framed(id: u32, schema: &str, fields: Vec<(&str, Avro)>) -> Vec<u8> {
    let schema = Schema::parse_str(schema).expect("the test's schema parses");
    let record = Avro::Record(fields.into_iter().map(|(name, value)| (name.to_string(), value)).collect());
    let writer = GenericDatumWriter::builder(&schema).build().expect("a writer for the schema");
    let body = writer.write_value_to_vec(record).expect("the record fits the schema");
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

fn common_fields() -> Vec<(&'static str, Avro)> {
    vec![
        ("conversation_id", Avro::Long(7)),
        ("by", Avro::Long(3)),
        ("status", Avro::Enum(1, "READ".into())),
        ("up_to", Avro::Long(42)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_written_under_an_earlier_version_decodes_with_the_new_fields_defaulted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open_log(dir.path());
    let subject = RecordType::MarkReceipt.subject();

    // Version 1 had no `notify` field (it came later, with a default).
    let earlier = mark_receipt_schema(|fields| fields.retain(|field| field["name"] != "notify"));
    let registry = Registry::open(log.clone()).await.expect("registry");
    let v1 = registry.register(&subject, &earlier).await.expect("version 1 registers");
    let old_record = framed(v1.id, &earlier, common_fields());

    // This build registers its own schema as the next version and reads the old record.
    let (_, codec) = register_all(log.clone()).await.expect("this build's schemas register (backward compatible)");
    let current = codec.schema_id(RecordType::MarkReceipt).expect("MarkReceipt is registered");
    assert_ne!(current, v1.id, "this build's schema is a new version with its own id");
    let expected = MarkReceipt {
        conversation_id: ConversationId(7),
        by: UserId(3),
        status: ReceiptStatus::Read,
        up_to: ConvSeq(42),
        notify: true,
    };
    match codec.decode(&old_record).expect("the old record decodes by its writer's schema") {
        WireValue::MarkReceipt(decoded) => assert_eq!(decoded, expected, "`notify` takes its default"),
        other => panic!("decoded as another type: {other:?}"),
    }
    let (record_type, json) = codec.decode_json(&old_record).expect("tools read it too");
    assert_eq!(record_type, RecordType::MarkReceipt);
    assert_eq!(json["notify"], json!(true));
    assert_eq!(json["up_to"], json!(42));

    // Tools reading the log (`missive replay`, `stats`, `rebuild`) build their codec the same way.
    let tools = codec_from_log(log.clone()).await.expect("codec from the log");
    assert!(matches!(tools.decode(&old_record), Ok(WireValue::MarkReceipt(decoded)) if decoded == expected));

    // Records this build writes still carry its own id and read back as written.
    let fresh = MarkReceipt { notify: false, ..expected };
    let bytes = codec.encode(&fresh).expect("encode");
    assert_eq!(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]), current);
    assert!(matches!(codec.decode(&bytes), Ok(WireValue::MarkReceipt(decoded)) if decoded == fresh));

    // Without the other versions, the old record's id is unknown: the writers are what make it readable.
    let bare = Codec::new(&[(RecordType::MarkReceipt, current)]).expect("codec");
    assert!(matches!(bare.decode(&old_record), Err(CodecError::UnknownSchemaId(id)) if id == v1.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_written_under_a_later_version_decodes_without_the_fields_this_build_lacks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open_log(dir.path());
    register_all(log.clone()).await.expect("this build's schemas register");

    // An upgraded process registers a version with a field this build does not know.
    let later = mark_receipt_schema(|fields| {
        fields.push(json!({"name": "via", "type": "string", "default": "web", "doc": "Which client sent it."}))
    });
    let registry = Registry::open(log.clone()).await.expect("registry");
    let next =
        registry.register(&RecordType::MarkReceipt.subject(), &later).await.expect("the later version registers");
    let mut fields = common_fields();
    fields.push(("notify", Avro::Boolean(false)));
    fields.push(("via", Avro::String("desktop".into())));
    let new_record = framed(next.id, &later, fields);

    // A process of this build started after that registration reads the upgraded process's records.
    let codec = codec_from_log(log.clone()).await.expect("codec from the log");
    assert_ne!(codec.schema_id(RecordType::MarkReceipt), Some(next.id));
    match codec.decode(&new_record).expect("the newer record decodes by its writer's schema") {
        WireValue::MarkReceipt(decoded) => assert_eq!(
            decoded,
            MarkReceipt {
                conversation_id: ConversationId(7),
                by: UserId(3),
                status: ReceiptStatus::Read,
                up_to: ConvSeq(42),
                notify: false
            }
        ),
        other => panic!("decoded as another type: {other:?}"),
    }
}
