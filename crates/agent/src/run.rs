//! The agent's main loop: every `metrics_collection_interval` it gathers the kubelet's pods,
//! this node's Node object and (on the leader) the cluster state, lets the [`Collector`] turn
//! samples into performance events, and hands them to the sink. Log collection runs beside it.
//!
//! Unreachable kubelet or API server: one clear log line, their items are skipped, node
//! metrics still flow. `--once` takes two samples `sample_interval` apart and emits the second.

use crate::apiserver::{ApiServer, ClusterState, LEADER_LEASE_NAME, LEASE_RETRY};
use crate::kubelet::KubeletClient;
use crate::perf::pods::Owners;
use crate::perf::{
    Collector, CollectorSettings, Inputs, PodServices, Problems, pod_services, to_log_events,
};
use crate::sink::Sink;
use k8s_openapi::api::core::v1::{Node, Pod};
use kinsight_model::config::AgentConfig;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

mod accelerators;

/// How the agent runs, beyond its config.
#[derive(Clone)]
pub struct RunOptions {
    /// Take two samples and exit.
    pub once: bool,
    /// Distance between the two samples of `--once`.
    pub sample_interval: Duration,
    /// Where the latest collection is published in Prometheus text (for `--metrics-listen`).
    pub prometheus: Option<Arc<RwLock<String>>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            once: false,
            sample_interval: Duration::from_secs(1),
            prometheus: None,
        }
    }
}

/// How long the leader waits for the API server's `/metrics` (it streams tens of megabytes on
/// a large cluster; usually well under a second).
pub const CONTROL_PLANE_SCRAPE_TIMEOUT: Duration = Duration::from_secs(20);

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The metrics side of the agent: sources and collector state between ticks.
pub struct MetricsLoop {
    cfg: AgentConfig,
    collector: Collector,
    kubelet: Option<KubeletClient>,
    api: Option<ApiServer>,
    is_leader: watch::Receiver<bool>,
    /// The pod list, shared with the log enrichment ([`Self::pod_feed`]): parsed once.
    pods: Option<Arc<Vec<Pod>>>,
    pods_at: Option<Instant>,
    /// The kubelet's `/stats/summary` (ContainerFS), asked on the pods' cadence.
    summary: Option<crate::summary::Summary>,
    summary_at: Option<Instant>,
    node: Option<Node>,
    node_at: Option<Instant>,
    services: Option<PodServices>,
    services_at: Option<Instant>,
    /// Ended container instances and what is known of them (ContainerRestart events).
    restarts: crate::restarts::RestartForensics,
    problems: Problems,
    started: Instant,
    /// Every pod list seen (kubelet or container runtime), for log enrichment.
    pod_tx: watch::Sender<Arc<Vec<Pod>>>,
    /// Containers of a local podman/docker when there is no kubelet.
    runtime_containers: Vec<crate::runtime::RuntimeContainer>,
    /// GPUs (DCGM exporter), EFA devices and the kubelet's device assignments.
    accelerators: accelerators::AcceleratorSources,
}

