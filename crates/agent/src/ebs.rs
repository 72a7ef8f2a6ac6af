//! Which EBS volume a block device is — `EBSVolumeId` on NodeFS, NodeDiskIO and ContainerFS
//! events, and `ebs_volume_id` where the kubelet mounted the device as a persistent volume
//! (reference §1.1) — from sysfs and the mount table, without the EC2 API or IMDS.
//!
//! The CloudWatch agent asks EC2 `DescribeVolumes` for the volumes attached to its instance
//! (IAM `ec2:DescribeVolumes`) and follows each attachment's device name (`/dev/xvdb`) through
//! the NVMe symlinks under `/dev`. On Nitro instances every EBS volume is an NVMe device whose
//! controller reports the model `Amazon Elastic Block Store` and the volume id as its serial
//! number (`vol0abc…`, without the dash; udev's
//! `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc…` comes from it), so
//! `/sys/class/block/<disk>/device/{model,serial}` name the volume with no credentials at all. The availability zone of `aws://<az>/<vol-id>` is the Node's (its
//! `spec.providerID`, `aws:///us-east-1a/i-…`, or its `topology.kubernetes.io/zone` label).
//!
//! What this cannot see: Xen instances (`xvd*` devices have no such serial), and instance
//! store NVMe devices (model `Amazon EC2 NVMe Instance Storage`) are not EBS volumes.
//!
//! `ebs_volume_id`: upstream parses the in-tree `aws-ebs` plugin's mount points
//! (`…/kubernetes.io/aws-ebs/mounts/aws/<az>/<vol-id>`); that plugin is gone since Kubernetes
//! 1.27 and EBS persistent volumes are mounted by the EBS CSI driver under
//! `…/plugins/kubernetes.io/csi/…/globalmount` and `…/volumes/kubernetes.io~csi/<pv>/mount`,
//! whose paths do not name the volume. Both are recognised: the in-tree path by its text, a
//! CSI mount of an EBS NVMe device by the device's serial.

use crate::host::MountInfo;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The model an EBS volume's NVMe controller reports (padded with spaces in sysfs).
const EBS_NVME_MODEL: &str = "Amazon Elastic Block Store";

/// Block devices of one host, looked up by kernel name (`nvme1n1`, `nvme0n1p1`) or by device
/// number. Answers are kept for the life of the value: make one per collection (a volume
/// detached and another attached under the same name is then seen at the next one).
#[derive(Debug)]
pub struct BlockDevices {
    sys: PathBuf,
    zone: Option<String>,
    volumes: HashMap<String, Option<String>>,
}

impl BlockDevices {
    /// `host_root` holds the host's `/sys`; `zone` is the node's availability zone.
    pub fn new(host_root: &Path, zone: Option<&str>) -> BlockDevices {
        BlockDevices {
            sys: host_root.join("sys"),
            zone: zone.filter(|z| !z.is_empty()).map(str::to_string),
            volumes: HashMap::new(),
        }
    }

    /// The kernel name of the block device `major:minor` (`/sys/dev/block/M:m` links to it);
    /// `None` for filesystems with no block device (tmpfs, overlay: there is no such link).
    pub fn name_of(&self, dev: (u32, u32)) -> Option<String> {
        let link = self.sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
        let real = std::fs::canonicalize(link).ok()?;
        Some(real.file_name()?.to_string_lossy().into_owned())
    }

    /// The whole disk a device belongs to: itself, or the parent of a partition.
    fn disk_of(&self, name: &str) -> Option<String> {
        let dir = self.sys.join("class/block").join(name);
        if !dir.join("partition").exists() {
            return Some(name.to_string());
        }
        let real = std::fs::canonicalize(&dir).ok()?;
        Some(real.parent()?.file_name()?.to_string_lossy().into_owned())
    }

    /// The EBS volume id (`vol-0abc…`) of a device or of the disk it is a partition of.
    pub fn volume_of(&mut self, name: &str) -> Option<String> {
        if let Some(v) = self.volumes.get(name) {
            return v.clone();
        }
        let v = self.disk_of(name).and_then(|disk| {
            let dev = self.sys.join("class/block").join(&disk).join("device");
            let model = std::fs::read_to_string(dev.join("model")).ok()?;
            if model.trim() != EBS_NVME_MODEL {
                return None;
            }
            volume_id_from_serial(&std::fs::read_to_string(dev.join("serial")).ok()?)
        });
        self.volumes.insert(name.to_string(), v.clone());
        v
    }

    /// `EBSVolumeId`: `aws://<az>/<vol-id>` of a device, when it is an EBS volume and the
    /// node's zone is known.
    pub fn host_volume_id(&mut self, name: &str) -> Option<String> {
        let zone = self.zone.clone()?;
        let vol = self.volume_of(name)?;
        Some(format!("aws://{zone}/{vol}"))
    }

