//! Query benchmark (issue #5): the reference's §5.6 example queries over 10 million
//! performance events (a 100-node cluster, one tick per minute, ~30 h), 10 million
//! application log records and 500,000 dataplane records, each query's latency next to
//! DuckDB running the equivalent SQL over the same events in one Parquet file per group,
//! measured in the same run on the same machine with the same number of threads. DuckDB's
//! files hold the rows sorted by (`@logStream`, `@timestamp`, `@id`), as a log store keeps
//! them; a second set holds them in kinsight's own segment layout (clustered by event kind,
//! `docs/formats/segments.md`), and DuckDB's times over those are reported beside.
//!
//! Run (release profile): `cargo bench -p kinsight-query --bench queries`.
//! Environment: `KINSIGHT_BENCH_EVENTS` (events per group, default 10,000,000),
//! `KINSIGHT_BENCH_RUNS` (timed runs per query, default 5; the median is reported, after one
//! warm-up run), `KINSIGHT_BENCH_THREADS` (default 2), `KINSIGHT_BENCH_DIR` (where the store
//! and the DuckDB files are kept between runs; default `target/kinsight-query-bench`).
//! Needs `python3` with `duckdb` (`pip install duckdb`). Results: docs/benchmarks.md.

#[path = "../tests/it/data.rs"]
mod data;
#[path = "../tests/it/examples.rs"]
mod examples;

use std::path::{Path, PathBuf};
use std::time::Instant;

use data::*;
use kinsight_query::{Language, QueryConfig, QueryRequest, QueryService};
use kinsight_store::{IngestRequest, LogEvent, ManualClock, Store, StoreConfig};
use serde_json::{Value, json};

const CLUSTER: Cluster = Cluster {
    name: "bench",
    nodes: 100,
    pods_per_node: 10,
    seed: 42,
};
/// Bumped when the generated data changes, so old stores are rebuilt.
const DATA_VERSION: u32 = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn bench_dir() -> PathBuf {
    std::env::var_os("KINSIGHT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/kinsight-query-bench")
        })
}

fn store_config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir.join("store"));
    c.background = false;
    c.clock = ManualClock::new(NOW_MS + MINUTE_MS);
    c.max_unflushed_bytes = 8 << 30;
    c.flush_bytes = 8 << 30;
    c
}

async fn ingest(store: &Store, events: Vec<LogEvent>) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let send = |batch: Vec<LogEvent>| {
        let store = store.clone();
        async move {
            let n = batch.len();
            let out = store
                .ingest(IngestRequest {
                    batch_id: None,
                    events: batch,
                    auto_create_groups: true,
                })
                .await
                .expect("ingest");
            assert_eq!(out.accepted, n, "{out:?}");
        }
    };
    for e in events {
        bytes += e.message.len() + 26;
        batch.push(e);
        if batch.len() >= 10_000 || bytes > 1_000_000 {
            send(std::mem::take(&mut batch)).await;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        send(batch).await;
    }
}

/// Generates the data hour by hour, flushing after each hour, so that each group has one
/// segment per hour — the layout the store's flush and compaction converge to.
async fn generate(store: &Store, events: usize) {
    let per_tick = performance(CLUSTER, PERFORMANCE, NOW_MS, 1)
        .next()
        .map_or(1, |t| t.len());
    let minutes = events.div_ceil(per_tick) as i64;
    let start = NOW_MS - minutes * MINUTE_MS;
    let mut perf = performance(CLUSTER, PERFORMANCE, NOW_MS, minutes).peekable();
    let mut app = application(CLUSTER, APPLICATION, start, NOW_MS, events).peekable();
    let mut dp = dataplane(CLUSTER, DATAPLANE, start, NOW_MS, events / 20)
        .into_iter()
        .peekable();
    let mut hour_end = (start.div_euclid(HOUR_MS) + 1) * HOUR_MS;
    let t0 = Instant::now();
    let mut total = 0usize;
    while perf.peek().is_some() || app.peek().is_some() || dp.peek().is_some() {
        let mut batch = Vec::new();
        while let Some(tick) = perf.next_if(|t| t.first().is_some_and(|e| e.timestamp < hour_end)) {
            batch.extend(tick);
        }
        while let Some(e) = app.next_if(|e| e.timestamp < hour_end) {
            batch.push(e);
        }
        while let Some(e) = dp.next_if(|e| e.timestamp < hour_end) {
            batch.push(e);
        }
        total += batch.len();
        ingest(store, batch).await;
        store.flush().await.expect("flush");
        eprintln!(
            "  generated {total} events up to {} ({:.0} s)",
            kinsight_query::format_timestamp_ms(hour_end),
            t0.elapsed().as_secs_f64()
        );
        hour_end += HOUR_MS;
    }
}

