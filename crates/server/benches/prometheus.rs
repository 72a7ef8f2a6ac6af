//! Prometheus compatibility (issue 17) against Debian's Prometheus 2.42, real processes both:
//! the release `kinsight` binary (`KINSIGHT_BIN`) and /usr/bin/prometheus
//! (`--web.enable-remote-write-receiver`, nothing to scrape), each started fresh on a temporary
//! directory, in one run.
//!
//! 1. **Remote-write ingest**: `BENCH_SERIES` (10,000) series — the first half counters
//!    `bench_metric_total`, the other half gauges `bench_gauge`, labelled
//!    `instance="i-<k % 100>"`, `pod="p-<k>"`, `job="bench"` — × `BENCH_SAMPLES` (100) samples
//!    15 s apart ending now, in snappy `WriteRequest`s of about `BENCH_REQUEST_SERIES` (2,000)
//!    series × `BENCH_SLICE` (4) samples each. The requests are encoded once and sent to one
//!    server, then to the other, by `BENCH_SENDERS` (2) concurrent senders; each sender owns
//!    its series and sends them time slice by time slice, so that every series' samples arrive
//!    in order (as Prometheus's remote-write shards do). Measured from just before the first
//!    request to the last acknowledgement: wall time and the server process's CPU time (user +
//!    system, /proc/<pid>/stat); then the time, and the CPU time in all, until every series'
//!    newest sample is queryable (kinsight applies acknowledged samples to its metric store
//!    after answering), and the CPU time of the next 2 idle seconds. Then, not timed, that
//!    `count_over_time` over the whole range adds up to series × samples.
//! 2. **PromQL `query_range`** over the whole range, step 60 s: each query once on both servers
//!    to check that the answers agree (same series, same timestamps, values within 1e-9
//!    relative; the benchmark panics otherwise), then `BENCH_RUNS` (7) times on each, the
//!    servers alternating; the median wall time from sending the request to the last byte of
//!    the answer.
//!
//! Prints a Markdown table (medians, ratios kinsight / Prometheus). `BENCH_HOLD_SECONDS` keeps
//! both servers up with the data afterwards, for probing them by hand.
//!
//! Run: `cargo build --release --bin kinsight && cargo build -p kinsight-server --bench
//! prometheus`, then `KINSIGHT_BIN=target/release/kinsight target/debug/deps/prometheus-<hash>
//! --bench` (`cargo bench -p kinsight-server --bench prometheus` builds it optimised).
//! Results: docs/benchmarks.md.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Server, TOKEN};
use kinsight_metrics::remote_write::prompb::{Label, Sample, TimeSeries, WriteRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Spacing of the samples (a 15 s scrape interval).
const INTERVAL_MS: i64 = 15_000;
/// Step of the range queries.
const QUERY_STEP_S: i64 = 60;

const QUERIES: &[&str] = &[
    "sum(rate(bench_metric_total[5m]))",
    "sum by (instance) (rate(bench_metric_total[5m]))",
    "avg by (instance) (bench_gauge)",
    "topk(5, bench_gauge)",
    "bench_gauge",
];

fn env_or(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Debian's Prometheus with the remote-write receiver and nothing to scrape; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing (apt-get install prometheus)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global: {}\nscrape_configs: []\n").unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg("--web.enable-remote-write-receiver")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--config.file={}", config.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of process `pid` so far (all its threads), as
/// [`Server::cpu_seconds`] reads them for kinsight.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // USER_HZ, the unit of /proc/<pid>/stat.
    let per_second = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks / per_second
}

/// Resident set size of process `pid`, MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One server under test.
struct Target<'a> {
    name: &'static str,
    url: String,
    token: Option<&'static str>,
    pid: u32,
    kinsight: Option<&'a Server>,
}

impl Target<'_> {
    /// The server process's user + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        match self.kinsight {
            Some(s) => s.cpu_seconds(),
            None => cpu_seconds(self.pid),
        }
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let r = http.request(method, format!("{}{path}", self.url));
        match self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
}

/// The remote-write requests, encoded once.
struct Data {
    /// The requests of each sender, in the order it sends them.
    per_sender: Vec<Vec<Bytes>>,
    series: usize,
    samples: usize,
    start_ms: i64,
    end_ms: i64,
    requests: usize,
    body_bytes: usize,
}

