//! The schema registry over a log: instances that share `_schemas` agree
//! on versions and ids without a leader, even when they register at the
//! same time, and compatibility rules hold across instances.

use std::sync::Arc;

use missive_infra::db::open_db;
use missive_infra::{EmbeddedLog, Log};
use missive_registry::{Against, Registry, RegistryError};

fn record(name: &str, extra_field: Option<&str>) -> String {
    let extra =
        extra_field.map(|field| format!(r#",{{"name":"{field}","type":"int","default":0}}"#)).unwrap_or_default();
    format!(r#"{{"type":"record","name":"{name}","fields":[{{"name":"a","type":"string"}}{extra}]}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instances_agree_on_versions_and_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(open_db(dir.path()).expect("db"), false).expect("log"));
    let first = Registry::open(log.clone()).await.expect("registry 1");
    let second = Registry::open(log.clone()).await.expect("registry 2");

    // Both instances register different compatible schemas under one subject at once.
    let schemas: Vec<String> = (0..6).map(|index| record("R", Some(&format!("f{index}")))).collect();
    let base = first.register("s-value", &record("R", None)).await.expect("base");
    let registrations = schemas.iter().enumerate().map(|(index, schema)| {
        let registry = if index % 2 == 0 { first.clone() } else { second.clone() };
        let schema = schema.clone();
        async move { registry.register("s-value", &schema).await }
    });
    let results = futures::future::join_all(registrations).await;
    let mut versions = vec![base.version];
    for result in &results {
        let entry = result.as_ref().expect("registered");
        versions.push(entry.version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=7).collect::<Vec<u32>>(), "every registration got its own version, no gaps");

    first.catch_up().await.expect("catch up 1");
    second.catch_up().await.expect("catch up 2");
    for version in 1..=7 {
        let one = first.version("s-value", &version.to_string()).expect("in 1");
        let two = second.version("s-value", &version.to_string()).expect("in 2");
        assert_eq!((one.id, &one.schema), (two.id, &two.schema), "both instances hold the same version {version}");
    }
    // Registering again anywhere returns the existing id and version.
    let again = second.register("s-value", &schemas[0]).await.expect("again");
    assert_eq!(again, first.lookup("s-value", &schemas[0]).expect("lookup"));

    // The same schema under another subject keeps its id, as in Confluent's registry.
    let elsewhere = second.register("other-value", &schemas[0]).await.expect("other subject");
    assert_eq!(elsewhere.id, again.id);
    assert_eq!(elsewhere.version, 1);

    // A schema that cannot read the earliest version is refused by either instance.
    let breaking = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;
    assert!(!first.check("s-value", breaking, Against::Configured).expect("check").is_empty());
    match second.register("s-value", breaking).await {
        Err(error @ RegistryError::Incompatible { .. }) => assert_eq!(error.error_code(), 409),
        other => panic!("expected an incompatibility, got {other:?}"),
    }

    // A fresh instance folding the same topic sees the same registry.
    let third = Registry::open(log).await.expect("registry 3");
    assert_eq!(third.version("s-value", "latest").expect("latest"), first.version("s-value", "7").expect("v7"));
}
