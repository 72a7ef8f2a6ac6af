//! The real Prometheus (Debian's /usr/bin/prometheus) as an oracle, for differential tests:
//! starting it, a tiny HTTP/1.1 client, remote write (`kinsight_metrics::remote_write::prompb`),
//! Prometheus's query answers as `kinsight_promql::Value`, a tolerant comparison of answers,
//! and the shared data set, queries and evaluation times.
//!
//! Self-contained apart from `kinsight_promql` and `kinsight_metrics` types, so that another
//! crate's tests include it with
//! `#[path = "../../../promql/tests/support/prometheus.rs"] mod prom_oracle;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kinsight_metrics::remote_write::prompb;
use kinsight_promql::{Labels, PromError, STALE_NAN_BITS, Series, Value};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Whether /usr/bin/prometheus can be run: panics when it is missing and `CI` is set, else
/// says why the test is skipped.
pub fn prometheus_available() -> bool {
    if Path::new(PROMETHEUS).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{PROMETHEUS} is missing (scripts/ci-install.sh installs Debian's prometheus)");
    }
    eprintln!("skipping: {PROMETHEUS} is missing (apt-get install prometheus)");
    false
}

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// A Prometheus with the remote-write receiver and nothing to scrape; `None` when the
    /// binary is missing (see [`prometheus_available`]).
    pub fn start() -> Option<Prometheus> {
        Self::start_with(|_| "global: {}\nscrape_configs: []\n".to_string())
    }

    /// A Prometheus with the remote-write receiver and the configuration `config(port)`
    /// (`port`: the one it listens on), ready (`/-/ready` answers 200).
    pub fn start_with(config: impl FnOnce(u16) -> String) -> Option<Prometheus> {
        if !prometheus_available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config(port)).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg("--web.enable-remote-write-receiver")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--config.file={}", config_file.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = try_http(port, "GET", "/-/ready", &[], b"") {
                break;
            }
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!("prometheus exited: {st}\n{}", server.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The port of a `http://127.0.0.1:PORT` URL.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}"))
}

/// A minimal HTTP/1.1 exchange (Connection: close) with 127.0.0.1:`port`, chunked bodies
/// decoded: the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    try_http(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// [`http`], with connection and read errors returned (a server going away).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the response head"))?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("truncated chunk"))?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..eol])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            if rest.len() < eol + 2 + size + 2 {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    Ok((status, body))
}