fn generate(
    series: usize,
    samples: usize,
    slice: usize,
    per_request: usize,
    senders: usize,
) -> Data {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let end_ms = now / INTERVAL_MS * INTERVAL_MS;
    let start_ms = end_ms - (samples as i64 - 1) * INTERVAL_MS;
    let counters = series / 2;
    let mut rng = StdRng::seed_from_u64(17);
    let values: Vec<Vec<f64>> = (0..series)
        .map(|k| {
            if k < counters {
                let mut v = rng.random_range(0.0..1000.0f64).floor();
                (0..samples)
                    .map(|_| {
                        v += rng.random_range(0..50u32) as f64;
                        v
                    })
                    .collect()
            } else {
                (0..samples)
                    .map(|_| rng.random_range(0.0..100.0f64))
                    .collect()
            }
        })
        .collect();
    let labels = |k: usize| -> Vec<Label> {
        let name = if k < counters {
            "bench_metric_total"
        } else {
            "bench_gauge"
        };
        [
            ("__name__", name.to_string()),
            ("instance", format!("i-{}", k % 100)),
            ("job", "bench".to_string()),
            ("pod", format!("p-{k}")),
        ]
        .into_iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v,
        })
        .collect()
    };
    // Groups of series, as many per sender, each sent as one request per time slice.
    let groups = senders * series.div_ceil(senders * per_request);
    let size = series.div_ceil(groups);
    let mut per_sender = vec![Vec::new(); senders];
    let mut body_bytes = 0;
    for (s, requests) in per_sender.iter_mut().enumerate() {
        for first in (0..samples).step_by(slice) {
            let last = (first + slice).min(samples);
            for g in (s..groups).step_by(senders) {
                let timeseries = (g * size..((g + 1) * size).min(series))
                    .map(|k| TimeSeries {
                        labels: labels(k),
                        samples: (first..last)
                            .map(|i| Sample {
                                value: values[k][i],
                                timestamp: start_ms + i as i64 * INTERVAL_MS,
                            })
                            .collect(),
                        exemplars: Vec::new(),
                        histograms: Vec::new(),
                    })
                    .collect();
                let body = WriteRequest {
                    timeseries,
                    metadata: Vec::new(),
                }
                .to_body();
                body_bytes += body.len();
                requests.push(Bytes::from(body));
            }
        }
    }
    Data {
        requests: per_sender.iter().map(Vec::len).sum(),
        per_sender,
        series,
        samples,
        start_ms,
        end_ms,
        body_bytes,
    }
}

struct Ingest {
    wall_s: f64,
    cpu_s: f64,
    /// Server CPU from before the first request until every sample was queryable.
    cpu_queryable_s: f64,
    /// Server CPU in the 2 s after every sample was queryable (work left behind).
    cpu_after_s: f64,
    queryable_s: f64,
    rss_mb: f64,
}

