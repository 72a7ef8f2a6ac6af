//! Shipping to the kinsight server (issue [3/8]): a [`Sink`] backed by a bounded on-disk spool.
//!
//! Every batch is first written to the spool under `state_dir/spool` (one file per batch,
//! fsynced, with a batch id) and then POSTed, zstd-compressed, to `/v1/ingest`; it is deleted
//! only when the server acknowledged it. Retries use exponential backoff with jitter, and the
//! batch id makes a retried batch count once at the server, also after a kill -9 of the agent
//! (the spool is replayed at start).
//!
//! Several servers (`kinsight.server_url` as a list, replicas of a scale-out server): the
//! sender sticks with one while it answers and moves on to the next one in the list when it
//! does not — a connection error, a timeout, a 5xx, 408 or 429 — retrying the same spooled
//! batch, with the same batch id, there at once; the servers deduplicate batch ids across
//! replicas. Only when every server failed in turn does it back off. Agents start at different
//! servers (an index derived from the host name), so that they do not all load the first one.
//!
//! Two kinds of batches, two promises:
//! * [`Sink::send`] (log lines, which can be read again from their files) resolves only once
//!   the *server* acknowledged the batch, so log checkpoints advance on that acknowledgement;
//!   while the server is away the caller waits — tailing pauses — and nothing is dropped.
//! * [`Sink::offer`] (metric samples, which cannot be taken again) resolves once the batch is
//!   durable in the spool; when the spool is full the oldest sample batches are dropped and
//!   counted, so a long outage costs old samples first and never blocks collection.
//!
//! Format of a spool file (`<seq:020>.batch`): magic `KSPL`, version u8 (1), kind u8
//! (0 = log, 1 = sample), batch id length u16 LE + id bytes, payload length u32 LE, CRC-32 of
//! the payload u32 LE, payload = zstd(NDJSON of LogEvents). See docs/formats/spool.md.

use crate::sink::{Sink, SinkError, encode_lines};
use futures::future::BoxFuture;
use kinsight_model::LogEvent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

const MAGIC: &[u8; 4] = b"KSPL";
const VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Log = 0,
    Sample = 1,
}

/// Counters of the shipper, for logs and `/metrics`.
#[derive(Debug, Default)]
pub struct ShipperStats {
    pub batches_sent: AtomicU64,
    pub events_sent: AtomicU64,
    pub events_rejected: AtomicU64,
    pub sample_batches_dropped: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Base URLs of the servers, without a trailing `/`; at least one. Several = failover.
    pub server_urls: Vec<String>,
    /// Index of the server tried first (taken modulo the number of servers). [`ShipperConfig::new`]
    /// and [`ShipperConfig::with_servers`] derive it from the host name, so that a fleet of
    /// agents spreads over the servers.
    pub first_server: usize,
    pub token: Option<String>,
    pub spool_dir: PathBuf,
    pub max_bytes: u64,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    /// First retry delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// PEM CA certificates the server's HTTPS certificate must chain to
    /// (`kinsight.server_ca_file`); `None` = the built-in and system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept whatever certificate the server presents. Only for `kinsight up`'s in-process
    /// agent, which connects over loopback to the socket its own process holds: nobody else
    /// can be at the other end, and the certificate may be for a public name.
    pub accept_any_certificate: bool,
}

impl ShipperConfig {
    /// One server.
    pub fn new(server_url: &str, token: Option<String>, spool_dir: PathBuf) -> ShipperConfig {
        Self::with_servers(&[server_url], token, spool_dir)
    }

    /// Servers to fail over between (`kinsight.server_url`, one URL or several). Panics on an
    /// empty list: the config refuses one.
    pub fn with_servers(
        server_urls: &[impl AsRef<str>],
        token: Option<String>,
        spool_dir: PathBuf,
    ) -> ShipperConfig {
        assert!(!server_urls.is_empty(), "a shipper needs a server URL");
        ShipperConfig {
            server_urls: server_urls
                .iter()
                .map(|u| u.as_ref().trim_end_matches('/').to_string())
                .collect(),
            first_server: spread(&hostname_tag(), server_urls.len()),
            token,
            spool_dir,
            max_bytes: 1 << 30,
            batch_max_events: kinsight_model::limits::MAX_BATCH_EVENTS,
            batch_max_bytes: kinsight_model::limits::MAX_BATCH_BYTES,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            ca_file: None,
            accept_any_certificate: false,
        }
    }
}

