//! Accelerated compute (issue 18; reference §1.3, §2.3, §2.4.b, §4.1
//! `accelerated_compute_metrics`): the metric names, units, `Sources` and EMF declarations of
//! the GPU events (`ContainerGPU`, `PodGPU`, `NodeGPU`: NVIDIA's DCGM exporter), the EFA events
//! (`ContainerEFA`, `PodEFA`, `NodeEFA`: the EFA devices' sysfs counters) and the GPUs pods
//! ask for (`{node,pod}_gpu_{request,limit,usage_total,reserved_capacity}` on Node and Pod
//! events).
//!
//! The CloudWatch agent declares these in enhanced mode only. Like the control plane's,
//! kinsight declares them in both modes ([`DECLARATIONS`], applied by the `DirectiveBuilder` of
//! either): the agent produces them only when `accelerated_compute_metrics` is on, which
//! defaults to enhanced mode and may be set in standard mode too. Only accelerator events and
//! these field names carry them, so no other event is affected.
//!
//! Not here, because kinsight does not produce them: the Neuron metrics (`*_neuroncore_*`,
//! `*_neurondevice_*`, neuron-monitor's), the EFA and Neuron core counterparts of the GPU
//! request fields (`pod_{efa,neuroncore}_*`, `node_{efa,neuroncore}_*`) and
//! `node_gpu_{unreserved,available}_capacity` — declared by the 2026 agent with no producer
//! whose definition the reference could read (docs/agent.md says why for each).

use super::{Declaration, Unit, types};

/// The GPU measurements of the DCGM events, each written with the level's prefix
/// (`container_`, `pod_`, `node_`), and the DCGM exporter field each comes from (reference
/// §2.3: the CloudWatch agent's renames).
pub const GPU_MEASUREMENTS: [(&str, &str); 7] = [
    ("gpu_utilization", "DCGM_FI_DEV_GPU_UTIL"),
    ("gpu_memory_utilization", "DCGM_FI_DEV_FB_USED_PERCENT"),
    ("gpu_memory_total", "DCGM_FI_DEV_FB_TOTAL"),
    ("gpu_memory_used", "DCGM_FI_DEV_FB_USED"),
    ("gpu_power_draw", "DCGM_FI_DEV_POWER_USAGE"),
    ("gpu_temperature", "DCGM_FI_DEV_GPU_TEMP"),
    (
        "gpu_tensor_core_utilization",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    ),
];

/// The EFA measurements, each written with the level's prefix, and the hardware counter
/// (`/sys/class/infiniband/<device>/ports/<port>/hw_counters/<counter>`) each is the rate of.
pub const EFA_MEASUREMENTS: [(&str, &str); 11] = [
    ("efa_rx_bytes", "rx_bytes"),
    ("efa_tx_bytes", "tx_bytes"),
    ("efa_rx_dropped", "rx_drops"),
    ("efa_rdma_read_bytes", "rdma_read_bytes"),
    ("efa_rdma_write_bytes", "rdma_write_bytes"),
    ("efa_rdma_write_recv_bytes", "rdma_write_recv_bytes"),
    ("efa_retrans_bytes", "retrans_bytes"),
    ("efa_retrans_pkts", "retrans_pkts"),
    ("efa_retrans_timeout_events", "retrans_timeout_events"),
    (
        "efa_impaired_remote_conn_events",
        "impaired_remote_conn_events",
    ),
    (
        "efa_unresponsive_remote_events",
        "unresponsive_remote_events",
    ),
];

/// The Kubernetes extended resource of NVIDIA's device plugin: GPUs pods ask for, and the
/// node's capacity (`status.capacity`).
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The extended resource of the EFA device plugin (its device ids are the devices' names).
pub const EFA_RESOURCE: &str = "vpc.amazonaws.com/efa";

/// Whether `event_type` is one of the accelerator event types.
pub fn is_accelerator_type(event_type: &str) -> bool {
    matches!(
        event_type,
        types::CONTAINER_GPU
            | types::POD_GPU
            | types::NODE_GPU
            | types::CONTAINER_EFA
            | types::POD_EFA
            | types::NODE_EFA
    )
}

/// `Sources` of the accelerator event types. The reference names ContainerGPU's
/// (`["dcgm", "pod", "calculated"]`); the CloudWatch agent writes no `Sources` on the others.
/// kinsight writes one on every event, built the same way: where the numbers come from, `pod`
/// when pod metadata was joined in, `calculated` for the derived values.
pub fn sources_of(event_type: &str) -> &'static [&'static str] {
    match event_type {
        types::CONTAINER_GPU | types::POD_GPU => &["dcgm", "pod", "calculated"],
        types::NODE_GPU => &["dcgm", "calculated"],
        types::CONTAINER_EFA | types::POD_EFA => &["efa", "pod", "calculated"],
        _ => &["efa", "calculated"],
    }
}