/// `series` as one remote-write request.
pub fn write_request(series: &[Series]) -> prompb::WriteRequest {
    prompb::WriteRequest {
        timeseries: series
            .iter()
            .map(|s| prompb::TimeSeries {
                labels: s
                    .labels
                    .0
                    .iter()
                    .map(|(n, v)| prompb::Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|&(t, v)| prompb::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    }
}

/// Sends `req` to `/api/v1/write` (with `token` as a bearer token, if any): the status and
/// the answer's text; errors when the connection fails.
pub fn try_remote_write(
    port: u16,
    token: Option<&str>,
    req: &prompb::WriteRequest,
) -> std::io::Result<(u16, String)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (status, resp) = try_http(port, "POST", "/api/v1/write", &headers, &req.to_body())?;
    Ok((status, String::from_utf8_lossy(&resp).into_owned()))
}

/// Sends `req` to `/api/v1/write`, which must answer 2xx.
pub fn remote_write_request(port: u16, token: Option<&str>, req: &prompb::WriteRequest) {
    let (status, resp) = try_remote_write(port, token, req)
        .unwrap_or_else(|e| panic!("remote write to port {port}: {e}"));
    assert!(
        (200..300).contains(&status),
        "remote write to port {port}: {status} {resp}"
    );
}

/// Sends `series` in one request to `/api/v1/write`, which must answer 2xx.
pub fn remote_write(port: u16, token: Option<&str>, series: &[Series]) {
    remote_write_request(port, token, &write_request(series));
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A time as the API's parameters take it: seconds with milliseconds.
pub fn secs(t: i64) -> String {
    format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
}

pub fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn parse_f(s: &serde_json::Value) -> f64 {
    match s.as_str().unwrap() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        x => x.parse().unwrap(),
    }
}

fn parse_point(p: &serde_json::Value) -> (i64, f64) {
    let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
    (t, parse_f(&p[1]))
}

pub fn parse_labels(m: &serde_json::Value) -> Labels {
    Labels::new(
        m.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
    )
}

/// A GET of the HTTP API (with `token` as a bearer token, if any): the JSON answer, whatever
/// its status; panics when it is not JSON.
pub fn get_json(port: u16, token: Option<&str>, path: &str) -> serde_json::Value {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, body) = http(port, "GET", path, &headers, b"");
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: {status} {e}: {}", String::from_utf8_lossy(&body)))
}

/// The answer of a query API (`/api/v1/query`, `/api/v1/query_range`) as a Value, or the
/// error as `"errorType": message`.
pub fn oracle(port: u16, token: Option<&str>, path: &str) -> Result<Value, String> {
    let j = get_json(port, token, path);
    if j["status"] != "success" {
        return Err(format!("{}: {}", j["errorType"], j["error"]));
    }
    let data = &j["data"];
    let r = &data["result"];
    Ok(match data["resultType"].as_str().unwrap() {
        "scalar" => {
            let (t, v) = parse_point(r);
            Value::Scalar { t, v }
        }
        "string" => Value::String {
            t: (r[0].as_f64().unwrap() * 1000.0).round() as i64,
            v: r[1].as_str().unwrap().to_string(),
        },
        "vector" => Value::Vector(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let (t, v) = parse_point(&s["value"]);
                    kinsight_promql::Sample {
                        labels: parse_labels(&s["metric"]),
                        t,
                        v,
                    }
                })
                .collect(),
        ),
        "matrix" => Value::Matrix(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| Series {
                    labels: parse_labels(&s["metric"]),
                    samples: s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(parse_point)
                        .collect(),
                })
                .collect(),
        ),
        other => panic!("result type {other}"),
    })
}

/// The engine's error as "errorType: message", with the HTTP API's error types.
pub fn describe(e: PromError) -> String {
    let kind = match &e {
        PromError::BadData(_) => "bad_data",
        PromError::Execution(_) | PromError::TooManySamples => "execution",
        PromError::Timeout => "timeout",
        PromError::Source(_) => "internal",
    };
    format!("\"{kind}\": {e}")
}

pub fn same_error_type(ours: &str, theirs: &str) -> bool {
    ours.split(':').next() == theirs.split(':').next()
}

pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Vector(v) => v.is_empty(),
        Value::Matrix(m) => m.is_empty(),
        _ => false,
    }
}

