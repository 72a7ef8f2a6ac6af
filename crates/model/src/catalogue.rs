//! The Container Insights metric catalogue: event types, dimension keys, metric units and
//! the EMF metric declarations of the reference's §2.4 (standard and enhanced modes).
//!
//! Names here are written once and used everywhere (agent, metric store, alarm pack, UI
//! queries); a typo in a metric name is a compatibility bug, so nothing else spells them.

use crate::emf::{MetricDefinition, MetricDirective};
use serde_json::{Map, Value};

/// Namespace of every Container Insights metric.
pub const NAMESPACE: &str = "ContainerInsights";

/// `Type` values of performance events (reference §1.3).
pub mod types {
    pub const NODE: &str = "Node";
    pub const NODE_FS: &str = "NodeFS";
    pub const NODE_DISK_IO: &str = "NodeDiskIO";
    pub const NODE_NET: &str = "NodeNet";
    pub const POD: &str = "Pod";
    pub const POD_NET: &str = "PodNet";
    pub const CONTAINER: &str = "Container";
    pub const CONTAINER_FS: &str = "ContainerFS";
    pub const CLUSTER: &str = "Cluster";
    pub const CLUSTER_NAMESPACE: &str = "ClusterNamespace";
    pub const CLUSTER_SERVICE: &str = "ClusterService";
    pub const CLUSTER_DEPLOYMENT: &str = "ClusterDeployment";
    pub const CLUSTER_DAEMON_SET: &str = "ClusterDaemonSet";
    pub const CLUSTER_STATEFUL_SET: &str = "ClusterStatefulSet";
    pub const CLUSTER_REPLICA_SET: &str = "ClusterReplicaSet";
    pub const CONTROL_PLANE: &str = "ControlPlane";
    /// Accelerated compute (issue 18, [`super::accelerated`]): one event per GPU (NodeGPU),
    /// per pod and GPU (PodGPU), per container and GPU (ContainerGPU); the same per EFA device.
    pub const CONTAINER_GPU: &str = "ContainerGPU";
    pub const POD_GPU: &str = "PodGPU";
    pub const NODE_GPU: &str = "NodeGPU";
    pub const CONTAINER_EFA: &str = "ContainerEFA";
    pub const POD_EFA: &str = "PodEFA";
    pub const NODE_EFA: &str = "NodeEFA";
}

/// Envelope and dimension keys of performance events (reference §1.1).
pub mod keys {
    pub const TYPE: &str = "Type";
    pub const VERSION: &str = "Version";
    pub const TIMESTAMP: &str = "Timestamp";
    pub const SOURCES: &str = "Sources";
    pub const CLUSTER_NAME: &str = "ClusterName";
    pub const NODE_NAME: &str = "NodeName";
    pub const INSTANCE_ID: &str = "InstanceId";
    pub const INSTANCE_TYPE: &str = "InstanceType";
    pub const AUTO_SCALING_GROUP_NAME: &str = "AutoScalingGroupName";
    /// The EBS volume behind an event's `device`, `aws://<az>/<vol-id>` (NodeFS, NodeDiskIO,
    /// ContainerFS).
    pub const HOST_EBS_VOLUME_ID: &str = "EBSVolumeId";
    /// The same, for a device the kubelet mounted as a persistent volume.
    pub const EBS_VOLUME_ID: &str = "ebs_volume_id";
    pub const NAMESPACE: &str = "Namespace";
    pub const POD_NAME: &str = "PodName";
    pub const FULL_POD_NAME: &str = "FullPodName";
    pub const SERVICE: &str = "Service";
    pub const CONTAINER_NAME: &str = "ContainerName";
    pub const DEVICE: &str = "device";
    pub const FSTYPE: &str = "fstype";
    pub const INTERFACE: &str = "interface";
    pub const POD_STATUS: &str = "pod_status";
    pub const CONTAINER_STATUS: &str = "container_status";
    pub const CONTAINER_STATUS_REASON: &str = "container_status_reason";
    pub const CONTAINER_LAST_TERMINATION_REASON: &str = "container_last_termination_reason";
    pub const KUBERNETES: &str = "kubernetes";
    pub const CLOUDWATCH_METRICS: &str = "CloudWatchMetrics";
    /// The GPU of a GPU event: the DCGM exporter's `device` label (`nvidia0`).
    pub const GPU_DEVICE: &str = "GpuDevice";
    /// The GPU's UUID (the DCGM exporter's `UUID` label).
    pub const GPU_UUID: &str = "UUID";
    /// The EFA device of an EFA event (its name under /sys/class/infiniband).
    pub const EFA_DEVICE: &str = "EfaDevice";
    /// The ENI of an EFA device: a dimension of the reference's EFA sets that only EC2's
    /// metadata knows, which kinsight never asks (docs/agent.md); never set.
    pub const NETWORK_INTERFACE_ID: &str = "NetworkInterfaceId";
}

