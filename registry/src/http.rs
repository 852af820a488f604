//! `missive schema-registry`: the subset of Confluent Schema Registry's REST
//! API that Kafka clients and `schema_registry_converter` use, served over
//! the log-backed [`Registry`]. Errors are `{"error_code","message"}` with
//! Confluent's codes.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::service::Registry;
use crate::subjects::{Against, Level, RegistryError, SchemaValue};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const MAX_BODY: u64 = 1 << 20;

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn reply(status: StatusCode, body: Value) -> Response {
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    if let Ok(value) = warp::http::HeaderValue::from_str(CONTENT_TYPE) {
        response.headers_mut().insert(warp::http::header::CONTENT_TYPE, value);
    }
    response
}

fn error(error: RegistryError) -> Response {
    let code = error.error_code();
    // Confluent's codes start with the HTTP status: 40401 -> 404, 409 -> 409.
    let http = if code >= 10_000 { code / 100 } else { code };
    let status = StatusCode::from_u16(http as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(%error, "schema registry request failed");
    }
    reply(status, json!({ "error_code": code, "message": error.to_string() }))
}

fn answer(result: Result<Value, RegistryError>) -> Response {
    match result {
        Ok(body) => reply(StatusCode::OK, body),
        Err(failure) => error(failure),
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes)
        .map_err(|failure| RegistryError::InvalidSchema(format!("malformed request body: {failure}")))
}

fn schema_body(bytes: &[u8]) -> Result<SchemaBody, RegistryError> {
    let body: SchemaBody = parse_body(bytes)?;
    if let Some(kind) = body.schema_type.as_deref().filter(|kind| !kind.eq_ignore_ascii_case("AVRO")) {
        return Err(RegistryError::InvalidSchema(format!(
            "schema type {kind} is not supported; this registry holds AVRO"
        )));
    }
    if !body.references.is_empty() {
        return Err(RegistryError::InvalidSchema("schema references are not supported".into()));
    }
    Ok(body)
}

/// Runs `read`; on a miss, folds what other instances wrote and tries again.
async fn fresh<T>(
    registry: &Registry,
    read: impl Fn(&Registry) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    match read(registry) {
        Ok(found) => Ok(found),
        Err(
            RegistryError::SubjectNotFound(_) | RegistryError::VersionNotFound { .. } | RegistryError::SchemaNotFound,
        ) => {
            registry.catch_up().await?;
            read(registry)
        }
        Err(failure) => Err(failure),
    }
}

fn entry_json(entry: &SchemaValue) -> Value {
    json!({ "subject": entry.subject, "version": entry.version, "id": entry.id, "schema": entry.schema })
}

/// Who may change the registry: nobody (read-only), or callers presenting
/// the admin token as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Writers {
    admin_token: Option<Arc<str>>,
}

impl Writers {
    /// `None`: the registry is read-only.
    pub fn new(admin_token: Option<String>) -> Writers {
        Writers { admin_token: admin_token.map(Arc::from) }
    }

    /// Rejects a write without the admin token.
    fn check(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let refuse = |status: StatusCode, code: u32, message: &'static str| Refusal { status, code, message };
        let Some(expected) = self.admin_token.as_deref() else {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                40301,
                "this schema registry is read-only; start it with --admin-token-file to allow registrations",
            ));
        };
        let presented = presented_token(authorization).unwrap_or_default();
        if presented.len() == expected.len()
            && presented.bytes().zip(expected.bytes()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
        {
            Ok(())
        } else {
            Err(refuse(
                StatusCode::UNAUTHORIZED,
                40101,
                "registering or configuring needs the admin token (Authorization: Bearer <token>, or Basic with it as the password)",
            ))
        }
    }
}

/// A write refused for want of the admin token.
#[derive(Clone, Copy)]
struct Refusal {
    status: StatusCode,
    code: u32,
    message: &'static str,
}

impl Refusal {
    /// As a Confluent-style error reply.
    fn reply(self) -> Response {
        reply(self.status, json!({ "error_code": self.code, "message": self.message }))
    }
}

/// The token in an `Authorization` header: `Bearer <token>`, or HTTP Basic
/// with the token as the password (what Confluent's clients send with
/// `basic.auth.user.info`).
fn presented_token(authorization: Option<&str>) -> Option<String> {
    let value = authorization?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let credentials = String::from_utf8(decoded).ok()?;
    credentials.split_once(':').map(|(_, password)| password.to_string())
}