struct Entry {
    kind: Kind,
    size: u64,
    path: PathBuf,
}

struct Spool {
    entries: BTreeMap<u64, Entry>,
    bytes: u64,
    next_seq: u64,
    /// Highest sequence number acknowledged by the server (or given up on).
    done: BTreeMap<u64, Result<(), String>>,
}

/// Marks the sink stopped and wakes its waiters when the sending task ends, however it ends.
struct StoppedOnDrop(Arc<ServerSink>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.progress.send_modify(|v| *v += 1);
    }
}

/// The server sink.
pub struct ServerSink {
    cfg: ShipperConfig,
    spool: Mutex<Spool>,
    /// Wakes the sender when a batch arrives.
    work: Notify,
    /// Bumped whenever a batch leaves the spool (acknowledged, rejected or dropped), and once
    /// when the sending task stops.
    progress: watch::Sender<u64>,
    /// The sending task has stopped (shutdown): nothing will be acknowledged any more, so
    /// waiting callers are answered `Closed` instead of waiting forever. Their batches stay
    /// in the spool and are sent at the next start.
    stopped: std::sync::atomic::AtomicBool,
    pub stats: Arc<ShipperStats>,
    http: reqwest::Client,
    /// Index in `cfg.server_urls` of the server batches go to now.
    current: AtomicUsize,
}

/// What one POST of a spooled batch came to.
enum Attempt {
    /// Stored (`Ok`) or refused for good (`Err`, a 4xx that retrying cannot fix): the batch
    /// leaves the spool.
    Done(Result<(), String>),
    /// This server cannot take it now (connection error, timeout, 5xx, 408, 429): the next
    /// server is tried.
    ServerFailed(String),
    /// Try again later, at the same server (401/403: a token problem; the spool file could
    /// not be read).
    Retry(String),
}

