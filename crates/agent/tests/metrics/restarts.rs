//! Restart forensics (issue 18) end to end: the agent's metrics loop against a test kubelet
//! serving recorded-style pod JSON (`restart-pods.json`), a fixture host tree with the pods'
//! cgroups, and real log files in its `/var/log/pods`.
//!
//! The story: `shop/orders`' container `app` writes lines (a chunked line, a Java stack trace)
//! and is reported OOMKilled (exit 137) with its restart count raised while a new instance
//! starts writing `1.log`; `shop/web-0`'s nginx was OOM-killed before the agent started and its
//! `3.log` is still there; `batch/report`'s worker ended before the agent started and its log
//! is gone. Then the agent restarts on the same state directory.

use super::fake_kube::FakeKube;
use super::fixtures::{CgroupCounters, HostTree, Layout, docs, find, kube};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use serde_json::{Map, Value, json};
use std::fs;
use std::path::{Path, PathBuf};

const NODE: &str = "ip-10-0-1-23.ec2.internal";
const ORDERS_UID: &str = "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d";
const WEB_UID: &str = "6fa459ea-ee8a-4ca4-894e-db77e160355e";
const REPORT_UID: &str = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const MIB: u64 = 1 << 20;

fn cid(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now_ms() -> i64 {
    kinsight_agent::run::now_ms()
}

/// The kubelet's pod list with `orders/app` at instance `restarts` (container `app_cid`,
/// started at `started`), `last_state` its `lastState`.
fn pods(restarts: u32, app_cid: &str, started: &str, last_state: &Value) -> String {
    kube(
        "restart-pods.json",
        &[
            ("ORDERS_UID", ORDERS_UID),
            ("WEB_UID", WEB_UID),
            ("REPORT_UID", REPORT_UID),
            ("NODE", NODE),
            ("WEB_NGINX_CID", &cid(0xb1)),
            ("APP_CID", app_cid),
            ("APP_RESTARTS", &restarts.to_string()),
            ("APP_STARTED_AT", started),
            ("APP_LAST_STATE", &last_state.to_string()),
        ],
    )
}

fn config(kubelet: &str, root: &Path, state: &Path) -> AgentConfig {
    let doc = json!({
        "logs": {"metrics_collected": {"kubernetes": {"cluster_name": "it", "metrics_collection_interval": 10}}},
        "kinsight": {"kubelet_url": kubelet, "host_root": root, "state_dir": state}
    });
    AgentConfig::from_json_with_env(&doc.to_string(), &|k| {
        (k == "HOST_NAME").then(|| NODE.to_string())
    })
    .unwrap()
}

fn counters(cpu_ns: u64, mem: u64) -> CgroupCounters {
    CgroupCounters {
        cpu_usage_ns: cpu_ns,
        cpu_user_ns: cpu_ns * 3 / 4,
        cpu_system_ns: cpu_ns / 4,
        mem_usage: mem,
        mem_inactive_file: mem / 10,
        mem_anon: mem / 2,
        mem_file: mem / 3,
        pgfault: 100,
        pgmajfault: 1,
        limit: Some(256 * MIB),
        pids: vec![],
    }
}

/// The host: node files, the orders pod's cgroup and its `app` instance `app_cid`'s.
fn set_host(t: &HostTree, k: u64, app_cid: &str, app_mem: u64) {
    t.set_node(
        1000 + 100 * k,
        500 + 50 * k,
        1_000_000,
        500_000,
        2000,
        10_000,
    );
    t.set_cgroup(
        &t.pod_path(ORDERS_UID),
        &counters(5_000_000_000 + 400_000_000 * k, app_mem + 8 * MIB),
    );
    t.set_cgroup(
        &t.container_path(ORDERS_UID, app_cid),
        &counters(4_000_000_000 + 300_000_000 * k, app_mem),
    );
}

fn log_dir(root: &Path, ns: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
    let d = root.join(format!("var/log/pods/{ns}_{pod}_{uid}/{container}"));
    fs::create_dir_all(&d).unwrap();
    d
}

fn cri(stream: &str, tag: &str, text: &str) -> String {
    format!("2026-12-08T10:00:00.123456789Z {stream} {tag} {text}\n")
}

/// `orders/app`'s first instance's log, and the records its log events are.
fn orders_log() -> (String, Vec<String>) {
    let mut text = String::new();
    let mut records = Vec::new();
    for i in 0..55 {
        let l = format!("INFO order {i} accepted");
        text += &cri("stdout", "F", &l);
        records.push(l);
    }
    // A line the runtime wrote in two chunks, a warning between them.
    text += &cri("stdout", "P", "INFO cache warm: ");
    text += &cri("stderr", "F", "WARN heap at 97%");
    text += &cri("stdout", "F", "1024 entries");
    records.push("WARN heap at 97%".into());
    records.push("INFO cache warm: 1024 entries".into());
    // The stack trace the pod's `kinsight.io/multiline: java` joins into one event.
    let trace = [
        "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
        "\tat com.example.orders.Cache.put(Cache.java:88)",
        "\tat com.example.orders.Main.main(Main.java:31)",
    ];
    for l in trace {
        text += &cri("stderr", "F", l);
    }
    records.push(trace.join("\n"));
    (text, records)
}

fn restarts(evs: &[Map<String, Value>]) -> Vec<&Map<String, Value>> {
    evs.iter()
        .filter(|e| e["Type"] == "ContainerRestart")
        .collect()
}

fn lines(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect())
}

