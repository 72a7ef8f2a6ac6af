//! `kinsight server` as a real process: SIGKILL under concurrent load loses no acknowledged
//! event and stores retried batches once; segments on a real S3-compatible server (SeaweedFS);
//! a full disk is a 507 the agent sees, never silent loss; no token → loopback only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::seaweed::Seaweed;

pub(crate) const TOKEN: &str = "crash-test-token-0123456789";

/// A running `kinsight server`, killed (SIGKILL) when dropped.
pub(crate) struct ServerProc {
    child: Child,
    pub(crate) url: String,
}

impl ServerProc {
    pub(crate) fn start(data_dir: &Path, extra: &[&str], env: &[(&str, String)]) -> ServerProc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinsight"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(extra)
            .env("KINSIGHT_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start kinsight server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server did not start; log: {}", log_of(data_dir)));
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; log: {}", log_of(data_dir)))
            .to_string();
        ServerProc { child, url }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill9(mut self) {
        // Child::kill sends SIGKILL on Unix: no shutdown path runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON API call with `token`: the status and the body (JSON, or its text as a string).
pub(crate) async fn api(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) fn log_of(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The events of batch `n` of writer `w`: each message names (w, n, i).
pub(crate) fn batch(w: usize, n: usize, events: usize) -> Vec<Value> {
    let ts = now_ms();
    (0..events)
        .map(|i| {
            json!({
                "logGroupName": "/crash/application",
                "logStreamName": format!("writer-{w}"),
                "timestamp": ts,
                "message": json!({"w": w, "n": n, "i": i, "log": "GET /api/v1/items 200 12ms", "kubernetes": {"pod_name": format!("api-{w}")}}).to_string(),
            })
        })
        .collect()
}

pub(crate) async fn send(url: &str, id: &str, events: &[Value]) -> Result<Value, String> {
    let body = zstd::encode_all(serde_json::to_vec(events).unwrap().as_slice(), 1).unwrap();
    let resp = http()
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .header("x-kinsight-batch-id", id)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("{status}: {v}"))
    }
}

/// Reads every event of a group, oldest first.
pub(crate) async fn all_messages(url: &str, group: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut req = http()
            .get(format!("{url}/v1/events"))
            .bearer_auth(TOKEN)
            .query(&[
                ("group", group),
                ("direction", "forward"),
                ("limit", "10000"),
            ]);
        if let Some(n) = &next {
            req = req.query(&[("next", n.as_str())]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return out;
        }
        next = page["nextForwardToken"].as_str().map(str::to_string);
        out.extend(
            events
                .iter()
                .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap()),
        );
    }
}

#[derive(Default)]
pub(crate) struct Ledger {
    /// Batches the server acknowledged (200 with every event accepted).
    pub(crate) acked: BTreeSet<(usize, usize)>,
    /// Batches whose request failed (connection reset by the kill): state unknown.
    pub(crate) unknown: BTreeSet<(usize, usize)>,
}

