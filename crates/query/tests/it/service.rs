//! The query service's guard rails (issue #5): cancellation, timeouts, the per-query memory
//! cap, waiting for a slot, retention of finished queries, errors that point at the query,
//! and the lower CPU priority of the query threads. A query that endlessly counts
//! (`generate_series` in SQL) stands in for "a query that runs too long".

use std::time::Duration;

use kinsight_query::{QueryConfig, QueryError, QueryService, QueryStatus};

use crate::data::*;
use crate::support::*;

const ENDLESS: &str = "SELECT max(value % 7) FROM generate_series(1, 9000000000000)";

async fn small() -> (tempfile::TempDir, kinsight_store::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    load(
        &store,
        (0..50).map(|i| {
            kinsight_store::LogEvent::new(
                "/t/svc",
                "s",
                NOW_MS - 60_000 + i,
                format!(r#"{{"i":{i}}}"#),
            )
        }),
    )
    .await;
    (dir, store)
}

async fn until(svc: &QueryService, id: &str, status: QueryStatus) {
    for _ in 0..600 {
        if svc.snapshot(id, 0).unwrap().info.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("query {id} never reached {status:?}");
}

/// Regression: a query that finished before anyone waited for it left `wait` hanging (the
/// "done" signal was sent while the channel had no receiver, which stores nothing). Seen as a
/// hung CI run on a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_query_that_already_finished_returns() {
    let (_dir, store) = small().await;
    let svc = QueryService::new(store, test_config()).unwrap();
    let id = svc
        .start(request(&["/t/svc"], "stats count() as n"))
        .unwrap();
    until(&svc, &id, QueryStatus::Complete).await;
    let done = tokio::time::timeout(Duration::from_secs(10), svc.wait(&id))
        .await
        .expect("wait returns for a finished query")
        .unwrap();
    assert_eq!(done.rows, vec![vec![serde_json::json!(50)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_query_is_cancelled_and_frees_its_slot() {
    let (_dir, store) = small().await;
    let svc = QueryService::new(
        store,
        QueryConfig {
            max_running: 1,
            ..test_config()
        },
    )
    .unwrap();
    let long = svc.start(sql_request(&["/t/svc"], ENDLESS)).unwrap();
    until(&svc, &long, QueryStatus::Running).await;
    // The only slot is taken: the next query waits.
    let next = svc
        .start(request(&["/t/svc"], "stats count() as n"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        svc.snapshot(&next, 0).unwrap().info.status,
        QueryStatus::Scheduled
    );
    assert!(svc.stop(&long).unwrap());
    assert!(!svc.stop(&long).unwrap(), "a second stop changes nothing");
    let done = svc.wait(&next).await.unwrap();
    assert_eq!(done.info.status, QueryStatus::Complete);
    assert_eq!(done.rows, vec![vec![serde_json::json!(50)]]);
    let stopped = svc.snapshot(&long, 0).unwrap();
    assert_eq!(stopped.info.status, QueryStatus::Cancelled);
    assert!(stopped.info.finished_ms.is_some());
    assert_eq!(svc.list(Some(QueryStatus::Cancelled), 10).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_timeout_is_stopped() {
    let (_dir, store) = small().await;
    let svc = service(&store);
    let mut req = sql_request(&["/t/svc"], ENDLESS);
    req.timeout_ms = Some(300);
    let e = svc.run(req).await.unwrap_err();
    assert!(matches!(e, QueryError::Timeout(300)), "{e:?}");
    // The engine is free again.
    let out = run(&svc, &["/t/svc"], "stats max(i) as m").await;
    assert_eq!(out.rows, vec![vec![serde_json::json!(49)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_cap_fails_alone() {
    let (_dir, store) = small().await;
    let svc = QueryService::new(
        store,
        QueryConfig {
            memory_per_query_bytes: 256 * 1024,
            ..test_config()
        },
    )
    .unwrap();
    // Distinct counting cannot spill: 5 million distinct values need far more than 256 KiB.
    let e = svc
        .run(sql_request(
            &["/t/svc"],
            "SELECT count(DISTINCT value) FROM generate_series(1, 5000000)",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(e, QueryError::MemoryExceeded { limit_bytes, .. } if limit_bytes == 256 * 1024),
        "{e:?}"
    );
    let out = run(&svc, &["/t/svc"], "stats count() as n").await;
    assert_eq!(out.rows, vec![vec![serde_json::json!(50)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_queries_are_refused_before_they_run() {
    let (_dir, store) = small().await;
    let svc = service(&store);
    match svc.start(request(&["/t/svc"], "fields a\n| stats avg(x) by")) {
        Err(QueryError::Malformed(e)) => {
            assert_eq!(e.line, 2);
            assert!(e.column > 1, "{e}");
        }
        other => panic!("expected a malformed-query error, got {other:?}"),
    }
    assert!(matches!(
        svc.start(request(&["/t/none"], "limit 1")),
        Err(QueryError::GroupNotFound(g)) if g == "/t/none"
    ));
    let mut req = request(&["/t/svc"], "limit 1");
    req.end_ms = req.start_ms;
    assert!(matches!(
        svc.start(req),
        Err(QueryError::InvalidParameter(_))
    ));
    let mut req = request(&["/t/svc"], "limit 1");
    req.limit = Some(10_001);
    assert!(matches!(
        svc.start(req),
        Err(QueryError::InvalidParameter(_))
    ));
    assert!(matches!(
        svc.start(request(&[], "limit 1")),
        Err(QueryError::InvalidParameter(_))
    ));
    assert!(matches!(
        svc.start(sql_request(&["/t/svc"], "DELETE FROM logs")),
        Err(QueryError::MalformedSql { .. })
    ));
    assert!(matches!(
        svc.snapshot("nope", 0),
        Err(QueryError::QueryNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_queries_are_kept_up_to_the_retention_count() {
    let (_dir, store) = small().await;
    let svc = QueryService::new(
        store,
        QueryConfig {
            threads: 1,
            retain_finished: 2,
            ..test_config()
        },
    )
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..4 {
        let id = svc
            .start(request(
                &["/t/svc"],
                &format!("filter i < {n} | stats count()"),
            ))
            .unwrap();
        svc.wait(&id).await.unwrap();
        ids.push(id);
    }
    // The oldest go as soon as more than two have finished.
    let id = svc.start(request(&["/t/svc"], "limit 1")).unwrap();
    svc.wait(&id).await.unwrap();
    assert!(svc.snapshot(&ids[0], 0).is_err());
    assert!(svc.snapshot(&ids[1], 0).is_err());
    assert!(svc.snapshot(&ids[2], 0).is_err());
    assert_eq!(
        svc.snapshot(&ids[3], 0).unwrap().rows,
        vec![vec![serde_json::json!(3)]]
    );
    assert_eq!(svc.list(None, 10).len(), 2);
}

/// Query threads run at nice +10, so ingest and the WAL win the CPU under a heavy query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_threads_run_at_a_lower_priority() {
    let (_dir, store) = small().await;
    let svc = QueryService::new(
        store,
        QueryConfig {
            threads: 2,
            ..QueryConfig::default()
        },
    )
    .unwrap();
    let _ = run(&svc, &["/t/svc"], "stats count()").await;
    // Other tests' services (at normal priority) share the process: count ours.
    let mut seen = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "kinsight-query" {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Field 19 of /proc/<tid>/stat is the nice value; fields after the `)` of comm.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = after.split(' ').nth(16).unwrap().parse().unwrap();
        seen += usize::from(nice == 10);
    }
    assert!(seen >= 2, "found {seen} query threads at nice 10");
}

/// Issue 15 item 4: one query keeps at most `max_result_bytes` of rows (and stops there, with a
/// warning); finished queries keep at most `max_retained_result_bytes` together, oldest out
/// first, and no longer than `result_ttl_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_bounded_in_bytes_retained_within_a_budget_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    // 200 events of 10 KiB.
    load(
        &store,
        (0..200).map(|i| {
            kinsight_store::LogEvent::new(
                "/t/big",
                "s",
                NOW_MS - 60_000 + i,
                format!("{i:03} {}", "x".repeat(10 * 1024)),
            )
        }),
    )
    .await;
    let svc = QueryService::new(
        store,
        QueryConfig {
            max_result_bytes: 256 * 1024,
            max_retained_result_bytes: 600 * 1024,
            result_ttl_ms: 60 * 60_000,
            ..test_config()
        },
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = svc
            .start(request(&["/t/big"], "fields @message | limit 200"))
            .unwrap();
        let done = svc.wait(&id).await.unwrap();
        assert_eq!(done.info.status, QueryStatus::Complete);
        // 256 KiB hold about 24 of the 10 KiB rows.
        assert!(
            (20..30).contains(&done.rows.len()),
            "{} rows kept",
            done.rows.len()
        );
        assert!(
            done.warnings.iter().any(|w| w.contains("results were cut")),
            "{:?}",
            done.warnings
        );
        ids.push(id);
    }
    // Three results of ~256 KiB do not fit in 600 KiB: the oldest went.
    assert!(matches!(
        svc.snapshot(&ids[0], 0),
        Err(QueryError::QueryNotFound(_))
    ));
    assert!(svc.snapshot(&ids[2], 0).is_ok());
    assert!(svc.retained_result_bytes() <= 600 * 1024);

    // Results expire.
    let (_dir2, small_store) = small().await;
    let svc = QueryService::new(
        small_store,
        QueryConfig {
            result_ttl_ms: 300,
            ..test_config()
        },
    )
    .unwrap();
    let out = svc
        .run(request(&["/t/svc"], "stats count() as n"))
        .await
        .unwrap();
    assert_eq!(out.rows, vec![vec![serde_json::json!(50)]]);
    let id = svc
        .start(request(&["/t/svc"], "stats count() as n"))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match svc.snapshot(&id, 0) {
            Err(QueryError::QueryNotFound(_)) => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("results did not expire: {other:?}"),
        }
    }
}

/// Issue 15 item 4: scalar functions cannot be made to allocate gigabytes; the query fails
/// with a memory error naming the function, before anything is allocated, and the service
/// goes on. Ordinary uses of the same functions still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_that_would_allocate_gigabytes_are_refused() {
    let (_dir, store) = small().await;
    let svc = service(&store);
    for (sql, function) in [
        ("SELECT repeat('x', 2000000000)", "repeat"),
        ("SELECT length(lpad('a', 1000000000))", "lpad"),
        (
            "SELECT rpad(value, 900000000, 'ab') FROM (VALUES ('a')) t(value)",
            "rpad",
        ),
        ("SELECT cardinality(range(1, 2000000000))", "range"),
        ("SELECT array_repeat('xyz', 500000000)", "array_repeat"),
        (
            "SELECT replace(repeat(\"@message\", 10000), 'i', repeat('b', 9000)) FROM logs",
            "replace",
        ),
        // Folded into a literal at plan time on one row, then copied into every row.
        ("SELECT repeat('x', 260000000) AS a FROM logs", "repeat"),
        (
            "SELECT arrow_cast(X'00', 'FixedSizeBinary(2147483647)')",
            "FixedSizeBinary",
        ),
        (
            "SELECT array_to_string(array_repeat(\"@message\", 1000), repeat(\"@message\", 1000)) FROM logs",
            "array_to_string",
        ),
        (
            "SELECT cardinality(range(DATE '2263-01-01', DATE '9999-12-31', INTERVAL '1' DAY))",
            "range",
        ),
        (
            "SELECT length(\"@message\" || repeat(\"@message\", 10000000)) FROM logs",
            "repeat",
        ),
    ] {
        let e = svc.run(sql_request(&["/t/svc"], sql)).await.expect_err(sql);
        match e {
            QueryError::MemoryExceeded { message, .. } => {
                assert!(message.contains(function), "{sql}: {message}")
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    // A tower of concatenations doubles at each level (40 levels would be 2^40 times the
    // messages): refused once a level gets too large.
    let mut sql = "WITH l0 AS (SELECT \"@message\" AS m FROM logs)".to_string();
    for level in 1..=40 {
        sql.push_str(&format!(
            ", l{level} AS (SELECT m || m AS m FROM l{})",
            level - 1
        ));
    }
    sql.push_str(" SELECT max(length(m)) FROM l40");
    let e = svc.run(sql_request(&["/t/svc"], &sql)).await.unwrap_err();
    assert!(matches!(e, QueryError::MemoryExceeded { .. }), "{e:?}");
    // The same functions at ordinary sizes, and `||` with its null semantics.
    let out = svc
        .run(sql_request(
            &["/t/svc"],
            "SELECT repeat('ab', 3) AS r, lpad('7', 3, '0') AS p, 'a' || 'b' AS c, 'a' || NULL AS n, cardinality(range(1, 11)) AS k",
        ))
        .await
        .unwrap();
    assert_eq!(
        out.rows,
        vec![vec![
            serde_json::json!("ababab"),
            serde_json::json!("007"),
            serde_json::json!("ab"),
            serde_json::Value::Null,
            serde_json::json!(10)
        ]]
    );
    let out = run(&svc, &["/t/svc"], "stats count() as n").await;
    assert_eq!(out.rows, vec![vec![serde_json::json!(50)]]);
}

/// Issue 15 item 4: query memory is a share of what the process may use, not a fixed 1 GiB a
/// query; spill files have a cap.
#[test]
fn query_memory_defaults_to_a_share_of_the_process_memory() {
    let c = QueryConfig::default();
    let total = kinsight_query::memory::available_bytes().expect("this machine's memory");
    let all_queries = c.memory_per_query_bytes as u64 * c.max_running as u64;
    assert!(
        all_queries
            <= (total as f64 * kinsight_query::QUERY_MEMORY_SHARE) as u64
                + (64 << 20) * c.max_running as u64,
        "{all_queries} of {total}"
    );
    assert!(c.max_spill_bytes > 0 && c.max_spill_bytes < u64::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilling_beyond_the_spill_cap_fails_the_query() {
    let (_dir, store) = small().await;
    let spill = tempfile::tempdir().unwrap();
    let svc = QueryService::new(
        store,
        QueryConfig {
            memory_per_query_bytes: 16 * 1024 * 1024,
            spill_dir: Some(spill.path().to_path_buf()),
            max_spill_bytes: 64 * 1024,
            ..test_config()
        },
    )
    .unwrap();
    // Sorting 3 million rows needs far more than 2 MiB: it spills, and more than 64 KiB.
    let e = svc
        .run(sql_request(
            &["/t/svc"],
            "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r FROM generate_series(1, 3000000))",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(e, QueryError::SpillExceeded { limit_bytes: 65536 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("spill files"), "{e}");
}
