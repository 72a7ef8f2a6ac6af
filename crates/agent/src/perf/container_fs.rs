//! ContainerFS events (reference §1.3, §2.3): one per container of this node's pods, with the
//! container's identity, the `device` and `fstype` of the filesystem its writable layer lives
//! on, and `container_filesystem_{capacity,usage,available,utilization,inodes,inodes_free}`.
//!
//! The numbers are the kubelet's (`/stats/summary`, each container's `rootfs`;
//! [`crate::summary`]): usage is the writable layer, capacity, available and the inode counts
//! those of the filesystem holding it — cAdvisor's meaning (the filesystem's size as the
//! limit, since no runtime limits a container's layer), for every CRI runtime rather than
//! docker only. Unlike cAdvisor's docker handler, the container's log files are not part of
//! the usage: the kubelet reports them apart (`logs`), on the filesystem of `/var/log/pods`.
//!
//! The device is the mount, in the host's mount table, that holds the runtime's state
//! directory (`/var/lib/containerd`, `/var/lib/docker`, `/var/lib/containers/storage` for
//! cri-o): what cAdvisor's `GetDirFsDevice` finds for the layer's directory. It is written as
//! NodeFS writes it (the mount's source, the kernel's filesystem type), so a ContainerFS event
//! and the NodeFS event of its filesystem share `device`. As upstream, only devices matching
//! `^(tmpfs|/dev/.*|overlay)$` are reported, and a container without a device is left out.

use super::event::{Ev, Fields, percent};
use super::pods::PodInfo;
use super::{Collector, Inputs, NodeIdentity};
use crate::host::MountInfo;
use kinsight_model::catalogue::{keys, types};

/// Where a CRI runtime keeps its containers' layers, by the scheme of `containerID`.
fn runtime_state_dir(runtime: Option<&str>) -> Option<&'static str> {
    match runtime? {
        "containerd" => Some("/var/lib/containerd"),
        "docker" => Some("/var/lib/docker"),
        "cri-o" => Some("/var/lib/containers/storage"),
        _ => None,
    }
}

/// The mount holding `dir`: the longest mount point that is `dir` or one of its ancestors;
/// of mounts on the same point, the last (it hides the others).
pub(super) fn mount_of<'a>(mounts: &'a [MountInfo], dir: &str) -> Option<&'a MountInfo> {
    let holds = |m: &&MountInfo| {
        let p = m.mount_point.trim_end_matches('/');
        p.is_empty() || dir == p || dir.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
    };
    mounts
        .iter()
        .filter(holds)
        .fold(None, |best: Option<&MountInfo>, m| match best {
            Some(b) if b.mount_point.len() > m.mount_point.len() => Some(b),
            _ => Some(m),
        })
}

/// cAdvisor's filter on filesystem devices (`^(tmpfs|/dev/.*|overlay)$`).
fn reported_device(device: &str) -> bool {
    device == "tmpfs" || device == "overlay" || device.starts_with("/dev/")
}

impl Collector {
    pub(super) fn container_fs_events(
        &mut self,
        ts: i64,
        inputs: &Inputs<'_>,
        pods: Option<&[PodInfo]>,
        id: &NodeIdentity,
        out: &mut Vec<Fields>,
    ) {
        let (Some(summary), Some(pods)) = (inputs.summary, pods) else {
            return;
        };
        for pod in pods {
            if pod
                .node_name
                .as_ref()
                .is_some_and(|n| n != &self.settings.node_name)
            {
                continue;
            }
            let service = inputs
                .services
                .and_then(|s| s.get(&(pod.namespace.clone(), pod.full_name.clone())))
                .cloned();
            for c in &pod.containers {
                let Some(rootfs) = summary.container(&pod.uid, &c.name).and_then(|s| s.rootfs)
                else {
                    continue;
                };
                let Some(usage) = rootfs.used_bytes else {
                    continue;
                };
                let Some(mount) = runtime_state_dir(c.runtime.as_deref())
                    .and_then(|dir| mount_of(&self.mounts, dir))
                    .filter(|m| reported_device(&m.device))
                    .cloned()
                else {
                    continue;
                };
                let mut ev = Ev::new(types::CONTAINER_FS, ts, &self.settings.cluster_name);
                id.apply(&mut ev, &self.settings.node_name);
                self.pod_identity(&mut ev, pod, service.as_deref(), Some(c));
                ev.name(keys::DEVICE, &mount.device)
                    .name(keys::FSTYPE, &mount.fstype);
                let name = self.devices.name_of(mount.dev);
                self.device_volume_ids(&mut ev, name.as_deref());
                ev.opt_u("container_filesystem_capacity", rootfs.capacity_bytes)
                    .u("container_filesystem_usage", usage)
                    .opt_u("container_filesystem_available", rootfs.available_bytes);
                if let Some(cap) = rootfs.capacity_bytes {
                    ev.opt(
                        "container_filesystem_utilization",
                        percent(usage as f64, cap as f64),
                    );
                }
                if let (Some(inodes), Some(free)) = (rootfs.inodes, rootfs.inodes_free) {
                    ev.u("container_filesystem_inodes", inodes)
                        .u("container_filesystem_inodes_free", free);
                }
                out.push(ev.into_fields());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(at: &str, device: &str) -> MountInfo {
        MountInfo {
            dev: (259, 1),
            mount_point: at.into(),
            fstype: "xfs".into(),
            device: device.into(),
        }
    }

    #[test]
    fn the_mount_holding_a_directory() {
        let mounts = [
            m("/", "/dev/nvme0n1p1"),
            m("/var/lib/containerd", "/dev/nvme1n1"),
            m("/var/lib/containerd-old", "/dev/nvme2n1"),
            m("/var/lib/kubelet", "/dev/nvme3n1"),
        ];
        let at = |d: &str| mount_of(&mounts, d).map(|m| m.device.as_str());
        assert_eq!(at("/var/lib/containerd"), Some("/dev/nvme1n1"));
        assert_eq!(at("/var/lib/docker"), Some("/dev/nvme0n1p1"));
        assert_eq!(
            at("/var/lib/containerd-old/x"),
            Some("/dev/nvme2n1"),
            "a name prefix is not a path prefix"
        );
        // A later mount on the same point hides the earlier one.
        let over = [m("/", "/dev/a"), m("/", "/dev/b")];
        assert_eq!(
            mount_of(&over, "/var/lib/containerd").map(|m| m.device.as_str()),
            Some("/dev/b")
        );
        assert!(mount_of(&[], "/x").is_none());
        assert!(reported_device("/dev/nvme0n1p1") && reported_device("overlay"));
        assert!(!reported_device("shm") && !reported_device("proc"));
        assert_eq!(
            runtime_state_dir(Some("cri-o")),
            Some("/var/lib/containers/storage")
        );
        assert_eq!(runtime_state_dir(None), None);
    }
}
