//! The reference's formulas (§2.3) checked number by number on fixture host trees whose
//! counters the test sets: two collections one second apart, for cgroup v2 with the systemd
//! driver and cgroup v1 with cgroupfs.

use super::fixtures::{CgroupCounters, HostTree, Layout, close, docs, find, kube, num};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs, pod_services};
use serde_json::{Map, Value};
use std::sync::Arc;

const NODE: &str = "ip-10-0-1-23.ec2.internal";
const API_UID: &str = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
const WEB_UID: &str = "6fa459ea-ee8a-4ca4-894e-db77e160355e";
const FB_UID: &str = "0e4f3b2a-1c5d-4e6f-9a7b-8c9d0e1f2a3b";
const MIB: u64 = 1 << 20;

/// A kubelet PodList's items, shared as the agent's loop hands them to the collector.
fn pod_list(json: &str) -> Arc<Vec<Pod>> {
    let list: k8s_openapi::List<Pod> = serde_json::from_str(json).unwrap();
    Arc::new(list.items)
}

fn cid(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn pods_json(app_restarts: u32) -> String {
    pods_json_with(app_restarts, &cid(0xa1))
}

fn pods_json_with(app_restarts: u32, app_cid: &str) -> String {
    kube(
        "pods.json",
        &[
            ("API_UID", API_UID),
            ("WEB_UID", WEB_UID),
            ("FB_UID", FB_UID),
            ("NODE", NODE),
            ("API_APP_CID", app_cid),
            ("API_ENVOY_CID", &cid(0xa2)),
            ("WEB_NGINX_CID", &cid(0xb1)),
            ("FB_CID", &cid(0xc1)),
            ("API_APP_RESTARTS", &app_restarts.to_string()),
        ],
    )
}

fn counters(
    cpu_ns: u64,
    mem: u64,
    inactive: u64,
    pgfault: u64,
    limit: Option<u64>,
    pids: Vec<u32>,
) -> CgroupCounters {
    CgroupCounters {
        cpu_usage_ns: cpu_ns,
        cpu_user_ns: cpu_ns * 3 / 4,
        cpu_system_ns: cpu_ns / 4,
        mem_usage: mem,
        mem_inactive_file: inactive,
        mem_anon: mem / 2,
        mem_file: mem / 3,
        pgfault,
        pgmajfault: 1,
        limit,
        pids,
    }
}

/// Sets every counter for one sample; `k` = 0 for the first sample, 1 for the second.
fn sample(t: &HostTree, k: u64, envoy_alive: bool) {
    t.set_node(
        1000 + 100 * k,
        500 + 50 * k,
        1_000_000 + 10_000 * k,
        500_000 + 5_000 * k,
        2000 + 1000 * k,
        10_000 + 500 * k,
    );
    t.set_cgroup(
        &t.pod_path(API_UID),
        &counters(
            10_000_000_000 + 400_000_000 * k,
            200 * MIB,
            20 * MIB,
            1000 + 100 * k,
            Some(320 * MIB),
            vec![],
        ),
    );
    t.set_cgroup(
        &t.container_path(API_UID, &cid(0xa1)),
        &counters(
            7_000_000_000 + 300_000_000 * k,
            150 * MIB,
            10 * MIB,
            800,
            Some(256 * MIB),
            vec![4242],
        ),
    );
    let envoy = t.container_path(API_UID, &cid(0xa2));
    if envoy_alive {
        t.set_cgroup(
            &envoy,
            &counters(
                2_000_000_000 + 80_000_000 * k,
                40 * MIB,
                0,
                100,
                Some(64 * MIB),
                vec![4243],
            ),
        );
    } else {
        // The container vanished between two collections.
        for sub in [
            "sys/fs/cgroup",
            "sys/fs/cgroup/cpu,cpuacct",
            "sys/fs/cgroup/memory",
        ] {
            let _ = std::fs::remove_dir_all(t.root().join(sub).join(envoy.trim_start_matches('/')));
        }
    }
    // Pod network namespace of api: seen through pid 4242.
    t.net_dev(
        4242,
        &[("lo", 10, 10), ("eth0", 5000 + 2000 * k, 3000 + 1000 * k)],
    );
    t.set_cgroup(
        &t.pod_path(WEB_UID),
        &counters(
            1_000_000_000 + 100_000_000 * k,
            300 * MIB,
            44 * MIB,
            50,
            Some(512 * MIB),
            vec![],
        ),
    );
    t.set_cgroup(
        &t.container_path(WEB_UID, &cid(0xb1)),
        &counters(
            900_000_000 + 100_000_000 * k,
            290 * MIB,
            40 * MIB,
            40,
            Some(512 * MIB),
            vec![4343],
        ),
    );
    t.net_dev(4343, &[("eth0", 100 + 10 * k, 50 + 5 * k)]);
    t.set_cgroup(
        &t.pod_path(FB_UID),
        &counters(
            3_000_000_000 + 50_000_000 * k,
            80 * MIB,
            8 * MIB,
            20,
            None,
            vec![],
        ),
    );
    t.set_cgroup(
        &t.container_path(FB_UID, &cid(0xc1)),
        &counters(
            2_900_000_000 + 50_000_000 * k,
            78 * MIB,
            8 * MIB,
            20,
            None,
            vec![4444],
        ),
    );
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

fn run_two(layout: Layout, enhanced: bool) -> (Events, Events) {
    let t = HostTree::new(layout);
    let mut c = Collector::new(settings(enhanced), t.root());
    let eps: k8s_openapi::List<Endpoints> = serde_json::from_str(&kube(
        "endpoints.json",
        &[("API_UID", API_UID), ("NODE", NODE)],
    ))
    .unwrap();
    let services = pod_services(&eps.items);

    sample(&t, 0, true);
    let pods0 = pod_list(&pods_json(3));
    let first = docs(c.collect(
        0,
        1_764_300_000_000,
        &Inputs {
            pods: Some(&pods0),
            services: Some(&services),
            ..Default::default()
        },
    ));

    sample(&t, 1, false);
    let pods1 = pod_list(&pods_json(5));
    let second = docs(c.collect(
        1_000_000_000,
        1_764_300_001_000,
        &Inputs {
            pods: Some(&pods1),
            services: Some(&services),
            ..Default::default()
        },
    ));
    (first, second)
}

fn dims_of(ev: &Map<String, Value>, metric: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for d in ev["CloudWatchMetrics"].as_array().unwrap() {
        if d["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Name"] == metric)
        {
            out.extend(d["Dimensions"].as_array().unwrap().iter().map(|s| {
                s.as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }));
        }
    }
    out
}

fn check_standard(layout: Layout) {
    let (first, second) = run_two(layout, false);

    // First sample: no rates and no restart deltas anywhere.
    let n0 = find(&first, "Node", |_| true);
    assert!(
        n0.get("node_cpu_usage_total").is_none(),
        "no rate on the first sample"
    );
    assert!(
        first
            .iter()
            .all(|e| e.get("pod_number_of_container_restarts").is_none())
    );
    assert!(
        first
            .iter()
            .all(|e| e["Type"] != "NodeNet" && e["Type"] != "NodeDiskIO")
    );

    let node = find(&second, "Node", |_| true);
    assert_eq!(node["Version"], "0");
    assert_eq!(node["Timestamp"], "1764300001000");
    assert_eq!(node["NodeName"], NODE);
    assert_eq!(
        node["Sources"],
        serde_json::json!(["cadvisor", "/proc", "pod", "calculated"])
    );
    // 150 ticks of 10 ms in one second = 1.5 cores.
    assert!(close(num(node, "node_cpu_usage_total"), 1500.0));
    assert!(close(num(node, "node_cpu_usage_user"), 1000.0));
    assert!(close(num(node, "node_cpu_limit"), 4000.0));
    assert!(close(num(node, "node_cpu_utilization"), 37.5));
    // Requests of the three running pods; the Succeeded job's 2 cores do not count.
    assert!(close(num(node, "node_cpu_request"), 300.0 + 1000.0 + 500.0));
    assert!(close(num(node, "node_cpu_reserved_capacity"), 45.0));
    let mem_total = 8_000_000.0 * 1024.0;
    assert!(close(num(node, "node_memory_limit"), mem_total));
    // working set = (MemTotal − MemFree) − Inactive(file)
    assert!(close(
        num(node, "node_memory_working_set"),
        (8_000_000.0 - 2_000_000.0 - 1_400_000.0) * 1024.0
    ));
    assert!(close(
        num(node, "node_memory_utilization"),
        4_600_000.0 / 8_000_000.0 * 100.0
    ));
    assert!(close(
        num(node, "node_memory_request"),
        (160.0 + 512.0 + 100.0) * MIB as f64
    ));
    assert!(close(num(node, "node_memory_pgfault"), 500.0));
    assert!(
        close(num(node, "node_network_rx_bytes"), 10_000.0),
        "lo and veth* are ignored"
    );
    assert!(close(num(node, "node_network_total_bytes"), 15_000.0));
    assert_eq!(num(node, "node_number_of_running_pods"), 3.0);
    assert_eq!(num(node, "node_number_of_running_containers"), 3.0);
    assert_eq!(
        node["InstanceId"], NODE,
        "without a Node object the node name stands in"
    );
    assert_eq!(
        dims_of(node, "node_cpu_utilization"),
        vec![
            vec!["ClusterName", "InstanceId", "NodeName"],
            vec!["ClusterName"]
        ]
    );
    assert_eq!(
        dims_of(node, "node_cpu_usage_total"),
        vec![vec!["ClusterName"]]
    );
    assert!(
        dims_of(node, "node_memory_cache").is_empty(),
        "not a published metric"
    );

    let net = find(&second, "NodeNet", |e| e["interface"] == "eth0");
    assert!(close(num(net, "node_interface_network_tx_bytes"), 5000.0));
    assert!(close(
        num(net, "node_interface_network_total_bytes"),
        15_000.0
    ));
    assert!(
        !second
            .iter()
            .any(|e| e["Type"] == "NodeNet" && e["interface"] == "lo")
    );
    let disk = find(&second, "NodeDiskIO", |_| true);
    assert_eq!(
        disk["device"], "/dev/nvme0n1",
        "partitions are not counted twice"
    );
    assert!(close(
        num(disk, "node_diskio_io_service_bytes_read"),
        512_000.0
    ));
    assert!(close(
        num(disk, "node_diskio_io_service_bytes_total"),
        1_024_000.0
    ));
    let fs = find(&second, "NodeFS", |e| e["device"] == "overlay");
    assert_eq!(fs["fstype"], "overlay");
    assert!(num(fs, "node_filesystem_capacity") > 0.0);
    assert!(close(
        num(fs, "node_filesystem_utilization"),
        num(fs, "node_filesystem_usage") / num(fs, "node_filesystem_capacity") * 100.0
    ));

    let api = find(&second, "Pod", |e| e["PodName"] == "api");
    assert_eq!(api["Namespace"], "prod");
    assert_eq!(api["Service"], "api");
    assert_eq!(api["pod_status"], "Running");
    assert_eq!(api["kubernetes"]["pod_name"], "api-7d9f8c6b5d-x2k4q");
    assert_eq!(api["kubernetes"]["pod_id"], API_UID);
    assert_eq!(
        api["kubernetes"]["pod_owners"],
        serde_json::json!([{"owner_kind": "Deployment", "owner_name": "api"}])
    );
    assert_eq!(api["kubernetes"]["labels"]["app"], "api");
    assert!(
        api.get("FullPodName").is_none(),
        "FullPodName only in enhanced mode"
    );
    assert!(close(num(api, "pod_cpu_usage_total"), 400.0));
    assert!(close(num(api, "pod_cpu_usage_user"), 300.0));
    assert!(
        close(num(api, "pod_cpu_utilization"), 10.0),
        "share of the node, not of the limit"
    );
    assert!(close(num(api, "pod_cpu_limit"), 600.0));
    assert!(close(
        num(api, "pod_cpu_utilization_over_pod_limit"),
        400.0 / 600.0 * 100.0
    ));
    assert!(close(num(api, "pod_cpu_request"), 300.0));
    assert!(close(num(api, "pod_cpu_reserved_capacity"), 7.5));
    assert!(close(
        num(api, "pod_memory_working_set"),
        180.0 * MIB as f64
    ));
    assert!(close(num(api, "pod_memory_limit"), 320.0 * MIB as f64));
    assert!(close(
        num(api, "pod_memory_utilization_over_pod_limit"),
        180.0 / 320.0 * 100.0
    ));
    assert!(close(
        num(api, "pod_memory_utilization"),
        180.0 * MIB as f64 / mem_total * 100.0
    ));
    assert!(close(
        num(api, "pod_memory_reserved_capacity"),
        160.0 * MIB as f64 / mem_total * 100.0
    ));
    assert!(
        close(num(api, "pod_network_rx_bytes"), 2000.0),
        "pod netns through one of its processes"
    );
    assert!(close(num(api, "pod_network_total_bytes"), 3000.0));
    assert_eq!(num(api, "pod_number_of_containers"), 2.0);
    assert_eq!(num(api, "pod_number_of_running_containers"), 2.0);
    assert_eq!(
        num(api, "pod_number_of_container_restarts"),
        2.0,
        "restartCount 3 → 5 is a delta of 2"
    );
    assert_eq!(
        dims_of(api, "pod_cpu_utilization").len(),
        4,
        "{:?}",
        dims_of(api, "pod_cpu_utilization")
    );
    assert!(dims_of(api, "pod_cpu_utilization").contains(&vec![
        "ClusterName".to_string(),
        "Namespace".into(),
        "Service".into()
    ]));
    let podnet = find(&second, "PodNet", |e| e["PodName"] == "api");
    assert_eq!(podnet["interface"], "eth0");

    let web = find(&second, "Pod", |e| e["PodName"] == "web-0");
    assert!(
        web.get("Service").is_none(),
        "not-ready addresses do not count"
    );
    assert!(
        web.get("pod_cpu_limit").is_none(),
        "no CPU limit on its container"
    );
    assert!(web.get("pod_cpu_utilization_over_pod_limit").is_none());
    assert!(close(num(web, "pod_cpu_reserved_capacity"), 25.0));
    assert!(close(
        num(web, "pod_memory_utilization_over_pod_limit"),
        256.0 / 512.0 * 100.0
    ));
    assert_eq!(num(web, "pod_number_of_running_containers"), 0.0);
    assert_eq!(num(web, "pod_number_of_container_restarts"), 0.0);

    let fb = find(&second, "Pod", |e| e["PodName"] == "fluent-bit");
    assert_eq!(fb["Namespace"], "amazon-cloudwatch");

    let app = find(&second, "Container", |e| {
        e["kubernetes"]["container_name"] == "app"
    });
    assert!(close(num(app, "container_cpu_usage_total"), 300.0));
    assert!(close(num(app, "container_cpu_utilization"), 7.5));
    assert!(close(num(app, "container_cpu_limit"), 500.0));
    assert!(close(num(app, "container_cpu_request"), 250.0));
    assert!(close(
        num(app, "container_memory_working_set"),
        140.0 * MIB as f64
    ));
    assert!(close(
        num(app, "container_memory_limit"),
        256.0 * MIB as f64
    ));
    assert_eq!(num(app, "number_of_container_restarts"), 2.0);
    assert_eq!(app["container_status"], "Running");
    assert_eq!(app["container_last_termination_reason"], "Error");
    assert_eq!(
        app["kubernetes"]["containerd"]["container_id"],
        cid(0xa1).as_str()
    );
    assert!(app.get("ContainerName").is_none());
    assert!(
        app.get("container_cpu_utilization_over_container_limit")
            .is_none(),
        "enhanced only"
    );
    let nginx = find(&second, "Container", |e| {
        e["kubernetes"]["container_name"] == "nginx"
    });
    assert_eq!(nginx["container_status"], "Waiting");
    assert_eq!(nginx["container_status_reason"], "CrashLoopBackOff");
    assert_eq!(nginx["container_last_termination_reason"], "OOMKilled");
    // The envoy container's cgroup vanished: no event, no panic, everything else present.
    assert!(
        !second
            .iter()
            .any(|e| e["Type"] == "Container" && e["kubernetes"]["container_name"] == "envoy")
    );
    assert!(
        first
            .iter()
            .any(|e| e["Type"] == "Container" && e["kubernetes"]["container_name"] == "envoy")
    );
}

#[test]
fn standard_mode_on_cgroup_v2_systemd_driver() {
    check_standard(Layout::V2Systemd);
}

#[test]
fn standard_mode_on_cgroup_v1_cgroupfs_driver() {
    check_standard(Layout::V1Cgroupfs);
}

#[test]
fn enhanced_mode_adds_names_status_and_drops_undeclared_events() {
    let (_, second) = run_two(Layout::V2Systemd, true);
    let web = find(&second, "Pod", |e| e["FullPodName"] == "web-0");
    assert_eq!(num(web, "pod_status_running"), 1.0);
    assert_eq!(num(web, "pod_status_pending"), 0.0);
    assert_eq!(num(web, "pod_status_ready"), 0.0);
    assert_eq!(num(web, "pod_status_scheduled"), 1.0);
    assert_eq!(num(web, "pod_container_status_waiting"), 1.0);
    assert_eq!(
        num(
            web,
            "pod_container_status_waiting_reason_crash_loop_back_off"
        ),
        1.0
    );
    assert_eq!(
        num(web, "pod_container_status_terminated_reason_oom_killed"),
        1.0
    );
    assert!(dims_of(web, "pod_status_running").contains(&vec![
        "ClusterName".into(),
        "FullPodName".into(),
        "Namespace".into(),
        "PodName".into()
    ]));
    let app = find(&second, "Container", |e| e["ContainerName"] == "app");
    assert_eq!(app["FullPodName"], "api-7d9f8c6b5d-x2k4q");
    assert!(close(
        num(app, "container_cpu_utilization_over_container_limit"),
        60.0
    ));
    assert!(close(
        num(app, "container_memory_utilization_over_container_limit"),
        140.0 / 256.0 * 100.0
    ));
    assert!(dims_of(app, "container_cpu_utilization").contains(&vec![
        "ClusterName".into(),
        "ContainerName".into(),
        "FullPodName".into(),
        "Namespace".into(),
        "PodName".into()
    ]));
    // Every remaining event carries a directive: events without declared metrics are dropped.
    assert!(
        second.iter().all(|e| e.contains_key("CloudWatchMetrics")),
        "enhanced drops events without metrics"
    );
    assert!(
        second.iter().any(|e| e["Type"] == "NodeNet"),
        "enhanced declares interface drop counters"
    );
}

#[test]
fn standard_mode_keeps_undeclared_events_without_directive() {
    let (_, second) = run_two(Layout::V2Systemd, false);
    let net = find(&second, "NodeNet", |e| e["interface"] == "eth0");
    assert!(net.get("CloudWatchMetrics").is_none());
    let disk = find(&second, "NodeDiskIO", |_| true);
    assert!(disk.get("CloudWatchMetrics").is_none());
}

#[test]
fn disable_metric_extraction_writes_no_directive() {
    let t = HostTree::new(Layout::V2Systemd);
    let mut s = settings(false);
    s.disable_metric_extraction = true;
    let mut c = Collector::new(s, t.root());
    sample(&t, 0, true);
    c.collect(0, 1, &Inputs::default());
    sample(&t, 1, true);
    let evs = docs(c.collect(1_000_000_000, 2, &Inputs::default()));
    let node = find(&evs, "Node", |_| true);
    assert!(node.get("CloudWatchMetrics").is_none());
    assert!(node.get("node_cpu_utilization").is_some());
    // Without the kubelet there are no pod events and no request fields, but node metrics flow.
    assert!(!evs.iter().any(|e| e["Type"] == "Pod"));
    assert!(node.get("node_cpu_request").is_none());
}

#[test]
fn unreadable_host_files_skip_only_their_items() {
    let t = HostTree::new(Layout::V1Cgroupfs);
    let mut c = Collector::new(settings(false), t.root());
    sample(&t, 0, true);
    c.collect(0, 1, &Inputs::default());
    sample(&t, 1, true);
    std::fs::remove_file(t.root().join("proc/diskstats")).unwrap();
    std::fs::write(t.root().join("proc/meminfo"), "\u{0}\u{1} garbage").unwrap();
    let evs = docs(c.collect(1_000_000_000, 2, &Inputs::default()));
    assert!(!evs.iter().any(|e| e["Type"] == "NodeDiskIO"));
    let node = find(&evs, "Node", |_| true);
    assert!(node.get("node_memory_working_set").is_none());
    assert!(close(num(node, "node_cpu_usage_total"), 1500.0));
    assert!(evs.iter().any(|e| e["Type"] == "NodeNet"));
}

/// The pod cgroup listing is reused between collections (it costs a directory read per pod),
/// but a container the kubelet reports running under a new id — a restart — is collected at
/// the next collection, not when the listing would be taken again.
#[test]
fn a_restarted_container_is_collected_at_once_despite_the_cached_listing() {
    let t = HostTree::new(Layout::V1Cgroupfs);
    let mut c = Collector::new(settings(false), t.root());
    let app_memory = |evs: &Events| -> Option<f64> {
        evs.iter()
            .find(|e| e["Type"] == "Container" && e["kubernetes"]["container_name"] == "app")
            .map(|e| num(e, "container_memory_usage"))
    };
    sample(&t, 0, true);
    let before = pod_list(&pods_json(3));
    let first = docs(c.collect(
        0,
        1_764_300_000_000,
        &Inputs {
            pods: Some(&before),
            ..Default::default()
        },
    ));
    assert_eq!(app_memory(&first), Some((150 * MIB) as f64));

    // One second later the app container has restarted: new id, new cgroup, 60 MiB.
    sample(&t, 1, true);
    let restarted = cid(0xa9);
    t.set_cgroup(
        &t.container_path(API_UID, &restarted),
        &counters(1_000_000, 60 * MIB, 0, 10, Some(256 * MIB), vec![]),
    );
    let after = pod_list(&pods_json_with(4, &restarted));
    let second = docs(c.collect(
        1_000_000_000,
        1_764_300_001_000,
        &Inputs {
            pods: Some(&after),
            ..Default::default()
        },
    ));
    assert_eq!(app_memory(&second), Some((60 * MIB) as f64));
}

/// A pod's network is read through one of its processes, which is kept between collections:
/// the pod's cgroups are not listed for pids again while it lives, and once it has exited its
/// pid number — even reused by a process outside the pod — is not read through any more.
#[test]
fn pod_network_follows_the_pods_process_not_its_pid_number() {
    let t = HostTree::new(Layout::V1Cgroupfs);
    let mut c = Collector::new(settings(false), t.root());
    let pods = pod_list(&pods_json(3));
    let inputs = Inputs {
        pods: Some(&pods),
        ..Default::default()
    };
    let rx = |evs: &Events| -> Option<f64> {
        evs.iter()
            .find(|e| e["Type"] == "Pod" && e["PodName"] == "api")
            .and_then(|e| e.get("pod_network_rx_bytes"))
            .and_then(Value::as_f64)
    };
    let app = t.container_path(API_UID, &cid(0xa1));
    let app_counters = |k: u64, pids: Vec<u32>| {
        counters(
            7_000_000_000 + 300_000_000 * k,
            150 * MIB,
            10 * MIB,
            800,
            Some(256 * MIB),
            pids,
        )
    };
    let api_netns = |pid: u32, k: u64| {
        t.net_dev(
            pid,
            &[("lo", 10, 10), ("eth0", 5000 + 2000 * k, 3000 + 1000 * k)],
        )
    };
    let mut collect = |k: u64| {
        docs(c.collect(
            k * 1_000_000_000,
            1_764_300_000_000 + k as i64 * 1000,
            &inputs,
        ))
    };
    sample(&t, 0, true);
    collect(0);
    sample(&t, 1, true);
    assert_eq!(rx(&collect(1)), Some(2000.0), "through pid 4242");

    // The cgroup no longer lists the process (as if it could not be read): the process found
    // before is still read through.
    sample(&t, 2, true);
    t.set_cgroup(&app, &app_counters(2, vec![]));
    assert_eq!(rx(&collect(2)), Some(2000.0), "the kept process");

    // Pid 4242 exits and its number goes to a process outside the pod (another network
    // namespace); the pod's process is now 4244.
    sample(&t, 3, true);
    std::fs::remove_dir_all(t.root().join("proc/4242")).unwrap();
    t.net_dev(4242, &[("eth0", 9_000_000_000, 9_000_000_000)]);
    api_netns(4244, 3);
    t.set_cgroup(&app, &app_counters(3, vec![4244]));
    assert_eq!(rx(&collect(3)), Some(2000.0), "through pid 4244");
}

/// What the collector derives from a pod list is kept while the agent hands it the same list
/// (it asks the kubelet every 10 s at most), and derived again for a new list or new owners.
#[test]
fn pod_details_follow_a_new_pod_list_and_new_owners() {
    use kinsight_agent::perf::pods::Owners;
    let t = HostTree::new(Layout::V1Cgroupfs);
    let mut c = Collector::new(settings(false), t.root());
    let api = |evs: &Events| -> (String, f64) {
        let e = find(evs, "Pod", |e| {
            e["kubernetes"]["pod_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("api-"))
        });
        (
            e["PodName"].as_str().unwrap().to_string(),
            num(e, "pod_number_of_containers"),
        )
    };
    let pods = pod_list(&pods_json(3));
    let renamed = Owners {
        replica_set_to_deployment: [(
            ("prod".to_string(), "api-7d9f8c6b5d".to_string()),
            "api-v2".to_string(),
        )]
        .into(),
    };
    let mut k = 0;
    let mut collect = |pods: &Arc<Vec<Pod>>, owners: Option<&Owners>| {
        sample(&t, k, true);
        k += 1;
        docs(c.collect(
            k * 1_000_000_000,
            1_764_300_000_000 + k as i64 * 1000,
            &Inputs {
                pods: Some(pods),
                owners,
                ..Default::default()
            },
        ))
    };
    assert_eq!(api(&collect(&pods, None)), ("api".into(), 2.0));
    assert_eq!(api(&collect(&pods, None)), ("api".into(), 2.0));
    assert_eq!(
        api(&collect(&pods, Some(&renamed))),
        ("api-v2".into(), 2.0),
        "new owners"
    );
    assert_eq!(api(&collect(&pods, Some(&renamed))), ("api-v2".into(), 2.0));
    // A new list in which the api pod has one container less.
    let mut fewer: Vec<Pod> = (*pods).clone();
    let p = fewer
        .iter_mut()
        .find(|p| p.metadata.uid.as_deref() == Some(API_UID))
        .unwrap();
    p.status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()
        .pop();
    let fewer = Arc::new(fewer);
    assert_eq!(
        api(&collect(&fewer, Some(&renamed))),
        ("api-v2".into(), 1.0),
        "new list"
    );
    assert_eq!(api(&collect(&pods, None)), ("api".into(), 2.0));
}