impl ServerSink {
    /// Opens (and replays) the spool; call [`ServerSink::spawn`] to start sending.
    pub fn open(cfg: ShipperConfig) -> Result<Arc<ServerSink>, SinkError> {
        if cfg.server_urls.is_empty() {
            return Err(SinkError::Rejected(
                "no server to ship to: kinsight.server_url is empty".into(),
            ));
        }
        let io = |source| SinkError::Io {
            path: cfg.spool_dir.clone(),
            source,
        };
        kinsight_model::durable::create_dir_all(&cfg.spool_dir).map_err(|e| io(e.source))?;
        let mut entries = BTreeMap::new();
        let mut bytes = 0;
        for e in std::fs::read_dir(&cfg.spool_dir).map_err(io)?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            {
                match read_header(&e.path()) {
                    Ok((kind, _)) => {
                        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                        bytes += size;
                        entries.insert(
                            seq,
                            Entry {
                                kind,
                                size,
                                path: e.path(),
                            },
                        );
                    }
                    Err(msg) => {
                        // A file cut by a crash before its fsync was never acknowledged to anyone.
                        tracing::warn!(
                            "spool file {} is damaged ({msg}); removing it",
                            e.path().display()
                        );
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if !entries.is_empty() {
            tracing::info!(
                "spool holds {} unsent batches ({} bytes) from before; sending them first",
                entries.len(),
                bytes
            );
        }
        let next_seq = entries.keys().next_back().map_or(1, |s| s + 1);
        let http = crate::server_tls::client_builder(cfg.ca_file.as_deref())
            .map_err(|e| SinkError::Rejected(format!("kinsight.server_ca_file: {e}")))?
            .danger_accept_invalid_certs(cfg.accept_any_certificate)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| {
                SinkError::Rejected(format!(
                    "cannot build HTTP client: {}",
                    crate::server_tls::describe(&e)
                ))
            })?;
        Ok(Arc::new(ServerSink {
            spool: Mutex::new(Spool {
                entries,
                bytes,
                next_seq,
                done: BTreeMap::new(),
            }),
            work: Notify::new(),
            progress: watch::channel(0).0,
            stopped: std::sync::atomic::AtomicBool::new(false),
            stats: Arc::default(),
            http,
            current: AtomicUsize::new(cfg.first_server % cfg.server_urls.len()),
            cfg,
        }))
    }

    /// Starts the sending task; it runs until `shutdown`.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            // Also when the loop panics: waiters must not wait for a task that is gone.
            let _stopped = StoppedOnDrop(me.clone());
            me.send_loop(shutdown).await;
        })
    }

    /// Waits until the spool is empty or `timeout` passes; returns whether it emptied. The
    /// sending task must be running.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.progress.subscribe();
        loop {
            if self.lock().entries.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Bytes and batches waiting in the spool.
    pub fn pending(&self) -> (usize, u64) {
        let s = self.lock();
        (s.entries.len(), s.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Splits events into batches within the configured limits.
    fn split<'a>(&self, events: &'a [LogEvent]) -> Vec<&'a [LogEvent]> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (i, e) in events.iter().enumerate() {
            let size = e.billed_size_bytes();
            if i > start
                && (i - start >= self.cfg.batch_max_events
                    || bytes + size > self.cfg.batch_max_bytes)
            {
                out.push(&events[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        if start < events.len() {
            out.push(&events[start..]);
        }
        out
    }

    /// Writes one batch to the spool (temp file, fsync, rename, fsync dir); returns its seq.
    async fn append(&self, kind: Kind, events: &[LogEvent]) -> Result<u64, SinkError> {
        let payload =
            zstd::encode_all(&encode_lines(events)[..], 3).map_err(|source| SinkError::Io {
                path: self.cfg.spool_dir.clone(),
                source,
            })?;
        let size = payload.len() as u64 + 64;
        // Make room: samples push out the oldest samples; logs wait for the sender.
        loop {
            let mut rx = self.progress.subscribe();
            {
                let mut s = self.lock();
                while s.bytes + size > self.cfg.max_bytes && kind == Kind::Sample {
                    let Some((&seq, _)) = s.entries.iter().find(|(_, e)| e.kind == Kind::Sample)
                    else {
                        break;
                    };
                    let e = s.entries.remove(&seq).expect("present");
                    s.bytes -= e.size;
                    let _ = std::fs::remove_file(&e.path);
                    self.stats
                        .sample_batches_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "shipping spool is full ({} bytes): dropped the oldest batch of metric samples",
                        self.cfg.max_bytes
                    );
                }
                if s.bytes + size <= self.cfg.max_bytes || s.entries.is_empty() {
                    break;
                }
            }
            // Backpressure: wait until the sender frees space (it never will once stopped).
            if self.stopped.load(Ordering::SeqCst) {
                return Err(SinkError::Closed);
            }
            let _ = rx.changed().await;
        }
        let seq = {
            let mut s = self.lock();
            let seq = s.next_seq;
            s.next_seq += 1;
            seq
        };
        let batch_id = format!("{}-{seq}-{}", hostname_tag(), uuid::Uuid::new_v4().simple());
        let dir = self.cfg.spool_dir.clone();
        let path = dir.join(format!("{seq:020}.batch"));
        let p2 = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = Vec::with_capacity(16 + batch_id.len() + payload.len());
            file.extend_from_slice(MAGIC);
            file.push(VERSION);
            file.push(kind as u8);
            file.extend_from_slice(&(batch_id.len() as u16).to_le_bytes());
            file.extend_from_slice(batch_id.as_bytes());
            file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            file.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            file.extend_from_slice(&payload);
            // Temporary file, fsync, rename, fsync of the directory (issue 15, item 11).
            kinsight_model::durable::write_atomic(&p2, &file).map_err(|e| e.source)
        })
        .await
        .map_err(|_| SinkError::Closed)?
        .map_err(|source| SinkError::Io {
            path: path.clone(),
            source,
        })?;
        {
            let mut s = self.lock();
            s.bytes += size;
            s.entries.insert(seq, Entry { kind, size, path });
        }
        self.work.notify_one();
        Ok(seq)
    }

    async fn wait_acked(&self, seq: u64) -> Result<(), SinkError> {
        let mut rx = self.progress.subscribe();
        loop {
            {
                let mut s = self.lock();
                if let Some(r) = s.done.remove(&seq) {
                    return r.map_err(SinkError::Rejected);
                }
                if !s.entries.contains_key(&seq) {
                    return Ok(());
                }
            }
            if self.stopped.load(Ordering::SeqCst) {
                return Err(SinkError::Closed);
            }
            if rx.changed().await.is_err() {
                return Err(SinkError::Closed);
            }
        }
    }

    async fn send_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let servers = self.cfg.server_urls.len();
        let mut backoff = self.cfg.min_backoff;
        // Servers that failed one after the other since the last success or back-off: when
        // all of them did, the sender backs off before the next round.
        let mut failed_in_a_row = 0;
        // A server failed since the last success: the next success is logged.
        let mut failing = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next = self
                .lock()
                .entries
                .iter()
                .next()
                .map(|(s, e)| (*s, e.path.clone()));
            let Some((seq, path)) = next else {
                tokio::select! {
                    _ = self.work.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            };
            let i = self.current.load(Ordering::Relaxed);
            let url = &self.cfg.server_urls[i];
            let e = match self.post(url, &path).await {
                Attempt::Done(result) => {
                    backoff = self.cfg.min_backoff;
                    failed_in_a_row = 0;
                    if std::mem::take(&mut failing) {
                        tracing::info!("shipping to {url} works");
                    }
                    let mut s = self.lock();
                    if let Some(e) = s.entries.remove(&seq) {
                        s.bytes -= e.size;
                        let _ = std::fs::remove_file(&e.path);
                        if e.kind == Kind::Log {
                            s.done.insert(seq, result);
                        }
                    }
                    drop(s);
                    self.progress.send_modify(|v| *v += 1);
                    continue;
                }
                Attempt::ServerFailed(e) => {
                    failed_in_a_row += 1;
                    let next = (i + 1) % servers;
                    self.current.store(next, Ordering::Relaxed);
                    if failed_in_a_row < servers {
                        // Another server has not been tried yet: the same batch goes there now.
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        failing = true;
                        tracing::warn!(
                            "shipping to {url} failed: {e}; trying {} instead",
                            self.cfg.server_urls[next]
                        );
                        continue;
                    }
                    e
                }
                Attempt::Retry(e) => e,
            };
            failed_in_a_row = 0;
            failing = true;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            // Full jitter: a random delay up to the current backoff, so that many agents
            // coming back after an outage do not hit the server in lockstep.
            let delay = backoff.mul_f64(rand::random::<f64>().max(0.1));
            let next = &self.cfg.server_urls[self.current.load(Ordering::Relaxed)];
            if servers == 1 {
                tracing::warn!(
                    "shipping to {url} failed: {e}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
            } else {
                tracing::warn!(
                    "shipping to {url} failed: {e}; none of the {servers} servers took the batch, retrying at {next} in {:.1} s",
                    delay.as_secs_f64()
                );
            }
            backoff = (backoff * 2).min(self.cfg.max_backoff);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// POSTs one spooled batch to the server at `url`.
    async fn post(&self, url: &str, path: &Path) -> Attempt {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => return Attempt::Retry(format!("cannot read {}: {e}", path.display())),
        };
        let (batch_id, payload, events) = match parse_file(&data) {
            Ok(p) => p,
            Err(msg) => {
                return Attempt::Done(Err(format!(
                    "spool file {} is damaged: {msg}",
                    path.display()
                )));
            }
        };
        let mut req = self
            .http
            .post(format!("{url}/v1/ingest"))
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "zstd")
            .header("x-kinsight-batch-id", batch_id)
            .body(payload.to_vec());
        if let Some(t) = &self.cfg.token {
            req = req.bearer_auth(t);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::ServerFailed(crate::server_tls::describe(&e)),
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let rejected = v["rejectedCount"].as_u64().unwrap_or(0);
            let accepted = v["accepted"].as_u64().unwrap_or(events);
            self.stats.batches_sent.fetch_add(1, Ordering::Relaxed);
            self.stats
                .events_sent
                .fetch_add(accepted, Ordering::Relaxed);
            if rejected > 0 && v["duplicate"] != true {
                self.stats
                    .events_rejected
                    .fetch_add(rejected, Ordering::Relaxed);
                tracing::warn!(
                    "server {url} rejected {rejected} of {events} events: {}",
                    truncate(&v["rejected"].to_string(), 300)
                );
            }
            return Attempt::Done(Ok(()));
        }
        let code = status.as_u16();
        if matches!(code, 408 | 429) || status.is_server_error() {
            return Attempt::ServerFailed(format!("HTTP {code}: {}", truncate(&body, 300)));
        }
        if matches!(code, 401 | 403) {
            // A wrong or missing token is an operator error: keep the data and keep trying.
            return Attempt::Retry(format!(
                "HTTP {code} (check KINSIGHT_TOKEN): {}",
                truncate(&body, 300)
            ));
        }
        self.stats
            .events_rejected
            .fetch_add(events, Ordering::Relaxed);
        tracing::error!(
            "server {url} refused a batch of {events} events for good, HTTP {code}: {}",
            truncate(&body, 500)
        );
        Attempt::Done(Err(format!(
            "server {url} refused the batch: HTTP {code}: {}",
            truncate(&body, 300)
        )))
    }
}

