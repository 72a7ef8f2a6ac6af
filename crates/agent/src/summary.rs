//! The kubelet's Summary API (`GET /stats/summary`, `stats/v1alpha1`): the part the agent reads,
//! each container's writable layer (`rootfs`) — the source of the ContainerFS events.
//!
//! cAdvisor, which the CloudWatch agent embeds, measures a container's filesystem only for
//! docker (`du` of the container's layer directory); for containerd and cri-o it reports none,
//! so upstream emits no ContainerFS on today's EKS nodes (reference §1.3). The kubelet has the
//! numbers for every CRI runtime: `rootfs.usedBytes`/`inodesUsed` are the writable layer's (the
//! runtime's `ContainerStats.writable_layer`), `capacityBytes`/`availableBytes`/`inodes`/
//! `inodesFree` those of the filesystem the layer lives on (the image filesystem). Reading it
//! needs `get` on `nodes/stats`.
//!
//! Fields the agent does not use are not modelled; any of those it does use may be missing
//! (a container just started has no stats yet), so every number is optional.

use serde::Deserialize;

/// The answer of `/stats/summary`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Summary {
    #[serde(default)]
    pub node: NodeStats,
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    #[serde(default)]
    pub node_name: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ContainerStats {
    pub name: String,
    /// The container's writable layer, on the image filesystem.
    pub rootfs: Option<FsStats>,
    /// The container's log files, on the filesystem of the kubelet's log directory.
    pub logs: Option<FsStats>,
}

/// One filesystem measurement (`FsStats`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

impl Summary {
    /// A container's statistics by pod uid and container name.
    pub fn container(&self, pod_uid: &str, name: &str) -> Option<&ContainerStats> {
        self.pods
            .iter()
            .find(|p| p.pod_ref.uid == pod_uid)?
            .containers
            .iter()
            .find(|c| c.name == name)
    }
}

/// Parses a Summary document.
pub fn parse_summary(body: &[u8]) -> Result<Summary, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_summary(b"<html>").is_err());
        assert!(parse_summary(br#"{"pods": [{"podRef": 5}]}"#).is_err());
        assert_eq!(parse_summary(b"{}").unwrap(), Summary::default());
    }

    #[test]
    fn containers_by_pod_uid_and_name() {
        let s = parse_summary(
            br#"{"node": {"nodeName": "n1", "fs": {"usedBytes": 1}},
                 "pods": [{"podRef": {"name": "p", "namespace": "ns", "uid": "u1"},
                           "containers": [{"name": "app", "rootfs": {"usedBytes": 24576, "capacityBytes": 100, "inodesUsed": 7}},
                                          {"name": "sidecar"}]}]}"#,
        )
        .unwrap();
        assert_eq!(s.node.node_name, "n1");
        let app = s.container("u1", "app").unwrap();
        let rootfs = app.rootfs.unwrap();
        assert_eq!(rootfs.used_bytes, Some(24576));
        assert_eq!(rootfs.available_bytes, None);
        assert!(s.container("u1", "sidecar").unwrap().rootfs.is_none());
        assert!(s.container("u2", "app").is_none());
    }
}
