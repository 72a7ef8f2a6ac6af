//! Performance events: from raw samples (cgroups, /proc, kubelet, API server) to the
//! reference's events with their EMF directives (reference §1–2).
//!
//! A [`Collector`] is called once per collection interval with what the outside world
//! provided ([`Inputs`]); it keeps the previous counters to compute rates and restart deltas,
//! so nothing is emitted for a rate on the first sample. Anything that fails to read is logged
//! (once, then at most every five minutes while it keeps failing) and left out of that
//! interval; the rest is still produced.

pub mod accelerator;
mod cluster;
pub use cluster::replica_set_owners;
mod container_fs;
pub mod control_plane;
pub(crate) mod event;
mod node;
pub mod pods;
pub mod quantity;
pub mod rate;
mod workload;

use crate::apiserver::ClusterState;
use crate::cgroup::Cgroups;
use crate::host::{Host, NetCounters};
pub use event::Fields;
use event::{Ev, field_name};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kinsight_model::LogEvent;
use kinsight_model::catalogue::{self, keys};
use pods::{Owners, PodInfo};
use rate::RateCache;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the collector needs from the agent's configuration.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    pub cluster_name: String,
    pub node_name: String,
    pub enhanced: bool,
    pub prefer_full_pod_name: bool,
    pub disable_metric_extraction: bool,
}

/// `(namespace, pod name)` → the first Service whose ready Endpoints list the pod.
pub type PodServices = HashMap<(String, String), String>;

/// Builds the pod → Service map from Endpoints: ready addresses whose `targetRef` is a Pod
/// (reference §2.3 / §2.6: the first Service wins; sorted by name here so it is stable).
pub fn pod_services(endpoints: &[Endpoints]) -> PodServices {
    let mut sorted: Vec<&Endpoints> = endpoints.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let mut map = PodServices::new();
    for ep in sorted {
        let (Some(ns), Some(svc)) = (&ep.metadata.namespace, &ep.metadata.name) else {
            continue;
        };
        for subset in ep.subsets.as_deref().unwrap_or(&[]) {
            for addr in subset.addresses.as_deref().unwrap_or(&[]) {
                let Some(t) = &addr.target_ref else { continue };
                if t.kind.as_deref() != Some("Pod") {
                    continue;
                }
                let Some(pod) = &t.name else { continue };
                let pod_ns = t.namespace.clone().unwrap_or_else(|| ns.clone());
                map.entry((pod_ns, pod.clone()))
                    .or_insert_with(|| svc.clone());
            }
        }
    }
    map
}

/// What the rest of the agent provides for one collection.
#[derive(Default)]
pub struct Inputs<'a> {
    /// The kubelet's pods; `None` when the kubelet could not be reached. Shared, so that the
    /// collector can tell the same list from a new one and keep what it derived from it.
    pub pods: Option<&'a Arc<Vec<Pod>>>,
    /// The kubelet's `/stats/summary` (ContainerFS events); `None` without one.
    pub summary: Option<&'a crate::summary::Summary>,
    /// This node's Node object, when the API server answered.
    pub node: Option<&'a Node>,
    pub services: Option<&'a PodServices>,
    /// Cluster-wide state: only on the elected leader.
    pub cluster: Option<&'a ClusterState>,
    /// The API server's `/metrics`, the samples [`control_plane::wanted`] kept: only on the
    /// elected leader, when control-plane metrics are on and the scrape succeeded.
    pub control_plane: Option<&'a [crate::prometheus::Sample]>,
    pub owners: Option<&'a Owners>,
    /// GPU, EFA and device-assignment readings: `Some` exactly when accelerated compute
    /// metrics are on (`accelerated_compute_metrics`).
    pub accelerators: Option<&'a accelerator::AcceleratorInputs>,
}

struct PodInfoCache {
    pods: Arc<Vec<Pod>>,
    owners: Option<Owners>,
    infos: Arc<Vec<PodInfo>>,
}