/// The event without `Timestamp`, checked apart: the time the instance finished.
fn without_timestamp(e: &Map<String, Value>) -> Map<String, Value> {
    let finished = chrono::DateTime::parse_from_rfc3339(e["FinishedAt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(e["Timestamp"], finished.to_string());
    let mut e = e.clone();
    e.remove("Timestamp");
    e
}

fn directive(with_reason: bool) -> Value {
    let mut dims = vec![json!([
        "ClusterName",
        "ContainerName",
        "Namespace",
        "PodName"
    ])];
    if with_reason {
        dims.push(json!(["ClusterName", "Namespace", "Reason"]));
        dims.push(json!(["ClusterName", "Reason"]));
    }
    json!([{"Namespace": "ContainerInsights", "Dimensions": dims,
            "Metrics": [{"Name": "RestartCount", "Unit": "Count"}]}])
}

#[tokio::test]
async fn an_oom_killed_instance_is_reported_once_with_its_last_lines_and_readings() {
    let tree = HostTree::new(Layout::V2Systemd);
    let root = tree.root().to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let (a1, a2, a3) = (cid(0xa1), cid(0xa2), cid(0xa3));

    // orders/app's first instance runs and writes 0.log.
    let orders = log_dir(&root, "shop", "orders-6f7d8b9c4d-q8z2n", ORDERS_UID, "app");
    let (text, orders_records) = orders_log();
    fs::write(orders.join("0.log"), &text).unwrap();
    // web-0's nginx ended (OOMKilled) before the agent started; its 3.log is still there, and
    // the instance before it.
    let web = log_dir(&root, "shop", "web-0", WEB_UID, "nginx");
    fs::write(
        web.join("2.log"),
        cri("stdout", "F", "an older instance's line"),
    )
    .unwrap();
    let nginx_lines = [
        "10.0.1.5 - - [28/Nov/2026:02:03:09 +0000] \"GET /catalog HTTP/1.1\" 200 51234",
        "2026/11/28 02:03:10 [alert] 1#1: worker process 29 exited on signal 9",
    ];
    fs::write(
        web.join("3.log"),
        nginx_lines
            .iter()
            .map(|l| cri("stdout", "F", l))
            .collect::<String>(),
    )
    .unwrap();
    // batch/report's worker ended before the agent started and the kubelet already removed
    // its log (only the running instance's 2.log is left).
    let report = log_dir(
        &root,
        "batch",
        "report-7b9c5d8f6e-h4k2m",
        REPORT_UID,
        "worker",
    );
    fs::write(report.join("2.log"), cri("stdout", "F", "working")).unwrap();

    let started = now_ms();
    let first_start = rfc3339(started - 3_600_000);
    let fake = FakeKube::start(pods(0, &a1, &first_start, &json!({}))).await;
    set_host(&tree, 0, &a1, 200 * MIB);
    let cfg = config(&fake.url, &root, state.path());
    let mut ml = MetricsLoop::new(&cfg);

    // First collection: web-0's ended instance, found with its log file, without readings
    // (the agent never saw it run); nothing of report's.
    let (log_events, evs) = ml.tick().await;
    ml.delivered(true);
    let evs = docs(evs);
    let found = restarts(&evs);
    assert_eq!(found.len(), 1, "{found:#?}");
    let mut expected = json!({
        "Type": "ContainerRestart", "Version": "0", "Sources": ["pod", "log", "cadvisor"],
        "ClusterName": "it", "NodeName": NODE, "Namespace": "shop", "PodName": "web-0",
        "FullPodName": "web-0", "ContainerName": "nginx", "ContainerId": cid(0xb1),
        "RestartCount": 4, "Reason": "OOMKilled", "ExitCode": 137,
        "StartedAt": "2026-11-28T02:00:00Z", "FinishedAt": "2026-11-28T02:03:10Z",
        "container_memory_limit": 536870912.0,
        "LastLogLines": nginx_lines,
        "CloudWatchMetrics": directive(true),
    });
    assert_eq!(
        Value::Object(without_timestamp(found[0])),
        expected,
        "the whole event"
    );
    // It goes to the performance group, the node's stream.
    let shipped: Vec<_> = log_events
        .iter()
        .filter(|e| e.message.contains("\"ContainerRestart\""))
        .collect();
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].log_group_name, "/kinsight/it/performance");
    assert_eq!(shipped[0].log_stream_name, NODE);

    // The instance runs on: two collections give its CPU rate and memory.
    set_host(&tree, 1, &a1, 240 * MIB);
    let (_, evs) = ml.tick().await;
    ml.delivered(true);
    let evs = docs(evs);
    assert!(restarts(&evs).is_empty(), "the same pod list: nothing new");
    let last = find(&evs, "Container", |e| {
        e["kubernetes"]["containerd"]["container_id"] == a1.as_str()
    })
    .clone();
    assert!(last.contains_key("container_cpu_usage_total"));

    // The kernel kills it (OOM): its cgroup goes, a new instance starts writing 1.log, and the
    // kubelet reports the old one in lastState with the count raised.
    let ended_at = now_ms();
    fs::remove_dir_all(
        tree.root()
            .join("sys/fs/cgroup")
            .join(tree.container_path(ORDERS_UID, &a1).trim_start_matches('/')),
    )
    .unwrap();
    set_host(&tree, 2, &a2, 60 * MIB);
    fs::write(
        orders.join("1.log"),
        cri("stdout", "F", "INFO starting orders 3.1.0"),
    )
    .unwrap();
    let oom = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
        "startedAt": first_start, "finishedAt": rfc3339(ended_at),
        "containerID": format!("containerd://{a1}")}});
    fake.state.lock().unwrap().kubelet_pods = pods(1, &a2, &rfc3339(ended_at), &oom);
    ml.ask_for_pods();
    let (_, evs) = ml.tick().await;
    ml.delivered(true);
    let evs = docs(evs);
    let found = restarts(&evs);
    assert_eq!(found.len(), 1, "{found:#?}");
    let kept = &orders_records[orders_records.len() - 50..];
    assert_eq!(kept[0], "INFO order 8 accepted");
    expected = json!({
        "Type": "ContainerRestart", "Version": "0", "Sources": ["pod", "log", "cadvisor"],
        "ClusterName": "it", "NodeName": NODE, "Namespace": "shop", "PodName": "orders",
        "FullPodName": "orders-6f7d8b9c4d-q8z2n", "ContainerName": "app", "ContainerId": a1,
        "RestartCount": 1, "Reason": "OOMKilled", "ExitCode": 137,
        "StartedAt": first_start, "FinishedAt": rfc3339(ended_at),
        "container_memory_working_set_before": last["container_memory_working_set"],
        "container_cpu_usage_before": last["container_cpu_usage_total"],
        "container_memory_limit": last["container_memory_limit"],
        "LastLogLines": lines(kept),
        "CloudWatchMetrics": directive(true),
    });
    assert_eq!(Value::Object(without_timestamp(found[0])), expected);
    assert_eq!(
        last["container_memory_working_set"].as_u64(),
        Some(240 * MIB - 24 * MIB),
        "the reading of the collection before the kill (working set = usage − inactive file)"
    );
    assert_eq!(
        found[0]["container_memory_limit"].as_f64(),
        Some(256.0 * MIB as f64)
    );

    // The next collection, with a fresh pod list saying the same: nothing.
    ml.ask_for_pods();
    let (_, evs) = ml.tick().await;
    ml.delivered(true);
    assert!(restarts(&docs(evs)).is_empty());

    // The agent restarts on the same state directory: nothing again.
    drop(ml);
    let mut ml = MetricsLoop::new(&cfg);
    let (_, evs) = ml.tick().await;
    ml.delivered(true);
    assert!(
        restarts(&docs(evs)).is_empty(),
        "reported before the restart"
    );
    let kept: Value =
        serde_json::from_str(&fs::read_to_string(state.path().join("restarts.json")).unwrap())
            .unwrap();
    assert_eq!(
        kept["containers"],
        json!([
            {"pod_uid": ORDERS_UID, "container": "app", "instance": 0},
            {"pod_uid": WEB_UID, "container": "nginx", "instance": 3},
        ])
    );

    // The second instance ends while this agent runs (exit 1 on SIGTERM, no reason given) and
    // the kubelet already removed its log: reported all the same, with the one reading this
    // agent took (the first collection has no CPU rate yet).
    let ended_at = now_ms();
    fs::remove_dir_all(
        tree.root()
            .join("sys/fs/cgroup")
            .join(tree.container_path(ORDERS_UID, &a2).trim_start_matches('/')),
    )
    .unwrap();
    set_host(&tree, 3, &a3, 10 * MIB);
    fs::remove_file(orders.join("1.log")).unwrap();
    let error = json!({"terminated": {"exitCode": 1, "signal": 15,
        "message": "shutting down: lost the database", "startedAt": rfc3339(started),
        "finishedAt": rfc3339(ended_at), "containerID": format!("containerd://{a2}")}});
    fake.state.lock().unwrap().kubelet_pods = pods(2, &a3, &rfc3339(ended_at), &error);
    ml.ask_for_pods();
    let (_, evs) = ml.tick().await;
    ml.delivered(true);
    let evs = docs(evs);
    let found = restarts(&evs);
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = found[0];
    assert_eq!(e["RestartCount"], 2);
    assert_eq!(e["ContainerId"], a2.as_str());
    assert_eq!(e["ExitCode"], 1);
    assert_eq!(e["Signal"], 15);
    assert_eq!(e["Message"], "shutting down: lost the database");
    assert!(!e.contains_key("Reason") && !e.contains_key("LastLogLines"));
    assert_eq!(
        e["container_memory_working_set_before"].as_u64(),
        Some(60 * MIB - 6 * MIB)
    );
    assert!(!e.contains_key("container_cpu_usage_before"));
    assert_eq!(e["CloudWatchMetrics"], directive(false));
}

