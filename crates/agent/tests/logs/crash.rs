//! kill -9 at random moments while a separate process writes and rotates container logs at a
//! high rate, the way the kubelet does (rename `0.log` → `0.log.<stamp>`, new `0.log`, older
//! rotations gzipped, the oldest deleted beyond ten — the kubelet keeps five, but ten seconds of
//! backlog keep a debug build on a busy CI machine from losing lines to deletion, which would
//! test the machine, not the agent). Every line carries a sequence number; after the
//! writer ends and a last collector catches up, every line must be in the sink's file, and
//! duplicates may only come from the batch each kill interrupted.
//!
//! Both the writer and the collector are child processes: this test binary re-run with
//! `--ignored --exact crash::child_entry` and a role in the environment.

use super::*;
use rand::Rng;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};

const ROLE: &str = "KINSIGHT_LOGS_CRASH_ROLE";
const CONTAINERS: usize = 3;
const LINES_PER_CONTAINER: u64 = 15_000;
const ROTATE_EVERY: u64 = 1_000;
const BATCH_MAX_EVENTS: u64 = 500;
const KEEP_ROTATIONS: usize = 10;

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(role: &str, root: &Path, state: &Path, out: &Path) -> Kid {
    Kid(Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash::child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env("CRASH_ROOT", root)
        .env("CRASH_STATE", state)
        .env("CRASH_OUT", out)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap())
}

#[test]
#[ignore = "entry point of the crash test's child processes, run by crash::nothing_lost_across_kill_9"]
fn child_entry() {
    let root = PathBuf::from(std::env::var("CRASH_ROOT").unwrap());
    let state = PathBuf::from(std::env::var("CRASH_STATE").unwrap());
    let out = PathBuf::from(std::env::var("CRASH_OUT").unwrap());
    match std::env::var(ROLE).as_deref() {
        Ok("writer") => writer(&root),
        Ok("collector") => {
            let cfg = config(&root, &state, "");
            let mut cfg = cfg;
            cfg.kinsight.batch_max_events = BATCH_MAX_EVENTS as usize;
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let sink = Arc::new(FileSink::open(&out).unwrap());
                let c = LogCollector::new(&cfg, sink, None).with_options(CollectorOptions {
                    rotate_wait: Duration::from_millis(500),
                    ..fast_options()
                });
                let (_tx, rx) = watch::channel(false);
                c.run(rx).await.unwrap();
            });
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Writes `LINES_PER_CONTAINER` lines into each container's `0.log`, rotating like the kubelet.
fn writer(root: &Path) {
    let dirs: Vec<PathBuf> = (0..CONTAINERS)
        .map(|i| {
            pod_dir(
                root,
                "load",
                &format!("writer-{i}"),
                &format!("uid-{i}"),
                "app",
            )
        })
        .collect();
    let mut files: Vec<std::fs::File> = dirs
        .iter()
        .map(|d| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(d.join("0.log"))
                .unwrap()
        })
        .collect();
    let mut rotations = 0u64;
    let start = Instant::now();
    for n in 0..LINES_PER_CONTAINER {
        for (c, f) in files.iter_mut().enumerate() {
            let line = format!(
                "2024-05-01T10:00:00.{:09}Z stdout F seq={c}:{n} {}\n",
                n % 1_000_000_000,
                "p".repeat((n % 50) as usize)
            );
            f.write_all(line.as_bytes()).unwrap();
        }
        if n % ROTATE_EVERY == ROTATE_EVERY - 1 {
            rotations += 1;
            for (c, d) in dirs.iter().enumerate() {
                let stamp = format!("0.log.20240501-100000.{rotations:06}");
                std::fs::rename(d.join("0.log"), d.join(&stamp)).unwrap();
                files[c] = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join("0.log"))
                    .unwrap();
                rotate_older(d, &stamp);
            }
        }
        // About 1 000 lines per second per container (a rotation a second each): a debug
        // build of the collector keeps up, so no rotation is deleted before it was read.
        if n % 100 == 0 {
            let due = Duration::from_millis(n);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Gzips every plain rotation but the newest and keeps at most `KEEP_ROTATIONS`.
fn rotate_older(dir: &Path, newest: &str) {
    let mut rotated: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("0.log."))
        .collect();
    rotated.sort();
    for name in &rotated {
        if name != newest && !name.ends_with(".gz") {
            let body = std::fs::read(dir.join(name)).unwrap();
            let tmp = dir.join(format!("{name}.gz.tmp"));
            let mut enc = flate2::write::GzEncoder::new(
                std::fs::File::create(&tmp).unwrap(),
                flate2::Compression::fast(),
            );
            enc.write_all(&body).unwrap();
            enc.finish().unwrap();
            std::fs::rename(&tmp, dir.join(format!("{name}.gz"))).unwrap();
            std::fs::remove_file(dir.join(name)).unwrap();
        }
    }
    let mut rotated: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("0.log.") && !n.ends_with(".tmp"))
        .collect();
    rotated.sort();
    while rotated.len() > KEEP_ROTATIONS {
        std::fs::remove_file(dir.join(rotated.remove(0))).unwrap();
    }
}

