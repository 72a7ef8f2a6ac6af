//! `kinsight up`: everything on one machine (issue [3/8]) — the server with embedded storage,
//! an in-process agent watching this host (node metrics, host logs, and the containers of a
//! local podman or docker), and the console, behind one token.

use super::agent::parse_duration;
use super::server::{LimitArgs, ServerArgs, TransportArgs, start};
use anyhow::Context;
use kinsight_agent::run::{RunOptions, run_agent};
use kinsight_agent::shipper::{ServerSink, ShipperConfig};
use kinsight_model::config::AgentConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where everything is kept (WAL, segments, metrics, alarms, agent state).
    #[arg(long, value_name = "DIR", default_value = "kinsight-data")]
    pub data_dir: PathBuf,
    /// Address of the server and console.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Cluster name used in log group names and the ClusterName dimension.
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub cluster: String,
    /// Collection interval of the in-process agent.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Run only the server and console, no agent.
    #[arg(long)]
    pub no_agent: bool,
    /// Keep segments in an object store instead of DATA_DIR/objects (see `kinsight server`).
    #[arg(long, value_name = "URL")]
    pub object_store: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// The admin token: `KINSIGHT_TOKEN`, or the one generated at the first start and kept in
/// DATA_DIR/up-token (mode 0600) so the console link stays the same across restarts.
fn token(data_dir: &Path) -> anyhow::Result<String> {
    if let Some(t) = std::env::var("KINSIGHT_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(t.trim().to_string());
    }
    let path = data_dir.join("up-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let t = hex::encode(rand::random::<[u8; 24]>());
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, t.as_bytes())?;
    f.sync_all()?;
    Ok(t)
}

fn agent_config(args: &UpArgs, server_url: &str) -> anyhow::Result<AgentConfig> {
    let state = args.data_dir.join("agent");
    let doc = serde_json::json!({
        "logs": {
            "metrics_collected": {"kubernetes": {"cluster_name": args.cluster, "metrics_collection_interval": args.interval.as_secs().max(1)}},
            "force_flush_interval": 5
        },
        "kinsight": {"host_root": "/", "state_dir": state.to_string_lossy(), "server_url": server_url,
                     // On a single host the containers that already run are what users came to see.
                     "logs": {"read_from_head": true}}
    });
    // No kubelet here: the agent reports this host and its local container runtime.
    AgentConfig::from_json_with_env(&doc.to_string(), &|k| match k {
        "HOST_NAME" | "K8S_NAMESPACE" => std::env::var(k).ok().filter(|v| !v.is_empty()),
        _ => None,
    })
    .context("building the agent configuration")
}

/// The loopback address of the listener's family when it listens on every address.
fn loopback(addr: SocketAddr) -> std::net::IpAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    }
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let token = token(&args.data_dir)?;
    let server_args = ServerArgs {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        object_store: args.object_store.clone(),
        flush_interval_secs: 60,
        catalogue: None,
        replica_id: None,
        limits: args.limits.clone(),
        transport: args.transport.clone(),
    };
    let rt = super::runtime()?;
    rt.block_on(async move {
        let started = start(&server_args, Some(token.clone())).await?;
        let addr = started.addr;
        let scheme = if started.url.starts_with("https://") { "https" } else { "http" };
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(super::shutdown_on_signal(tx));
        let mut stop = rx.clone();
        let serve = tokio::spawn(started.serve(async move {
            let _ = stop.wait_for(|v| *v).await;
        }));
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        // One write, errors ignored: whoever started us may read the first line and close the
        // pipe, which must not take the server down (a println! would panic on EPIPE).
        let banner = format!(
            "kinsight is up: open {scheme}://{host}:{}/?token={token}\n  data in {}, cluster {:?}; the CLI needs KINSIGHT_TOKEN={token}\n  try: kinsight logs groups   |   kinsight query --group /kinsight/{}/performance --since 15m 'stats avg(node_cpu_utilization) by bin(1m)'\n",
            addr.port(),
            args.data_dir.display(),
            args.cluster,
            args.cluster
        );
        super::announce(&banner);
        if !args.no_agent {
            // The agent talks to this process's own socket over loopback.
            let url = format!("{scheme}://{}", SocketAddr::new(loopback(addr), addr.port()));
            let cfg = agent_config(&args, &url)?;
            let mut sc = ShipperConfig::new(&url, Some(token.clone()), cfg.kinsight.state_dir.join("spool"));
            sc.max_bytes = cfg.kinsight.buffer_max_bytes;
            sc.accept_any_certificate = scheme == "https";
            let shipper = ServerSink::open(sc)?;
            shipper.spawn(rx.clone());
            run_agent(&cfg, shipper, RunOptions::default(), rx.clone()).await.context("in-process agent")?;
        }
        serve.await.context("server task")??;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
