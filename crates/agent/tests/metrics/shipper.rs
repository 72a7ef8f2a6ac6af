//! The shipper's promises, against a small ingest endpoint whose answers the test controls
//! (outage, 503, permanent 400): log batches resolve only on the server's acknowledgement,
//! samples once spooled; a full spool drops the oldest samples and makes logs wait; the spool
//! survives a restart and replays with the same batch ids. The end-to-end path against the
//! real `kinsight server` is tested in the CLI tests.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kinsight_agent::shipper::{ServerSink, ShipperConfig};
use kinsight_agent::sink::Sink;
use kinsight_model::LogEvent;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Received {
    /// (batch id, events)
    batches: Vec<(String, Vec<LogEvent>)>,
    /// Answers to give, in order; empty = 200.
    script: Vec<u16>,
}

async fn ingest(
    State(r): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut r = r.lock().unwrap();
    if !r.script.is_empty() {
        let code = r.script.remove(0);
        if code != 200 {
            return (
                StatusCode::from_u16(code).unwrap(),
                format!("{{\"code\":\"x\",\"message\":\"scripted {code}\"}}"),
            );
        }
    }
    assert_eq!(headers["content-encoding"], "zstd");
    assert_eq!(headers["authorization"], "Bearer t0ken");
    let id = headers["x-kinsight-batch-id"].to_str().unwrap().to_string();
    let lines = zstd::decode_all(&body[..]).unwrap();
    let events: Vec<LogEvent> = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let n = events.len();
    if !r.batches.iter().any(|(b, _)| *b == id) {
        r.batches.push((id, events));
    }
    (
        StatusCode::OK,
        format!(
            "{{\"seq\":1,\"accepted\":{n},\"rejected\":[],\"rejectedCount\":0,\"duplicate\":false}}"
        ),
    )
}

async fn server(port: u16, r: Arc<Mutex<Received>>) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/v1/ingest", post(ingest))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn events(tag: &str, n: usize) -> Vec<LogEvent> {
    (0..n)
        .map(|i| {
            LogEvent::new(
                "/kinsight/c/application",
                "s",
                1_700_000_000_000 + i as i64,
                format!("{tag} {i} {}", "x".repeat(100)),
            )
        })
        .collect()
}

fn config(port: u16, dir: &std::path::Path) -> ShipperConfig {
    let mut c = ShipperConfig::new(
        &format!("http://127.0.0.1:{port}"),
        Some("t0ken".into()),
        dir.join("spool"),
    );
    c.min_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(200);
    c
}

#[tokio::test]
async fn logs_wait_for_the_server_and_samples_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(config(port, dir.path())).unwrap();
    sink.spawn(rx);
    // Server down: samples are accepted into the spool, logs wait.
    tokio::time::timeout(Duration::from_secs(2), sink.offer(&events("sample", 5)))
        .await
        .expect("offer does not wait for the server")
        .unwrap();
    let logs = events("log", 3);
    let pending = {
        let sink = sink.clone();
        let logs = logs.clone();
        tokio::spawn(async move { sink.send(&logs).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "send resolves only on the server's acknowledgement"
    );
    assert_eq!(sink.pending().0, 2);
    // The server comes up after 503s: everything arrives, in order, once.
    let rec = Arc::new(Mutex::new(Received {
        script: vec![503, 503],
        ..Default::default()
    }));
    let _srv = server(port, rec.clone()).await;
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let r = rec.lock().unwrap();
    assert_eq!(r.batches.len(), 2);
    assert_eq!(r.batches[0].1, events("sample", 5));
    assert_eq!(r.batches[1].1, logs);
    assert!(sink.stats.retries.load(Ordering::Relaxed) >= 2);
    assert_eq!(sink.pending(), (0, 0));
}

#[tokio::test]
async fn full_spool_drops_oldest_samples_and_holds_back_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = config(port, dir.path());
    c.max_bytes = 3 * 1024;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(c).unwrap();
    sink.spawn(rx);
    // Incompressible samples of ~1.5 KiB each: only one or two fit.
    let big = |tag: &str| {
        let mut x: u64 =
            0x9E37_79B9_7F4A_7C15 ^ tag.len() as u64 ^ (tag.as_bytes()[1] as u64) << 32;
        let noise: String = (0..1500)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        vec![LogEvent::new(
            "/kinsight/c/performance",
            "n",
            1,
            format!("{tag}{noise}"),
        )]
    };
    for i in 0..5 {
        sink.offer(&big(&format!("s{i}"))).await.unwrap();
    }
    assert!(
        sink.stats.sample_batches_dropped.load(Ordering::Relaxed) >= 3,
        "oldest samples dropped"
    );
    let (n, bytes) = sink.pending();
    assert!(n >= 1 && bytes <= 3 * 1024);
    let rec = Arc::new(Mutex::new(Received::default()));
    let _srv = server(port, rec.clone()).await;
    sink.send(&events("log", 2)).await.unwrap();
    let r = rec.lock().unwrap();
    let last_sample = r
        .batches
        .iter()
        .rev()
        .find(|(_, e)| e[0].message.starts_with('s'))
        .unwrap();
    assert!(
        last_sample.1[0].message.starts_with("s4"),
        "the newest sample survived"
    );
}

