//! Small segments of one window merge into one; old objects go once two checkpoints without
//! them (the newest and the previous) are durable and the grace period has passed.

use kinsight_store::Store;

use crate::support::*;

fn segment_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("v1/segments")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_segments_of_a_window_merge_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.gc_grace_ms = 0;
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    let t = now_ms().div_euclid(HOUR_MS) * HOUR_MS + 1;
    for f in 0..4 {
        let events = (0..50)
            .map(|i| {
                ev(
                    "/g",
                    &format!("s{}", i % 4),
                    t + i,
                    &k8s_line(f * 50 + i as usize),
                )
            })
            .collect();
        ingest(&store, None, events).await;
        store.flush().await.unwrap();
    }
    // A deleted stream's rows are purged by the merge.
    ingest(&store, None, vec![ev("/g", "gone", t, "bye")]).await;
    store.flush().await.unwrap();
    store.delete_stream("/g", "gone").await.unwrap();
    let before = all_events(&store, "/g", None).await;
    assert_eq!(before.len(), 200);
    assert_eq!(
        store.scan("/g", None, None).await.unwrap().segments.len(),
        5
    );
    assert_eq!(segment_files(&dir.path().join("objects")).len(), 5);

    let replaced = store.compact().await.unwrap();
    assert_eq!(replaced, 5);
    let scan = store.scan("/g", None, None).await.unwrap();
    assert_eq!(scan.segments.len(), 1);
    assert_eq!(scan.segments[0].rows, 200);
    assert_eq!(scan.segments[0].level, 1);
    assert_eq!(all_events(&store, "/g", None).await, before);

    // Inputs are deleted by garbage collection once two checkpoints without them are
    // durable: the previous checkpoint, the fallback, lists them until then (issue 15, 11).
    store.collect_garbage().await.unwrap();
    assert_eq!(segment_files(&dir.path().join("objects")).len(), 6);
    ingest(&store, None, vec![ev("/other", "s", t, "next checkpoint")]).await;
    store.flush().await.unwrap();
    store.collect_garbage().await.unwrap();
    let g = store.group("/g").unwrap().id;
    let files: Vec<_> = segment_files(&dir.path().join("objects"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(&format!("/segments/{g}/")))
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(&scan.segments[0].path));
    // Nothing left to do.
    assert_eq!(store.compact().await.unwrap(), 0);

    drop(store);
    let store = Store::open(cfg, vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/g", None).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_an_interrupted_flush_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    ingest(&store, None, vec![ev("/g", "s", now_ms(), "x")]).await;
    store.flush().await.unwrap();
    drop(store);
    // A segment written by a flush whose checkpoint never happened.
    let orphan = dir
        .path()
        .join("objects/v1/segments/1/0/00000000000000ff.parquet");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"PAR1 partial").unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    assert!(!orphan.exists());
    assert_eq!(all_events(&store, "/g", None).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_window_waits_for_several_small_segments_a_closed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ms();
    let clock = kinsight_store::ManualClock::new(start);
    let mut cfg = config(dir.path());
    cfg.clock = clock.clone();
    let store = Store::open(cfg, vec![]).await.unwrap();
    for i in 0..2 {
        ingest(&store, None, vec![ev("/g", "s", start - i, "x")]).await;
        store.flush().await.unwrap();
    }
    // Two small segments of the current hour: not worth rewriting yet.
    assert_eq!(store.compact().await.unwrap(), 0);
    // Once the window is over (and late events are unlikely), they merge.
    clock.advance_ms(2 * HOUR_MS);
    assert_eq!(store.compact().await.unwrap(), 2);
    assert_eq!(
        store.scan("/g", None, None).await.unwrap().segments.len(),
        1
    );
}
