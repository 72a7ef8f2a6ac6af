//! Pod metadata for enrichment (reference §3.3), fed with pod lists from the kubelet's `/pods`
//! (or any other source) through a channel, so reading logs never waits for the kubelet.
//!
//! A pod that disappears from the list is kept for `metadata_retention_seconds`, so the last
//! lines of a deleted pod, read after it is gone, are still enriched (issue [2/8]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// What enrichment needs of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub containers: HashMap<String, ContainerMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerMeta {
    pub image: Option<String>,
    /// Image digest reference from the status' `imageID` (`container_hash` in the record).
    pub image_id: Option<String>,
    /// Current container id without the runtime prefix.
    pub container_id: Option<String>,
    pub restart_count: i32,
    /// Id of the previous instance (`lastState.terminated.containerID`).
    pub last_container_id: Option<String>,
}

impl PodMeta {
    pub fn from_pod(pod: &Pod) -> Option<PodMeta> {
        let md = &pod.metadata;
        let mut meta = PodMeta {
            namespace: md.namespace.clone()?,
            name: md.name.clone()?,
            uid: md.uid.clone()?,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            labels: md.labels.clone().unwrap_or_default(),
            annotations: md.annotations.clone().unwrap_or_default(),
            containers: HashMap::new(),
        };
        if let Some(spec) = &pod.spec {
            for c in spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
            {
                meta.containers.insert(
                    c.name.clone(),
                    ContainerMeta {
                        image: c.image.clone(),
                        ..ContainerMeta::default()
                    },
                );
            }
        }
        if let Some(status) = &pod.status {
            for s in status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
            {
                let c = meta.containers.entry(s.name.clone()).or_default();
                if !s.image.is_empty() {
                    c.image = Some(s.image.clone());
                }
                if !s.image_id.is_empty() {
                    c.image_id = Some(strip_runtime(&s.image_id).to_string());
                }
                c.container_id = s
                    .container_id
                    .as_deref()
                    .map(|i| strip_runtime(i).to_string());
                c.restart_count = s.restart_count;
                c.last_container_id = s
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .and_then(|t| t.container_id.as_deref())
                    .map(|i| strip_runtime(i).to_string());
            }
        }
        Some(meta)
    }

    /// The container id of `<restart>.log`: the current instance if its restart count matches,
    /// the previous one if it is one behind.
    pub fn container_id_for(&self, container: &str, restart: u32) -> Option<&str> {
        let c = self.containers.get(container)?;
        if c.restart_count as i64 == restart as i64 {
            c.container_id.as_deref()
        } else if c.restart_count as i64 == restart as i64 + 1 {
            c.last_container_id.as_deref()
        } else {
            None
        }
    }
}

/// `containerd://abc` → `abc`; `docker-pullable://img@sha256:…` → `img@sha256:…`.
fn strip_runtime(s: &str) -> &str {
    s.split_once("://").map(|(_, r)| r).unwrap_or(s)
}

#[derive(Debug)]
struct Cached {
    meta: Arc<PodMeta>,
    gone_since: Option<Instant>,
}

/// Pods by uid, with deleted pods kept for a while.
#[derive(Debug)]
pub struct PodCache {
    by_uid: HashMap<String, Cached>,
    retention: Duration,
    generation: u64,
}

impl PodCache {
    pub fn new(retention: Duration) -> PodCache {
        PodCache {
            by_uid: HashMap::new(),
            retention,
            generation: 0,
        }
    }

    /// Bumped whenever what a lookup may return changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Applies a fresh full pod list.
    pub fn update(&mut self, pods: &[Pod], now: Instant) {
        let mut present = std::collections::HashSet::new();
        for p in pods {
            let Some(meta) = PodMeta::from_pod(p) else {
                continue;
            };
            present.insert(meta.uid.clone());
            match self.by_uid.get_mut(&meta.uid) {
                Some(c) if *c.meta == meta && c.gone_since.is_none() => {}
                Some(c) => {
                    c.meta = Arc::new(meta);
                    c.gone_since = None;
                    self.generation += 1;
                }
                None => {
                    self.by_uid.insert(
                        meta.uid.clone(),
                        Cached {
                            meta: Arc::new(meta),
                            gone_since: None,
                        },
                    );
                    self.generation += 1;
                }
            }
        }
        for (uid, c) in self.by_uid.iter_mut() {
            if !present.contains(uid) && c.gone_since.is_none() {
                c.gone_since = Some(now);
            }
        }
        let before = self.by_uid.len();
        let retention = self.retention;
        self.by_uid.retain(|_, c| {
            c.gone_since
                .is_none_or(|t| now.duration_since(t) < retention)
        });
        if self.by_uid.len() != before {
            self.generation += 1;
        }
    }

    pub fn get(&self, uid: &str) -> Option<&Arc<PodMeta>> {
        self.by_uid.get(uid).map(|c| &c.meta)
    }

    /// The pod and container name of a container id (container hosts without a kubelet,
    /// whose log paths name only the id).
    pub fn find_container(&self, id: &str) -> Option<(&Arc<PodMeta>, &str)> {
        self.by_uid.values().find_map(|c| {
            c.meta
                .containers
                .iter()
                .find(|(_, m)| {
                    m.container_id.as_deref() == Some(id)
                        || m.last_container_id.as_deref() == Some(id)
                })
                .map(|(name, _)| (&c.meta, name.as_str()))
        })
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture_pods() -> Vec<Pod> {
        let text = include_str!("../../tests/fixtures/logs/pods.json");
        crate::kubelet::parse_pod_list(text.as_bytes()).unwrap()
    }

    #[test]
    fn recorded_pod_list_yields_enrichment_fields() {
        let pods = fixture_pods();
        let mut c = PodCache::new(Duration::from_secs(60));
        c.update(&pods, Instant::now());
        let api = c.get("7b3c1a52-2f0e-4d6a-9a61-3c0f6f2b7e11").unwrap();
        assert_eq!(api.namespace, "prod");
        assert_eq!(api.name, "api-7d9f8b6c5d-x2k4q");
        assert_eq!(
            api.node_name.as_deref(),
            Some("ip-10-0-1-23.eu-west-1.compute.internal")
        );
        assert_eq!(api.labels.get("app").map(String::as_str), Some("api"));
        let id = api.container_id_for("api", 1).unwrap();
        assert_eq!(id.len(), 64);
        assert!(
            api.container_id_for("api", 0).is_some(),
            "previous instance"
        );
        assert!(api.container_id_for("api", 7).is_none());
        let cm = &api.containers["api"];
        assert!(cm.image_id.as_deref().unwrap().contains("@sha256:"));
    }

    #[test]
    fn a_deleted_pod_is_kept_for_the_retention_then_dropped() {
        let pods = fixture_pods();
        let t0 = Instant::now();
        let mut c = PodCache::new(Duration::from_secs(60));
        c.update(&pods, t0);
        let n = c.len();
        let g = c.generation();
        c.update(&pods[1..], t0 + Duration::from_secs(1));
        assert_eq!(c.len(), n, "kept while retained");
        c.update(&pods[1..], t0 + Duration::from_secs(62));
        assert_eq!(c.len(), n - 1);
        assert!(c.generation() > g);
    }
}
