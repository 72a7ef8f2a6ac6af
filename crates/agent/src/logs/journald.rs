//! Dataplane logs from journald (reference §3.1): the kubelet, container runtime and
//! kube-proxy units, read with `journalctl -o json --follow` from the host's journal directory.
//! On hosts that keep no syslog files (systemd-only distributions such as Amazon Linux 2023 or
//! Bottlerocket), the host group comes from the journal too, routed as Fluent Bit's host inputs
//! do: kernel messages (`_TRANSPORT=kernel`) → `dmesg`, `SYSLOG_FACILITY=10` → `secure`, other
//! entries of priority 0–6 outside facilities 2, 9 and 10 → `messages`.
//! The cursor of the last acknowledged entry is checkpointed (atomically, under `state_dir`),
//! so a restart continues after it with nothing lost.
//!
//! Reading journal files directly would avoid the child process but means re-implementing the
//! journal format; `journalctl` is on every systemd host and in the agent image.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kinsight_model::LogEvent;
use kinsight_model::limits::EVENT_OVERHEAD_BYTES;
use serde_json::Value;

use super::pipeline::Batch;
use super::record::fields_record;
use super::stats::LogStats;

/// Units whose logs are dataplane logs.
pub const DATAPLANE_UNITS: &[&str] = &[
    "kubelet.service",
    "containerd.service",
    "docker.service",
    "crio.service",
    "kube-proxy.service",
    "kubeproxy.service",
];

/// The cursor file's name inside the logs state directory.
pub const CURSOR_FILE: &str = "journald-cursor.json";

#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// Directory of `*.journal` files (e.g. `<host_root>/var/log/journal`).
    pub dir: PathBuf,
    pub units: Vec<String>,
    pub state_dir: PathBuf,
    pub node_name: String,
    pub group: String,
    pub read_from_head: bool,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    pub linger: Duration,
    /// `journalctl` to run (tests may point elsewhere).
    pub journalctl: PathBuf,
    /// Also route host entries (kernel, syslog, auth) to this group: set when the host keeps
    /// no syslog files of its own.
    pub host_group: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorFile {
    version: u32,
    cursor: String,
}

/// The last acknowledged cursor, if any.
pub fn load_cursor(state_dir: &Path) -> Option<String> {
    let bytes = std::fs::read(state_dir.join(CURSOR_FILE)).ok()?;
    match serde_json::from_slice::<CursorFile>(&bytes) {
        Ok(c) if c.version == 1 => Some(c.cursor),
        _ => {
            tracing::error!(path = %state_dir.join(CURSOR_FILE).display(), "journald cursor file unreadable; reading the journal from its head");
            None
        }
    }
}

/// Persists the acknowledged cursor (temp file, fsync, rename).
pub fn store_cursor(state_dir: &Path, cursor: &str) -> Result<(), kinsight_tailer::TailerError> {
    let body = serde_json::to_vec(&CursorFile {
        version: 1,
        cursor: cursor.to_string(),
    })
    .expect("cursor serialises");
    kinsight_tailer::write_atomic(&state_dir.join(CURSOR_FILE), &body)
}

/// Whether `dir` (or a machine-id directory in it) holds `*.journal` files.
pub fn has_journal_files(dir: &Path) -> bool {
    let is_journal = |p: &Path| {
        p.extension()
            .is_some_and(|e| e == "journal" || e == "journal~")
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        is_journal(&p)
            || (p.is_dir()
                && std::fs::read_dir(&p)
                    .map(|sub| sub.flatten().any(|f| is_journal(&f.path())))
                    .unwrap_or(false))
    })
}

/// Finds the journal directory under `host_root`: the configured one, else `/var/log/journal`
/// (persistent), else `/run/log/journal` (volatile).
pub fn find_journal_dir(host_root: &Path, configured: Option<&Path>) -> Option<PathBuf> {
    let rel = |p: &Path| host_root.join(p.strip_prefix("/").unwrap_or(p));
    if let Some(c) = configured {
        return Some(rel(c));
    }
    ["var/log/journal", "run/log/journal"]
        .iter()
        .map(|p| host_root.join(p))
        .find(|p| p.is_dir())
}