/// Identity fields of node-local events.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub instance_id: String,
    pub instance_type: Option<String>,
    /// The node's availability zone (the `<az>` of `EBSVolumeId`).
    pub zone: Option<String>,
}

impl NodeIdentity {
    /// IMDS-free identity (reference §8, complaint 5): the instance id is the last segment of
    /// the Node's `spec.providerID` (`aws:///us-east-1a/i-0abc` → `i-0abc`), the instance type
    /// its well-known label; without a Node object the node name stands in for the id so that
    /// the `{NodeName, InstanceId, ClusterName}` dimension set still applies.
    pub fn from_node(node: Option<&Node>, node_name: &str) -> NodeIdentity {
        let provider = node
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.provider_id.clone());
        let instance_id = provider
            .as_deref()
            .and_then(|p| p.rsplit('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| node_name.to_string());
        let labels = node.and_then(|n| n.metadata.labels.as_ref());
        let instance_type = labels
            .and_then(|l| {
                l.get("node.kubernetes.io/instance-type")
                    .or_else(|| l.get("beta.kubernetes.io/instance-type"))
            })
            .cloned();
        // The well-known zone label, else the zone segment of an AWS providerID
        // (`aws:///<az>/<instance id>`).
        let zone = labels
            .and_then(|l| {
                l.get("topology.kubernetes.io/zone")
                    .or_else(|| l.get("failure-domain.beta.kubernetes.io/zone"))
            })
            .cloned()
            .or_else(|| {
                let rest = provider.as_deref()?.strip_prefix("aws://")?;
                let (zone, _) = rest.trim_start_matches('/').rsplit_once('/')?;
                (!zone.is_empty() && !zone.contains('/')).then(|| zone.to_string())
            })
            .filter(|z| !z.is_empty());
        NodeIdentity {
            instance_id,
            instance_type,
            zone,
        }
    }

    fn apply(&self, ev: &mut Ev, node_name: &str) {
        ev.name(keys::NODE_NAME, node_name)
            .name(keys::INSTANCE_ID, &self.instance_id);
        if let Some(t) = &self.instance_type {
            ev.name(keys::INSTANCE_TYPE, t);
        }
    }
}

/// Logs a failing item once, then at most every five minutes while it keeps failing.
#[derive(Default)]
pub struct Problems {
    last: HashMap<String, Instant>,
}

impl Problems {
    const REPEAT: Duration = Duration::from_secs(300);

    pub fn report(&mut self, key: &str, message: &str) {
        let now = Instant::now();
        match self.last.get(key) {
            Some(t) if now.duration_since(*t) < Self::REPEAT => {}
            _ => {
                tracing::warn!("{message} (skipped this interval)");
                self.last.insert(key.to_string(), now);
            }
        }
    }

