//! Benchmark: one collection over a fixture node of 110 pods / 330 containers (issue [1/8]).
//! Reports CPU time per collection (getrusage, user + system) and the process's peak RSS. As
//! in the agent's loop at a 1 s interval, every 10th collection gets a new pod list parsed from
//! the kubelet's JSON (the agent asks the kubelet every 10 s); a collection also turns its
//! events into log events (the JSON messages).
//!
//!     cargo bench -p kinsight-agent --bench collect
//!
//! With `-- --write-fixture DIR` it only writes the fixture host tree and the kubelet's PodList
//! (`DIR/pods.json`) so that the real `kinsight agent` can be measured against them
//! (scripts/bench-agent.sh).

#[path = "../tests/metrics/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use fixtures::{CgroupCounters, HostTree, Layout};
use k8s_openapi::api::core::v1::Pod;
use kinsight_agent::kubelet::parse_pod_list;
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs, to_log_events};
use serde_json::Value;
use std::time::Instant;

const PODS: usize = 110;
const CONTAINERS: usize = 3;
/// Collections per kubelet pod list (the agent's loop: every max(interval, 10 s)).
const PODS_EVERY: u64 = 10;

fn uid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

fn cid(i: usize, c: usize) -> String {
    format!("{:032x}{:032x}", i, c)
}

fn counters(k: u64, i: usize) -> CgroupCounters {
    CgroupCounters {
        cpu_usage_ns: 1_000_000_000 * i as u64 + 50_000_000 * k,
        cpu_user_ns: 700_000_000 * i as u64 + 30_000_000 * k,
        cpu_system_ns: 300_000_000 * i as u64 + 20_000_000 * k,
        mem_usage: 100 << 20,
        mem_inactive_file: 10 << 20,
        mem_anon: 60 << 20,
        mem_file: 30 << 20,
        pgfault: 1000 + k * 10,
        pgmajfault: 1,
        limit: Some(256 << 20),
        pids: vec![],
    }
}

fn write_counters(t: &HostTree, k: u64) {
    t.set_node(
        100_000 + k * 150,
        50_000 + k * 50,
        1 << 30,
        1 << 29,
        1 << 20,
        1 << 20,
    );
    for i in 0..PODS {
        t.set_cgroup(&t.pod_path(&uid(i)), &counters(k, i));
        for c in 0..CONTAINERS {
            let mut cc = counters(k, i);
            cc.pids = if c == 0 {
                vec![10_000 + i as u32]
            } else {
                vec![]
            };
            t.set_cgroup(&t.container_path(&uid(i), &cid(i, c)), &cc);
        }
        t.net_dev(
            10_000 + i as u32,
            &[("eth0", 1_000_000 + k * 1000, 500_000 + k * 500)],
        );
    }
}

/// A PodList of 110 pods of 3 containers each, modelled on the recorded `api` pod.
fn pod_list() -> String {
    let template: Value =
        serde_json::from_str(&fixtures::kube("pods.json", &[("API_APP_RESTARTS", "0")])).unwrap();
    let base = template["items"][0].clone();
    let mut items = Vec::new();
    for i in 0..PODS {
        let mut p = base.clone();
        p["metadata"]["name"] = format!("api-{i}-7d9f8c6b5d-x2k4q").into();
        p["metadata"]["uid"] = uid(i).into();
        p["metadata"]["namespace"] = format!("ns-{}", i % 10).into();
        p["metadata"]["ownerReferences"][0]["name"] = format!("api-{i}-7d9f8c6b5d").into();
        let c0 = p["spec"]["containers"][0].clone();
        let s0 = p["status"]["containerStatuses"][0].clone();
        let mut cs = Vec::new();
        let mut ss = Vec::new();
        for c in 0..CONTAINERS {
            let mut cc = c0.clone();
            cc["name"] = format!("c{c}").into();
            cs.push(cc);
            let mut sc = s0.clone();
            sc["name"] = format!("c{c}").into();
            sc["containerID"] = format!("containerd://{}", cid(i, c)).into();
            ss.push(sc);
        }
        p["spec"]["containers"] = cs.into();
        p["status"]["containerStatuses"] = ss.into();
        items.push(p);
    }
    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        .to_string()
}

