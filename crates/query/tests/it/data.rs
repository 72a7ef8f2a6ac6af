//! Deterministic generators of realistic events, shared by the tests and the benchmark
//! (`benches/queries.rs` includes this file):
//!
//! - performance events as the agent writes them to `<prefix>/<cluster>/performance`
//!   (reference §1: `Type` Node, NodeFS, NodeNet, NodeDiskIO, Pod, PodNet, Container,
//!   ContainerFS, Cluster, ClusterNamespace, ClusterService; stream = node name), one tick per
//!   minute;
//! - application log records as Fluent Bit ships them (reference §3.3: `log`, `stream`,
//!   `time`, `kubernetes{…}`, `log_processed` for JSON payloads);
//! - dataplane records (reference §3.2: `hostname`, `systemd_unit`, `message`, kubelet's
//!   klog lines).
//!
//! Everything comes from a seeded splitmix64, so the same arguments give the same events.

#![allow(dead_code)]

use kinsight_store::LogEvent;

/// 2024-05-01T12:00:00Z: "now" of the tests' manual clock.
pub const NOW_MS: i64 = 1_714_564_800_000;
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;

pub const PERFORMANCE: &str = "/kinsight/demo/performance";
pub const APPLICATION: &str = "/kinsight/demo/application";
pub const DATAPLANE: &str = "/kinsight/demo/dataplane";

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `[lo, hi)`, rounded to 2 decimals (what the agent's floats look like
    /// after JSON round trips is irrelevant; short numbers keep the data readable).
    pub fn float(&mut self, lo: f64, hi: f64) -> f64 {
        let x = lo + (hi - lo) * (self.below(1_000_000) as f64 / 1_000_000.0);
        (x * 100.0).round() / 100.0
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const NAMESPACES: [&str; 4] = ["prod", "staging", "kube-system", "monitoring"];
const WORKLOADS: [(&str, &str, &str); 8] = [
    // (workload, namespace, service)
    ("api", "prod", "api"),
    ("web", "prod", "web"),
    ("worker", "prod", ""),
    ("api", "staging", "api"),
    ("coredns", "kube-system", "kube-dns"),
    ("aws-node", "kube-system", ""),
    ("prometheus", "monitoring", "prometheus"),
    ("grafana", "monitoring", "grafana"),
];
const CONTAINERS: [&str; 3] = ["app", "sidecar", "init-proxy"];

/// A simulated cluster: `nodes` nodes, `pods_per_node` pods each, two containers per pod.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    pub name: &'static str,
    pub nodes: usize,
    pub pods_per_node: usize,
    pub seed: u64,
}

pub struct Pod {
    pub node: usize,
    pub workload: &'static str,
    pub namespace: &'static str,
    pub service: &'static str,
    pub full_name: String,
    pub uid: String,
    pub containers: [&'static str; 2],
    /// Requested containers vs running ones (a few pods miss one: §5.6 example 3).
    pub running: usize,
    pub crash_looping: bool,
}

impl Cluster {
    pub fn node_name(&self, n: usize) -> String {
        format!("ip-10-0-{}-{}.ec2.internal", n / 200, n % 200 + 10)
    }

    pub fn pods(&self) -> Vec<Pod> {
        let mut rng = Rng::new(self.seed);
        let mut pods = Vec::new();
        for node in 0..self.nodes {
            for _ in 0..self.pods_per_node {
                let (workload, namespace, service) = *rng.pick(&WORKLOADS);
                let hash = format!("{:x}", rng.below(0xfffff) + 0x10000);
                let suffix: String = (0..5)
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect();
                let first = rng.below(2) as usize;
                pods.push(Pod {
                    node,
                    workload,
                    namespace,
                    service,
                    full_name: format!("{workload}-{hash}-{suffix}"),
                    uid: format!(
                        "{:08x}-1d2a-4c55-9a51-{:012x}",
                        rng.below(1 << 32),
                        rng.below(1 << 48)
                    ),
                    containers: [CONTAINERS[first], CONTAINERS[2 - first]],
                    running: if rng.chance(10) { 1 } else { 2 },
                    crash_looping: rng.chance(15),
                });
            }
        }
        pods
    }
}

fn envelope(ty: &str, ts: i64, cluster: &str, node: &str) -> String {
    format!(
        r#""Type":"{ty}","Version":"0","Timestamp":"{ts}","ClusterName":"{cluster}","NodeName":"{node}""#
    )
}

/// Performance events of `minutes` ticks ending just before `end_ms`, tick by tick (a tick's
/// events share one timestamp, as the agent's do).
pub struct PerformanceTicks {
    cluster: Cluster,
    pods: Vec<Pod>,
    group: String,
    tick: i64,
    end_tick: i64,
    rng: Rng,
    restarts: Vec<u64>,
}

pub fn performance(cluster: Cluster, group: &str, end_ms: i64, minutes: i64) -> PerformanceTicks {
    let end_tick = end_ms.div_euclid(MINUTE_MS);
    let pods = cluster.pods();
    let restarts = vec![0; pods.len()];
    PerformanceTicks {
        rng: Rng::new(cluster.seed.wrapping_add(1)),
        cluster,
        pods,
        group: group.to_string(),
        tick: end_tick - minutes,
        end_tick,
        restarts,
    }
}

impl Iterator for PerformanceTicks {
    type Item = Vec<LogEvent>;

    fn next(&mut self) -> Option<Vec<LogEvent>> {
        if self.tick >= self.end_tick {
            return None;
        }
        let ts = self.tick * MINUTE_MS + self.rng.below(500) as i64;
        self.tick += 1;
        let c = self.cluster;
        let rng = &mut self.rng;
        let mut out = Vec::with_capacity(c.nodes * (6 + c.pods_per_node * 6) + 8);
        let ev = |node: &str, body: String| {
            LogEvent::new(self.group.clone(), node, ts, format!("{{{body}}}"))
        };
        for n in 0..c.nodes {
            let node = c.node_name(n);
            let instance = format!("i-0{:016x}", (n as u64 + 1) * 0x9e3779b97f4a7);
            let base = envelope("Node", ts, c.name, &node);
            let pods_here = self.pods.iter().filter(|p| p.node == n).count();
            out.push(ev(&node, format!(
                r#"{base},"InstanceId":"{instance}","InstanceType":"m5.large","AutoScalingGroupName":"ng-1","Sources":["cadvisor","/proc","pod","calculated"],"kubernetes":{{"host":"{node}"}},"node_cpu_utilization":{},"node_cpu_usage_total":{},"node_cpu_limit":2000,"node_memory_utilization":{},"node_memory_working_set":{},"node_memory_limit":8000000000,"node_network_total_bytes":{},"node_number_of_running_pods":{pods_here},"node_number_of_running_containers":{}"#,
                rng.float(2.0, 95.0), rng.float(40.0, 1900.0), rng.float(10.0, 90.0),
                rng.below(7_000_000_000) + 500_000_000, rng.below(5_000_000), pods_here * 2
            )));
            for device in ["nvme0n1p1", "nvme1n1"] {
                let base = envelope("NodeFS", ts, c.name, &node);
                let cap = 85_886_742_528u64;
                let used = rng.below(cap / 2) + cap / 10;
                out.push(ev(&node, format!(
                    r#"{base},"InstanceId":"{instance}","device":"/dev/{device}","fstype":"xfs","node_filesystem_capacity":{cap},"node_filesystem_usage":{used},"node_filesystem_available":{},"node_filesystem_utilization":{}"#,
                    cap - used, ((used as f64 / cap as f64) * 10000.0).round() / 100.0
                )));
            }
            for iface in ["eth0", "eth1"] {
                let base = envelope("NodeNet", ts, c.name, &node);
                out.push(ev(&node, format!(
                    r#"{base},"InstanceId":"{instance}","interface":"{iface}","node_interface_network_rx_bytes":{},"node_interface_network_tx_bytes":{},"node_interface_network_total_bytes":{}"#,
                    rng.below(900_000), rng.below(900_000), rng.below(1_800_000)
                )));
            }
            let base = envelope("NodeDiskIO", ts, c.name, &node);
            out.push(ev(&node, format!(
                r#"{base},"InstanceId":"{instance}","device":"/dev/nvme0n1","node_diskio_io_service_bytes_total":{},"node_diskio_io_serviced_total":{}"#,
                rng.below(4_000_000), rng.below(400)
            )));
            for (pi, pod) in self.pods.iter().enumerate().filter(|(_, p)| p.node == n) {
                let kube = format!(
                    r#""kubernetes":{{"host":"{node}","namespace_name":"{}","pod_name":"{}","pod_id":"{}"{}}}"#,
                    pod.namespace,
                    pod.full_name,
                    pod.uid,
                    if pod.service.is_empty() {
                        String::new()
                    } else {
                        format!(r#","service_name":"{}""#, pod.service)
                    }
                );
                let service = if pod.service.is_empty() {
                    String::new()
                } else {
                    format!(r#","Service":"{}""#, pod.service)
                };
                let ident = format!(
                    r#""Namespace":"{}","PodName":"{}"{service}"#,
                    pod.namespace, pod.workload
                );
                let cpu_util = rng.float(0.1, 40.0);
                let over_limit = if rng.chance(70) {
                    format!(
                        r#","pod_cpu_utilization_over_pod_limit":{}"#,
                        rng.float(1.0, 99.0)
                    )
                } else {
                    String::new()
                };
                if rng.chance(3) {
                    self.restarts[pi] += 1;
                }
                let base = envelope("Pod", ts, c.name, &node);
                out.push(ev(&node, format!(
                    r#"{base},{ident},{kube},"pod_status":"Running","pod_cpu_utilization":{cpu_util},"pod_cpu_usage_total":{}{over_limit},"pod_memory_utilization":{},"pod_memory_working_set":{},"pod_number_of_containers":2,"pod_number_of_running_containers":{},"pod_number_of_container_restarts":{},"pod_container_status_waiting_reason_crash_loop_back_off":{}"#,
                    rng.float(1.0, 800.0), rng.float(0.5, 30.0), rng.below(900_000_000) + 10_000_000,
                    pod.running, self.restarts[pi], u8::from(pod.crash_looping && rng.chance(50))
                )));
                let base = envelope("PodNet", ts, c.name, &node);
                out.push(ev(&node, format!(
                    r#"{base},{ident},{kube},"interface":"eth0","pod_interface_network_rx_bytes":{},"pod_interface_network_tx_bytes":{}"#,
                    rng.below(200_000), rng.below(200_000)
                )));
                for container in pod.containers {
                    let ckube = format!(
                        r#""kubernetes":{{"host":"{node}","namespace_name":"{}","pod_name":"{}","pod_id":"{}","container_name":"{container}","containerd":{{"container_id":"{:016x}"}}}}"#,
                        pod.namespace,
                        pod.full_name,
                        pod.uid,
                        rng.next_u64()
                    );
                    let base = envelope("Container", ts, c.name, &node);
                    out.push(ev(&node, format!(
                        r#"{base},{ident},{ckube},"container_status":"Running","container_cpu_utilization":{},"container_cpu_usage_total":{},"container_memory_utilization":{},"container_memory_working_set":{},"number_of_container_restarts":{}"#,
                        rng.float(0.1, 20.0), rng.float(1.0, 500.0), rng.float(0.2, 15.0),
                        rng.below(500_000_000) + 5_000_000, self.restarts[pi] / 2
                    )));
                    // ContainerFS exists on docker-runtime nodes only (reference §1.3).
                    if n % 2 == 0 {
                        let base = envelope("ContainerFS", ts, c.name, &node);
                        out.push(ev(&node, format!(
                            r#"{base},"InstanceId":"{instance}",{ident},{ckube},"device":"/dev/nvme0n1p1","fstype":"overlay","container_filesystem_capacity":85886742528,"container_filesystem_usage":{},"container_filesystem_utilization":{}"#,
                            rng.below(2_000_000_000) + 4096, rng.float(0.0, 3.0)
                        )));
                    }
                }
            }
        }
        // Cluster-scoped events come from the leader (node 0) into its stream (§1.3).
        let leader = c.node_name(0);
        let base = envelope("Cluster", ts, c.name, &leader);
        let failed = u64::from(rng.chance(10));
        out.push(ev(&leader, format!(
            r#"{base},"cluster_node_count":{},"cluster_failed_node_count":{failed},"cluster_number_of_running_pods":{}"#,
            c.nodes, self.pods.len()
        )));
        for ns in NAMESPACES {
            let base = envelope("ClusterNamespace", ts, c.name, &leader);
            let running = self.pods.iter().filter(|p| p.namespace == ns).count();
            out.push(ev(&leader, format!(
                r#"{base},"Namespace":"{ns}","kubernetes":{{"namespace_name":"{ns}"}},"namespace_number_of_running_pods":{running}"#
            )));
        }
        Some(out)
    }
}

const LEVELS: [&str; 4] = ["info", "info", "warn", "error"];
const PATHS: [&str; 5] = [
    "/api/v1/orders",
    "/api/v1/users",
    "/healthz",
    "/metrics",
    "/api/v1/cart",
];

/// Application log records of the cluster's pods, `count` of them spread evenly over
/// `[start_ms, end_ms)`, in time order.
pub fn application(
    cluster: Cluster,
    group: &str,
    start_ms: i64,
    end_ms: i64,
    count: usize,
) -> ApplicationRecords {
    ApplicationRecords {
        pods: cluster.pods(),
        cluster,
        group: group.to_string(),
        rng: Rng::new(cluster.seed.wrapping_add(2)),
        i: 0,
        count,
        start_ms,
        span_ms: (end_ms - start_ms).max(1),
    }
}

pub struct ApplicationRecords {
    cluster: Cluster,
    pods: Vec<Pod>,
    group: String,
    rng: Rng,
    i: usize,
    count: usize,
    start_ms: i64,
    span_ms: i64,
}

impl Iterator for ApplicationRecords {
    type Item = LogEvent;

    fn next(&mut self) -> Option<LogEvent> {
        if self.i >= self.count {
            return None;
        }
        let i = self.i;
        self.i += 1;
        let rng = &mut self.rng;
        let ts = self.start_ms + (i as i128 * self.span_ms as i128 / self.count as i128) as i64;
        let pod = &self.pods[rng.below(self.pods.len() as u64) as usize];
        let container = pod.containers[rng.below(2) as usize];
        let node = self.cluster.node_name(pod.node);
        let level = *rng.pick(&LEVELS);
        let stderr = level == "error" || rng.chance(3);
        let time = chrono::DateTime::from_timestamp_millis(ts)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        let status = match level {
            "error" => *rng.pick(&[500u32, 502, 503]),
            "warn" => *rng.pick(&[404u32, 429]),
            _ => *rng.pick(&[200u32, 200, 201, 204]),
        };
        let latency = rng.below(900) + 1;
        let path = *rng.pick(&PATHS);
        let client = format!(
            "10.{}.{}.{}",
            rng.below(4),
            rng.below(256),
            rng.below(254) + 1
        );
        // Half of the workloads log JSON (Fluent Bit adds `log_processed`), half plain text.
        let json_payload = pod.workload.len() % 2 == 1;
        let (log, processed) = if json_payload {
            let msg = if level == "error" {
                "upstream request failed: connection reset"
            } else {
                "request served"
            };
            let inner = format!(
                r#"{{"level":"{level}","msg":"{msg}","method":"GET","path":"{path}","status":{status},"latency_ms":{latency},"client":"{client}"}}"#
            );
            let escaped = inner.replace('"', "\\\"");
            (escaped, format!(r#","log_processed":{inner}"#))
        } else {
            let text = match level {
                "error" => format!(
                    "{time} ERROR [{}] Error handling {path}: timeout after {latency}ms from {client}",
                    pod.workload
                ),
                "warn" => format!(
                    "{time} WARN  [{}] slow request {path} status={status} latency={latency}ms",
                    pod.workload
                ),
                _ => format!(
                    "{time} INFO  [{}] GET {path} status={status} latency={latency}ms client={client}",
                    pod.workload
                ),
            };
            (text, String::new())
        };
        let stream = format!(
            "{node}-application.var.log.containers.{}_{}_{container}-{:016x}.log",
            pod.full_name, pod.namespace, pod.node
        );
        let message = format!(
            r#"{{"time":"{time}","stream":"{}","_p":"F","log":"{log}"{processed},"kubernetes":{{"pod_name":"{}","namespace_name":"{}","pod_id":"{}","host":"{node}","container_name":"{container}","docker_id":"{:064x}","container_image":"registry.local/{}:1.{}"}}}}"#,
            if stderr { "stderr" } else { "stdout" },
            pod.full_name,
            pod.namespace,
            pod.uid,
            pod.node as u128 * 7919 + 1,
            pod.workload,
            pod.node % 3
        );
        Some(LogEvent::new(self.group.clone(), stream, ts, message))
    }
}

/// Dataplane records (kubelet and containerd journald lines, reference §3.2), `count` of them
/// over `[start_ms, end_ms)`.
pub fn dataplane(
    cluster: Cluster,
    group: &str,
    start_ms: i64,
    end_ms: i64,
    count: usize,
) -> Vec<LogEvent> {
    let mut rng = Rng::new(cluster.seed.wrapping_add(3));
    let span = (end_ms - start_ms).max(1);
    (0..count)
        .map(|i| {
            let ts = start_ms + (i as i128 * span as i128 / count as i128) as i64;
            let node = cluster.node_name(rng.below(cluster.nodes as u64) as usize);
            let unit = *rng.pick(&["kubelet.service", "kubelet.service", "containerd.service"]);
            let t = chrono::DateTime::from_timestamp_millis(ts)
                .map(|t| t.format("%m%d %H:%M:%S%.6f").to_string())
                .unwrap_or_default();
            let severity = *rng.pick(&["I", "I", "I", "W", "E"]);
            let message = if unit == "kubelet.service" {
                format!("{severity}{t}    2114 pod_workers.go:1301] \\\"Error syncing pod, skipping\\\" pod=\\\"prod/api-{}\\\"", rng.below(100))
            } else {
                format!("time=\\\"{t}\\\" level=info msg=\\\"StartContainer returned successfully\\\"")
            };
            LogEvent::new(
                group,
                format!("{node}-dataplane.systemd.{unit}"),
                ts,
                format!(r#"{{"hostname":"{node}","systemd_unit":"{unit}","message":"{message}"}}"#),
            )
        })
        .collect()
}
