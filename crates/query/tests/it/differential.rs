//! Differential test (issue #5): Logs Insights queries on kinsight and equivalent SQL on
//! DuckDB over the very same Parquet segments must give the same rows — filter, stats, sort
//! and parse queries, including every §5.6 example query. DuckDB is an independent engine:
//! agreement checks the planner's semantics (null handling, float division, nearest-rank
//! percentiles, bins, regexes, glob parsing), not just that a query runs.

use serde_json::{Value, json};

use crate::data::*;
use crate::examples::{Case, REFERENCE_EXAMPLES, case};
use crate::support::*;

/// Further filter, stats, sort and parse queries (DuckDB views `perf`, `app`, `dp`).
const MORE: &[Case] = &[
    // Filters: comparison of numbers, `in`, `not`, substring `like`, `and`/`or`.
    case(
        APPLICATION,
        r#"filter log_processed.status >= 500 or log like "ERROR" | stats count() as n, avg(log_processed.latency_ms) as lat by kubernetes.namespace_name"#,
        r#"SELECT "kubernetes.namespace_name", count(*), avg("log_processed.latency_ms") FROM app
           WHERE "log_processed.status" >= 500 OR contains(log, 'ERROR') GROUP BY 1"#,
        None,
    ),
    case(
        APPLICATION,
        r#"filter kubernetes.namespace_name in ["prod", "staging"] and not (stream = "stdout") | stats count() by kubernetes.pod_name"#,
        r#"SELECT "kubernetes.pod_name", count(*) FROM app
           WHERE "kubernetes.namespace_name" IN ('prod', 'staging') AND NOT (stream = 'stdout') GROUP BY 1"#,
        None,
    ),
    case(
        PERFORMANCE,
        r#"filter Type = "Node" and node_cpu_utilization > 50 and node_cpu_utilization <= 90 | stats count(*) as n, min(node_cpu_utilization), max(node_cpu_utilization) by NodeName"#,
        r#"SELECT NodeName, count(*), min(node_cpu_utilization), max(node_cpu_utilization) FROM perf
           WHERE Type = 'Node' AND node_cpu_utilization > 50 AND node_cpu_utilization <= 90 GROUP BY 1"#,
        None,
    ),
    // Aggregations: count(f), count_distinct, sum, stddev (sample), sortsFirst/sortsLast.
    case(
        APPLICATION,
        r#"stats count(log_processed.status) as with_status, count_distinct(kubernetes.pod_name) as pods, sum(log_processed.latency_ms) as total, stddev(log_processed.latency_ms) as sd, sortsFirst(kubernetes.pod_name) as first, sortsLast(kubernetes.pod_name) as last by kubernetes.namespace_name"#,
        r#"SELECT "kubernetes.namespace_name", count("log_processed.status"), count(DISTINCT "kubernetes.pod_name"),
                  sum("log_processed.latency_ms"), stddev_samp("log_processed.latency_ms"),
                  min("kubernetes.pod_name"), max("kubernetes.pod_name")
           FROM app GROUP BY 1"#,
        None,
    ),
    // Arithmetic with float division in stats expressions and an expression group key.
    case(
        PERFORMANCE,
        r#"filter Type = "Node" | stats avg(node_memory_working_set / 1024 / 1024) as mib, max(node_cpu_usage_total) - min(node_cpu_usage_total) as spread by NodeName"#,
        r#"SELECT NodeName, avg(node_memory_working_set / 1024 / 1024), max(node_cpu_usage_total) - min(node_cpu_usage_total)
           FROM perf WHERE Type = 'Node' GROUP BY 1"#,
        None,
    ),
    // Sort on two keys with a limit, raw events.
    case(
        APPLICATION,
        r#"fields @timestamp, kubernetes.pod_name, stream | filter stream = "stderr" | sort kubernetes.pod_name asc, @timestamp desc | limit 25"#,
        r#"SELECT "@timestamp", "kubernetes.pod_name", stream FROM app WHERE stream = 'stderr'
           ORDER BY "kubernetes.pod_name" ASC, "@timestamp" DESC LIMIT 25"#,
        Some(1),
    ),
    // parse with a glob (non-greedy captures, the last one takes the rest).
    case(
        APPLICATION,
        r#"parse log "* * [*] * *" as ts, level, workload, what, rest | filter ispresent(workload) | stats count() as n by level, workload"#,
        r#"WITH p AS (SELECT CASE WHEN regexp_matches(log, '(?s)(.*?) (.*?) \[(.*?)\] (.*?) (.*)')
                                 THEN regexp_extract(log, '(?s)(.*?) (.*?) \[(.*?)\] (.*?) (.*)', 2) END AS level,
                            CASE WHEN regexp_matches(log, '(?s)(.*?) (.*?) \[(.*?)\] (.*?) (.*)')
                                 THEN regexp_extract(log, '(?s)(.*?) (.*?) \[(.*?)\] (.*?) (.*)', 3) END AS workload
                     FROM app)
           SELECT level, workload, count(*) FROM p WHERE workload IS NOT NULL GROUP BY 1, 2"#,
        None,
    ),
    // parse with a regex and named groups, then numeric use of a capture (min/max of
    // extracted text compare as numbers).
    case(
        APPLICATION,
        r#"parse log /latency=(?<lat>\d+)ms/ | filter ispresent(lat) | stats count() as n, avg(lat) as avg_lat, max(lat) as max_lat by kubernetes.container_name"#,
        r#"WITH p AS (SELECT "kubernetes.container_name" AS c,
                            CASE WHEN regexp_matches(log, 'latency=(\d+)ms') THEN regexp_extract(log, 'latency=(\d+)ms', 1) END AS lat
                     FROM app)
           SELECT c, count(*), avg(lat::DOUBLE), max(lat::DOUBLE) FROM p WHERE lat IS NOT NULL GROUP BY 1"#,
        None,
    ),
];

