//! Accelerated compute (issue 18): GPU events from a DCGM exporter, EFA events from sysfs
//! counters, pods found through the exporter's labels or the kubelet's pod-resources API, and
//! the GPU request fields of Node and Pod events.
//!
//! There is no GPU, EFA device or kubelet on a test machine, so nothing here is captured: the
//! DCGM exporter is a local HTTP server serving tests/fixtures/accelerators/dcgm-exporter.txt,
//! text modelled on dcgm-exporter 3.3's output for four A10G GPUs (HELP and TYPE lines, the
//! labels gpu, UUID, device, modelName, Hostname and, in Kubernetes mode, pod, namespace,
//! container); the EFA counters are files of a fixture tree
//! (`sys/class/infiniband/<dev>/ports/1/hw_counters/*`) whose values the tests change between
//! two reads; the kubelet's pod-resources API is a small HTTP/2 (gRPC) server on a unix socket;
//! the kubelet's pods and the Node come from the FakeKube server.

use super::fake_kube::FakeKube;
use super::fixtures::{CgroupCounters, HostTree, Layout, docs, find};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use kinsight_agent::perf::accelerator::AcceleratorInputs;
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs, PerfEvent};
use kinsight_agent::pod_resources::wire::{
    ContainerDevices, ContainerResources, ListPodResourcesResponse, PodResources,
};
use kinsight_agent::pod_resources::{PodResourcesClient, encode_frame};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const NODE: &str = "ip-10-0-1-23.ec2.internal";
const TRAINER_UID: &str = "2c1b0a9f-8e7d-4c6b-a5f4-e3d2c1b0a9f8";
const INFER_UID: &str = "4e3d2c1b-0a9f-4e8d-b7c6-a5f4e3d2c1b0";
const WEB_UID: &str = "6a5f4e3d-2c1b-4a0f-9e8d-7c6b5a4f3e2d";
const EFA_DEVICE: &str = "rdmap16s27";
const GPU0: &str = "GPU-5fa1e4a8-3bde-2c41-9e0a-7f2d1c3b4a50";
const GPU1: &str = "GPU-9c0b7e21-4d3a-8f6e-1b2c-3d4e5f6a7b81";
const MIB: u64 = 1 << 20;

type Events = Vec<Map<String, Value>>;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/accelerators")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn cid(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn pods_json() -> String {
    let mut text = fixture("gpu-pods.json");
    for (k, v) in [
        ("TRAINER_UID", TRAINER_UID.to_string()),
        ("INFER_UID", INFER_UID.to_string()),
        ("WEB_UID", WEB_UID.to_string()),
        ("NODE", NODE.to_string()),
        ("TRAINER_PYTORCH_CID", cid(0x11)),
        ("TRAINER_LOGS_CID", cid(0x12)),
        ("INFER_CID", cid(0x21)),
        ("WEB_CID", cid(0x31)),
    ] {
        text = text.replace(&format!("{{{{{k}}}}}"), &v);
    }
    text
}

fn pod_list() -> Arc<Vec<Pod>> {
    let list: k8s_openapi::List<Pod> = serde_json::from_str(&pods_json()).unwrap();
    Arc::new(list.items)
}

fn counters(cpu_ns: u64, mem: u64, pids: Vec<u32>) -> CgroupCounters {
    CgroupCounters {
        cpu_usage_ns: cpu_ns,
        cpu_user_ns: cpu_ns / 2,
        cpu_system_ns: cpu_ns / 2,
        mem_usage: mem,
        mem_inactive_file: mem / 10,
        mem_anon: mem / 2,
        mem_file: mem / 4,
        pgfault: 100,
        pgmajfault: 1,
        limit: None,
        pids,
    }
}

/// The GPU node: the NVIDIA driver's GPU list, the pods' cgroups, node counters of sample
/// `k`, and the EFA device's counters.
fn gpu_host() -> HostTree {
    let t = HostTree::new(Layout::V2Systemd);
    for bus in [
        "0000:00:1b.0",
        "0000:00:1c.0",
        "0000:00:1d.0",
        "0000:00:1e.0",
    ] {
        t.write(
            &format!("proc/driver/nvidia/gpus/{bus}/information"),
            "Model: \t\t NVIDIA A10G\nIRQ:   \t\t 64\nGPU UUID: \t ...\n",
        );
    }
    sample(&t, 0);
    t
}

