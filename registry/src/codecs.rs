//! Codecs from a registry: Missive's schemas registered (in process or over
//! HTTP) or looked up, with every registered version of each subject as a
//! writer schema the codec can read.

use std::sync::Arc;
use std::time::Duration;

use missive_infra::{Log, LogError};
use missive_schemas::codec::parse_schema;
use missive_schemas::{Codec, RecordType};

use crate::service::Registry;
use crate::subjects::RegistryError;

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
    let codec = with_versions(Codec::new(&ids)?, &registry);
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
    Ok(with_versions(Codec::new(&ids)?, &registry))
}

/// `codec`, also reading every version `registry` holds of each record
/// type's subject: records written before an upgrade (or by a process
/// already upgraded) decode by their writer's schema.
fn with_versions(codec: Codec, registry: &Registry) -> Codec {
    let versions: Vec<(RecordType, u32, String)> = registry.read(|subjects| {
        RecordType::ALL
            .iter()
            .flat_map(|record_type| {
                let versions = subjects.versions.get(&record_type.subject()).into_iter().flatten();
                versions.map(|version| (*record_type, version.id, version.schema.clone()))
            })
            .collect()
    });
    add_writers(codec, versions)
}

/// Adds writer schemas to `codec`; one that does not parse is left out
/// (its records then fail to decode as `UnknownSchemaId`, and say so).
fn add_writers(mut codec: Codec, versions: Vec<(RecordType, u32, String)>) -> Codec {
    for (record_type, id, schema) in versions {
        if let Err(error) = codec.add_writer(record_type, id, &schema) {
            tracing::warn!(%error, id, subject = record_type.subject(), "a registered schema version cannot be read");
        }
    }
    codec
}

/// Registers Missive's schemas with a Confluent-compatible registry over
/// HTTP (Kafka mode), through `schema_registry_converter`, retrying while
/// the registry starts; returns a codec holding their ids.
/// `token` is the registry's admin token (`--admin-token-file` there);
/// without it registering fails unless the registry allows it.
pub async fn register_remote(url: &str, token: Option<&str>, timeout: Duration) -> Result<Codec, RegistryError> {
    use schema_registry_converter::async_impl::schema_registry::{
        SrSettings, get_all_versions, get_schema_by_subject_and_version, post_schema,
    };
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
    let codec = Codec::new(&ids)?;
    // Every other version of each subject, so records written under them decode.
    let mut versions = Vec::new();
    for record_type in RecordType::ALL {
        let subject = record_type.subject();
        let numbers =
            get_all_versions(&settings, subject.clone()).await.map_err(|error| unreachable_registry(url, &error))?;
        for number in numbers {
            let registered = get_schema_by_subject_and_version(&settings, &subject, Some(number))
                .await
                .map_err(|error| unreachable_registry(url, &error))?;
            versions.push((*record_type, registered.id, registered.schema));
        }
    }
    Ok(add_writers(codec, versions))
}

fn unreachable_registry(url: &str, error: &dyn std::fmt::Display) -> RegistryError {
    RegistryError::Log(LogError::Unavailable(format!(
        "reading schema versions from {url} failed: {error}; check --schema-registry"
    )))
}