    pub fn clear(&mut self, key: &str) {
        if self.last.remove(key).is_some() {
            tracing::info!("{key}: collecting again");
        }
    }
}

/// Turns samples into performance events.
pub struct Collector {
    settings: CollectorSettings,
    host: Host,
    cgroups: Option<Cgroups>,
    rates: RateCache,
    /// Σ restartCount per pod uid, and per (uid, container) — for per-interval deltas.
    pod_restarts: HashMap<String, u64>,
    container_restarts: HashMap<String, u64>,
    problems: Problems,
    cores: Option<u32>,
    /// MemTotal of the last collection: the denominator of pod/container memory utilization.
    mem_total: Option<f64>,
    directives: catalogue::DirectiveBuilder,
    /// The last listing of pod cgroups and when it was taken (see `pod_cgroups`).
    discovered: Vec<crate::cgroup::PodCgroup>,
    discovered_at: Option<u64>,
    /// A listed cgroup was gone when read: list again at the next collection.
    rediscover: bool,
    /// Per pod uid: the process whose network namespace the pod's network is read through.
    net_processes: HashMap<String, workload::NetProcess>,
    /// The pod list of the last collection, its owners and what was derived from them.
    pod_info_cache: Option<PodInfoCache>,
    /// `kubernetes` blocks per pod uid, for the pod details in `pod_info_cache`.
    kube_blocks: HashMap<String, Vec<workload::KubeBlock>>,
    /// This collection's host mount table (NodeFS, ContainerFS devices, persistent volumes).
    mounts: Vec<crate::host::MountInfo>,
    /// This collection's block devices: EBS volume identity (`EBSVolumeId`) by kernel name.
    devices: crate::ebs::BlockDevices,
    /// This collection's `ebs_volume_id` by kernel device name.
    pv_volumes: HashMap<String, String>,
    /// The previous `/metrics` scrape's counters and histograms (leader only).
    control_plane: control_plane::ControlPlaneState,
    /// GPU requests of this collection, EFA devices' holders (accelerated compute).
    accelerators: accelerator::AcceleratorState,
}

impl Collector {
    pub fn new(settings: CollectorSettings, host_root: &Path) -> Collector {
        let enhanced = settings.enhanced;
        let mut problems = Problems::default();
        let cgroups = match Cgroups::detect(host_root) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.report(
                    "cgroups",
                    &format!("{e}; pod and container metrics are unavailable"),
                );
                None
            }
        };
        Collector {
            settings,
            host: Host::new(host_root),
            cgroups,
            rates: RateCache::default(),
            pod_restarts: HashMap::new(),
            container_restarts: HashMap::new(),
            problems,
            cores: None,
            mem_total: None,
            directives: catalogue::DirectiveBuilder::new(enhanced),
            discovered: Vec::new(),
            discovered_at: None,
            rediscover: false,
            net_processes: HashMap::new(),
            pod_info_cache: None,
            kube_blocks: HashMap::new(),
            mounts: Vec::new(),
            devices: crate::ebs::BlockDevices::new(host_root, None),
            pv_volumes: HashMap::new(),
            control_plane: Default::default(),
            accelerators: Default::default(),
        }
    }

    pub fn settings(&self) -> &CollectorSettings {
        &self.settings
    }

    fn cores(&mut self) -> Option<u32> {
        if self.cores.is_none() {
            match self.host.num_cores() {
                Ok(n) => self.cores = Some(n),
                Err(e) => self.problems.report("cores", &e.to_string()),
            }
        }
        self.cores
    }

    /// The pods as [`PodInfo`]s. Derived again only for a new pod list or new owners: the
    /// agent asks the kubelet every 10 s at most, while it may collect every second.
    fn pod_infos(&mut self, inputs: &Inputs<'_>) -> Option<Arc<Vec<PodInfo>>> {
        let list = inputs.pods?;
        if let Some(c) = &self.pod_info_cache {
            if Arc::ptr_eq(&c.pods, list) && c.owners.as_ref() == inputs.owners {
                return Some(c.infos.clone());
            }
        }
        let default_owners = Owners::default();
        let owners = inputs.owners.unwrap_or(&default_owners);
        let infos: Arc<Vec<PodInfo>> = Arc::new(
            list.iter()
                .filter_map(|p| pods::pod_info(p, self.settings.prefer_full_pod_name, owners))
                .collect(),
        );
        self.kube_blocks.clear();
        self.pod_info_cache = Some(PodInfoCache {
            pods: list.clone(),
            owners: inputs.owners.cloned(),
            infos: infos.clone(),
        });
        Some(infos)
    }

    /// One collection at monotonic time `t_ns` and wall-clock `wall_ms`. Returns finished
    /// events (with their EMF directive) in the order: node-level, pods and containers,
    /// cluster-level, control plane.
    pub fn collect(&mut self, t_ns: u64, wall_ms: i64, inputs: &Inputs<'_>) -> Vec<PerfEvent> {
        self.rates.sweep(t_ns);
        if let Some(c) = &self.cgroups {
            // Closes the files of cgroups not read during the last collection — also while
            // the kubelet is unreachable and no pod cgroup is read at all.
            c.sweep();
        }
        let id = NodeIdentity::from_node(inputs.node, &self.settings.node_name);
        self.read_devices(&id);
        let mut out = Vec::new();
        // Node requests and every pod event need them (derived once per pod list).
        let pods = self.pod_infos(inputs);
        let pods = pods.as_deref().map(Vec::as_slice);
        self.prepare_accelerators(inputs);
        self.node_events(t_ns, wall_ms, inputs, pods, &id, &mut out);
        self.workload_events(t_ns, wall_ms, inputs, pods, &id, &mut out);
        self.container_fs_events(wall_ms, inputs, pods, &id, &mut out);
        self.accelerator_events(t_ns, wall_ms, inputs, pods, &id, &mut out);
        if let Some(cluster) = inputs.cluster {
            self.cluster_events(wall_ms, cluster, &mut out);
        }
        if let Some(samples) = inputs.control_plane {
            self.control_plane_events(wall_ms, samples, &mut out);
        }
        out.into_iter().filter_map(|e| self.finish(e)).collect()
    }

    /// The host's mount table and block devices as of this collection.
    fn read_devices(&mut self, id: &NodeIdentity) {
        self.mounts = match self.host.mount_table() {
            Ok(m) => {
                self.problems.clear("node-fs");
                m
            }
            Err(e) => {
                self.problems.report("node-fs", &e.to_string());
                Vec::new()
            }
        };
        self.devices = crate::ebs::BlockDevices::new(self.host.root(), id.zone.as_deref());
        self.pv_volumes = self.devices.persistent_volumes(&self.mounts);
    }

    /// `EBSVolumeId` and `ebs_volume_id` of an event's device, by its kernel name, when it is
    /// an EBS volume (reference §1.1; [`crate::ebs`]).
    fn device_volume_ids(&mut self, ev: &mut Ev, kernel_name: Option<&str>) {
        let Some(name) = kernel_name else { return };
        if let Some(v) = self.devices.host_volume_id(name) {
            ev.s(keys::HOST_EBS_VOLUME_ID, v);
        }
        if let Some(v) = self.pv_volumes.get(name) {
            ev.s(keys::EBS_VOLUME_ID, v.clone());
        }
    }

    /// Adds the EMF directive. Standard mode keeps events without declared metrics as plain
    /// log content; enhanced mode drops them (reference §1.2, §9 item 11).
    fn finish(&mut self, fields: Fields) -> Option<PerfEvent> {
        if self.settings.disable_metric_extraction {
            return Some(PerfEvent {
                fields,
                directive: None,
            });
        }
        let directive = self.directives.build_json(&fields);
        if directive.is_none() && self.settings.enhanced {
            return None;
        }
        Some(PerfEvent { fields, directive })
    }

    /// `<prefix>_memory_pgfault` etc.: rates of page faults; hierarchical values are the same
    /// counters (reference §2.2), failures_total the rate of their sum.
    fn fault_rates(
        &mut self,
        ev: &mut Ev,
        prefix: &str,
        key: &str,
        t_ns: u64,
        faults: Option<(u64, u64)>,
    ) {
        let faults = match faults {
            Some(f) => Some(f),
            None if prefix == "node" => match self.host.page_faults() {
                Ok(f) => Some(f),
                Err(e) => {
                    self.problems.report("node-vmstat", &e.to_string());
                    None
                }
            },
            None => None,
        };
        let Some((minor, major)) = faults else { return };
        let pf = self.rates.per_second((key, "pgfault"), minor, t_ns);
        let pmf = self.rates.per_second((key, "pgmajfault"), major, t_ns);
        ev.opt(field_name(&[prefix, "_memory_pgfault"]), pf)
            .opt(field_name(&[prefix, "_memory_pgmajfault"]), pmf);
        ev.opt(field_name(&[prefix, "_memory_hierarchical_pgfault"]), pf)
            .opt(
                field_name(&[prefix, "_memory_hierarchical_pgmajfault"]),
                pmf,
            );
        ev.opt(
            field_name(&[prefix, "_memory_failures_total"]),
            self.rates.per_second((key, "faults"), minor + major, t_ns),
        );
    }

    /// One `<level>_interface_network_*` event per interface (NodeNet / PodNet) cloned from
    /// `base`; returns the sums over interfaces keyed by measurement (`rx_bytes`, ...).
    fn interface_events(
        &mut self,
        t_ns: u64,
        key: &str,
        level: &str,
        base: &Fields,
        ifaces: &BTreeMap<String, NetCounters>,
        out: &mut Vec<Fields>,
    ) -> BTreeMap<&'static str, f64> {
        let mut sums: BTreeMap<&'static str, f64> = BTreeMap::new();
        for (name, c) in ifaces {
            let mut ev = Ev(base.clone());
            ev.s(keys::INTERFACE, name.clone());
            let mut any = false;
            let mut rx_tx = (None, None);
            for (m, v) in [
                ("rx_bytes", c.rx_bytes),
                ("rx_packets", c.rx_packets),
                ("rx_dropped", c.rx_dropped),
                ("rx_errors", c.rx_errors),
                ("tx_bytes", c.tx_bytes),
                ("tx_packets", c.tx_packets),
                ("tx_dropped", c.tx_dropped),
                ("tx_errors", c.tx_errors),
            ] {
                if let Some(r) = self.rates.per_second((key, "net", name, m), v, t_ns) {
                    ev.f(field_name(&[level, "_interface_network_", m]), r);
                    *sums.entry(m).or_default() += r;
                    any = true;
                    match m {
                        "rx_bytes" => rx_tx.0 = Some(r),
                        "tx_bytes" => rx_tx.1 = Some(r),
                        _ => {}
                    }
                }
            }
            if let (Some(rx), Some(tx)) = rx_tx {
                ev.f(
                    field_name(&[level, "_interface_network_total_bytes"]),
                    rx + tx,
                );
            }
            if any {
                out.push(ev.into_fields());
            }
        }
        if let (Some(rx), Some(tx)) = (sums.get("rx_bytes").copied(), sums.get("tx_bytes").copied())
        {
            sums.insert("total_bytes", rx + tx);
        }
        sums
    }
}

