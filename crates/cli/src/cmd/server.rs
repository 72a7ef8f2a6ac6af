//! `kinsight server --data-dir DIR --listen ADDR [--object-store s3://bucket/prefix]
//! [--tls-cert FILE --tls-key FILE] [connection limits]`: wiring only; everything else is in
//! `kinsight-server` (its `transport` module for TLS and the limits) and `kinsight-store`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kinsight_alarms::{AlarmServiceConfig, SystemClock};
use kinsight_metrics::MetricStoreConfig;
use kinsight_server::api::metrics::MetricsEngine;
use kinsight_server::cwlogs::AccessKeys;
use kinsight_server::{Server, ServerConfig, TlsConfig, TransportConfig};
use kinsight_store::{CardinalityLimits, ObjectStoreLocation, StoreConfig};

use super::agent::parse_duration;

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
    /// Run as one of several replicas sharing the --object-store bucket (s3:// only) and this
    /// PostgreSQL catalogue: `postgres://USER[:PASSWORD]@HOST:PORT/DB` (libpq parameters such
    /// as `?sslmode=require` accepted). Without it the server is a single node on its data
    /// directory. Prefer the variable: a password on the command line is visible in `ps`.
    #[arg(
        long,
        env = "KINSIGHT_CATALOGUE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub catalogue: Option<String>,
    /// This replica's unique name in the catalogue (the pod name). Default: the host name
    /// with a random suffix.
    #[arg(long, env = "KINSIGHT_REPLICA_ID", value_name = "ID")]
    pub replica_id: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Caps on what clients can make the server hold, and where alarm webhooks may go (issue 15,
/// items 10 and 12; docs/security.md). Shared by `kinsight server` and `kinsight up`.
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Most log groups the server holds; an event that would create another is rejected
    /// (`tooManyLogGroups`), CreateLogGroup answers LimitExceeded.
    #[arg(long, env = "KINSIGHT_MAX_LOG_GROUPS", value_name = "N",
          default_value_t = CardinalityLimits::default().max_log_groups)]
    pub max_log_groups: usize,
    /// Most log streams in all groups together (`tooManyLogStreams` past it).
    #[arg(long, env = "KINSIGHT_MAX_LOG_STREAMS", value_name = "N",
          default_value_t = CardinalityLimits::default().max_log_streams)]
    pub max_log_streams: usize,
    /// Most log streams in one group (`tooManyLogStreams` past it).
    #[arg(long, env = "KINSIGHT_MAX_STREAMS_PER_GROUP", value_name = "N",
          default_value_t = CardinalityLimits::default().max_streams_per_group)]
    pub max_streams_per_group: usize,
    /// Most metric series in all namespaces; datapoints of new series past it are dropped
    /// and counted.
    #[arg(long, env = "KINSIGHT_MAX_METRIC_SERIES", value_name = "N",
          default_value_t = MetricStoreConfig::default().max_series)]
    pub max_metric_series: usize,
    /// Most metric series in one namespace.
    #[arg(long, env = "KINSIGHT_MAX_METRIC_SERIES_PER_NAMESPACE", value_name = "N",
          default_value_t = MetricStoreConfig::default().max_series_per_namespace)]
    pub max_metric_series_per_namespace: usize,
    /// Addresses alarm webhooks may reach although they are link-local or a cloud metadata
    /// service (refused by default), e.g. `169.254.10.0/24` or `fd00:ec2::254/128`;
    /// repeatable, or comma-separated in the variable.
    #[arg(
        long = "alarm-webhook-allow-cidr",
        env = "KINSIGHT_ALARM_WEBHOOK_ALLOW_CIDRS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub alarm_webhook_allow_cidrs: Vec<String>,
    /// Operator memory of all queries running at once (sorts and aggregations spill past
    /// it); default a quarter of the server's memory limit (its cgroup's, else the
    /// machine's).
    #[arg(long, env = "KINSIGHT_QUERY_MEMORY", value_name = "SIZE", value_parser = parse_size)]
    pub query_memory: Option<u64>,
    /// Where queries spill sorts and aggregations; default the system temporary directory.
    #[arg(long, env = "KINSIGHT_QUERY_SPILL_DIR", value_name = "DIR")]
    pub query_spill_dir: Option<PathBuf>,
    /// Spill files of all queries together; a query that needs more fails (spill_exceeded).
    #[arg(long, env = "KINSIGHT_QUERY_SPILL_MAX", value_name = "SIZE", default_value = "4GiB", value_parser = parse_size)]
    pub query_spill_max: u64,
    /// Result rows one query keeps; it stops there with a warning.
    #[arg(long, env = "KINSIGHT_QUERY_RESULT_MAX", value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub query_result_max: u64,
    /// Results all finished queries keep together; the oldest go first.
    #[arg(long, env = "KINSIGHT_QUERY_RESULTS_RETAINED", value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub query_results_retained: u64,
    /// How long a finished query's results are kept.
    #[arg(long, env = "KINSIGHT_QUERY_RESULTS_TTL", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub query_results_ttl: Duration,
    /// What one scalar function may produce for one batch of rows (`repeat`, `lpad`, …);
    /// default 256 MiB, or a quarter of a query's memory when that is less.
    #[arg(long, env = "KINSIGHT_QUERY_FUNCTION_OUTPUT_MAX", value_name = "SIZE", value_parser = parse_size)]
    pub query_function_output_max: Option<u64>,
    /// Memory that request bodies (as sent and decoded) and query-result answers in progress
    /// may hold together; beyond it requests wait, then get 503. Default an eighth of the
    /// server's memory limit, between 64 MiB and 1 GiB.
    #[arg(long, env = "KINSIGHT_REQUEST_MEMORY", value_name = "SIZE", value_parser = parse_size)]
    pub request_memory: Option<u64>,
    /// Events the follow buffer behind /v1/follow and /v1/tail keeps (also at most 8,192
    /// batches).
    #[arg(long, env = "KINSIGHT_FOLLOW_BUFFER", value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub follow_buffer: u64,
}