/// Runs `writers` concurrent writers against `url` until `stop`; records what was acked.
pub(crate) async fn load(
    url: String,
    writers: usize,
    first_batch: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            tokio::spawn(writer(
                url.clone(),
                w,
                first_batch,
                stop.clone(),
                ledger.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Writer `w`: batches of 200 events from `first` on until `stop`, or until a request fails
/// (the server is gone: that batch counts as unknown).
pub(crate) async fn writer(
    url: String,
    w: usize,
    first: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut n = first;
    while !stop.load(Ordering::SeqCst) {
        let events = batch(w, n, 200);
        match send(&url, &format!("w{w}-b{n}"), &events).await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_event_and_retries_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers = 6;
    // Flush every second so that kills also land during flushes and checkpoints.
    let flags = ["--flush-interval-secs", "1"];

    for (cycle, first_batch) in [(0, 0usize), (1, 100_000)] {
        let server = ServerProc::start(&data, &flags, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(load(
            server.url.clone(),
            writers,
            first_batch,
            stop.clone(),
            ledger.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(2500 + cycle * 700)).await;
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        load.await.unwrap();
    }

    let server = ServerProc::start(&data, &flags, &[]);
    let (acked, unknown) = {
        let l = ledger.lock().unwrap();
        (l.acked.clone(), l.unknown.clone())
    };
    assert!(
        acked.len() > 20,
        "the load ran: {} batches acked",
        acked.len()
    );
    // Retries of the batches whose answer was lost: stored at most once more.
    for &(w, n) in &unknown {
        send(&server.url, &format!("w{w}-b{n}"), &batch(w, n, 200))
            .await
            .expect("retry after restart");
    }
    // Retries of acknowledged batches are recognised as duplicates.
    for &(w, n) in acked.iter().step_by(7) {
        let v = send(&server.url, &format!("w{w}-b{n}"), &batch(w, n, 200))
            .await
            .unwrap();
        assert_eq!(v["duplicate"], true, "batch w{w}-b{n}: {v}");
    }

    let events = all_messages(&server.url, "/crash/application").await;
    let mut seen: BTreeMap<(usize, usize), BTreeSet<u64>> = BTreeMap::new();
    for e in &events {
        let key = (
            e["w"].as_u64().unwrap() as usize,
            e["n"].as_u64().unwrap() as usize,
        );
        let i = e["i"].as_u64().unwrap();
        assert!(
            seen.entry(key).or_default().insert(i),
            "event {key:?}/{i} stored twice"
        );
    }
    for key in acked.iter().chain(&unknown) {
        let got = seen.get(key).map_or(0, |s| s.len());
        assert_eq!(got, 200, "batch {key:?}: {got} of 200 events");
    }
    let expected: BTreeSet<_> = acked.union(&unknown).copied().collect();
    let stored: BTreeSet<_> = seen.keys().copied().collect();
    assert_eq!(stored, expected, "no event from a batch nobody sent");

    // Flushes ran under load, so the kills also hit checkpoints and segment writes.
    let stats: Value = http()
        .get(format!("{}/v1/admin/stats", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["segments"].as_u64().unwrap() > 0, "{stats}");
    eprintln!(
        "crash test: {} acked + {} unknown batches, {} events verified, {stats}",
        acked.len(),
        unknown.len(),
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_on_seaweedfs_survive_losing_the_local_disk() {
    let Some(s3) = Seaweed::start() else { return };
    let store = format!("s3://{}/e2e/cluster-1", s3.bucket);
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(
        &dir.path().join("a"),
        &["--object-store", &store],
        &s3.env(),
    );
    for n in 0..3 {
        send(&server.url, &format!("b{n}"), &batch(0, n, 50))
            .await
            .unwrap();
    }
    let flushed: Value = http()
        .post(format!("{}/v1/admin/flush", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(flushed["rows"], 150, "{flushed}");
    server.kill9();

    // A new machine: empty data dir (no WAL), same bucket and prefix.
    let server = ServerProc::start(
        &dir.path().join("b"),
        &["--object-store", &store],
        &s3.env(),
    );
    let events = all_messages(&server.url, "/crash/application").await;
    assert_eq!(events.len(), 150);
    // Batch ids persisted with the checkpoint: a retry is still a duplicate.
    let v = send(&server.url, "b1", &batch(0, 1, 50)).await.unwrap();
    assert_eq!(v["duplicate"], true);
    drop(server);

    // Wrong credentials: the server does not start, and says why.
    let mut env = s3.env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "wrong".into()));
    let out = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("c"))
        .args(["--listen", "127.0.0.1:0", "--object-store", &store])
        .env("KINSIGHT_TOKEN", TOKEN)
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("object store"), "{err}");
}

/// Mounts a tmpfs of `size` at `dir` (root only); `None` with a message otherwise.
fn mount_tmpfs(dir: &Path, size: &str) -> Option<TmpfsMount> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: cannot mount a tmpfs (needs root) to fill a disk");
        return None;
    }
    Some(TmpfsMount(dir.to_path_buf()))
}

struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_507_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(mount) = mount_tmpfs(&data, "2m") else {
        return;
    };
    let objects = format!("file://{}", dir.path().join("objects").display());
    let flags = ["--object-store", objects.as_str()];
    let server = ServerProc::start(&data, &flags, &[]);
    let mut acked = Vec::new();
    let mut full = None;
    for n in 0..200 {
        match send(&server.url, &format!("d{n}"), &batch(1, n, 100)).await {
            Ok(_) => acked.push(n),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let err = full.expect("a 2 MiB disk fills up");
    assert!(err.starts_with("507"), "{err}");
    assert!(err.contains("InsufficientStorage"), "{err}");
    assert!(!acked.is_empty());
    // Everything acknowledged is readable; the refused batch is not half there.
    let events = all_messages(&server.url, "/crash/application").await;
    assert_eq!(events.len(), acked.len() * 100);

    // Space comes back: the same batch goes through, and a restart keeps it all.
    mount.resize("64m");
    let n = acked.len();
    send(&server.url, &format!("d{n}"), &batch(1, n, 100))
        .await
        .expect("ingest after space is freed");
    server.kill9();
    let server = ServerProc::start(&data, &flags, &[]);
    let events = all_messages(&server.url, "/crash/application").await;
    assert_eq!(events.len(), (acked.len() + 1) * 100);
    drop(server);
}

#[test]
fn without_a_token_it_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("KINSIGHT_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("KINSIGHT_TOKEN") && err.contains("loopback"),
        "{err}"
    );
    let started = Instant::now();
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Whoever started `kinsight up` may stop reading its stdout (a script that read the URL, a
/// closed terminal): writing the start-up lines then fails with EPIPE, which must not take the
/// server down. Here the pipe is closed before the server writes anything.
#[test]
fn up_keeps_serving_when_its_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["up", "--no-agent", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("KINSIGHT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the read end is gone before the banner is written
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = rt.block_on(async {
        loop {
            let ok = http()
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok || Instant::now() > deadline {
                return ok;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(healthy, "kinsight up never answered /healthz");
    // Still alive a moment later (the banner has been written, and failed, by now).
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "kinsight up exited after its stdout was closed"
    );
    let _ = child.kill();
    let _ = child.wait();
}