pub fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Differences between two answers ("" when equal). Vectors are compared in label order
/// unless `ordered`.
pub fn diff(ours: &Value, theirs: &Value, ordered: bool) -> String {
    match (ours, theirs) {
        (Value::Scalar { t: a, v: x }, Value::Scalar { t: b, v: y }) => {
            if a != b || !close(*x, *y) {
                format!("scalar ({a}, {x}) vs ({b}, {y})")
            } else {
                String::new()
            }
        }
        (Value::String { t: a, v: x }, Value::String { t: b, v: y }) => {
            if a != b || x != y {
                format!("string ({a}, {x}) vs ({b}, {y})")
            } else {
                String::new()
            }
        }
        (Value::Vector(a), Value::Vector(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            if !ordered {
                a.sort_by(|x, y| x.labels.cmp(&y.labels));
                b.sort_by(|x, y| x.labels.cmp(&y.labels));
            }
            if a.len() != b.len()
                || a.iter()
                    .zip(&b)
                    .any(|(x, y)| x.labels != y.labels || x.t != y.t || !close(x.v, y.v))
            {
                format!("vector\n ours:   {a:?}\n theirs: {b:?}")
            } else {
                String::new()
            }
        }
        (Value::Matrix(a), Value::Matrix(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.sort_by(|x, y| x.labels.cmp(&y.labels));
            b.sort_by(|x, y| x.labels.cmp(&y.labels));
            if a.len() != b.len() {
                return format!(
                    "matrix series\n ours:   {:?}\n theirs: {:?}",
                    a.iter().map(|s| &s.labels).collect::<Vec<_>>(),
                    b.iter().map(|s| &s.labels).collect::<Vec<_>>()
                );
            }
            for (x, y) in a.iter().zip(&b) {
                if x.labels != y.labels
                    || x.samples.len() != y.samples.len()
                    || x.samples
                        .iter()
                        .zip(&y.samples)
                        .any(|(p, q)| p.0 != q.0 || !close(p.1, q.1))
                {
                    return format!(
                        "matrix series {:?}\n ours:   {:?}\n theirs: {:?} {:?}",
                        x.labels, x.samples, y.labels, y.samples
                    );
                }
            }
            String::new()
        }
        _ => format!("type\n ours:   {ours:?}\n theirs: {theirs:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The data set, the queries, the evaluation times

fn labels_of(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    )
}

/// A staleness marker.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is a staleness marker.
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The metric names of [`dataset`].
pub const DATASET_METRICS: &[&str] = &[
    "http_requests_total",
    "temperature",
    "req_duration_seconds_bucket",
    "dup_a",
    "dup_b",
    "machine_info",
];

/// A `base` for [`dataset`]: about 50 minutes ago, aligned to the minute (plus 7 s) so that
/// subquery steps line up with data in an interesting way.
pub fn dataset_base() -> i64 {
    (now_ms() - 50 * 60_000) / 60_000 * 60_000 + 7_000
}

/// The newest timestamp of [`dataset`]`(base)` but for jitter: its 180th point.
pub fn dataset_end(base: i64) -> i64 {
    base + 179 * 15_000
}

/// The data set: counters with resets, gauges with a gap longer than the lookback and a
/// staleness marker, classic histogram buckets, an info metric; 15 s apart (some jitter).
pub fn dataset(base: i64) -> Vec<Series> {
    let mut out = Vec::new();
    let n = 180; // 45 minutes
    let ts = |i: i64| base + i * 15_000;
    let mut push = |pairs: &[(&str, &str)], samples: Vec<(i64, f64)>| {
        out.push(Series {
            labels: labels_of(pairs),
            samples,
        })
    };
    // Counters.
    let mut c = 0.0;
    let mut s1 = Vec::new();
    for i in 0..n {
        c += (i % 7) as f64 + 1.0;
        if i == 60 || i == 130 {
            c = 3.0; // reset
        }
        s1.push((ts(i), c));
    }
    push(
        &[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "a"),
            ("code", "200"),
        ],
        s1,
    );
    let mut c = 100.0;
    let mut s2 = Vec::new();
    for i in 0..n {
        c += ((i * 13) % 5) as f64 * 2.5;
        if i == 90 {
            c = 0.0;
        }
        // jittered timestamps
        s2.push((ts(i) + (i % 3) * 1_000, c));
    }
    push(
        &[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "b"),
            ("code", "200"),
        ],
        s2,
    );
    let mut s3 = Vec::new();
    for i in (0..n).step_by(2) {
        s3.push((ts(i), (i / 10) as f64));
    }
    push(
        &[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "a"),
            ("code", "500"),
        ],
        s3,
    );
    let mut s4 = Vec::new();
    for i in 20..n {
        s4.push((ts(i), (i * i) as f64 / 10.0));
    }
    push(
        &[
            ("__name__", "http_requests_total"),
            ("job", "web"),
            ("instance", "c"),
            ("code", "200"),
        ],
        s4,
    );
    // Gauges: room x has an 8-minute gap, room y goes stale at 20 min and comes back at 30.
    let mut gx = Vec::new();
    for i in 0..n {
        if (60..92).contains(&i) {
            continue;
        }
        gx.push((ts(i), 20.0 + ((i as f64) * 0.3).sin() * 5.0));
    }
    push(
        &[
            ("__name__", "temperature"),
            ("room", "x"),
            ("instance", "a"),
        ],
        gx,
    );
    let mut gy = Vec::new();
    for i in 0..n {
        if i == 80 {
            gy.push((ts(i), stale_marker()));
            continue;
        }
        if (81..120).contains(&i) {
            continue;
        }
        gy.push((ts(i), -3.0 + (i % 11) as f64 * 1.25));
    }
    push(
        &[
            ("__name__", "temperature"),
            ("room", "y"),
            ("instance", "b"),
        ],
        gy,
    );
    // Classic histogram buckets for two jobs.
    for (job, scale) in [("api", 1.0), ("web", 3.0)] {
        let les = ["0.1", "0.5", "1", "5", "+Inf"];
        let mut counts = [0.0f64; 5];
        let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 5];
        for i in 0..n {
            let incs = [1.0 * scale, 3.0, 2.0 * scale, 1.0, (i % 4) as f64];
            let mut cum = 0.0;
            for b in 0..5 {
                cum += incs[b];
                counts[b] += cum;
                series[b].push((ts(i), counts[b]));
            }
        }
        for (b, samples) in series.into_iter().enumerate() {
            push(
                &[
                    ("__name__", "req_duration_seconds_bucket"),
                    ("job", job),
                    ("le", les[b]),
                ],
                samples,
            );
        }
    }
    // Two metrics with the same other labels at disjoint times: a range function over both
    // yields one label set from two series.
    push(
        &[("__name__", "dup_a"), ("k", "1")],
        (0..60).map(|i| (ts(i), i as f64)).collect(),
    );
    push(
        &[("__name__", "dup_b"), ("k", "1")],
        (120..n).map(|i| (ts(i), i as f64)).collect(),
    );
    // Info metric for group_left joins.
    for (inst, os) in [("a", "linux"), ("b", "windows"), ("c", "linux")] {
        push(
            &[("__name__", "machine_info"), ("instance", inst), ("os", os)],
            (0..n).map(|i| (ts(i), 1.0)).collect(),
        );
    }
    out
}

