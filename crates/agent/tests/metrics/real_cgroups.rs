//! Real cgroups, real processes: a kubepods-style tree under this machine's /sys/fs/cgroup
//! (cgroupfs driver layout) with a CFS-throttled CPU burner (quota 50 ms / 100 ms = 500
//! millicores) and a process holding 64 MiB, plus the kubelet's `/pods` answer served by a
//! test server (no kubelet runs here) with the real pod UID and container ids filled in.

use super::fake_kube::{FakeKube, Mode};
use super::fixtures::{Bracket, docs, find, kube, num};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

const CONTROLLERS: [&str; 3] = ["cpu", "cpuacct", "memory"];

struct Tree {
    rels: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Tree {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(100));
        for rel in self.rels.iter().rev() {
            for ctl in CONTROLLERS {
                let _ = std::fs::remove_dir(cg(ctl, rel));
            }
        }
    }
}

fn cg(ctl: &str, rel: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(ctl)
        .join(rel.trim_start_matches('/'))
}

fn v1_writable() -> bool {
    CONTROLLERS
        .iter()
        .all(|c| cg(c, "").join("cgroup.procs").exists())
        && cg("memory", "").join("memory.usage_in_bytes").exists()
}

/// Starts `script` already inside the cgroup `rel` (it moves itself before exec, so every
/// page it touches is charged there).
fn spawn_in(rel: &str, script: &str) -> Child {
    let moves: String = CONTROLLERS
        .iter()
        .map(|c| format!("echo $$ > {}/cgroup.procs; ", cg(c, rel).display()))
        .collect();
    Command::new("sh")
        .arg("-c")
        .arg(format!("{moves} exec {script}"))
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_burner_and_memory_holder_measured_from_real_cgroups() {
    if !v1_writable() {
        eprintln!(
            "SKIP: this test needs root and the cgroup v1 cpu, cpuacct and memory controllers"
        );
        return;
    }
    let uid = format!(
        "{:08x}-7a7a-4b4b-8c8c-{:012x}",
        std::process::id(),
        rand_suffix()
    );
    let burner_id = format!("{:064x}", rand_suffix() as u128 * 7 + 1);
    let holder_id = format!("{:064x}", rand_suffix() as u128 * 11 + 2);
    let pod = format!("/kubepods/burstable/pod{uid}");
    let mut tree = Tree {
        rels: vec![
            "/kubepods".into(),
            "/kubepods/burstable".into(),
            pod.clone(),
        ],
        children: vec![],
    };
    for rel in [format!("{pod}/{burner_id}"), format!("{pod}/{holder_id}")] {
        tree.rels.push(rel);
    }
    for rel in &tree.rels {
        for ctl in CONTROLLERS {
            std::fs::create_dir_all(cg(ctl, rel)).unwrap();
        }
    }
    let burner = format!("{pod}/{burner_id}");
    std::fs::write(cg("cpu", &burner).join("cpu.cfs_period_us"), "100000").unwrap();
    std::fs::write(cg("cpu", &burner).join("cpu.cfs_quota_us"), "50000").unwrap();
    tree.children
        .push(spawn_in(&burner, "sh -c 'while :; do :; done'"));
    let holder = format!("{pod}/{holder_id}");
    tree.children.push(spawn_in(&holder, "python3 -c 'import time; b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\ntime.sleep(120)'"));

    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let pods = kube(
        "pods.json",
        &[
            ("API_UID", &uid),
            ("WEB_UID", "00000000-0000-4000-8000-00000000dead"),
            ("FB_UID", "00000000-0000-4000-8000-00000000beef"),
            ("NODE", &node),
            ("API_APP_CID", &burner_id),
            ("API_ENVOY_CID", &holder_id),
            ("WEB_NGINX_CID", &"e".repeat(64)),
            ("FB_CID", &"f".repeat(64)),
            ("API_APP_RESTARTS", "0"),
        ],
    );
    let fake = FakeKube::start(pods).await;
    let cfg = AgentConfig::from_json_with_env(
        &format!(r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "it", "metrics_collection_interval": 1}}}}}}, "kinsight": {{"kubelet_url": "{}", "host_root": "/"}}}}"#, fake.url),
        &|k| (k == "HOST_NAME").then(|| node.clone()),
    )
    .unwrap();
    let mut ml = MetricsLoop::new(&cfg);
    // Let the holder fault its pages in and the burner hit its quota.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let counter = cg("cpuacct", &burner).join("cpuacct.usage");
    let throttled_before = std::fs::read_to_string(cg("cpu", &burner).join("cpu.stat")).unwrap();
    let (_, b0) = Bracket::around(&counter, ml.tick()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ((log_events, evs), b1) = Bracket::around(&counter, ml.tick()).await;
    let evs = docs(evs);

    let burner_ev = find(&evs, "Container", |e| {
        e["kubernetes"]["container_name"] == "app"
    });
    let cpu = num(burner_ev, "container_cpu_usage_total");
    // What the kernel counted around the two collections bounds what the agent may report;
    // the CFS quota caps it at 500 m (a busy CI machine may give the burner less).
    let (lo, hi) = Bracket::millicores_range(&b0, &b1);
    assert!(
        cpu >= lo * 0.98 && cpu <= hi * 1.02,
        "burner {cpu} m, the kernel's counter says {lo:.0}..{hi:.0} m"
    );
    assert!(
        cpu <= 520.0,
        "the quota caps the burner at 500 m, measured {cpu}"
    );
    let nr_throttled = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap()
    };
    let throttled_after = std::fs::read_to_string(cg("cpu", &burner).join("cpu.stat")).unwrap();
    // The quota throttles the burner only when the machine gives it its 500 m: on a busy
    // machine (both cores taken by builds) it may get less in every period and never reach it.
    if lo >= 450.0 {
        assert!(
            nr_throttled(&throttled_after) > nr_throttled(&throttled_before),
            "the burner ran at {lo:.0}..{hi:.0} m, at its quota, and was never CFS-throttled"
        );
    } else {
        eprintln!("the burner got {lo:.0}..{hi:.0} m, below its quota: throttling not checked");
    }
    let holder_ev = find(&evs, "Container", |e| {
        e["kubernetes"]["container_name"] == "envoy"
    });
    let ws = num(holder_ev, "container_memory_working_set") / (1 << 20) as f64;
    assert!(
        (64.0..=64.0 + 48.0).contains(&ws),
        "holder working set {ws} MiB, expected 64 MiB plus the interpreter"
    );
    assert!(holder_ev.get("container_cpu_usage_total").is_some());
    let pod_ev = find(&evs, "Pod", |e| e["PodName"] == "api");
    assert!(
        num(pod_ev, "pod_cpu_usage_total") >= cpu * 0.95,
        "the pod cgroup includes its containers"
    );
    assert!(
        num(pod_ev, "pod_memory_working_set") >= num(holder_ev, "container_memory_working_set")
    );
    assert!(
        (num(pod_ev, "pod_cpu_utilization_over_pod_limit")
            - num(pod_ev, "pod_cpu_usage_total") / 600.0 * 100.0)
            .abs()
            < 1e-6
    );
    assert!(
        log_events
            .iter()
            .all(|e| e.log_group_name == "/kinsight/it/performance" && e.log_stream_name == node)
    );

    // A kubelet answering garbage: node metrics continue, pod metrics are skipped.
    fake.set_mode(Mode::Garbage);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    assert!(evs.iter().any(|e| e["Type"] == "Node"));
    drop(tree);
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        ^ (std::process::id() as u64) << 20
}
