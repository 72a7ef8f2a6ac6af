//! What the performance events need to know of a pod, extracted from the kubelet's (or the
//! API server's) Pod objects: identity with the reference's name normalization (§2.6),
//! requests and limits (§2.3), container states and restart counts.

use super::quantity::parse_quantity;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use std::collections::{BTreeMap, HashMap};

/// Characters of the random suffixes Kubernetes appends to generated names.
const K8S_RANDOM_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    Waiting,
    Terminated,
    Unknown,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Running => "Running",
            ContainerState::Waiting => "Waiting",
            ContainerState::Terminated => "Terminated",
            ContainerState::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    /// Runtime scheme of `containerID` (`containerd`, `docker`, `cri-o`).
    pub runtime: Option<String>,
    pub id: Option<String>,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub state: ContainerState,
    pub reason: Option<String>,
    pub last_termination_reason: Option<String>,
    pub restarts: u64,
    /// Millicores.
    pub cpu_request_m: Option<f64>,
    pub cpu_limit_m: Option<f64>,
    /// Bytes.
    pub mem_request: Option<f64>,
    pub mem_limit: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    /// The pod's own `metadata.name` (FullPodName).
    pub full_name: String,
    /// Controller-normalized name (PodName).
    pub pod_name: String,
    /// `(owner_kind, owner_name)` after normalization.
    pub owners: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub phase: String,
    pub host_network: bool,
    pub node_name: Option<String>,
    /// Spec containers (init containers are ignored, §2.3) merged with their statuses.
    pub containers: Vec<ContainerInfo>,
    /// `len(status.containerStatuses)`.
    pub status_count: usize,
    pub conditions: BTreeMap<String, String>,
}

impl PodInfo {
    pub fn is_terminated(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }

    pub fn running_containers(&self) -> usize {
        self.containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .count()
    }

    pub fn restarts_total(&self) -> u64 {
        self.containers.iter().map(|c| c.restarts).sum()
    }

    /// Σ declared CPU requests in millicores, `None` if the sum is 0 (field omitted).
    pub fn cpu_request_m(&self) -> Option<f64> {
        let s: f64 = self.containers.iter().filter_map(|c| c.cpu_request_m).sum();
        (s > 0.0).then_some(s)
    }

    /// Σ CPU limits, only when every container has one (and the sum is not 0).
    pub fn cpu_limit_m(&self) -> Option<f64> {
        all_sum(self.containers.iter().map(|c| c.cpu_limit_m))
    }

    pub fn mem_request(&self) -> Option<f64> {
        let s: f64 = self.containers.iter().filter_map(|c| c.mem_request).sum();
        (s > 0.0).then_some(s)
    }

    pub fn mem_limit(&self) -> Option<f64> {
        all_sum(self.containers.iter().map(|c| c.mem_limit))
    }
}

fn all_sum(it: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut sum = 0.0;
    let mut any = false;
    for v in it {
        sum += v?;
        any = true;
    }
    (any && sum != 0.0).then_some(sum)
}

/// Normalization context: ReplicaSet → Deployment names when the API server provided them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Owners {
    pub replica_set_to_deployment: HashMap<(String, String), String>,
}

/// Extracts a [`PodInfo`]; `None` for objects without uid, namespace or name.
pub fn pod_info(pod: &Pod, prefer_full_pod_name: bool, owners: &Owners) -> Option<PodInfo> {
    let meta = &pod.metadata;
    let uid = meta.uid.clone()?;
    let namespace = meta.namespace.clone()?;
    let full_name = meta.name.clone()?;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let statuses: &[ContainerStatus] = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    let spec_containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let mut containers: Vec<ContainerInfo> = spec_containers
        .iter()
        .map(|c| container_info(c, statuses.iter().find(|s| s.name == c.name)))
        .collect();
    // Statuses for containers missing from the spec (should not happen) still count.
    for s in statuses {
        if !spec_containers.iter().any(|c| c.name == s.name) {
            containers.push(container_info(
                &Container {
                    name: s.name.clone(),
                    ..Default::default()
                },
                Some(s),
            ));
        }
    }
    let (pod_name, owner_list) = normalize(
        &full_name,
        &namespace,
        meta.owner_references.as_deref().unwrap_or(&[]),
        prefer_full_pod_name,
        owners,
    );
    let conditions = status
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect()
        })
        .unwrap_or_default();
    Some(PodInfo {
        uid,
        namespace,
        full_name,
        pod_name,
        owners: owner_list,
        labels: meta.labels.clone().unwrap_or_default(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".to_string()),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        node_name: spec.and_then(|s| s.node_name.clone()),
        containers,
        status_count: statuses.len(),
        conditions,
    })
}

