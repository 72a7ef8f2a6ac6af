//! Hand-written scenarios on real files, one per rule of the tailer.

use super::*;

#[test]
fn kubelet_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let mut h = Harness::new(true);
    std::fs::create_dir_all(h.path("ns_pod_uid/c")).unwrap();
    let live = h.path("ns_pod_uid/c/0.log");
    append(&live, "a1\na2\n");
    assert_eq!(texts(&h.read(true)), ["a1", "a2"]);
    append(&live, "a3\n");
    let rotated = h.path("ns_pod_uid/c/0.log.20240501-101500");
    std::fs::rename(&live, &rotated).unwrap();
    append(&live, "b1\n");
    // The writer may still finish a line into the renamed file.
    append(&rotated, "a4\n");
    let got = h.read(true);
    let mut t = texts(&got);
    t.sort();
    assert_eq!(t, ["a3", "a4", "b1"]);
    assert!(got.iter().all(|g| g.family == live), "routed by family");
    // Later compression of the finished rotation is recognised and not read again.
    gzip(&rotated, &h.path("ns_pod_uid/c/0.log.20240501-101500.gz"));
    append(&live, "b2\n");
    assert_eq!(texts(&h.read(true)), ["b2"]);
    assert_eq!(h.tailer.open_files(), 1);
}

#[test]
fn restart_after_rotation_and_compression_while_down_loses_nothing() {
    let mut h = Harness::new(true);
    let live = h.path("0.log");
    append(&live, "a1\na2\n");
    assert_eq!(texts(&h.read(true)), ["a1", "a2"]);
    // The agent is killed. Meanwhile: more lines, a rotation, compression, a second rotation.
    append(&live, "a3\n");
    std::fs::rename(&live, h.path("0.log.1")).unwrap();
    gzip(&h.path("0.log.1"), &h.path("0.log.1.gz"));
    append(&live, "b1\nb2\n");
    std::fs::rename(&live, h.path("0.log.2")).unwrap();
    append(&live, "c1\n");
    h.restart();
    let mut t = texts(&h.read(true));
    t.sort();
    assert_eq!(t, ["a3", "b1", "b2", "c1"]);
    h.restart();
    assert!(h.read(true).is_empty(), "nothing twice after a clean ack");
}

#[test]
fn unacknowledged_lines_come_again_after_a_crash_and_only_those() {
    let mut h = Harness::new(true);
    let live = h.path("0.log");
    append(&live, "1\n2\n");
    h.read(true);
    append(&live, "3\n4\n");
    assert_eq!(texts(&h.read(false)), ["3", "4"]);
    h.restart();
    assert_eq!(texts(&h.read(true)), ["3", "4"]);
}