/// A finished performance event: its fields, and the EMF directive (`CloudWatchMetrics`) as
/// JSON text — built once per event shape and shared, not copied into every event.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfEvent {
    pub fields: Fields,
    pub directive: Option<std::sync::Arc<str>>,
}

impl PerfEvent {
    /// The event as CloudWatch receives it: the fields, then `CloudWatchMetrics` (key order
    /// carries no meaning, reference §1.1).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(2048);
        self.fields.write_json(&mut out);
        if let Some(d) = &self.directive {
            out.pop(); // the object's closing brace
            if !self.fields.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"");
            out.extend_from_slice(keys::CLOUDWATCH_METRICS.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(d.as_bytes());
            out.push(b'}');
        }
        // SAFETY: JSON written from UTF-8 strings and a directive serialised by serde_json.
        unsafe { String::from_utf8_unchecked(out) }
    }

    /// The whole document as one map, directive included (for tests and inspection).
    pub fn document(&self) -> Map<String, Value> {
        let mut m = self.fields.to_map();
        if let Some(d) = &self.directive {
            m.insert(
                keys::CLOUDWATCH_METRICS.to_string(),
                serde_json::from_str(d).unwrap_or(Value::Null),
            );
        }
        m
    }
}

/// Wraps finished events into log events of the performance group. Events without a
/// `NodeName` (pending pods) go to the stream `pending` (reference §1.3).
pub fn to_log_events(events: &[PerfEvent], group: &str, wall_ms: i64) -> Vec<LogEvent> {
    events
        .iter()
        .map(|ev| {
            let stream = ev
                .fields
                .get(keys::NODE_NAME)
                .and_then(Value::as_str)
                .unwrap_or("pending")
                .to_string();
            let ts = ev
                .fields
                .get(keys::TIMESTAMP)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(wall_ms);
            LogEvent::new(group, stream, ts, ev.to_json())
        })
        .collect()
}
