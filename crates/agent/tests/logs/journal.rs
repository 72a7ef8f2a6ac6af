//! Dataplane logs from a real journal file, written by `systemd-journal-remote` from journal
//! export format (Debian package `systemd-journal-remote`), read through `journalctl`.

use super::*;
use std::io::Write;
use std::process::{Command, Stdio};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Tools missing: fail in CI (which installs them), skip loudly elsewhere.
pub fn require(tool: &str) -> bool {
    if Path::new(tool).exists() || Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is not installed (scripts/ci-install.sh installs it)"
    );
    eprintln!("SKIPPED: {tool} is not installed");
    false
}

fn write_journal(file: &Path, entries: &[(&str, &str, u64)]) {
    let entries: Vec<(u64, Vec<(&str, String)>)> = entries
        .iter()
        .map(|(unit, msg, ts_us)| {
            let fields = vec![
                ("_SYSTEMD_UNIT", unit.to_string()),
                ("MESSAGE", msg.to_string()),
                ("PRIORITY", "6".to_string()),
            ];
            (*ts_us, fields)
        })
        .collect();
    write_export(file, &entries);
}

/// Writes entries (realtime µs, fields) as a real journal file through systemd-journal-remote.
fn write_export(file: &Path, entries: &[(u64, Vec<(&str, String)>)]) {
    let mut export = String::new();
    for (ts_us, fields) in entries {
        // Same boot: the monotonic clock must move with the wall clock, or journalctl's
        // merge order across files (by boot and monotonic time) disagrees with the cursors.
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={ts_us}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=node-a\n",
            ts_us - 1_714_557_000_000_000
        ));
        for (k, v) in fields {
            export.push_str(&format!("{k}={v}\n"));
        }
        export.push('\n');
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("-o")
        .arg(file)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn journald_units_go_to_dataplane_and_the_cursor_survives_restarts() {
    if !require(JOURNAL_REMOTE) || !require("journalctl") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let jdir = root.path().join("var/log/journal");
    std::fs::create_dir_all(&jdir).unwrap();
    // This host keeps a syslog file, so the journal gives only the dataplane units.
    std::fs::write(root.path().join("var/log/syslog"), "").unwrap();
    let t0 = 1_714_557_600_000_000u64;
    write_journal(
        &jdir.join("one.journal"),
        &[
            ("kubelet.service", "I0501 kubelet started", t0),
            ("sshd.service", "not a dataplane unit", t0 + 1),
            ("containerd.service", "containerd ready", t0 + 2),
            ("kubelet.service", "I0501 node registered", t0 + 3),
        ],
    );
    let mut cfg = config(root.path(), state.path(), "");
    cfg.kinsight.logs.journald = true;
    let out = state.path().join("out.jsonl");
    let events = collect_until(
        &cfg,
        &out,
        None,
        fast_options(),
        Duration::from_secs(20),
        |e| e.len() >= 3,
    );
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0].log_group_name, "/kinsight/test-cluster/dataplane");
    assert_eq!(
        events[0].log_stream_name,
        format!("{NODE}-dataplane.systemd.kubelet.service")
    );
    assert_eq!(events[0].timestamp, 1_714_557_600_000);
    let m = message(&events[0]);
    assert_eq!(m["message"], "I0501 kubelet started");
    assert_eq!(m["hostname"], "node-a");
    assert_eq!(m["systemd_unit"], "kubelet.service");
    assert!(
        events
            .iter()
            .any(|e| e.log_stream_name.ends_with("containerd.service"))
    );
    assert!(
        !events
            .iter()
            .any(|e| e.message.contains("not a dataplane unit"))
    );

    let cursor = std::fs::read_to_string(state.path().join("logs/journald-cursor.json")).unwrap();
    assert!(cursor.contains("\"cursor\""), "{cursor}");
    // More entries while the agent is down; after a restart only they come out.
    write_journal(
        &jdir.join("two.journal"),
        &[("kubelet.service", "I0501 after restart", t0 + 10_000_000)],
    );
    let events = collect_until(
        &cfg,
        &out,
        None,
        fast_options(),
        Duration::from_secs(20),
        |e| e.len() >= 4,
    );
    std::thread::sleep(Duration::from_millis(300));
    let events2 = read_events(&out);
    let msgs: Vec<String> = events2
        .iter()
        .map(|e| message(e)["message"].to_string())
        .collect();
    assert_eq!(events.len(), 4, "{msgs:?} {cursor}");
    assert_eq!(events2.len(), 4, "nothing twice after a clean restart");
    assert_eq!(
        message(&events[3])["message"],
        "I0501 after restart",
        "{msgs:?} {cursor}"
    );
}

