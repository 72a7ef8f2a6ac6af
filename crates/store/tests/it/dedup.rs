//! A retried batch (same id) is stored once: concurrently, after a restart (WAL replay) and
//! after a flush has deleted the WAL (dedup file).

use kinsight_store::Store;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batch_is_stored_once_across_restarts_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let batch = || {
        vec![
            ev("/g", "a", t, "one"),
            ev("/g", "b", t + 1, "two"),
            ev("/g", "a", t - 20 * 86_400_000, "too old"),
        ]
    };
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let first = ingest(&store, Some("agent-1/000001"), batch()).await;
    assert_eq!(
        (first.accepted, first.rejected.len(), first.duplicate),
        (2, 1, false)
    );
    let again = ingest(&store, Some("agent-1/000001"), batch()).await;
    assert!(again.duplicate);
    assert_eq!(
        (again.seq, again.accepted, again.rejected_count),
        (first.seq, 2, 1)
    );
    drop(store);

    // After a crash: the id comes back from the WAL.
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    assert!(
        ingest(&store, Some("agent-1/000001"), batch())
            .await
            .duplicate
    );
    // After a flush the WAL records are gone: the id comes from the dedup file.
    store.flush().await.unwrap();
    drop(store);
    let cfg = config(dir.path());
    assert!(
        kinsight_store::wal::list_files(&cfg.wal_dir())
            .unwrap()
            .len()
            <= 1
    );
    let store = Store::open(cfg, vec![]).await.unwrap();
    assert!(
        ingest(&store, Some("agent-1/000001"), batch())
            .await
            .duplicate
    );
    assert_eq!(all_events(&store, "/g", None).await.len(), 2);
    // A different id is a different batch.
    assert!(
        !ingest(&store, Some("agent-1/000002"), batch())
            .await
            .duplicate
    );
    assert_eq!(all_events(&store, "/g", None).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_batch_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t = now_ms();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                ingest(&store, Some("same-id"), vec![ev("/g", "s", t, "x")]).await
            })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        if !task.await.unwrap().duplicate {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(all_events(&store, "/g", None).await.len(), 1);
}