/// `Sources` of each event type (reference §1.1).
pub fn sources_of(event_type: &str) -> &'static [&'static str] {
    match event_type {
        types::NODE => &["cadvisor", "/proc", "pod", "calculated"],
        types::NODE_FS | types::NODE_NET | types::POD_NET | types::CONTAINER_FS => {
            &["cadvisor", "calculated"]
        }
        types::NODE_DISK_IO => &["cadvisor"],
        types::POD | types::CONTAINER => &["cadvisor", "pod", "calculated"],
        restart::TYPE => restart::SOURCES,
        t if accelerated::is_accelerator_type(t) => accelerated::sources_of(t),
        _ => &["apiserver"],
    }
}

pub mod restart;

/// CloudWatch units used by Container Insights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// No unit: CPU in millicores and counts CloudWatch has no unit for.
    None,
    Percent,
    Bytes,
    BytesPerSecond,
    Count,
    CountPerSecond,
    Seconds,
}

impl Unit {
    /// The CloudWatch spelling, or `None` for unit-less metrics (the directive omits `Unit`).
    pub fn as_cloudwatch(self) -> Option<&'static str> {
        match self {
            Unit::None => None,
            Unit::Percent => Some("Percent"),
            Unit::Bytes => Some("Bytes"),
            Unit::BytesPerSecond => Some("Bytes/Second"),
            Unit::Count => Some("Count"),
            Unit::CountPerSecond => Some("Count/Second"),
            Unit::Seconds => Some("Seconds"),
        }
    }
}

/// Unit of a Container Insights metric by name (reference §2.3). CPU quantities are
/// millicores, published without a unit.
pub fn unit_of(metric: &str) -> Unit {
    let m = metric;
    if control_plane::is_control_plane(m) {
        return control_plane::unit_of(m);
    }
    if let Some(u) = accelerated::unit_of(m) {
        return u;
    }
    if m.contains("_utilization") || m.ends_with("_reserved_capacity") {
        return Unit::Percent;
    }
    if m.contains("_cpu_") {
        return Unit::None;
    }
    if m.contains("diskio_io_service_bytes") {
        return Unit::BytesPerSecond;
    }
    if m.contains("network") {
        return if m.ends_with("_bytes") {
            Unit::BytesPerSecond
        } else {
            Unit::CountPerSecond
        };
    }
    if m.contains("diskio_io_serviced") {
        return Unit::CountPerSecond;
    }
    if m.contains("_memory_") {
        if m.ends_with("pgfault") || m.ends_with("pgmajfault") || m.ends_with("failures_total") {
            return Unit::CountPerSecond;
        }
        if m.ends_with("failcnt") {
            return Unit::Count;
        }
        return Unit::Bytes;
    }
    if m.contains("_filesystem_") {
        return if m.contains("inodes") {
            Unit::Count
        } else {
            Unit::Bytes
        };
    }
    Unit::Count
}

/// One metric declaration: metric-name selectors and the dimension sets applied to them.
/// Selectors match field names as unanchored patterns (substring), as the agent's
/// declarations do (reference §2.4).
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    pub metrics: &'static [&'static str],
    pub dimensions: &'static [&'static [&'static str]],
}

const NODE_DIMS: &[&[&str]] = &[&["NodeName", "InstanceId", "ClusterName"], &["ClusterName"]];
const CLUSTER_DIMS: &[&[&str]] = &[&["ClusterName"]];
const POD_STD_DIMS: &[&[&str]] = &[
    &["PodName", "Namespace", "ClusterName"],
    &["Service", "Namespace", "ClusterName"],
    &["Namespace", "ClusterName"],
    &["ClusterName"],
];

