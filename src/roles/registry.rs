//! `missive schema-registry` and how the other roles reach it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use missive_registry::{Registry, register_remote};
use tokio_util::sync::CancellationToken;

use super::common::*;
use super::kafka_args::*;

/// Serves the schema registry's REST API on `address` until cancelled.
pub async fn serve_registry(
    address: SocketAddr,
    registry: Arc<Registry>,
    writers: missive_registry::http::Writers,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the schema registry; is the port taken?"))?;
    let bound = listener.local_addr()?;
    let service = warp::service(missive_registry::http::service(registry, writers));
    let limits = missive_gateway::ConnectionLimits::default();
    tokio::spawn(async move { missive_gateway::serve_connections(listener, service, None, limits, &cancel).await });
    Ok(bound)
}

#[derive(clap::Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Address to serve the REST API on.
    #[arg(long, env = "MISSIVE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// File (mode 0600) holding the admin token that registering schemas
    /// and setting compatibility need (`Authorization: Bearer`); without
    /// it the registry is read-only.
    #[arg(long, env = "MISSIVE_SCHEMA_REGISTRY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

pub async fn schema_registry(args: RegistryArgs) -> anyhow::Result<()> {
    let log = args.kafka.connect("missive-schema-registry").await?;
    let registry = Registry::open(log).await?;
    let cancel = CancellationToken::new();
    stop_on_signal(cancel.clone());
    let admin_token = args.admin_token_file.as_deref().map(read_token).transpose()?;
    if admin_token.is_none() {
        tracing::warn!("no --admin-token-file: the schema registry is read-only (Missive's members cannot register)");
    }
    let writers = missive_registry::http::Writers::new(admin_token);
    let bound = serve_registry(args.listen, registry, writers, cancel.clone()).await?;
    println!("listening on http://{bound}");
    std::io::stdout().flush()?;
    tracing::info!(address = %bound, "schema registry serving");
    cancel.cancelled().await;
    Ok(())
}

/// Where the schema registry is.
#[derive(clap::Args, Clone, Debug)]
pub struct SchemaRegistryUrl {
    /// Base URL of a Confluent-compatible schema registry (`missive schema-registry`).
    #[arg(long = "schema-registry", env = "MISSIVE_SCHEMA_REGISTRY")]
    pub url: String,
    /// File (mode 0600) holding the registry's admin token, for registering
    /// Missive's schemas.
    #[arg(long = "schema-registry-token-file", env = "MISSIVE_SCHEMA_REGISTRY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl SchemaRegistryUrl {
    /// Registers Missive's schemas there; returns the codec.
    pub async fn register(&self) -> anyhow::Result<missive_schemas::Codec> {
        let token = self.token_file.as_deref().map(read_token).transpose()?;
        Ok(register_remote(&self.url, token.as_deref(), Duration::from_secs(60)).await?)
    }
}