#[tokio::test]
async fn spool_survives_restart_with_the_same_batch_ids() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let files_before: Vec<String>;
    {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let sink = ServerSink::open(config(port, dir.path())).unwrap();
        sink.spawn(rx);
        sink.offer(&events("a", 2)).await.unwrap();
        sink.offer(&events("b", 2)).await.unwrap();
        tx.send(true).unwrap();
        files_before = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .count()
            .to_string()
            .lines()
            .map(str::to_string)
            .collect();
    }
    assert_eq!(files_before, vec!["2"], "two spooled batches on disk");
    // A crash mid-write leaves a temp file behind; it is ignored.
    std::fs::write(
        dir.path().join("spool/00000000000000000099.tmp"),
        b"partial",
    )
    .unwrap();
    let rec = Arc::new(Mutex::new(Received::default()));
    let _srv = server(port, rec.clone()).await;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(config(port, dir.path())).unwrap();
    assert_eq!(sink.pending().0, 2);
    sink.spawn(rx);
    sink.send(&events("c", 1)).await.unwrap();
    let r = rec.lock().unwrap();
    let tags: Vec<&str> = r
        .batches
        .iter()
        .map(|(_, e)| e[0].message.split(' ').next().unwrap())
        .collect();
    assert_eq!(tags, vec!["a", "b", "c"], "replayed first, in order");
}

#[tokio::test]
async fn permanent_rejection_is_an_error_not_a_retry_loop() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rec = Arc::new(Mutex::new(Received {
        script: vec![400],
        ..Default::default()
    }));
    let _srv = server(port, rec.clone()).await;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(config(port, dir.path())).unwrap();
    sink.spawn(rx);
    let err = sink.send(&events("bad", 1)).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 400"), "{err}");
    assert_eq!(sink.pending().0, 0);
    sink.send(&events("good", 1)).await.unwrap();
    assert_eq!(rec.lock().unwrap().batches.len(), 1);
}

#[tokio::test]
async fn large_collections_are_split_into_batches_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rec = Arc::new(Mutex::new(Received::default()));
    let _srv = server(port, rec.clone()).await;
    let mut c = config(port, dir.path());
    c.batch_max_events = 100;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(c).unwrap();
    sink.spawn(rx);
    sink.send(&events("e", 250)).await.unwrap();
    let r = rec.lock().unwrap();
    assert_eq!(
        r.batches.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
}

/// A log batch handed over while the server is down, then shutdown: the caller is answered
/// (not left waiting for an acknowledgement that can no longer come — `kinsight up` once hung
/// on SIGTERM this way) and the batch stays spooled for the next start.
#[tokio::test]
async fn shutdown_answers_a_caller_waiting_for_an_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens: every POST fails and is retried
    let (tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(config(port, dir.path())).unwrap();
    let sender = sink.spawn(rx);
    let s2 = sink.clone();
    let waiting = tokio::spawn(async move { s2.send(&events("last", 3)).await });
    // The batch reaches the spool, then its POST fails and the sender backs off.
    let t0 = std::time::Instant::now();
    while sink.pending().0 == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never spooled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(true).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("send() still waiting after shutdown")
        .unwrap();
    assert!(answer.is_err(), "not acknowledged, so not Ok: {answer:?}");
    sender.await.unwrap();
    assert_eq!(sink.pending().0, 1, "the batch stays spooled");
    // A send after shutdown is answered too.
    let later = tokio::time::timeout(Duration::from_secs(30), sink.send(&events("after", 1)))
        .await
        .expect("send() after shutdown waits forever");
    assert!(later.is_err());
}