/// Standard mode (enhanced off), reference §2.4.a: 25 metric names.
pub const STANDARD: &[Declaration] = &[
    Declaration {
        metrics: &[
            "node_cpu_utilization",
            "node_memory_utilization",
            "node_network_total_bytes",
            "node_cpu_reserved_capacity",
            "node_memory_reserved_capacity",
            "node_number_of_running_pods",
            "node_number_of_running_containers",
        ],
        dimensions: NODE_DIMS,
    },
    Declaration {
        metrics: &[
            "node_cpu_usage_total",
            "node_cpu_limit",
            "node_memory_working_set",
            "node_memory_limit",
        ],
        dimensions: CLUSTER_DIMS,
    },
    Declaration {
        metrics: &["node_filesystem_utilization"],
        dimensions: NODE_DIMS,
    },
    Declaration {
        metrics: &[
            "pod_cpu_utilization",
            "pod_memory_utilization",
            "pod_network_rx_bytes",
            "pod_network_tx_bytes",
            "pod_cpu_utilization_over_pod_limit",
            "pod_memory_utilization_over_pod_limit",
        ],
        dimensions: POD_STD_DIMS,
    },
    Declaration {
        metrics: &["pod_cpu_reserved_capacity", "pod_memory_reserved_capacity"],
        dimensions: &[&["PodName", "Namespace", "ClusterName"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["pod_number_of_container_restarts"],
        dimensions: &[&["PodName", "Namespace", "ClusterName"]],
    },
    Declaration {
        metrics: &["cluster_node_count", "cluster_failed_node_count"],
        dimensions: CLUSTER_DIMS,
    },
    Declaration {
        metrics: &["service_number_of_running_pods"],
        dimensions: &[&["Service", "Namespace", "ClusterName"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["namespace_number_of_running_pods"],
        dimensions: &[&["Namespace", "ClusterName"], &["ClusterName"]],
    },
];

/// Enhanced observability, reference §2.4.b (the control plane's are [`CONTROL_PLANE`],
/// accelerated compute's [`accelerated::DECLARATIONS`]).
pub const ENHANCED: &[Declaration] = &[
    Declaration {
        metrics: &[
            "container_cpu_utilization",
            "container_cpu_utilization_over_container_limit",
            "container_cpu_limit",
            "container_cpu_request",
            "container_memory_utilization",
            "container_memory_utilization_over_container_limit",
            "container_memory_failures_total",
            "container_memory_limit",
            "container_memory_request",
            "container_filesystem_usage",
            "container_filesystem_available",
            "container_filesystem_utilization",
        ],
        dimensions: &[
            &["ClusterName"],
            &[
                "ContainerName",
                "FullPodName",
                "PodName",
                "Namespace",
                "ClusterName",
            ],
            &["ContainerName", "PodName", "Namespace", "ClusterName"],
        ],
    },
    Declaration {
        metrics: &[
            "pod_cpu_utilization",
            "pod_memory_utilization",
            "pod_network_rx_bytes",
            "pod_network_tx_bytes",
            "pod_cpu_utilization_over_pod_limit",
            "pod_memory_utilization_over_pod_limit",
        ],
        dimensions: &[
            &["PodName", "Namespace", "ClusterName"],
            &["ClusterName"],
            &["Service", "Namespace", "ClusterName"],
            &["Namespace", "ClusterName"],
            &["FullPodName", "PodName", "Namespace", "ClusterName"],
        ],
    },
    Declaration {
        metrics: &[
            "pod_cpu_reserved_capacity",
            "pod_memory_reserved_capacity",
            "pod_number_of_container_restarts",
            "pod_number_of_containers",
            "pod_number_of_running_containers",
            "pod_status_ready",
            "pod_status_scheduled",
            "pod_status_running",
            "pod_status_pending",
            "pod_status_failed",
            "pod_status_unknown",
            "pod_status_succeeded",
            "pod_memory_request",
            "pod_memory_limit",
            "pod_cpu_limit",
            "pod_cpu_request",
            "pod_cpu_usage_total",
            "pod_memory_working_set",
            "pod_container_status_running",
            "pod_container_status_terminated",
            "pod_container_status_waiting",
            "pod_container_status_waiting_reason_crash_loop_back_off",
            "pod_container_status_waiting_reason_image_pull_error",
            "pod_container_status_waiting_reason_start_error",
            "pod_container_status_waiting_reason_create_container_error",
            "pod_container_status_waiting_reason_create_container_config_error",
            "pod_container_status_terminated_reason_oom_killed",
        ],
        dimensions: &[
            &["PodName", "Namespace", "ClusterName"],
            &["ClusterName"],
            &["FullPodName", "PodName", "Namespace", "ClusterName"],
            &["Service", "Namespace", "ClusterName"],
        ],
    },
    Declaration {
        metrics: &[
            "pod_interface_network_rx_dropped",
            "pod_interface_network_tx_dropped",
        ],
        dimensions: &[
            &["FullPodName", "PodName", "Namespace", "ClusterName"],
            &["PodName", "Namespace", "ClusterName"],
            &["Namespace", "ClusterName"],
            &["ClusterName"],
        ],
    },
    Declaration {
        metrics: &[
            "node_cpu_utilization",
            "node_memory_utilization",
            "node_network_total_bytes",
            "node_cpu_reserved_capacity",
            "node_memory_reserved_capacity",
            "node_number_of_running_pods",
            "node_number_of_running_containers",
            "node_cpu_usage_total",
            "node_cpu_limit",
            "node_memory_working_set",
            "node_memory_limit",
            "node_status_condition_ready",
            "node_status_condition_disk_pressure",
            "node_status_condition_memory_pressure",
            "node_status_condition_pid_pressure",
            "node_status_condition_network_unavailable",
            "node_status_condition_unknown",
            "node_status_capacity_pods",
            "node_status_allocatable_pods",
        ],
        dimensions: NODE_DIMS,
    },
    Declaration {
        metrics: &[
            "node_interface_network_rx_dropped",
            "node_interface_network_tx_dropped",
            "node_diskio_io_service_bytes_total",
            "node_diskio_io_serviced_total",
        ],
        dimensions: NODE_DIMS,
    },
    Declaration {
        metrics: &[
            "node_filesystem_utilization",
            "node_filesystem_inodes",
            "node_filesystem_inodes_free",
        ],
        dimensions: NODE_DIMS,
    },
    Declaration {
        metrics: &["service_number_of_running_pods"],
        dimensions: &[&["Service", "Namespace", "ClusterName"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "replicas_desired",
            "replicas_ready",
            "status_replicas_available",
            "status_replicas_unavailable",
        ],
        dimensions: &[&["PodName", "Namespace", "ClusterName"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "namespace_number_of_running_pods",
            "namespace_ingress_count",
        ],
        dimensions: &[&["Namespace", "ClusterName"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "cluster_node_count",
            "cluster_failed_node_count",
            "cluster_number_of_running_pods",
        ],
        dimensions: CLUSTER_DIMS,
    },
];

/// The declarations of a mode.
pub fn declarations(enhanced: bool) -> &'static [Declaration] {
    if enhanced { ENHANCED } else { STANDARD }
}

/// The control-plane metrics of enhanced mode (reference §2.4.b), declared apart from
/// [`ENHANCED`] because kinsight also produces them in standard mode when
/// `enable_control_plane_metrics` is set. Only ControlPlane events carry these names, so the
/// [`DirectiveBuilder`] of either mode applies them.
pub const CONTROL_PLANE: &[Declaration] = &[
    Declaration {
        metrics: &[
            "apiserver_storage_size_bytes",
            "apiserver_storage_db_total_size_in_bytes",
            "etcd_db_total_size_in_bytes",
        ],
        dimensions: &[&["ClusterName", "endpoint"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "apiserver_storage_list_duration_seconds",
            "apiserver_longrunning_requests",
            "apiserver_storage_objects",
        ],
        dimensions: &[&["ClusterName", "resource"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "apiserver_request_duration_seconds",
            "rest_client_request_duration_seconds",
        ],
        dimensions: &[&["ClusterName", "verb"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["apiserver_request_total", "apiserver_request_total_5xx"],
        dimensions: &[&["ClusterName", "code", "verb"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "apiserver_admission_controller_admission_duration_seconds",
            "apiserver_admission_step_admission_duration_seconds",
            "etcd_request_duration_seconds",
        ],
        dimensions: &[&["ClusterName", "operation"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["rest_client_requests_total"],
        dimensions: &[&["ClusterName", "code", "method"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            "apiserver_current_inflight_requests",
            "apiserver_current_inqueue_requests",
        ],
        dimensions: &[&["ClusterName", "request_kind"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["apiserver_admission_webhook_admission_duration_seconds"],
        dimensions: &[&["ClusterName", "name"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["apiserver_requested_deprecated_apis"],
        dimensions: &[&["ClusterName", "group"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["apiserver_flowcontrol_rejected_requests_total"],
        dimensions: &[&["ClusterName", "reason"], &["ClusterName"]],
    },
    Declaration {
        metrics: &["apiserver_flowcontrol_request_concurrency_limit"],
        dimensions: &[&["ClusterName", "priority_level"], &["ClusterName"]],
    },
];

pub mod accelerated;

/// The API server metrics behind ControlPlane events (reference §2.5): which families the
/// leader keeps from `/metrics`, and how each kind becomes a field.
pub mod control_plane {
    use super::Unit;

    /// How the API server exposes a metric, which decides what its field holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// A cumulative counter: the field is its increase since the previous scrape (no
        /// field on the first scrape; after a reset, the value since the reset).
        Counter,
        /// The value as read.
        Gauge,
        /// A histogram: the field is a statistic set `{"Count", "Sum"}` of the observations
        /// since the previous scrape, from `<name>_count` and `<name>_sum` (buckets unused).
        Histogram,
    }

    /// The reference's allow-list, with each family's Prometheus type. The storage-size
    /// metrics are gauges; the CloudWatch agent's allow-list expects histogram series of them
    /// (`_bucket|_sum|_count`) and so never publishes them — kinsight reads them as gauges.
    pub const METRICS: &[(&str, Kind)] = &[
        (
            "apiserver_admission_controller_admission_duration_seconds",
            Kind::Histogram,
        ),
        (
            "apiserver_admission_step_admission_duration_seconds",
            Kind::Histogram,
        ),
        (
            "apiserver_admission_webhook_admission_duration_seconds",
            Kind::Histogram,
        ),
        ("apiserver_current_inflight_requests", Kind::Gauge),
        ("apiserver_current_inqueue_requests", Kind::Gauge),
        (
            "apiserver_flowcontrol_rejected_requests_total",
            Kind::Counter,
        ),
        (
            "apiserver_flowcontrol_request_concurrency_limit",
            Kind::Gauge,
        ),
        ("apiserver_longrunning_requests", Kind::Gauge),
        ("apiserver_request_duration_seconds", Kind::Histogram),
        (REQUEST_TOTAL, Kind::Counter),
        ("apiserver_requested_deprecated_apis", Kind::Gauge),
        ("apiserver_storage_list_duration_seconds", Kind::Histogram),
        ("apiserver_storage_objects", Kind::Gauge),
        ("apiserver_storage_db_total_size_in_bytes", Kind::Gauge),
        ("apiserver_storage_size_bytes", Kind::Gauge),
        ("etcd_db_total_size_in_bytes", Kind::Gauge),
        ("etcd_request_duration_seconds", Kind::Histogram),
        ("rest_client_request_duration_seconds", Kind::Histogram),
        ("rest_client_requests_total", Kind::Counter),
    ];

    /// `apiserver_request_total`, whose samples with a 5xx `code` are copied into
    /// [`REQUEST_TOTAL_5XX`] (the agent's metricstransform rule, reference §4.1).
    pub const REQUEST_TOTAL: &str = "apiserver_request_total";
    pub const REQUEST_TOTAL_5XX: &str = "apiserver_request_total_5xx";

    /// The Prometheus label `type` would collide with the event's `Type` (in a
    /// case-insensitive reader): it becomes `kubernetes_type`, as the agent relabels it.
    pub const TYPE_LABEL: &str = "type";
    pub const TYPE_LABEL_RENAMED: &str = "kubernetes_type";

    /// Whether `metric` is a control-plane metric name (one of [`METRICS`] or the 5xx copy).
    pub fn is_control_plane(metric: &str) -> bool {
        metric == REQUEST_TOTAL_5XX || METRICS.iter().any(|(m, _)| *m == metric)
    }

    /// Units forced on control-plane metrics, which have none in Prometheus (reference
    /// §2.4.b): durations in Seconds, sizes in Bytes, everything else Count.
    pub fn unit_of(metric: &str) -> Unit {
        if metric.ends_with("_duration_seconds") {
            Unit::Seconds
        } else if metric.ends_with("_bytes") {
            Unit::Bytes
        } else {
            Unit::Count
        }
    }
}

/// Builds the EMF directive for one performance event, as the agent's EMF exporter does:
/// every numeric field matched by a declaration gets the declaration's dimension sets whose
/// keys all exist (as strings) on the event; keys inside a set are sorted and sets are
/// de-duplicated; metrics sharing the same sets share one directive element. Returns an
/// empty list if no field matches (reference §1.2).
pub fn directives_for(event: &Map<String, Value>, enhanced: bool) -> Vec<MetricDirective> {
    DirectiveBuilder::new(enhanced).build(event)
}

/// Read access to an event's fields, in order: a JSON map, or the agent's list of pairs.
pub trait EventFields {
    fn each(&self) -> impl Iterator<Item = (&str, &Value)>;
    fn field(&self, key: &str) -> Option<&Value>;
}

impl EventFields for Map<String, Value> {
    fn each(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(k, v)| (k.as_str(), v))
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl EventFields for [(String, Value)] {
    fn each(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(k, v)| (k.as_str(), v))
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// [`directives_for`] with a memo of which declarations match which field name: an agent
/// builds directives for a thousand events per collection with the same few hundred names.
#[derive(Debug, Clone)]
pub struct DirectiveBuilder {
    /// The mode's declarations, then [`CONTROL_PLANE`] and [`accelerated::DECLARATIONS`].
    decls: Vec<&'static Declaration>,
    matches: std::collections::HashMap<String, Vec<usize>>,
    /// Finished directives by the shape of the event they were built for (`None`: the shape
    /// declares no metric).
    built: std::collections::HashMap<Vec<u8>, Option<Built>, crate::hash::FastBuildHasher>,
    /// The shape of the event being looked up (reused buffer).
    shape: Vec<u8>,
}

/// One finished directive, as a value and as its JSON text.
#[derive(Debug, Clone)]
struct Built {
    value: Value,
    json: std::sync::Arc<str>,
}

impl DirectiveBuilder {
    pub fn new(enhanced: bool) -> DirectiveBuilder {
        DirectiveBuilder {
            decls: declarations(enhanced)
                .iter()
                .chain(CONTROL_PLANE)
                .chain(accelerated::DECLARATIONS)
                .collect(),
            matches: std::collections::HashMap::new(),
            built: Default::default(),
            shape: Vec::new(),
        }
    }

    /// [`Self::build`] as the JSON of the `CloudWatchMetrics` array, or `None` when the event
    /// declares no metric. The directive depends only on the event's shape — its field names
    /// in order, which hold numbers, statistic sets or strings — so it is built once per shape
    /// (a node's events come in a few dozen shapes) and cloned after that.
    pub fn build_value<E: EventFields + ?Sized>(&mut self, event: &E) -> Option<Value> {
        self.memo(event).map(|b| b.value.clone())
    }

    /// [`Self::build_value`] already serialised (shared, not copied): what an agent splices
    /// into every event it writes.
    pub fn build_json<E: EventFields + ?Sized>(
        &mut self,
        event: &E,
    ) -> Option<std::sync::Arc<str>> {
        self.memo(event).map(|b| b.json.clone())
    }

    fn memo<E: EventFields + ?Sized>(&mut self, event: &E) -> Option<&Built> {
        // The shape, compared whole (not just hashed): each key length-prefixed, then the
        // kind of its value.
        let mut shape = std::mem::take(&mut self.shape);
        shape.clear();
        for (k, v) in event.each() {
            shape.extend_from_slice(&(k.len() as u32).to_le_bytes());
            shape.extend_from_slice(k.as_bytes());
            shape.push(match v {
                Value::Number(_) => 1,
                Value::String(_) => 2,
                v if crate::emf::statistic_set(v).is_some() => 4,
                _ => 3,
            });
        }
        if !self.built.contains_key(&shape) {
            let directives = self.build(event);
            let built = (!directives.is_empty()).then(|| {
                let value = serde_json::to_value(&directives).unwrap_or(Value::Null);
                let json = serde_json::to_string(&value).unwrap_or_default().into();
                Built { value, json }
            });
            if self.built.len() >= 4096 {
                self.built.clear(); // a bound, never reached by one node's shapes
            }
            self.built.insert(shape.clone(), built);
        }
        self.shape = shape;
        self.built.get(&self.shape).and_then(Option::as_ref)
    }

    fn declarations_of(&mut self, field: &str) -> &[usize] {
        if !self.matches.contains_key(field) {
            let found = self
                .decls
                .iter()
                .enumerate()
                .filter(|(_, d)| d.metrics.iter().any(|m| field.contains(m)))
                .map(|(i, _)| i)
                .collect();
            self.matches.insert(field.to_string(), found);
        }
        &self.matches[field]
    }

    pub fn build<E: EventFields + ?Sized>(&mut self, event: &E) -> Vec<MetricDirective> {
        // (metric name, dimension sets) in field order.
        let mut per_metric: Vec<(&str, Vec<Vec<String>>)> = Vec::new();
        for (field, value) in event.each() {
            // A metric's value is a number or a statistic set (control-plane histograms).
            if !value.is_number() && crate::emf::statistic_set(value).is_none() {
                continue;
            }
            let idx = self.declarations_of(field).to_vec();
            if idx.is_empty() {
                continue;
            }
            let mut sets: Vec<Vec<String>> = Vec::new();
            for d in idx {
                for set in self.decls[d].dimensions {
                    if !set
                        .iter()
                        .all(|k| event.field(k).is_some_and(Value::is_string))
                    {
                        continue;
                    }
                    let mut keys: Vec<String> = set.iter().map(|k| k.to_string()).collect();
                    keys.sort();
                    if !sets.contains(&keys) {
                        sets.push(keys);
                    }
                }
            }
            if !sets.is_empty() {
                per_metric.push((field, sets));
            }
        }
        let mut directives: Vec<MetricDirective> = Vec::new();
        for (name, sets) in per_metric {
            let def = MetricDefinition {
                name: name.to_string(),
                unit: unit_of(name).as_cloudwatch().map(str::to_string),
                storage_resolution: None,
            };
            match directives.iter_mut().find(|d| d.dimensions == sets) {
                Some(d) => d.metrics.push(def),
                None => directives.push(MetricDirective {
                    namespace: NAMESPACE.to_string(),
                    dimensions: sets,
                    metrics: vec![def],
                }),
            }
        }
        directives
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn units_follow_the_formula_table() {
        assert_eq!(unit_of("node_cpu_usage_total"), Unit::None);
        assert_eq!(unit_of("pod_cpu_request"), Unit::None);
        assert_eq!(unit_of("node_cpu_utilization"), Unit::Percent);
        assert_eq!(unit_of("pod_cpu_utilization_over_pod_limit"), Unit::Percent);
        assert_eq!(unit_of("node_memory_reserved_capacity"), Unit::Percent);
        assert_eq!(unit_of("node_memory_working_set"), Unit::Bytes);
        assert_eq!(unit_of("node_memory_failcnt"), Unit::Count);
        assert_eq!(unit_of("node_memory_pgfault"), Unit::CountPerSecond);
        assert_eq!(
            unit_of("container_memory_failures_total"),
            Unit::CountPerSecond
        );
        assert_eq!(unit_of("node_network_total_bytes"), Unit::BytesPerSecond);
        assert_eq!(
            unit_of("pod_interface_network_rx_packets"),
            Unit::CountPerSecond
        );
        assert_eq!(
            unit_of("node_diskio_io_service_bytes_read"),
            Unit::BytesPerSecond
        );
        assert_eq!(
            unit_of("node_diskio_io_serviced_total"),
            Unit::CountPerSecond
        );
        assert_eq!(unit_of("node_filesystem_capacity"), Unit::Bytes);
        assert_eq!(unit_of("node_filesystem_inodes_free"), Unit::Count);
        assert_eq!(unit_of("pod_number_of_container_restarts"), Unit::Count);
        assert_eq!(unit_of("cluster_failed_node_count"), Unit::Count);
    }

    /// ContainerFS, the sync/async disk I/O split and the namespace's Ingress count (issue 18):
    /// units from the formula table, declared only where the reference's §2.4 declares them.
    #[test]
    fn container_fs_disk_io_split_and_ingress_count() {
        for (m, u) in [
            ("container_filesystem_capacity", Unit::Bytes),
            ("container_filesystem_usage", Unit::Bytes),
            ("container_filesystem_available", Unit::Bytes),
            ("container_filesystem_utilization", Unit::Percent),
            ("container_filesystem_inodes", Unit::Count),
            ("container_filesystem_inodes_free", Unit::Count),
            ("node_diskio_io_service_bytes_sync", Unit::BytesPerSecond),
            ("node_diskio_io_service_bytes_async", Unit::BytesPerSecond),
            ("node_diskio_io_serviced_sync", Unit::CountPerSecond),
            ("node_diskio_io_serviced_async", Unit::CountPerSecond),
            ("namespace_ingress_count", Unit::Count),
        ] {
            assert_eq!(unit_of(m), u, "{m}");
        }
        let container_fs = obj(json!({
            "Type": "ContainerFS", "ClusterName": "c1", "Namespace": "ns", "PodName": "api",
            "FullPodName": "api-7d9f8c6b5d-x2k4q", "ContainerName": "app",
            "device": "/dev/nvme0n1p1", "fstype": "xfs",
            "container_filesystem_capacity": 85_886_742_528u64,
            "container_filesystem_usage": 24_576, "container_filesystem_utilization": 0.1
        }));
        assert!(
            directives_for(&container_fs, false).is_empty(),
            "standard mode declares no ContainerFS metric"
        );
        let d = directives_for(&container_fs, true);
        assert_eq!(d.len(), 1);
        let names: Vec<&str> = d[0].metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "container_filesystem_usage",
                "container_filesystem_utilization"
            ],
            "capacity is log content only"
        );
        assert_eq!(
            d[0].dimensions,
            vec![
                vec!["ClusterName"],
                vec![
                    "ClusterName",
                    "ContainerName",
                    "FullPodName",
                    "Namespace",
                    "PodName"
                ],
                vec!["ClusterName", "ContainerName", "Namespace", "PodName"],
            ]
        );
        let disk = obj(json!({
            "Type": "NodeDiskIO", "ClusterName": "c1", "NodeName": "n", "InstanceId": "i",
            "node_diskio_io_service_bytes_sync": 1.0, "node_diskio_io_serviced_async": 1.0
        }));
        assert!(directives_for(&disk, false).is_empty());
        assert!(
            directives_for(&disk, true).is_empty(),
            "only the totals are declared"
        );
        let ns = obj(json!({
            "Type": "ClusterNamespace", "ClusterName": "c1", "Namespace": "prod",
            "namespace_ingress_count": 2
        }));
        assert!(directives_for(&ns, false).is_empty(), "enhanced mode only");
        assert_eq!(
            directives_for(&ns, true)[0].dimensions,
            vec![vec!["ClusterName", "Namespace"], vec!["ClusterName"]]
        );
    }

    /// Issue 18: every control-plane name of the reference's §2.4.b is declared with its
    /// dimension sets and forced unit, in both modes, and is one the agent knows how to read.
    #[test]
    fn control_plane_metrics_are_declared_in_both_modes() {
        let declared: Vec<&str> = CONTROL_PLANE
            .iter()
            .flat_map(|d| d.metrics.iter().copied())
            .collect();
        let mut read: Vec<&str> = control_plane::METRICS.iter().map(|(m, _)| *m).collect();
        read.push(control_plane::REQUEST_TOTAL_5XX);
        let (mut a, mut b) = (declared.clone(), read.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b, "declared and read lists differ");
        assert_eq!(declared.len(), 20);
        assert_eq!(unit_of("apiserver_request_duration_seconds"), Unit::Seconds);
        assert_eq!(unit_of("etcd_db_total_size_in_bytes"), Unit::Bytes);
        assert_eq!(unit_of("apiserver_storage_size_bytes"), Unit::Bytes);
        assert_eq!(unit_of("apiserver_request_total_5xx"), Unit::Count);
        assert_eq!(unit_of("apiserver_current_inflight_requests"), Unit::Count);
        assert_eq!(unit_of("apiserver_storage_objects"), Unit::Count);
        assert_eq!(unit_of("apiserver_requested_deprecated_apis"), Unit::Count);
        let ev = obj(json!({
            "Type": "ControlPlane", "ClusterName": "c1", "NodeName": "n", "code": "503",
            "resource": "pods", "verb": "LIST", "apiserver_request_total": 3,
            "apiserver_request_total_5xx": 3,
            "apiserver_request_duration_seconds": {"Count": 3, "Sum": 0.25},
            "apiserver_storage_objects": "not a number"
        }));
        for enhanced in [false, true] {
            let d = directives_for(&ev, enhanced);
            assert_eq!(d.len(), 2, "{d:?}");
            assert_eq!(
                d[0].dimensions,
                vec![vec!["ClusterName", "code", "verb"], vec!["ClusterName"]]
            );
            let names: Vec<_> = d[0].metrics.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(
                names,
                ["apiserver_request_total", "apiserver_request_total_5xx"]
            );
            assert_eq!(d[0].metrics[0].unit.as_deref(), Some("Count"));
            assert_eq!(
                d[1].dimensions,
                vec![vec!["ClusterName", "verb"], vec!["ClusterName"]]
            );
            assert_eq!(d[1].metrics[0].name, "apiserver_request_duration_seconds");
            assert_eq!(d[1].metrics[0].unit.as_deref(), Some("Seconds"));
        }
    }

    #[test]
    fn standard_mode_has_the_25_metric_names() {
        let mut names: Vec<&str> = STANDARD
            .iter()
            .flat_map(|d| d.metrics.iter().copied())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 25);
    }

    #[test]
    fn node_event_gets_node_and_cluster_sets() {
        let ev = obj(json!({
            "Type": "Node", "ClusterName": "c1", "NodeName": "n1", "InstanceId": "i-1",
            "node_cpu_utilization": 12.5, "node_cpu_usage_total": 250.0, "node_memory_cache": 5
        }));
        let d = directives_for(&ev, false);
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].dimensions,
            vec![
                vec!["ClusterName", "InstanceId", "NodeName"],
                vec!["ClusterName"]
            ]
        );
        assert_eq!(d[0].metrics[0].name, "node_cpu_utilization");
        assert_eq!(d[0].metrics[0].unit.as_deref(), Some("Percent"));
        assert_eq!(d[1].dimensions, vec![vec!["ClusterName"]]);
        assert_eq!(d[1].metrics[0].name, "node_cpu_usage_total");
        assert_eq!(d[1].metrics[0].unit, None);
    }

    #[test]
    fn sets_with_absent_keys_are_skipped() {
        // No Service on this pod: the Service set is not applied.
        let ev = obj(json!({
            "Type": "Pod", "ClusterName": "c1", "Namespace": "ns", "PodName": "p",
            "pod_cpu_utilization": 1.0
        }));
        let d = directives_for(&ev, false);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].dimensions,
            vec![
                vec!["ClusterName", "Namespace", "PodName"],
                vec!["ClusterName", "Namespace"],
                vec!["ClusterName"]
            ]
        );
    }

    #[test]
    fn events_without_declared_metrics_get_no_directive() {
        let ev = obj(
            json!({"Type": "NodeNet", "ClusterName": "c1", "node_interface_network_rx_bytes": 1.0}),
        );
        assert!(directives_for(&ev, false).is_empty());
        // ...but enhanced mode declares the dropped counters.
        let ev = obj(
            json!({"Type": "NodeNet", "ClusterName": "c1", "NodeName": "n", "InstanceId": "i",
            "node_interface_network_rx_dropped": 0.0}),
        );
        assert_eq!(directives_for(&ev, true).len(), 1);
    }

    #[test]
    fn memoised_directives_follow_the_shape_of_each_event() {
        let mut b = DirectiveBuilder::new(false);
        let with_service = obj(json!({
            "Type": "Pod", "ClusterName": "c1", "Namespace": "ns", "PodName": "p",
            "Service": "web", "pod_cpu_utilization": 1.0
        }));
        let without = obj(json!({
            "Type": "Pod", "ClusterName": "c1", "Namespace": "ns", "PodName": "p",
            "pod_cpu_utilization": 1.0
        }));
        // Same keys, but the metric is not a number: no directive.
        let not_a_number = obj(json!({
            "Type": "Pod", "ClusterName": "c1", "Namespace": "ns", "PodName": "p",
            "pod_cpu_utilization": "1.0"
        }));
        for _ in 0..2 {
            for ev in [&with_service, &without, &not_a_number] {
                let expected = directives_for(ev, false);
                let got = b.build_value(ev);
                if expected.is_empty() {
                    assert_eq!(got, None);
                } else {
                    assert_eq!(got, Some(serde_json::to_value(&expected).unwrap()));
                }
            }
        }
        // Other values of the same shape share the directive.
        let other = obj(json!({
            "Type": "Pod", "ClusterName": "c2", "Namespace": "kube-system", "PodName": "q",
            "pod_cpu_utilization": 99.0
        }));
        assert_eq!(b.build_value(&other), b.build_value(&without));
        assert_eq!(b.built.len(), 3);
    }
}
