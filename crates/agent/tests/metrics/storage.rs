//! Storage events of issue 18: ContainerFS from the kubelet's `/stats/summary`, the sync/async
//! split of NodeDiskIO, inode counts, the EBS volume identity of devices (`EBSVolumeId`,
//! `ebs_volume_id`) and the leader's `namespace_ingress_count`.
//!
//! No kubelet, API server or Nitro instance runs here: the Summary (`stats-summary.json`) and
//! the Ingresses are documents modelled on what a kubelet 1.30 with containerd and an API server
//! answer, served by the test server; the node's sysfs is a fixture tree shaped like a Nitro
//! instance's (relative links into `devices/`, as the kernel makes them). Filesystems are real:
//! statfs of this machine's temporary directory and of /dev/shm stand for the root and the
//! persistent volume. The blkio split is also read from this machine's real blkio cgroup.

use super::fake_kube::FakeKube;
use super::fixtures::{HostTree, Layout, close, docs, find, kube, num};
use k8s_openapi::api::core::v1::{Node, Pod};
use kinsight_agent::apiserver::ApiServer;
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs};
use kinsight_agent::summary::{Summary, parse_summary};
use serde_json::{Map, Value, json};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

const NODE: &str = "ip-10-0-1-23.ec2.internal";
const API_UID: &str = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
const WEB_UID: &str = "6fa459ea-ee8a-4ca4-894e-db77e160355e";
const FB_UID: &str = "0e4f3b2a-1c5d-4e6f-9a7b-8c9d0e1f2a3b";
const ROOT_VOLUME: &str = "aws://us-east-1a/vol-0a1b2c3d4e5f60718";
const DATA_VOLUME: &str = "aws://us-east-1a/vol-0d9f0816149eb2050";
const PV_STAGING: &str =
    "/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/4c7d0e6b2c9a1f3e/globalmount";