/// `data` cut by time into `parts` requests' worth of series (each with the samples of one
/// time slice, series without samples there left out), oldest first.
pub fn split_by_time(data: &[Series], parts: usize) -> Vec<Vec<Series>> {
    let first = data
        .iter()
        .filter_map(|s| s.samples.first())
        .map(|p| p.0)
        .min()
        .unwrap_or(0);
    let last = data
        .iter()
        .filter_map(|s| s.samples.last())
        .map(|p| p.0)
        .max()
        .unwrap_or(0);
    let width = (last - first) / parts as i64 + 1;
    (0..parts as i64)
        .map(|p| {
            let (lo, hi) = (first + p * width, first + (p + 1) * width);
            data.iter()
                .map(|s| Series {
                    labels: s.labels.clone(),
                    samples: s
                        .samples
                        .iter()
                        .copied()
                        .filter(|&(t, _)| lo <= t && t < hi)
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect()
        })
        .collect()
}

/// The instant query times of the comparisons.
pub fn instant_times(base: i64) -> [i64; 5] {
    [
        dataset_end(base),
        base + 20 * 60_000 + 3_000, // just after room y's staleness marker
        base + 23 * 60_000 + 31_000, // inside room x's gap, later than the lookback
        base + 17 * 60_000 + 500,
        base + 59 * 15_000 + 5 * 60_000, // exactly the lookback after room x's last sample
    ]
}

/// The (start, end, step) of the range query comparisons.
pub fn range_settings(base: i64) -> [(i64, i64, i64); 2] {
    let end = dataset_end(base);
    [(base, end, 60_000), (base + 3_000, end, 37_000)]
}

/// The queries of the comparisons.
pub const QUERIES: &[&str] = &[
    "http_requests_total",
    "temperature",
    "temperature offset 3m",
    "temperature @ 1000",
    "http_requests_total[2m]",
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "increase(http_requests_total[10m])",
    "delta(temperature[5m])",
    "irate(http_requests_total[2m])",
    "idelta(temperature[3m])",
    "resets(http_requests_total[15m])",
    "changes(temperature[10m])",
    "deriv(temperature[10m])",
    "predict_linear(temperature[10m], 600)",
    "avg_over_time(temperature[7m])",
    "min_over_time(temperature[7m])",
    "max_over_time(temperature[7m])",
    "sum_over_time(temperature[7m])",
    "count_over_time(temperature[7m])",
    "quantile_over_time(0.3, temperature[7m])",
    "stddev_over_time(temperature[7m])",
    "stdvar_over_time(temperature[7m])",
    "last_over_time(temperature[7m])",
    "present_over_time(temperature[7m])",
    "absent_over_time(temperature{room=\"z\"}[5m])",
    "absent(temperature{room=\"y\"})",
    "absent(nonexistent{job=\"x\", instance=~\"a\"})",
    "rate(http_requests_total[5m] offset 10m)",
    "rate(http_requests_total{instance=\"a\"}[5m] @ end())",
    "http_requests_total @ start()",
    "max_over_time(rate(http_requests_total[2m])[10m:1m])",
    "avg_over_time(temperature[5m:30s])",
    "rate(http_requests_total[5m:45s] offset 2m)",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance) (http_requests_total)",
    "avg by (code) (http_requests_total)",
    "min(temperature)",
    "max by (job) (http_requests_total)",
    "count(http_requests_total)",
    "group by (job) (http_requests_total)",
    "stddev(http_requests_total)",
    "stdvar by (job) (http_requests_total)",
    "topk(2, http_requests_total)",
    "bottomk(1, temperature)",
    "quantile(0.75, http_requests_total)",
    "count_values(\"v\", machine_info)",
    "count_values by (job) (\"c\", http_requests_total{code=\"500\"} > bool 0)",
    "histogram_quantile(0.9, rate(req_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (req_duration_seconds_bucket))",
    "label_replace(http_requests_total, \"inst\", \"host-$1\", \"instance\", \"(.*)\")",
    "label_join(machine_info, \"both\", \"/\", \"instance\", \"os\")",
    "http_requests_total * on (instance) group_left (os) machine_info",
    "machine_info * on (instance) group_right (os) http_requests_total",
    "http_requests_total / ignoring (code) group_left http_requests_total{code=\"200\"}",
    "http_requests_total{code=\"200\"} + on (instance) machine_info",
    "http_requests_total > 500",
    "http_requests_total > bool 500",
    "1000 < http_requests_total",
    "temperature == bool on (instance) group_left temperature",
    "http_requests_total and on (instance) temperature",
    "http_requests_total or temperature",
    "http_requests_total unless on (instance) temperature > 20",
    "-temperature",
    "2 ^ 3 * 4 - 1 % 3",
    "time()",
    "vector(time()) - 5",
    "scalar(sum(machine_info))",
    "abs(temperature) + ceil(temperature) - floor(temperature)",
    "round(temperature, 0.5)",
    "clamp(temperature, -1, 21)",
    "clamp_min(temperature, 0)",
    "clamp_max(temperature, 19)",
    "sqrt(abs(temperature)) + exp(temperature / 100) + ln(machine_info) + log2(4 * machine_info) + log10(100 * machine_info)",
    "sgn(temperature)",
    "timestamp(temperature)",
    "timestamp(temperature offset 1m) - time()",
    "hour() + minute() + month() + year() + day_of_month() + day_of_week() + days_in_month()",
    "minute(timestamp(temperature))",
    "sort_desc(sum by (instance) (http_requests_total))",
    "sort(machine_info * on (instance) group_left sum by (instance) (http_requests_total))",
    "sum(http_requests_total) by (job) / on (job) group_left count(http_requests_total) by (job)",
    "http_requests_total{job=~\"a.*\", code!=\"500\"}",
    "http_requests_total{instance!~\"a|b\"}",
    "\"hello\"",
    "rate(http_requests_total[5m]) > bool rate(http_requests_total[5m] offset 5m)",
    // Errors both sides must report: many-to-many, one-to-one with duplicates.
    "http_requests_total + on (job) http_requests_total",
    "machine_info * on (os) group_left http_requests_total",
    "rate({__name__=~\"http_requests_total|temperature\"}[5m])",
    // Less common corners.
    "sum by (__name__) ({__name__=~\"http_requests_total|machine_info\"})",
    "http_requests_total + on () group_left sum(machine_info)",
    "topk by (job) (1, http_requests_total)",
    "bottomk without (code) (1, http_requests_total)",
    "topk(scalar(count(machine_info)) - 1, temperature)",
    "quantile by (job) (0.1, rate(http_requests_total[5m]))",
    "count_values without (instance) (\"os_count\", machine_info)",
    "label_replace(machine_info, \"os\", \"\", \"os\", \"linux\")",
    "label_replace(machine_info, \"x\", \"${1}-$2\", \"os\", \"(lin)(.*)\")",
    "absent(sum(nonexistent))",
    "absent(machine_info)",
    "temperature / 0",
    "-temperature % 3",
    "temperature ^ 0.5",
    "machine_info - machine_info / 0",
    "changes(http_requests_total[20m])",
    "predict_linear(http_requests_total[10m:1m], 3600)",
    "deriv(rate(http_requests_total[2m])[8m:20s])",
    "min_over_time(temperature[3m:] @ end())",
    "sum_over_time((temperature > 19)[10m:15s])",
    "time() - timestamp(last_over_time(temperature[20m]))",
    "scalar(temperature{room=\"x\"}) * machine_info",
    "vector(scalar(temperature{room=\"y\"}))",
    "count(temperature) or vector(0)",
    "http_requests_total{code=\"500\"} and ignoring (code) http_requests_total{code=\"200\"}",
    "machine_info unless ignoring (os) (http_requests_total > 1e9)",
    "histogram_quantile(0.99, sum by (le, job) (rate(req_duration_seconds_bucket[10m])))",
    "histogram_quantile(0.25, req_duration_seconds_bucket{le!=\"+Inf\"})",
    "histogram_quantile(2, req_duration_seconds_bucket)",
    "increase(req_duration_seconds_bucket{le=\"1\"}[3m] @ 1000)",
    "irate(http_requests_total[5m] offset -1m)",
    "timestamp(temperature @ 1000)",
    "count_values(\"r\", rate(http_requests_total[5m]))",
    "label_replace(machine_info, \"first\", \"${os}!\", \"os\", \"(?P<os>[a-z])[a-z]*\")",
    "2 ^ 3 ^ 2",
    "-2 ^ 2",
    "- time()",
    "NaN",
    "Inf - Inf",
    "1 > bool 2",
    "vector(1) and on () absent(nonexistent)",
    "quantile_over_time(1.5, temperature[5m])",
    "round(temperature, 0)",
    "bottomk(2, temperature / 0 * 0)",
    "rate(http_requests_total[1h30m])",
    "max_over_time(temperature[5m] @ 1000)",
    "sum(temperature) by (room) * 2 > bool 30",
    "delta((-http_requests_total)[5m:1m])",
    "temperature offset 5m",
    "temperature[5m:1m]",
    "rate(http_requests_total[2m])[6m:2m] offset 1m",
    "absent_over_time((temperature{room=\"y\"} > 100)[5m:1m])",
    "avg_over_time(temperature[10m:1m] @ start())",
    "sum_over_time(vector(time())[3m:40s])",
    "rate({__name__=~\"dup_.*\"}[5m])",
    "abs({__name__=~\"dup_.*\"})",
];

/// The refusals expected (on both sides) in the comparisons: range queries of a range
/// vector or a string, many-to-many matching, one label set from two series.
pub const EXPECTED_REFUSALS: &[&str] = &[
    "range http_requests_total[2m]:",
    "range \"hello\":",
    "range temperature[5m:1m]:",
    "range rate({__name__=~\"dup_.*\"}[5m]):",
    "range rate(http_requests_total[2m])[6m:2m] offset 1m:",
    "http_requests_total + on (job) http_requests_total:",
    "machine_info * on (os) group_left http_requests_total:",
];

/// One evaluation of a query: at an instant, or over a range (start, end, step).
#[derive(Clone, Copy, Debug)]
pub enum At {
    Instant(i64),
    Range(i64, i64, i64),
}

impl At {
    /// The HTTP API path of `query` evaluated so.
    pub fn path(&self, query: &str) -> String {
        match *self {
            At::Instant(t) => format!("/api/v1/query?query={}&time={}", urlencode(query), secs(t)),
            At::Range(start, end, step) => format!(
                "/api/v1/query_range?query={}&start={}&end={}&step={}",
                urlencode(query),
                secs(start),
                secs(end),
                secs(step)
            ),
        }
    }
}

/// The outcome of comparisons of "ours" against "theirs" (Prometheus).
#[derive(Debug, Default)]
pub struct Tally {
    pub queries: usize,
    pub compared: usize,
    pub non_empty: usize,
    /// Both refused (with the same error type, or a failure is recorded too).
    pub both_err: Vec<String>,
    pub failures: Vec<String>,
}

impl Tally {
    /// Compares one answer pair for `query` evaluated `at`.
    pub fn record(
        &mut self,
        query: &str,
        at: At,
        ours: Result<Value, String>,
        theirs: Result<Value, String>,
    ) {
        self.compared += 1;
        let (kind, place, ordered) = match at {
            At::Instant(t) => ("instant", format!("@ {t}"), query.starts_with("sort")),
            At::Range(_, _, step) => ("range", format!("step {step}"), false),
        };
        match (ours, theirs) {
            (Ok(a), Ok(b)) => {
                self.non_empty += usize::from(!is_empty(&b));
                let d = diff(&a, &b, ordered);
                if !d.is_empty() {
                    self.failures.push(format!("{kind} {query} {place}: {d}"));
                }
            }
            (Err(a), Err(b)) => {
                if !same_error_type(&a, &b) {
                    self.failures
                        .push(format!("{kind} {query}: error types differ: {a} / {b}"));
                }
                self.both_err.push(format!("{kind} {query}: {a} / {b}"))
            }
            (a, b) => self
                .failures
                .push(format!("{kind} {query} {place}: ours {a:?} theirs {b:?}")),
        }
    }

    /// Every query of [`QUERIES`] at the [`instant_times`] and over the [`range_settings`]
    /// of `base`, answered by `ours` and `theirs` (queries of range vectors and strings too,
    /// which both must refuse as range queries).
    pub fn compare_all(
        base: i64,
        mut ours: impl FnMut(&str, At) -> Result<Value, String>,
        mut theirs: impl FnMut(&str, At) -> Result<Value, String>,
    ) -> Tally {
        let mut tally = Tally {
            queries: QUERIES.len(),
            ..Tally::default()
        };
        for q in QUERIES {
            let ats = instant_times(base).into_iter().map(At::Instant).chain(
                range_settings(base)
                    .into_iter()
                    .map(|(s, e, st)| At::Range(s, e, st)),
            );
            for at in ats {
                let b = theirs(q, at);
                let a = ours(q, at);
                tally.record(q, at, a, b);
            }
        }
        tally
    }

    /// Prints the counts and the refusals, then asserts: no difference, refusals only of
    /// [`EXPECTED_REFUSALS`], at least 80 % of Prometheus's answers not empty.
    pub fn check(&self) {
        eprintln!(
            "{} queries, {} comparisons ({} non-empty answers, {} errors on both sides), {} differences",
            self.queries,
            self.compared,
            self.non_empty,
            self.both_err.len(),
            self.failures.len()
        );
        for e in &self.both_err {
            eprintln!("  both refused: {e}");
        }
        for e in &self.both_err {
            assert!(
                EXPECTED_REFUSALS.iter().any(|x| e.contains(x)),
                "unexpected refusal: {e}"
            );
        }
        assert!(
            self.non_empty * 10 >= self.compared * 8,
            "too many empty answers"
        );
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n\n"));
    }
}
