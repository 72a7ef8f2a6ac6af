//! The shipper's promises, against a small ingest endpoint whose answers the test controls
//! (outage, 503, permanent 400): log batches resolve only on the server's acknowledgement,
//! samples once spooled; a full spool drops the oldest samples and makes logs wait; the spool
//! survives a restart and replays with the same batch ids; with several servers it fails over
//! between them with the same batch ids. The end-to-end path against the real `kinsight server`
//! is tested in the CLI tests.

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
    /// The batch id of every request, whatever the answer.
    attempts: Vec<String>,
    /// Answer every request 503 (a replica that is up but cannot store).
    unavailable: bool,
}

async fn ingest(
    State(r): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut r = r.lock().unwrap();
    if let Some(id) = headers.get("x-kinsight-batch-id") {
        r.attempts.push(id.to_str().unwrap().to_string());
    }
    if r.unavailable {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"code\":\"x\",\"message\":\"unavailable\"}".into(),
        );
    }
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

/// A server that can be taken away: [`Stoppable::stop`] returns once its port and its
/// connections are closed.
struct Stoppable {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Stoppable {
    async fn start(port: u16, r: Arc<Mutex<Received>>) -> Stoppable {
        let app = Router::new()
            .route("/v1/ingest", post(ingest))
            .with_state(r);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        });
        Stoppable { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the test server did not stop")
            .unwrap();
    }
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

/// Two servers, the sender pinned to start at the first.
fn two_servers(first: u16, second: u16, dir: &std::path::Path) -> ShipperConfig {
    let mut c = ShipperConfig::with_servers(
        &[
            format!("http://127.0.0.1:{first}/"),
            format!("http://127.0.0.1:{second}"),
        ],
        Some("t0ken".into()),
        dir.join("spool"),
    );
    c.first_server = 0;
    c.min_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(200);
    c.batch_max_events = 2;
    c
}

fn ids(r: &Arc<Mutex<Received>>) -> Vec<String> {
    r.lock()
        .unwrap()
        .batches
        .iter()
        .map(|(id, _)| id.clone())
        .collect()
}

fn messages(r: &Arc<Mutex<Received>>) -> Vec<String> {
    r.lock()
        .unwrap()
        .batches
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| e.message.clone()))
        .collect()
}

fn all_messages(batches: &[&[LogEvent]]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b.iter().map(|e| e.message.clone()))
        .collect()
}

async fn send(sink: &Arc<ServerSink>, events: &[LogEvent]) {
    tokio::time::timeout(Duration::from_secs(30), sink.send(events))
        .await
        .expect("not acknowledged within 30 s")
        .unwrap();
}

/// How the first of two servers fails.
#[derive(Clone, Copy, PartialEq)]
enum FirstServer {
    /// Nothing listens on its port.
    RefusesConnections,
    /// It answers every request 503.
    Answers503,
}