fn sample(t: &HostTree, k: u64) {
    t.set_node(
        5000 + 100 * k,
        2000 + 50 * k,
        1_000_000,
        500_000,
        2000,
        10_000,
    );
    for (uid, containers) in [
        (TRAINER_UID, vec![(0x11, 4242), (0x12, 4243)]),
        (INFER_UID, vec![(0x21, 4343)]),
        (WEB_UID, vec![(0x31, 4444)]),
    ] {
        t.set_cgroup(
            &t.pod_path(uid),
            &counters(9_000_000_000 + 1_000_000_000 * k, 900 * MIB, vec![]),
        );
        for (c, pid) in containers {
            t.set_cgroup(
                &t.container_path(uid, &cid(c)),
                &counters(4_000_000_000 + 400_000_000 * k, 400 * MIB, vec![pid]),
            );
            t.net_dev(pid, &[("eth0", 1000 + 100 * k, 500 + 50 * k)]);
        }
    }
}

/// The EFA device's counters at sample `k`: each grows by its own step per sample.
fn efa_counters(root: &Path, k: u64) {
    let dir = root.join(format!(
        "sys/class/infiniband/{EFA_DEVICE}/ports/1/hw_counters"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (name, step)) in EFA_STEPS.iter().enumerate() {
        let base = 1_000_000 * (i as u64 + 1);
        std::fs::write(dir.join(name), format!("{}\n", base + step * k)).unwrap();
    }
    // Counters the EFA events do not read.
    for (name, v) in [("send_bytes", 77 * k), ("lifespan", 12)] {
        std::fs::write(dir.join(name), format!("{v}\n")).unwrap();
    }
}

/// (hardware counter, growth per sample).
const EFA_STEPS: [(&str, u64); 11] = [
    ("rx_bytes", 8_000_000),
    ("tx_bytes", 6_000_000),
    ("rx_drops", 4),
    ("rdma_read_bytes", 2_000_000),
    ("rdma_write_bytes", 1_000_000),
    ("rdma_write_recv_bytes", 500_000),
    ("retrans_bytes", 20_000),
    ("retrans_pkts", 10),
    ("retrans_timeout_events", 2),
    ("impaired_remote_conn_events", 0),
    ("unresponsive_remote_events", 6),
];

/// The kubelet's device assignments: the trainer's pytorch container holds GPUs 0 and 1
/// (NVIDIA's device plugin names them by UUID) and the EFA device.
fn assignments() -> ListPodResourcesResponse {
    ListPodResourcesResponse {
        pod_resources: vec![
            PodResources {
                name: "trainer-0".into(),
                namespace: "ml".into(),
                containers: vec![
                    ContainerResources {
                        name: "pytorch".into(),
                        devices: vec![
                            ContainerDevices {
                                resource_name: "nvidia.com/gpu".into(),
                                device_ids: vec![GPU0.into(), GPU1.into()],
                            },
                            ContainerDevices {
                                resource_name: "vpc.amazonaws.com/efa".into(),
                                device_ids: vec![EFA_DEVICE.into()],
                            },
                        ],
                    },
                    ContainerResources {
                        name: "log-shipper".into(),
                        devices: vec![],
                    },
                ],
            },
            PodResources {
                name: "web-0".into(),
                namespace: "prod".into(),
                containers: vec![],
            },
        ],
    }
}

/// A kubelet pod-resources API on `socket`: answers `List` with `answer`; counts the calls.
async fn serve_pod_resources(socket: &Path, answer: ListPodResourcesResponse) -> Arc<AtomicU64> {
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let answer = answer.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(io).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    assert_eq!(req.method(), http::Method::POST);
                    assert_eq!(req.uri().path(), "/v1.PodResourcesLister/List");
                    assert_eq!(req.headers()["content-type"], "application/grpc");
                    counted.fetch_add(1, Ordering::SeqCst);
                    let resp = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    let mut send = respond.send_response(resp, false).unwrap();
                    send.send_data(encode_frame(&answer), false).unwrap();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    send.send_trailers(trailers).unwrap();
                }
            });
        }
    });
    calls
}

fn socket_of(root: &Path) -> PathBuf {
    root.join("var/lib/kubelet/pod-resources/kubelet.sock")
}

/// A DCGM exporter standing in for the node's: serves `body` with `status`; counts requests.
struct DcgmState {
    status: u16,
    body: String,
    requests: u64,
}

struct Dcgm {
    url: String,
    state: Arc<Mutex<DcgmState>>,
}

