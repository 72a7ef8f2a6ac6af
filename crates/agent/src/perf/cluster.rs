//! Cluster-scoped events, emitted only by the elected leader from the API server's lists:
//! Cluster, ClusterNamespace, ClusterService, and in enhanced mode the workload types and the
//! status of Pending pods (reference §1.3, §2.3, §4.4).

use super::Collector;
use super::event::{Ev, Fields};
use super::pods::{self, Owners};
use crate::apiserver::ClusterState;
use kinsight_model::catalogue::{keys, types};
use serde_json::json;
use std::collections::BTreeMap;

/// Node conditions that make a node count as failed; `Ready` is deliberately not one of them
/// (reference §2.3, §9 item 5).
const FAILURE_CONDITIONS: [&str; 4] = [
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

impl Collector {
    pub(super) fn cluster_events(&mut self, ts: i64, state: &ClusterState, out: &mut Vec<Fields>) {
        let cluster = self.settings.cluster_name.clone();
        let leader = self.settings.node_name.clone();
        let enhanced = self.settings.enhanced;

        let failed = state
            .nodes
            .iter()
            .filter(|n| {
                let conds = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_deref())
                    .unwrap_or(&[]);
                conds
                    .iter()
                    .any(|c| FAILURE_CONDITIONS.contains(&c.type_.as_str()) && c.status != "False")
            })
            .count();
        let mut running_by_ns: BTreeMap<String, u64> = BTreeMap::new();
        for p in &state.pods {
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                if let Some(ns) = &p.metadata.namespace {
                    *running_by_ns.entry(ns.clone()).or_default() += 1;
                }
            }
        }

        let mut ev = Ev::new(types::CLUSTER, ts, &cluster);
        ev.s(keys::NODE_NAME, leader.clone());
        ev.u("cluster_node_count", state.nodes.len() as u64)
            .u("cluster_failed_node_count", failed as u64);
        if enhanced {
            ev.u(
                "cluster_number_of_running_pods",
                running_by_ns.values().sum(),
            );
        }
        out.push(ev.into_fields());

        // Ingress objects per namespace (enhanced mode: `namespace_ingress_count`, declared by
        // the CloudWatch agent with {Namespace, ClusterName}, {ClusterName}; its producer is not
        // in the receiver the reference read, so the count is kube-state-metrics' — every
        // Ingress of the namespace, whatever its class or status).
        let ingresses_by_ns: Option<BTreeMap<&str, u64>> = state.ingresses.as_ref().map(|list| {
            let mut m = BTreeMap::new();
            for i in list {
                if let Some(ns) = &i.metadata.namespace {
                    *m.entry(ns.as_str()).or_default() += 1;
                }
            }
            m
        });
        // One event per namespace with running pods — a namespace without any has no running
        // pod count (reference §2.3) — or, when Ingresses are counted, with Ingresses.
        let mut namespaces: Vec<&str> = running_by_ns.keys().map(String::as_str).collect();
        if let Some(by_ns) = &ingresses_by_ns {
            namespaces.extend(by_ns.keys().copied());
            namespaces.sort_unstable();
            namespaces.dedup();
        }
        for ns in namespaces {
            let mut ev = Ev::new(types::CLUSTER_NAMESPACE, ts, &cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::NAMESPACE, ns.to_string());
            ev.v(keys::KUBERNETES, json!({"namespace_name": ns}));
            if let Some(n) = running_by_ns.get(ns) {
                ev.u("namespace_number_of_running_pods", *n);
            }
            if let Some(by_ns) = &ingresses_by_ns {
                ev.u(
                    "namespace_ingress_count",
                    by_ns.get(ns).copied().unwrap_or(0),
                );
            }
            out.push(ev.into_fields());
        }

        // Ready Endpoints addresses that point at Pods; Services with none emit nothing.
        for ep in &state.endpoints {
            let (Some(ns), Some(svc)) = (&ep.metadata.namespace, &ep.metadata.name) else {
                continue;
            };
            let ready = ep
                .subsets
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .flat_map(|s| s.addresses.as_deref().unwrap_or(&[]))
                .filter(|a| a.target_ref.as_ref().and_then(|t| t.kind.as_deref()) == Some("Pod"))
                .count();
            if ready == 0 {
                continue;
            }
            let mut ev = Ev::new(types::CLUSTER_SERVICE, ts, &cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::SERVICE, svc.clone())
                .s(keys::NAMESPACE, ns.clone());
            ev.v(
                keys::KUBERNETES,
                json!({"namespace_name": ns, "service_name": svc}),
            );
            ev.u("service_number_of_running_pods", ready as u64);
            out.push(ev.into_fields());
        }

        if enhanced {
            self.workload_type_events(ts, state, out);
            self.pending_pod_events(ts, state, out);
        }
    }

    fn workload_type_events(&self, ts: i64, state: &ClusterState, out: &mut Vec<Fields>) {
        let cluster = &self.settings.cluster_name;
        let leader = &self.settings.node_name;
        let mut push = |ty: &'static str,
                        ns: Option<&String>,
                        name: Option<&String>,
                        fields: [(&'static str, Option<i32>); 4]| {
            let (Some(ns), Some(name)) = (ns, name) else {
                return;
            };
            let mut ev = Ev::new(ty, ts, cluster);
            ev.s(keys::NODE_NAME, leader.clone())
                .s(keys::POD_NAME, name.clone())
                .s(keys::NAMESPACE, ns.clone());
            for (k, v) in fields {
                ev.u(k, v.unwrap_or(0).max(0) as u64);
            }
            out.push(ev.into_fields());
        };
        for d in &state.deployments {
            let s = d.status.as_ref();
            push(
                types::CLUSTER_DEPLOYMENT,
                d.metadata.namespace.as_ref(),
                d.metadata.name.as_ref(),
                [
                    ("replicas_desired", d.spec.as_ref().and_then(|s| s.replicas)),
                    ("replicas_ready", s.and_then(|s| s.ready_replicas)),
                    (
                        "status_replicas_available",
                        s.and_then(|s| s.available_replicas),
                    ),
                    (
                        "status_replicas_unavailable",
                        s.and_then(|s| s.unavailable_replicas),
                    ),
                ],
            );
        }
        for d in &state.daemon_sets {
            let s = d.status.as_ref();
            // replicas_ready is currentNumberScheduled for DaemonSets, as upstream does (§9 item 12).
            push(
                types::CLUSTER_DAEMON_SET,
                d.metadata.namespace.as_ref(),
                d.metadata.name.as_ref(),
                [
                    ("replicas_desired", s.map(|s| s.desired_number_scheduled)),
                    ("replicas_ready", s.map(|s| s.current_number_scheduled)),
                    (
                        "status_replicas_available",
                        s.and_then(|s| s.number_available),
                    ),
                    (
                        "status_replicas_unavailable",
                        s.and_then(|s| s.number_unavailable),
                    ),
                ],
            );
        }
        for d in &state.stateful_sets {
            let s = d.status.as_ref();
            push(
                types::CLUSTER_STATEFUL_SET,
                d.metadata.namespace.as_ref(),
                d.metadata.name.as_ref(),
                [
                    ("replicas_desired", d.spec.as_ref().and_then(|s| s.replicas)),
                    ("replicas_ready", s.and_then(|s| s.ready_replicas)),
                    (
                        "status_replicas_available",
                        s.and_then(|s| s.available_replicas),
                    ),
                    ("status_replicas_unavailable", None),
                ],
            );
        }
        for d in &state.replica_sets {
            let s = d.status.as_ref();
            push(
                types::CLUSTER_REPLICA_SET,
                d.metadata.namespace.as_ref(),
                d.metadata.name.as_ref(),
                [
                    ("replicas_desired", d.spec.as_ref().and_then(|s| s.replicas)),
                    ("replicas_ready", s.and_then(|s| s.ready_replicas)),
                    (
                        "status_replicas_available",
                        s.and_then(|s| s.available_replicas),
                    ),
                    ("status_replicas_unavailable", None),
                ],
            );
        }
    }

    /// Pending pods have no node to report them: the leader emits their status fields, with no
    /// NodeName, into the stream `pending` (reference §1.3).
    fn pending_pod_events(&self, ts: i64, state: &ClusterState, out: &mut Vec<Fields>) {
        let owners = Owners {
            replica_set_to_deployment: replica_set_owners(state),
        };
        for p in &state.pods {
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending") {
                continue;
            }
            let Some(info) = pods::pod_info(p, self.settings.prefer_full_pod_name, &owners) else {
                continue;
            };
            let mut ev = Ev::new(types::POD, ts, &self.settings.cluster_name);
            ev.s(keys::NAMESPACE, info.namespace.clone())
                .s(keys::POD_NAME, info.pod_name.clone())
                .s(keys::FULL_POD_NAME, info.full_name.clone());
            ev.s(keys::POD_STATUS, info.phase.clone());
            ev.v(keys::KUBERNETES, json!({"namespace_name": info.namespace, "pod_id": info.uid, "pod_name": info.full_name}));
            super::workload::pod_status_fields(&mut ev, &info);
            out.push(ev.into_fields());
        }
    }
}

/// `(namespace, ReplicaSet)` → owning Deployment, from the API server's ReplicaSets.
pub fn replica_set_owners(
    state: &ClusterState,
) -> std::collections::HashMap<(String, String), String> {
    let mut m = std::collections::HashMap::new();
    for rs in &state.replica_sets {
        let (Some(ns), Some(name)) = (&rs.metadata.namespace, &rs.metadata.name) else {
            continue;
        };
        if let Some(d) = rs
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .find(|o| o.kind == "Deployment")
        {
            m.insert((ns.clone(), name.clone()), d.name.clone());
        }
    }
    m
}
