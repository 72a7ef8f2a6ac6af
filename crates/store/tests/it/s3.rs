//! The whole store on a real S3-compatible server (SeaweedFS): segments, checkpoint and dedup
//! files go through the S3 API, and a restart finds everything again.

use kinsight_store::{ObjectStoreLocation, Store, StoreConfig};

use crate::seaweed::Seaweed;
use crate::support::*;

fn s3_config(dir: &std::path::Path, s3: &Seaweed, prefix: &str) -> StoreConfig {
    let mut c = config(dir);
    c.object_store = ObjectStoreLocation::S3 {
        bucket: s3.bucket.clone(),
        prefix: prefix.into(),
    };
    c.s3_options = s3.s3_options();
    c.gc_grace_ms = 0;
    c.compaction_min_open_segments = 2;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_seaweedfs_survives_restart_compaction_and_retention() {
    let Some(s3) = Seaweed::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &s3, "cluster-a/logs");
    let store = Store::open(cfg.clone(), vec![]).await.unwrap();
    let t = now_ms();
    for f in 0..3 {
        let events = (0..100)
            .map(|i| {
                ev(
                    "/k/c/application",
                    &format!("pod-{}", i % 4),
                    t - 1000 + i,
                    &k8s_line(f * 100 + i as usize),
                )
            })
            .collect();
        ingest(&store, Some(&format!("batch-{f}")), events).await;
        store.flush().await.unwrap();
    }
    assert_eq!(store.compact().await.unwrap(), 3);
    // The compaction inputs go once the previous checkpoint (the fallback) no longer lists
    // them either: after one more checkpoint.
    ingest(&store, None, vec![ev("/k/c/other", "s", t, "checkpoint")]).await;
    store.flush().await.unwrap();
    store.collect_garbage().await.unwrap();
    let before = all_events(&store, "/k/c/application", None).await;
    assert_eq!(before.len(), 300);

    // The objects are really in the bucket, under the prefix.
    let listed = store
        .storage()
        .list(&object_store::path::Path::from("v1"))
        .await
        .unwrap();
    let keys: Vec<String> = listed.iter().map(|o| o.location.to_string()).collect();
    assert!(keys.iter().any(|k| k == "v1/checkpoint.json"), "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count(),
        2,
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k == "v1/checkpoint.prev.json"),
        "{keys:?}"
    );
    drop(store);

    // A new local data dir (WAL lost) with the same bucket: everything flushed is there,
    // and the batch ids too.
    let dir2 = tempfile::tempdir().unwrap();
    let store = Store::open(s3_config(dir2.path(), &s3, "cluster-a/logs"), vec![])
        .await
        .unwrap();
    assert_eq!(all_events(&store, "/k/c/application", None).await, before);
    assert!(
        ingest(
            &store,
            Some("batch-1"),
            vec![ev("/k/c/application", "x", t, "dup")]
        )
        .await
        .duplicate
    );
    let scan = store.scan("/k/c/application", None, None).await.unwrap();
    assert!(scan.schema.field_with_name("kubernetes.pod_name").is_ok());

    // Another prefix in the same bucket is another, empty store.
    let dir3 = tempfile::tempdir().unwrap();
    let other = Store::open(s3_config(dir3.path(), &s3, "cluster-b"), vec![])
        .await
        .unwrap();
    assert!(other.group("/k/c/application").is_none());

    // Wrong credentials are an error, not an empty store.
    let dir4 = tempfile::tempdir().unwrap();
    let mut bad = s3_config(dir4.path(), &s3, "cluster-a/logs");
    bad.s3_options.retain(|(k, _)| k != "aws_secret_access_key");
    bad.s3_options
        .push(("aws_secret_access_key".into(), "wrong".into()));
    let err = Store::open(bad, vec![])
        .await
        .err()
        .expect("wrong secret refused");
    assert!(err.to_string().contains("object store"), "{err}");
}