#[test]
fn copytruncate_recovers_the_tail_from_the_copy() {
    let mut h = Harness::new(true);
    let live = h.path("app.log");
    append(&live, "old1\nold2\n");
    assert_eq!(texts(&h.read(true)), ["old1", "old2"]);
    append(&live, "old3\n");
    // logrotate copytruncate: copy, then truncate in place, then the app writes on.
    std::fs::copy(&live, h.path("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, "new1\n");
    let mut t = texts(&h.read(true));
    t.sort();
    assert_eq!(t, ["new1", "old3"]);
    assert!(h.tailer.stats.truncations >= 1);
    append(&live, "new2\n");
    assert_eq!(texts(&h.read(true)), ["new2"]);
}

#[test]
fn truncation_refilled_past_the_old_offset_is_detected_by_the_head() {
    let mut h = Harness::new(true);
    let live = h.path("0.log");
    append(&live, "short\n");
    h.read(true);
    std::fs::write(
        &live,
        "completely different and much longer content\nsecond\n",
    )
    .unwrap();
    assert_eq!(
        texts(&h.read(true)),
        ["completely different and much longer content", "second"]
    );
    // Also across a restart: same inode, different content → read from the start.
    std::fs::write(&live, "third version of the file, long enough\n").unwrap();
    h.restart();
    assert_eq!(
        texts(&h.read(true)),
        ["third version of the file, long enough"]
    );
}

#[test]
fn a_file_deleted_while_open_is_read_to_its_end() {
    let mut h = Harness::new(true);
    let live = h.path("0.log");
    append(&live, "x1\n");
    h.read(true);
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    std::fs::remove_file(&live).unwrap();
    use std::io::Write;
    writer.write_all(b"x2\nx3 unterminated").unwrap();
    drop(writer);
    assert_eq!(texts(&h.read(true)), ["x2", "x3 unterminated"]);
    assert_eq!(h.tailer.open_files(), 0);
}

#[test]
fn first_start_reads_from_the_end_unless_asked_and_later_files_from_the_head() {
    let mut h = Harness::new(false);
    // The files below predate the node's first start, as far as the tailer can tell.
    h.pretend_first_start_at(now_ms() + 60_000);
    let live = h.path("0.log");
    append(&live, "before start\n");
    append(&h.path("0.log.old"), "old rotation\n");
    assert!(h.read(true).is_empty());
    append(&live, "after start\n");
    append(&h.path("1.log"), "new file\n");
    let mut t = texts(&h.read(true));
    t.sort();
    assert_eq!(t, ["after start", "new file"]);
}

/// Issue 15, item 15: on a new node, pods start with the agent; a file created after the
/// agent's first start is read from its head even when the first scan is the one that finds
/// it, and even when the agent died before that scan.
#[test]
fn files_created_after_the_first_start_are_read_from_their_head_by_the_first_scan() {
    let mut h = Harness::new(false);
    let live = h.path("0.log");
    append(&live, "the first line, the most telling one\n");
    append(&h.path("1.log.20240501-101500"), "rotated already\n");
    let mut t = texts(&h.read(true));
    t.sort();
    assert_eq!(
        t,
        ["rotated already", "the first line, the most telling one"]
    );

    // Killed before its first scan: the restart still knows when the node's first start was.
    let mut h = Harness::new(false);
    append(&h.path("2.log"), "written before the crash\n");
    h.restart();
    assert_eq!(texts(&h.read(true)), ["written before the crash"]);
    // A later restart is a restart: new files from their head, known ones where they were.
    append(&h.path("2.log"), "more\n");
    append(&h.path("3.log"), "while down\n");
    h.restart();
    let mut t = texts(&h.read(true));
    t.sort();
    assert_eq!(t, ["more", "while down"]);
}

#[test]
fn a_symlink_out_of_the_roots_is_refused_once_and_never_read() {
    let outside = tempfile::tempdir().unwrap();
    let shadow = outside.path().join("shadow");
    std::fs::write(&shadow, "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || CaptureWriter(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let got = tracing::subscriber::with_default(subscriber, || {
        let mut h = Harness::new(true);
        std::fs::create_dir_all(h.path("pods/ns_p_u/c")).unwrap();
        append(&h.path("pods/ns_p_u/c/0.log"), "a pod line\n");
        // The legitimate kind: a link to a file inside the root.
        std::os::unix::fs::symlink(h.path("pods/ns_p_u/c/0.log"), h.path("p_ns_c.log")).unwrap();
        // Planted: absolute and relative links out of it, and a directory link out of it.
        std::os::unix::fs::symlink(&shadow, h.path("syslog.log")).unwrap();
        let rel = std::path::PathBuf::from("..").join(
            outside
                .path()
                .strip_prefix(h.dir.path().parent().unwrap())
                .unwrap(),
        );
        std::os::unix::fs::symlink(rel.join("shadow"), h.path("auth.log")).unwrap();
        std::os::unix::fs::symlink(outside.path(), h.path("pods/ns_q_u")).unwrap();
        std::fs::create_dir_all(outside.path().join("c")).unwrap();
        std::fs::hard_link(&shadow, outside.path().join("c/0.log")).unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            append(&h.path("pods/ns_p_u/c/0.log"), "another\n");
            got.extend(h.read(true));
        }
        got
    });
    let t = texts(&got);
    assert_eq!(t, ["a pod line", "another", "another", "another"]);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    for name in ["syslog.log", "auth.log", "ns_q_u"] {
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(
            lines.len(),
            1,
            "one warning naming {name}, not one per scan: {logs}"
        );
        assert!(
            lines[0].contains("outside the log directories"),
            "{}",
            lines[0]
        );
    }
    assert!(!logs.contains("secret-hash"));
}