impl MetricsLoop {
    /// Builds the sources from the config; logs once what is unavailable.
    pub fn new(cfg: &AgentConfig) -> MetricsLoop {
        let k = &cfg.kinsight;
        let mut problems = Problems::default();
        let kubelet = match &k.kubelet_url {
            None => {
                tracing::warn!(
                    "no kubelet to ask (HOST_IP is not set and kinsight.kubelet_url is not configured): pods and containers come from a local podman or docker when there is one; node metrics continue"
                );
                None
            }
            Some(url) => match KubeletClient::new(
                url,
                Some(k.kubelet_token_file.clone()),
                Some(k.kubelet_ca_file.clone()),
                k.kubelet_insecure_skip_verify,
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.report("kubelet", &e.to_string());
                    None
                }
            },
        };
        let api = match &k.api_server_url {
            None => {
                tracing::info!(
                    "no API server configured (not in a cluster): cluster-level events and Service tagging are off"
                );
                None
            }
            Some(url) => match ApiServer::connect(
                url,
                Some(k.kubelet_token_file.clone()),
                Some(k.kubelet_ca_file.clone()),
            ) {
                Ok(a) => Some(a),
                Err(e) => {
                    problems.report("apiserver", &e.to_string());
                    None
                }
            },
        };
        let (_tx, is_leader) = watch::channel(false);
        let settings = CollectorSettings {
            cluster_name: cfg.cluster_name.clone(),
            node_name: cfg.host_name.clone(),
            enhanced: cfg.enhanced_container_insights,
            prefer_full_pod_name: cfg.prefer_full_pod_name,
            disable_metric_extraction: cfg.disable_metric_extraction,
        };
        MetricsLoop {
            cfg: cfg.clone(),
            collector: Collector::new(settings, &k.host_root),
            kubelet,
            api,
            is_leader,
            pods: None,
            pods_at: None,
            summary: None,
            summary_at: None,
            node: None,
            node_at: None,
            services: None,
            services_at: None,
            restarts: crate::restarts::RestartForensics::new(cfg, now_ms()),
            problems,
            started: Instant::now(),
            pod_tx: watch::channel(Arc::new(Vec::new())).0,
            runtime_containers: Vec::new(),
            accelerators: accelerators::AcceleratorSources::new(cfg),
        }
    }

    /// Whether the sink took the performance events of the collections since the last call
    /// (the ContainerRestart events among them are then remembered as reported in the state
    /// directory; if not, they are emitted again at the next collection).
    pub fn delivered(&mut self, ok: bool) {
        self.restarts.delivered(ok);
    }

    /// The next collection asks the kubelet for its pods whatever the cadence (tests, and
    /// callers that know the pods changed).
    pub fn ask_for_pods(&mut self) {
        self.pods_at = None;
    }

    /// Whether this agent is the elected leader (as of the last election round).
    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }

    /// Pod lists as they arrive (kubelet `/pods`, or runtime containers presented as pods).
    pub fn pod_feed(&self) -> watch::Receiver<Arc<Vec<Pod>>> {
        self.pod_tx.subscribe()
    }

    /// Containers of a local podman/docker found at the last refresh (no kubelet).
    pub fn runtime_containers(&self) -> &[crate::runtime::RuntimeContainer] {
        &self.runtime_containers
    }

    /// Starts leader election (when an API server is configured); the receiver follows the
    /// election's result.
    pub fn spawn_leader_election(&mut self, shutdown: watch::Receiver<bool>) {
        let Some(api) = self.api.clone() else { return };
        let (tx, rx) = watch::channel(false);
        self.is_leader = rx;
        let ns = self.cfg.k8s_namespace.clone();
        let me = self.cfg.host_name.clone();
        tokio::spawn(leader_election(api, ns, me, tx, shutdown));
    }

    fn due(at: Option<Instant>, every: Duration) -> bool {
        at.is_none_or(|t| t.elapsed() >= every)
    }

    async fn refresh(&mut self) -> Option<ClusterState> {
        let interval = Duration::from_secs(self.cfg.metrics_collection_interval_s);
        if let Some(k) = &self.kubelet {
            if Self::due(self.pods_at, interval.max(Duration::from_secs(10))) || self.pods.is_none()
            {
                match k.pods().await {
                    Ok(p) => {
                        self.problems.clear("kubelet");
                        let p = Arc::new(p);
                        self.pod_tx.send_replace(p.clone());
                        self.pods = Some(p);
                        self.pods_at = Some(Instant::now());
                    }
                    Err(
                        e @ (crate::kubelet::KubeletError::Status {
                            status: 401 | 403, ..
                        }
                        | crate::kubelet::KubeletError::Untrusted { .. }),
                    ) if self.api.is_some() => {
                        // Older kubelets authorize /pods only with nodes/proxy, and a kubelet
                        // with a self-signed certificate cannot be verified: ask the API server
                        // (verified against the cluster CA) for this node's pods instead.
                        let why = match &e {
                            crate::kubelet::KubeletError::Untrusted { .. } => e.to_string(),
                            _ => {
                                "the kubelet refused /pods (it predates the nodes/pods permission)"
                                    .to_string()
                            }
                        };
                        let api = self.api.clone().expect("checked");
                        match api.node_pods(&self.cfg.host_name).await {
                            Ok(p) => {
                                self.problems.report("kubelet-fallback", &format!("{why}; reading this node's pods from the API server instead"));
                                let p = Arc::new(p);
                                self.pod_tx.send_replace(p.clone());
                                self.pods = Some(p);
                                self.pods_at = Some(Instant::now());
                            }
                            Err(api_err) => {
                                self.problems.report("kubelet", &format!("{why}, and the API server failed too ({api_err}); pod and container metrics"));
                                self.pods = None;
                            }
                        }
                    }
                    Err(e) => {
                        self.problems
                            .report("kubelet", &format!("{e}; pod and container metrics"));
                        self.pods = None;
                    }
                }
            }
            // The containers' filesystems (ContainerFS), on the same cadence. There is no API
            // server fallback: it would need nodes/proxy. Without pods (the kubelet is not
            // reachable, already reported once) there is nothing to attribute them to.
            if self.pods.is_some()
                && Self::due(self.summary_at, interval.max(Duration::from_secs(10)))
            {
                self.summary_at = Some(Instant::now());
                match k.stats_summary().await {
                    Ok(s) => {
                        self.problems.clear("kubelet-summary");
                        self.summary = Some(s);
                    }
                    Err(e) => {
                        let hint = match &e {
                            crate::kubelet::KubeletError::Status {
                                status: 401 | 403, ..
                            } => " (the agent needs `get` on nodes/stats)",
                            _ => "",
                        };
                        self.problems
                            .report("kubelet-summary", &format!("{e}{hint}; ContainerFS events"));
                        self.summary = None;
                    }
                }
            }
        } else if Self::due(self.pods_at, Duration::from_secs(10)) {
            // No kubelet: the containers of a local podman or docker stand in for pods.
            let (containers, errors) = crate::runtime::discover(&self.cfg.kinsight.host_root).await;
            for e in errors {
                self.problems.report("runtime", &e.to_string());
            }
            let pods = crate::runtime::to_pods(&containers, &self.cfg.host_name);
            self.pods_at = Some(Instant::now());
            if !pods.is_empty() || self.pods.is_some() {
                let pods = Arc::new(pods);
                self.pod_tx.send_replace(pods.clone());
                self.pods = Some(pods);
            }
            self.runtime_containers = containers;
        }
        let api = self.api.clone()?;
        if Self::due(self.node_at, Duration::from_secs(60)) {
            match api.node(&self.cfg.host_name).await {
                Ok(n) => {
                    self.problems.clear("apiserver-node");
                    self.node = Some(n);
                    self.node_at = Some(Instant::now());
                }
                Err(e) => self.problems.report(
                    "apiserver-node",
                    &format!("{e}; node identity falls back to the node name"),
                ),
            }
        }
        if self.cfg.tag_service && Self::due(self.services_at, Duration::from_secs(30)) {
            match api.endpoints().await {
                Ok(eps) => {
                    self.problems.clear("apiserver-endpoints");
                    self.services = Some(pod_services(&eps));
                    self.services_at = Some(Instant::now());
                }
                Err(e) => self
                    .problems
                    .report("apiserver-endpoints", &format!("{e}; Service tagging")),
            }
        }
        if !*self.is_leader.borrow() {
            return None;
        }
        match api
            .cluster_state(self.cfg.enhanced_container_insights)
            .await
        {
            Ok(mut s) => {
                self.problems.clear("apiserver-cluster");
                if self.cfg.enhanced_container_insights {
                    // A failing Ingress list (no RBAC for it yet, an old cluster) costs only
                    // namespace_ingress_count.
                    match api.ingresses().await {
                        Ok(i) => {
                            self.problems.clear("apiserver-ingresses");
                            s.ingresses = Some(i);
                        }
                        Err(e) => self.problems.report(
                            "apiserver-ingresses",
                            &format!("{e}; namespace_ingress_count"),
                        ),
                    }
                }
                Some(s)
            }
            Err(e) => {
                self.problems
                    .report("apiserver-cluster", &format!("{e}; cluster-level events"));
                None
            }
        }
    }

    /// The leader's reading of the API server's `/metrics` for the ControlPlane events, when
    /// they are on (`enable_control_plane_metrics`, default: enhanced mode). A failed scrape
    /// is logged (then at most every five minutes while it lasts), costs only this interval's
    /// control-plane events, and is tried again next interval. An agent that is not the
    /// leader forgets the last scrape, so a later leadership does not report the requests of
    /// all the time in between as one interval's.
    async fn scrape_control_plane(&mut self) -> Option<Vec<crate::prometheus::Sample>> {
        let api = match &self.api {
            Some(api) if self.cfg.control_plane_metrics && *self.is_leader.borrow() => api.clone(),
            _ => {
                self.collector.forget_control_plane();
                return None;
            }
        };
        let scrape = api.metrics(crate::perf::control_plane::wanted);
        match tokio::time::timeout(CONTROL_PLANE_SCRAPE_TIMEOUT, scrape).await {
            Ok(Ok(samples)) => {
                self.problems.clear("apiserver-metrics");
                Some(samples)
            }
            Ok(Err(e)) => {
                self.problems
                    .report("apiserver-metrics", &format!("{e}; control-plane metrics"));
                None
            }
            Err(_) => {
                self.problems.report(
                    "apiserver-metrics",
                    &format!(
                        "API server /metrics: no complete answer within {CONTROL_PLANE_SCRAPE_TIMEOUT:?}; control-plane metrics"
                    ),
                );
                None
            }
        }
    }

    /// One collection: returns the performance group's log events.
    pub async fn tick(&mut self) -> (Vec<kinsight_model::LogEvent>, Vec<crate::perf::PerfEvent>) {
        let cluster = self.refresh().await;
        let control_plane = self.scrape_control_plane().await;
        let accelerators = self.accelerators.read(self.node.as_ref()).await;
        let owners = cluster.as_ref().map(|c| Owners {
            replica_set_to_deployment: crate::perf::replica_set_owners(c),
        });
        let inputs = Inputs {
            pods: self.pods.as_ref(),
            summary: self.summary.as_ref(),
            node: self.node.as_ref(),
            services: self.services.as_ref(),
            cluster: cluster.as_ref(),
            control_plane: control_plane.as_deref(),
            owners: owners.as_ref(),
            accelerators: accelerators.as_ref(),
        };
        let t_ns = self.started.elapsed().as_nanos() as u64;
        let wall = now_ms();
        let mut events = self.collector.collect(t_ns, wall, &inputs);
        let restarts = self
            .restarts
            .collect(wall, self.pods.as_ref(), owners.as_ref(), &events);
        events.extend(restarts);
        let group = self.cfg.log_groups().performance();
        (to_log_events(&events, &group, wall), events)
    }
}

