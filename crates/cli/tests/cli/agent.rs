//! `kinsight agent` on this machine, which runs no Kubernetes: `--once` prints correct node
//! events and says clearly that no kubelet was reachable; `--check`; `--output file:`.

use serde_json::Value;
use std::process::Command;

fn kinsight() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kinsight"))
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("cwagentconfig.json");
    std::fs::write(&p, body).unwrap();
    p
}

const SEED: &str = r#"{"structuredlogs": {"metrics_collected": {"kubernetes": {"cluster_name": "local", "metrics_collection_interval": 60}}, "force_flush_interval": 5}}"#;

#[test]
fn once_prints_node_events_of_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), SEED);
    // HOST_IP points at a port where no kubelet listens.
    let out = kinsight()
        .args(["agent", "--config"])
        .arg(&cfg)
        .args(["--once", "--output", "-", "--sample-interval", "500ms"])
        .env("HOST_IP", "127.0.0.1")
        .env("HOST_NAME", "test-node")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kubelet_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("kubelet")).collect();
    assert_eq!(
        kubelet_lines.len(),
        1,
        "one clear line about the kubelet: {stderr}"
    );
    assert!(
        kubelet_lines[0].contains("not reachable") && kubelet_lines[0].contains("127.0.0.1:10250"),
        "{stderr}"
    );

    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut types = std::collections::BTreeMap::<String, usize>::new();
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as f64;
    for line in stdout.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["logGroupName"], "/kinsight/local/performance");
        assert_eq!(e["logStreamName"], "test-node");
        let m: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
        assert_eq!(m["ClusterName"], "local");
        assert_eq!(m["NodeName"], "test-node");
        assert_eq!(m["Timestamp"], e["timestamp"].as_i64().unwrap().to_string());
        let ty = m["Type"].as_str().unwrap().to_string();
        match ty.as_str() {
            "Node" => {
                assert_eq!(m["node_cpu_limit"].as_f64().unwrap(), cores * 1000.0);
                let u = m["node_cpu_utilization"].as_f64().unwrap();
                // Rates over a short sample jitter by a few percent around a fully busy machine.
                assert!((0.0..=105.0).contains(&u), "{u}");
                let mem = m["node_memory_limit"].as_f64().unwrap();
                let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
                let total_kb: f64 = meminfo
                    .lines()
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(mem, total_kb * 1024.0);
                assert!(m["node_memory_working_set"].as_f64().unwrap() < mem);
                assert!(
                    m.get("node_number_of_running_pods").is_none(),
                    "no kubelet, no pod counts"
                );
                assert!(m["CloudWatchMetrics"].is_array());
            }
            "NodeFS" => {
                let cap = m["node_filesystem_capacity"].as_f64().unwrap();
                assert!(m["node_filesystem_usage"].as_f64().unwrap() <= cap);
            }
            "NodeNet" => assert!(
                m["interface"]
                    .as_str()
                    .is_some_and(|i| !i.starts_with("lo"))
            ),
            "NodeDiskIO" => {
                assert!(m["node_diskio_io_service_bytes_total"].as_f64().unwrap() >= 0.0)
            }
            other => panic!("unexpected event type {other} without Kubernetes"),
        }
        *types.entry(ty).or_default() += 1;
    }
    assert_eq!(types.get("Node"), Some(&1), "{types:?}");
    for t in ["NodeFS", "NodeNet", "NodeDiskIO"] {
        assert!(
            types.get(t).is_some_and(|n| *n >= 1),
            "missing {t}: {types:?}"
        );
    }
}

#[test]
fn check_validates_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ok = kinsight()
        .args(["agent", "--check", "--config"])
        .arg(write_config(dir.path(), SEED))
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid"));

    let bad = write_config(
        dir.path(),
        r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "metrics_collection_interval": "often"}}}}"#,
    );
    let out = kinsight()
        .args(["agent", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("logs.metrics_collected.kubernetes.metrics_collection_interval"),
        "{err}"
    );

    let unknown = write_config(
        dir.path(),
        r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c", "colour": 1}}}}"#,
    );
    let out = kinsight()
        .args(["agent", "--check", "--config"])
        .arg(&unknown)
        .output()
        .unwrap();
    assert!(out.status.success(), "unknown keys are warnings");
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));

    let out = kinsight()
        .args(["agent", "--check", "--config", "/nonexistent/x.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.json"));
}

#[test]
fn file_output_appends_fsynced_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), SEED);
    let path = dir.path().join("events.jsonl");
    for _ in 0..2 {
        let out = kinsight()
            .args(["agent", "--config"])
            .arg(&cfg)
            .args(["--once", "--sample-interval", "200ms", "--output"])
            .arg(format!("file:{}", path.display()))
            .env_remove("HOST_IP")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let nodes = text
        .lines()
        .filter(|l| l.contains(r#"\"Type\":\"Node\""#))
        .count();
    assert_eq!(nodes, 2, "two runs appended two collections");
    let out = kinsight()
        .args(["agent", "--config"])
        .arg(&cfg)
        .args(["--once", "--output", "s3:x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3:x"));
}

#[test]
fn runs_at_one_second_and_serves_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "local", "metrics_collection_interval": 1}}}}}}, "kinsight": {{"state_dir": "{}"}}}}"#,
            dir.path().join("state").display()
        ),
    );
    let path = dir.path().join("events.jsonl");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = kinsight()
        .args(["agent", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(format!("file:{}", path.display()))
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .env_remove("HOST_IP")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(4500));
    let body = http_get(port, "/metrics");
    let health = http_get(port, "/healthz");
    unsafe { libc_kill(child.id() as i32) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean shutdown");
    assert!(health.contains("ok"));
    assert!(body.contains("# TYPE node_cpu_utilization gauge"), "{body}");
    assert!(
        body.contains("node_memory_limit{cluster=\"local\""),
        "{body}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let collections = text
        .lines()
        .filter(|l| l.contains(r#"\"Type\":\"Node\""#))
        .count();
    assert!(
        (3..=6).contains(&collections),
        "about one collection per second, got {collections}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill_raw(pid: i32, sig: i32) -> i32;
}

/// Sends SIGTERM.
unsafe fn libc_kill(pid: i32) {
    unsafe {
        libc_kill_raw(pid, 15);
    }
}
