//! Benchmark of the log pipeline (issue [2/8]); not a test. Run it from a release build, pinned
//! to one core, as docs/benchmarks.md shows:
//!
//! * `logs_bench throughput DIR [file|null]` — reads a 2-million-line CRI file (~130 bytes a line,
//!   created once under DIR) from its head through parse, enrich and serialise into the file
//!   sink (fsync per batch, checkpoint per acknowledgement) or into a sink that discards; prints
//!   lines/s, CPU seconds and peak RSS.
//! * `logs_bench steady DIR SECONDS RATE` — another process appends RATE lines/s for SECONDS;
//!   prints the collector's CPU cores used and its steady and peak RSS.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kinsight_agent::logs::{CollectorOptions, LogCollector};
use kinsight_agent::sink::{FileSink, Sink, SinkError, encode_lines};
use kinsight_model::LogEvent;
use kinsight_model::config::AgentConfig;
use tokio::sync::watch;

const LINES: u64 = 2_000_000;
const UID: &str = "5d2f7c1e-0a4b-4c6d-8e9f-112233445566";

/// Serialises like the file sink, then throws the bytes away: the pipeline's own cost.
struct NullSink;
impl Sink for NullSink {
    fn send<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            std::hint::black_box(encode_lines(events));
            Ok(())
        })
    }
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn log_file(root: &Path) -> PathBuf {
    root.join(format!(
        "var/log/pods/shop_checkout-6f7d8c9b5-q2w3e_{UID}/checkout/0.log"
    ))
}

/// ~130 bytes a line, like the issue's benchmark file.
fn line(n: u64) -> String {
    format!(
        "2024-05-01T10:{:02}:{:02}.{:09}Z stdout F level=info req={n:010} path=/api/v1/cart status=200 ua=kube-probe/1.30 dur_ms={}\n",
        (n / 60_000_000) % 60,
        (n / 1_000_000) % 60,
        n % 1_000_000_000,
        n % 977
    )
}

fn pods() -> Vec<k8s_openapi::api::core::v1::Pod> {
    let doc = serde_json::json!({"items": [{
        "metadata": {"name": "checkout-6f7d8c9b5-q2w3e", "namespace": "shop", "uid": UID,
                     "labels": {"app": "checkout", "pod-template-hash": "6f7d8c9b5"}},
        "spec": {"nodeName": "bench-node", "containers": [{"name": "checkout", "image": "registry.example/shop/checkout:2.4.1"}]},
        "status": {"containerStatuses": [{"name": "checkout", "image": "registry.example/shop/checkout:2.4.1",
            "imageID": "registry.example/shop/checkout@sha256:9b1f0c3e5a7d2b4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809",
            "containerID": "containerd://3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100",
            "restartCount": 0, "ready": true}]}}]});
    kinsight_agent::kubelet::parse_pod_list(doc.to_string().as_bytes()).unwrap()
}

fn config(root: &Path) -> AgentConfig {
    let doc = format!(
        r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "bench"}}}}}},
            "kinsight": {{"host_root": "{}", "state_dir": "{}",
                         "logs": {{"read_from_head": true, "journald": false}}}}}}"#,
        root.display(),
        root.join("state").display()
    );
    AgentConfig::from_json_with_env(&doc, &|k| (k == "HOST_NAME").then(|| "bench-node".into()))
        .unwrap()
}

fn run_collector(
    root: &Path,
    sink: Arc<dyn Sink>,
    sample_every: Duration,
    until: impl Fn(&kinsight_agent::logs::stats::LogStatsSnapshot) -> bool + Send + 'static,
    on_sample: impl FnMut() + Send + 'static,
) {
    let cfg = config(root);
    let _ = std::fs::remove_dir_all(root.join("state"));
    // One thread for everything async: the benchmark runs pinned to one core anyway.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (_ptx, prx) = watch::channel(Arc::new(pods()));
        let mut opts = CollectorOptions {
            host_files: false,
            ..CollectorOptions::default()
        };
        if let Some(ms) = std::env::var("LOGS_BENCH_LINGER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            opts.linger = Duration::from_millis(ms);
        }
        let c = LogCollector::new(&cfg, sink, Some(prx)).with_options(opts);
        let stats = c.stats();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(c.run(rx));
        let mut on_sample = on_sample;
        loop {
            tokio::time::sleep(sample_every).await;
            on_sample();
            if until(&stats.snapshot()) {
                break;
            }
        }
        tx.send(true).unwrap();
        task.await.unwrap().unwrap();
    });
}