fn duckdb(request: &Value) -> Vec<Value> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/duckdb/run.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with duckdb (pip install duckdb)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("request");
    let out = child.wait_with_output().expect("duckdb runner");
    assert!(out.status.success(), "DuckDB runner failed");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without
    // it, and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with `cargo bench -p kinsight-query --bench queries`");
        return;
    }
    let events = env_usize("KINSIGHT_BENCH_EVENTS", 10_000_000);
    let runs = env_usize("KINSIGHT_BENCH_RUNS", 5).max(1);
    let threads = env_usize("KINSIGHT_BENCH_THREADS", 2).max(1);
    let dir = bench_dir();
    let marker = dir.join(format!("ready-v{DATA_VERSION}-{events}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if !marker.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("bench dir");
            eprintln!("generating {events} events per group in {}", dir.display());
            let store = Store::open(store_config(&dir), Vec::new())
                .await
                .expect("store");
            generate(&store, events).await;
            store.shutdown().await;
            std::fs::write(&marker, b"").expect("marker");
        }
        let store = Store::open(store_config(&dir), Vec::new())
            .await
            .expect("store");
        // Whatever the WAL replayed into memory (a generation cut short after its last flush)
        // goes to segments too: both engines read the same Parquet.
        store.flush().await.expect("flush");
        let svc = QueryService::new(
            store.clone(),
            QueryConfig {
                threads,
                ..QueryConfig::default()
            },
        )
        .expect("query service");

        // Parquet files for DuckDB, written by DuckDB from the same segments: one per group
        // sorted by stream and time (the baseline), one per group in the segments' own order.
        let views = ["perf", "app", "dp"];
        let groups = [PERFORMANCE, APPLICATION, DATAPLANE];
        let objects = dir.join("store/objects");
        let mut tables = serde_json::Map::new();
        let mut tables_ours = serde_json::Map::new();
        let mut rows_per_group = Vec::new();
        for (view, group) in views.iter().zip(groups) {
            let file = dir.join(format!("{view}.parquet"));
            let file_ours = dir.join(format!("{view}-kinsight-layout.parquet"));
            let scan = store.scan(group, None, None).await.expect("scan");
            assert!(scan.memory.is_empty(), "all data is in segments");
            let rows: u64 = scan.segments.iter().map(|s| s.rows).sum();
            let bytes: u64 = scan.segments.iter().map(|s| s.size_bytes).sum();
            rows_per_group.push((group, rows, bytes, scan.segments.len()));
            let files: Vec<String> = scan
                .segments
                .iter()
                .map(|s| objects.join(&s.path).display().to_string())
                .collect();
            for (out, order_by) in [
                (&file, json!(["@logStream", "@timestamp", "@id"])),
                (&file_ours, json!([])),
            ] {
                if !out.exists() {
                    duckdb(&json!({
                        "views": {*view: files},
                        "copy": {"file": out.display().to_string(), "from": view, "order_by": order_by},
                    }));
                }
            }
            tables.insert(view.to_string(), json!(file.display().to_string()));
            tables_ours.insert(view.to_string(), json!(file_ours.display().to_string()));
        }
        for (group, rows, bytes, segments) in &rows_per_group {
            let size = std::fs::metadata(dir.join(format!(
                "{}.parquet",
                views[groups.iter().position(|g| g == group).unwrap_or(0)]
            )))
            .map_or(0, |m| m.len());
            println!(
                "{group}: {rows} events, {segments} segments, {:.1} MB (DuckDB file {:.1} MB)",
                *bytes as f64 / 1e6,
                size as f64 / 1e6
            );
        }

        let cases = &examples::REFERENCE_EXAMPLES;
        let duck_on = |tables: &serde_json::Map<String, Value>| {
            duckdb(&json!({
                "tables": tables,
                "queries": cases.iter().map(|c| c.sql).collect::<Vec<_>>(),
                "repeat": runs + 1,
                "threads": threads,
            }))
        };
        let duck = duck_on(&tables);
        let duck_ours = duck_on(&tables_ours);
        let duck_median = |d: &Value| {
            median(
                d["times_ms"]
                    .as_array()
                    .map(|a| a.iter().skip(1).filter_map(Value::as_f64).collect())
                    .unwrap_or_default(),
            )
        };

        println!(
            "\n| # | group | kinsight (ms) | DuckDB (ms) | ratio | DuckDB, kinsight's layout (ms) | ratio | rows |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let (mut worst, mut log_sum, mut log_sum_ours): (f64, f64, f64) = (0.0, 0.0, 0.0);
        for (i, ((c, d), d_ours)) in cases.iter().zip(&duck).zip(&duck_ours).enumerate() {
            let group = store.group(c.group).expect("group");
            let req = QueryRequest {
                groups: vec![c.group.to_string()],
                start_ms: group.first_event_ms.unwrap_or(0),
                end_ms: group.last_event_ms.unwrap_or(NOW_MS) + 1,
                query: c.insights.to_string(),
                language: Language::Insights,
                limit: None,
                timeout_ms: None,
            };
            let mut times = Vec::with_capacity(runs);
            let mut rows = 0;
            for run in 0..=runs {
                let t = Instant::now();
                let out = svc.run(req.clone()).await.expect("query");
                if run > 0 {
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                rows = out.rows.len();
            }
            let ours = median(times);
            let theirs = duck_median(d);
            let theirs_ours = duck_median(d_ours);
            let duck_rows = d["rows"].as_array().map_or(0, Vec::len);
            let ratio = ours / theirs;
            let ratio_ours = ours / theirs_ours;
            worst = worst.max(ratio);
            log_sum += ratio.ln();
            log_sum_ours += ratio_ours.ln();
            let short = c.group.rsplit('/').next().unwrap_or(c.group);
            println!(
                "| {} | {short} | {ours:.0} | {theirs:.0} | {ratio:.2} | {theirs_ours:.0} | {ratio_ours:.2} | {rows}{} |",
                i + 1,
                if rows == duck_rows {
                    String::new()
                } else {
                    format!(" (DuckDB {duck_rows})")
                }
            );
        }
        let n = cases.len() as f64;
        println!(
            "\nworst ratio: {worst:.2}; geometric mean: {:.2} (against DuckDB on kinsight's layout: {:.2})",
            (log_sum / n).exp(),
            (log_sum_ours / n).exp()
        );
        store.shutdown().await;
    });
}
