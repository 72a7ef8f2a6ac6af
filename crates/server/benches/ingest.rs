//! Ingest benchmark against the real `kinsight server` binary (release build):
//!
//! 1. throughput with fsync'd acknowledgements: concurrent clients post zstd batches of
//!    realistic Kubernetes application logs (as Fluent Bit/the agent ship them); reported per
//!    second of wall time and per second of the *server process's* CPU time (from
//!    /proc/<pid>/stat), both for the ingest path alone and including the flush to Parquet;
//! 2. bytes on disk per event after flush + compaction, against the raw JSON lines;
//! 3. write → queryable latency: time from sending one event to reading it back through
//!    `GET /v1/events`, idle and under a steady load (`BENCH_RATE_MBPS`, default 10).
//!
//! Run: `cargo build --release --bin kinsight && cargo bench -p kinsight-server --bench ingest`
//! (`KINSIGHT_BIN` overrides the binary; `BENCH_SECONDS`, `BENCH_CLIENTS` the load).

mod common;
use common::{Server, TOKEN, write_to_read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const GROUP: &str = "/kinsight/bench/application";

/// Generates realistic application log events of a cluster: Fluent Bit records (reference §3.3)
/// with the Kubernetes block, `log` as written by the container and `log_processed` when the
/// app logs JSON; a mix of JSON services, nginx access lines and Java-style text lines.
struct LogGen {
    rng: StdRng,
    pods: Vec<Pod>,
    seq: u64,
}

struct Pod {
    name: String,
    namespace: &'static str,
    container: &'static str,
    image: &'static str,
    docker_id: String,
    pod_id: String,
    host: String,
    kind: u8,
}

const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/users/{id}/cart",
    "/healthz",
    "/api/v2/search",
    "/static/app.js",
    "/api/v1/payments",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "kube-probe/1.30",
    "Go-http-client/1.1",
    "python-requests/2.32.3",
];
const JAVA: &[&str] = &[
    "c.e.orders.OrderService - Order {} created for customer {} in {} ms",
    "o.h.e.j.s.SqlExceptionHelper - SQL Error: 0, SQLState: 08006",
    "c.e.payments.Gateway - Payment {} authorised, amount {} EUR",
    "o.s.web.servlet.DispatcherServlet - Completed initialization in {} ms",
    "c.e.cache.RedisClient - Reconnecting to redis-master:6379 after {} ms",
];

impl LogGen {
    fn new(seed: u64) -> LogGen {
        let mut rng = StdRng::seed_from_u64(seed);
        let specs: [(&str, &str, &str, u8); 6] = [
            ("checkout", "shop", "registry.local/shop/checkout:2.14.1", 0),
            ("cart", "shop", "registry.local/shop/cart:1.9.0", 0),
            (
                "ingress-nginx-controller",
                "ingress-nginx",
                "registry.k8s.io/ingress-nginx/controller:v1.11.2",
                1,
            ),
            (
                "orders",
                "backend",
                "registry.local/backend/orders:5.2.0",
                2,
            ),
            (
                "payments",
                "backend",
                "registry.local/backend/payments:3.0.7",
                2,
            ),
            ("search", "shop", "registry.local/shop/search:0.33.2", 0),
        ];
        let mut pods = Vec::new();
        for (i, (app, ns, image, kind)) in specs.iter().enumerate() {
            for r in 0..4 {
                let hash: String = (0..10)
                    .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                    .collect();
                pods.push(Pod {
                    name: format!("{app}-{}-{}", &hash[..8], &hash[5..10]),
                    namespace: ns,
                    container: app,
                    image,
                    docker_id: (0..64)
                        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                        .collect(),
                    pod_id: format!(
                        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                        rng.random::<u32>(),
                        rng.random::<u16>(),
                        rng.random_range(0..4096u32),
                        rng.random_range(0..4096u32),
                        rng.random::<u64>() & 0xffff_ffff_ffff
                    ),
                    host: format!(
                        "ip-10-0-{}-{}.ec2.internal",
                        (i * 4 + r) % 3 + 1,
                        10 + (i * 4 + r) % 7
                    ),
                    kind: *kind,
                });
            }
        }
        LogGen { rng, pods, seq: 0 }
    }