/// The registry's routes: reads for anyone, writes (registering a schema,
/// setting a compatibility level) for holders of the admin token.
pub fn routes(
    registry: Arc<Registry>,
    writers: Writers,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || registry.clone());
    let body = warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes());
    let writer = warp::header::optional::<String>("authorization")
        .and(warp::any().map(move || writers.clone()))
        .map(|authorization: Option<String>, writers: Writers| writers.check(authorization.as_deref()));

    let root = warp::path::end().and(warp::get()).map(|| reply(StatusCode::OK, json!({})));
    let types = warp::path!("schemas" / "types").and(warp::get()).map(|| reply(StatusCode::OK, json!(["AVRO"])));

    let subjects =
        warp::path!("subjects").and(warp::get()).and(with.clone()).then(|registry: Arc<Registry>| async move {
            let _ = registry.catch_up().await;
            answer(Ok(json!(registry.read(|subjects| subjects.versions.keys().cloned().collect::<Vec<_>>()))))
        });

    let versions = warp::path!("subjects" / String / "versions").and(warp::get()).and(with.clone()).then(
        |subject: String, registry: Arc<Registry>| async move {
            answer(
                fresh(&registry, |registry| {
                    registry.read(|subjects| {
                        subjects
                            .versions
                            .get(&subject)
                            .map(|versions| json!(versions.iter().map(|entry| entry.version).collect::<Vec<_>>()))
                            .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))
                    })
                })
                .await,
            )
        },
    );

    let version = warp::path!("subjects" / String / "versions" / String).and(warp::get()).and(with.clone()).then(
        |subject: String, version: String, registry: Arc<Registry>| async move {
            answer(
                fresh(&registry, |registry| registry.version(&subject, &version).map(|entry| entry_json(&entry))).await,
            )
        },
    );

    let version_schema = warp::path!("subjects" / String / "versions" / String / "schema")
        .and(warp::get())
        .and(with.clone())
        .then(|subject: String, version: String, registry: Arc<Registry>| async move {
            match fresh(&registry, |registry| registry.version(&subject, &version)).await {
                Ok(entry) => {
                    reply(StatusCode::OK, serde_json::from_str(&entry.schema).unwrap_or(Value::String(entry.schema)))
                }
                Err(failure) => error(failure),
            }
        });

    let register = warp::path!("subjects" / String / "versions")
        .and(warp::post())
        .and(writer.clone())
        .and(body)
        .and(with.clone())
        .then(
            |subject: String, allowed: Result<(), Refusal>, bytes: bytes::Bytes, registry: Arc<Registry>| async move {
                if let Err(refusal) = allowed {
                    return refusal.reply();
                }
                let result = async {
                    let body = schema_body(&bytes)?;
                    let entry = registry.register(&subject, &body.schema).await?;
                    Ok(json!({ "id": entry.id }))
                };
                answer(result.await)
            },
        );

    let lookup = warp::path!("subjects" / String).and(warp::post()).and(body).and(with.clone()).then(
        |subject: String, bytes: bytes::Bytes, registry: Arc<Registry>| async move {
            let result = async {
                let body = schema_body(&bytes)?;
                fresh(&registry, |registry| registry.lookup(&subject, &body.schema))
                    .await
                    .map(|entry| entry_json(&entry))
            };
            answer(result.await)
        },
    );

    let by_id = warp::path!("schemas" / "ids" / u32).and(warp::get()).and(with.clone()).then(
        |id: u32, registry: Arc<Registry>| async move {
            answer(
                fresh(&registry, |registry| registry.schema_by_id(id)).await.map(|schema| json!({ "schema": schema })),
            )
        },
    );

    let by_id_schema = warp::path!("schemas" / "ids" / u32 / "schema").and(warp::get()).and(with.clone()).then(
        |id: u32, registry: Arc<Registry>| async move {
            match fresh(&registry, |registry| registry.schema_by_id(id)).await {
                Ok(schema) => reply(StatusCode::OK, serde_json::from_str(&schema).unwrap_or(Value::String(schema))),
                Err(failure) => error(failure),
            }
        },
    );

    let by_id_versions = warp::path!("schemas" / "ids" / u32 / "versions").and(warp::get()).and(with.clone()).then(
        |id: u32, registry: Arc<Registry>| async move {
            let found = registry.read(|subjects| {
                subjects
                    .versions
                    .values()
                    .flatten()
                    .filter(|entry| entry.id == id)
                    .map(|entry| json!({ "subject": entry.subject, "version": entry.version }))
                    .collect::<Vec<_>>()
            });
            if found.is_empty() { error(RegistryError::SchemaNotFound) } else { reply(StatusCode::OK, json!(found)) }
        },
    );

    let compatibility = warp::path("compatibility")
        .and(warp::path("subjects"))
        .and(warp::path::param::<String>())
        .and(warp::path("versions"))
        .and(warp::path::tail())
        .and(warp::post())
        .and(body)
        .and(with.clone())
        .then(|subject: String, tail: warp::path::Tail, bytes: bytes::Bytes, registry: Arc<Registry>| async move {
            let result = async {
                let body = schema_body(&bytes)?;
                let _ = registry.catch_up().await;
                let against = match tail.as_str().trim_matches('/') {
                    "" => Against::Configured,
                    version => Against::Version(version.to_string()),
                };
                let problems = registry.check(&subject, &body.schema, against)?;
                Ok(json!({ "is_compatible": problems.is_empty(), "messages": problems }))
            };
            answer(result.await)
        });

    let config_get = warp::path("config").and(warp::path::tail()).and(warp::get()).and(with.clone()).then(
        |tail: warp::path::Tail, registry: Arc<Registry>| async move {
            let subject = Some(tail.as_str().trim_matches('/')).filter(|subject| !subject.is_empty());
            let level = registry.read(|subjects| subjects.level(subject));
            reply(StatusCode::OK, json!({ "compatibilityLevel": level.name() }))
        },
    );

    let config_put = warp::path("config")
        .and(warp::path::tail())
        .and(warp::put())
        .and(writer)
        .and(body)
        .and(with)
        .then(|tail: warp::path::Tail, allowed: Result<(), Refusal>, bytes: bytes::Bytes, registry: Arc<Registry>| async move {
            if let Err(refusal) = allowed {
                return refusal.reply();
            }
            let result = async {
                let body: ConfigBody = parse_body(&bytes)?;
                let name = body.compatibility.or(body.compatibility_level).unwrap_or_default();
                let level = Level::parse(&name)?;
                let subject = Some(tail.as_str().trim_matches('/')).filter(|subject| !subject.is_empty());
                registry.set_level(subject, level).await?;
                Ok(json!({ "compatibility": level.name() }))
            };
            answer(result.await)
        });

    root.or(types)
        .unify()
        .or(subjects)
        .unify()
        .or(version_schema)
        .unify()
        .or(version)
        .unify()
        .or(versions)
        .unify()
        .or(register)
        .unify()
        .or(lookup)
        .unify()
        .or(by_id_schema)
        .unify()
        .or(by_id_versions)
        .unify()
        .or(by_id)
        .unify()
        .or(compatibility)
        .unify()
        .or(config_get)
        .unify()
        .or(config_put)
        .unify()
}

/// Routes plus a Confluent-style 404 for anything else.
pub fn service(
    registry: Arc<Registry>,
    writers: Writers,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    routes(registry, writers)
        .recover(|rejection: warp::Rejection| async move {
            let (status, code, message) = if rejection.is_not_found() {
                (StatusCode::NOT_FOUND, 404, "no such endpoint".to_string())
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                (StatusCode::METHOD_NOT_ALLOWED, 405, "method not allowed".to_string())
            } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
                (StatusCode::PAYLOAD_TOO_LARGE, 413, "request body over 1 MiB".to_string())
            } else {
                (StatusCode::BAD_REQUEST, 400, format!("{rejection:?}"))
            };
            Ok::<_, std::convert::Infallible>(reply(status, json!({ "error_code": code, "message": message })))
        })
        .unify()
}

/// Parses `bytes` as each request body of the API (the `registry_body` fuzz target).
#[cfg(fuzzing)]
pub fn fuzz_bodies(bytes: &[u8]) {
    let _ = schema_body(bytes);
    let _ = parse_body::<ConfigBody>(bytes);
}