fn throughput(dir: &Path, sink_kind: &str) {
    let file = log_file(dir);
    if !file.exists() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for n in 0..LINES {
            w.write_all(line(n).as_bytes()).unwrap();
        }
        w.flush().unwrap();
    }
    let size = std::fs::metadata(&file).unwrap().len();
    let out = dir.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    let sink: Arc<dyn Sink> = match sink_kind {
        "null" => Arc::new(NullSink),
        _ => Arc::new(FileSink::open(&out).unwrap()),
    };
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    run_collector(
        dir,
        sink,
        Duration::from_millis(20),
        |s| s.events_acked >= LINES,
        || {},
    );
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "sink={sink_kind} lines={LINES} bytes_per_line={:.0} wall_s={secs:.2} lines_per_s={:.0} cpu_s={cpu:.2} lines_per_cpu_s={:.0} peak_rss_mib={:.1} out_bytes={}",
        size as f64 / LINES as f64,
        LINES as f64 / secs,
        LINES as f64 / cpu,
        status_kib("VmHWM:") as f64 / 1024.0,
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
    );
}

fn writer(file: &Path, seconds: u64, rate: u64) {
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    let t0 = Instant::now();
    let total = seconds * rate;
    let mut n = 0;
    // Writes every 10 ms, like a busy application flushing its buffer.
    while n < total {
        let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
        let mut buf = String::new();
        while n < due.min(total) {
            buf.push_str(&line(n));
            n += 1;
        }
        f.write_all(buf.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn steady(dir: &Path, seconds: u64, rate: u64) {
    let file = dir.join("steady").join(
        log_file(Path::new(""))
            .strip_prefix("/")
            .unwrap_or(&log_file(Path::new(""))),
    );
    let root = dir.join("steady");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "").unwrap();
    let out = dir.join("steady-out.jsonl");
    let _ = std::fs::remove_file(&out);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "writer",
            file.to_str().unwrap(),
            &seconds.to_string(),
            &rate.to_string(),
        ])
        .spawn()
        .unwrap();
    let total = seconds * rate;
    let sink: Arc<dyn Sink> = Arc::new(FileSink::open(&out).unwrap());
    // Measure from 5 s in (start-up and the first kubelet answer excluded) to the end.
    let t0 = Instant::now();
    let mut window: Option<(Instant, f64)> = None;
    let mut rss = Vec::new();
    let result = Arc::new(std::sync::Mutex::new(None));
    let r2 = result.clone();
    // Sampled twice a second: the sampling itself runs in the measured process.
    run_collector(
        &root,
        sink,
        Duration::from_millis(500),
        move |s| s.events_acked >= total,
        move || {
            if t0.elapsed() >= Duration::from_secs(5) {
                let w = window.get_or_insert_with(|| (Instant::now(), cpu_seconds()));
                rss.push(status_kib("VmRSS:"));
                let cores = (cpu_seconds() - w.1) / w.0.elapsed().as_secs_f64().max(1e-9);
                *r2.lock().unwrap() = Some((cores, rss.iter().sum::<u64>() / rss.len() as u64));
            }
        },
    );
    let _ = child.wait();
    let (cores, rss_avg) = result.lock().unwrap().unwrap_or((0.0, 0));
    println!(
        "steady rate={rate}/s seconds={seconds} cores={cores:.4} steady_rss_mib={:.1} peak_rss_mib={:.1}",
        rss_avg as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("throughput") => throughput(
            Path::new(&args[2]),
            args.get(3).map(String::as_str).unwrap_or("file"),
        ),
        Some("steady") => steady(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        ),
        Some("writer") => writer(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        ),
        _ => eprintln!("usage: logs_bench throughput DIR [file|null] | steady DIR SECONDS RATE"),
    }
}