fn measurement(metric: &str) -> Option<&str> {
    ["container_", "pod_", "node_"]
        .iter()
        .find_map(|p| metric.strip_prefix(p))
}

/// The unit of an accelerator metric, `None` for any other name (reference §2.3: utilization
/// in Percent, GPU memory in Bytes, temperature (°C) and power (W) without a CloudWatch unit;
/// EFA counters as per-second rates).
pub fn unit_of(metric: &str) -> Option<Unit> {
    let m = measurement(metric)?;
    if GPU_MEASUREMENTS.iter().any(|(g, _)| *g == m) {
        return Some(match m {
            "gpu_memory_total" | "gpu_memory_used" => Unit::Bytes,
            "gpu_power_draw" | "gpu_temperature" => Unit::None,
            _ => Unit::Percent,
        });
    }
    if EFA_MEASUREMENTS.iter().any(|(e, _)| *e == m) {
        return Some(if m.ends_with("_bytes") {
            Unit::BytesPerSecond
        } else {
            Unit::CountPerSecond
        });
    }
    match m {
        "gpu_request" | "gpu_limit" | "gpu_usage_total" => Some(Unit::Count),
        "gpu_reserved_capacity" => Some(Unit::Percent),
        _ => None,
    }
}

/// The GPU request fields of Node and Pod events.
pub const NODE_GPU_REQUEST: &str = "node_gpu_request";
pub const NODE_GPU_LIMIT: &str = "node_gpu_limit";
pub const NODE_GPU_USAGE_TOTAL: &str = "node_gpu_usage_total";
pub const NODE_GPU_RESERVED_CAPACITY: &str = "node_gpu_reserved_capacity";
pub const POD_GPU_REQUEST: &str = "pod_gpu_request";
pub const POD_GPU_LIMIT: &str = "pod_gpu_limit";
pub const POD_GPU_USAGE_TOTAL: &str = "pod_gpu_usage_total";
pub const POD_GPU_RESERVED_CAPACITY: &str = "pod_gpu_reserved_capacity";