/// The events go to the state directory only once the sink has them: a refused collection's
/// event comes again, and an agent that dies before its sink took the event reports it again
/// (twice rather than never).
#[tokio::test]
async fn a_restart_is_remembered_only_once_the_sink_has_it() {
    let tree = HostTree::new(Layout::V2Systemd);
    let root = tree.root().to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let web = log_dir(&root, "shop", "web-0", WEB_UID, "nginx");
    fs::write(web.join("3.log"), cri("stdout", "F", "bye")).unwrap();
    let a1 = cid(0xa1);
    set_host(&tree, 0, &a1, 100 * MIB);
    let fake = FakeKube::start(pods(0, &a1, "2026-12-08T09:00:00Z", &json!({}))).await;
    let cfg = config(&fake.url, &root, state.path());

    let mut ml = MetricsLoop::new(&cfg);
    let (_, evs) = ml.tick().await;
    let first = restarts(&docs(evs)).len();
    assert_eq!(first, 1);
    // Killed before the sink took it: the next agent reports it again.
    drop(ml);
    let mut ml = MetricsLoop::new(&cfg);
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    let again = restarts(&evs);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["LastLogLines"], json!(["bye"]));
    let event = again[0].clone();
    // The sink refuses it: the next collection emits the same event again.
    ml.delivered(false);
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    assert_eq!(restarts(&evs), vec![&event]);
    ml.delivered(true);
    ml.ask_for_pods();
    let (_, evs) = ml.tick().await;
    assert!(restarts(&docs(evs)).is_empty());
    drop(ml);
    let mut ml = MetricsLoop::new(&cfg);
    let (_, evs) = ml.tick().await;
    assert!(restarts(&docs(evs)).is_empty());
}

