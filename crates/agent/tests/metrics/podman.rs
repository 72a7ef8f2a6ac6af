//! A container host without Kubernetes: a real podman pod (CPU burner limited to 500m and a
//! logger, from scripts/podman-setup.sh's local busybox image) is discovered from podman's
//! state files and cgroups and reported with the same events as a kubelet's pod.

use super::fixtures::{Bracket, docs, find, num};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use std::process::Command;
use std::time::Duration;

fn setup() -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/podman-setup.sh");
    match Command::new("bash").arg(script).status() {
        Ok(s) if s.success() => true,
        _ => {
            eprintln!(
                "SKIP: podman could not be set up on this machine (scripts/podman-setup.sh failed)"
            );
            false
        }
    }
}

struct PodGuard(String);

impl Drop for PodGuard {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["pod", "rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pod_is_reported_like_a_kubernetes_pod() {
    if !setup() {
        return;
    }
    let name = format!("ksm{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("pod.yaml");
    std::fs::write(
        &yaml,
        include_str!("../fixtures/podman-pod.yaml")
            .replace("NAME", &name)
            .replace("LOG_SLEEP", "1"),
    )
    .unwrap();
    let _guard = PodGuard(name.clone());
    let out = Command::new("podman")
        .args(["kube", "play", "--replace"])
        .arg(&yaml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman kube play: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "local", "metrics_collection_interval": 1}}}}}},
                "kinsight": {{"state_dir": "{}", "logs": {{"read_from_head": true, "journald": false}}}}}}"#,
            dir.path().join("state").display()
        ),
        &|k| (k == "HOST_NAME").then(|| "host-1".to_string()),
    )
    .unwrap();
    let mut ml = MetricsLoop::new(&cfg);
    let out = Command::new("podman")
        .args([
            "inspect",
            "-f",
            "{{.State.CgroupPath}}",
            &format!("{name}-burner"),
        ])
        .output()
        .unwrap();
    let cgroup = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let counter = std::path::Path::new("/sys/fs/cgroup/cpuacct")
        .join(cgroup.trim_start_matches('/'))
        .join("cpuacct.usage");
    let (_, b0) = Bracket::around(&counter, ml.tick()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ((_, evs), b1) = Bracket::around(&counter, ml.tick()).await;
    let evs = docs(evs);

    let burner = find(&evs, "Container", |e| {
        e["PodName"] == name.as_str() && e["kubernetes"]["container_name"] == "burner"
    });
    assert_eq!(burner["Namespace"], "podman");
    assert_eq!(burner["kubernetes"]["pod_name"], name.as_str());
    let cpu = num(burner, "container_cpu_usage_total");
    let (lo, hi) = Bracket::millicores_range(&b0, &b1);
    assert!(
        cpu >= lo * 0.98 && cpu <= hi * 1.02,
        "burner {cpu} m, the kernel's counter says {lo:.0}..{hi:.0} m"
    );
    assert!(cpu <= 520.0, "limited to 500 m, measured {cpu}");
    assert_eq!(num(burner, "container_cpu_limit"), 500.0);
    assert_eq!(
        num(burner, "container_memory_limit"),
        64.0 * 1024.0 * 1024.0
    );
    let logger = find(&evs, "Container", |e| {
        e["PodName"] == name.as_str() && e["kubernetes"]["container_name"] == "logger"
    });
    assert!(num(logger, "container_cpu_usage_total") < 100.0);
    let pod = find(&evs, "Pod", |e| e["PodName"] == name.as_str());
    assert_eq!(pod["kubernetes"]["labels"]["app"], name.as_str());
    assert_eq!(num(pod, "pod_number_of_running_containers"), 2.0);
    assert!(num(pod, "pod_cpu_usage_total") >= cpu * 0.95);
    // The pod has its own network namespace, read through one of its processes.
    assert!(
        evs.iter()
            .any(|e| e["Type"] == "PodNet" && e["PodName"] == name.as_str())
    );
    let containers = ml.runtime_containers();
    let b = containers
        .iter()
        .find(|c| c.pod_name == name && c.name == "burner")
        .unwrap();
    assert!(
        b.log_path.as_ref().is_some_and(|p| p.exists()),
        "k8s-file log path known for the log pipeline"
    );

    // The logger's k8s-file log goes to the application group with the pod's and the
    // container's names, fed by the same pod list.
    let out = dir.path().join("logs.jsonl");
    let sink: std::sync::Arc<dyn kinsight_agent::sink::Sink> =
        std::sync::Arc::new(kinsight_agent::sink::FileSink::open(&out).unwrap());
    let opts = kinsight_agent::logs::CollectorOptions {
        host_files: false,
        ..Default::default()
    };
    let collector =
        kinsight_agent::logs::LogCollector::new(&cfg, sink, Some(ml.pod_feed())).with_options(opts);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(collector.run(rx));
    ml.tick().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    let mut numbers = Vec::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let m: serde_json::Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
        if m["kubernetes"]["pod_name"] != name.as_str() {
            continue;
        }
        assert_eq!(e["logGroupName"], "/kinsight/local/application");
        assert_eq!(m["kubernetes"]["container_name"], "logger");
        assert_eq!(m["kubernetes"]["namespace_name"], "podman");
        assert_eq!(m["stream"], "stdout");
        let n: u64 = m["log"]
            .as_str()
            .unwrap()
            .trim()
            .strip_prefix("log line ")
            .unwrap()
            .parse()
            .unwrap();
        numbers.push(n);
    }
    assert!(numbers.len() >= 5, "logger lines read: {numbers:?}");
    assert_eq!(
        numbers,
        (1..=numbers.len() as u64).collect::<Vec<_>>(),
        "every line from the first, in order, once"
    );
}