fn write_raw_journal(file: &Path, entries: &[Vec<(&str, String)>]) {
    let entries: Vec<(u64, Vec<(&str, String)>)> = entries
        .iter()
        .enumerate()
        .map(|(i, fields)| (1_714_557_600_000_000u64 + i as u64, fields.clone()))
        .collect();
    write_export(file, &entries);
}

#[test]
fn host_logs_come_from_the_journal_when_the_host_keeps_no_syslog_files() {
    if !require(JOURNAL_REMOTE) || !require("journalctl") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let jdir = root.path().join("var/log/journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let s = |v: &str| v.to_string();
    write_raw_journal(
        &jdir.join("host.journal"),
        &[
            vec![
                ("_TRANSPORT", s("kernel")),
                ("MESSAGE", s("EXT4-fs (nvme0n1p1): mounted")),
                ("PRIORITY", s("6")),
            ],
            vec![
                ("_TRANSPORT", s("syslog")),
                ("SYSLOG_FACILITY", s("10")),
                ("SYSLOG_IDENTIFIER", s("sshd")),
                ("SYSLOG_PID", s("812")),
                ("MESSAGE", s("Accepted publickey for ec2-user")),
                ("PRIORITY", s("6")),
            ],
            vec![
                ("_TRANSPORT", s("syslog")),
                ("SYSLOG_FACILITY", s("3")),
                ("SYSLOG_IDENTIFIER", s("chronyd")),
                ("MESSAGE", s("Selected source 169.254.169.123")),
                ("PRIORITY", s("6")),
            ],
            vec![
                ("_TRANSPORT", s("syslog")),
                ("SYSLOG_FACILITY", s("9")),
                ("SYSLOG_IDENTIFIER", s("CRON")),
                ("MESSAGE", s("cron is not a host message")),
                ("PRIORITY", s("6")),
            ],
            vec![
                ("_TRANSPORT", s("journal")),
                ("MESSAGE", s("debug chatter")),
                ("PRIORITY", s("7")),
            ],
            vec![
                ("_SYSTEMD_UNIT", s("kubelet.service")),
                ("MESSAGE", s("I0501 kubelet")),
                ("PRIORITY", s("6")),
            ],
        ],
    );
    let mut cfg = config(root.path(), state.path(), "");
    cfg.kinsight.logs.journald = true;
    let out = state.path().join("out.jsonl");
    let mut opts = fast_options();
    opts.host_files = true;
    collect_until(&cfg, &out, None, opts, Duration::from_secs(20), |e| {
        e.len() >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    let events = read_events(&out);
    let by_stream = |suffix: &str| {
        events
            .iter()
            .filter(|e| e.log_stream_name.ends_with(suffix))
            .collect::<Vec<_>>()
    };
    assert_eq!(events.len(), 4, "{events:#?}");
    let dmesg = by_stream(".host.dmesg");
    assert_eq!(dmesg.len(), 1);
    assert_eq!(dmesg[0].log_group_name, "/kinsight/test-cluster/host");
    assert_eq!(message(dmesg[0])["message"], "EXT4-fs (nvme0n1p1): mounted");
    let secure = by_stream(".host.secure");
    assert_eq!(message(secure[0])["ident"], "sshd");
    assert_eq!(message(secure[0])["pid"], "812");
    assert_eq!(message(secure[0])["host"], "node-a");
    assert_eq!(message(by_stream(".host.messages")[0])["ident"], "chronyd");
    assert_eq!(
        by_stream("kubelet.service").len(),
        1,
        "dataplane units still go to dataplane"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.message.contains("cron is not") || e.message.contains("debug chatter"))
    );
}