impl Sink for ServerSink {
    fn send<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut seqs = Vec::new();
            for chunk in self.split(events) {
                seqs.push(self.append(Kind::Log, chunk).await?);
            }
            for seq in seqs {
                self.wait_acked(seq).await?;
            }
            Ok(())
        })
    }

    fn offer<'a>(&'a self, events: &'a [LogEvent]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            for chunk in self.split(events) {
                self.append(Kind::Sample, chunk).await?;
            }
            Ok(())
        })
    }
}

fn read_header(path: &Path) -> Result<(Kind, String), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let (id, _, _) = parse_file(&data)?;
    let kind = if data[5] == 1 {
        Kind::Sample
    } else {
        Kind::Log
    };
    Ok((kind, id.to_string()))
}

/// Returns (batch id, zstd payload, number of events).
fn parse_file(data: &[u8]) -> Result<(&str, &[u8], u64), String> {
    if data.len() < 16 || &data[..4] != MAGIC {
        return Err("not a spool file".into());
    }
    if data[4] != VERSION {
        return Err(format!("unknown spool version {}", data[4]));
    }
    let id_len = u16::from_le_bytes([data[6], data[7]]) as usize;
    let rest = &data[8..];
    if rest.len() < id_len + 8 {
        return Err("truncated header".into());
    }
    let id =
        std::str::from_utf8(&rest[..id_len]).map_err(|_| "batch id is not UTF-8".to_string())?;
    let len = u32::from_le_bytes(rest[id_len..id_len + 4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[id_len + 4..id_len + 8].try_into().expect("4 bytes"));
    let payload = &rest[id_len + 8..];
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err("payload checksum mismatch".into());
    }
    let lines = zstd::decode_all(payload).map_err(|e| format!("payload: {e}"))?;
    let events = lines.iter().filter(|b| **b == b'\n').count() as u64;
    Ok((id, payload, events))
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The server an agent on `host` starts at, of `servers`: stable for a host, spread over a
/// fleet.
fn spread(host: &str, servers: usize) -> usize {
    crc32fast::hash(host.as_bytes()) as usize % servers.max(1)
}

fn hostname_tag() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(40)
                .collect()
        })
        .unwrap_or_else(|_| "agent".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_start_at_servers_spread_by_host_name() {
        let mut per_server = [0; 3];
        for i in 0..300 {
            let host = format!("kinsight-agent-{i}");
            let first = spread(&host, 3);
            assert_eq!(first, spread(&host, 3), "stable for a host");
            per_server[first] += 1;
        }
        assert!(per_server.iter().all(|n| *n >= 50), "{per_server:?}");
        assert_eq!(spread("node-a", 1), 0);
        let c = ShipperConfig::with_servers(&["http://a/", "http://b"], None, "/tmp/x".into());
        assert_eq!(c.server_urls, vec!["http://a", "http://b"]);
        assert!(c.first_server < 2);
        assert_eq!(
            ShipperConfig::new("http://a//", None, "/x".into()).server_urls,
            vec!["http://a"]
        );
    }
}
