//! Replicas sharing one object store and a real PostgreSQL catalogue (issue 16), in one
//! process: two `Store`s with their own data directories.

use std::path::Path;
use std::time::{Duration, Instant};

use kinsight_catalogue::Catalogue;
use kinsight_catalogue::testing::PgServer;
use kinsight_store::{ObjectStoreLocation, SharedConfig, Store, StoreConfig};

use crate::support::{all_events, ev, ingest, now_ms};

async fn replica(dir: &Path, objects: &Path, url: &str, id: &str) -> Store {
    replica_with_lease(dir, objects, url, id, Duration::from_millis(900)).await
}

async fn replica_with_lease(
    dir: &Path,
    objects: &Path,
    url: &str,
    id: &str,
    lease_ttl: Duration,
) -> Store {
    let mut c = StoreConfig::new(dir.join(id));
    c.object_store = ObjectStoreLocation::Local(objects.to_path_buf());
    c.background = false;
    // Two small segments of a window are enough to compact (the race test wants merges).
    c.compaction_min_open_segments = 2;
    let mut s = SharedConfig::new(Catalogue::connect(url).await.unwrap(), id);
    s.poll_interval = Duration::from_millis(20);
    s.lease_ttl = lease_ttl;
    c.shared = Some(s);
    Store::open(c, Vec::new()).await.unwrap()
}

/// Polls until `f` holds (at most 10 s).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn messages(s: &Store, group: &str) -> Vec<String> {
    if s.group(group).is_none() {
        return Vec::new();
    }
    let mut m: Vec<String> = all_events(s, group, None)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    m.sort();
    m
}