#[derive(Clone)]
struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn long_lines_are_split_with_bounded_pieces_and_nothing_lost() {
    let mut h = Harness::with(|o| {
        o.read_from_head = true;
        o.max_line_bytes = 256 * 1024;
    });
    let live = h.path("0.log");
    // 50 MiB without a newline, then a newline, then a normal line.
    let big: String = "0123456789abcdef".repeat(50 * 1024 * 1024 / 16);
    append(&live, &big);
    let got = h.read(true);
    assert!(got.iter().all(|g| g.text.len() <= 256 * 1024));
    assert!(got.iter().all(|g| !g.last), "no newline yet");
    assert!(got[0].first && got[1..].iter().all(|g| !g.first));
    append(&live, "\nnext\n");
    let rest = h.read(true);
    let mut all: Vec<u8> = got.iter().flat_map(|g| g.text.clone()).collect();
    all.extend(rest[0].text.iter());
    assert!(rest[0].last && !rest[0].first);
    assert_eq!(all.len(), big.len());
    assert!(all == big.as_bytes());
    assert_eq!(texts(&rest[1..]), ["next"]);
    assert!(h.tailer.stats.long_line_splits >= 199);
}

#[test]
fn bytes_are_passed_through_raw_including_invalid_utf8() {
    let mut h = Harness::new(true);
    let live = h.path("0.log");
    std::fs::write(&live, b"ok\n\xff\xfe binary \x00\x01\n").unwrap();
    let got = h.read(true);
    assert_eq!(got[1].text, b"\xff\xfe binary \x00\x01");
}

#[test]
fn a_symlinked_file_is_read_once() {
    let mut h = Harness::new(true);
    std::fs::create_dir_all(h.path("pods/ns_p_u/c")).unwrap();
    std::fs::create_dir_all(h.path("containers")).unwrap();
    let real = h.path("pods/ns_p_u/c/0.log");
    append(&real, "only once\n");
    std::os::unix::fs::symlink(&real, h.path("containers/p_ns_c-abc.log")).unwrap();
    assert_eq!(texts(&h.read(true)), ["only once"]);
}