fn container_info(c: &Container, st: Option<&ContainerStatus>) -> ContainerInfo {
    let res = c.resources.as_ref();
    let q = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
             k: &str| {
        map.and_then(|m| m.get(k))
            .and_then(|v| parse_quantity(&v.0))
    };
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let (runtime, id) = match st.and_then(|s| s.container_id.as_deref()) {
        Some(cid) => match cid.split_once("://") {
            Some((rt, id)) => (Some(rt.to_string()), Some(id.to_string())),
            None => (None, Some(cid.to_string())),
        },
        None => (None, None),
    };
    let state = st.and_then(|s| s.state.as_ref());
    let (state_kind, reason) = match state {
        Some(s) if s.running.is_some() => (ContainerState::Running, None),
        Some(s) if s.waiting.is_some() => (
            ContainerState::Waiting,
            s.waiting.as_ref().and_then(|w| w.reason.clone()),
        ),
        Some(s) if s.terminated.is_some() => (
            ContainerState::Terminated,
            s.terminated.as_ref().and_then(|t| t.reason.clone()),
        ),
        _ => (ContainerState::Unknown, None),
    };
    ContainerInfo {
        name: c.name.clone(),
        runtime,
        id,
        image: st
            .map(|s| s.image.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| c.image.clone()),
        image_id: st.map(|s| s.image_id.clone()).filter(|s| !s.is_empty()),
        state: state_kind,
        reason,
        last_termination_reason: st
            .and_then(|s| s.last_state.as_ref())
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.reason.clone()),
        restarts: st.map(|s| s.restart_count.max(0) as u64).unwrap_or(0),
        cpu_request_m: q(requests, "cpu").map(|v| v * 1000.0),
        cpu_limit_m: q(limits, "cpu").map(|v| v * 1000.0),
        mem_request: q(requests, "memory"),
        mem_limit: q(limits, "memory"),
    }
}

/// PodName and owners per the reference's rules (§2.6).
fn normalize(
    name: &str,
    namespace: &str,
    refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    prefer_full: bool,
    owners: &Owners,
) -> (String, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut pod_name = None;
    for r in refs {
        let (kind, owner) = match r.kind.as_str() {
            "ReplicaSet" => match owners
                .replica_set_to_deployment
                .get(&(namespace.to_string(), r.name.clone()))
            {
                Some(d) => ("Deployment".to_string(), d.clone()),
                None => match strip_random_suffix(&r.name) {
                    Some(d) => ("Deployment".to_string(), d.to_string()),
                    None => ("ReplicaSet".to_string(), r.name.clone()),
                },
            },
            "Job" => match cronjob_of(&r.name) {
                Some(cj) => ("CronJob".to_string(), cj.to_string()),
                None if !prefer_full => ("Job".to_string(), cut_at_separator(&r.name).to_string()),
                None => ("Job".to_string(), r.name.clone()),
            },
            "StatefulSet" => {
                // StatefulSet pods keep their own (stable) name.
                out.push(("StatefulSet".to_string(), r.name.clone()));
                pod_name.get_or_insert_with(|| name.to_string());
                continue;
            }
            other => (other.to_string(), r.name.clone()),
        };
        pod_name.get_or_insert_with(|| owner.clone());
        out.push((kind, owner));
    }
    let pod_name = pod_name.unwrap_or_else(|| {
        if !prefer_full && name.starts_with("kube-proxy") {
            "kube-proxy".to_string()
        } else {
            name.to_string()
        }
    });
    (pod_name, out)
}

/// `<deployment>-<hash>` → `<deployment>` when the hash looks generated.
fn strip_random_suffix(name: &str) -> Option<&str> {
    let (base, suffix) = name.rsplit_once('-')?;
    (suffix.len() >= 3
        && suffix.chars().all(|c| K8S_RANDOM_ALPHABET.contains(c))
        && !base.is_empty())
    .then_some(base)
}

