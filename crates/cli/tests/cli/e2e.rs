//! The end-to-end test of issue [8/8] on real containers: `kinsight up` runs (server, agent,
//! storage), a podman pod with a CPU burner limited to 500m and a logger starts, and through
//! `kinsight query` the burner's container CPU is about 500 millicores (bounded by the
//! kernel's own counter over the same window) and every logger line is in the application
//! group with its pod and container names.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kinsight() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kinsight"))
}

struct Cleanup {
    up: Option<Child>,
    pod: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["pod", "rm", "-f", "-t", "0", &self.pod])
            .output();
        if let Some(mut up) = self.up.take() {
            let _ = Command::new("kill").arg(up.id().to_string()).status();
            let _ = up.wait();
        }
    }
}

fn query(server: &str, token: &str, group: &str, q: &str) -> Vec<Value> {
    let out = kinsight()
        .args([
            "query", "--server", server, "--group", group, "--since", "30m", "--output", "json", q,
        ])
        .env("KINSIGHT_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "query {q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn cpuacct_ns(cgroup: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/fs/cgroup/cpuacct{cgroup}/cpuacct.usage"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn kinsight_up_sees_a_podman_pod_cpu_and_every_log_line() {
    let setup = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/podman-setup.sh"
        ))
        .status();
    if !setup.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: podman could not be set up here (scripts/podman-setup.sh failed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pod = format!("e2e{}", std::process::id());
    let mut guard = Cleanup {
        up: None,
        pod: pod.clone(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut up = kinsight()
        .args(["up", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--interval",
            "2s",
            "--cluster",
            "local",
        ])
        .env_remove("KINSIGHT_TOKEN")
        .env_remove("HOST_IP")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(up.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    guard.up = Some(up);
    // "kinsight is up: open http://127.0.0.1:PORT/?token=T"
    let url = first.trim().rsplit(' ').next().unwrap().to_string();
    let token = url.split("token=").nth(1).unwrap().to_string();
    let server = format!("http://127.0.0.1:{port}");
    assert!(url.starts_with(&server), "{first}");

    let yaml = dir.path().join("pod.yaml");
    std::fs::write(
        &yaml,
        include_str!("../../../agent/tests/fixtures/podman-pod.yaml")
            .replace("NAME", &pod)
            .replace("LOG_SLEEP", "0.2"),
    )
    .unwrap();
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
    let cg = String::from_utf8(
        Command::new("podman")
            .args([
                "inspect",
                "-f",
                "{{.State.CgroupPath}}",
                &format!("{pod}-burner"),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let (t0, u0) = (Instant::now(), cpuacct_ns(&cg));

    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap()
    };
    // Collections every 2 s. Wait for at least 20 s and eight samples of the burner (on a
    // loaded CI machine the agent's first collections of the new pod can come late), at most
    // two minutes; the kernel's counter is read over the same window.
    let perf = "/kinsight/local/performance";
    let q = format!(
        r#"filter Type="Container" and PodName="{pod}" and kubernetes.container_name="burner" | stats avg(container_cpu_usage_total) as cpu, count(*) as samples, max(container_cpu_limit) as lim"#
    );
    let deadline = t0 + Duration::from_secs(120);
    let (rows, kernel_avg_m) = loop {
        std::thread::sleep(Duration::from_secs(5));
        let (t1, u1) = (Instant::now(), cpuacct_ns(&cg));
        let rows = query(&server, &token, perf, &q);
        let samples = rows.first().map_or(0.0, |r| num(&r["samples"]));
        if (t0.elapsed() >= Duration::from_secs(20) && samples >= 8.0) || t1 > deadline {
            let kernel = (u1 - u0) as f64 / t1.duration_since(t0).as_nanos() as f64 * 1000.0;
            break (rows, kernel);
        }
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    let cpu = num(&rows[0]["cpu"]);
    assert!(num(&rows[0]["samples"]) >= 5.0, "{rows:?}");
    assert_eq!(num(&rows[0]["lim"]), 500.0);
    assert!(cpu <= 520.0, "the 500m limit caps the burner: {cpu}");
    // The agent's samples cover most of the same window as the kernel's counter.
    assert!(
        (cpu - kernel_avg_m).abs() <= 0.25 * kernel_avg_m.max(100.0),
        "agent says {cpu:.0} m, the kernel {kernel_avg_m:.0} m"
    );
    eprintln!(
        "burner: {cpu:.0} millicores by kinsight ({} samples), {kernel_avg_m:.0} by the kernel's counter",
        rows[0]["samples"]
    );

    // Every logger line, from the first, with its pod and container names.
    let app = "/kinsight/local/application";
    let lines = query(
        &server,
        &token,
        app,
        &format!(
            r#"filter kubernetes.pod_name="{pod}" and kubernetes.container_name="logger" | parse log "log line *" as n | fields n, kubernetes.namespace_name as ns, stream | sort @timestamp asc | limit 10000"#
        ),
    );
    let mut numbers: Vec<u64> = lines.iter().map(|r| num(&r["n"]) as u64).collect();
    assert!(numbers.len() >= 50, "only {} logger lines", numbers.len());
    assert!(
        lines
            .iter()
            .all(|r| r["ns"] == "podman" && r["stream"] == "stdout")
    );
    numbers.sort();
    let max = *numbers.last().unwrap();
    assert_eq!(
        numbers,
        (1..=max).collect::<Vec<_>>(),
        "no line lost or stored twice"
    );

    // The agent's metrics through PromQL (issue 17): the node's memory utilization at the time
    // of its latest performance event is that event's value — the series named by the metric,
    // its dimensions as labels.
    let latest = query(
        &server,
        &token,
        perf,
        r#"filter Type="Node" | sort @timestamp desc | limit 1 | fields node_memory_utilization as v, NodeName as node, toMillis(@timestamp) as t"#,
    );
    assert_eq!(latest.len(), 1, "{latest:?}");
    let node = latest[0]["node"].as_str().unwrap().to_string();
    let t_ms = num(&latest[0]["t"]) as i64;
    let promql = format!(r#"node_memory_utilization{{ClusterName="local",NodeName="{node}"}}"#);
    let time = format!("{:.3}", t_ms as f64 / 1000.0);
    let answer: Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::Client::new()
                .get(format!("{server}/api/v1/query"))
                .bearer_auth(&token)
                .query(&[("query", promql.as_str()), ("time", time.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
    assert_eq!(answer["status"], "success", "{answer}");
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{answer}");
    assert_eq!(result[0]["metric"]["__name__"], "node_memory_utilization");
    assert_eq!(
        result[0]["metric"]["cloudwatch_namespace"],
        "ContainerInsights"
    );
    let promql_value = num(&result[0]["value"][1]);
    let logs_value = num(&latest[0]["v"]);
    assert!(
        (promql_value - logs_value).abs() <= 1e-9 * logs_value.abs().max(1.0),
        "PromQL {promql_value} vs the event's {logs_value}"
    );
    assert!(
        promql_value > 0.0 && promql_value <= 100.0,
        "{promql_value}"
    );
}