async fn leader_of<'a>(stores: &[&'a Store]) -> &'a Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = stores.iter().find(|s| s.replica().is_some_and(|(_, l)| l)) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no replica took the maintenance lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_read_each_others_writes_deduplicate_retries_and_share_the_catalogue() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("bucket");
    let a = replica(dir.path(), &objects, &pg.url(), "a").await;
    let b = replica(dir.path(), &objects, &pg.url(), "b").await;
    let t = now_ms();

    let out = ingest(
        &a,
        Some("batch-1"),
        vec![ev("/g", "s", t, "one"), ev("/g", "s", t, "two")],
    )
    .await;
    assert!(!out.duplicate);
    eventually("b to see a's events", || async {
        messages(&b, "/g").await == ["one", "two"]
    })
    .await;

    // The agent's retry of the same batch on the other replica is not stored twice.
    let again = ingest(
        &b,
        Some("batch-1"),
        vec![ev("/g", "s", t, "one"), ev("/g", "s", t, "two")],
    )
    .await;
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.accepted, 2);
    // Catalogue operations on one replica are seen (and checked) on the other.
    a.create_group("/made-on-a", Some(7), Default::default())
        .await
        .unwrap();
    eventually("b to see the group", || async {
        b.group("/made-on-a").is_some()
    })
    .await;
    assert_eq!(b.group("/made-on-a").unwrap().retention_days, Some(7));
    assert!(
        b.create_group("/made-on-a", None, Default::default())
            .await
            .is_err()
    );
    b.put_retention("/made-on-a", Some(30)).await.unwrap();
    eventually("a to see the retention", || async {
        a.group("/made-on-a").unwrap().retention_days == Some(30)
    })
    .await;

    // Concurrent writers on both replicas: every acknowledged event is on both, once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            ingest(
                &s,
                Some(&format!("c-{i}")),
                vec![ev("/c", "s", t, &format!("m{i:02}"))],
            )
            .await
        }));
    }
    for t in tasks {
        assert!(!t.await.unwrap().duplicate);
    }
    let want: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    for s in [&a, &b] {
        eventually("all concurrent events", || async {
            messages(s, "/c").await == want
        })
        .await;
    }
    // Event ids agree across replicas.
    let ids = |v: Vec<kinsight_store::StoredEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(all_events(&a, "/c", None).await),
        ids(all_events(&b, "/c", None).await)
    );

    // The leader flushes; the other adopts its checkpoint; both read every event once.
    let leader = leader_of(&[&a, &b]).await;
    let follower = if std::ptr::eq(leader, &a) { &b } else { &a };
    assert_eq!(
        follower.flush().await.unwrap().segments,
        0,
        "only the leader flushes"
    );
    let report = leader.flush().await.unwrap();
    assert!(report.segments > 0, "{report:?}");
    eventually("the follower to adopt the checkpoint", || async {
        follower.stats().checkpoint_seq == report.checkpoint_seq
            && follower.stats().unflushed_rows == 0
    })
    .await;
    assert_eq!(follower.stats().segments, leader.stats().segments);
    for s in [&a, &b] {
        assert_eq!(messages(s, "/c").await, want);
        assert_eq!(messages(s, "/g").await, ["one", "two"]);
    }

    // The leader goes away; the other takes over maintenance and keeps everything.
    let (gone, stays) = (leader.clone(), follower.clone());
    gone.shutdown().await;
    drop(gone);
    ingest(&stays, Some("after"), vec![ev("/c", "s", t, "zz")]).await;
    let _ = leader_of(&[&stays]).await;
    let r = stays.flush().await.unwrap();
    assert!(r.segments > 0, "{r:?}");
    let mut want2 = want.clone();
    want2.push("zz".into());
    assert_eq!(messages(&stays, "/c").await, want2);

    // A new replica with an empty data directory starts from the checkpoint and the log.
    let c = replica(dir.path(), &objects, &pg.url(), "c").await;
    assert_eq!(messages(&c, "/c").await, want2);
    assert_eq!(messages(&c, "/g").await, ["one", "two"]);
    assert_eq!(c.group("/made-on-a").unwrap().retention_days, Some(30));
    // And dedup survives into it: the old batch id is still known.
    let dup = ingest(&c, Some("batch-1"), vec![ev("/g", "s", t, "one")]).await;
    assert!(dup.duplicate);
    c.shutdown().await;
    stays.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_to_flush_and_compact_never_lose_or_duplicate_a_row() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("bucket");
    let a = replica(dir.path(), &objects, &pg.url(), "a").await;
    let b = replica(dir.path(), &objects, &pg.url(), "b").await;
    let t = now_ms();
    let mut want = Vec::new();
    let mut compacted = 0;
    let mut refused: Vec<String> = Vec::new();
    // Many small flushes of one window, written alternately through both replicas, with both
    // replicas asking for flushes and compactions all the while.
    for round in 0..6 {
        for (k, s) in [&a, &b].iter().enumerate() {
            let m = format!("r{round}-{k}");
            ingest(s, Some(&m), vec![ev("/race", "s", t, &m)]).await;
            want.push(m);
        }
        let (fa, fb, ca, cb) = tokio::join!(a.flush(), b.flush(), a.compact(), b.compact());
        for r in [fa.map(|_| 0), fb.map(|_| 0), ca, cb] {
            // A replica that lost the lease or is catching up says so; nothing else fails.
            match r {
                Ok(n) => compacted += n,
                Err(e) => {
                    assert!(
                        matches!(
                            e,
                            kinsight_store::StoreError::Unavailable(_)
                                | kinsight_store::StoreError::AppendedNotApplied(_)
                        ),
                        "{e}"
                    );
                    refused.push(e.to_string());
                }
            }
        }
    }
    want.sort();
    let leader = leader_of(&[&a, &b]).await;
    leader.flush().await.unwrap();
    let before = leader.stats().segments;
    compacted += leader.compact().await.unwrap();
    assert!(
        compacted > 0,
        "the race never compacted anything ({before} segments; refused: {refused:?})"
    );
    for s in [&a, &b] {
        eventually("every row once on both", || async {
            messages(s, "/race").await == want && s.stats().unflushed_rows == 0
        })
        .await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_checkpoint_was_refused_stays_readable_when_an_older_checkpoint_is_adopted() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("bucket");
    // Leases of a minute: nothing renews or moves them during the test but the test itself.
    let ttl = Duration::from_secs(60);
    let a = replica_with_lease(dir.path(), &objects, &pg.url(), "a", ttl).await;
    let b = replica_with_lease(dir.path(), &objects, &pg.url(), "b", ttl).await;
    let leader = leader_of(&[&a, &b]).await.clone();
    let other = if leader.replica().unwrap().0 == "a" {
        "b"
    } else {
        "a"
    };
    let t = now_ms();
    ingest(&leader, Some("x"), vec![ev("/h1", "s", t, "x")]).await;
    let first = leader.flush().await.unwrap();
    let cat = Catalogue::connect(&pg.url()).await.unwrap();
    let published = cat.checkpoints(1).await.unwrap().remove(0);
    assert_eq!(published.seq, first.checkpoint_seq);

    // The lease moves to the other replica behind the leader's back ...
    ingest(&leader, Some("y"), vec![ev("/h1", "s", t, "y")]).await;
    cat.release_lease("maintenance", &leader.replica().unwrap().0)
        .await
        .unwrap();
    let stolen = cat
        .acquire_lease("maintenance", other, ttl)
        .await
        .unwrap()
        .unwrap();
    // ... so the leader's next flush writes its segments but cannot publish them,
    let refused = leader.flush().await.unwrap_err();
    assert!(refused.to_string().contains("lease"), "{refused}");
    // and the new holder publishes a checkpoint older than that flush.
    cat.publish_checkpoint(
        published.seq,
        &published.object_key,
        "maintenance",
        other,
        stolen.epoch,
        2,
    )
    .await
    .unwrap()
    .unwrap();
    let segments_before = leader.stats().segments;
    assert_eq!(
        segments_before, 2,
        "the refused flush's segment is in its manifest"
    );
    // Adopting it takes that segment out of the manifest; the rows go back to memory.
    eventually("the old leader to adopt the older checkpoint", || async {
        let s = leader.stats();
        s.segments == 1 && s.unflushed_rows == 1
    })
    .await;
    // The rows of the refused flush are still there, once.
    assert_eq!(messages(&leader, "/h1").await, ["x", "y"]);
    a.shutdown().await;
    b.shutdown().await;
}