fn cid(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn vars() -> Vec<(&'static str, String)> {
    vec![
        ("API_UID", API_UID.into()),
        ("WEB_UID", WEB_UID.into()),
        ("FB_UID", FB_UID.into()),
        ("NODE", NODE.into()),
        ("API_APP_CID", cid(0xa1)),
        ("API_ENVOY_CID", cid(0xa2)),
        ("WEB_NGINX_CID", cid(0xb1)),
        ("FB_CID", cid(0xc1)),
        ("API_APP_RESTARTS", "0".into()),
    ]
}

fn fixture(name: &str) -> String {
    let v = vars();
    let v: Vec<(&str, &str)> = v.iter().map(|(k, x)| (*k, x.as_str())).collect();
    kube(name, &v)
}

fn dev_of(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let d = fs::metadata(p).unwrap().dev();
    (libc::major(d), libc::minor(d))
}

fn this_node() -> Node {
    let nodes: k8s_openapi::List<Node> = serde_json::from_str(&kube("nodes.json", &[])).unwrap();
    nodes
        .items
        .into_iter()
        .find(|n| n.metadata.name.as_deref() == Some(NODE))
        .unwrap()
}

/// A Nitro node: the root volume (EBS, partitioned) holds `/` and containerd's layers on
/// this machine's temporary directory's device; an EBS persistent volume (the CSI driver's
/// staging mount and one pod's publish mount) is /dev/shm; an instance store disk is attached
/// but not mounted. The sysfs links map the two real device numbers onto the NVMe devices.
struct NitroNode {
    tree: HostTree,
    pv: tempfile::TempDir,
}

impl NitroNode {
    fn new(layout: Layout) -> NitroNode {
        let tree = HostTree::new(layout);
        let pv = tempfile::tempdir_in("/dev/shm").unwrap();
        let root_dev = dev_of(tree.root());
        let pv_dev = dev_of(pv.path());
        assert_ne!(root_dev, pv_dev);
        let r = tree.root();
        let (rt, pvd) = (
            format!("{}:{}", root_dev.0, root_dev.1),
            format!("{}:{}", pv_dev.0, pv_dev.1),
        );
        tree.write(
            "proc/1/mountinfo",
            &format!(
                "22 1 {rt} / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2,inode64,logbufs=8,logbsize=32k,noquota\n\
                 23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n\
                 410 22 {pvd} / {PV_STAGING} rw,relatime shared:210 - ext4 /dev/nvme1n1 rw\n\
                 411 22 {pvd} / /var/lib/kubelet/pods/{WEB_UID}/volumes/kubernetes.io~csi/pvc-5f0c7a3e-9d1b-4c2a-8e6f-1a2b3c4d5e6f/mount rw,relatime shared:210 - ext4 /dev/nvme1n1 rw\n"
            ),
        );
        // The mount points of the persistent volume lead to /dev/shm, so statfs there is the
        // volume's.
        for at in [
            PV_STAGING.to_string(),
            format!(
                "/var/lib/kubelet/pods/{WEB_UID}/volumes/kubernetes.io~csi/pvc-5f0c7a3e-9d1b-4c2a-8e6f-1a2b3c4d5e6f/mount"
            ),
        ] {
            let p = r.join(at.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(pv.path(), p).unwrap();
        }
        // sysfs: HostTree made plain directories for nvme0n1 and its partition; a real sysfs
        // has links there.
        fs::remove_dir_all(r.join("sys/class/block")).unwrap();
        fs::create_dir_all(r.join("sys/class/block")).unwrap();
        fs::create_dir_all(r.join("sys/dev/block")).unwrap();
        let nvme = |ctrl: &str, pci: &str, name: &str, model: &str, serial: &str| {
            let c = r
                .join("sys/devices/pci0000:00")
                .join(pci)
                .join("nvme")
                .join(ctrl);
            fs::create_dir_all(c.join(name)).unwrap();
            fs::write(c.join("model"), format!("{model:<40}\n")).unwrap();
            fs::write(c.join("serial"), format!("{serial:<20}\n")).unwrap();
            symlink("..", c.join(name).join("device")).unwrap();
            let rel = format!("../../devices/pci0000:00/{pci}/nvme/{ctrl}/{name}");
            symlink(&rel, r.join("sys/class/block").join(name)).unwrap();
            rel
        };
        nvme(
            "nvme0",
            "0000:00:04.0",
            "nvme0n1",
            "Amazon Elastic Block Store",
            "vol0a1b2c3d4e5f60718",
        );
        let part = "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1";
        fs::create_dir_all(r.join("sys/class/block").join(part)).unwrap();
        fs::write(
            r.join("sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1/partition"),
            "1\n",
        )
        .unwrap();
        symlink(part, r.join("sys/class/block/nvme0n1p1")).unwrap();
        symlink(part, r.join("sys/dev/block").join(&rt)).unwrap();
        let data = nvme(
            "nvme1",
            "0000:00:1f.0",
            "nvme1n1",
            "Amazon Elastic Block Store",
            "vol0d9f0816149eb2050",
        );
        symlink(&data, r.join("sys/dev/block").join(&pvd)).unwrap();
        nvme(
            "nvme2",
            "0000:00:1e.0",
            "nvme2n1",
            "Amazon EC2 NVMe Instance Storage",
            "AWS22C5B6D8E59F8A2F",
        );
        NitroNode { tree, pv }
    }

    /// Node counters of sample `k`; disks: the root volume, the data volume and the
    /// instance store, 2,000 sectors read and written per second each; the root blkio
    /// cgroup's split (cgroup v1): per second 1 MiB sync + 64 KiB async and 100 + 4
    /// operations on the root volume, 512 KiB sync on the data volume.
    fn sample(&self, k: u64) {
        let t = &self.tree;
        t.set_node(1000 + 100 * k, 500 + 50 * k, 1_000_000, 500_000, 0, 10_000);
        let s = 5000 + 2000 * k;
        t.write(
            "proc/diskstats",
            &format!(
                " 259       0 nvme0n1 1000 0 {s} 300 2000 0 {s} 900 0 800 1200\n \
                 259       1 nvme0n1p1 1000 0 {s} 300 2000 0 {s} 900 0 800 1200\n \
                 259       2 nvme1n1 10 0 {s} 3 20 0 {s} 9 0 8 12\n \
                 259       3 nvme2n1 10 0 {s} 3 20 0 {s} 9 0 8 12\n"
            ),
        );
        let mib = 1u64 << 20;
        let (rs, ra) = (10 * mib + mib * k, 3 * mib + 65536 * k);
        let ds = 7 * mib + 524_288 * k;
        t.write(
            "sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes_recursive",
            &format!(
                "259:0 Read {}\n259:0 Write {}\n259:0 Sync {rs}\n259:0 Async {ra}\n259:0 Discard 0\n259:0 Total {}\n\
                 259:2 Read 0\n259:2 Write {ds}\n259:2 Sync {ds}\n259:2 Async 0\n259:2 Discard 0\n259:2 Total {ds}\nTotal {}\n",
                rs / 2,
                rs / 2 + ra,
                rs + ra,
                rs + ra + ds,
            ),
        );
        let (os, oa) = (1000 + 100 * k, 50 + 4 * k);
        t.write(
            "sys/fs/cgroup/blkio/blkio.throttle.io_serviced_recursive",
            &format!(
                "259:0 Read {}\n259:0 Write {}\n259:0 Sync {os}\n259:0 Async {oa}\n259:0 Discard 0\n259:0 Total {}\nTotal {}\n",
                os / 2,
                os / 2 + oa,
                os + oa,
                os + oa
            ),
        );
    }
}

fn settings(enhanced: bool) -> CollectorSettings {
    CollectorSettings {
        cluster_name: "prod-eks".into(),
        node_name: NODE.into(),
        enhanced,
        prefer_full_pod_name: enhanced,
        disable_metric_extraction: false,
    }
}

type Events = Vec<Map<String, Value>>;

/// Two collections one second apart on a Nitro node.
fn run_two(layout: Layout, enhanced: bool) -> (NitroNode, Events, Events) {
    let n = NitroNode::new(layout);
    let mut c = Collector::new(settings(enhanced), n.tree.root());
    let list: k8s_openapi::List<Pod> = serde_json::from_str(&fixture("pods.json")).unwrap();
    let pods = Arc::new(list.items);
    let summary: Summary = parse_summary(fixture("stats-summary.json").as_bytes()).unwrap();
    let node = this_node();
    let inputs = Inputs {
        pods: Some(&pods),
        summary: Some(&summary),
        node: Some(&node),
        ..Default::default()
    };
    n.sample(0);
    let first = docs(c.collect(0, 1_764_300_000_000, &inputs));
    n.sample(1);
    let second = docs(c.collect(1_000_000_000, 1_764_300_001_000, &inputs));
    (n, first, second)
}

fn keys(e: &Map<String, Value>) -> Vec<&str> {
    e.keys().map(String::as_str).collect()
}

#[test]
fn container_fs_from_the_kubelet_summary() {
    let (_n, first, second) = run_two(Layout::V1Cgroupfs, false);
    // Gauges: already on the first collection.
    find(&first, "ContainerFS", |e| {
        e["kubernetes"]["container_name"] == "app"
    });

    let app = find(&second, "ContainerFS", |e| {
        e["kubernetes"]["container_name"] == "app"
    });
    // In the order the agent writes them (the envelope, identity, then metrics).
    let expected_keys = [
        "Type",
        "Version",
        "Timestamp",
        "Sources",
        "ClusterName",
        "NodeName",
        "InstanceId",
        "InstanceType",
        "Namespace",
        "PodName",
        "kubernetes",
        "device",
        "fstype",
        "EBSVolumeId",
        "container_filesystem_capacity",
        "container_filesystem_usage",
        "container_filesystem_available",
        "container_filesystem_utilization",
        "container_filesystem_inodes",
        "container_filesystem_inodes_free",
    ];
    assert_eq!(keys(app), expected_keys);
    assert_eq!(app["Version"], "0");
    assert_eq!(app["Timestamp"], "1764300001000");
    assert_eq!(app["Sources"], json!(["cadvisor", "calculated"]));
    assert_eq!(app["ClusterName"], "prod-eks");
    assert_eq!(app["NodeName"], NODE);
    assert_eq!(app["InstanceId"], "i-0abc1234def567890");
    assert_eq!(app["InstanceType"], "m5.large");
    assert_eq!(app["Namespace"], "prod");
    assert_eq!(app["PodName"], "api");
    assert_eq!(
        app["kubernetes"],
        json!({
            "container_name": "app",
            "containerd": {"container_id": cid(0xa1)},
            "host": NODE,
            "labels": {"app": "api", "pod-template-hash": "7d9f8c6b5d"},
            "namespace_name": "prod",
            "pod_id": API_UID,
            "pod_name": "api-7d9f8c6b5d-x2k4q",
            "pod_owners": [{"owner_kind": "Deployment", "owner_name": "api"}],
        })
    );
    // containerd's layers are under /var/lib/containerd, on the root filesystem.
    assert_eq!(app["device"], "/dev/nvme0n1p1");
    assert_eq!(app["fstype"], "xfs");
    assert_eq!(app["EBSVolumeId"], ROOT_VOLUME);
    assert_eq!(app["container_filesystem_capacity"], 85_886_742_528u64);
    assert_eq!(app["container_filesystem_usage"], 24_576);
    assert_eq!(app["container_filesystem_available"], 69_122_002_944u64);
    assert!(close(
        num(app, "container_filesystem_utilization"),
        24_576.0 / 85_886_742_528.0 * 100.0
    ));
    assert_eq!(app["container_filesystem_inodes"], 41_942_464);
    assert_eq!(app["container_filesystem_inodes_free"], 41_489_001);
    assert!(
        app.get("CloudWatchMetrics").is_none(),
        "standard mode declares no ContainerFS metric: log content only"
    );

    let envoy = find(&second, "ContainerFS", |e| {
        e["kubernetes"]["container_name"] == "envoy"
    });
    assert_eq!(envoy["container_filesystem_usage"], 1_052_672);
    let nginx = find(&second, "ContainerFS", |e| {
        e["kubernetes"]["container_name"] == "nginx"
    });
    assert_eq!(nginx["PodName"], "web-0");
    assert_eq!(nginx["container_filesystem_usage"], 8192);
    let fs_events: Vec<_> = second
        .iter()
        .filter(|e| e["Type"] == "ContainerFS")
        .collect();
    assert_eq!(
        fs_events.len(),
        3,
        "fluent-bit has no rootfs stats yet; aws-node is not in the kubelet's pod list; \
         the Succeeded job has no stats"
    );
    // The ContainerFS device is the NodeFS event's device of the same filesystem.
    let root = find(&second, "NodeFS", |e| e["device"] == "/dev/nvme0n1p1");
    assert_eq!(root["fstype"], "xfs");
}

#[test]
fn container_fs_in_enhanced_mode_has_names_and_metrics() {
    let (_n, _, second) = run_two(Layout::V2Systemd, true);
    let app = find(&second, "ContainerFS", |e| e["ContainerName"] == "app");
    assert_eq!(app["FullPodName"], "api-7d9f8c6b5d-x2k4q");
    assert_eq!(
        app["PodName"], "api",
        "controller name, as in standard mode"
    );
    let d = app["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["Namespace"], "ContainerInsights");
    assert_eq!(
        d[0]["Dimensions"],
        json!([
            ["ClusterName"],
            [
                "ClusterName",
                "ContainerName",
                "FullPodName",
                "Namespace",
                "PodName"
            ],
            ["ClusterName", "ContainerName", "Namespace", "PodName"]
        ])
    );
    assert_eq!(
        d[0]["Metrics"],
        json!([
            {"Name": "container_filesystem_usage", "Unit": "Bytes"},
            {"Name": "container_filesystem_available", "Unit": "Bytes"},
            {"Name": "container_filesystem_utilization", "Unit": "Percent"}
        ])
    );
}

#[test]
fn disk_io_split_inodes_and_ebs_volume_ids_on_cgroup_v1() {
    let (n, first, second) = run_two(Layout::V1Cgroupfs, false);
    assert!(
        !first.iter().any(|e| e["Type"] == "NodeDiskIO"),
        "rates only"
    );

    let root = find(&second, "NodeDiskIO", |e| e["device"] == "/dev/nvme0n1");
    assert_eq!(root["EBSVolumeId"], ROOT_VOLUME);
    assert!(
        root.get("ebs_volume_id").is_none(),
        "not a persistent volume"
    );
    assert_eq!(root["Sources"], json!(["cadvisor"]));
    // diskstats: 2,000 sectors of 512 bytes read and written in one second.
    assert!(close(
        num(root, "node_diskio_io_service_bytes_read"),
        1_024_000.0
    ));
    assert!(close(
        num(root, "node_diskio_io_service_bytes_write"),
        1_024_000.0
    ));
    assert!(close(
        num(root, "node_diskio_io_service_bytes_total"),
        2_048_000.0
    ));
    // blkio: sync and async of the same second.
    assert!(close(
        num(root, "node_diskio_io_service_bytes_sync"),
        1_048_576.0
    ));
    assert!(close(
        num(root, "node_diskio_io_service_bytes_async"),
        65_536.0
    ));
    assert!(close(num(root, "node_diskio_io_serviced_sync"), 100.0));
    assert!(close(num(root, "node_diskio_io_serviced_async"), 4.0));
    assert!(
        root.get("CloudWatchMetrics").is_none(),
        "standard mode declares no disk I/O metric"
    );

    let data = find(&second, "NodeDiskIO", |e| e["device"] == "/dev/nvme1n1");
    assert_eq!(data["EBSVolumeId"], DATA_VOLUME);
    assert_eq!(
        data["ebs_volume_id"], DATA_VOLUME,
        "mounted by the kubelet for the EBS CSI driver"
    );
    assert!(close(
        num(data, "node_diskio_io_service_bytes_sync"),
        524_288.0
    ));
    assert!(close(num(data, "node_diskio_io_service_bytes_async"), 0.0));
    assert!(
        data.get("node_diskio_io_serviced_sync").is_none(),
        "the operations file does not list this device"
    );
    let store = find(&second, "NodeDiskIO", |e| e["device"] == "/dev/nvme2n1");
    assert!(
        store.get("EBSVolumeId").is_none(),
        "an instance store is no EBS volume"
    );
    assert!(store.get("node_diskio_io_service_bytes_sync").is_none());

    let rootfs = find(&second, "NodeFS", |e| e["device"] == "/dev/nvme0n1p1");
    assert_eq!(rootfs["EBSVolumeId"], ROOT_VOLUME, "the partition's disk");
    assert!(rootfs.get("ebs_volume_id").is_none());
    let pv = find(&second, "NodeFS", |e| e["device"] == "/dev/nvme1n1");
    assert_eq!(pv["fstype"], "ext4");
    assert_eq!(pv["EBSVolumeId"], DATA_VOLUME);
    assert_eq!(pv["ebs_volume_id"], DATA_VOLUME);
    // Inode counts are statfs's of the filesystem (here /dev/shm).
    let st = kinsight_agent::host::statvfs(n.pv.path()).unwrap();
    assert_eq!(num(pv, "node_filesystem_inodes"), st.inodes as f64);
    let free = num(pv, "node_filesystem_inodes_free");
    assert!(free > 0.0 && free <= st.inodes as f64);
    assert_eq!(
        num(pv, "node_filesystem_capacity"),
        st.capacity_bytes as f64
    );
}

#[test]
fn cgroup_v2_has_no_sync_async_split() {
    let (_n, _, second) = run_two(Layout::V2Systemd, true);
    let root = find(&second, "NodeDiskIO", |e| e["device"] == "/dev/nvme0n1");
    assert!(close(
        num(root, "node_diskio_io_service_bytes_total"),
        2_048_000.0
    ));
    for m in [
        "node_diskio_io_service_bytes_sync",
        "node_diskio_io_service_bytes_async",
        "node_diskio_io_serviced_sync",
        "node_diskio_io_serviced_async",
    ] {
        assert!(root.get(m).is_none(), "{m} on cgroup v2");
    }
    // Enhanced mode declares the totals, with the node's sets.
    let names: Vec<&str> = root["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "node_diskio_io_service_bytes_total",
            "node_diskio_io_serviced_total"
        ]
    );
    let pv = find(&second, "NodeFS", |e| e["device"] == "/dev/nvme1n1");
    let names: Vec<&str> = pv["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "node_filesystem_utilization",
            "node_filesystem_inodes",
            "node_filesystem_inodes_free"
        ]
    );
}

#[test]
fn without_the_nodes_zone_no_ebs_volume_id() {
    let n = NitroNode::new(Layout::V1Cgroupfs);
    let mut c = Collector::new(settings(false), n.tree.root());
    n.sample(0);
    let evs = docs(c.collect(0, 0, &Inputs::default()));
    let pv = find(&evs, "NodeFS", |e| e["device"] == "/dev/nvme1n1");
    assert!(pv.get("EBSVolumeId").is_none(), "no Node object, no zone");
    assert!(pv.get("ebs_volume_id").is_none());
    assert!(
        !evs.iter().any(|e| e["Type"] == "ContainerFS"),
        "no kubelet summary, no ContainerFS"
    );
}

/// The leader counts Ingresses per namespace (enhanced mode): a namespace with Ingresses but
/// no running pod gets an event with the count alone.
#[tokio::test]
async fn namespace_ingress_count_from_the_api_server() {
    let kube = FakeKube::start(String::new()).await;
    let api = ApiServer::connect(&kube.url, None, None).unwrap();
    let mut state = api.cluster_state(true).await.unwrap();
    state.ingresses = Some(api.ingresses().await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::new(settings(true), dir.path());
    let evs = docs(c.collect(
        0,
        1_764_300_000_000,
        &Inputs {
            cluster: Some(&state),
            ..Default::default()
        },
    ));
    let prod = find(&evs, "ClusterNamespace", |e| e["Namespace"] == "prod");
    assert_eq!(num(prod, "namespace_number_of_running_pods"), 3.0);
    assert_eq!(num(prod, "namespace_ingress_count"), 2.0);
    let d = &prod["CloudWatchMetrics"][0];
    assert_eq!(
        d["Dimensions"],
        json!([["ClusterName", "Namespace"], ["ClusterName"]])
    );
    assert_eq!(
        d["Metrics"],
        json!([
            {"Name": "namespace_number_of_running_pods", "Unit": "Count"},
            {"Name": "namespace_ingress_count", "Unit": "Count"}
        ])
    );
    let ops = find(&evs, "ClusterNamespace", |e| e["Namespace"] == "ops");
    assert_eq!(
        keys(ops),
        [
            "Type",
            "Version",
            "Timestamp",
            "Sources",
            "ClusterName",
            "NodeName",
            "Namespace",
            "kubernetes",
            "namespace_ingress_count",
            "CloudWatchMetrics"
        ],
        "no running pod: no running-pod count"
    );
    assert_eq!(num(ops, "namespace_ingress_count"), 1.0);
    assert_eq!(ops["kubernetes"], json!({"namespace_name": "ops"}));
    let system = find(&evs, "ClusterNamespace", |e| {
        e["Namespace"] == "kube-system"
    });
    assert_eq!(num(system, "namespace_ingress_count"), 0.0);
    assert!(
        !evs.iter()
            .any(|e| e["Type"] == "ClusterNamespace" && e["Namespace"] == "batch"),
        "neither running pods nor Ingresses"
    );

    // Not listed (standard mode, or the list failed): no count, and the namespaces of
    // running pods only.
    state.ingresses = None;
    let evs = docs(c.collect(
        1_000_000_000,
        1_764_300_001_000,
        &Inputs {
            cluster: Some(&state),
            ..Default::default()
        },
    ));
    assert!(
        !evs.iter()
            .any(|e| e.contains_key("namespace_ingress_count"))
    );
    assert!(
        !evs.iter()
            .any(|e| e["Type"] == "ClusterNamespace" && e["Namespace"] == "ops")
    );
}

/// The agent's loop asks the kubelet for `/stats/summary` beside `/pods`; a kubelet refusing
/// it (no `get` on nodes/stats) costs the ContainerFS events only.
#[tokio::test]
async fn the_loop_reads_the_summary_and_survives_its_refusal() {
    let node = "node-x";
    let with = |k: &str| -> String {
        let v = vars();
        let mut v: Vec<(&str, &str)> = v.iter().map(|(k, x)| (*k, x.as_str())).collect();
        v.retain(|(k, _)| *k != "NODE");
        v.push(("NODE", node));
        kube(k, &v)
    };
    let fake = FakeKube::start(with("pods.json")).await;
    fake.state.lock().unwrap().kubelet_summary = Some(with("stats-summary.json"));
    let cfg = kinsight_model::config::AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "it"}}}}}}, "kinsight": {{"kubelet_url": "{}", "api_server_url": "http://127.0.0.1:9"}}}}"#,
            fake.url
        ),
        &|k| (k == "HOST_NAME").then(|| node.to_string()),
    )
    .unwrap();
    let mut ml = kinsight_agent::run::MetricsLoop::new(&cfg);
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    let app = find(&evs, "ContainerFS", |e| {
        e["kubernetes"]["container_name"] == "app"
    });
    assert_eq!(app["container_filesystem_usage"], 24_576);
    // This machine has no /var/lib/containerd: the layers' filesystem is the one holding
    // /var/lib, reported under the same device as its NodeFS event.
    let device = app["device"].as_str().unwrap();
    assert!(
        evs.iter()
            .any(|e| e["Type"] == "NodeFS" && e["device"] == device),
        "{device} has no NodeFS event"
    );

    let refused = FakeKube::start(with("pods.json")).await;
    let cfg = kinsight_model::config::AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "it"}}}}}}, "kinsight": {{"kubelet_url": "{}", "api_server_url": "http://127.0.0.1:9"}}}}"#,
            refused.url
        ),
        &|k| (k == "HOST_NAME").then(|| node.to_string()),
    )
    .unwrap();
    let mut ml = kinsight_agent::run::MetricsLoop::new(&cfg);
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    assert!(!evs.iter().any(|e| e["Type"] == "ContainerFS"));
    let n = find(&evs, "Node", |_| true);
    assert_eq!(n["node_number_of_running_pods"], 3, "the pods still came");
}