impl Dcgm {
    async fn start(body: String) -> Dcgm {
        let state = Arc::new(Mutex::new(DcgmState {
            status: 200,
            body,
            requests: 0,
        }));
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(s): State<Arc<Mutex<DcgmState>>>| async move {
                    let mut s = s.lock().unwrap();
                    s.requests += 1;
                    (
                        axum::http::StatusCode::from_u16(s.status).unwrap(),
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        s.body.clone(),
                    )
                }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Dcgm { url, state }
    }

    fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }

    fn set(&self, status: u16, body: &str) {
        let mut s = self.state.lock().unwrap();
        s.status = status;
        s.body = body.to_string();
    }
}

fn config(fake: &str, dcgm: &str, root: &Path, k8s: &str) -> AgentConfig {
    AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "gpu-cluster"{k8s}}}}}}},
                "kinsight": {{"host_root": "{}", "kubelet_url": "{fake}", "api_server_url": "{fake}",
                              "dcgm_exporter_url": "{dcgm}", "logs": {{"enabled": false}}}}}}"#,
            root.display()
        ),
        &|k| (k == "HOST_NAME").then(|| NODE.to_string()),
    )
    .unwrap()
}

const ENHANCED: &str = r#", "enhanced_container_insights": true"#;

/// The GPU node's kubelet and API server.
async fn gpu_kube() -> FakeKube {
    let fake = FakeKube::start(pods_json()).await;
    fake.state.lock().unwrap().nodes = fixture("gpu-nodes.json");
    fake
}

fn types(events: &[PerfEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.fields["Type"].as_str().unwrap().to_string())
        .collect()
}

fn accelerator_types(events: &[PerfEvent]) -> Vec<String> {
    types(events)
        .into_iter()
        .filter(|t| t.ends_with("GPU") || t.ends_with("EFA"))
        .collect()
}

/// The event without what the clock decides (`Timestamp`) and its directive.
fn content(e: &Map<String, Value>) -> Value {
    let mut e = e.clone();
    e.shift_remove("Timestamp");
    e.shift_remove("CloudWatchMetrics");
    Value::Object(e)
}

fn dims_of(e: &Map<String, Value>, metric: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for d in e["CloudWatchMetrics"].as_array().unwrap() {
        if d["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Name"] == metric)
        {
            for set in d["Dimensions"].as_array().unwrap() {
                out.push(
                    set.as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k.as_str().unwrap().to_string())
                        .collect(),
                );
            }
        }
    }
    out
}

