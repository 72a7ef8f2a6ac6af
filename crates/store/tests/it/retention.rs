//! Retention per group: expired events are rejected at ingest, expired segments dropped and
//! their objects deleted.

use std::collections::BTreeMap;

use kinsight_store::{ManualClock, RejectReason, Store, StoreError};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_segments_are_dropped_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ms();
    let clock = ManualClock::new(start);
    let mut cfg = config(dir.path());
    cfg.clock = clock.clone();
    cfg.gc_grace_ms = 60_000;
    let store = Store::open(cfg, vec![]).await.unwrap();
    store
        .create_group("/short", Some(1), BTreeMap::new())
        .await
        .unwrap();
    // Only allowed values (reference §6.2).
    assert!(matches!(
        store.put_retention("/short", Some(2)).await,
        Err(StoreError::InvalidName(_))
    ));

    let out = ingest(
        &store,
        None,
        vec![
            ev("/short", "s", start - 3 * 3_600_000, "fresh"),
            ev("/short", "s", start - 2 * 86_400_000, "expired"),
            ev("/keep", "s", start - 2 * 86_400_000, "no retention"),
        ],
    )
    .await;
    assert_eq!(out.accepted, 2);
    assert_eq!(out.rejected[0].reason, RejectReason::Expired);
    store.flush().await.unwrap();
    assert_eq!(store.enforce_retention().await.unwrap(), 0);

    clock.advance_ms(86_400_000);
    assert_eq!(store.enforce_retention().await.unwrap(), 1);
    assert!(all_events(&store, "/short", None).await.is_empty());
    assert_eq!(
        all_events(&store, "/keep", None).await.len(),
        1,
        "no retention: kept"
    );
    let info = store.group("/short").unwrap();
    assert_eq!((info.stored_bytes, info.segment_count), (0, 0));

    let objects = dir.path().join("objects/v1/segments");
    let count = || walk(&objects);
    assert_eq!(count(), 2, "object kept during the grace period");
    store.collect_garbage().await.unwrap();
    assert_eq!(count(), 2);
    clock.advance_ms(60_001);
    store.collect_garbage().await.unwrap();
    assert_eq!(
        count(),
        2,
        "kept while the previous checkpoint (the fallback) lists it"
    );
    ingest(
        &store,
        None,
        vec![ev("/keep", "s", start, "a checkpoint more")],
    )
    .await;
    store.flush().await.unwrap();
    store.collect_garbage().await.unwrap();
    let short = store.group("/short").unwrap().id;
    assert_eq!(
        walk(&objects.join(short.to_string())),
        0,
        "the expired object is gone"
    );
}

fn walk(d: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}
