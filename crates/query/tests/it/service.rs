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
    // Eviction happens at the next start: the last two and the newest remain.
    let id = svc.start(request(&["/t/svc"], "limit 1")).unwrap();
    svc.wait(&id).await.unwrap();
    assert!(svc.snapshot(&ids[0], 0).is_err());
    assert!(svc.snapshot(&ids[1], 0).is_err());
    assert_eq!(
        svc.snapshot(&ids[3], 0).unwrap().rows,
        vec![vec![serde_json::json!(3)]]
    );
    assert_eq!(svc.list(None, 10).len(), 3);
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