    /// `ebs_volume_id` per kernel device name: devices the kubelet mounted as EBS persistent
    /// volumes (see the module documentation).
    pub fn persistent_volumes(&mut self, mounts: &[MountInfo]) -> HashMap<String, String> {
        let mut out = HashMap::new();
        // A node has a few mounts per pod (projected volumes, root filesystems); only those of
        // a block device on a kubelet volume path are looked up in sysfs.
        for m in mounts.iter().filter(|m| m.device.starts_with("/dev/")) {
            let in_tree = in_tree_volume(&m.mount_point);
            if in_tree.is_none() && !is_kubelet_csi_mount(&m.mount_point) {
                continue;
            }
            let Some(name) = self.name_of(m.dev) else {
                continue;
            };
            if out.contains_key(&name) {
                continue;
            }
            if let Some(id) = in_tree.or_else(|| self.host_volume_id(&name)) {
                out.insert(name, id);
            }
        }
        out
    }
}

/// The NVMe serial of an EBS volume (`vol0abc…`, maybe padded) → `vol-0abc…`.
pub fn volume_id_from_serial(serial: &str) -> Option<String> {
    let s = serial.trim();
    let rest = s.strip_prefix("vol-").or_else(|| s.strip_prefix("vol"))?;
    (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| format!("vol-{rest}"))
}

/// The in-tree plugin's mount point `…kubernetes.io/aws-ebs/mounts/aws/<az>/vol-<id>` →
/// `aws://<az>/vol-<id>` (upstream's `kubernetes\.io/aws-ebs/mounts/aws/(.+)/(vol-\w+)$`).
pub fn in_tree_volume(mount_point: &str) -> Option<String> {
    const MARK: &str = "kubernetes.io/aws-ebs/mounts/aws/";
    let at = mount_point.find(MARK)?;
    let (zone, vol) = mount_point[at + MARK.len()..].rsplit_once('/')?;
    let id = vol.strip_prefix("vol-")?;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    (!zone.is_empty() && !id.is_empty() && id.bytes().all(word))
        .then(|| format!("aws://{zone}/{vol}"))
}