    /// One event (group, stream, timestamp, message) as the agent ships it.
    fn event(&mut self, ts_ms: i64) -> Value {
        self.seq += 1;
        let p = self.rng.random_range(0..self.pods.len());
        let rng = &mut self.rng;
        let pod = &self.pods[p];
        let time = chrono::DateTime::from_timestamp_millis(ts_ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3f")
            .to_string()
            + &format!("{:06}Z", rng.random_range(0..1_000_000));
        let status = *[200, 200, 200, 200, 201, 204, 304, 400, 404, 500]
            .get(rng.random_range(0..10))
            .unwrap();
        let path = PATHS[rng.random_range(0..PATHS.len())]
            .replace("{id}", &rng.random_range(1000..99999).to_string());
        let trace: String = (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect();
        let latency = rng.random_range(1..1500);
        let (log, processed, stream) = match pod.kind {
            0 => {
                let level = if status >= 500 {
                    "error"
                } else if rng.random_range(0..20) == 0 {
                    "warn"
                } else {
                    "info"
                };
                let doc = json!({
                    "level": level, "ts": ts_ms as f64 / 1000.0, "caller": "http/server.go:218",
                    "msg": "request completed", "method": if rng.random_range(0..3) == 0 { "POST" } else { "GET" },
                    "path": path, "status": status, "duration_ms": latency, "trace_id": trace,
                    "user_id": rng.random_range(1..50_000),
                });
                (doc.to_string(), Some(doc), "stdout")
            }
            1 => {
                let ip = format!(
                    "10.{}.{}.{}",
                    rng.random_range(0..4),
                    rng.random_range(0..255),
                    rng.random_range(1..255)
                );
                let line = format!(
                    "{ip} - - [{}] \"GET {path} HTTP/1.1\" {status} {} \"-\" \"{}\" {} {:.3} [{}-{}-80] [] 10.0.{}.{}:8080 {} {:.3} {status} {trace}",
                    chrono::DateTime::from_timestamp_millis(ts_ms)
                        .unwrap()
                        .format("%d/%b/%Y:%H:%M:%S +0000"),
                    rng.random_range(200..90_000),
                    AGENTS[rng.random_range(0..AGENTS.len())],
                    rng.random_range(300..900),
                    latency as f64 / 1000.0,
                    pod.namespace,
                    pod.container,
                    rng.random_range(0..4),
                    rng.random_range(2..250),
                    rng.random_range(200..90_000),
                    latency as f64 / 1000.0,
                );
                (line, None, "stdout")
            }
            _ => {
                let tpl = JAVA[rng.random_range(0..JAVA.len())];
                let mut msg = tpl.to_string();
                while let Some(i) = msg.find("{}") {
                    msg.replace_range(i..i + 2, &rng.random_range(1..100_000).to_string());
                }
                let level = if msg.contains("Error") {
                    "ERROR"
                } else {
                    "INFO "
                };
                let line = format!(
                    "{} {level} 1 --- [nio-8080-exec-{}] {msg}",
                    chrono::DateTime::from_timestamp_millis(ts_ms)
                        .unwrap()
                        .format("%Y-%m-%d %H:%M:%S%.3f"),
                    rng.random_range(1..200)
                );
                (
                    line,
                    None,
                    if level == "ERROR" { "stderr" } else { "stdout" },
                )
            }
        };
        let mut rec = json!({
            "time": time, "stream": stream, "_p": "F", "log": log,
            "kubernetes": {
                "pod_name": pod.name, "namespace_name": pod.namespace, "pod_id": pod.pod_id,
                "host": pod.host, "container_name": pod.container, "docker_id": pod.docker_id,
                "container_hash": format!("{}@sha256:{}", pod.image.split(':').next().unwrap(), &pod.docker_id),
                "container_image": pod.image,
            }
        });
        if let Some(doc) = processed {
            rec["log_processed"] = doc;
        }
        let stream_name = format!(
            "{}-application.var.log.containers.{}_{}_{}-{}.log",
            pod.host, pod.name, pod.namespace, pod.container, pod.docker_id
        );
        json!({"logGroupName": GROUP, "logStreamName": stream_name, "timestamp": ts_ms, "message": rec.to_string()})
    }
}

/// A pre-built batch: compressed body and its raw (uncompressed JSON) size.
struct Batch {
    id: String,
    body: bytes::Bytes,
    raw_bytes: usize,
    events: usize,
    raw_line_bytes: usize,
}

fn build_batches(n: usize, seed: u64) -> Vec<Batch> {
    let mut g = LogGen::new(seed);
    let now = chrono::Utc::now().timestamp_millis();
    (0..n)
        .map(|b| {
            let mut events = Vec::new();
            let mut billed = 0;
            let mut lines = 0;
            // Up to the PutLogEvents limit: 1 MiB of messages + 26 bytes per event.
            loop {
                let e = g.event(now - 60_000 + (b as i64 * 7) % 60_000);
                let m = e["message"].as_str().unwrap().len() + 26;
                if billed + m > 1_000_000 || events.len() == 10_000 {
                    break;
                }
                billed += m;
                lines += e.to_string().len() + 1;
                events.push(e);
            }
            let raw = serde_json::to_vec(&events).unwrap();
            Batch {
                id: format!("bench-{seed}-{b}"),
                body: zstd::encode_all(&raw[..], 1).unwrap().into(),
                raw_bytes: raw.len(),
                events: events.len(),
                raw_line_bytes: lines,
            }
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn post(c: &reqwest::Client, url: &str, id: &str, body: bytes::Bytes) {
    let r = c
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .header("x-kinsight-batch-id", id)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

async fn admin(c: &reqwest::Client, url: &str, path: &str) -> Value {
    c.post(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn stats(c: &reqwest::Client, url: &str) -> Value {
    c.get(format!("{url}/v1/admin/stats"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without
    // it, and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with `cargo bench -p kinsight-server --bench ingest`");
        return;
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    println!("generating batches …");
    let batches = Arc::new(build_batches(400, 42));
    let per_batch_raw: f64 =
        batches.iter().map(|b| b.raw_bytes).sum::<usize>() as f64 / batches.len() as f64;
    println!(
        "{} batches, {:.0} events and {:.2} MB of JSON each ({:.0} bytes per event as a JSON line), zstd body {:.0} KB",
        batches.len(),
        batches.iter().map(|b| b.events).sum::<usize>() as f64 / batches.len() as f64,
        per_batch_raw / 1e6,
        batches.iter().map(|b| b.raw_line_bytes).sum::<usize>() as f64
            / batches.iter().map(|b| b.events).sum::<usize>() as f64,
        batches.iter().map(|b| b.body.len()).sum::<usize>() as f64 / batches.len() as f64 / 1e3,
    );

    let server = Server::start(&dir.path().join("data"), &[]);
    let c = client();

    // Idle write → read latency first.
    let mut idle = Vec::new();
    for i in 0..200 {
        idle.push(write_to_read(&c, &server.url, &server.url, GROUP, &format!("probe-{i}")).await);
    }

    // Throughput: `clients` concurrent posters for `seconds`, cycling through the batches
    // (each post gets a fresh id so it is stored, not deduplicated).
    let stop = Arc::new(AtomicBool::new(false));
    let sent_raw = Arc::new(AtomicU64::new(0));
    let sent_events = Arc::new(AtomicU64::new(0));
    let sent_lines = Arc::new(AtomicU64::new(0));
    let cpu0 = server.cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (url, batches, stop) = (server.url.clone(), batches.clone(), stop.clone());
        let (sent_raw, sent_events, sent_lines) =
            (sent_raw.clone(), sent_events.clone(), sent_lines.clone());
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let b = &batches[i % batches.len()];
                post(&c, &url, &format!("{}-{i}", b.id), b.body.clone()).await;
                sent_raw.fetch_add(b.raw_bytes as u64, Ordering::Relaxed);
                sent_events.fetch_add(b.events as u64, Ordering::Relaxed);
                sent_lines.fetch_add(b.raw_line_bytes as u64, Ordering::Relaxed);
                i += clients;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu_ingest = server.cpu_seconds() - cpu0;
    let flush = admin(&c, &server.url, "/v1/admin/flush").await;
    let cpu_flushed = server.cpu_seconds() - cpu0;
    let compact = admin(&c, &server.url, "/v1/admin/compact").await;
    let cpu_compacted = server.cpu_seconds() - cpu0;
    let st = stats(&c, &server.url).await;

    let raw = sent_raw.load(Ordering::Relaxed) as f64;
    let events = sent_events.load(Ordering::Relaxed) as f64;
    let lines = sent_lines.load(Ordering::Relaxed) as f64;
    let seg_bytes = st["segmentBytes"].as_f64().unwrap();
    println!("\n== ingest ({clients} clients, {wall:.1} s, zstd bodies, ack after fdatasync) ==");
    println!("events: {events:.0}, raw JSON: {:.1} MB", raw / 1e6);
    println!(
        "throughput (wall): {:.1} MB/s, {:.0} events/s",
        raw / 1e6 / wall,
        events / wall
    );
    println!(
        "server CPU: {cpu_ingest:.1} s during the run ({:.2} cores busy) → {:.1} MB/s per core",
        cpu_ingest / wall,
        raw / 1e6 / cpu_ingest
    );
    println!(
        "server CPU including the flush to Parquet: {cpu_flushed:.1} s → {:.1} MB/s per core",
        raw / 1e6 / cpu_flushed
    );
    println!(
        "compaction (zstd 9) of what is left small: {:.1} s CPU",
        cpu_compacted - cpu_flushed
    );
    println!(
        "group commit: {} records in {} fsyncs; flush: {flush}; compaction: {compact}",
        st["walRecords"], st["walCommits"]
    );
    println!("\n== size on disk (after flush + compaction) ==");
    println!(
        "segments: {} files, {:.1} MB; {:.1} bytes/event vs {:.1} bytes/event as JSON lines → {:.1}x smaller",
        st["segments"],
        seg_bytes / 1e6,
        seg_bytes / events,
        lines / events,
        lines / seg_bytes
    );
    // Write → readable under a steady, moderate load (what a cluster's agents produce), the
    // condition the ≤ 2 s freshness goal is about.
    let rate_mb: f64 = std::env::var("BENCH_RATE_MBPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for k in 0..2usize {
        let (url, batches, stop, c) =
            (server.url.clone(), batches.clone(), stop.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            let interval = Duration::from_secs_f64(2.0 * per_batch_raw / 1e6 / rate_mb);
            let mut next = tokio::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let b = &batches[i % batches.len()];
                post(&c, &url, &format!("steady-{}-{i}", b.id), b.body.clone()).await;
                i += 2;
                next += interval;
                tokio::time::sleep_until(next).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut loaded = Vec::new();
    for i in 0..100 {
        loaded.push(
            write_to_read(
                &c,
                &server.url,
                &server.url,
                GROUP,
                &format!("probe-{}", 1000 + i),
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (mut ia, mut iv): (Vec<f64>, Vec<f64>) = idle.into_iter().unzip();
    let (mut la, mut lv): (Vec<f64>, Vec<f64>) = loaded.into_iter().unzip();
    println!("\n== write → queryable (POST one event, then GET /v1/events until it is there) ==");
    println!(
        "idle: ack p50 {:.1} ms p99 {:.1} ms; readable p50 {:.1} ms p99 {:.1} ms",
        pct(&mut ia, 0.5),
        pct(&mut ia, 0.99),
        pct(&mut iv, 0.5),
        pct(&mut iv, 0.99)
    );
    println!(
        "under a steady {rate_mb} MB/s load: ack p50 {:.1} ms p99 {:.1} ms; readable p50 {:.1} ms p99 {:.1} ms",
        pct(&mut la, 0.5),
        pct(&mut la, 0.99),
        pct(&mut lv, 0.5),
        pct(&mut lv, 0.99)
    );
}
