//! `kinsight agent`: the node agent (issue [1/8]).

use anyhow::Context;
use kinsight_agent::run::{RunOptions, run_agent};
use kinsight_agent::shipper::{ServerSink, ShipperConfig};
use kinsight_agent::sink::sink_from_spec;
use kinsight_model::config::AgentConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Agent config (JSON): the CloudWatch agent's ConfigMap document plus a "kinsight" object.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where events go: `server` (the config's `kinsight.server_url`; the default when it is
    /// set), `-` (stdout, JSON lines) or `file:PATH` (appended, fsynced).
    #[arg(long, value_name = "SPEC")]
    pub output: Option<String>,
    /// Take two samples `--sample-interval` apart, print one collection and exit.
    #[arg(long)]
    pub once: bool,
    /// Distance between the two samples of `--once` (e.g. `1s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub sample_interval: Duration,
    /// Validate the config and exit (0 = valid).
    #[arg(long)]
    pub check: bool,
    /// Serve the latest numbers in Prometheus text format on `/metrics` (and `/healthz`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A positive duration for a flag (`1s`, `500ms`, `1h30m`, a plain number of seconds): the
/// grammar of [`kinsight_model::duration`]; clap names the flag and the value in its error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = kinsight_model::duration::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("{:?} must be more than zero", s.trim()));
    }
    Ok(d)
}

/// The server sink of the config: `kinsight.server_url` (one or several servers), token from
/// `KINSIGHT_TOKEN` or `kinsight.server_token_file`, spool under `state_dir/spool`.
pub fn server_sink(cfg: &AgentConfig) -> anyhow::Result<Arc<ServerSink>> {
    let k = &cfg.kinsight;
    if k.server_urls.is_empty() {
        anyhow::bail!("--output server needs kinsight.server_url in the config");
    }
    let token = match std::env::var("KINSIGHT_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(t) => Some(t.trim().to_string()),
        None => match &k.server_token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read token file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        },
    };
    let mut sc = ShipperConfig::with_servers(&k.server_urls, token, k.state_dir.join("spool"));
    sc.max_bytes = k.buffer_max_bytes;
    sc.batch_max_events = k.batch_max_events;
    sc.batch_max_bytes = k.batch_max_bytes;
    sc.ca_file = k.server_ca_file.clone();
    Ok(ServerSink::open(sc)?)
}

pub fn load_config(path: &std::path::Path) -> anyhow::Result<AgentConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    AgentConfig::from_json(&text).with_context(|| format!("invalid config {}", path.display()))
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args.config)?;
    for w in &cfg.warnings {
        tracing::warn!("{}: {w}", args.config.display());
    }
    if args.check {
        println!(
            "{}: valid (cluster {}, node {}, interval {} s, {} mode)",
            args.config.display(),
            cfg.cluster_name,
            cfg.host_name,
            cfg.metrics_collection_interval_s,
            if cfg.enhanced_container_insights {
                "enhanced"
            } else {
                "standard"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    kinsight_agent::host::check_host_root(&cfg.kinsight.host_root).map_err(anyhow::Error::msg)?;
    let output = args.output.clone().unwrap_or_else(|| {
        if !cfg.kinsight.server_urls.is_empty() {
            "server".into()
        } else {
            "-".into()
        }
    });
    let rt = super::agent_runtime()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut shipper = None;
        // The sender runs until the end of `run`, past the agent's own shutdown, so that what
        // was collected last can still be delivered.
        let (_sender_stop, sender_rx) = tokio::sync::watch::channel(false);
        let sink: Arc<dyn kinsight_agent::sink::Sink> = if output == "server" {
            let s = server_sink(&cfg)?;
            s.spawn(sender_rx);
            shipper = Some(s.clone());
            s
        } else {
            sink_from_spec(&output).map_err(anyhow::Error::msg)?
        };
        let prometheus = Arc::new(RwLock::new(String::new()));
        if let Some(addr) = args.metrics_listen {
            super::serve_metrics(addr, prometheus.clone(), rx.clone()).await?;
        }
        tokio::spawn(super::shutdown_on_signal(tx));
        let opts = RunOptions {
            once: args.once,
            sample_interval: args.sample_interval,
            // Rendered only when something serves it: it costs as much as a collection.
            prometheus: args.metrics_listen.map(|_| prometheus),
        };
        run_agent(&cfg, sink, opts, rx)
            .await
            .context("delivering events")?;
        if let Some(s) = shipper {
            // Deliver what is spooled before exiting; what is left stays in the spool and is
            // sent at the next start.
            let wait = if args.once { Duration::from_secs(30) } else { Duration::from_secs(10) };
            if !s.drain(wait).await {
                let (n, bytes) = s.pending();
                tracing::warn!("{n} batches ({bytes} bytes) are still in the spool; they will be sent at the next start");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