/// Routes one entry: a dataplane unit's to the dataplane group, a host entry to the host group
/// when host logs come from the journal, anything else nowhere.
pub fn route_entry(v: &Value, s: &JournalSettings, scratch: &mut String) -> Option<LogEvent> {
    let unit = v.get("_SYSTEMD_UNIT").and_then(Value::as_str);
    if unit.is_some_and(|u| s.units.iter().any(|x| x == u)) {
        return entry_to_event(v, &s.node_name, &s.group, scratch).map(|(e, _)| e);
    }
    host_entry_to_event(v, &s.node_name, s.host_group.as_deref()?, scratch)
}

/// A host entry as Fluent Bit's host pipeline shapes it: `host`, `ident`, `pid`, `message`
/// (reference §3.2), stream `<node>.host.<dmesg|messages|secure>`.
pub fn host_entry_to_event(
    v: &Value,
    node: &str,
    group: &str,
    scratch: &mut String,
) -> Option<LogEvent> {
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u8>().ok())
    };
    let facility = num("SYSLOG_FACILITY");
    let priority = num("PRIORITY").unwrap_or(6);
    let stream = if v.get("_TRANSPORT").and_then(Value::as_str) == Some("kernel") {
        "dmesg"
    } else if facility == Some(10) {
        "secure"
    } else if priority <= 6 && !matches!(facility, Some(2 | 9 | 10)) {
        "messages"
    } else {
        return None;
    };
    let message = message_text(v.get("MESSAGE")?)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let host = v.get("_HOSTNAME").and_then(Value::as_str).unwrap_or(node);
    fields_record(
        scratch,
        &[
            ("host", host),
            ("ident", text("SYSLOG_IDENTIFIER")),
            ("pid", text("SYSLOG_PID")),
        ],
        "message",
        &message,
    );
    Some(LogEvent::new(
        group,
        format!("{node}.host.{stream}"),
        timestamp_ms(v),
        scratch.as_str(),
    ))
}