/// A scale-out server behind a list of URLs (issue [2/7]): the first server fails, so the
/// batch goes to the second at once, with the same batch id, and the sender stays there; every
/// batch is acknowledged exactly once. When the second goes away and the first comes back,
/// shipping continues there.
async fn fails_over_and_back(first: FirstServer) {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let rec1 = Arc::new(Mutex::new(Received {
        unavailable: true,
        ..Default::default()
    }));
    let mut srv1 = None;
    if first == FirstServer::Answers503 {
        srv1 = Some(server(p1, rec1.clone()).await);
    }
    let rec2 = Arc::new(Mutex::new(Received::default()));
    let srv2 = Stoppable::start(p2, rec2.clone()).await;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(two_servers(p1, p2, dir.path())).unwrap();
    sink.spawn(rx);

    // Logs and samples, in several batches (two events each).
    let (a, s, b) = (events("a", 3), events("s", 4), events("b", 2));
    send(&sink, &a).await;
    sink.offer(&s).await.unwrap();
    send(&sink, &b).await;
    assert!(
        sink.drain(Duration::from_secs(30)).await,
        "spool not emptied"
    );

    let acked = ids(&rec2);
    assert_eq!(acked.len(), 5, "2 + 2 + 1 batches: {acked:?}");
    assert_eq!(
        rec2.lock().unwrap().attempts,
        acked,
        "each batch reached the second server once"
    );
    assert_eq!(messages(&rec2), all_messages(&[&a, &s, &b]));
    // The first batch was tried at the first server, then at the second with the same id;
    // after that the sender stayed with the second.
    assert_eq!(sink.stats.retries.load(Ordering::Relaxed), 1);
    if first == FirstServer::Answers503 {
        assert_eq!(rec1.lock().unwrap().attempts, vec![acked[0].clone()]);
    }
    assert!(rec1.lock().unwrap().batches.is_empty());

    // The second goes away, the first comes back.
    srv2.stop().await;
    let c = events("c", 3);
    let pending = {
        let (sink, c) = (sink.clone(), c.clone());
        tokio::spawn(async move { sink.send(&c).await })
    };
    match first {
        FirstServer::RefusesConnections => {
            *rec1.lock().unwrap() = Received::default();
            srv1 = Some(server(p1, rec1.clone()).await);
        }
        FirstServer::Answers503 => rec1.lock().unwrap().unavailable = false,
    }
    tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("not acknowledged within 30 s after the first server came back")
        .unwrap()
        .unwrap();
    let d = events("d", 2);
    send(&sink, &d).await;
    assert_eq!(messages(&rec1), all_messages(&[&c, &d]));
    let back = ids(&rec1);
    assert_eq!(back.len(), 3, "{back:?}");
    assert!(
        back.iter().all(|id| !acked.contains(id)),
        "batches acknowledged by the second were not sent again"
    );
    // The first server saw nothing but these (and, answering 503, the very first batch).
    let seen = rec1.lock().unwrap().attempts.clone();
    assert!(
        seen.iter().all(|id| back.contains(id) || *id == acked[0]),
        "{seen:?}"
    );
    assert_eq!(ids(&rec2), acked, "nothing more reached the second");
    assert_eq!(sink.pending(), (0, 0));
    drop(srv1);
}

#[tokio::test]
async fn fails_over_from_a_server_that_refuses_connections_and_back() {
    fails_over_and_back(FirstServer::RefusesConnections).await;
}

#[tokio::test]
async fn fails_over_from_a_server_that_answers_503_and_back() {
    fails_over_and_back(FirstServer::Answers503).await;
}

/// 4xx answers other than 408/429 say nothing about the server: the sender stays with it (a
/// 400 refuses the batch for good, a 401 is retried at the same server); a 429 moves on.
#[tokio::test]
async fn client_errors_are_not_failover_reasons_but_429_is() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let rec1 = Arc::new(Mutex::new(Received {
        script: vec![400, 401, 200, 429],
        ..Default::default()
    }));
    let rec2 = Arc::new(Mutex::new(Received::default()));
    let _srv1 = server(p1, rec1.clone()).await;
    let _srv2 = server(p2, rec2.clone()).await;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let sink = ServerSink::open(two_servers(p1, p2, dir.path())).unwrap();
    sink.spawn(rx);
    let err = sink.send(&events("bad", 1)).await.unwrap_err().to_string();
    assert!(
        err.contains("HTTP 400") && err.contains(&format!("http://127.0.0.1:{p1}")),
        "the error names the server: {err}"
    );
    // 401, then stored: both at the first server.
    send(&sink, &events("ok", 1)).await;
    assert_eq!(ids(&rec1).len(), 1);
    assert!(rec2.lock().unwrap().attempts.is_empty());
    // 429: the batch goes to the second, with the same id.
    send(&sink, &events("busy", 1)).await;
    let at_first = rec1.lock().unwrap().attempts.clone();
    assert_eq!(at_first.len(), 4, "{at_first:?}");
    assert_eq!(ids(&rec2), vec![at_first[3].clone()]);
}