#[test]
fn checkpoints_are_written_atomically_in_the_documented_format() {
    let mut h = Harness::new(true);
    append(&h.path("0.log"), "one\n");
    h.read(true);
    let text = std::fs::read_to_string(h.state.path().join("tailer-checkpoints.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 1);
    let f = &v["files"][0];
    assert_eq!(f["offset"], 4);
    for k in ["id", "dev", "ino", "head_len", "head_crc", "path", "family"] {
        assert!(!f[k].is_null(), "{k} missing in {text}");
    }
    assert!(v["last_scan_ms"].as_i64().unwrap() > 0);
}

#[test]
fn a_rotation_compressed_under_another_name_is_read_as_gzip() {
    let mut h = Harness::new(true);
    let live = h.path("0.log");
    append(&live, "a1\n");
    h.read(true);
    h.restart();
    append(&live, "a2\n");
    std::fs::rename(&live, h.path("0.log.1")).unwrap();
    // A compressor's temp name: not `.gz`, but gzip inside.
    gzip(&h.path("0.log.1"), &h.path("0.log.1.gz.tmp"));
    assert_eq!(texts(&h.read(true)), ["a2"]);
}

/// Run as the child of `an_unreadable_directory_is_skipped_and_the_rest_followed`, after it has
/// dropped to an unprivileged user (root reads every directory).
#[test]
#[ignore = "entry point of a child process of an_unreadable_directory_is_skipped_and_the_rest_followed"]
fn unprivileged_child_entry() {
    let root = PathBuf::from(std::env::var("TAILER_ROOT").unwrap());
    let state = PathBuf::from(std::env::var("TAILER_STATE").unwrap());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // SAFETY: plain syscalls; this process is single-threaded at this point of the test.
    unsafe {
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
    let opts = TailerOptions {
        roots: vec![Root {
            dir: root,
            max_depth: 3,
        }],
        read_from_head: true,
        ..TailerOptions::default()
    };
    let cp = Arc::new(Checkpointer::open(&state).unwrap());
    let mut t = Tailer::new(opts, Arc::new(KubeletLayout), cp);
    t.scan();
    let mut got = Vec::new();
    t.poll(1 << 20, |_, l| {
        got.push(String::from_utf8_lossy(l.bytes).into_owned())
    });
    assert_eq!(got, ["readable"]);
}

#[test]
fn an_unreadable_directory_is_skipped_and_the_rest_followed() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } != 0 {
        // Not root: the directory below is simply unreadable to us, same situation.
        eprintln!("note: running as non-root");
    }
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let root = dir.path().join("logs");
    std::fs::create_dir_all(root.join("ok")).unwrap();
    std::fs::create_dir_all(root.join("locked")).unwrap();
    append(&root.join("ok/0.log"), "readable\n");
    append(&root.join("locked/0.log"), "secret\n");
    let perm =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    perm(dir.path(), 0o755);
    perm(&root, 0o755);
    perm(&root.join("ok"), 0o755);
    perm(&root.join("ok/0.log"), 0o644);
    perm(&root.join("locked"), 0o000);
    perm(state.path(), 0o777);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "scenarios::unprivileged_child_entry",
            "--nocapture",
        ])
        .env("TAILER_ROOT", &root)
        .env("TAILER_STATE", state.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    perm(&root.join("locked"), 0o755);
    assert!(
        out.status.success(),
        "child failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("cannot read directory") && log.contains("locked"),
        "one clear log line naming the directory: {log}"
    );
}

#[test]
fn inotify_ends_the_wait_for_new_directories_new_files_and_new_data() {
    use std::time::Instant;
    let mut h = Harness::new(true);
    h.tailer.watch();
    let hour = Duration::from_secs(3600);
    // Settle: the first scans watch what exists (and a scan that added watches asks for one
    // more, for whatever appeared before the watches started).
    while h.tailer.scan_if_due(hour) {}
    assert_eq!(h.tailer.watched_dirs(), 1, "the root");
    let woken = |h: &mut Harness| {
        let t0 = Instant::now();
        h.tailer.wait(Duration::from_secs(60));
        t0.elapsed() < Duration::from_secs(30)
    };
    assert!(!h.tailer.scan_if_due(hour), "nothing changed yet");

    // A pod directory appears: the wait ends at once and a scan is due (no periodic rescan
    // would come for an hour). The scan watches the new directories and asks for one more
    // scan: a file created in them before their watches started raised no event.
    std::fs::create_dir_all(h.path("ns_pod_uid/c")).unwrap();
    assert!(woken(&mut h), "a new directory did not end the wait");
    assert!(h.tailer.scan_if_due(hour));
    assert_eq!(h.tailer.watched_dirs(), 3);
    assert!(
        h.tailer.scan_if_due(hour),
        "new watches did not ask for another scan"
    );
    assert!(!h.tailer.scan_if_due(hour), "settled");
    let live = h.path("ns_pod_uid/c/0.log");
    append(&live, "x0\n");
    assert!(
        woken(&mut h),
        "a new file in a new directory did not end the wait"
    );
    assert!(h.tailer.scan_if_due(hour));
    assert_eq!(texts(&h.read(true)), ["x0"]);

    // New data in a followed file ends the wait without asking for a scan.
    append(&live, "x1\n");
    assert!(woken(&mut h), "appended data did not end the wait");
    assert!(!h.tailer.scan_if_due(hour));
    let mut got = Vec::new();
    h.tailer
        .poll(1 << 20, |_, line| got.push(line.bytes.to_vec()));
    assert_eq!(got, [b"x1".to_vec()]);

    // Removed and re-created at the same path before any scan (the old directory stays
    // pinned by the open file, so its watch lingers in the kernel): the new directory is a
    // new inode and gets its own watch; files created in it are seen.
    std::fs::remove_dir_all(h.path("ns_pod_uid")).unwrap();
    std::fs::create_dir_all(h.path("ns_pod_uid/c")).unwrap();
    assert!(woken(&mut h), "a removed directory did not end the wait");
    while h.tailer.scan_if_due(hour) {}
    append(&live, "y1\n");
    assert!(
        woken(&mut h),
        "a file in a re-created directory did not end the wait"
    );
    assert!(h.tailer.scan_if_due(hour));
    while h.tailer.scan_if_due(hour) {}
    assert_eq!(texts(&h.read(true)), ["y1"]);

    // Removed for good: no watch is kept for it.
    std::fs::remove_dir_all(h.path("ns_pod_uid")).unwrap();
    assert!(woken(&mut h));
    while h.tailer.scan_if_due(hour) {}
    h.read(true);
    assert_eq!(h.tailer.watched_dirs(), 1, "stale watches kept");
}

