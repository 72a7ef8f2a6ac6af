//! CloudWatch-compatible API benchmark (issue #8) against the real `kinsight server` binary
//! (release build), with SigV4-signed requests as AWS clients send them:
//!
//! 1. **PutLogEvents throughput**: `BENCH_CLIENTS` (4) concurrent clients, each sending
//!    batches as large as the API allows (≤ 1,048,576 bytes counted as CloudWatch counts
//!    them: message bytes + 26 per event) of Fluent Bit-shaped application records to its own
//!    stream, for `BENCH_SECONDS` (20). Each answer comes after the WAL fsync. Reported: MB/s
//!    and events/s, request latency p50/p99, server CPU seconds per second (/proc).
//! 2. **StartQuery → Complete**: the query benchmark's queries (reference §5.6, shared with
//!    `crates/query/benches/queries.rs`) over `BENCH_QUERY_EVENTS` (1,000,000) performance
//!    events, as many application records and 1/20 as many dataplane records, ingested
//!    through PutLogEvents and flushed to segments. Each query: StartQuery, then
//!    GetQueryResults every 5 ms until `Complete`; median of `BENCH_RUNS` (5) after a warm-up,
//!    beside the same query through the native API (`POST /v1/queries`, polled every 5 ms).
//!
//! Run: `cargo build --release --bin kinsight && cargo bench -p kinsight-server --bench cwlogs`
//! (`KINSIGHT_BIN` overrides the binary). Results: docs/benchmarks.md.

#[path = "../../query/tests/it/data.rs"]
mod data;
#[path = "../../query/tests/it/examples.rs"]
mod examples;

mod common;
use common::{Server, TOKEN};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use kinsight_server::cwlogs::sigv4::{SignedRequest, authorization};
use kinsight_store::LogEvent;
use serde_json::{Value, json};

const KEY_ID: &str = "AKIAKINSIGHTBENCH001";
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnop";
const REGION: &str = "us-east-1";
const MAX_BATCH_BYTES: usize = 1_048_576;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A signed CloudWatch Logs request (SigV4 as botocore builds it). A signature stays valid
/// for 15 minutes, so a benchmark client may sign a body once and send it many times.
#[derive(Clone)]
struct Signed {
    path: &'static str,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
}

fn sign(host: &str, action: &str, body: Vec<u8>) -> Signed {
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(host).unwrap());
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    h.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    h.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("Logs_20140328.{action}")).unwrap(),
    );
    let auth = authorization(
        &SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &h,
            body: &body,
        },
        KEY_ID,
        SECRET,
        &amz_date,
        REGION,
    );
    let mut headers: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| *k != "host")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.push(("authorization".into(), auth));
    Signed {
        path: "/",
        headers,
        body: body.into(),
    }
}

async fn send(client: &reqwest::Client, url: &str, s: &Signed) -> Value {
    let mut req = client.post(format!("{url}{}", s.path));
    for (k, v) in &s.headers {
        req = req.header(k, v);
    }
    let resp = req.body(s.body.clone()).send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert!(status.is_success(), "{status}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json")
    }
}

async fn call(client: &reqwest::Client, srv: &Server, action: &str, body: Value) -> Value {
    let s = sign(&srv.host, action, serde_json::to_vec(&body).unwrap());
    send(client, &srv.url, &s).await
}

/// PutLogEvents bodies of at most 1 MiB (billed bytes) from `events` of one stream.
fn batches(group: &str, stream: &str, events: &[LogEvent]) -> Vec<(Vec<u8>, usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut bytes = 0;
    let mut flush = |cur: &mut Vec<Value>, bytes: &mut usize| {
        if cur.is_empty() {
            return;
        }
        let body = json!({"logGroupName": group, "logStreamName": stream, "logEvents": cur});
        out.push((serde_json::to_vec(&body).unwrap(), cur.len(), *bytes));
        cur.clear();
        *bytes = 0;
    };
    for e in events {
        let b = e.message.len() + 26;
        if bytes + b > MAX_BATCH_BYTES || cur.len() == 10_000 {
            flush(&mut cur, &mut bytes);
        }
        bytes += b;
        cur.push(json!({"timestamp": e.timestamp, "message": e.message}));
    }
    flush(&mut cur, &mut bytes);
    out
}

