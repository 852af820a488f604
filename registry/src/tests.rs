use apache_avro::Schema;

use crate::subjects::*;

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