/// A mount the kubelet made for a CSI volume: the staging mount
/// (`<kubelet dir>/plugins/kubernetes.io/csi/<driver>/<hash>/globalmount`, or
/// `…/csi/pv/<pv>/globalmount` before Kubernetes 1.24) or a pod's publish mount
/// (`…/volumes/kubernetes.io~csi/<pv>/mount`).
/// A subPath's bind mount (`…/volume-subpaths/…`) is neither.
fn is_kubelet_csi_mount(mount_point: &str) -> bool {
    mount_point.contains("/plugins/kubernetes.io/csi/")
        || mount_point.contains("/volumes/kubernetes.io~csi/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn serials_and_mount_points() {
        assert_eq!(
            volume_id_from_serial("vol0123456789abcdef0        \n").as_deref(),
            Some("vol-0123456789abcdef0")
        );
        assert_eq!(
            volume_id_from_serial("vol-0123456789abcdef0").as_deref(),
            Some("vol-0123456789abcdef0")
        );
        // An instance store's serial.
        assert_eq!(volume_id_from_serial("AWS22C5B6D8E59F8A2F"), None);
        assert_eq!(volume_id_from_serial("vol"), None);
        assert_eq!(
            in_tree_volume(
                "/var/lib/kubelet/plugins/kubernetes.io/aws-ebs/mounts/aws/us-west-2b/vol-0d9f0816149eb2050"
            )
            .as_deref(),
            Some("aws://us-west-2b/vol-0d9f0816149eb2050")
        );
        assert_eq!(
            in_tree_volume("/var/lib/kubelet/plugins/kubernetes.io/aws-ebs/mounts/aws/vol-1"),
            None
        );
        assert_eq!(in_tree_volume("/data"), None);
        assert!(is_kubelet_csi_mount(
            "/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/4c7d0e6b2c9a/globalmount"
        ));
        assert!(is_kubelet_csi_mount(
            "/var/lib/kubelet/pods/0e4f3b2a-1c5d-4e6f-9a7b-8c9d0e1f2a3b/volumes/kubernetes.io~csi/pvc-1/mount"
        ));
        assert!(!is_kubelet_csi_mount(
            "/var/lib/kubelet/pods/0e4f3b2a/volume-subpaths/data/app/0"
        ));
    }

    /// A sysfs tree as a Nitro instance has it (relative links, as the kernel makes them):
    /// an EBS root volume with a partition, an EBS data volume, an instance store disk.
    fn nitro_sysfs(root: &Path) {
        let devices = root.join("sys/devices/pci0000:00");
        let disk =
            |ctrl: &str, pci: &str, name: &str, major_minor: &str, model: &str, serial: &str| {
                let c = devices.join(pci).join("nvme").join(ctrl);
                fs::create_dir_all(c.join(name)).unwrap();
                fs::write(c.join("model"), format!("{model:<40}\n")).unwrap();
                fs::write(c.join("serial"), format!("{serial:<20}\n")).unwrap();
                std::os::unix::fs::symlink("..", c.join(name).join("device")).ok();
                // /sys/class/block/<name> and /sys/dev/block/<M:m>: relative links into devices/.
                let rel = format!("../../devices/pci0000:00/{pci}/nvme/{ctrl}/{name}");
                std::os::unix::fs::symlink(&rel, root.join("sys/class/block").join(name)).unwrap();
                std::os::unix::fs::symlink(&rel, root.join("sys/dev/block").join(major_minor))
                    .unwrap();
                c.join(name)
            };
        fs::create_dir_all(root.join("sys/class/block")).unwrap();
        fs::create_dir_all(root.join("sys/dev/block")).unwrap();
        let root_disk = disk(
            "nvme0",
            "0000:00:04.0",
            "nvme0n1",
            "259:0",
            EBS_NVME_MODEL,
            "vol0a1b2c3d4e5f60718",
        );
        fs::create_dir_all(root_disk.join("nvme0n1p1")).unwrap();
        fs::write(root_disk.join("nvme0n1p1/partition"), "1\n").unwrap();
        let rel = "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1";
        std::os::unix::fs::symlink(rel, root.join("sys/class/block/nvme0n1p1")).unwrap();
        std::os::unix::fs::symlink(rel, root.join("sys/dev/block/259:1")).unwrap();
        disk(
            "nvme1",
            "0000:00:1f.0",
            "nvme1n1",
            "259:2",
            EBS_NVME_MODEL,
            "vol0d9f0816149eb2050",
        );
        disk(
            "nvme2",
            "0000:00:1e.0",
            "nvme2n1",
            "259:3",
            "Amazon EC2 NVMe Instance Storage",
            "AWS22C5B6D8E59F8A2F",
        );
    }

    #[test]
    fn devices_of_a_nitro_instance() {
        let dir = tempfile::tempdir().unwrap();
        nitro_sysfs(dir.path());
        let mut b = BlockDevices::new(dir.path(), Some("us-east-1a"));
        assert_eq!(b.name_of((259, 1)).as_deref(), Some("nvme0n1p1"));
        assert_eq!(b.name_of((0, 23)), None, "tmpfs, overlay: no block device");
        assert_eq!(
            b.host_volume_id("nvme0n1p1").as_deref(),
            Some("aws://us-east-1a/vol-0a1b2c3d4e5f60718"),
            "a partition is on its disk's volume"
        );
        assert_eq!(
            b.host_volume_id("nvme1n1").as_deref(),
            Some("aws://us-east-1a/vol-0d9f0816149eb2050")
        );
        assert_eq!(b.host_volume_id("nvme2n1"), None, "instance store");
        assert_eq!(b.host_volume_id("vda"), None, "not on this host");
        // Without the zone the id cannot be written.
        let mut no_zone = BlockDevices::new(dir.path(), None);
        assert_eq!(no_zone.host_volume_id("nvme1n1"), None);
        assert_eq!(
            no_zone.volume_of("nvme1n1").as_deref(),
            Some("vol-0d9f0816149eb2050")
        );

        let mi = |dev: (u32, u32), at: &str| MountInfo {
            dev,
            mount_point: at.into(),
            fstype: "ext4".into(),
            device: format!("/dev/block/{}:{}", dev.0, dev.1),
        };
        let pv = b.persistent_volumes(&[
            mi((259, 1), "/"),
            // The same root device bind-mounted for a subPath: not a persistent volume.
            mi(
                (259, 1),
                "/var/lib/kubelet/pods/u/volume-subpaths/cache/app/0",
            ),
            mi(
                (259, 2),
                "/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/4c7d0e6b/globalmount",
            ),
            // An instance store mounted through a CSI driver is no EBS volume.
            mi(
                (259, 3),
                "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/local-pv/mount",
            ),
        ]);
        assert_eq!(
            pv,
            HashMap::from([(
                "nvme1n1".to_string(),
                "aws://us-east-1a/vol-0d9f0816149eb2050".to_string()
            )])
        );
        // The in-tree plugin's path names zone and volume itself.
        let pv = b.persistent_volumes(&[mi(
            (259, 3),
            "/var/lib/kubelet/plugins/kubernetes.io/aws-ebs/mounts/aws/us-west-2b/vol-0d9f0816149eb2050",
        )]);
        assert_eq!(pv["nvme2n1"], "aws://us-west-2b/vol-0d9f0816149eb2050");
    }

    /// This machine's block devices resolve through the real sysfs (whatever they are).
    #[test]
    fn devices_of_this_machine() {
        let mut b = BlockDevices::new(Path::new("/"), Some("local"));
        let Ok(text) = fs::read_to_string("/proc/diskstats") else {
            return;
        };
        for d in crate::host::parse_diskstats(&text) {
            if let Some(name) = b.name_of(d.dev) {
                assert_eq!(name, d.name, "/sys/dev/block/{}:{}", d.dev.0, d.dev.1);
            }
            // Not a Nitro instance here: nothing claims to be EBS unless it is.
            if let Some(v) = b.volume_of(&d.name) {
                assert!(v.starts_with("vol-"), "{v}");
            }
        }
    }
}