/// The agent's loop tells the restarts what its sink took: `--once` prints the event (its
/// first collection only looks) and remembers nothing; a running agent remembers what it
/// shipped, so its next start ships nothing again.
#[tokio::test]
async fn the_agent_loop_remembers_what_its_sink_took() {
    use kinsight_agent::run::{RunOptions, run_metrics};
    use kinsight_agent::sink::{FileSink, Sink};
    use std::sync::Arc;
    use std::time::Duration;

    let tree = HostTree::new(Layout::V2Systemd);
    let root = tree.root().to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let web = log_dir(&root, "shop", "web-0", WEB_UID, "nginx");
    fs::write(web.join("3.log"), cri("stdout", "F", "bye")).unwrap();
    let a1 = cid(0xa1);
    set_host(&tree, 0, &a1, 100 * MIB);
    let fake = FakeKube::start(pods(0, &a1, "2026-12-08T09:00:00Z", &json!({}))).await;
    let mut cfg = config(&fake.url, &root, state.path());
    cfg.metrics_collection_interval_s = 1;
    let out = state.path().join("out.jsonl");
    let shipped = |out: &Path| -> usize {
        fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ContainerRestart"))
            .count()
    };
    let run = |once: bool| {
        let cfg = cfg.clone();
        let out = out.clone();
        async move {
            let sink: Arc<dyn Sink> = Arc::new(FileSink::open(&out).unwrap());
            let (tx, rx) = tokio::sync::watch::channel(false);
            let opts = RunOptions {
                once,
                sample_interval: Duration::from_millis(100),
                ..RunOptions::default()
            };
            let task = tokio::spawn(async move { run_metrics(&cfg, sink, opts, rx).await });
            if !once {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                tx.send(true).unwrap();
            }
            task.await.unwrap().unwrap();
        }
    };

    run(true).await;
    assert_eq!(shipped(&out), 1, "--once prints it");
    assert!(
        !state.path().join("restarts.json").exists(),
        "--once remembers nothing"
    );
    run(false).await;
    assert_eq!(
        shipped(&out),
        2,
        "the agent ships it once, in its first collection"
    );
    assert!(state.path().join("restarts.json").exists());
    run(false).await;
    assert_eq!(shipped(&out), 2, "and not again after a restart");
}