fn cases() -> impl Iterator<Item = &'static Case> {
    REFERENCE_EXAMPLES.iter().chain(MORE)
}

fn canonical(v: &Value) -> Value {
    match v {
        // Compare numbers at 9 significant digits (float sums differ in the last bits
        // between engines).
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            json!(format!("{:.9e}", x))
        }
        other => other.clone(),
    }
}

fn canonical_rows(rows: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let mut rows: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| r.iter().map(canonical).collect())
        .collect();
    rows.sort_by_key(|r| serde_json::to_string(r).unwrap_or_default());
    rows
}

fn key_sequence(rows: &[Vec<Value>], key: usize) -> Vec<Value> {
    rows.iter().map(|r| canonical(&r[key])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_queries_agree_with_duckdb_sql() {
    let d = demo_flushed().await;
    let request = json!({
        "views": {
            "perf": segment_files(&d, PERFORMANCE).await,
            "app": segment_files(&d, APPLICATION).await,
            "dp": segment_files(&d, DATAPLANE).await,
        },
        "queries": cases().map(|c| c.sql).collect::<Vec<_>>(),
    });
    let expected = duckdb(&request);
    assert_eq!(expected.len(), cases().count());
    for (c, want) in cases().zip(&expected) {
        let got = run(&d.svc, &[c.group], c.insights).await;
        let got_rows = without_ptr(&got);
        let want_rows: Vec<Vec<Value>> =
            serde_json::from_value(want["rows"].clone()).expect("rows");
        assert!(
            !want_rows.is_empty(),
            "{}: DuckDB found no rows; the case tests nothing",
            c.insights
        );
        assert_eq!(
            canonical_rows(&got_rows),
            canonical_rows(&want_rows),
            "\nquery: {}\nsql: {}",
            c.insights,
            c.sql
        );
        if let Some(k) = c.order_key {
            assert_eq!(
                key_sequence(&got_rows, k),
                key_sequence(&want_rows, k),
                "order of {}",
                c.insights
            );
        }
    }
}