/// Run as the child of `root_without_capabilities_reads_what_owner_and_group_bits_allow`: the
/// agent's DaemonSet runs as root with every capability dropped and the `adm` group added
/// (issue 15, item 8). This process makes itself that.
#[test]
#[ignore = "entry point of a child process of root_without_capabilities_reads_what_owner_and_group_bits_allow"]
fn capless_root_child_entry() {
    let root = PathBuf::from(std::env::var("TAILER_ROOT").unwrap());
    let state = PathBuf::from(std::env::var("TAILER_STATE").unwrap());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let groups = [4 as libc::gid_t];
    // SAFETY: plain syscalls with valid pointers; single-threaded at this point of the test.
    unsafe {
        assert_eq!(libc::setgroups(1, groups.as_ptr()), 0);
        let mut hdr = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [CapData::default(); 2];
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()),
            0
        );
        assert_eq!(libc::geteuid(), 0);
    }
    // capset acts on the calling thread (the test's), which is the one that reads below.
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(
        status.contains("CapEff:\t0000000000000000"),
        "capabilities left: {status}"
    );
    let opts = TailerOptions {
        roots: vec![Root {
            dir: root,
            max_depth: 1,
        }],
        read_from_head: true,
        ..TailerOptions::default()
    };
    let cp = Arc::new(Checkpointer::open(&state).unwrap());
    let mut t = Tailer::new(opts, Arc::new(KubeletLayout), cp);
    let mut got = Vec::new();
    for _ in 0..3 {
        t.scan();
        t.poll(1 << 20, |_, l| {
            got.push(String::from_utf8_lossy(l.bytes).into_owned())
        });
    }
    got.sort();
    assert_eq!(got, ["adm line", "root-owned, 0600"]);
}

#[test]
fn root_without_capabilities_reads_what_owner_and_group_bits_allow() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: a plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("note: not root; the files below cannot be given to other owners here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir_all(&logs).unwrap();
    let file = |name: &str, text: &str, uid: u32, gid: u32, mode: u32| {
        let p = logs.join(name);
        std::fs::write(&p, text).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // RHEL's /var/log/secure; Ubuntu's /var/log/auth.log (syslog:adm); a file of another user
    // that its group may not read either.
    file("secure.log", "root-owned, 0600\n", 0, 0, 0o600);
    file("auth.log", "adm line\n", 104, 4, 0o640);
    file("private.log", "another user's\n", 104, 104, 0o600);
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "scenarios::capless_root_child_entry",
            "--nocapture",
        ])
        .env("TAILER_ROOT", &logs)
        .env("TAILER_STATE", state.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    let log = String::from_utf8_lossy(&out.stderr);
    let denied: Vec<&str> = log.lines().filter(|l| l.contains("private.log")).collect();
    assert_eq!(denied.len(), 1, "one warning over three scans: {log}");
    assert!(denied[0].contains("Permission denied"), "{}", denied[0]);
}