/// The reference's §2.4.b declarations of accelerated compute (the CloudWatch agent's
/// `getGPUMetricDeclarations`, `getEFAMetricDeclarations` and the accelerated selectors of its
/// Node and Pod declarations). `node_gpu_request` is log content only, as upstream.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        metrics: &[
            "container_gpu_utilization",
            "container_gpu_memory_utilization",
            "container_gpu_memory_total",
            "container_gpu_memory_used",
            "container_gpu_power_draw",
            "container_gpu_temperature",
            "container_gpu_tensor_core_utilization",
        ],
        dimensions: &[
            &["ClusterName"],
            &["ClusterName", "Namespace", "PodName", "ContainerName"],
            &[
                "ClusterName",
                "Namespace",
                "PodName",
                "FullPodName",
                "ContainerName",
            ],
            &[
                "ClusterName",
                "Namespace",
                "PodName",
                "FullPodName",
                "ContainerName",
                "GpuDevice",
            ],
        ],
    },
    Declaration {
        metrics: &[
            "pod_gpu_utilization",
            "pod_gpu_memory_utilization",
            "pod_gpu_memory_total",
            "pod_gpu_memory_used",
            "pod_gpu_power_draw",
            "pod_gpu_temperature",
            "pod_gpu_tensor_core_utilization",
        ],
        dimensions: &[
            &["ClusterName"],
            &["ClusterName", "Namespace"],
            &["ClusterName", "Namespace", "Service"],
            &["ClusterName", "Namespace", "PodName"],
            &["ClusterName", "Namespace", "PodName", "FullPodName"],
            &[
                "ClusterName",
                "Namespace",
                "PodName",
                "FullPodName",
                "GpuDevice",
            ],
        ],
    },
    Declaration {
        metrics: &[
            "node_gpu_utilization",
            "node_gpu_memory_utilization",
            "node_gpu_memory_total",
            "node_gpu_memory_used",
            "node_gpu_power_draw",
            "node_gpu_temperature",
            "node_gpu_tensor_core_utilization",
        ],
        dimensions: &[
            &["ClusterName"],
            &["ClusterName", "NodeName", "InstanceId"],
            &[
                "ClusterName",
                "NodeName",
                "InstanceId",
                "InstanceType",
                "GpuDevice",
            ],
        ],
    },
    Declaration {
        metrics: &[
            "container_efa_rx_bytes",
            "container_efa_tx_bytes",
            "container_efa_rx_dropped",
            "container_efa_rdma_read_bytes",
            "container_efa_rdma_write_bytes",
            "container_efa_rdma_write_recv_bytes",
            "container_efa_retrans_bytes",
            "container_efa_retrans_pkts",
            "container_efa_retrans_timeout_events",
            "container_efa_impaired_remote_conn_events",
            "container_efa_unresponsive_remote_events",
        ],
        dimensions: &[
            &["ClusterName"],
            &["ClusterName", "Namespace", "PodName", "ContainerName"],
            &[
                "ClusterName",
                "Namespace",
                "PodName",
                "FullPodName",
                "ContainerName",
            ],
            &[
                "ClusterName",
                "Namespace",
                "PodName",
                "FullPodName",
                "ContainerName",
                "NetworkInterfaceId",
            ],
        ],
    },
    Declaration {
        metrics: &[
            "pod_efa_rx_bytes",
            "pod_efa_tx_bytes",
            "pod_efa_rx_dropped",
            "pod_efa_rdma_read_bytes",
            "pod_efa_rdma_write_bytes",
            "pod_efa_rdma_write_recv_bytes",
            "pod_efa_retrans_bytes",
            "pod_efa_retrans_pkts",
            "pod_efa_retrans_timeout_events",
            "pod_efa_impaired_remote_conn_events",
            "pod_efa_unresponsive_remote_events",
        ],
        dimensions: &[
            &["ClusterName"],
            &["ClusterName", "Namespace"],
            &["ClusterName", "Namespace", "Service"],
            &["ClusterName", "Namespace", "PodName"],
            &["ClusterName", "Namespace", "PodName", "FullPodName"],
            &[
                "ClusterName",
                "Namespace",
                "PodName",
                "FullPodName",
                "NetworkInterfaceId",
            ],
        ],
    },
    Declaration {
        metrics: &[
            "node_efa_rx_bytes",
            "node_efa_tx_bytes",
            "node_efa_rx_dropped",
            "node_efa_rdma_read_bytes",
            "node_efa_rdma_write_bytes",
            "node_efa_rdma_write_recv_bytes",
            "node_efa_retrans_bytes",
            "node_efa_retrans_pkts",
            "node_efa_retrans_timeout_events",
            "node_efa_impaired_remote_conn_events",
            "node_efa_unresponsive_remote_events",
        ],
        dimensions: &[
            &["ClusterName"],
            &["ClusterName", "NodeName", "InstanceId"],
            &[
                "ClusterName",
                "NodeName",
                "InstanceId",
                "InstanceType",
                "NetworkInterfaceId",
            ],
        ],
    },
    Declaration {
        metrics: &[
            NODE_GPU_LIMIT,
            NODE_GPU_USAGE_TOTAL,
            NODE_GPU_RESERVED_CAPACITY,
        ],
        dimensions: &[&["NodeName", "InstanceId", "ClusterName"], &["ClusterName"]],
    },
    Declaration {
        metrics: &[
            POD_GPU_REQUEST,
            POD_GPU_LIMIT,
            POD_GPU_USAGE_TOTAL,
            POD_GPU_RESERVED_CAPACITY,
        ],
        dimensions: &[
            &["PodName", "Namespace", "ClusterName"],
            &["ClusterName"],
            &["FullPodName", "PodName", "Namespace", "ClusterName"],
            &["Service", "Namespace", "ClusterName"],
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::super::{Unit, directives_for, unit_of};
    use super::*;
    use serde_json::{Map, Value, json};

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_level_of_every_measurement_is_declared_once() {
        for (m, _) in GPU_MEASUREMENTS.iter().chain(EFA_MEASUREMENTS.iter()) {
            for level in ["container_", "pod_", "node_"] {
                let name = format!("{level}{m}");
                let n = DECLARATIONS
                    .iter()
                    .filter(|d| d.metrics.contains(&name.as_str()))
                    .count();
                assert_eq!(n, 1, "{name}");
            }
        }
        let declared: usize = DECLARATIONS.iter().map(|d| d.metrics.len()).sum();
        assert_eq!(declared, 3 * 7 + 3 * 11 + 3 + 4);
    }

    /// No accelerator selector matches another field by substring (declarations match
    /// unanchored), and no existing selector matches an accelerator field.
    #[test]
    fn selectors_match_only_their_own_fields() {
        let ours: Vec<&str> = DECLARATIONS
            .iter()
            .flat_map(|d| d.metrics.iter().copied())
            .collect();
        for a in &ours {
            for b in &ours {
                if a != b {
                    assert!(!b.contains(a), "{a} matches {b}");
                }
            }
        }
        for d in super::super::ENHANCED
            .iter()
            .chain(super::super::STANDARD)
            .chain(super::super::CONTROL_PLANE)
        {
            for sel in d.metrics {
                for a in &ours {
                    assert!(!a.contains(sel), "{sel} matches {a}");
                }
            }
        }
    }

    #[test]
    fn units_follow_the_reference() {
        for (m, u) in [
            ("node_gpu_utilization", Unit::Percent),
            ("pod_gpu_memory_utilization", Unit::Percent),
            ("container_gpu_tensor_core_utilization", Unit::Percent),
            ("container_gpu_memory_total", Unit::Bytes),
            ("node_gpu_memory_used", Unit::Bytes),
            ("node_gpu_power_draw", Unit::None),
            ("pod_gpu_temperature", Unit::None),
            ("node_efa_rx_bytes", Unit::BytesPerSecond),
            ("pod_efa_rdma_write_recv_bytes", Unit::BytesPerSecond),
            ("container_efa_retrans_bytes", Unit::BytesPerSecond),
            ("node_efa_rx_dropped", Unit::CountPerSecond),
            ("node_efa_retrans_pkts", Unit::CountPerSecond),
            ("pod_efa_impaired_remote_conn_events", Unit::CountPerSecond),
            ("node_gpu_limit", Unit::Count),
            ("pod_gpu_usage_total", Unit::Count),
            ("node_gpu_reserved_capacity", Unit::Percent),
        ] {
            assert_eq!(unit_of(m), u, "{m}");
        }
        assert_eq!(super::unit_of("node_cpu_utilization"), None);
    }

    #[test]
    fn gpu_events_get_the_reference_dimension_sets_in_both_modes() {
        let node = obj(json!({
            "Type": "NodeGPU", "ClusterName": "c1", "NodeName": "n", "InstanceId": "i-1",
            "InstanceType": "g5.12xlarge", "GpuDevice": "nvidia0", "UUID": "GPU-1",
            "node_gpu_utilization": 87, "node_gpu_memory_used": 1024.0, "node_gpu_power_draw": 201.5
        }));
        for enhanced in [false, true] {
            let d = directives_for(&node, enhanced);
            assert_eq!(d.len(), 1, "{d:?}");
            assert_eq!(
                d[0].dimensions,
                vec![
                    vec!["ClusterName"],
                    vec!["ClusterName", "InstanceId", "NodeName"],
                    vec![
                        "ClusterName",
                        "GpuDevice",
                        "InstanceId",
                        "InstanceType",
                        "NodeName"
                    ],
                ]
            );
            let units: Vec<_> = d[0]
                .metrics
                .iter()
                .map(|m| (m.name.as_str(), m.unit.as_deref()))
                .collect();
            assert_eq!(
                units,
                [
                    ("node_gpu_utilization", Some("Percent")),
                    ("node_gpu_memory_used", Some("Bytes")),
                    ("node_gpu_power_draw", None)
                ]
            );
        }
        // A pod's EFA event without NetworkInterfaceId: that set is not applied.
        let pod = obj(json!({
            "Type": "PodEFA", "ClusterName": "c1", "Namespace": "ml", "PodName": "trainer",
            "FullPodName": "trainer-0", "EfaDevice": "rdmap16s27", "pod_efa_rx_bytes": 1.5
        }));
        assert_eq!(
            directives_for(&pod, true)[0].dimensions,
            vec![
                vec!["ClusterName"],
                vec!["ClusterName", "Namespace"],
                vec!["ClusterName", "Namespace", "PodName"],
                vec!["ClusterName", "FullPodName", "Namespace", "PodName"],
            ]
        );
    }

    #[test]
    fn every_accelerator_type_has_sources() {
        for t in [
            types::CONTAINER_GPU,
            types::POD_GPU,
            types::NODE_GPU,
            types::CONTAINER_EFA,
            types::POD_EFA,
            types::NODE_EFA,
        ] {
            assert!(is_accelerator_type(t));
            assert_eq!(super::super::sources_of(t), sources_of(t));
        }
        assert_eq!(
            super::super::sources_of(types::CONTAINER_GPU),
            ["dcgm", "pod", "calculated"]
        );
        assert!(!is_accelerator_type(types::NODE));
    }
}
