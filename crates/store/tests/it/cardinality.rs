//! Caps on the number of log groups and streams (issue 15, item 12): events that would create
//! one past a cap are rejected on their own, create calls fail with `LimitExceeded`, existing
//! groups and streams keep working, nothing accepted is lost, concurrent batches never
//! overshoot together, and the usage is in the stats.

use std::collections::BTreeMap;

use kinsight_store::{CardinalityLimits, LimitKind, RejectReason, Store, StoreError, Usage};

use crate::support::*;

fn limited(
    dir: &std::path::Path,
    groups: usize,
    streams: usize,
    per_group: usize,
) -> kinsight_store::StoreConfig {
    let mut cfg = config(dir);
    cfg.limits = CardinalityLimits {
        max_log_groups: groups,
        max_log_streams: streams,
        max_streams_per_group: per_group,
    };
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_reject_new_groups_and_streams_and_spare_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let cfg = limited(dir.path(), 2, 4, 3);
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    let out = ingest(
        &store,
        None,
        vec![
            ev("/a", "s1", t, "1"),
            ev("/a", "s2", t, "2"),
            ev("/b", "t1", t, "3"),
        ],
    )
    .await;
    assert_eq!(out.accepted, 3);

    let out = ingest(
        &store,
        Some("over"),
        vec![
            ev("/a", "s3", t, "4"),     // third stream of /a: the last one allowed
            ev("/a", "s4", t, "5"),     // a fourth: past the per-group cap
            ev("/c", "u1", t, "6"),     // a third group
            ev("/b", "t1", t, "7"),     // existing: fine
            ev("/b", "t2", t, "8"),     // a fifth stream in all
            ev("/a", "s1", t + 1, "9"), // existing: fine
        ],
    )
    .await;
    assert_eq!(out.accepted, 3);
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (1, RejectReason::TooManyLogStreams),
            (2, RejectReason::TooManyLogGroups),
            (4, RejectReason::TooManyLogStreams),
        ]
    );
    // A retry of the batch is answered from the dedup index, counts included.
    let again = ingest(&store, Some("over"), vec![ev("/c", "u1", t, "6")]).await;
    assert!(again.duplicate);
    assert_eq!((again.accepted, again.rejected_count), (3, 3));

    // Create calls past a cap fail with a message naming the cap and its setting.
    match store.create_group("/d", None, BTreeMap::new()).await {
        Err(
            e @ StoreError::LimitExceeded {
                kind: LimitKind::LogGroups,
                count: 2,
                limit: 2,
                ..
            },
        ) => {
            assert!(e.to_string().contains("--max-log-groups"), "{e}");
            assert!(e.to_string().contains("\"/d\""), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        store.create_stream("/b", "t9").await,
        Err(StoreError::LimitExceeded {
            kind: LimitKind::LogStreams,
            count: 4,
            limit: 4,
            ..
        })
    ));

    let c = store.stats().cardinality;
    assert_eq!(
        c.log_groups,
        Usage {
            count: 2,
            limit: 2,
            rejected: 2
        }
    );
    assert_eq!(
        c.log_streams,
        Usage {
            count: 4,
            limit: 4,
            rejected: 2
        }
    );
    assert_eq!(
        c.streams_per_group,
        Usage {
            count: 3,
            limit: 3,
            rejected: 1
        }
    );

    // Deleting a stream makes room again.
    store.delete_stream("/b", "t1").await.unwrap();
    let out = ingest(&store, None, vec![ev("/b", "t2", t, "10")]).await;
    assert_eq!(out.accepted, 1);

    // Nothing accepted is lost, and the caps hold after a restart (WAL replay).
    let a = all_events(&store, "/a", None).await;
    assert_eq!(
        a.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["1", "2", "4", "9"]
    );
    drop(store);
    let store = Store::open(cfg, vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/a", None).await, a);
    assert_eq!(all_events(&store, "/b", Some("t2")).await.len(), 1);
    assert_eq!(store.stats().cardinality.log_streams.count, 4);
    let out = ingest(
        &store,
        None,
        vec![ev("/e", "x", t, "11"), ev("/a", "s5", t, "12")],
    )
    .await;
    assert_eq!(out.accepted, 0);
    assert_eq!(
        out.rejected.iter().map(|r| r.reason).collect::<Vec<_>>(),
        [
            RejectReason::TooManyLogGroups,
            RejectReason::TooManyLogStreams
        ]
    );
}

/// Concurrent batches, each creating new groups and streams, never pass a cap together:
/// names of batches still on their way to the WAL count as reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_do_not_overshoot_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let store = Store::open(limited(dir.path(), 5, 40, 1_000), vec![])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let events = (0..4)
                    .map(|j| ev(&format!("/g{}", i % 10), &format!("s{i}-{j}"), t, "x"))
                    .collect();
                ingest(&store, None, events).await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap().accepted;
    }
    let stats = store.stats();
    assert_eq!(stats.groups, 5);
    assert_eq!(stats.cardinality.log_streams.count, 40);
    assert_eq!(accepted, 40, "one event per stream");
}