fn unit_of(e: &Map<String, Value>, metric: &str) -> Option<String> {
    e["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["Metrics"].as_array().unwrap())
        .find(|m| m["Name"] == metric)
        .and_then(|m| m.get("Unit"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[tokio::test]
async fn gpu_events_from_the_exporter_attributed_by_its_labels() {
    let t = gpu_host();
    let fake = gpu_kube().await;
    let dcgm = Dcgm::start(fixture("dcgm-exporter.txt")).await;
    let pod_resources = serve_pod_resources(&socket_of(t.root()), assignments()).await;
    let mut l = MetricsLoop::new(&config(&fake.url, &dcgm.url, t.root(), ENHANCED));
    l.tick().await;
    sample(&t, 1);
    let (_, raw) = l.tick().await;
    assert_eq!(dcgm.requests(), 2, "asked once per collection");
    // GPU 3's series carry no pod: the kubelet is asked who holds it (nobody).
    assert_eq!(pod_resources.load(Ordering::SeqCst), 2);
    let evs: Events = docs(raw);

    // One NodeGPU event per GPU.
    let node_gpus: Vec<_> = evs.iter().filter(|e| e["Type"] == "NodeGPU").collect();
    assert_eq!(node_gpus.len(), 4);
    let gpu0 = find(&evs, "NodeGPU", |e| e["GpuDevice"] == "nvidia0");
    assert_eq!(
        content(gpu0),
        json!({
            "Type": "NodeGPU", "Version": "0", "Sources": ["dcgm", "calculated"],
            "ClusterName": "gpu-cluster", "NodeName": NODE, "InstanceId": "i-0123456789abcdef0",
            "InstanceType": "g5.12xlarge", "GpuDevice": "nvidia0", "UUID": GPU0,
            "kubernetes": {"host": NODE},
            "node_gpu_utilization": 87,
            "node_gpu_memory_utilization": 25,
            "node_gpu_memory_total": 23028 * MIB,
            "node_gpu_memory_used": 5630 * MIB,
            "node_gpu_power_draw": 182.472,
            "node_gpu_temperature": 52,
            "node_gpu_tensor_core_utilization": 37.5
        })
    );
    assert_eq!(
        dims_of(gpu0, "node_gpu_utilization"),
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
    for (m, unit) in [
        ("node_gpu_utilization", Some("Percent")),
        ("node_gpu_memory_utilization", Some("Percent")),
        ("node_gpu_memory_total", Some("Bytes")),
        ("node_gpu_memory_used", Some("Bytes")),
        ("node_gpu_power_draw", None),
        ("node_gpu_temperature", None),
        ("node_gpu_tensor_core_utilization", Some("Percent")),
    ] {
        assert_eq!(unit_of(gpu0, m).as_deref(), unit, "{m}");
    }
    let idle = find(&evs, "NodeGPU", |e| e["GpuDevice"] == "nvidia3");
    assert_eq!(idle["node_gpu_utilization"], json!(0));
    assert_eq!(idle["node_gpu_memory_used"], json!(0));
    assert_eq!(idle["node_gpu_power_draw"], json!(26.125));

    // Pods: one PodGPU event per (pod, GPU) held, with the pod's identity as its Pod event has
    // it; the idle GPU has none.
    let pod_gpus: Vec<_> = evs.iter().filter(|e| e["Type"] == "PodGPU").collect();
    assert_eq!(pod_gpus.len(), 3);
    let trainer_pod = find(&evs, "Pod", |e| e["FullPodName"] == "trainer-0");
    let trainer1 = find(&evs, "PodGPU", |e| e["GpuDevice"] == "nvidia1");
    assert_eq!(trainer1["Sources"], json!(["dcgm", "pod", "calculated"]));
    for k in [
        "Namespace",
        "PodName",
        "FullPodName",
        "kubernetes",
        "NodeName",
    ] {
        assert_eq!(trainer1[k], trainer_pod[k], "{k}");
    }
    assert_eq!(trainer1["PodName"], "trainer-0");
    assert_eq!(trainer1["UUID"], GPU1);
    for (m, v) in [
        ("pod_gpu_utilization", json!(93)),
        ("pod_gpu_memory_utilization", json!(50)),
        ("pod_gpu_memory_used", json!(11260 * MIB)),
        ("pod_gpu_tensor_core_utilization", json!(50)),
        ("pod_gpu_power_draw", json!(201.5)),
        ("pod_gpu_temperature", json!(55)),
    ] {
        assert_eq!(trainer1[m], v, "{m}");
    }
    assert_eq!(
        dims_of(trainer1, "pod_gpu_utilization"),
        vec![
            vec!["ClusterName"],
            vec!["ClusterName", "Namespace"],
            vec!["ClusterName", "Namespace", "PodName"],
            vec!["ClusterName", "FullPodName", "Namespace", "PodName"],
            vec![
                "ClusterName",
                "FullPodName",
                "GpuDevice",
                "Namespace",
                "PodName"
            ],
        ],
        "no Service backs the pod: that set is left out"
    );

    // Containers: the infer Deployment's pod is named by its controller.
    let infer = find(&evs, "ContainerGPU", |e| e["GpuDevice"] == "nvidia2");
    let triton = find(&evs, "Container", |e| e["ContainerName"] == "triton");
    assert_eq!(infer["PodName"], "infer");
    assert_eq!(infer["FullPodName"], "infer-7c9d8f6b5-k2x9p");
    assert_eq!(infer["ContainerName"], "triton");
    assert_eq!(infer["kubernetes"], triton["kubernetes"]);
    assert_eq!(infer["container_gpu_utilization"], json!(41));
    assert_eq!(infer["container_gpu_memory_utilization"], json!(75));
    assert_eq!(infer["container_gpu_tensor_core_utilization"], json!(12.5));
    assert_eq!(
        dims_of(infer, "container_gpu_memory_used").len(),
        4,
        "the reference's four container sets"
    );
    assert_eq!(
        evs.iter().filter(|e| e["Type"] == "ContainerGPU").count(),
        3
    );

    // GPU requests on the Node and Pod events: 4 GPUs; the trainer's 2, the inference
    // pod's 1 and the pending fine-tuning job's 1 are asked for; the running pods use 3; the
    // finished evaluation job counts for nothing.
    let node = find(&evs, "Node", |_| true);
    assert_eq!(node["node_gpu_limit"], json!(4));
    assert_eq!(node["node_gpu_request"], json!(4));
    assert_eq!(node["node_gpu_usage_total"], json!(3));
    assert_eq!(node["node_gpu_reserved_capacity"], json!(100.0));
    assert!(dims_of(node, "node_gpu_usage_total").contains(&vec![
        "ClusterName".to_string(),
        "InstanceId".into(),
        "NodeName".into()
    ]));
    assert!(
        dims_of(node, "node_gpu_request").is_empty(),
        "log content only, as upstream"
    );
    for (pod, request, reserved) in [("trainer-0", 2, 50.0), ("infer-7c9d8f6b5-k2x9p", 1, 25.0)] {
        let p = find(&evs, "Pod", |e| e["FullPodName"] == pod);
        assert_eq!(p["pod_gpu_request"], json!(request), "{pod}");
        assert_eq!(p["pod_gpu_limit"], json!(request), "{pod}");
        assert_eq!(p["pod_gpu_usage_total"], json!(request), "{pod}");
        assert_eq!(p["pod_gpu_reserved_capacity"], json!(reserved), "{pod}");
        assert_eq!(
            unit_of(p, "pod_gpu_reserved_capacity").as_deref(),
            Some("Percent")
        );
    }
    let web = find(&evs, "Pod", |e| e["FullPodName"] == "web-0");
    assert!(web.keys().all(|k| !k.contains("_gpu_")), "{web:?}");

    // `--metrics-listen`: one series per GPU, told apart by gpu_device.
    let text = kinsight_agent::prometheus::render(&evs);
    assert!(
        text.contains(r#"node_gpu_utilization{cluster="gpu-cluster",node="ip-10-0-1-23.ec2.internal",gpu_device="nvidia0"} 87"#),
        "{text}"
    );
}

#[tokio::test]
async fn efa_events_through_the_agent_loop() {
    let t = gpu_host();
    efa_counters(t.root(), 0);
    let fake = gpu_kube().await;
    let dcgm = Dcgm::start(fixture("dcgm-exporter.txt")).await;
    let calls = serve_pod_resources(&socket_of(t.root()), assignments()).await;
    let mut l = MetricsLoop::new(&config(&fake.url, &dcgm.url, t.root(), ENHANCED));
    let (_, first) = l.tick().await;
    assert!(
        !types(&first).iter().any(|t| t.ends_with("EFA")),
        "rates need two readings"
    );
    sample(&t, 1);
    efa_counters(t.root(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, raw) = l.tick().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let evs: Events = docs(raw);
    let node = find(&evs, "NodeEFA", |_| true);
    assert_eq!(node["EfaDevice"], EFA_DEVICE);
    assert_eq!(node["Sources"], json!(["efa", "calculated"]));
    // Rates over the real time between the two collections: in the ratio of the counters'
    // growth, each one present.
    let rx = node["node_efa_rx_bytes"].as_f64().unwrap();
    assert!(rx > 0.0);
    let tx = node["node_efa_tx_bytes"].as_f64().unwrap();
    assert!((rx / tx - 8.0 / 6.0).abs() < 1e-9, "{rx} {tx}");
    assert_eq!(node["node_efa_impaired_remote_conn_events"], json!(0));
    assert_eq!(
        node.keys().filter(|k| k.starts_with("node_efa_")).count(),
        11
    );
    // The kubelet says the trainer's pytorch container holds the device.
    let pod = find(&evs, "PodEFA", |_| true);
    assert_eq!(pod["FullPodName"], "trainer-0");
    assert_eq!(pod["pod_efa_rx_bytes"].as_f64(), Some(rx));
    let ctr = find(&evs, "ContainerEFA", |_| true);
    assert_eq!(ctr["ContainerName"], "pytorch");
    assert_eq!(
        ctr["container_efa_rdma_read_bytes"],
        node["node_efa_rdma_read_bytes"]
    );
}

/// The rates exactly: two readings of the fixture tree two seconds apart (the collector's
/// clock is the test's), the holder from the pod-resources socket.
#[tokio::test]
async fn efa_rates_from_a_fixture_sysfs_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    efa_counters(root, 0);
    // Another RDMA device (a Mellanox NIC): not an EFA device, no event.
    let mlx = root.join("sys/class/infiniband/mlx5_0/ports/1/hw_counters");
    std::fs::create_dir_all(&mlx).unwrap();
    std::fs::write(mlx.join("rx_write_requests"), "12\n").unwrap();
    let calls = serve_pod_resources(&socket_of(root), assignments()).await;
    let client = PodResourcesClient::new(
        root,
        Path::new("/var/lib/kubelet/pod-resources/kubelet.sock"),
    );
    let settings = CollectorSettings {
        cluster_name: "gpu-cluster".into(),
        node_name: NODE.into(),
        enhanced: true,
        prefer_full_pod_name: true,
        disable_metric_extraction: false,
    };
    let mut c = Collector::new(settings, root);
    let pods = pod_list();
    let read = |k: u64| {
        efa_counters(root, k);
        let (efa, errors) = kinsight_agent::efa::read_devices(root);
        assert!(errors.is_empty(), "{errors:?}");
        efa
    };
    let mut collect = |t_ns: u64, acc: &AcceleratorInputs| {
        docs(c.collect(
            t_ns,
            1_764_300_000_000 + (t_ns / 1_000_000) as i64,
            &Inputs {
                pods: Some(&pods),
                accelerators: Some(acc),
                ..Default::default()
            },
        ))
    };
    let acc = AcceleratorInputs {
        gpu: None,
        efa: read(0),
        devices: Some(client.list().await.unwrap()),
    };
    assert_eq!(acc.efa.len(), 1, "the Mellanox device is not read");
    let first = collect(0, &acc);
    assert!(
        first
            .iter()
            .all(|e| !e["Type"].as_str().unwrap().ends_with("EFA"))
    );
    let acc = AcceleratorInputs {
        gpu: None,
        efa: read(1),
        devices: Some(client.list().await.unwrap()),
    };
    let second = collect(2_000_000_000, &acc);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let node = find(&second, "NodeEFA", |_| true);
    let mut want = json!({
        "Type": "NodeEFA", "Version": "0", "Sources": ["efa", "calculated"],
        "ClusterName": "gpu-cluster", "NodeName": NODE, "InstanceId": NODE,
        "EfaDevice": EFA_DEVICE, "kubernetes": {"host": NODE},
    });
    for ((measurement, _), (_, step)) in kinsight_model::catalogue::accelerated::EFA_MEASUREMENTS
        .iter()
        .zip(EFA_STEPS.iter())
    {
        // Per second over two seconds.
        let rate = *step as f64 / 2.0;
        want[format!("node_{measurement}")] = if rate.fract() == 0.0 {
            json!(rate as u64)
        } else {
            json!(rate)
        };
    }
    assert_eq!(content(node), want);
    assert_eq!(node["node_efa_rx_bytes"], json!(4_000_000));
    assert_eq!(node["node_efa_rx_dropped"], json!(2));
    assert_eq!(
        unit_of(node, "node_efa_rx_bytes").as_deref(),
        Some("Bytes/Second")
    );
    assert_eq!(
        unit_of(node, "node_efa_rx_dropped").as_deref(),
        Some("Count/Second")
    );
    assert_eq!(
        dims_of(node, "node_efa_rx_bytes"),
        vec![
            vec!["ClusterName"],
            vec!["ClusterName", "InstanceId", "NodeName"]
        ],
        "no NetworkInterfaceId without EC2's metadata, so that set is not applied"
    );
    // Pod and container copies for the holder, with the pod's identity from the pod list.
    let pod = find(&second, "PodEFA", |_| true);
    assert_eq!(pod["Namespace"], "ml");
    assert_eq!(pod["PodName"], "trainer-0");
    assert_eq!(pod["Sources"], json!(["efa", "pod", "calculated"]));
    assert_eq!(pod["pod_efa_retrans_pkts"], json!(5));
    let ctr = find(&second, "ContainerEFA", |_| true);
    assert_eq!(ctr["ContainerName"], "pytorch");
    assert_eq!(ctr["kubernetes"]["container_name"], "pytorch");
    assert_eq!(ctr["container_efa_unresponsive_remote_events"], json!(3));
    assert_eq!(dims_of(ctr, "container_efa_tx_bytes").len(), 3);

    // Counters that went back (the driver reloaded): no rate that interval; the one that
    // did not move still has its rate.
    efa_counters(root, 0);
    let (efa, _) = kinsight_agent::efa::read_devices(root);
    let third = collect(
        4_000_000_000,
        &AcceleratorInputs {
            gpu: None,
            efa,
            devices: None,
        },
    );
    let node = find(&third, "NodeEFA", |_| true);
    let rates: Vec<&str> = node
        .keys()
        .filter(|k| k.starts_with("node_efa_"))
        .map(String::as_str)
        .collect();
    assert_eq!(rates, ["node_efa_impaired_remote_conn_events"]);
    assert!(
        third.iter().all(|e| e["Type"] != "PodEFA"),
        "no assignments this time: nobody is known to have held the device throughout"
    );
}

/// An exporter with dcgm-exporter's default counter list (no FB_TOTAL, no FB_USED_PERCENT)
/// and not in Kubernetes mode (no pod labels): memory from used + free (+ reserved), pods
/// from the kubelet's assignments by GPU UUID.
#[tokio::test]
async fn an_unlabelled_exporter_reaches_pods_through_the_kubelet() {
    let text = format!(
        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n\
         # TYPE DCGM_FI_DEV_GPU_UTIL gauge\n\
         DCGM_FI_DEV_GPU_UTIL{{gpu=\"0\",UUID=\"{GPU0}\",device=\"nvidia0\",modelName=\"NVIDIA A10G\",Hostname=\"{NODE}\"}} 64\n\
         DCGM_FI_DEV_GPU_UTIL{{gpu=\"1\",UUID=\"{GPU1}\",device=\"nvidia1\",modelName=\"NVIDIA A10G\",Hostname=\"{NODE}\"}} 60\n\
         # HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).\n\
         # TYPE DCGM_FI_DEV_FB_FREE gauge\n\
         DCGM_FI_DEV_FB_FREE{{gpu=\"0\",UUID=\"{GPU0}\",device=\"nvidia0\",modelName=\"NVIDIA A10G\",Hostname=\"{NODE}\"}} 16890\n\
         # HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).\n\
         # TYPE DCGM_FI_DEV_FB_USED gauge\n\
         DCGM_FI_DEV_FB_USED{{gpu=\"0\",UUID=\"{GPU0}\",device=\"nvidia0\",modelName=\"NVIDIA A10G\",Hostname=\"{NODE}\"}} 5630\n\
         # HELP DCGM_FI_DEV_FB_RESERVED Framebuffer memory reserved (in MiB).\n\
         # TYPE DCGM_FI_DEV_FB_RESERVED gauge\n\
         DCGM_FI_DEV_FB_RESERVED{{gpu=\"0\",UUID=\"{GPU0}\",device=\"nvidia0\",modelName=\"NVIDIA A10G\",Hostname=\"{NODE}\"}} 508\n"
    );
    let dir = tempfile::tempdir().unwrap();
    serve_pod_resources(&socket_of(dir.path()), assignments()).await;
    let devices = PodResourcesClient::new(
        dir.path(),
        Path::new("/var/lib/kubelet/pod-resources/kubelet.sock"),
    )
    .list()
    .await
    .unwrap();
    let settings = CollectorSettings {
        cluster_name: "gpu-cluster".into(),
        node_name: NODE.into(),
        enhanced: false,
        prefer_full_pod_name: false,
        disable_metric_extraction: false,
    };
    let mut c = Collector::new(settings, dir.path());
    let pods = pod_list();
    let acc = AcceleratorInputs {
        gpu: Some(kinsight_agent::dcgm::parse(&text).unwrap()),
        efa: Vec::new(),
        devices: Some(devices),
    };
    let evs = docs(c.collect(
        0,
        1_764_300_000_000,
        &Inputs {
            pods: Some(&pods),
            accelerators: Some(&acc),
            ..Default::default()
        },
    ));
    let node = find(&evs, "NodeGPU", |e| e["GpuDevice"] == "nvidia0");
    assert_eq!(node["node_gpu_memory_total"], json!(23028 * MIB));
    assert_eq!(node["node_gpu_memory_utilization"], json!(25));
    let ctr = find(&evs, "ContainerGPU", |e| e["GpuDevice"] == "nvidia0");
    // Standard mode (accelerated compute asked for explicitly): no FullPodName or
    // ContainerName dimension, the container in the kubernetes block.
    assert_eq!(ctr["PodName"], "trainer-0");
    assert!(ctr.get("ContainerName").is_none());
    assert_eq!(ctr["kubernetes"]["container_name"], "pytorch");
    assert_eq!(
        dims_of(ctr, "container_gpu_utilization"),
        vec![vec!["ClusterName"]],
        "declared in standard mode too"
    );
    let pod = find(&evs, "PodGPU", |e| e["GpuDevice"] == "nvidia1");
    assert_eq!(pod["pod_gpu_utilization"], json!(60));
}

/// Everything this test binary logs, from every thread: one process-wide subscriber. A
/// subscriber set per test (`set_default`) misses events of callsites other tests' threads
/// registered first (tracing caches each callsite's interest), so the tests that check a
/// warning look for it here, by what makes it theirs (a URL with its port).
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub(crate) fn captured_log() -> &'static Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        log
    })
}

#[tokio::test]
async fn a_failing_exporter_is_logged_and_asked_again_while_the_rest_goes_on() {
    let log = captured_log();

    let t = gpu_host();
    let fake = gpu_kube().await;
    let dcgm = Dcgm::start(fixture("dcgm-exporter.txt")).await;
    dcgm.set(500, "DCGM is not running\n");
    let mut l = MetricsLoop::new(&config(&fake.url, &dcgm.url, t.root(), ENHANCED));
    let (_, first) = l.tick().await;
    assert!(accelerator_types(&first).is_empty());
    let rest = types(&first);
    assert!(rest.contains(&"Node".to_string()), "{rest:?}");
    let text = log.text();
    assert!(
        text.contains(&format!(
            "DCGM exporter at {} answered HTTP 500; GPU metrics, asked again next interval (skipped this interval)",
            dcgm.url
        )),
        "{text}"
    );
    // Not Prometheus text: asked again, logged once for the whole failure.
    dcgm.set(200, "<html>dcgm-exporter</html>\n");
    sample(&t, 1);
    let (_, second) = l.tick().await;
    assert_eq!(dcgm.requests(), 2);
    assert!(accelerator_types(&second).is_empty());
    let pods: Vec<_> = second
        .iter()
        .filter(|e| e.fields["Type"] == "Pod")
        .collect();
    assert_eq!(pods.len(), 3, "pod events still collected");
    assert!(
        pods.iter()
            .any(|e| e.fields.get("pod_gpu_limit") == Some(&json!(2))),
        "and the GPU requests, which need no exporter"
    );
    assert_eq!(
        log.text()
            .matches(&format!("DCGM exporter at {}", dcgm.url))
            .count(),
        1
    );
    // It recovers: GPU events again at the next collection.
    dcgm.set(200, &fixture("dcgm-exporter.txt"));
    sample(&t, 2);
    let (_, third) = l.tick().await;
    assert_eq!(
        accelerator_types(&third)
            .iter()
            .filter(|t| *t == "NodeGPU")
            .count(),
        4
    );
    assert!(
        log.text().contains("dcgm: collecting again"),
        "{}",
        log.text()
    );

    // An exporter that is not there at all: refused, the rest still collected.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/metrics", l.local_addr().unwrap())
    };
    let mut gone = MetricsLoop::new(&config(&fake.url, &closed, t.root(), ENHANCED));
    let (_, evs) = gone.tick().await;
    assert!(accelerator_types(&evs).is_empty());
    assert!(types(&evs).contains(&"Node".to_string()));
    assert!(
        log.text()
            .contains(&format!("DCGM exporter at {closed} is not reachable")),
        "{}",
        log.text()
    );
}

#[tokio::test]
async fn off_when_the_flag_is_off_and_on_nodes_without_a_gpu() {
    let t = gpu_host();
    efa_counters(t.root(), 0);
    let fake = gpu_kube().await;
    let dcgm = Dcgm::start(fixture("dcgm-exporter.txt")).await;
    let calls = serve_pod_resources(&socket_of(t.root()), assignments()).await;
    for k8s in [
        // Standard mode: off by default.
        "",
        // Enhanced mode, turned off.
        r#", "enhanced_container_insights": true, "accelerated_compute_metrics": false"#,
    ] {
        let mut l = MetricsLoop::new(&config(&fake.url, &dcgm.url, t.root(), k8s));
        for k in 0..2 {
            sample(&t, k);
            efa_counters(t.root(), k);
            let (_, evs) = l.tick().await;
            assert!(accelerator_types(&evs).is_empty(), "{k8s}");
            for e in &evs {
                assert!(
                    e.fields.iter().all(|(k, _)| !k.contains("_gpu_")),
                    "{k8s}: {:?}",
                    e.fields
                );
            }
        }
    }
    assert_eq!(dcgm.requests(), 0, "the exporter is never asked");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nor the kubelet's socket");

    // On: a node without a GPU (no capacity, no driver) is not asked either; its EFA
    // device still is.
    let cpu_node = HostTree::new(Layout::V2Systemd);
    sample(&cpu_node, 0);
    efa_counters(cpu_node.root(), 0);
    let plain = FakeKube::start(pods_json()).await;
    let mut l = MetricsLoop::new(&config(&plain.url, &dcgm.url, cpu_node.root(), ENHANCED));
    l.tick().await;
    efa_counters(cpu_node.root(), 1);
    let (_, evs) = l.tick().await;
    assert_eq!(dcgm.requests(), 0);
    assert_eq!(accelerator_types(&evs), vec!["NodeEFA".to_string()]);
}