/// Runs the metrics loop until `shutdown` turns true (or after one collection with `once`).
pub async fn run_metrics(
    cfg: &AgentConfig,
    sink: Arc<dyn Sink>,
    opts: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), crate::sink::SinkError> {
    crate::pseudofs::raise_open_file_limit();
    run_loop(MetricsLoop::new(cfg), cfg, sink, opts, shutdown).await
}

/// The whole agent: metrics and (unless `once` or disabled) logs, until `shutdown`.
/// Makes the state directory the agent's alone (mode 0700), creating it if needed. It holds
/// the shipping spool — copies of host logs such as auth.log — and, in a DaemonSet, it is the
/// one writable host path: nobody else on the node should read it, nor run what a compromised
/// agent could leave there (issue 15, item 8).
pub fn restrict_state_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub async fn run_agent(
    cfg: &AgentConfig,
    sink: Arc<dyn Sink>,
    opts: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), crate::sink::SinkError> {
    // Cgroup files stay open between collections, and the tailer holds the files it follows.
    crate::pseudofs::raise_open_file_limit();
    if let Err(e) = restrict_state_dir(&cfg.kinsight.state_dir) {
        tracing::warn!(path = %cfg.kinsight.state_dir.display(), error = %e, "cannot make the state directory private");
    }
    let ml = MetricsLoop::new(cfg);
    let logs = if cfg.kinsight.logs.enabled && !opts.once {
        let collector = crate::logs::LogCollector::new(cfg, sink.clone(), Some(ml.pod_feed()));
        let rx = shutdown.clone();
        Some(tokio::spawn(async move {
            if let Err(e) = collector.run(rx).await {
                tracing::error!("log collection stopped: {e}");
            }
        }))
    } else {
        None
    };
    let result = run_loop(ml, cfg, sink, opts, shutdown).await;
    if let Some(l) = logs {
        let _ = l.await;
    }
    result
}