fn message_text(m: &Value) -> Option<String> {
    match m {
        Value::String(s) => Some(s.clone()),
        // Binary messages come as arrays of bytes: replaced, never dropped.
        Value::Array(a) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as u8)
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

fn timestamp_ms(v: &Value) -> i64 {
    v.get("__REALTIME_TIMESTAMP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<i64>().ok())
        .map(|us| us / 1000)
        .unwrap_or_else(crate::run::now_ms)
}

/// One journal entry turned into an event; `None` for entries without a message.
pub fn entry_to_event(
    v: &Value,
    node: &str,
    group: &str,
    scratch: &mut String,
) -> Option<(LogEvent, Option<String>)> {
    let cursor = v
        .get("__CURSOR")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = message_text(v.get("MESSAGE")?)?;
    let unit = v
        .get("_SYSTEMD_UNIT")
        .and_then(Value::as_str)
        .or_else(|| v.get("SYSLOG_IDENTIFIER").and_then(Value::as_str))
        .unwrap_or("unknown");
    let hostname = v.get("_HOSTNAME").and_then(Value::as_str).unwrap_or(node);
    let ts = timestamp_ms(v);
    // Fluent Bit's dataplane `modify`: hostname, systemd_unit, message (reference §3.2).
    fields_record(
        scratch,
        &[("hostname", hostname), ("systemd_unit", unit)],
        "message",
        &message,
    );
    let stream = format!("{node}-dataplane.systemd.{unit}");
    Some((LogEvent::new(group, stream, ts, scratch.as_str()), cursor))
}

fn spawn_journalctl(s: &JournalSettings, cursor: Option<&str>) -> std::io::Result<Child> {
    let mut cmd = Command::new(&s.journalctl);
    cmd.arg("--directory")
        .arg(&s.dir)
        .args(["-o", "json", "--follow", "--no-pager", "--all"]);
    match cursor {
        Some(c) => {
            cmd.arg(format!("--after-cursor={c}"));
        }
        None if s.read_from_head => {
            cmd.arg("--lines=all");
        }
        None => {
            cmd.arg("--lines=0");
        }
    }
    // With host logs from the journal every entry is read and routed here.
    if s.host_group.is_none() {
        for u in &s.units {
            cmd.arg(format!("_SYSTEMD_UNIT={u}"));
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

/// Runs the journal reader on its own threads until `stop`; batches go to `ship`.
pub fn spawn(
    s: JournalSettings,
    ship: tokio::sync::mpsc::Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<LogStats>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("kinsight-journal".into())
        .spawn(move || run(s, ship, stop, stats))
        .expect("thread starts")
}

fn run(
    s: JournalSettings,
    ship: tokio::sync::mpsc::Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<LogStats>,
) {
    let mut cursor = load_cursor(&s.state_dir);
    let mut scratch = String::new();
    let mut told_empty = false;
    while !stop.load(Ordering::Relaxed) {
        // An empty journal directory (journald not running, or not persisting here) makes
        // journalctl exit at once: wait quietly for files instead of restarting it in a loop.
        if !has_journal_files(&s.dir) {
            if !told_empty {
                tracing::info!(dir = %s.dir.display(), "no journal files yet; dataplane journal logs start when journald writes some");
                told_empty = true;
            }
            for _ in 0..100 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        let mut child = match spawn_journalctl(&s, cursor.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(journalctl = %s.journalctl.display(), error = %e, "cannot run journalctl; dataplane journal logs are off");
                return;
            }
        };
        let Some(out) = child.stdout.take() else {
            return;
        };
        // Lines are read on a helper thread so batches can be cut on time.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4096);
        let reader = std::thread::spawn(move || {
            let mut r = std::io::BufReader::with_capacity(1 << 16, out);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut batch = Batch::default();
        let mut started: Option<Instant> = None;
        let mut ended = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => match serde_json::from_slice::<Value>(&line) {
                    Ok(v) => {
                        stats.add_journal_entries(1);
                        if let Some(ev) = route_entry(&v, &s, &mut scratch) {
                            batch.bytes += ev.message.len() + EVENT_OVERHEAD_BYTES;
                            batch.lines += 1;
                            batch.events.push(ev);
                            started.get_or_insert_with(Instant::now);
                        }
                        if let Some(c) = v.get("__CURSOR").and_then(Value::as_str) {
                            batch.journal_cursor = Some(c.to_string());
                            cursor = Some(c.to_string());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "journalctl printed a line that is not JSON; skipped")
                    }
                },
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    ended = true;
                }
            }
            let full = batch.events.len() >= s.batch_max_events || batch.bytes >= s.batch_max_bytes;
            let due = started.is_some_and(|t| t.elapsed() >= s.linger);
            if (full || due || ended) && batch.journal_cursor.is_some() {
                stats.add_events(batch.events.len() as u64);
                if ship.blocking_send(std::mem::take(&mut batch)).is_err() {
                    ended = true;
                }
                started = None;
            }
            if ended {
                break;
            }
        }
        // We started this child; end it by its own handle.
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        if !stop.load(Ordering::Relaxed) {
            tracing::warn!("journalctl ended; restarting it in 5 s from the last cursor read");
            for _ in 0..50 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_dataplane_events() {
        let v: Value = serde_json::from_str(
            r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1714557600123456","_HOSTNAME":"node-a","_SYSTEMD_UNIT":"kubelet.service","MESSAGE":"I0501 started","PRIORITY":"6"}"#,
        )
        .unwrap();
        let mut s = String::new();
        let (ev, cur) = entry_to_event(&v, "node-a", "/kinsight/c/dataplane", &mut s).unwrap();
        assert_eq!(
            ev.log_stream_name,
            "node-a-dataplane.systemd.kubelet.service"
        );
        assert_eq!(ev.timestamp, 1_714_557_600_123);
        assert_eq!(cur.as_deref(), Some("s=1;i=2"));
        let m: Value = serde_json::from_str(&ev.message).unwrap();
        assert_eq!(m["systemd_unit"], "kubelet.service");
        assert_eq!(m["message"], "I0501 started");
        let bin: Value = serde_json::from_str(
            r#"{"MESSAGE":[104,105,255],"_SYSTEMD_UNIT":"containerd.service"}"#,
        )
        .unwrap();
        let (ev, _) = entry_to_event(&bin, "n", "g", &mut s).unwrap();
        let m: Value = serde_json::from_str(&ev.message).unwrap();
        assert_eq!(m["message"], "hi\u{fffd}");
        assert!(entry_to_event(&serde_json::json!({"X": 1}), "n", "g", &mut s).is_none());
    }

    #[test]
    fn cursor_round_trips_atomically() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load_cursor(d.path()), None);
        store_cursor(d.path(), "s=abc;i=5").unwrap();
        assert_eq!(load_cursor(d.path()).as_deref(), Some("s=abc;i=5"));
        std::fs::write(d.path().join(CURSOR_FILE), "garbage").unwrap();
        assert_eq!(load_cursor(d.path()), None);
    }
}