async fn ingest(http: &reqwest::Client, t: &Target<'_>, data: &Data) -> Ingest {
    let cpu0 = t.cpu_seconds();
    let t0 = Instant::now();
    let tasks: Vec<_> = data
        .per_sender
        .iter()
        .map(|requests| {
            let requests = requests.clone();
            let req = t.request(http, reqwest::Method::POST, "/api/v1/write");
            tokio::spawn(async move {
                for body in requests {
                    let r = req
                        .try_clone()
                        .unwrap()
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .header("x-prometheus-remote-write-version", "0.1.0")
                        .body(body)
                        .send()
                        .await
                        .expect("remote write");
                    let status = r.status();
                    if !status.is_success() {
                        panic!(
                            "remote write refused: {status} {}",
                            r.text().await.unwrap_or_default()
                        );
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu1 = t.cpu_seconds();
    let acked = Instant::now();

    // Queryable: every series' newest sample visible at the end of the range. A server may
    // apply acknowledged samples after answering (kinsight: WAL first, then the metric store,
    // in WAL order); every request was acknowledged before some request of the last time
    // slice was sent, so once those are visible, everything is. The polls are instant
    // queries over the last 5 minutes only, cheap next to the ingest.
    let end_s = data.end_ms / 1000;
    let newest = format!(
        "count(timestamp(bench_metric_total) == {end_s}) + count(timestamp(bench_gauge) == {end_s})"
    );
    poll(http, t, &newest, end_s, data.series as f64, acked).await;
    let queryable_s = acked.elapsed().as_secs_f64();
    let cpu2 = t.cpu_seconds();
    // Work left behind: the server's CPU time in the next 2 s, idle as far as clients go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after_s = t.cpu_seconds() - cpu2;

    // Every sample there: count_over_time over the whole range adds up (not timed).
    let range_s = (data.end_ms - data.start_ms) / 1000 + 60;
    let all = format!(
        "sum(count_over_time(bench_metric_total[{range_s}s])) \
         + sum(count_over_time(bench_gauge[{range_s}s]))"
    );
    let expected = (data.series * data.samples) as f64;
    poll(http, t, &all, end_s, expected, Instant::now()).await;
    Ingest {
        wall_s,
        cpu_s: cpu1 - cpu0,
        cpu_queryable_s: cpu2 - cpu0,
        cpu_after_s,
        queryable_s,
        rss_mb: rss_mb(t.pid),
    }
}

/// Polls the instant query `query` at `time_s` every 20 ms until its one value is
/// `expected`; panics after 300 s.
async fn poll(
    http: &reqwest::Client,
    t: &Target<'_>,
    query: &str,
    time_s: i64,
    expected: f64,
    since: Instant,
) {
    let time = time_s.to_string();
    let mut last = Value::Null;
    loop {
        let r = t
            .request(http, reqwest::Method::GET, "/api/v1/query")
            .query(&[("query", query), ("time", time.as_str())])
            .send()
            .await
            .unwrap();
        last = r.json().await.unwrap_or(last);
        let n = last["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok());
        if n == Some(expected) {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(300),
            "{}: {query} is not {expected} after 300 s: {last}",
            t.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One range query: (ms from sending to the last byte of the answer, the answer).
async fn query_range(
    http: &reqwest::Client,
    t: &Target<'_>,
    query: &str,
    data: &Data,
) -> (f64, Value) {
    let (start, end) = (
        (data.start_ms / 1000).to_string(),
        (data.end_ms / 1000).to_string(),
    );
    let t0 = Instant::now();
    let r = t
        .request(http, reqwest::Method::GET, "/api/v1/query_range")
        .query(&[
            ("query", query),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", &QUERY_STEP_S.to_string()),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(
        status.is_success(),
        "{} {query}: {status} {}",
        t.name,
        String::from_utf8_lossy(&body)
    );
    (ms, serde_json::from_slice(&body).unwrap())
}

type Matrix = BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>>;

fn matrix(name: &str, query: &str, answer: &Value) -> Matrix {
    assert_eq!(answer["status"], "success", "{name} {query}: {answer}");
    assert_eq!(answer["data"]["resultType"], "matrix", "{name} {query}");
    let mut m = Matrix::new();
    for s in answer["data"]["result"].as_array().unwrap() {
        let labels = s["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let points = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_f64().unwrap(),
                    p[1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect();
        assert!(
            m.insert(labels, points).is_none(),
            "{name} {query}: a series twice"
        );
    }
    m
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Panics unless the two answers have the same series, timestamps and values (1e-9 relative);
/// returns (series, points).
fn compare(query: &str, k: &Value, p: &Value) -> (usize, usize) {
    let (k, p) = (matrix("kinsight", query, k), matrix("Prometheus", query, p));
    assert_eq!(
        k.len(),
        p.len(),
        "{query}: kinsight answers {} series, Prometheus {}",
        k.len(),
        p.len()
    );
    let mut points = 0;
    for (labels, kp) in &k {
        let pp = p
            .get(labels)
            .unwrap_or_else(|| panic!("{query}: series {labels:?} not in Prometheus's answer"));
        assert_eq!(kp.len(), pp.len(), "{query} {labels:?}: number of points");
        for (a, b) in kp.iter().zip(pp) {
            assert!(
                a.0 == b.0 && close(a.1, b.1),
                "{query} {labels:?}: kinsight {a:?}, Prometheus {b:?}"
            );
        }
        points += kp.len();
    }
    (k.len(), points)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without it
    // and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benchmark skipped: run it with `cargo bench -p kinsight-server --bench prometheus`"
        );
        return;
    }
    let series = env_or("BENCH_SERIES", 10_000).max(2);
    let samples = env_or("BENCH_SAMPLES", 100).max(2);
    let slice = env_or("BENCH_SLICE", 4).max(1);
    let per_request = env_or("BENCH_REQUEST_SERIES", 2_000).max(1);
    let senders = env_or("BENCH_SENDERS", 2).max(1);
    let runs = env_or("BENCH_RUNS", 7).max(1);

    let t0 = Instant::now();
    let data = generate(series, samples, slice, per_request, senders);
    let total = (series * samples) as f64;
    println!(
        "{series} series × {samples} samples ({total} samples, 15 s apart) in {} remote-write \
         requests of ≈{} series × {slice} samples, {:.1} MB snappy in all; {senders} senders; \
         encoded in {:.1} s",
        data.requests,
        series.div_ceil(senders * series.div_ceil(senders * per_request)),
        data.body_bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let kinsight = Server::start(&dir.path().join("kinsight"), &[]);
    let prometheus = Prometheus::start(&dir.path().join("prometheus"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let targets = [
        Target {
            name: "kinsight",
            url: kinsight.url.clone(),
            token: Some(TOKEN),
            pid: kinsight.child.id(),
            kinsight: Some(&kinsight),
        },
        Target {
            name: "Prometheus",
            url: prometheus.url.clone(),
            token: None,
            pid: prometheus.child.id(),
            kinsight: None,
        },
    ];
    // Prometheus is ready once `/-/ready` answers 200 (kinsight once it printed its address).
    let ready = Instant::now();
    while !http
        .get(format!("{}/-/ready", prometheus.url))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "Prometheus not ready after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both idle for a moment, so that start-up work is not counted.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut ingests = Vec::new();
    for t in &targets {
        let m = ingest(&http, t, &data).await;
        println!(
            "ingest {:<10} {:>6.2} s wall, {:>6.2} CPU-s ({:.2} cores), {:>9.0} samples/CPU-s, \
             {:>9.0} samples/s; all queryable {:.3} s after the last ack, {:.2} CPU-s in all \
             ({:.0} samples/CPU-s), then {:.2} CPU-s in 2 s idle; RSS {:.0} MB",
            t.name,
            m.wall_s,
            m.cpu_s,
            m.cpu_s / m.wall_s,
            total / m.cpu_s,
            total / m.wall_s,
            m.queryable_s,
            m.cpu_queryable_s,
            total / m.cpu_queryable_s,
            m.cpu_after_s,
            m.rss_mb
        );
        ingests.push(m);
    }

    let mut rows = Vec::new();
    for q in QUERIES {
        let (_, ka) = query_range(&http, &targets[0], q, &data).await;
        let (_, pa) = query_range(&http, &targets[1], q, &data).await;
        let (n_series, points) = compare(q, &ka, &pa);
        let mut times = [Vec::new(), Vec::new()];
        for i in 0..runs {
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for j in order {
                let (ms, _) = query_range(&http, &targets[j], q, &data).await;
                times[j].push(ms);
            }
        }
        println!(
            "query_range {q}: {n_series} series, {points} points; \
             kinsight ms {:?}; Prometheus ms {:?}",
            times[0]
                .iter()
                .map(|t| (t * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            times[1]
                .iter()
                .map(|t| (t * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
        rows.push((q, n_series, median(&times[0]), median(&times[1])));
    }

    let (k, p) = (&ingests[0], &ingests[1]);
    println!();
    println!("| measure | kinsight | Prometheus 2.42 | kinsight / Prometheus |");
    println!("|---|---|---|---|");
    println!(
        "| remote write: **samples per server CPU-s** | **{:.0}** | **{:.0}** | **{:.2}** |",
        total / k.cpu_s,
        total / p.cpu_s,
        p.cpu_s / k.cpu_s
    );
    println!(
        "| remote write: samples per server CPU-s, until all queryable | {:.0} | {:.0} | {:.2} |",
        total / k.cpu_queryable_s,
        total / p.cpu_queryable_s,
        p.cpu_queryable_s / k.cpu_queryable_s
    );
    println!(
        "| remote write: samples/s (wall) | {:.0} | {:.0} | {:.2} |",
        total / k.wall_s,
        total / p.wall_s,
        p.wall_s / k.wall_s
    );
    println!(
        "| remote write: server CPU-s (cores) | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.2} |",
        k.cpu_s,
        k.cpu_s / k.wall_s,
        p.cpu_s,
        p.cpu_s / p.wall_s,
        k.cpu_s / p.cpu_s
    );
    println!(
        "| last ack → all queryable | {:.0} ms | {:.0} ms | |",
        k.queryable_s * 1000.0,
        p.queryable_s * 1000.0
    );
    println!(
        "| RSS after ingest | {:.0} MB | {:.0} MB | {:.2} |",
        k.rss_mb,
        p.rss_mb,
        k.rss_mb / p.rss_mb
    );
    for (q, n, km, pm) in rows {
        println!(
            "| `{q}` ({n} series), median ms | {km:.1} | {pm:.1} | **{:.2}** |",
            km / pm
        );
    }
    // `BENCH_HOLD_SECONDS`: both servers stay up with the data, for probing them by hand.
    let hold = env_or("BENCH_HOLD_SECONDS", 0);
    if hold > 0 {
        println!(
            "\nholding {hold} s: kinsight {} (bearer {TOKEN}), Prometheus {}; range {}..{} s",
            kinsight.url,
            prometheus.url,
            data.start_ms / 1000,
            data.end_ms / 1000
        );
        tokio::time::sleep(Duration::from_secs(hold as u64)).await;
    }
    drop(kinsight);
    drop(prometheus);
}
