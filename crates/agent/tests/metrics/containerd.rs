//! A containerd host without Kubernetes: a real containerd (Debian package, started by the test
//! with its state in the standard /run/containerd) runs a CPU burner limited to 500m with
//! `ctr run`; the agent finds it from containerd's task state and its `/default/<id>` cgroup.

use super::fixtures::{Bracket, docs, find, num};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SOCK: &str = "/run/containerd/containerd.sock";

struct Containerd {
    daemon: Child,
    id: String,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .args(["-a", SOCK, "-n", "default"])
                .args(args)
                .output()
        };
        let _ = ctr(&["task", "kill", "-s", "9", &self.id]);
        std::thread::sleep(Duration::from_millis(300));
        let _ = ctr(&["task", "delete", &self.id]);
        let _ = ctr(&["container", "delete", &self.id]);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn available() -> bool {
    let ok = |c: &str| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let podman = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/podman-setup.sh"
        ))
        .status()
        .is_ok_and(|s| s.success());
    if !(ok("containerd") && ok("ctr") && podman) {
        assert!(
            std::env::var_os("CI").is_none(),
            "containerd, ctr and podman are installed by scripts/ci-install.sh"
        );
        eprintln!("SKIP: containerd/ctr/podman are not installed here");
        return false;
    }
    if Path::new(SOCK).exists()
        && Command::new("ctr")
            .args(["-a", SOCK, "version"])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIP: a containerd already runs on {SOCK}; not touching it");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_task_is_reported_as_a_pod_of_one() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("version = 2\nroot = \"{}\"\nstate = \"/run/containerd\"\n[grpc]\n  address = \"{SOCK}\"\n", dir.path().join("root").display())).unwrap();
    let daemon = Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = format!(
        "{:064x}",
        std::process::id() as u128 * 0x9e37_79b9_7f4a_7c15 + 7
    );
    let guard = Containerd {
        daemon,
        id: id.clone(),
    };
    for _ in 0..100 {
        if Path::new(SOCK).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ctr = |args: &[&str]| {
        let o = Command::new("ctr")
            .args(["-a", SOCK, "-n", "default"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let archive = dir.path().join("busybox.tar");
    let o = Command::new("podman")
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg("localhost/busybox:test")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "podman save: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    ctr(&["images", "import", archive.to_str().unwrap()]);
    ctr(&[
        "run",
        "-d",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--memory-limit",
        "67108864",
        "--label",
        "name=burner",
        "localhost/busybox:test",
        &id,
        "sh",
        "-c",
        "while :; do :; done",
    ]);

    let cfg = AgentConfig::from_json_with_env(
        r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "local"}}}}"#,
        &|k| (k == "HOST_NAME").then(|| "host-1".to_string()),
    )
    .unwrap();
    let mut ml = MetricsLoop::new(&cfg);
    let counter = Path::new("/sys/fs/cgroup/cpuacct/default")
        .join(&id)
        .join("cpuacct.usage");
    std::thread::sleep(Duration::from_millis(500));
    let (_, b0) = Bracket::around(&counter, ml.tick()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ((_, evs), b1) = Bracket::around(&counter, ml.tick()).await;
    let evs = docs(evs);

    let c = find(&evs, "Container", |e| e["PodName"] == "burner");
    assert_eq!(c["Namespace"], "containerd");
    assert_eq!(c["kubernetes"]["container_name"], "burner");
    assert_eq!(c["kubernetes"]["containerd"]["container_id"], id.as_str());
    assert_eq!(num(c, "container_cpu_limit"), 500.0);
    assert_eq!(num(c, "container_memory_limit"), 67108864.0);
    let cpu = num(c, "container_cpu_usage_total");
    let (lo, hi) = Bracket::millicores_range(&b0, &b1);
    assert!(
        cpu >= lo * 0.98 && cpu <= hi * 1.02 && cpu <= 520.0,
        "burner {cpu} m, the kernel's counter says {lo:.0}..{hi:.0} m"
    );
    assert!(
        evs.iter()
            .any(|e| e["Type"] == "Pod" && e["PodName"] == "burner")
    );
    drop(guard);
}
