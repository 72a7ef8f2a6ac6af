//! `kinsight server --data-dir DIR --listen ADDR [--object-store s3://bucket/prefix]`: wiring
//! only; everything else is in `kinsight-server` and `kinsight-store`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use kinsight_alarms::{AlarmServiceConfig, SystemClock};
use kinsight_metrics::MetricStoreConfig;
use kinsight_server::api::metrics::MetricsEngine;
use kinsight_server::cwlogs::AccessKeys;
use kinsight_server::{Server, ServerConfig};
use kinsight_store::{ObjectStoreLocation, StoreConfig};

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Local directory for the write-ahead log, tokens and (by default) segments.
    #[arg(long, value_name = "DIR", default_value = "kinsight-data")]
    pub data_dir: PathBuf,
    /// Address to listen on. Without KINSIGHT_TOKEN only a loopback address is allowed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where segments and checkpoints go: `s3://bucket/prefix` (endpoint and keys from
    /// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), `file:///dir`,
    /// or a directory. Default: DATA_DIR/objects.
    #[arg(long, value_name = "URL")]
    pub object_store: Option<String>,
    /// Flush unflushed events to segments at least this often (seconds, at most a day).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub flush_interval_secs: u64,
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let admin_token = std::env::var("KINSIGHT_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let rt = super::runtime()?;
    rt.block_on(async move {
        let server = start(&args, admin_token).await?;
        // One line on stdout: scripts and tests read the bound address (`--listen :0`).
        super::announce(&format!(
            "kinsight server listening on http://{}\n",
            server.addr
        ));
        server.serve(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A server that is bound but not yet serving (shared by `kinsight server` and `kinsight up`).
pub struct Started {
    pub addr: SocketAddr,
    server: Server,
    _engine_tasks: kinsight_server::api::metrics::EngineTasks,
}

impl Started {
    /// Serves until `shutdown`, then stops the store cleanly.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let tasks = self._engine_tasks;
        self.server.serve(shutdown).await?;
        drop(tasks);
        Ok(())
    }
}

/// Opens the store (replaying its WAL), the metric store and the alarm service, and binds.
pub async fn start(args: &ServerArgs, admin_token: Option<String>) -> anyhow::Result<Started> {
    let mut store = StoreConfig::new(&args.data_dir);
    if let Some(url) = &args.object_store {
        store.object_store = ObjectStoreLocation::parse(url)?;
    }
    store.flush_interval_ms = (args.flush_interval_secs.max(1) * 1000) as i64;
    let config = ServerConfig {
        listen: args.listen,
        store,
        admin_token,
    };
    config.validate()?;
    // Metrics and alarms (issue #6): the metric store sees every durable batch.
    let engine = MetricsEngine::open(&args.data_dir, MetricStoreConfig::default())
        .context("opening the metric store")?;
    // CloudWatch-compatible API (issue #8): access keys from the environment.
    let aws_keys = aws_keys_from_env()?;
    let mut server = Server::bind(config, vec![engine.observer()])
        .await
        .with_context(|| format!("starting the server in {}", args.data_dir.display()))?;
    server.state.aws_keys = Arc::new(aws_keys);
    // Scoped tokens handed in by the deployment's Secret (deploy/kubernetes/50-server.yaml).
    for (var, scope) in [
        (
            "KINSIGHT_INGEST_TOKEN",
            kinsight_server::auth::Scope::Ingest,
        ),
        ("KINSIGHT_READ_TOKEN", kinsight_server::auth::Scope::Read),
    ] {
        if let Some(t) = std::env::var(var).ok().filter(|t| !t.trim().is_empty()) {
            server
                .state
                .auth
                .add_fixed(var, scope, t.trim())
                .map_err(|e| anyhow::anyhow!("{var}: {}", e.message))?;
        }
    }
    let engine_tasks = engine
        .attach(
            &mut server.state,
            AlarmServiceConfig::default(),
            Arc::new(SystemClock),
        )
        .context("opening the alarm service")?;
    Ok(Started {
        addr: server.addr,
        server,
        _engine_tasks: engine_tasks,
    })
}

/// The CloudWatch API's access keys: `KINSIGHT_AWS_ACCESS_KEY_ID` /
/// `KINSIGHT_AWS_SECRET_ACCESS_KEY` (admin scope) and the key file named by
/// `KINSIGHT_AWS_KEYS_FILE` (docs/cloudwatch-compat.md).
fn aws_keys_from_env() -> anyhow::Result<AccessKeys> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let file = var("KINSIGHT_AWS_KEYS_FILE").map(PathBuf::from);
    AccessKeys::load(
        var("KINSIGHT_AWS_ACCESS_KEY_ID").as_deref(),
        var("KINSIGHT_AWS_SECRET_ACCESS_KEY").as_deref(),
        file.as_deref(),
    )
    .context("CloudWatch API access keys")
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
