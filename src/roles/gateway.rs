//! `missive gateway`: clients, and the read side beside them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use missive_gateway::routing::Routing;
use missive_processors::{Placement, RuntimeMetrics, history, inbox, topics};
use tokio_util::sync::CancellationToken;

use super::client_args::*;
use super::common::*;
use super::kafka_args::*;
use super::registry::*;

#[derive(clap::Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryUrl,
    /// Address to listen on.
    #[arg(long, env = "MISSIVE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for this gateway's state (inbox of its partitions, history, directory, OTPs).
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Base URLs of all gateways, in index order (`http://host:port,...`); clients are
    /// redirected to the one owning their feed. Default: this gateway alone.
    #[arg(long, env = "MISSIVE_GATEWAYS", value_delimiter = ',')]
    pub gateways: Vec<String>,
    /// This gateway's position in --gateways.
    #[arg(long, env = "MISSIVE_GATEWAY_INDEX", default_value_t = 0)]
    pub index: usize,
    /// Secrets shared by every gateway (JSON with jwt_secret and phone_secret; created if missing).
    #[arg(long, env = "MISSIVE_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    create_private_dir(&args.data_dir)?;
    let secrets_path = args.secrets_file.clone().unwrap_or_else(|| args.data_dir.join("secrets.json"));
    let secrets = load_or_create_secrets(&secrets_path)?;
    let auth = args.client.auth_config(secrets, false)?;
    let tls = args.client.tls()?;
    let partitions = missive_processors::partitions_of(topics::DELIVERIES);
    let routing = if args.gateways.is_empty() {
        Routing::single(partitions)
    } else {
        Routing::new(args.index, args.gateways.clone(), partitions).map_err(anyhow::Error::msg)?
    };
    let node_id = u16::try_from(args.index + 1).ok().filter(|id| *id < 1024).context("at most 1023 gateways")?;
    let log = args.kafka.connect(&format!("missive-gateway-{}", args.index)).await?;
    missive_processors::create_topics(log.as_ref(), args.kafka.changelogs()).await?;
    let codec = Arc::new(args.registry.register().await?);
    let db = missive_infra::db::open_db(&args.data_dir.join("store"))?;
    let registry = prometheus::Registry::new();
    let metrics = RuntimeMetrics::new(&registry)?;
    let read_side = read_side(&db)?;
    let cancel = CancellationToken::new();
    let place = |processor: &'static str, partition: u32| match processor {
        inbox::PROCESSOR => routing.owns_partition(partition),
        history::HISTORY | history::DIRECTORY | history::MEDIA => true,
        _ => false,
    };
    let tasks = missive_processors::spawn_placed(
        log.clone(),
        db.clone(),
        codec.clone(),
        read_side.clone(),
        metrics,
        cancel.clone(),
        Placement { changelogs: args.kafka.changelogs(), place: &place, windows: Default::default() },
    );
    let watchdog = stop_when_any_task_ends(tasks, cancel.clone(), OnTaskFailure::Stop);
    stop_on_signal(cancel.clone());
    directory_ready(log.as_ref(), &db).await?;
    let (listener, address) = listen(args.listen, tls.is_some()).await?;
    tracing::info!(%address, index = args.index, gateways = args.gateways.len(), "missive gateway serving (Kafka mode)");
    if args.gateways.len() > 1 && args.client.media.s3_endpoint.is_none() {
        tracing::warn!(
            "media is stored in this gateway's own directory: users of other gateways cannot fetch it; \
             give every gateway the same --s3-endpoint/--s3-bucket to share media"
        );
    }
    let config = args
        .client
        .gateway_config(&args.data_dir, (format!("gateway-{}", args.index), node_id), routing, auth, tls)
        .await?;
    let backend = missive_gateway::Backend { log, db, codec, read_side, registry };
    missive_gateway::serve(listener, config, backend, cancel.clone()).await?;
    cancel.cancel();
    watchdog.abort();
    Ok(())
}
