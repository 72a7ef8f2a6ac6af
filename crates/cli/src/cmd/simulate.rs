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

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// kinsight server URL; the token comes from KINSIGHT_TOKEN.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// Number of pods (DaemonSet pods included).
    #[arg(long, default_value_t = 1500)]
    pub pods: usize,
    /// How long to keep sending live ticks after the backfill (`0` = backfill only).
    #[arg(long, default_value = "30m", value_parser = parse_span)]
    pub duration: Duration,
    /// Time between two collections.
    #[arg(long, default_value = "60s", value_parser = parse_span)]
    pub interval: Duration,
    /// Cluster name (log groups `<prefix>/<cluster>/...`, the ClusterName dimension).
    #[arg(long, default_value = "sim")]
    pub cluster: String,
    /// Send this much history first, as fast as the server takes it (at most 14 days).
    #[arg(long, default_value = "0", value_parser = parse_span)]
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

/// `0`, or a positive duration (`90s`, `30m`, `1h`, `1.5h`); `d` for days.
fn parse_span(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if let Some(days) = s.strip_suffix('d') {
        let n: f64 = days
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        return Ok(Duration::from_secs_f64(n * 86_400.0));
    }
    super::agent::parse_duration(s)
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

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: SplitMix64, so the same seed gives the same cluster on any
// version of any crate.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) that depends only on its inputs (noise for one entity at one tick).
fn noise(seed: u64, entity: u64, tick: i64) -> f64 {
    let h = mix(seed ^ mix(entity.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ tick as u64));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const HEX: &[u8] = b"0123456789abcdef";
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// The cluster

struct Node {
    name: String,
    instance_id: String,
    instance_type: &'static str,
    cores: u32,
    mem_bytes: f64,
    fs_capacity: f64,
    fs_used: f64,
    pods: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    /// Memory grows towards the limit over a few hours.
    Leak,
    /// One container restarts every few ticks and waits in CrashLoopBackOff.
    CrashLoop,
}

struct Container {
    name: String,
    id: String,
    image: String,
    cpu_request_m: Option<f64>,
    cpu_limit_m: Option<f64>,
    mem_request: Option<f64>,
    mem_limit: Option<f64>,
    cpu_base_m: f64,
    mem_base: f64,
}

struct Pod {
    uid: String,
    namespace: String,
    full_name: String,
    /// Controller-normalized name (reference §2.6).
    pod_name: String,
    owner_kind: &'static str,
    owner_name: String,
    service: Option<String>,
    labels: Map<String, Value>,
    node: usize,
    containers: Vec<Container>,
    behaviour: Behaviour,
    /// Bytes/s received at the base of the wave.
    net_base: f64,
    /// Logs in JSON (`log_processed`) or plain text.
    json_logs: bool,
}

struct Service {
    namespace: String,
    name: String,
    pods: Vec<usize>,
}

struct Cluster {
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    namespaces: Vec<String>,
    services: Vec<Service>,
}

/// (namespace, name, containers, cpu m, memory MiB, has service, JSON logs).
type AppSpec = (
    &'static str,
    &'static str,
    &'static [&'static str],
    f64,
    f64,
    bool,
    bool,
);

const DEPLOYMENTS: &[AppSpec] = &[
    (
        "shop",
        "frontend",
        &["nginx", "frontend"],
        180.0,
        320.0,
        true,
        false,
    ),
    ("shop", "cart", &["cart"], 120.0, 256.0, true, true),
    ("shop", "checkout", &["checkout"], 90.0, 300.0, true, true),
    (
        "shop",
        "catalog",
        &["catalog", "envoy"],
        150.0,
        420.0,
        true,
        true,
    ),
    (
        "shop",
        "recommendations",
        &["recommendations"],
        300.0,
        900.0,
        true,
        true,
    ),
    (
        "payments",
        "payments-api",
        &["api", "envoy"],
        140.0,
        380.0,
        true,
        true,
    ),
    (
        "payments",
        "fraud-detector",
        &["model"],
        450.0,
        1500.0,
        true,
        true,
    ),
    ("payments", "ledger", &["ledger"], 80.0, 260.0, true, true),
    ("search", "search-api", &["api"], 220.0, 600.0, true, true),
    (
        "search",
        "indexer",
        &["indexer"],
        350.0,
        1200.0,
        false,
        true,
    ),
    ("default", "web", &["nginx"], 40.0, 64.0, true, false),
    (
        "monitoring",
        "grafana",
        &["grafana"],
        60.0,
        200.0,
        true,
        false,
    ),
    (
        "kube-system",
        "coredns",
        &["coredns"],
        30.0,
        70.0,
        true,
        false,
    ),
];

const STATEFUL_SETS: &[(&str, &str, usize, f64, f64)] = &[
    ("data", "postgres", 3, 400.0, 2048.0),
    ("data", "redis", 3, 120.0, 768.0),
    ("data", "kafka", 3, 500.0, 3072.0),
];

const DAEMON_SETS: &[(&str, &str, &str, f64, f64)] = &[
    ("kube-system", "kube-proxy", "kube-proxy", 10.0, 40.0),
    ("kube-system", "aws-node", "aws-node", 15.0, 60.0),
    ("kinsight", "kinsight-agent", "agent", 40.0, 90.0),
];

const INSTANCE_TYPES: &[(&str, u32, f64)] = &[
    ("m5.xlarge", 4, 16.0),
    ("m5.2xlarge", 8, 32.0),
    ("c5.4xlarge", 16, 32.0),
];

impl Cluster {
    fn generate(args: &SimulateArgs) -> Cluster {
        let mut rng = Rng::new(args.seed);
        let nodes: Vec<Node> = (0..args.nodes)
            .map(|i| {
                let (itype, cores, mem_gib) = INSTANCE_TYPES[rng.below(INSTANCE_TYPES.len())];
                let fs_capacity = 100.0 * GIB;
                Node {
                    name: format!("ip-10-0-{}-{}.sim.internal", 1 + i / 200, 10 + i % 200),
                    instance_id: format!("i-0{}", rng.chars(HEX, 16)),
                    instance_type: itype,
                    cores,
                    mem_bytes: mem_gib * GIB,
                    fs_capacity,
                    fs_used: fs_capacity * rng.range(0.2, 0.6),
                    pods: Vec::new(),
                }
            })
            .collect();
        let mut c = Cluster {
            nodes,
            pods: Vec::new(),
            namespaces: Vec::new(),
            services: Vec::new(),
        };

        // DaemonSets: one pod per node, as long as the pod budget lasts.
        for (ns, ds, ctr, cpu, mem) in DAEMON_SETS {
            if c.pods.len() + c.nodes.len() > args.pods {
                break;
            }
            for n in 0..c.nodes.len() {
                let full = format!("{ds}-{}", rng.chars(K8S_ALPHABET, 5));
                let containers = vec![c.container(&mut rng, ctr, ns, *cpu, *mem, true)];
                c.add_pod(
                    &mut rng,
                    ns,
                    full,
                    ds,
                    "DaemonSet",
                    ds,
                    None,
                    n,
                    containers,
                    false,
                );
            }
        }
        // StatefulSets keep their own pod names (web-0, web-1…).
        for (ns, sts, replicas, cpu, mem) in STATEFUL_SETS {
            if c.pods.len() + replicas > args.pods {
                break;
            }
            let svc = c.service(ns, sts);
            for r in 0..*replicas {
                let full = format!("{sts}-{r}");
                let containers = vec![c.container(&mut rng, sts, ns, *cpu, *mem, true)];
                let node = rng.below(c.nodes.len());
                c.add_pod(
                    &mut rng,
                    ns,
                    full.clone(),
                    &full,
                    "StatefulSet",
                    sts,
                    Some(svc),
                    node,
                    containers,
                    true,
                );
            }
        }
        // Deployments share what is left, by weight.
        let left = args.pods.saturating_sub(c.pods.len());
        let weights: Vec<f64> = DEPLOYMENTS.iter().map(|_| rng.range(0.5, 2.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut replicas: Vec<usize> = weights
            .iter()
            .map(|w| ((w / total) * left as f64).floor() as usize)
            .collect();
        let mut assigned: usize = replicas.iter().sum();
        let mut i = 0;
        let kinds = replicas.len();
        while assigned < left {
            replicas[i % kinds] += 1;
            assigned += 1;
            i += 1;
        }
        for (d, &(ns, name, ctrs, cpu, mem, has_svc, json_logs)) in DEPLOYMENTS.iter().enumerate() {
            if replicas[d] == 0 {
                continue;
            }
            let rs = format!("{name}-{}", rng.chars(K8S_ALPHABET, 10));
            let svc = has_svc.then(|| c.service(ns, name));
            for _ in 0..replicas[d] {
                let full = format!("{rs}-{}", rng.chars(K8S_ALPHABET, 5));
                let containers = ctrs
                    .iter()
                    .enumerate()
                    .map(|(k, ctr)| {
                        let share = if k == 0 { 1.0 } else { 0.25 };
                        c.container(
                            &mut rng,
                            ctr,
                            ns,
                            cpu * share,
                            mem * share,
                            k == 0 || d % 2 == 0,
                        )
                    })
                    .collect();
                let node = rng.below(c.nodes.len());
                c.add_pod(
                    &mut rng,
                    ns,
                    full,
                    name,
                    "Deployment",
                    name,
                    svc,
                    node,
                    containers,
                    json_logs,
                );
            }
        }
        // One leaking and one crash-looping pod, chosen among the Deployments' pods.
        let deploys: Vec<usize> = (0..c.pods.len())
            .filter(|&i| c.pods[i].owner_kind == "Deployment")
            .collect();
        if deploys.len() >= 2 {
            let leak = deploys[rng.below(deploys.len())];
            c.pods[leak].behaviour = Behaviour::Leak;
            let crash = deploys
                .iter()
                .copied()
                .find(|&i| i != leak && c.pods[i].namespace != c.pods[leak].namespace)
                .unwrap_or(deploys[0]);
            if crash != leak {
                c.pods[crash].behaviour = Behaviour::CrashLoop;
            }
        }
        let mut namespaces: Vec<String> = c.pods.iter().map(|p| p.namespace.clone()).collect();
        namespaces.sort();
        namespaces.dedup();
        c.namespaces = namespaces;
        c
    }

    fn service(&mut self, ns: &str, name: &str) -> usize {
        if let Some(i) = self
            .services
            .iter()
            .position(|s| s.namespace == ns && s.name == name)
        {
            return i;
        }
        self.services.push(Service {
            namespace: ns.to_string(),
            name: name.to_string(),
            pods: Vec::new(),
        });
        self.services.len() - 1
    }

    fn container(
        &self,
        rng: &mut Rng,
        name: &str,
        ns: &str,
        cpu_m: f64,
        mem_mib: f64,
        limits: bool,
    ) -> Container {
        let cpu_base_m = cpu_m * rng.range(0.5, 1.3);
        let mem_base = mem_mib * MIB * rng.range(0.6, 1.2);
        let cpu_req = (cpu_m / 50.0).ceil() * 50.0;
        let mem_req = (mem_mib / 64.0).ceil() * 64.0 * MIB;
        Container {
            name: name.to_string(),
            id: rng.chars(HEX, 64),
            image: format!(
                "registry.sim.internal/{ns}/{name}:1.{}.{}",
                rng.below(20),
                rng.below(10)
            ),
            cpu_request_m: Some(cpu_req),
            cpu_limit_m: limits.then_some(cpu_req * 2.0),
            mem_request: Some(mem_req),
            mem_limit: limits.then_some(mem_req * 2.0),
            cpu_base_m,
            mem_base,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_pod(
        &mut self,
        rng: &mut Rng,
        ns: &str,
        full_name: String,
        pod_name: &str,
        owner_kind: &'static str,
        owner_name: &str,
        service: Option<usize>,
        node: usize,
        containers: Vec<Container>,
        json_logs: bool,
    ) {
        let idx = self.pods.len();
        let mut labels = Map::new();
        labels.insert("app".into(), owner_name.into());
        if owner_kind == "Deployment" {
            labels.insert(
                "pod-template-hash".into(),
                rng.chars(K8S_ALPHABET, 10).into(),
            );
        }
        let uid = format!(
            "{}-{}-{}-{}-{}",
            rng.chars(HEX, 8),
            rng.chars(HEX, 4),
            rng.chars(HEX, 4),
            rng.chars(HEX, 4),
            rng.chars(HEX, 12)
        );
        let svc_name = service.map(|s| {
            self.services[s].pods.push(idx);
            self.services[s].name.clone()
        });
        let net_base = rng.range(5e3, 4e5) * if svc_name.is_some() { 3.0 } else { 1.0 };
        self.pods.push(Pod {
            uid,
            namespace: ns.to_string(),
            full_name,
            pod_name: pod_name.to_string(),
            owner_kind,
            owner_name: owner_name.to_string(),
            service: svc_name,
            labels,
            node,
            containers,
            behaviour: Behaviour::Normal,
            net_base,
            json_logs,
        });
        self.nodes[node].pods.push(idx);
    }
}

// ---------------------------------------------------------------------------------------------
// Events of one tick

/// A wave of roughly a day plus a faster one and per-tick noise: 1 ± 0.35.
fn load(seed: u64, entity: u64, t_ms: i64) -> f64 {
    let t = t_ms as f64 / 1000.0;
    let phase = (mix(entity ^ seed) % 1000) as f64 / 1000.0 * std::f64::consts::TAU;
    let day = (t / 86_400.0 * std::f64::consts::TAU + phase).sin();
    let fast = (t / 2_700.0 * std::f64::consts::TAU + phase * 3.0).sin();
    let n = noise(seed, entity, t_ms / 1000) - 0.5;
    (1.0 + 0.2 * day + 0.1 * fast + 0.1 * n).max(0.05)
}

fn percent(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b * 100.0)
}

struct Ev(Map<String, Value>);

impl Ev {
    fn new(event_type: &str, ts: i64, cluster: &str) -> Ev {
        let mut m = Map::new();
        m.insert(keys::TYPE.into(), event_type.into());
        m.insert(keys::VERSION.into(), "0".into());
        m.insert(keys::TIMESTAMP.into(), ts.to_string().into());
        m.insert(
            keys::SOURCES.into(),
            Value::Array(
                catalogue::sources_of(event_type)
                    .iter()
                    .map(|s| Value::from(*s))
                    .collect(),
            ),
        );
        m.insert(keys::CLUSTER_NAME.into(), cluster.into());
        Ev(m)
    }
    fn s(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.0.insert(k.to_string(), Value::String(v.into()));
        self
    }
    fn v(&mut self, k: &str, v: Value) -> &mut Self {
        self.0.insert(k.to_string(), v);
        self
    }
    fn f(&mut self, k: &str, v: f64) -> &mut Self {
        // Two decimals are plenty and keep events small.
        let r = (v * 100.0).round() / 100.0;
        if let Some(n) = Number::from_f64(r) {
            self.0.insert(k.to_string(), Value::Number(n));
        }
        self
    }
    fn opt(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        if let Some(v) = v {
            self.f(k, v);
        }
        self
    }
    fn u(&mut self, k: &str, v: u64) -> &mut Self {
        self.0.insert(k.to_string(), Value::Number(v.into()));
        self
    }
}

struct Generator<'a> {
    c: &'a Cluster,
    seed: u64,
    cluster: String,
    enhanced: bool,
    interval_ms: i64,
    log_lines: usize,
    perf_group: String,
    app_group: String,
    directives: DirectiveBuilder,
    /// Restart counters are per-interval deltas: nothing on the first tick (reference §2.3).
    first_tick: bool,
}

/// What one pod looks like at one tick.
struct PodSample {
    cpu_m: Vec<f64>,
    mem: Vec<f64>,
    running: Vec<bool>,
    restarts: Vec<u64>,
    rx: f64,
    tx: f64,
}

impl<'a> Generator<'a> {
    fn new(c: &'a Cluster, args: &SimulateArgs) -> Generator<'a> {
        let prefix = args.log_group_prefix.trim_end_matches('/');
        Generator {
            c,
            seed: args.seed,
            cluster: args.cluster.clone(),
            enhanced: args.enhanced,
            interval_ms: args.interval.as_millis() as i64,
            log_lines: args.log_lines,
            perf_group: format!("{prefix}/{}/performance", args.cluster),
            app_group: format!("{prefix}/{}/application", args.cluster),
            directives: DirectiveBuilder::new(args.enhanced),
            first_tick: true,
        }
    }

    fn pod_sample(&self, p: usize, t: i64) -> PodSample {
        let pod = &self.c.pods[p];
        let l = load(self.seed, p as u64, t);
        let tick = t / self.interval_ms;
        let mut s = PodSample {
            cpu_m: Vec::new(),
            mem: Vec::new(),
            running: Vec::new(),
            restarts: Vec::new(),
            rx: pod.net_base * l,
            tx: pod.net_base * l * 0.6,
        };
        for (k, ctr) in pod.containers.iter().enumerate() {
            let e = (p as u64) << 8 | k as u64;
            let mut cpu = ctr.cpu_base_m * load(self.seed, e, t);
            let mut mem = ctr.mem_base * (0.9 + 0.1 * load(self.seed, e ^ 0xff, t));
            let mut running = true;
            let mut restarts = 0;
            match pod.behaviour {
                Behaviour::Leak if k == 0 => {
                    // Up to ~97 % of the limit over a six-hour cycle, then "restarted".
                    let lim = ctr.mem_limit.unwrap_or(ctr.mem_base * 4.0);
                    let phase = (t.rem_euclid(6 * 3_600_000)) as f64 / (6.0 * 3_600_000.0);
                    mem = ctr.mem_base.min(lim * 0.4)
                        + (lim * 0.97 - ctr.mem_base.min(lim * 0.4)) * phase;
                }
                Behaviour::CrashLoop if k == 0 => {
                    // Restarts every 5 ticks; waits in back-off most of the time.
                    restarts = (tick / 5).max(0) as u64;
                    running = tick % 5 == 0;
                    if !running {
                        cpu = 0.0;
                        mem = 0.0;
                    }
                }
                _ => {}
            }
            s.cpu_m.push(cpu);
            s.mem.push(mem);
            s.running.push(running);
            s.restarts.push(restarts);
        }
        s
    }

    fn tick(&mut self, t: i64) -> Vec<LogEvent> {
        let mut perf: Vec<(String, Map<String, Value>)> = Vec::new();
        let samples: Vec<PodSample> = (0..self.c.pods.len())
            .map(|p| self.pod_sample(p, t))
            .collect();
        let prev: Option<Vec<PodSample>> = (!self.first_tick).then(|| {
            (0..self.c.pods.len())
                .map(|p| self.pod_sample(p, t - self.interval_ms))
                .collect()
        });
        for (n, node) in self.c.nodes.iter().enumerate() {
            self.node_events(n, node, t, &samples, &mut perf);
            for &p in &node.pods {
                self.pod_events(p, t, &samples[p], prev.as_ref().map(|v| &v[p]), &mut perf);
            }
        }
        self.cluster_events(t, &samples, &mut perf);
        self.first_tick = false;

        let mut out: Vec<LogEvent> = perf
            .into_iter()
            .map(|(stream, ev)| {
                let ev = self.finish(ev);
                LogEvent::new(&self.perf_group, stream, t, Value::Object(ev).to_string())
            })
            .collect();
        self.app_logs(t, &samples, &mut out);
        out
    }

    /// The EMF directive right after the envelope, as the agent's collector places it.
    fn finish(&mut self, ev: Map<String, Value>) -> Map<String, Value> {
        let directives = self.directives.build(&ev);
        if directives.is_empty() {
            return ev;
        }
        let value = serde_json::to_value(directives).unwrap_or(Value::Null);
        let mut ordered = Map::new();
        let mut placed = false;
        for (k, v) in ev {
            if !placed && v.is_number() {
                ordered.insert(keys::CLOUDWATCH_METRICS.to_string(), value.clone());
                placed = true;
            }
            ordered.insert(k, v);
        }
        if !placed {
            ordered.insert(keys::CLOUDWATCH_METRICS.to_string(), value);
        }
        ordered
    }

    fn node_identity(&self, ev: &mut Ev, node: &Node) {
        ev.s(keys::NODE_NAME, node.name.clone())
            .s(keys::INSTANCE_ID, node.instance_id.clone())
            .s(keys::INSTANCE_TYPE, node.instance_type);
    }

    fn node_events(
        &self,
        n: usize,
        node: &Node,
        t: i64,
        samples: &[PodSample],
        out: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let seed = self.seed;
        let entity = 1 << 40 | n as u64;
        let cpu_limit = node.cores as f64 * 1000.0;
        let mut cpu = 150.0 + 100.0 * load(seed, entity, t);
        let mut ws = 0.9 * GIB * load(seed, entity ^ 1, t).min(1.2);
        let (mut rx, mut tx) = (2e4, 1e4);
        let (mut cpu_req, mut mem_req) = (0.0, 0.0);
        let (mut running_pods, mut running_ctrs) = (0u64, 0u64);
        for &p in &node.pods {
            let s = &samples[p];
            cpu += s.cpu_m.iter().sum::<f64>() + 2.0;
            ws += s.mem.iter().sum::<f64>() + 1.0 * MIB;
            rx += s.rx;
            tx += s.tx;
            running_pods += 1;
            running_ctrs += s.running.iter().filter(|r| **r).count() as u64;
            for c in &self.c.pods[p].containers {
                cpu_req += c.cpu_request_m.unwrap_or(0.0);
                mem_req += c.mem_request.unwrap_or(0.0);
            }
        }
        let cpu = cpu.min(cpu_limit);
        let ws = ws.min(node.mem_bytes * 0.98);
        let cache = 0.8 * GIB + 0.1 * GIB * load(seed, entity ^ 2, t);
        let usage = (ws + cache).min(node.mem_bytes);

        let mut ev = Ev::new(types::NODE, t, &self.cluster);
        self.node_identity(&mut ev, node);
        ev.v(keys::KUBERNETES, json!({"host": node.name}));
        ev.f("node_cpu_usage_total", cpu)
            .f("node_cpu_usage_user", cpu * 0.7)
            .f("node_cpu_usage_system", cpu * 0.3)
            .opt("node_cpu_utilization", percent(cpu, cpu_limit))
            .f("node_cpu_limit", cpu_limit)
            .f("node_cpu_request", cpu_req.min(cpu_limit))
            .opt(
                "node_cpu_reserved_capacity",
                percent(cpu_req.min(cpu_limit), cpu_limit),
            );
        ev.u("node_memory_usage", usage as u64)
            .u("node_memory_cache", cache as u64)
            .u("node_memory_rss", (ws * 0.85) as u64)
            .u(
                "node_memory_max_usage",
                (usage * 1.05).min(node.mem_bytes) as u64,
            )
            .u("node_memory_swap", 0)
            .u("node_memory_failcnt", 0)
            .u("node_memory_mapped_file", (0.2 * GIB) as u64)
            .u("node_memory_working_set", ws as u64);
        let pgfault = 2000.0 * load(seed, entity ^ 3, t);
        ev.f("node_memory_pgfault", pgfault)
            .f("node_memory_pgmajfault", pgfault / 500.0)
            .f("node_memory_hierarchical_pgfault", pgfault)
            .f("node_memory_hierarchical_pgmajfault", pgfault / 500.0)
            .f("node_memory_failures_total", pgfault * 1.002)
            .opt("node_memory_utilization", percent(ws, node.mem_bytes))
            .u("node_memory_limit", node.mem_bytes as u64)
            .f("node_memory_request", mem_req.min(node.mem_bytes))
            .opt(
                "node_memory_reserved_capacity",
                percent(mem_req.min(node.mem_bytes), node.mem_bytes),
            );
        for (m, v) in [
            ("rx_bytes", rx),
            ("rx_packets", rx / 900.0),
            ("rx_dropped", 0.0),
            ("rx_errors", 0.0),
            ("tx_bytes", tx),
            ("tx_packets", tx / 700.0),
            ("tx_dropped", 0.0),
            ("tx_errors", 0.0),
        ] {
            ev.f(&format!("node_network_{m}"), v);
        }
        ev.f("node_network_total_bytes", rx + tx);
        ev.u("node_number_of_running_pods", running_pods)
            .u("node_number_of_running_containers", running_ctrs);
        if self.enhanced {
            ev.u("node_status_condition_ready", 1)
                .u("node_status_condition_disk_pressure", 0)
                .u("node_status_condition_memory_pressure", 0)
                .u("node_status_condition_pid_pressure", 0)
                .u("node_status_condition_network_unavailable", 0)
                .u("node_status_condition_unknown", 0)
                .u("node_status_capacity_pods", 110)
                .u("node_status_allocatable_pods", 110);
        }
        out.push((node.name.clone(), ev.0));

        let mut net = Ev::new(types::NODE_NET, t, &self.cluster);
        self.node_identity(&mut net, node);
        net.s(keys::INTERFACE, "eth0");
        for (m, v) in [
            ("rx_bytes", rx),
            ("rx_packets", rx / 900.0),
            ("rx_dropped", 0.0),
            ("rx_errors", 0.0),
            ("tx_bytes", tx),
            ("tx_packets", tx / 700.0),
            ("tx_dropped", 0.0),
            ("tx_errors", 0.0),
        ] {
            net.f(&format!("node_interface_network_{m}"), v);
        }
        net.f("node_interface_network_total_bytes", rx + tx);
        out.push((node.name.clone(), net.0));

        let mut io = Ev::new(types::NODE_DISK_IO, t, &self.cluster);
        self.node_identity(&mut io, node);
        io.s(keys::DEVICE, "nvme0n1");
        let (rb, wb) = (
            4e5 * load(seed, entity ^ 4, t),
            1.2e6 * load(seed, entity ^ 5, t),
        );
        io.f("node_diskio_io_service_bytes_read", rb)
            .f("node_diskio_io_service_bytes_write", wb)
            .f("node_diskio_io_service_bytes_total", rb + wb)
            .f("node_diskio_io_serviced_read", rb / 16384.0)
            .f("node_diskio_io_serviced_write", wb / 16384.0)
            .f("node_diskio_io_serviced_total", (rb + wb) / 16384.0);
        out.push((node.name.clone(), io.0));

        let mut fs = Ev::new(types::NODE_FS, t, &self.cluster);
        self.node_identity(&mut fs, node);
        fs.s(keys::DEVICE, "/dev/nvme0n1p1").s(keys::FSTYPE, "xfs");
        // Slowly filling: +1 % of the capacity per day.
        let used = (node.fs_used + node.fs_capacity * 0.01 * (t as f64 / 86_400_000.0).fract())
            .min(node.fs_capacity);
        fs.u("node_filesystem_capacity", node.fs_capacity as u64)
            .u("node_filesystem_usage", used as u64)
            .u(
                "node_filesystem_available",
                (node.fs_capacity - used) as u64,
            )
            .opt(
                "node_filesystem_utilization",
                percent(used, node.fs_capacity),
            )
            .u("node_filesystem_inodes", 52_428_800)
            .u(
                "node_filesystem_inodes_free",
                52_428_800 - (used / 65536.0) as u64,
            );
        out.push((node.name.clone(), fs.0));
    }

    fn kubernetes_block(&self, pod: &Pod, node: &Node, container: Option<&Container>) -> Value {
        let mut k = Map::new();
        if let Some(c) = container {
            k.insert("container_name".into(), c.name.clone().into());
            k.insert("containerd".into(), json!({"container_id": c.id}));
        }
        k.insert("host".into(), node.name.clone().into());
        k.insert("labels".into(), Value::Object(pod.labels.clone()));
        k.insert("namespace_name".into(), pod.namespace.clone().into());
        k.insert("pod_id".into(), pod.uid.clone().into());
        k.insert("pod_name".into(), pod.full_name.clone().into());
        k.insert(
            "pod_owners".into(),
            json!([{"owner_kind": pod.owner_kind, "owner_name": pod.owner_name}]),
        );
        if let Some(s) = &pod.service {
            k.insert("service_name".into(), s.clone().into());
        }
        Value::Object(k)
    }

    fn pod_identity(&self, ev: &mut Ev, pod: &Pod, node: &Node, container: Option<&Container>) {
        self.node_identity(ev, node);
        ev.s(keys::NAMESPACE, pod.namespace.clone())
            .s(keys::POD_NAME, pod.pod_name.clone());
        if self.enhanced {
            ev.s(keys::FULL_POD_NAME, pod.full_name.clone());
            if let Some(c) = container {
                ev.s(keys::CONTAINER_NAME, c.name.clone());
            }
        }
        if let Some(s) = &pod.service {
            ev.s(keys::SERVICE, s.clone());
        }
        ev.v(
            keys::KUBERNETES,
            self.kubernetes_block(pod, node, container),
        );
    }

    fn pod_events(
        &self,
        p: usize,
        t: i64,
        s: &PodSample,
        prev: Option<&PodSample>,
        out: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let pod = &self.c.pods[p];
        let node = &self.c.nodes[pod.node];
        let node_cpu = node.cores as f64 * 1000.0;
        let cpu: f64 = s.cpu_m.iter().sum::<f64>() + 2.0;
        let ws: f64 = s.mem.iter().sum::<f64>() + MIB;
        let all = |f: fn(&Container) -> Option<f64>| -> Option<f64> {
            pod.containers.iter().map(f).sum::<Option<f64>>()
        };
        let cpu_req: f64 = pod.containers.iter().filter_map(|c| c.cpu_request_m).sum();
        let mem_req: f64 = pod.containers.iter().filter_map(|c| c.mem_request).sum();

        let mut ev = Ev::new(types::POD, t, &self.cluster);
        self.pod_identity(&mut ev, pod, node, None);
        ev.s(keys::POD_STATUS, "Running");
        ev.f("pod_cpu_usage_total", cpu)
            .f("pod_cpu_usage_user", cpu * 0.75)
            .f("pod_cpu_usage_system", cpu * 0.25)
            .opt("pod_cpu_utilization", percent(cpu, node_cpu))
            .f("pod_cpu_request", cpu_req)
            .opt("pod_cpu_reserved_capacity", percent(cpu_req, node_cpu));
        if let Some(l) = all(|c| c.cpu_limit_m) {
            ev.f("pod_cpu_limit", l)
                .opt("pod_cpu_utilization_over_pod_limit", percent(cpu, l));
        }
        ev.u("pod_memory_usage", (ws * 1.2) as u64)
            .u("pod_memory_cache", (ws * 0.2) as u64)
            .u("pod_memory_rss", (ws * 0.9) as u64)
            .u("pod_memory_max_usage", (ws * 1.3) as u64)
            .u("pod_memory_swap", 0)
            .u("pod_memory_failcnt", 0)
            .u("pod_memory_mapped_file", (ws * 0.05) as u64)
            .u("pod_memory_working_set", ws as u64)
            .opt("pod_memory_utilization", percent(ws, node.mem_bytes))
            .f("pod_memory_request", mem_req)
            .opt(
                "pod_memory_reserved_capacity",
                percent(mem_req, node.mem_bytes),
            );
        if let Some(l) = all(|c| c.mem_limit) {
            ev.f("pod_memory_limit", l)
                .opt("pod_memory_utilization_over_pod_limit", percent(ws, l));
        }
        for (m, v) in [
            ("rx_bytes", s.rx),
            ("rx_packets", s.rx / 800.0),
            ("rx_dropped", 0.0),
            ("rx_errors", 0.0),
            ("tx_bytes", s.tx),
            ("tx_packets", s.tx / 600.0),
            ("tx_dropped", 0.0),
            ("tx_errors", 0.0),
        ] {
            ev.f(&format!("pod_network_{m}"), v);
        }
        ev.f("pod_network_total_bytes", s.rx + s.tx);
        let running = s.running.iter().filter(|r| **r).count() as u64;
        ev.u("pod_number_of_containers", pod.containers.len() as u64)
            .u("pod_number_of_running_containers", running);
        let restarts_now: u64 = s.restarts.iter().sum();
        if let Some(prev) = prev {
            let before: u64 = prev.restarts.iter().sum();
            ev.u(
                "pod_number_of_container_restarts",
                restarts_now.saturating_sub(before),
            );
        }
        if self.enhanced {
            let waiting = pod.containers.len() as u64 - running;
            ev.u("pod_status_running", 1)
                .u("pod_status_pending", 0)
                .u("pod_status_succeeded", 0)
                .u("pod_status_failed", 0)
                .u("pod_status_ready", (waiting == 0) as u64)
                .u("pod_status_scheduled", 1)
                .u("pod_status_unknown", 0)
                .u("pod_container_status_running", running)
                .u("pod_container_status_waiting", waiting)
                .u("pod_container_status_terminated", 0)
                .u(
                    "pod_container_status_waiting_reason_crash_loop_back_off",
                    if pod.behaviour == Behaviour::CrashLoop {
                        waiting
                    } else {
                        0
                    },
                )
                .u("pod_container_status_waiting_reason_image_pull_error", 0)
                .u("pod_container_status_waiting_reason_start_error", 0)
                .u(
                    "pod_container_status_waiting_reason_create_container_error",
                    0,
                )
                .u(
                    "pod_container_status_waiting_reason_create_container_config_error",
                    0,
                )
                .u("pod_container_status_terminated_reason_oom_killed", 0);
        }
        out.push((node.name.clone(), ev.0));

        let mut net = Ev::new(types::POD_NET, t, &self.cluster);
        self.pod_identity(&mut net, pod, node, None);
        net.s(keys::INTERFACE, "eth0");
        for (m, v) in [
            ("rx_bytes", s.rx),
            ("rx_packets", s.rx / 800.0),
            ("rx_dropped", 0.0),
            ("rx_errors", 0.0),
            ("tx_bytes", s.tx),
            ("tx_packets", s.tx / 600.0),
            ("tx_dropped", 0.0),
            ("tx_errors", 0.0),
        ] {
            net.f(&format!("pod_interface_network_{m}"), v);
        }
        net.f("pod_interface_network_total_bytes", s.rx + s.tx);
        out.push((node.name.clone(), net.0));

        for (k, c) in pod.containers.iter().enumerate() {
            let mut ev = Ev::new(types::CONTAINER, t, &self.cluster);
            self.pod_identity(&mut ev, pod, node, Some(c));
            if s.running[k] {
                ev.s(keys::CONTAINER_STATUS, "Running");
            } else {
                ev.s(keys::CONTAINER_STATUS, "Waiting")
                    .s(keys::CONTAINER_STATUS_REASON, "CrashLoopBackOff");
            }
            if pod.behaviour == Behaviour::CrashLoop && k == 0 {
                ev.s(keys::CONTAINER_LAST_TERMINATION_REASON, "Error");
            }
            let (cpu, ws) = (s.cpu_m[k], s.mem[k]);
            ev.f("container_cpu_usage_total", cpu)
                .f("container_cpu_usage_user", cpu * 0.75)
                .f("container_cpu_usage_system", cpu * 0.25)
                .opt("container_cpu_utilization", percent(cpu, node_cpu))
                .opt("container_cpu_limit", c.cpu_limit_m)
                .opt("container_cpu_request", c.cpu_request_m);
            if self.enhanced {
                ev.opt(
                    "container_cpu_utilization_over_container_limit",
                    c.cpu_limit_m.and_then(|l| percent(cpu, l)),
                );
            }
            ev.u("container_memory_usage", (ws * 1.2) as u64)
                .u("container_memory_cache", (ws * 0.2) as u64)
                .u("container_memory_rss", (ws * 0.9) as u64)
                .u("container_memory_max_usage", (ws * 1.3) as u64)
                .u("container_memory_swap", 0)
                .u("container_memory_failcnt", 0)
                .u("container_memory_mapped_file", (ws * 0.05) as u64)
                .u("container_memory_working_set", ws as u64)
                .opt("container_memory_utilization", percent(ws, node.mem_bytes))
                .opt("container_memory_limit", c.mem_limit)
                .opt("container_memory_request", c.mem_request);
            if self.enhanced {
                ev.opt(
                    "container_memory_utilization_over_container_limit",
                    c.mem_limit.and_then(|l| percent(ws, l)),
                );
            }
            if let Some(prev) = prev {
                ev.u(
                    "number_of_container_restarts",
                    s.restarts[k].saturating_sub(prev.restarts[k]),
                );
            }
            out.push((node.name.clone(), ev.0));
        }
    }

    /// The leader's events: Cluster, ClusterNamespace, ClusterService (in its node's stream).
    fn cluster_events(
        &self,
        t: i64,
        samples: &[PodSample],
        out: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let leader = &self.c.nodes[0].name;
        let mut ev = Ev::new(types::CLUSTER, t, &self.cluster);
        ev.s(keys::NODE_NAME, leader.clone());
        ev.u("cluster_node_count", self.c.nodes.len() as u64)
            .u("cluster_failed_node_count", 0);
        if self.enhanced {
            ev.u("cluster_number_of_running_pods", self.c.pods.len() as u64);
        }
        out.push((leader.clone(), ev.0));
        for ns in &self.c.namespaces {
            let n = self.c.pods.iter().filter(|p| &p.namespace == ns).count();
            let mut ev = Ev::new(types::CLUSTER_NAMESPACE, t, &self.cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::NAMESPACE, ns.clone());
            ev.v(keys::KUBERNETES, json!({"namespace_name": ns}));
            ev.u("namespace_number_of_running_pods", n as u64);
            out.push((leader.clone(), ev.0));
        }
        for svc in &self.c.services {
            // Ready endpoints: pods whose containers all run.
            let ready = svc
                .pods
                .iter()
                .filter(|&&p| samples[p].running.iter().all(|r| *r))
                .count();
            if ready == 0 {
                continue;
            }
            let mut ev = Ev::new(types::CLUSTER_SERVICE, t, &self.cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::SERVICE, svc.name.clone())
                .s(keys::NAMESPACE, svc.namespace.clone());
            ev.v(
                keys::KUBERNETES,
                json!({"namespace_name": svc.namespace, "service_name": svc.name}),
            );
            ev.u("service_number_of_running_pods", ready as u64);
            out.push((leader.clone(), ev.0));
        }
    }

    /// Application log lines as the agent's log pipeline writes them (CRI `time`, `stream`,
    /// `_p`, `log`, `log_processed` for JSON lines, `kubernetes`), in the streams Fluent Bit
    /// names (`<node>-application.var.log.containers.<pod>_<ns>_<container>-<id>.log`).
    fn app_logs(&self, t: i64, samples: &[PodSample], out: &mut Vec<LogEvent>) {
        if self.log_lines == 0 || self.c.pods.is_empty() {
            return;
        }
        const PATHS: &[&str] = &[
            "/api/v1/items",
            "/api/v1/cart",
            "/healthz",
            "/api/v1/checkout",
            "/api/v1/search",
            "/",
        ];
        let tick = t / self.interval_ms;
        let mut emit =
            |p: usize, k: usize, at: i64, stream: &str, log: String, processed: Option<Value>| {
                let pod = &self.c.pods[p];
                let node = &self.c.nodes[pod.node];
                let c = &pod.containers[k];
                let mut m = Map::new();
                let time = chrono::DateTime::from_timestamp_millis(at)
                    .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
                    .unwrap_or_default();
                m.insert("time".into(), time.into());
                m.insert("stream".into(), stream.into());
                m.insert("_p".into(), "F".into());
                m.insert("log".into(), log.into());
                if let Some(v) = processed {
                    m.insert("log_processed".into(), v);
                }
                let mut kb = Map::new();
                kb.insert("pod_name".into(), pod.full_name.clone().into());
                kb.insert("namespace_name".into(), pod.namespace.clone().into());
                kb.insert("pod_id".into(), pod.uid.clone().into());
                kb.insert("host".into(), node.name.clone().into());
                kb.insert("container_name".into(), c.name.clone().into());
                kb.insert("docker_id".into(), c.id.clone().into());
                kb.insert("container_image".into(), c.image.clone().into());
                kb.insert("labels".into(), Value::Object(pod.labels.clone()));
                m.insert("kubernetes".into(), Value::Object(kb));
                let stream_name = format!(
                    "{}-application.var.log.containers.{}_{}_{}-{}.log",
                    node.name, pod.full_name, pod.namespace, c.name, c.id
                );
                out.push(LogEvent::new(
                    &self.app_group,
                    stream_name,
                    at,
                    Value::Object(m).to_string(),
                ));
            };
        for i in 0..self.log_lines {
            let r = mix(self.seed ^ mix(tick as u64) ^ (i as u64).wrapping_mul(0x9E37_79B9));
            let p = (r % self.c.pods.len() as u64) as usize;
            let pod = &self.c.pods[p];
            if !samples[p].running[0] {
                continue;
            }
            let at = t + ((r >> 20) % self.interval_ms.max(1) as u64) as i64;
            let status = match (r >> 40) % 100 {
                0..=1 => 500,
                2..=5 => 404,
                _ => 200,
            };
            let path = PATHS[((r >> 8) % PATHS.len() as u64) as usize];
            let latency = 2 + (r >> 30) % 250;
            if pod.json_logs {
                let level = if status >= 500 {
                    "error"
                } else if status >= 400 {
                    "warn"
                } else {
                    "info"
                };
                let v = json!({"level": level, "msg": "request handled", "method": "GET", "path": path,
                               "status": status, "latency_ms": latency, "trace_id": format!("{:016x}", r)});
                emit(
                    p,
                    0,
                    at,
                    if status >= 500 { "stderr" } else { "stdout" },
                    v.to_string(),
                    Some(v),
                );
            } else {
                let line = format!(
                    "10.0.{}.{} - - [{}] \"GET {path} HTTP/1.1\" {status} {} \"-\" \"kube-probe/1.30\" {latency}ms",
                    (r >> 12) % 250,
                    (r >> 16) % 250,
                    chrono::DateTime::from_timestamp_millis(at)
                        .map(|d| d.format("%d/%b/%Y:%H:%M:%S +0000").to_string())
                        .unwrap_or_default(),
                    200 + (r >> 24) % 5000
                );
                emit(p, 0, at, "stdout", line, None);
            }
        }
        // The crash-looping pod says why, every time it starts.
        for (p, pod) in self.c.pods.iter().enumerate() {
            if pod.behaviour == Behaviour::CrashLoop && samples[p].running[0] {
                for (j, line) in [
                    "Starting worker pool (8 threads)",
                    "panic: runtime error: invalid memory address or nil pointer dereference",
                    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]",
                ]
                .iter()
                .enumerate()
                {
                    emit(
                        p,
                        0,
                        t + j as i64,
                        if j == 0 { "stdout" } else { "stderr" },
                        line.to_string(),
                        None,
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shipping

#[derive(Default)]
struct Totals {
    events: u64,
    bytes: u64,
    rejected: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.events += o.events;
        self.bytes += o.bytes;
        self.rejected += o.rejected;
    }
}

struct Shipper {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    cluster: String,
    seed: u64,
    concurrency: usize,
}

/// Below the 1 MiB batch limit (Σ message bytes + 26 per event, reference §6.2).
const BATCH_BYTES: usize = 900 * 1024;
const BATCH_EVENTS: usize = 10_000;

impl Shipper {
    fn new(args: &SimulateArgs) -> anyhow::Result<Shipper> {
        let base = args.server.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .with_context(|| format!("--server {:?} is not a URL", args.server))?;
        Ok(Shipper {
            base,
            token: std::env::var("KINSIGHT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            cluster: args.cluster.clone(),
            seed: args.seed,
            concurrency: args.concurrency.max(1),
        })
    }

    /// Sends one tick's events in batches, a few at a time; retries connection errors and 5xx
    /// with the same batch id (the server stores a batch once).
    async fn send(&self, tick_ms: i64, events: Vec<LogEvent>) -> anyhow::Result<Totals> {
        let mut batches: Vec<Vec<LogEvent>> = Vec::new();
        let mut cur: Vec<LogEvent> = Vec::new();
        let mut size = 0;
        for e in events {
            let s = e.billed_size_bytes();
            if !cur.is_empty() && (size + s > BATCH_BYTES || cur.len() >= BATCH_EVENTS) {
                batches.push(std::mem::take(&mut cur));
                size = 0;
            }
            size += s;
            cur.push(e);
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        let results: Vec<anyhow::Result<Totals>> =
            futures::stream::iter(batches.into_iter().enumerate())
                .map(|(i, b)| {
                    self.post(
                        format!("sim-{}-{}-{tick_ms}-{i}", self.cluster, self.seed),
                        b,
                    )
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut t = Totals::default();
        for r in results {
            t.add(&r?);
        }
        Ok(t)
    }

    async fn post(&self, batch_id: String, events: Vec<LogEvent>) -> anyhow::Result<Totals> {
        let mut body = String::new();
        let mut bytes = 0u64;
        for e in &events {
            bytes += e.message.len() as u64;
            body.push_str(&e.to_json_line());
            body.push('\n');
        }
        let payload = zstd::encode_all(body.as_bytes(), 1).context("compressing a batch")?;
        let url = format!("{}/v1/ingest", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .header("content-encoding", "zstd")
                .header("x-kinsight-batch-id", &batch_id)
                .body(payload.clone());
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let retry = match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    let text = res.text().await.unwrap_or_default();
                    if status.is_success() {
                        let v: Value = serde_json::from_str(&text).unwrap_or_default();
                        return Ok(Totals {
                            events: events.len() as u64,
                            bytes,
                            rejected: v["rejectedCount"].as_u64().unwrap_or(0),
                        });
                    }
                    if status.is_server_error() {
                        format!("HTTP {status}: {}", text.trim())
                    } else {
                        let hint = if status.as_u16() == 401 {
                            " (set KINSIGHT_TOKEN to the server's token)"
                        } else {
                            ""
                        };
                        bail!("POST {url}: HTTP {status}: {}{hint}", text.trim());
                    }
                }
                Err(e) => format!("{e}"),
            };
            if attempt >= 5 {
                bail!("POST {url}: giving up after {attempt} attempts: {retry}");
            }
            tracing::warn!("POST {url}: {retry}; retrying");
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
    }
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
