//! Acknowledged events survive a restart without a flush (WAL replay); torn tails are cut,
//! real corruption is reported; concurrent batches share fsyncs.

use std::io::Write;

use kinsight_store::{Store, StoreConfig, StoreError, wal};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_reopen_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    for b in 0..3 {
        let events = (0..10)
            .map(|i| ev("/app", "s1", t + b * 10 + i, &format!("line {b}-{i}")))
            .collect();
        let out = ingest(&store, None, events).await;
        assert_eq!(out.accepted, 10);
        assert!(out.seq.is_some());
    }
    let before = all_events(&store, "/app", None).await;
    assert_eq!(before.len(), 30);
    // Dropped without flush or shutdown: only the WAL has the events.
    drop(store);

    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/app", None).await, before);
    assert_eq!(store.stats().segments, 0);
    // Sequence numbers continue after the replayed ones.
    let out = ingest(&store, None, vec![ev("/app", "s1", t, "after")]).await;
    assert!(out.seq.unwrap() > before.iter().map(|e| e.id >> 14).max().unwrap() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_and_corruption_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let mut cfg = config(dir.path());
    // Every group commit starts a new file, so there are sealed files to damage.
    cfg.wal_file_bytes = 1;
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    for i in 0..3 {
        ingest(&store, None, vec![ev("/g", "s", t + i, &format!("m{i}"))]).await;
    }
    store.shutdown().await;
    drop(store);
    let files = wal::list_files(&cfg.wal_dir()).unwrap();
    assert!(files.len() >= 3, "{files:?}");

    // A group commit cut short by a crash: half a record at the end of the last file.
    let last = &files.last().unwrap().path;
    let len_before = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(last)
        .unwrap()
        .write_all(&[42, 0, 0, 0, 1, 2, 3])
        .unwrap();
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/g", None).await.len(), 3);
    assert_eq!(
        std::fs::metadata(last).unwrap().len(),
        len_before,
        "torn tail truncated"
    );
    ingest(&store, None, vec![ev("/g", "s", t, "m3")]).await;
    drop(store);

    // A flipped byte inside a sealed file is corruption, not a torn tail.
    let first = &wal::list_files(&cfg.wal_dir()).unwrap()[0].path;
    let mut bytes = std::fs::read(first).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xff;
    std::fs::write(first, bytes).unwrap();
    match Store::open(cfg, vec![]).await {
        Err(StoreError::WalCorrupt { path, .. }) => assert_eq!(&path, first),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("corruption went unnoticed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t = now_ms();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                ingest(
                    &store,
                    None,
                    vec![ev("/g", &format!("s{}", i % 7), t, &format!("e{i}"))],
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().accepted, 1);
    }
    let stats = store.stats();
    assert_eq!(stats.wal_records, 200);
    assert!(
        stats.wal_commits < 200,
        "200 concurrent batches took {} fsyncs",
        stats.wal_commits
    );
    assert_eq!(all_events(&store, "/g", None).await.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::open(config(dir.path()), vec![]).await.unwrap();
    assert!(matches!(
        Store::open(config(dir.path()), vec![]).await,
        Err(StoreError::Locked { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_flushes_fail_ingest_pushes_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_unflushed_bytes = 10_000;
    cfg.backpressure_timeout_ms = 300;
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    let t = now_ms();
    let big = "x".repeat(6_000);
    ingest(&store, None, vec![ev("/g", "s", t, &big)]).await;
    ingest(&store, None, vec![ev("/g", "s", t + 1, &big)]).await;
    // The object store breaks: its directory becomes a file.
    let objects = dir.path().join("objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::write(&objects, b"not a directory").unwrap();
    assert!(store.flush().await.is_err());
    // Over the memory limit and unable to flush: the next batch is refused, not hung.
    let err = store
        .ingest(kinsight_store::IngestRequest {
            batch_id: Some("b3".into()),
            events: vec![ev("/g", "s", t + 2, "third")],
            auto_create_groups: true,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backpressure { .. }), "{err}");
    // Everything acknowledged is still readable, and after a restart with the store repaired
    // it is flushed.
    assert_eq!(all_events(&store, "/g", None).await.len(), 2);
    drop(store);
    std::fs::remove_file(&objects).unwrap();
    let store = Store::open(cfg, vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/g", None).await.len(), 2);
    assert_eq!(store.flush().await.unwrap().rows, 2);
    assert!(
        !ingest(&store, Some("b3"), vec![ev("/g", "s", t + 2, "third")])
            .await
            .duplicate
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_does_not_break_the_retry_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t = now_ms();
    let req = || kinsight_store::IngestRequest {
        batch_id: Some("given-up".into()),
        events: vec![ev("/g", "s", t, "once")],
        auto_create_groups: true,
    };
    // The first attempt is abandoned mid-way (like an HTTP client timing out) ...
    let _ = tokio::time::timeout(std::time::Duration::ZERO, store.ingest(req())).await;
    // ... its retry neither hangs nor stores the batch a second time.
    let again = tokio::time::timeout(std::time::Duration::from_secs(10), store.ingest(req()))
        .await
        .expect("the retry does not hang")
        .unwrap();
    assert_eq!(again.accepted, 1);
    assert_eq!(all_events(&store, "/g", None).await.len(), 1);
}

/// `shutdown` returns only when the background flusher and compactor have stopped (a flush in
/// progress finishes first), so the same data directory opens again at once — an in-process
/// restart, as the server's tests and `kinsight up` do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_the_data_dir_reopens_at_once_even_mid_flush() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut cfg = StoreConfig::new(dir.path());
        // Flush as soon as anything is indexed: a flush is running when shutdown comes.
        cfg.flush_bytes = 1;
        cfg.index_interval_ms = 10;
        let store = Store::open(cfg, vec![]).await.unwrap();
        let events: Vec<_> = (0..3000)
            .map(|i: usize| {
                let ts = now_ms() - 1000 + (i % 900) as i64;
                ev("/g", &format!("s{}", i % 7), ts, &k8s_line(i))
            })
            .collect();
        for chunk in events.chunks(1000) {
            ingest(&store, None, chunk.to_vec()).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        store.shutdown().await;
        drop(store);
        let again = Store::open(config(dir.path()), vec![]).await;
        assert!(again.is_ok(), "round {round}: {:?}", again.err());
        let again = again.unwrap();
        assert_eq!(
            all_events(&again, "/g", None).await.len(),
            3000 * (round + 1),
            "nothing lost"
        );
        again.shutdown().await;
    }
}

/// Tears `v1/checkpoint.json` as a crash of a file system that does not keep rename order
/// might: half of it is left.
fn tear_checkpoint(objects: &std::path::Path) {
    let path = objects.join("v1/checkpoint.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
}

/// Issue 15, item 11: a damaged newest checkpoint is replaced by the previous one at start,
/// the WAL after it is replayed, and no acknowledged event is lost or doubled — also when a
/// compaction dropped segments the previous checkpoint still lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_newest_checkpoint_falls_back_to_the_previous_one_losing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let mut cfg = config(dir.path());
    cfg.gc_grace_ms = 0;
    cfg.compaction_min_open_segments = 2;
    // A WAL file per group commit, so that checkpoints really truncate the WAL.
    cfg.wal_file_bytes = 1;
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    let mut n = 0;
    let mut batch = |store: Store, k: usize| {
        let events: Vec<_> = (0..k)
            .map(|i| {
                ev(
                    "/app",
                    &format!("s{}", i % 3),
                    t + n + i as i64,
                    &format!("e{n}-{i}"),
                )
            })
            .collect();
        n += k as i64;
        async move { ingest(&store, Some(&format!("b{n}")), events).await }
    };
    for _ in 0..3 {
        batch(store.clone(), 20).await;
        store.flush().await.unwrap();
    }
    // Three small segments merge into one: the newest checkpoint lists only the output, the
    // previous one still the inputs, so garbage collection must leave the inputs alone.
    assert_eq!(store.compact().await.unwrap(), 3);
    store.collect_garbage().await.unwrap();
    // Acknowledged after the last checkpoint: only in the WAL.
    batch(store.clone(), 7).await;
    let before = all_events(&store, "/app", None).await;
    assert_eq!(before.len(), 67);
    let objects = dir.path().join("objects");
    assert!(objects.join("v1/checkpoint.prev.json").exists());
    drop(store);

    tear_checkpoint(&objects);
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/app", None).await, before);
    // Batch ids came back too: a retry of the first batch is a duplicate.
    assert!(
        ingest(&store, Some("b20"), vec![ev("/app", "s0", t, "again")])
            .await
            .duplicate
    );

    // The next checkpoint replaces the torn one without copying it over the good previous
    // one; both read back after another start.
    store.flush().await.unwrap();
    let prev = std::fs::read(objects.join("v1/checkpoint.prev.json")).unwrap();
    assert!(kinsight_store::checkpoint::Checkpoint::decode("prev", &prev).is_ok());
    drop(store);
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/app", None).await, before);
    drop(store);
    // Both damaged and the WAL truncated: a clear error, not an empty store.
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    for _ in 0..3 {
        batch(store.clone(), 1).await;
        store.flush().await.unwrap();
    }
    drop(store);
    tear_checkpoint(&objects);
    std::fs::write(objects.join("v1/checkpoint.prev.json"), b"{\"format\":").unwrap();
    match Store::open(cfg, vec![]).await {
        Err(StoreError::Format { path, reason }) => {
            assert_eq!(path, "v1/checkpoint.json");
            assert!(
                reason.contains("previous checkpoint is damaged too"),
                "{reason}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started from nothing"),
    }
}

/// Issue 15, item 11: with no previous checkpoint yet (the first one is torn), the WAL still
/// starts at its first record — it is kept until a previous checkpoint exists — and the
/// store rebuilds from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_first_checkpoint_is_rebuilt_from_the_whole_wal() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let cfg = config(dir.path());
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    ingest(
        &store,
        Some("first"),
        vec![ev("/g", "s", t, "one"), ev("/h", "s", t, "two")],
    )
    .await;
    store.flush().await.unwrap();
    ingest(&store, None, vec![ev("/g", "s", t + 1, "three")]).await;
    let (g, h) = (
        all_events(&store, "/g", None).await,
        all_events(&store, "/h", None).await,
    );
    drop(store);
    tear_checkpoint(&dir.path().join("objects"));
    let store = Store::open(cfg, vec![]).await.unwrap();
    assert_eq!(all_events(&store, "/g", None).await, g);
    assert_eq!(all_events(&store, "/h", None).await, h);
    assert_eq!(store.stats().groups, 2);
}