/// A CronJob's Job is `<cronjob>-<scheduled time in minutes>`: all digits, 8 or more.
fn cronjob_of(job: &str) -> Option<&str> {
    let (base, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.chars().all(|c| c.is_ascii_digit()) && !base.is_empty())
        .then_some(base)
}

fn cut_at_separator(name: &str) -> &str {
    match name.find(['.', '-']) {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_pods_are_named_after_the_deployment() {
        let p = pod(
            json!({"metadata": {"name": "api-7d9f8c6b5d-x2k4q", "namespace": "prod", "uid": "u1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8c6b5d", "uid": "r"}]}}),
        );
        let i = pod_info(&p, false, &Owners::default()).unwrap();
        assert_eq!(i.pod_name, "api");
        assert_eq!(
            i.owners,
            vec![("Deployment".to_string(), "api".to_string())]
        );
        assert_eq!(i.full_name, "api-7d9f8c6b5d-x2k4q");
    }

    #[test]
    fn other_owners() {
        let mk = |name: &str, kind: &str, owner: &str| {
            pod(
                json!({"metadata": {"name": name, "namespace": "n", "uid": "u",
            "ownerReferences": [{"apiVersion": "v1", "kind": kind, "name": owner, "uid": "o"}]}}),
            )
        };
        let o = Owners::default();
        assert_eq!(
            pod_info(&mk("fluent-abcde", "DaemonSet", "fluent"), false, &o)
                .unwrap()
                .pod_name,
            "fluent"
        );
        assert_eq!(
            pod_info(&mk("web-0", "StatefulSet", "web"), false, &o)
                .unwrap()
                .pod_name,
            "web-0"
        );
        let cj = pod_info(
            &mk("backup-28345678-abcde", "Job", "backup-28345678"),
            false,
            &o,
        )
        .unwrap();
        assert_eq!(cj.pod_name, "backup");
        assert_eq!(cj.owners[0].0, "CronJob");
        assert_eq!(
            pod_info(&mk("migrate-db-xyz", "Job", "migrate-db"), false, &o)
                .unwrap()
                .pod_name,
            "migrate"
        );
        assert_eq!(
            pod_info(&mk("migrate-db-xyz", "Job", "migrate-db"), true, &o)
                .unwrap()
                .pod_name,
            "migrate-db"
        );
        let bare = pod(
            json!({"metadata": {"name": "kube-proxy-ip-10-0-0-1", "namespace": "kube-system", "uid": "u"}}),
        );
        assert_eq!(pod_info(&bare, false, &o).unwrap().pod_name, "kube-proxy");
        assert_eq!(
            pod_info(&bare, true, &o).unwrap().pod_name,
            "kube-proxy-ip-10-0-0-1"
        );
        // A ReplicaSet whose suffix is not generated keeps its kind.
        assert_eq!(
            pod_info(&mk("x-1", "ReplicaSet", "plain-AB"), false, &o)
                .unwrap()
                .owners[0]
                .0,
            "ReplicaSet"
        );
    }

    #[test]
    fn requests_limits_and_statuses() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}},
                {"name": "b"}
            ]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "image": "img:1", "imageID": "sha", "containerID": "containerd://abc",
                 "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
                {"name": "b", "ready": false, "restartCount": 1, "image": "img:2", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        }));
        let i = pod_info(&p, false, &Owners::default()).unwrap();
        // The reference's worked example: one container with limit 1/request 1, one with neither.
        assert_eq!(i.cpu_request_m(), Some(1000.0));
        assert_eq!(i.cpu_limit_m(), None, "not every container has a limit");
        assert_eq!(i.mem_request(), Some(67108864.0));
        assert_eq!(i.running_containers(), 1);
        assert_eq!(i.restarts_total(), 3);
        assert_eq!(i.containers[0].runtime.as_deref(), Some("containerd"));
        assert_eq!(i.containers[0].id.as_deref(), Some("abc"));
        assert_eq!(
            i.containers[0].last_termination_reason.as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(i.containers[1].state, ContainerState::Waiting);
        assert_eq!(i.containers[1].reason.as_deref(), Some("CrashLoopBackOff"));
    }
}