/// CPU seconds of this process so far: (user, system).
fn cpu_time_s() -> (f64, f64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(u.ru_utime), tv(u.ru_stime))
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let real = args.iter().any(|a| a == "--real-cgroups");
    let t = HostTree::new(Layout::V1Cgroupfs);
    if !real {
        write_counters(&t, 0);
    }
    let pods_json = pod_list();
    if let Some(i) = args.iter().position(|a| a == "--write-fixture") {
        let dest = std::path::PathBuf::from(&args[i + 1]);
        let _ = std::fs::remove_dir_all(&dest);
        let kept = t.dir.keep();
        std::fs::rename(&kept, &dest)
            .or_else(|_| {
                std::process::Command::new("cp")
                    .arg("-a")
                    .arg(&kept)
                    .arg(&dest)
                    .status()
                    .map(|_| ())
            })
            .unwrap();
        std::fs::write(dest.join("pods.json"), &pods_json).unwrap();
        println!(
            "fixture host tree and pods.json written to {}",
            dest.display()
        );
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench binaries without --bench.
        println!("benchmark skipped: run it with `cargo bench -p kinsight-agent --bench collect`");
        return;
    }
    // `--real-cgroups`: the same pods as real (empty) cgroups under this machine's cgroup v1
    // hierarchy, so the kernel's own cgroupfs serves the reads (root only).
    let _real_tree = real.then(RealTree::create);
    let pods: k8s_openapi::List<Pod> = serde_json::from_str(&pods_json).unwrap();
    let pods = std::sync::Arc::new(pods.items);
    let settings = CollectorSettings {
        cluster_name: "bench".into(),
        node_name: "node-1".into(),
        enhanced: false,
        prefer_full_pod_name: false,
        disable_metric_extraction: false,
    };
    let root = if real {
        std::path::Path::new("/")
    } else {
        t.root()
    };
    let mut c = Collector::new(settings, root);
    let mut pods = pods;
    c.collect(
        0,
        0,
        &Inputs {
            pods: Some(&pods),
            ..Default::default()
        },
    );
    let rss_before = status_kb("VmRSS:");
    let n: u64 = std::env::var("KINSIGHT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let cpu0 = cpu_time_s();
    let wall0 = Instant::now();
    let mut events = 0;
    let mut bytes = 0;
    for k in 1..=n {
        // As `kinsight agent` at a 1 s interval: the kubelet's pods are asked for every 10 s
        // (the response parsed, the pod details derived again), reused in between.
        if k % PODS_EVERY == 0 {
            pods = std::sync::Arc::new(parse_pod_list(pods_json.as_bytes()).unwrap());
        }
        let inputs = Inputs {
            pods: Some(&pods),
            ..Default::default()
        };
        let evs = c.collect(k * 1_000_000_000, k as i64 * 1000, &inputs);
        let log = to_log_events(&evs, "/kinsight/bench/performance", 0);
        events = log.len();
        bytes = log.iter().map(|e| e.message.len()).sum::<usize>();
    }
    let cpu1 = cpu_time_s();
    let (user, sys) = ((cpu1.0 - cpu0.0) / n as f64, (cpu1.1 - cpu0.1) / n as f64);
    let cpu = user + sys;
    let wall = wall0.elapsed().as_secs_f64() / n as f64;
    println!(
        "collection over {PODS} pods / {} containers ({}): {events} events, {bytes} bytes of messages",
        PODS * CONTAINERS,
        if real {
            "real cgroupfs, this host's /proc"
        } else {
            "fixture files on disk"
        }
    );
    println!(
        "cpu per collection: {:.2} ms (user {:.2} + system {:.2}; wall {:.2} ms), {n} collections",
        cpu * 1000.0,
        user * 1000.0,
        sys * 1000.0,
        wall * 1000.0
    );
    println!(
        "RSS: {} KiB after setup (PodList of {} KiB parsed), {} KiB after, peak {} KiB",
        rss_before,
        pods_json.len() / 1024,
        status_kb("VmRSS:"),
        status_kb("VmHWM:")
    );
}

/// 110 pod and 330 container cgroups created in the real cgroup v1 hierarchy, removed on drop.
struct RealTree {
    dirs: Vec<std::path::PathBuf>,
}

impl RealTree {
    fn create() -> RealTree {
        let mut dirs = Vec::new();
        for ctl in ["cpu", "cpuacct", "memory"] {
            let base = std::path::Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("kubepods/burstable");
            for i in 0..PODS {
                let pod = base.join(format!("pod{}", uid(i)));
                std::fs::create_dir_all(&pod)
                    .expect("root and cgroup v1 controllers are needed for --real-cgroups");
                for c in 0..CONTAINERS {
                    let d = pod.join(cid(i, c));
                    std::fs::create_dir_all(&d).unwrap();
                    dirs.push(d);
                }
                dirs.push(pod);
            }
        }
        RealTree { dirs }
    }
}

impl Drop for RealTree {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}
