//! Helpers shared by the query tests: a store on a manual clock, loading events, a query
//! service, and running queries.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use kinsight_query::{Language, QueryConfig, QueryOutput, QueryRequest, QueryService, Row};
use kinsight_store::{IngestRequest, LogEvent, ManualClock, Store, StoreConfig};
use serde_json::Value;

use crate::data::{HOUR_MS, NOW_MS};

/// A store whose clock reads [`NOW_MS`], with background tasks off (tests flush by hand).
pub async fn open_store(dir: &Path) -> Store {
    let mut c = StoreConfig::new(dir);
    c.background = false;
    c.clock = ManualClock::new(NOW_MS);
    Store::open(c, Vec::new()).await.expect("open store")
}

/// Ingests events in batches that respect the store's limits.
pub async fn load(store: &Store, events: impl IntoIterator<Item = LogEvent>) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for e in events {
        bytes += e.message.len() + 26;
        batch.push(e);
        if batch.len() >= 5000 || bytes > 800_000 {
            ingest(store, std::mem::take(&mut batch)).await;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        ingest(store, batch).await;
    }
}

async fn ingest(store: &Store, events: Vec<LogEvent>) {
    let n = events.len();
    let out = store
        .ingest(IngestRequest {
            batch_id: None,
            events,
            auto_create_groups: true,
        })
        .await
        .expect("ingest");
    assert_eq!(
        out.accepted, n,
        "every generated event is accepted: {out:?}"
    );
}

/// A query service for tests. Its threads keep normal priority: tests run while other
/// builds load the machine, where nice +10 threads crawl (the priority itself is tested in
/// `service::query_threads_run_at_a_lower_priority`).
pub fn service(store: &Store) -> QueryService {
    QueryService::new(store.clone(), test_config()).expect("query service")
}

pub fn test_config() -> QueryConfig {
    QueryConfig {
        threads: 2,
        nice: 0,
        ..QueryConfig::default()
    }
}

/// A request over the last 24 hours of the test clock.
pub fn request(groups: &[&str], query: &str) -> QueryRequest {
    QueryRequest {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        start_ms: NOW_MS - 24 * HOUR_MS,
        end_ms: NOW_MS + HOUR_MS,
        query: query.to_string(),
        language: Language::Insights,
        limit: None,
        timeout_ms: None,
    }
}

pub fn sql_request(groups: &[&str], query: &str) -> QueryRequest {
    QueryRequest {
        language: Language::Sql,
        ..request(groups, query)
    }
}

pub async fn run(svc: &QueryService, groups: &[&str], query: &str) -> QueryOutput {
    svc.run(request(groups, query))
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// The value of `column` in each row.
pub fn column(out: &QueryOutput, column: &str) -> Vec<Value> {
    let i = out
        .columns
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("no column {column} in {:?}", out.columns));
    out.rows.iter().map(|r| r[i].clone()).collect()
}

/// Rows without the `@ptr` column (pointers depend on WAL sequence numbers).
pub fn without_ptr(out: &QueryOutput) -> Vec<Row> {
    match out.columns.iter().position(|c| c == "@ptr") {
        None => out.rows.clone(),
        Some(i) => out
            .rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.remove(i);
                r
            })
            .collect(),
    }
}

pub fn as_f64(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// A store with a small demo cluster: 6 h of performance events (4 nodes × 5 pods, one tick
/// per minute), 3,000 application records and 600 dataplane records, part flushed to
/// segments and the last hour still in memory.
pub struct Demo {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub svc: QueryService,
}

pub const DEMO_CLUSTER: crate::data::Cluster = crate::data::Cluster {
    name: "demo",
    nodes: 4,
    pods_per_node: 5,
    seed: 7,
};

pub async fn demo() -> Demo {
    demo_with(false).await
}

/// [`demo`] with every event in segments (DuckDB reads the same files).
pub async fn demo_flushed() -> Demo {
    demo_with(true).await
}

async fn demo_with(flush_all: bool) -> Demo {
    use crate::data::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path()).await;
    let split = NOW_MS - HOUR_MS;
    let perf: Vec<LogEvent> = performance(DEMO_CLUSTER, PERFORMANCE, NOW_MS, 6 * 60)
        .flatten()
        .collect();
    let app: Vec<LogEvent> = application(
        DEMO_CLUSTER,
        APPLICATION,
        NOW_MS - 6 * HOUR_MS,
        NOW_MS,
        3000,
    )
    .collect();
    let dp = dataplane(DEMO_CLUSTER, DATAPLANE, NOW_MS - 6 * HOUR_MS, NOW_MS, 600);
    let (old, new): (Vec<LogEvent>, Vec<LogEvent>) = perf
        .into_iter()
        .chain(app)
        .chain(dp)
        .partition(|e| e.timestamp < split);
    load(&store, old).await;
    store.flush().await.expect("flush");
    load(&store, new).await;
    if flush_all {
        store.flush().await.expect("flush");
    }
    let svc = service(&store);
    Demo { dir, store, svc }
}

pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// Absolute paths of a group's segment files.
pub async fn segment_files(d: &Demo, group: &str) -> Vec<String> {
    let scan = d.store.scan(group, None, None).await.expect("scan");
    assert!(scan.memory.is_empty(), "{group} has unflushed rows");
    scan.segments
        .iter()
        .map(|s| {
            d.dir
                .path()
                .join("objects")
                .join(&s.path)
                .display()
                .to_string()
        })
        .collect()
}

/// Runs `request` (see `tests/duckdb/run.py`) in DuckDB.
pub fn duckdb(request: &Value) -> Vec<Value> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/duckdb/run.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 must be installed (scripts/ci-install.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let out = child.wait_with_output().expect("duckdb runner");
    assert!(
        out.status.success(),
        "DuckDB runner failed (is `pip install duckdb` done? scripts/ci-install.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("runner output is JSON")
}
