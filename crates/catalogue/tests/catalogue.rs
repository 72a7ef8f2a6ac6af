//! The catalogue against a real PostgreSQL (`kinsight_catalogue::testing::PgServer`).

use std::collections::BTreeSet;
use std::time::Duration;

use kinsight_catalogue::Catalogue;
use kinsight_catalogue::testing::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_gapless_sequence_numbers_in_commit_order() {
    let Some(pg) = PgServer::start() else { return };
    // Two "replicas" connecting at once both run the migrations: each applies once.
    let url = pg.url();
    let (a, b) = tokio::join!(Catalogue::connect(&url), Catalogue::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            c.append_log(&format!("log/{i}"), &format!("r{}", i % 2), 1 + i % 3, 10)
                .await
                .unwrap()
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.push(t.await.unwrap());
    }
    rows.sort_by_key(|r| r.first_seq);
    let mut next = 1;
    for r in &rows {
        assert_eq!(r.first_seq, next, "no gap, no overlap: {rows:?}");
        next = r.last_seq + 1;
    }
    // Paging through the log gives the same rows.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = a.log_after(after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.last_seq;
        seen.extend(page);
    }
    assert_eq!(seen, rows);
    assert_eq!(b.last_seq().await.unwrap(), next - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_moves_only_when_it_lapses_and_fences_its_old_holder() {
    let Some(pg) = PgServer::start() else { return };
    let c = Catalogue::connect(&pg.url()).await.unwrap();
    let ttl = Duration::from_millis(400);
    let a1 = c
        .acquire_lease("maintenance", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        c.acquire_lease("maintenance", "b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Renewal keeps the epoch.
    let a2 = c
        .acquire_lease("maintenance", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a1.epoch, a2.epoch);
    // Published under the lease, the checkpoint counts.
    let (row, _) = c
        .publish_checkpoint(5, "ck/5", "maintenance", "a", a2.epoch, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.seq, 5);
    // Let it lapse: b takes over with a new epoch; a's writes no longer count.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let b = loop {
        if let Some(l) = c.acquire_lease("maintenance", "b", ttl).await.unwrap() {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "lease never lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(b.epoch > a2.epoch);
    assert!(!c.holds_lease("maintenance", "a", a2.epoch).await.unwrap());
    assert!(
        c.publish_checkpoint(9, "ck/9", "maintenance", "a", a2.epoch, 3)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        c.truncate_log(9, "maintenance", "a", a2.epoch)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(c.checkpoints(10).await.unwrap().len(), 1);
    // Released, it is free at once, and the epoch still grows (never reused).
    c.release_lease("maintenance", "b").await.unwrap();
    let a3 = c
        .acquire_lease("maintenance", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(a3.epoch > b.epoch, "{a3:?} after {b:?}");
    // Even the same holder gets a new epoch after giving it up (a restarted process).
    c.release_lease("maintenance", "a").await.unwrap();
    let a4 = c
        .acquire_lease("maintenance", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(a4.epoch > a3.epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_keep_the_newest_and_the_log_continues_after_truncation() {
    let Some(pg) = PgServer::start() else { return };
    let c = Catalogue::connect(&pg.url()).await.unwrap();
    let l = c
        .acquire_lease("maintenance", "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let r = c.append_log("log/1", "a", 10, 100).await.unwrap();
    assert_eq!((r.first_seq, r.last_seq), (1, 10));
    let mut dropped = BTreeSet::new();
    for v in 0..5 {
        let (_, d) = c
            .publish_checkpoint(10, &format!("ck/{v}"), "maintenance", "a", l.epoch, 2)
            .await
            .unwrap()
            .unwrap();
        dropped.extend(d);
    }
    assert_eq!(dropped, ["ck/0", "ck/1", "ck/2"].map(String::from).into());
    let keys: BTreeSet<_> = c.checkpoint_keys().await.unwrap().into_iter().collect();
    assert_eq!(keys, ["ck/3", "ck/4"].map(String::from).into());
    let gone = c
        .truncate_log(10, "maintenance", "a", l.epoch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone, vec!["log/1".to_string()]);
    // An empty log continues after the checkpoint, never reusing a number.
    let r = c.append_log("log/2", "a", 1, 1).await.unwrap();
    assert_eq!(r.first_seq, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_replaced_with_optimistic_concurrency_and_replicas_register() {
    let Some(pg) = PgServer::start() else { return };
    let c = Catalogue::connect(&pg.url()).await.unwrap();
    assert_eq!(c.document("tokens").await.unwrap(), None);
    let v1 = c
        .replace_document("tokens", 0, b"one")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.replace_document("tokens", 0, b"other").await.unwrap(),
        None
    );
    let v2 = c
        .replace_document("tokens", v1, b"two")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.replace_document("tokens", v1, b"stale").await.unwrap(),
        None
    );
    assert_eq!(
        c.document("tokens").await.unwrap(),
        Some((v2, b"two".to_vec()))
    );

    c.heartbeat("r1", "10.0.0.1:8080", 1, 5).await.unwrap();
    c.heartbeat("r2", "10.0.0.2:8080", 2, 7).await.unwrap();
    let live = c.live_replicas(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        live.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    assert_eq!(live[1].applied_seq, 7);
    c.deregister("r1").await.unwrap();
    assert_eq!(
        c.live_replicas(Duration::from_secs(10))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_postgresql_is_survived_by_the_pool() {
    let Some(pg) = PgServer::start() else { return };
    let c = Catalogue::connect(&pg.url()).await.unwrap();
    c.append_log("log/1", "a", 1, 1).await.unwrap();
    pg.crash();
    assert!(c.append_log("log/2", "a", 1, 1).await.is_err());
    pg.resume();
    let r = c.append_log("log/3", "a", 1, 1).await.unwrap();
    assert_eq!(r.first_seq, 2, "the failed append took no number");
}

#[tokio::test]
async fn a_url_that_is_not_postgresql_is_refused_at_once_without_echoing_it() {
    for url in ["mysql://u:secret@h/db", "secret", ""] {
        let err = Catalogue::connect(url).await.unwrap_err();
        assert!(
            matches!(err, kinsight_catalogue::CatalogueError::Url(_)),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_appends_are_compare_and_set_fenced_and_folded_into_snapshots() {
    use kinsight_catalogue::{Fence, JournalAppend};
    let Some(pg) = PgServer::start() else { return };
    let c = Catalogue::connect(&pg.url()).await.unwrap();
    // Two writers that each read the last entry, then append after it: one of each pair of
    // racing appends is told it is behind, so no number is taken twice and none is skipped.
    let mut tasks = Vec::new();
    for w in 0..2u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while mine.len() < 10 {
                let last = c.journal_read("alarms", 0, 1000).await.unwrap().last_seq;
                match c.journal_append("alarms", last, &[w], None).await.unwrap() {
                    JournalAppend::Appended { seq, .. } => mine.push(seq),
                    JournalAppend::Behind => {}
                    JournalAppend::Fenced => panic!("no fence given"),
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=20).collect::<Vec<u64>>());
    let read = c.journal_read("alarms", 5, 1000).await.unwrap();
    assert_eq!(read.last_seq, 20);
    assert!(read.snapshot.is_none());
    assert_eq!(
        read.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (6..=20).collect::<Vec<_>>()
    );
    // A stale writer (expects entry 3 to be the last) is behind.
    assert_eq!(
        c.journal_append("alarms", 3, b"x", None).await.unwrap(),
        JournalAppend::Behind
    );

    // Fenced writes: only the lease's holder at its epoch.
    let ttl = Duration::from_secs(30);
    let lease = c
        .acquire_lease("maintenance", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    let fence = |holder, epoch| Fence {
        lease: "maintenance",
        holder,
        epoch,
    };
    assert_eq!(
        c.journal_append("alarms", 20, b"b", Some(fence("b", lease.epoch)))
            .await
            .unwrap(),
        JournalAppend::Fenced
    );
    assert!(matches!(
        c.journal_append("alarms", 20, b"a", Some(fence("a", lease.epoch)))
            .await
            .unwrap(),
        JournalAppend::Appended { seq: 21, .. }
    ));
    assert!(
        !c.journal_snapshot("alarms", 15, b"S15", fence("a", lease.epoch + 1))
            .await
            .unwrap(),
        "a snapshot under a stale epoch is refused"
    );
    assert!(
        c.journal_snapshot("alarms", 15, b"S15", fence("a", lease.epoch))
            .await
            .unwrap()
    );
    assert!(
        !c.journal_snapshot("alarms", 12, b"S12", fence("a", lease.epoch))
            .await
            .unwrap(),
        "a snapshot never goes back"
    );
    // A reader behind the snapshot gets it and the entries after; one past it only entries.
    let read = c.journal_read("alarms", 4, 1000).await.unwrap();
    assert_eq!(read.snapshot, Some((15, b"S15".to_vec())));
    assert_eq!(
        read.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (16..=21).collect::<Vec<_>>()
    );
    let read = c.journal_read("alarms", 17, 2).await.unwrap();
    assert!(read.snapshot.is_none());
    assert_eq!(
        read.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![18, 19]
    );
    assert_eq!(read.entries[1].payload.len(), 1);
    // Appends continue after the snapshot; another journal is independent.
    assert!(matches!(
        c.journal_append("alarms", 21, b"z", None).await.unwrap(),
        JournalAppend::Appended { seq: 22, .. }
    ));
    assert!(matches!(
        c.journal_append("other", 0, b"z", None).await.unwrap(),
        JournalAppend::Appended { seq: 1, .. }
    ));
}
