//! `kinsight simulate`: a simulated Kubernetes cluster shipped to a server (issue #7) — the
//! performance events an agent on every node (and the elected leader) would write (Node,
//! NodeFS, NodeDiskIO, NodeNet, Pod, PodNet, Container, Cluster, ClusterNamespace,
//! ClusterService; reference §1.3, field names as `crates/agent/src/perf` writes them, EMF
//! directives from `kinsight_model::catalogue`) and application logs shaped like the agent's
//! log pipeline, sent to `/v1/ingest`.
//!
//! It feeds the console's demos and its dashboard benchmark. Everything is a pure function of
//! `--seed`, the cluster size and the tick's time: the same command gives the same cluster and
//! the same numbers, and batch ids repeat with the data, so re-sending a tick stores it once.
//!
//! The workload: DaemonSets on every node, a few StatefulSets, Deployments filling up the pod
//! budget, Services in front of them; CPU, memory and traffic follow a daily-ish wave with
//! noise; one pod leaks memory towards its limit, one crash-loops (restarts, waiting
//! containers, error logs).

use anyhow::{Context, bail};
use futures::StreamExt;
use kinsight_model::LogEvent;
use kinsight_model::catalogue::{self, DirectiveBuilder, keys, types};
use serde_json::{Map, Number, Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod cluster;
mod events;
mod ship;
use cluster::*;
use events::*;
use ship::*;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// kinsight server URL; the token comes from KINSIGHT_TOKEN.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// PEM CA certificates to verify an https:// server against.
    #[arg(long, value_name = "FILE", env = "KINSIGHT_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Number of nodes.
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// Number of pods (DaemonSet pods included).
    #[arg(long, default_value_t = 1500)]
    pub pods: usize,
    /// How long to keep sending live ticks after the backfill (`0` = backfill only).
    #[arg(long, default_value = "30m", value_parser = parse_span, allow_hyphen_values = true)]
    pub duration: Duration,
    /// Time between two collections.
    #[arg(long, default_value = "60s", value_parser = parse_span, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Cluster name (log groups `<prefix>/<cluster>/...`, the ClusterName dimension).
    #[arg(long, default_value = "sim")]
    pub cluster: String,
    /// Send this much history first, as fast as the server takes it (at most 14 days).
    #[arg(long, default_value = "0", value_parser = parse_span, allow_hyphen_values = true)]
    pub backfill: Duration,
    /// Seed of everything random: names, sizes, noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Enhanced observability: FullPodName/ContainerName dimensions, status fields, container
    /// metrics (reference §2.4.b).
    #[arg(long)]
    pub enhanced: bool,
    /// Application log lines per tick (0 = no application logs).
    #[arg(long, default_value_t = 300)]
    pub log_lines: usize,
    /// Log group prefix.
    #[arg(long, default_value = "/kinsight")]
    pub log_group_prefix: String,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// `0`, or a positive duration (`90s`, `30m`, `1h`, `1.5h`, `2d`): the grammar of
/// [`kinsight_model::duration`].
fn parse_span(s: &str) -> Result<Duration, String> {
    kinsight_model::duration::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.interval < Duration::from_secs(1) {
        bail!("--interval must be at least 1s");
    }
    if args.backfill > Duration::from_secs(14 * 86_400 - 3600) {
        bail!("--backfill must be under 14 days: the server rejects older events (tooOld)");
    }
    let cluster = Cluster::generate(&args);
    eprintln!(
        "simulated cluster {:?}: {} nodes, {} pods, {} containers, {} namespaces, {} services (seed {})",
        args.cluster,
        cluster.nodes.len(),
        cluster.pods.len(),
        cluster
            .pods
            .iter()
            .map(|p| p.containers.len())
            .sum::<usize>(),
        cluster.namespaces.len(),
        cluster.services.len(),
        args.seed
    );
    let rt = super::runtime()?;
    rt.block_on(simulate(args, cluster))?;
    Ok(ExitCode::SUCCESS)
}

async fn simulate(args: SimulateArgs, cluster: Cluster) -> anyhow::Result<()> {
    let shipper = Shipper::new(&args)?;
    let interval_ms = args.interval.as_millis() as i64;
    let now = now_ms();
    let first_live = (now / interval_ms) * interval_ms;
    let mut generator = Generator::new(&cluster, &args);

    if !args.backfill.is_zero() {
        let start = first_live - args.backfill.as_millis() as i64;
        let started = Instant::now();
        let mut t = start;
        let mut totals = Totals::default();
        while t < first_live {
            let events = generator.tick(t);
            totals.add(&shipper.send(t, events).await?);
            t += interval_ms;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "backfill: {} ticks, {} events ({:.1} MB) in {secs:.1} s — {:.0} events/s, {} rejected",
            (first_live - start) / interval_ms,
            totals.events,
            totals.bytes as f64 / 1e6,
            totals.events as f64 / secs.max(1e-3),
            totals.rejected
        );
    }

    let end = now + args.duration.as_millis() as i64;
    let mut t = first_live;
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    while t <= end && !args.duration.is_zero() {
        let wait = (t - now_ms()).max(0) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = &mut stop => { eprintln!("interrupted"); return Ok(()); }
        }
        let events = generator.tick(t);
        let tot = shipper.send(t, events).await?;
        eprintln!(
            "tick {}: {} events ({:.1} MB), {} rejected",
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            tot.events,
            tot.bytes as f64 / 1e6,
            tot.rejected
        );
        t += interval_ms;
    }
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn args(extra: &[&str]) -> SimulateArgs {
        let mut v = vec!["simulate"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn the_same_seed_gives_the_same_cluster_and_events() {
        let a = args(&["--nodes", "4", "--pods", "60", "--seed", "7"]);
        let (c1, c2) = (Cluster::generate(&a), Cluster::generate(&a));
        assert_eq!(c1.pods.len(), 60);
        assert_eq!(c1.nodes.len(), 4);
        let t = 1_767_225_600_000;
        let e1 = Generator::new(&c1, &a).tick(t);
        let e2 = Generator::new(&c2, &a).tick(t);
        assert_eq!(e1, e2);
        let other = Cluster::generate(&args(&["--nodes", "4", "--pods", "60", "--seed", "8"]));
        assert_ne!(c1.nodes[0].instance_id, other.nodes[0].instance_id);
    }

    #[test]
    fn events_have_the_agent_fields_and_emf_directives() {
        let a = args(&["--nodes", "3", "--pods", "40", "--log-lines", "5"]);
        let c = Cluster::generate(&a);
        let mut g = Generator::new(&c, &a);
        let t = 1_767_225_600_000;
        g.tick(t - 60_000);
        let events = g.tick(t);
        let perf: Vec<Value> = events
            .iter()
            .filter(|e| e.log_group_name == "/kinsight/sim/performance")
            .map(|e| serde_json::from_str(&e.message).unwrap())
            .collect();
        let of = |ty: &str| perf.iter().filter(|v| v["Type"] == ty).collect::<Vec<_>>();
        assert_eq!(of("Node").len(), 3);
        assert_eq!(of("NodeFS").len(), 3);
        assert_eq!(of("NodeNet").len(), 3);
        assert_eq!(of("Pod").len(), 40);
        assert_eq!(of("PodNet").len(), 40);
        assert_eq!(of("Cluster").len(), 1);
        assert!(!of("ClusterNamespace").is_empty());
        assert!(!of("ClusterService").is_empty());
        let node = of("Node")[0];
        assert_eq!(node["Version"], "0");
        assert_eq!(node["Timestamp"], t.to_string());
        let cpu = node["node_cpu_utilization"].as_f64().unwrap();
        assert!(cpu > 0.0 && cpu <= 100.0, "{cpu}");
        // The directive declares the standard metrics with their dimension sets (§2.4.a).
        let dirs = node["CloudWatchMetrics"].as_array().unwrap();
        let names: Vec<&str> = dirs
            .iter()
            .flat_map(|d| d["Metrics"].as_array().unwrap())
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"node_cpu_utilization"), "{names:?}");
        assert!(
            dirs.iter()
                .any(|d| d["Dimensions"].as_array().unwrap().contains(&json!([
                    "ClusterName",
                    "InstanceId",
                    "NodeName"
                ])))
        );
        let pod = of("Pod")[0];
        assert!(pod["kubernetes"]["pod_name"].is_string());
        assert!(pod["pod_number_of_container_restarts"].is_u64());
        // Events go to the node's stream; the pod's stream is its node.
        let e = events
            .iter()
            .find(|e| e.message.contains("\"Type\":\"Pod\""))
            .unwrap();
        assert_eq!(
            e.log_stream_name,
            serde_json::from_str::<Value>(&e.message).unwrap()["NodeName"]
        );
        let app: Vec<&LogEvent> = events
            .iter()
            .filter(|e| e.log_group_name == "/kinsight/sim/application")
            .collect();
        assert!(!app.is_empty());
        assert!(
            app[0]
                .log_stream_name
                .contains("-application.var.log.containers.")
        );
        let v: Value = serde_json::from_str(&app[0].message).unwrap();
        assert!(v["kubernetes"]["container_name"].is_string(), "{v}");
    }

    #[test]
    fn a_crash_looping_pod_restarts_and_a_leaking_pod_grows() {
        let a = args(&["--nodes", "2", "--pods", "30"]);
        let c = Cluster::generate(&a);
        let g = Generator::new(&c, &a);
        let crash = c
            .pods
            .iter()
            .position(|p| p.behaviour == Behaviour::CrashLoop)
            .unwrap();
        let leak = c
            .pods
            .iter()
            .position(|p| p.behaviour == Behaviour::Leak)
            .unwrap();
        let t0: i64 = 1_767_225_600_000; // 2026-01-01, a multiple of six hours
        let r0: u64 = g.pod_sample(crash, t0).restarts.iter().sum();
        let r1: u64 = g.pod_sample(crash, t0 + 10 * 60_000).restarts.iter().sum();
        assert_eq!(r1 - r0, 2);
        let m0 = g.pod_sample(leak, t0 + 60_000).mem[0];
        let m1 = g.pod_sample(leak, t0 + 5 * 3_600_000).mem[0];
        assert!(m1 > m0 * 1.5, "{m0} → {m1}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_span("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_span("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_span("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_span("soon").is_err());
    }
}