async fn run_loop(
    mut ml: MetricsLoop,
    cfg: &AgentConfig,
    sink: Arc<dyn Sink>,
    opts: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), crate::sink::SinkError> {
    ml.spawn_leader_election(shutdown.clone());
    if opts.once {
        ml.tick().await;
        // The first collection is not sent: what it found ended is emitted by the second. Not
        // remembered as reported either: one collection for a look does not speak for the
        // agent that runs on the node.
        ml.delivered(false);
        tokio::time::sleep(opts.sample_interval).await;
        let (events, raw) = ml.tick().await;
        publish(&opts, &raw);
        return sink.send(&events).await;
    }
    let mut interval =
        tokio::time::interval(Duration::from_secs(cfg.metrics_collection_interval_s));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        let (events, raw) = ml.tick().await;
        publish(&opts, &raw);
        let offered = sink.offer(&events).await;
        if let Err(e) = &offered {
            // Metric samples cannot be re-read later; the server sink buffers on disk, other
            // sinks failing is worth one line per interval.
            tracing::error!("performance events of this interval were not delivered: {e}");
        }
        ml.delivered(offered.is_ok());
    }
}

fn publish(opts: &RunOptions, raw: &[crate::perf::PerfEvent]) {
    if let Some(p) = &opts.prometheus {
        // A ContainerRestart event happens once: it is not a sample of a series.
        let maps: Vec<_> = raw
            .iter()
            .filter(|e| {
                e.fields.get(kinsight_model::catalogue::keys::TYPE)
                    != Some(&serde_json::Value::from(
                        kinsight_model::catalogue::restart::TYPE,
                    ))
            })
            .map(|e| e.fields.to_map())
            .collect();
        let text = crate::prometheus::render(&maps);
        if let Ok(mut g) = p.write() {
            *g = text;
        }
    }
}

/// Lease-based leader election loop (reference §4.4): try every 5 s; a failure to reach the
/// API server counts as not being leader.
async fn leader_election(
    api: ApiServer,
    ns: String,
    me: String,
    tx: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut problems = Problems::default();
    loop {
        let leader = match api
            .try_acquire_lease(&ns, LEADER_LEASE_NAME, &me, now_ms())
            .await
        {
            Ok(l) => {
                problems.clear("lease");
                l
            }
            Err(e) => {
                problems.report("lease", &format!("{e}; not acting as leader"));
                false
            }
        };
        if *tx.borrow() != leader {
            tracing::info!(
                leader,
                "leader election: {}",
                if leader {
                    "this agent now emits cluster-level events"
                } else {
                    "another agent is the leader"
                }
            );
            let _ = tx.send(leader);
        }
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RETRY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("var/lib/kinsight-agent");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        restrict_state_dir(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let fresh = d.path().join("new/state");
        restrict_state_dir(&fresh).unwrap();
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
