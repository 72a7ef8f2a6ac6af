//! Differential test against the real Prometheus (Debian's /usr/bin/prometheus): the same
//! samples are pushed to it by remote write and held by an in-memory Source, then the same
//! queries go to its HTTP API and to our engine, and the answers must be equal.
//!
//! Without /usr/bin/prometheus the test fails when `CI` is set and is skipped otherwise.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kinsight_promql::{Labels, Options, PromError, Series, Value, instant_query, range_query};
use support::{MemSource, labels, stale};

const PROMETHEUS: &str = "/usr/bin/prometheus";

// The few prompb messages of remote write 1.0.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<PbSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbSample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 exchange (Connection: close), chunked bodies decoded.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..eol])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    (status, body)
}

fn start_prometheus() -> Option<Server> {
    if !Path::new(PROMETHEUS).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{PROMETHEUS} is missing (scripts/ci-install.sh installs Debian's prometheus)");
        }
        eprintln!("skipping: {PROMETHEUS} is missing (apt-get install prometheus)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global: {}\nscrape_configs: []\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg("--web.enable-remote-write-receiver")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", config.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            drop(s.flush());
            let (status, _) = http(port, "GET", "/-/ready", &[], b"");
            if status == 200 {
                break;
            }
        }
        if let Ok(Some(st)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server._dir.path().join("prometheus.log"))
                .unwrap_or_default();
            panic!("prometheus exited: {st}\n{log}");
        }
        assert!(Instant::now() < deadline, "prometheus not ready in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

/// The data set: counters with resets, gauges with a gap longer than the lookback and a
/// staleness marker, classic histogram buckets, an info metric; 15 s apart (some jitter).
fn dataset(base: i64) -> Vec<Series> {
    let mut out = Vec::new();
    let n = 180; // 45 minutes
    let ts = |i: i64| base + i * 15_000;
    let mut push = |pairs: &[(&str, &str)], samples: Vec<(i64, f64)>| {
        out.push(Series {
            labels: labels(pairs),
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
            gy.push((ts(i), stale()));
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

fn remote_write(port: u16, series: &[Series]) {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .0
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|&(t, v)| PbSample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
            })
            .collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&req))
        .unwrap();
    let (status, resp) = http(
        port,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    );
    assert!(
        (200..300).contains(&status),
        "remote write: {status} {}",
        String::from_utf8_lossy(&resp)
    );
}

fn secs(t: i64) -> String {
    format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
}

fn urlencode(s: &str) -> String {
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

fn parse_labels(m: &serde_json::Value) -> Labels {
    Labels::new(
        m.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
    )
}

/// Prometheus's answer, as our Value.
fn oracle(port: u16, path: &str) -> Result<Value, String> {
    let (status, body) = http(port, "GET", path, &[], b"");
    let j: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: {status} {e}: {}", String::from_utf8_lossy(&body)));
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

/// Our error as "errorType: message", with the HTTP API's error types.
fn describe(e: PromError) -> String {
    let kind = match &e {
        PromError::BadData(_) => "bad_data",
        PromError::Execution(_) | PromError::TooManySamples => "execution",
        PromError::Timeout => "timeout",
        PromError::Source(_) => "internal",
    };
    format!("\"{kind}\": {e}")
}

fn same_error_type(ours: &str, theirs: &str) -> bool {
    ours.split(':').next() == theirs.split(':').next()
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Vector(v) => v.is_empty(),
        Value::Matrix(m) => m.is_empty(),
        _ => false,
    }
}

fn close(a: f64, b: f64) -> bool {
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
fn diff(ours: &Value, theirs: &Value, ordered: bool) -> String {
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

#[test]
fn matches_prometheus() {
    let Some(server) = start_prometheus() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Aligned to the minute so that subquery steps line up with data in an interesting way.
    let base = (now - 50 * 60_000) / 60_000 * 60_000 + 7_000;
    let data = dataset(base);
    remote_write(server.port, &data);
    let src = MemSource {
        series: data.clone(),
    };
    let end = base + 179 * 15_000;
    // Wait until Prometheus answers with every series (no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = format!(
            "/api/v1/query?query={}&time={}",
            urlencode("count(last_over_time({__name__=~\".+\"}[1h]))"),
            secs(end)
        );
        if let Ok(Value::Vector(v)) = oracle(server.port, &q) {
            if v.len() == 1 && v[0].v == data.len() as f64 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not take the samples"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let instant_times = [
        end,
        base + 20 * 60_000 + 3_000, // just after room y's staleness marker
        base + 23 * 60_000 + 31_000, // inside room x's gap, later than the lookback
        base + 17 * 60_000 + 500,
        base + 59 * 15_000 + 5 * 60_000, // exactly the lookback after room x's last sample
    ];
    let queries: &[&str] = &[
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
    let opts = Options::default();
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut both_err = Vec::new();
    let mut non_empty = 0;
    for q in queries {
        let ordered = q.starts_with("sort");
        for &t in &instant_times {
            let theirs = oracle(
                server.port,
                &format!("/api/v1/query?query={}&time={}", urlencode(q), secs(t)),
            );
            let ours = instant_query(&src, q, t, &opts).map_err(describe);
            compared += 1;
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    non_empty += usize::from(!is_empty(&b));
                    let d = diff(&a, &b, ordered);
                    if !d.is_empty() {
                        failures.push(format!("instant {q} @ {t}: {d}"));
                    }
                }
                (Err(a), Err(b)) => {
                    if !same_error_type(&a, &b) {
                        failures.push(format!("instant {q}: error types differ: {a} / {b}"));
                    }
                    both_err.push(format!("instant {q}: {a} / {b}"))
                }
                (a, b) => failures.push(format!("instant {q} @ {t}: ours {a:?} theirs {b:?}")),
            }
        }
        // Range queries (not for range vectors and strings, which Prometheus refuses, as we do).
        for (start, stop, step) in [(base, end, 60_000), (base + 3_000, end, 37_000)] {
            let theirs = oracle(
                server.port,
                &format!(
                    "/api/v1/query_range?query={}&start={}&end={}&step={}",
                    urlencode(q),
                    secs(start),
                    secs(stop),
                    secs(step)
                ),
            );
            let ours = range_query(&src, q, start, stop, step, &opts).map_err(describe);
            compared += 1;
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    non_empty += usize::from(!is_empty(&b));
                    let d = diff(&a, &b, false);
                    if !d.is_empty() {
                        failures.push(format!("range {q} step {step}: {d}"));
                    }
                }
                (Err(a), Err(b)) => {
                    if !same_error_type(&a, &b) {
                        failures.push(format!("range {q}: error types differ: {a} / {b}"));
                    }
                    both_err.push(format!("range {q}: {a} / {b}"))
                }
                (a, b) => failures.push(format!("range {q} step {step}: ours {a:?} theirs {b:?}")),
            }
        }
    }
    eprintln!(
        "{} queries, {compared} comparisons ({non_empty} non-empty answers, {} errors on both sides), {} differences",
        queries.len(),
        both_err.len(),
        failures.len()
    );
    for e in &both_err {
        eprintln!("  both refused: {e}");
    }
    // Refusals are expected only for these (range queries of a range vector or a string,
    // many-to-many matching).
    let expected = [
        "range http_requests_total[2m]:",
        "range \"hello\":",
        "range temperature[5m:1m]:",
        "range rate({__name__=~\"dup_.*\"}[5m]):",
        "range rate(http_requests_total[2m])[6m:2m] offset 1m:",
        "http_requests_total + on (job) http_requests_total:",
        "machine_info * on (os) group_left http_requests_total:",
    ];
    for e in &both_err {
        assert!(
            expected.iter().any(|x| e.contains(x)),
            "unexpected refusal: {e}"
        );
    }
    assert!(non_empty * 10 >= compared * 8, "too many empty answers");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