fn count(out: &Path) -> HashMap<(usize, u64), u32> {
    let mut seen = HashMap::new();
    for e in read_events(out) {
        let m = message(&e);
        let log = m["log"].as_str().unwrap_or("");
        let Some(seq) = log.strip_prefix("seq=").and_then(|s| s.split(' ').next()) else {
            panic!("an event that was never written: {log:?}");
        };
        let (c, n) = seq.split_once(':').unwrap();
        *seen
            .entry((c.parse().unwrap(), n.parse().unwrap()))
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn nothing_lost_across_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("sink.jsonl");
    let total = CONTAINERS as u64 * LINES_PER_CONTAINER;
    let mut writer = spawn_child("writer", root.path(), state.path(), &out);
    let mut rng = rand::rng();
    let mut kills = 0u64;
    loop {
        let mut collector = spawn_child("collector", root.path(), state.path(), &out);
        std::thread::sleep(Duration::from_millis(rng.random_range(150..1200)));
        let writer_done = writer.0.try_wait().unwrap().is_some();
        collector.0.kill().unwrap(); // SIGKILL
        collector.0.wait().unwrap();
        kills += 1;
        if writer_done {
            break;
        }
    }
    assert!(writer.0.wait().unwrap().success(), "writer failed");
    // A last collector catches up.
    let collector = spawn_child("collector", root.path(), state.path(), &out);
    let start = Instant::now();
    while count(&out).len() < total as usize && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(collector);

    let seen = count(&out);
    let mut missing = Vec::new();
    for c in 0..CONTAINERS {
        for n in 0..LINES_PER_CONTAINER {
            if !seen.contains_key(&(c, n)) {
                missing.push((c, n));
            }
        }
    }
    let dups: u64 = seen.values().map(|v| (*v - 1) as u64).sum();
    if !missing.is_empty() {
        // Keep the evidence: the files, the checkpoints and the sink's output.
        let r = root.keep();
        let s = state.keep();
        let mut ranges: Vec<(usize, u64, u64)> = Vec::new();
        for &(c, n) in &missing {
            match ranges.last_mut() {
                Some(last) if last.0 == c && last.2 + 1 == n => last.2 = n,
                _ => ranges.push((c, n, n)),
            }
        }
        println!(
            "kept {} and {}; missing ranges {ranges:?}",
            r.display(),
            s.display()
        );
    }
    println!(
        "kill -9 test: {kills} kills, {total} lines written, {} distinct delivered, {dups} duplicates",
        seen.len()
    );
    assert!(
        missing.is_empty(),
        "{} lines lost after {kills} kills, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Each kill can interrupt at most one batch being sent: re-sent once.
    assert!(
        dups <= (kills + 1) * BATCH_MAX_EVENTS,
        "{dups} duplicates after {kills} kills"
    );
}