impl LimitArgs {
    /// The query service's settings from these flags.
    pub fn query_config(&self) -> kinsight_query::QueryConfig {
        let mut q = kinsight_query::QueryConfig::default();
        if let Some(total) = self.query_memory {
            q.memory_per_query_bytes = (total / q.max_running.max(1) as u64) as usize;
            q.max_function_output_bytes =
                kinsight_query::guard::MAX_FUNCTION_OUTPUT_BYTES.min(q.memory_per_query_bytes / 4);
        }
        q.spill_dir = self.query_spill_dir.clone();
        q.max_spill_bytes = self.query_spill_max;
        q.max_result_bytes = usize_of(self.query_result_max);
        q.max_retained_result_bytes = usize_of(self.query_results_retained);
        q.result_ttl_ms = self.query_results_ttl.as_millis().min(u64::MAX as u128) as u64;
        if let Some(n) = self.query_function_output_max {
            q.max_function_output_bytes = usize_of(n);
        }
        q
    }

    /// Request, page and follow-buffer sizes from these flags.
    pub fn server_limits(&self) -> kinsight_server::state::Limits {
        let mut l = kinsight_server::state::Limits::default();
        l.follow.ring_bytes = usize_of(self.follow_buffer);
        if let Some(n) = self.request_memory {
            l.request_memory_bytes = usize_of(n);
        }
        l
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn parse_size(s: &str) -> Result<u64, String> {
    kinsight_model::size::parse_size(s).map_err(|e| e.to_string())
}

/// TLS, timeouts and caps of the server's connections (docs/security.md, "Connections and
/// HTTP"); shared by `kinsight server` and `kinsight up`.
#[derive(clap::Args, Clone, Debug)]
pub struct TransportArgs {
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs
    /// --tls-key. Both files are read again when they change.
    #[arg(
        long,
        value_name = "FILE",
        env = "KINSIGHT_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "KINSIGHT_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// How often the certificate files are checked for a new pair.
    #[arg(long, value_name = "DURATION", env = "KINSIGHT_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// A request's headers (and a TLS handshake) must arrive within this time of their
    /// first byte, or the connection is closed.
    #[arg(long, value_name = "DURATION", env = "KINSIGHT_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this time of its headers, or it is answered 408.
    #[arg(long, value_name = "DURATION", env = "KINSIGHT_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// A connection with no request in progress is closed after this time.
    #[arg(long, value_name = "DURATION", env = "KINSIGHT_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A response being sent must make progress within this time (the client reads it), or
    /// the connection is closed.
    #[arg(long, value_name = "DURATION", env = "KINSIGHT_WRITE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Long-polls (/v1/follow) and event streams (/v1/tail) at once; more are answered 503.
    #[arg(long, value_name = "N", env = "KINSIGHT_MAX_LONG_POLLS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_long_polls: u32,
    /// Connections held at once; more are closed at once (plain HTTP gets a 503 first).
    #[arg(long, value_name = "N", env = "KINSIGHT_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Requests handled at once; more are answered 503 with Retry-After (/healthz never is).
    #[arg(long, value_name = "N", env = "KINSIGHT_MAX_REQUESTS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests: u32,
    /// On SIGTERM, how long requests in progress may take to finish before connections are
    /// dropped.
    #[arg(long, value_name = "DURATION", env = "KINSIGHT_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

impl TransportArgs {
    pub fn config(&self) -> TransportConfig {
        TransportConfig {
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            max_connections: self.max_connections as usize,
            max_requests: self.max_requests as usize,
            max_long_polls: self.max_long_polls as usize,
            shutdown_timeout: self.shutdown_timeout,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig {
                    cert_path: cert.clone(),
                    key_path: key.clone(),
                    reload_interval: self.tls_reload_interval,
                }),
                _ => None,
            },
        }
    }
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let admin_token = std::env::var("KINSIGHT_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let rt = super::runtime()?;
    rt.block_on(async move {
        let server = start(&args, admin_token).await?;
        // One line on stdout: scripts and tests read the bound address (`--listen :0`).
        super::announce(&format!("kinsight server listening on {}\n", server.url));
        server.serve(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A server that is bound but not yet serving (shared by `kinsight server` and `kinsight up`).
pub struct Started {
    pub addr: SocketAddr,
    /// `http://ADDR` or `https://ADDR`.
    pub url: String,
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
    let mut replica = None;
    if let Some(url) = args.catalogue.as_deref().filter(|u| !u.trim().is_empty()) {
        let shared = join_replicas(args, url, &store.object_store).await?;
        replica = Some((
            shared.catalogue.clone(),
            shared.replica_id.clone(),
            shared.address.clone(),
        ));
        store.shared = Some(shared);
    }
    store.limits = CardinalityLimits {
        max_log_groups: args.limits.max_log_groups,
        max_log_streams: args.limits.max_log_streams,
        max_streams_per_group: args.limits.max_streams_per_group,
    };
    let metrics = MetricStoreConfig {
        max_series: args.limits.max_metric_series,
        max_series_per_namespace: args.limits.max_metric_series_per_namespace,
        ..MetricStoreConfig::default()
    };
    let config = ServerConfig {
        listen: args.listen,
        store,
        admin_token,
        transport: args.transport.config(),
        limits: args.limits.server_limits(),
        query: args.limits.query_config(),
    };
    config.validate()?;
    // Metrics and alarms (issue #6): the metric store sees every durable batch.
    let engine = match &replica {
        Some((catalogue, id, address)) => {
            let storage =
                kinsight_store::Storage::open(&config.store.object_store, &config.store.s3_options)
                    .context("opening the object store")?;
            MetricsEngine::open_replica(
                &args.data_dir,
                metrics,
                catalogue.clone(),
                storage,
                (id, address),
            )
            .await
            .context("opening the metric store")?
        }
        None => MetricsEngine::open(&args.data_dir, metrics).context("opening the metric store")?,
    };
    // CloudWatch-compatible API (issue #8): access keys from the environment.
    let aws_keys = aws_keys_from_env()?;
    let mut server = Server::bind(config, vec![engine.observer()])
        .await
        .with_context(|| format!("starting the server in {}", args.data_dir.display()))?;
    let url = server.url();
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
    let mut alarms = AlarmServiceConfig::default();
    alarms.notifier.egress.allow = args
        .limits
        .alarm_webhook_allow_cidrs
        .iter()
        .map(|c| kinsight_alarms::egress::parse_cidr(c))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--alarm-webhook-allow-cidr: {e}"))?;
    let engine_tasks = if let Some((catalogue, replica_id, _)) = replica {
        engine
            .attach_replica(
                &mut server.state,
                alarms,
                Arc::new(SystemClock),
                catalogue,
                &replica_id,
            )
            .await
            .context("opening the shared alarm service")?
    } else {
        engine
            .attach(&mut server.state, alarms, Arc::new(SystemClock))
            .context("opening the alarm service")?
    };
    Ok(Started {
        addr: server.addr,
        url,
        server,
        _engine_tasks: engine_tasks,
    })
}

/// How long a starting replica keeps trying to reach the catalogue (PostgreSQL may start
/// after the servers).
const CATALOGUE_CONNECT_WAIT: Duration = Duration::from_secs(120);

/// Connects to the replicas' catalogue (applying its migrations) and names this replica.
async fn join_replicas(
    args: &ServerArgs,
    url: &str,
    objects: &ObjectStoreLocation,
) -> anyhow::Result<kinsight_store::SharedConfig> {
    if !matches!(objects, ObjectStoreLocation::S3 { .. }) {
        anyhow::bail!(
            "--catalogue needs --object-store s3://BUCKET/PREFIX: replicas share one bucket, and a local directory is not shared"
        );
    }
    let deadline = std::time::Instant::now() + CATALOGUE_CONNECT_WAIT;
    let catalogue = loop {
        match kinsight_catalogue::Catalogue::connect(url).await {
            Ok(c) => break c,
            Err(e @ kinsight_catalogue::CatalogueError::Url(_)) => {
                return Err(anyhow::anyhow!("--catalogue: {e}"));
            }
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "the catalogue is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("--catalogue: {e}")),
        }
    };
    let id = match args
        .replica_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(id) => id.to_string(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let mut suffix = [0u8; 3];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut suffix);
            format!(
                "{}-{}",
                if host.is_empty() { "kinsight" } else { &host },
                hex::encode(suffix)
            )
        }
    };
    let mut shared = kinsight_store::SharedConfig::new(catalogue, id);
    shared.address = args.listen.to_string();
    Ok(shared)
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
