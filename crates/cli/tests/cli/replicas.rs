//! Replicated servers (issue 16) as real `kinsight server` processes sharing a real SeaweedFS
//! bucket and a real PostgreSQL catalogue (Debian's package, started by the test as the
//! `postgres` user): a replica killed with SIGKILL and its disk deleted mid-ingest loses no
//! acknowledged event, its writers fail over, and what one replica did is seen on the others.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinsight_catalogue::testing::PgServer;
use reqwest::Method;
use serde_json::json;

use crate::seaweed::Seaweed;
use crate::server::{Ledger, ServerProc, TOKEN, all_messages, api, batch, send};

fn replica(dir: &Path, name: &str, s3: &Seaweed, store: &str, catalogue: &str) -> ServerProc {
    let mut env = s3.env();
    env.push(("KINSIGHT_CATALOGUE", catalogue.to_string()));
    env.push(("KINSIGHT_REPLICA_ID", name.to_string()));
    ServerProc::start(&dir.join(name), &["--object-store", store], &env)
}

/// The (writer, batch) pairs stored, and whether any event is there twice.
async fn stored_batches(url: &str) -> (BTreeSet<(usize, usize)>, usize) {
    let events = all_messages(url, "/crash/application").await;
    let mut seen = BTreeSet::new();
    let mut twice = 0;
    for e in &events {
        let key = (
            e["w"].as_u64().unwrap() as usize,
            e["n"].as_u64().unwrap() as usize,
            e["i"].as_u64().unwrap(),
        );
        if !seen.insert(key) {
            twice += 1;
        }
    }
    (seen.into_iter().map(|(w, n, _)| (w, n)).collect(), twice)
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::get(format!("{url}/readyz")).await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_lose_nothing_acknowledged_when_one_is_killed_with_its_disk() {
    let Some(pg) = PgServer::start() else { return };
    let Some(s3) = Seaweed::start() else { return };
    let store = format!("s3://{}/ha", s3.bucket);
    let dir = tempfile::tempdir().unwrap();
    let r: Vec<ServerProc> = ["r0", "r1", "r2"]
        .iter()
        .map(|n| replica(dir.path(), n, &s3, &store, &pg.url()))
        .collect();
    for p in &r {
        wait_ready(&p.url).await;
    }

    // What one replica does is seen on the others: a group with retention, a token.
    let (st, _) = api(
        Method::POST,
        format!("{}/v1/groups", r[0].url),
        TOKEN,
        Some(json!({"name": "/made/on/r0", "retentionDays": 7})),
    )
    .await;
    assert!(st < 300, "{st}");
    let (st, made) = api(
        Method::POST,
        format!("{}/v1/tokens", r[1].url),
        TOKEN,
        Some(json!({"name": "ci", "scope": "read"})),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let read_token = made["token"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (g, _) = api(
            Method::GET,
            format!("{}/v1/group?group=/made/on/r0", r[2].url),
            TOKEN,
            None,
        )
        .await;
        let (t, _) = api(
            Method::GET,
            format!("{}/v1/groups", r[2].url),
            &read_token,
            None,
        )
        .await;
        if g == 200 && t == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group {g} / token {t} not seen on r2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Writers on all three replicas.
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for (i, p) in r.iter().enumerate() {
        // Writers 0-1 on r0, 10-11 on r1, 20-21 on r2 (ids stay distinct).
        for w in [i * 10, i * 10 + 1] {
            tasks.push(tokio::spawn(load_one(
                p.url.clone(),
                w,
                stop.clone(),
                ledger.clone(),
            )));
        }
    }
    // Until r0 has acknowledged a fair amount, then kill it and delete its disk.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger
        .lock()
        .unwrap()
        .acked
        .iter()
        .filter(|(w, _)| *w < 10)
        .count()
        < 20
    {
        assert!(Instant::now() < deadline, "r0 acknowledged too little");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut r = r.into_iter();
    let r0 = r.next().unwrap();
    let (r1, r2) = (r.next().unwrap(), r.next().unwrap());
    r0.kill9();
    std::fs::remove_dir_all(dir.path().join("r0")).unwrap();
    // r0's writers fail over to r1 and resend what they were sending (same batch ids).
    let unknown: Vec<(usize, usize)> = ledger.lock().unwrap().unknown.iter().copied().collect();
    for (w, n) in unknown {
        let v = send(&r1.url, &format!("w{w}-b{n}"), &batch(w, n, 200))
            .await
            .unwrap();
        assert_eq!(v["accepted"], 200, "{v}");
        ledger.lock().unwrap().acked.insert((w, n));
    }
    for w in [0, 1] {
        let next = ledger
            .lock()
            .unwrap()
            .acked
            .iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, n)| n + 1)
            .max()
            .unwrap_or(0);
        tasks.push(tokio::spawn(load_from(
            r1.url.clone(),
            w,
            next,
            stop.clone(),
            ledger.clone(),
        )));
    }
    // The failed-over writers get acknowledgements from r1 too.
    let before = ledger
        .lock()
        .unwrap()
        .acked
        .iter()
        .filter(|(w, _)| *w < 10)
        .count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger
        .lock()
        .unwrap()
        .acked
        .iter()
        .filter(|(w, _)| *w < 10)
        .count()
        < before + 10
    {
        assert!(
            Instant::now() < deadline,
            "failed-over writers made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = ledger.lock().unwrap().acked.clone();
    assert!(acked.len() > 40, "{}", acked.len());

    // Every acknowledged batch is on both survivors, once, within 2 s of the last ack.
    let since = Instant::now();
    for p in [&r1, &r2] {
        loop {
            let (stored, twice) = stored_batches(&p.url).await;
            assert_eq!(twice, 0, "an event stored twice on {}", p.url);
            if acked.is_subset(&stored) {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(2),
                "{} misses {:?}",
                p.url,
                acked.difference(&stored).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A flush on whichever replica leads, then a new replica with an empty disk answers the
    // same.
    for p in [&r1, &r2] {
        let (st, _) = api(
            Method::POST,
            format!("{}/v1/admin/flush", p.url),
            TOKEN,
            None,
        )
        .await;
        assert_eq!(st, 200);
    }
    let r3 = replica(dir.path(), "r3", &s3, &store, &pg.url());
    wait_ready(&r3.url).await;
    let (stored, twice) = stored_batches(&r3.url).await;
    assert_eq!(twice, 0);
    assert!(
        acked.is_subset(&stored),
        "the new replica misses acknowledged batches"
    );
    assert_eq!(stored, stored_batches(&r1.url).await.0);
    let (g, body) = api(
        Method::GET,
        format!("{}/v1/group?group=/made/on/r0", r3.url),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(g, 200, "{body}");
    assert_eq!(body["retentionDays"], 7, "{body}");
}

async fn load_one(url: String, w: usize, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    load_from(url, w, 0, stop, ledger).await
}

/// One writer from batch `first` until `stop` or its server fails (the batch then counts
/// as unknown).
async fn load_from(
    url: String,
    w: usize,
    first: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut n = first;
    while !stop.load(Ordering::SeqCst) {
        match send(&url, &format!("w{w}-b{n}"), &batch(w, n, 200)).await {
            Ok(v) => {
                assert_eq!(v["accepted"], 200, "{v}");
                ledger.lock().unwrap().acked.insert((w, n));
            }
            Err(_) => {
                ledger.lock().unwrap().unknown.insert((w, n));
                return;
            }
        }
        n += 1;
    }
}