/// A blkio cgroup of this machine's, removed when dropped.
struct BlkioCgroup(std::path::PathBuf);

impl Drop for BlkioCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// Real cgroup v1 blkio, real I/O: 16 MiB written with O_DIRECT (synchronous requests) by a
/// process in a cgroup of its own, between two collections of the whole machine. The node's
/// `node_diskio_io_service_bytes_sync` for the disk under the temporary directory is at least
/// that much over the time between the collections.
#[test]
fn sync_writes_measured_from_this_machines_blkio_cgroup() {
    let blkio = Path::new("/sys/fs/cgroup/blkio");
    if !blkio
        .join("blkio.throttle.io_service_bytes_recursive")
        .exists()
        || unsafe { libc::geteuid() } != 0
    {
        eprintln!(
            "SKIP: this test needs root and a cgroup v1 blkio hierarchy (v2 has no sync/async split)"
        );
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    // The whole disk under the directory, as NodeDiskIO names it.
    let sys = std::fs::canonicalize(format!(
        "/sys/dev/block/{}:{}",
        dev_of(dir.path()).0,
        dev_of(dir.path()).1
    ));
    let Ok(mut disk_dir) = sys else {
        eprintln!("SKIP: {} is not on a block device", dir.path().display());
        return;
    };
    if disk_dir.join("partition").exists() {
        disk_dir.pop();
    }
    let disk = disk_dir.file_name().unwrap().to_string_lossy().into_owned();
    let majmin = fs::read_to_string(disk_dir.join("dev"))
        .unwrap()
        .trim()
        .to_string();
    let cg = BlkioCgroup(blkio.join(format!("kinsight-test-{}", std::process::id())));
    fs::create_dir_all(&cg.0).unwrap();
    // blk-throttle keeps counters only for a disk with a rule somewhere (see
    // Cgroups::read_blkio): a limit no write reaches.
    fs::write(
        cg.0.join("blkio.throttle.write_bps_device"),
        format!("{majmin} 1125899906842624\n"),
    )
    .unwrap();
    const BYTES: f64 = 16.0 * 1048576.0;
    let settings = CollectorSettings {
        cluster_name: "it".into(),
        node_name: "node-x".into(),
        enhanced: false,
        prefer_full_pod_name: false,
        disable_metric_extraction: false,
    };
    // A cgroup removed elsewhere on the machine between the two reads takes its I/O out of the
    // recursive sums (the counter goes back, and no rate is given): try again then.
    for attempt in 1..=3 {
        let mut c = Collector::new(settings.clone(), Path::new("/"));
        let start = std::time::Instant::now();
        c.collect(0, 0, &Inputs::default());
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec dd if=/dev/zero of={}/out bs=1M count=16 oflag=direct status=none",
                cg.0.display(),
                dir.path().display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        let elapsed = start.elapsed();
        let evs = docs(c.collect(elapsed.as_nanos() as u64, 1, &Inputs::default()));
        let dev = format!("/dev/{disk}");
        let ev = find(&evs, "NodeDiskIO", |e| e["device"] == dev.as_str());
        let Some(sync) = ev
            .get("node_diskio_io_service_bytes_sync")
            .and_then(Value::as_f64)
        else {
            eprintln!("attempt {attempt}: no sync rate (a counter went back): {ev:?}");
            continue;
        };
        let floor = BYTES / elapsed.as_secs_f64();
        assert!(
            sync >= floor * 0.999,
            "sync {sync} B/s < {floor} B/s (16 MiB over {elapsed:?})"
        );
        assert!(ev.get("node_diskio_io_service_bytes_async").is_some());
        assert!(num(ev, "node_diskio_io_serviced_sync") > 0.0);
        return;
    }
    panic!("no sync rate in three attempts");
}