/// The same batch as a native `/v1/ingest` request (bearer token, agent event shape).
fn native_ingest(put_body: &[u8]) -> Signed {
    let v: Value = serde_json::from_slice(put_body).unwrap();
    let (g, st) = (&v["logGroupName"], &v["logStreamName"]);
    let events: Vec<Value> = v["logEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!({"logGroupName": g, "logStreamName": st, "timestamp": e["timestamp"], "message": e["message"]}))
        .collect();
    Signed {
        path: "/v1/ingest",
        headers: vec![
            ("authorization".into(), format!("Bearer {TOKEN}")),
            ("content-type".into(), "application/json".into()),
        ],
        body: serde_json::to_vec(&events).unwrap().into(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn throughput(srv: &Server, client: &reqwest::Client) {
    let clients = env_usize("BENCH_CLIENTS", 4);
    let seconds = env_usize("BENCH_SECONDS", 20) as u64;
    let group = "/bench/cwlogs/application";
    call(
        client,
        srv,
        "CreateLogGroup",
        json!({"logGroupName": group}),
    )
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    let cluster = data::Cluster {
        name: "bench",
        nodes: 20,
        pods_per_node: 10,
        seed: 7,
    };
    // `BENCH_API=native`: the same batches through `POST /v1/ingest`, for comparison.
    let native = std::env::var("BENCH_API").is_ok_and(|v| v == "native");
    // Four distinct ~1 MiB bodies per client, signed once, cycled.
    let mut work = Vec::new();
    for c in 0..clients {
        let stream = format!("client-{c}");
        call(
            client,
            srv,
            "CreateLogStream",
            json!({"logGroupName": group, "logStreamName": stream}),
        )
        .await;
        let events: Vec<LogEvent> =
            data::application(cluster, group, now - 60_000, now, 20_000).collect();
        let mut bodies: Vec<(Signed, usize, usize)> = batches(group, &stream, &events)
            .into_iter()
            .filter(|b| b.2 > MAX_BATCH_BYTES * 9 / 10)
            .take(4)
            .map(|(body, n, bytes)| {
                let req = if native {
                    native_ingest(&body)
                } else {
                    sign(&srv.host, "PutLogEvents", body)
                };
                (req, n, bytes)
            })
            .collect();
        assert!(!bodies.is_empty(), "no full batch generated");
        bodies.truncate(4);
        work.push(bodies);
    }
    let avg_events: f64 = work.iter().flatten().map(|b| b.1 as f64).sum::<f64>()
        / work.iter().flatten().count() as f64;
    println!(
        "{}: {clients} clients, batches of {:.0} events / {:.2} MiB billed, {seconds} s",
        if native {
            "POST /v1/ingest"
        } else {
            "PutLogEvents"
        },
        avg_events,
        work.iter().flatten().map(|b| b.2 as f64).sum::<f64>()
            / work.iter().flatten().count() as f64
            / 1_048_576.0
    );
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let cpu0 = srv.cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for bodies in work {
        let (client, url) = (client.clone(), srv.url.clone());
        let (stop, events, bytes) = (stop.clone(), events.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (s, n, b) = &bodies[i % bodies.len()];
                let t = Instant::now();
                let r = send(&client, &url, s).await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(r.get("rejectedLogEventsInfo").is_none(), "{r}");
                assert!(r["rejectedCount"].as_u64().unwrap_or(0) == 0, "{r}");
                events.fetch_add(*n as u64, Ordering::Relaxed);
                bytes.fetch_add(*b as u64, Ordering::Relaxed);
                i += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = srv.cpu_seconds() - cpu0;
    lat.sort_by(|a, b| a.total_cmp(b));
    let mb = bytes.load(Ordering::Relaxed) as f64 / 1_000_000.0;
    println!(
        "  {} requests, {:.1} MB/s, {:.0} events/s, latency p50 {:.1} ms p99 {:.1} ms, server CPU {:.2} cores ({:.1} MB per CPU-second)",
        lat.len(),
        mb / wall,
        events.load(Ordering::Relaxed) as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        cpu / wall,
        mb / cpu
    );
}

/// Ingests `events` (any streams, time-ordered per stream) with up to 4 PutLogEvents in
/// flight, creating groups and streams first.
async fn ingest_all(srv: &Server, client: &reqwest::Client, events: Vec<LogEvent>) -> usize {
    let mut by_stream: HashMap<(String, String), Vec<LogEvent>> = HashMap::new();
    for e in events {
        by_stream
            .entry((e.log_group_name.clone(), e.log_stream_name.clone()))
            .or_default()
            .push(e);
    }
    let mut groups: Vec<&String> = by_stream.keys().map(|(g, _)| g).collect();
    groups.sort();
    groups.dedup();
    for g in groups {
        call(client, srv, "CreateLogGroup", json!({"logGroupName": g})).await;
    }
    // Stream by stream, at most 4 requests in flight, so only a stream's bodies are held.
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    let mut n = 0;
    for ((g, s), evs) in by_stream.drain() {
        call(
            client,
            srv,
            "CreateLogStream",
            json!({"logGroupName": g, "logStreamName": s}),
        )
        .await;
        for (body, _, _) in batches(&g, &s, &evs) {
            n += 1;
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (client, url, host) = (client.clone(), srv.url.clone(), srv.host.clone());
            tasks.push(tokio::spawn(async move {
                let r = send(&client, &url, &sign(&host, "PutLogEvents", body)).await;
                assert!(r.get("rejectedLogEventsInfo").is_none(), "{r}");
                drop(permit);
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    n
}

async fn poll_cw(srv: &Server, client: &reqwest::Client, start: Value) -> (f64, String, usize) {
    let t = Instant::now();
    let id = call(client, srv, "StartQuery", start).await["queryId"]
        .as_str()
        .unwrap()
        .to_string();
    loop {
        let r = call(client, srv, "GetQueryResults", json!({"queryId": id})).await;
        let status = r["status"].as_str().unwrap_or("").to_string();
        if status != "Scheduled" && status != "Running" {
            let rows = r["results"].as_array().map_or(0, |a| a.len());
            return (t.elapsed().as_secs_f64() * 1000.0, status, rows);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn poll_native(srv: &Server, client: &reqwest::Client, start: Value) -> f64 {
    let t = Instant::now();
    let r: Value = client
        .post(format!("{}/v1/queries", srv.url))
        .bearer_auth(TOKEN)
        .json(&start)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["queryId"].as_str().expect("queryId").to_string();
    loop {
        let r: Value = client
            .get(format!("{}/v1/queries/{id}", srv.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let s = r["status"].as_str().unwrap_or("");
        if s != "Scheduled" && s != "Running" {
            return t.elapsed().as_secs_f64() * 1000.0;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn queries(srv: &Server, client: &reqwest::Client) {
    let n = env_usize("BENCH_QUERY_EVENTS", 1_000_000);
    let runs = env_usize("BENCH_RUNS", 5).max(1);
    let cluster = data::Cluster {
        name: "bench",
        nodes: 100,
        pods_per_node: 10,
        seed: 42,
    };
    let now = chrono::Utc::now().timestamp_millis() - 60_000;
    let per_tick = data::performance(cluster, data::PERFORMANCE, now, 1)
        .next()
        .map_or(1, |t| t.len());
    let minutes = n.div_ceil(per_tick) as i64;
    let start = now - minutes * data::MINUTE_MS;
    let mut events: Vec<LogEvent> = data::performance(cluster, data::PERFORMANCE, now, minutes)
        .flatten()
        .collect();
    events.extend(data::application(cluster, data::APPLICATION, start, now, n));
    events.extend(data::dataplane(
        cluster,
        data::DATAPLANE,
        start,
        now,
        n / 20,
    ));
    let total = events.len();
    let t = Instant::now();
    let requests = ingest_all(srv, client, events).await;
    println!(
        "Query data: {total} events ({n} performance over {minutes} min, {n} application, {} dataplane) in {requests} PutLogEvents calls, {:.1} s",
        n / 20,
        t.elapsed().as_secs_f64()
    );
    let flushed: Value = client
        .post(format!("{}/v1/admin/flush", srv.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!("  flushed: {flushed}");
    println!("| # | group | StartQuery→Complete (median ms) | native API (median ms) | rows |");
    println!("|---|---|---|---|---|");
    for (i, c) in examples::REFERENCE_EXAMPLES.iter().enumerate() {
        let cw = json!({
            "logGroupName": c.group,
            "startTime": start / 1000 - 60,
            "endTime": now / 1000 + 60,
            "queryString": c.insights,
        });
        let native = json!({
            "group": c.group,
            "start": (start / 1000 - 60) * 1000,
            "end": (now / 1000 + 61) * 1000,
            "query": c.insights,
        });
        let (_, status, rows) = poll_cw(srv, client, cw.clone()).await;
        assert_eq!(status, "Complete", "query {}: {}", i + 1, c.insights);
        poll_native(srv, client, native.clone()).await;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for _ in 0..runs {
            a.push(poll_cw(srv, client, cw.clone()).await.0);
            b.push(poll_native(srv, client, native.clone()).await);
        }
        println!(
            "| {} | {} | {:.0} | {:.0} | {rows} |",
            i + 1,
            c.group.rsplit('/').next().unwrap_or(""),
            median(a),
            median(b)
        );
    }
    if std::env::var("BENCH_SKIP_FILTER").is_err() {
        println!(
            "| FilterLogEvents on {} | seconds | events | calls | events scanned/s |",
            data::APPLICATION
        );
        println!("|---|---|---|---|---|");
        for pattern in [
            "",
            "\"slow request\"",
            "?WARN ?error",
            "{ $.log_processed.status >= 500 }",
        ] {
            let (secs, found, calls) =
                filter_all(srv, client, data::APPLICATION, pattern, start, now).await;
            println!(
                "| `{pattern}` | {secs:.1} | {found} | {calls} | {:.0} |",
                n as f64 / secs
            );
        }
    }
}

/// FilterLogEvents over a whole group, every page, as boto3's paginator would fetch it.
async fn filter_all(
    srv: &Server,
    client: &reqwest::Client,
    group: &str,
    pattern: &str,
    start: i64,
    end: i64,
) -> (f64, usize, usize) {
    let t = Instant::now();
    let (mut events, mut calls) = (0, 0);
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"logGroupName": group, "filterPattern": pattern, "startTime": start, "endTime": end});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let r = call(client, srv, "FilterLogEvents", body).await;
        calls += 1;
        events += r["events"].as_array().map_or(0, |a| a.len());
        match r["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    (t.elapsed().as_secs_f64(), events, calls)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without it
    // and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with `cargo bench -p kinsight-server --bench cwlogs`");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(
        dir.path(),
        &[
            ("KINSIGHT_AWS_ACCESS_KEY_ID", KEY_ID),
            ("KINSIGHT_AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        if std::env::var("BENCH_SKIP_THROUGHPUT").is_err() {
            throughput(&srv, &client).await;
        }
        if std::env::var("BENCH_SKIP_QUERIES").is_err() {
            queries(&srv, &client).await;
        }
    });
}
