//! Snapshots: what a replica joining after the shared log was truncated restores its metric
//! store from. A snapshot taken from one store and restored into an empty directory answers
//! every query exactly as the original; its files outlive compaction and retention while it
//! is held; a hostile or half-fetched snapshot never becomes a store.

use crate::events::pod_events;
use kinsight_metrics::{
    MetricQuery, MetricSnapshot, MetricStore, MetricStoreConfig, MetricsError, RestoreOutcome,
    SeriesSelector, Statistic, restore_snapshot, snapshot_file_names,
};
use kinsight_model::LogEvent;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// Two hours of events from 6 pods every minute, in 120 one-minute batches (seq 1..=120).
fn batches(seed: u64) -> Vec<Vec<LogEvent>> {
    pod_events(seed, T0, 2 * HOUR, 60_000, 6, 2)
        .chunks(6)
        .map(<[LogEvent]>::to_vec)
        .collect()
}

/// Every series of a few metrics, with statistics that read every tier (raw for percentiles
/// and sub-minute periods, minute and hour rollups).
fn answers(store: &MetricStore) -> Vec<kinsight_metrics::QueryResult> {
    let mut out = Vec::new();
    for metric in ["pod_cpu_utilization", "pod_memory_utilization"] {
        for (stat, period_s) in [
            (Statistic::SampleCount, 10),
            (Statistic::Average, 60),
            (Statistic::Maximum, 300),
            (Statistic::Sum, 3600),
            (Statistic::Percentile(90.0), 60),
        ] {
            let q = MetricQuery {
                selector: SeriesSelector {
                    namespace: Some("ContainerInsights".into()),
                    metric_name: Some(metric.into()),
                    dimensions: Vec::new(),
                    exact_dimensions: false,
                },
                statistic: stat,
                period_s,
                start_ms: T0,
                end_ms: T0 + 2 * HOUR,
                max_series: 1000,
            };
            out.push(store.query(&q).unwrap());
        }
    }
    out
}

fn listing(store: &MetricStore) -> Vec<kinsight_metrics::SeriesInfo> {
    store.list_metrics(&SeriesSelector::default(), usize::MAX)
}

/// Feeds `batches[from..to]` with their sequence numbers (index + 1), flushing every
/// `flush_every` batches.
fn feed(
    store: &MetricStore,
    batches: &[Vec<LogEvent>],
    from: usize,
    to: usize,
    flush_every: usize,
) {
    for (i, b) in batches.iter().enumerate().take(to).skip(from) {
        store.ingest_events(i as u64 + 1, b);
        if (i + 1) % flush_every == 0 {
            store.flush().unwrap();
        }
    }
}

/// A `fetch` reading the snapshot's files where the snapshot says they are, counting calls.
fn fetch_from<'a>(
    snap: &'a MetricSnapshot,
    calls: &'a mut Vec<String>,
) -> impl FnMut(&str) -> Result<Vec<u8>, String> + 'a {
    let by_name: HashMap<&str, &Path> = snap
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.path.as_path()))
        .collect();
    move |name| {
        calls.push(name.to_string());
        let path = by_name.get(name).ok_or(format!("no file {name}"))?;
        fs::read(path).map_err(|e| e.to_string())
    }
}

fn is_layout_name(name: &str) -> bool {
    regex::Regex::new(r"^(series/[0-9]{12}\.kmi|segments/(raw|minute|hour)/[0-9]{12}\.kms)$")
        .unwrap()
        .is_match(name)
}

/// Every regular file below `dir`, relative, `/`-separated.
fn files_below(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

#[test]
fn a_restored_snapshot_answers_like_the_original_and_replay_continues_from_it() {
    let all = batches(11);
    let a_dir = tempfile::tempdir().unwrap();
    let a = MetricStore::open(a_dir.path(), MetricStoreConfig::default()).unwrap();
    assert!(a.snapshot().unwrap().is_none(), "nothing flushed yet");
    // Several flushes (several segments per tier)…
    feed(&a, &all, 0, 90, 30);
    assert_eq!(a.persisted_seq(), Some(90));
    let expected_at_snapshot = answers(&a);
    let listing_at_snapshot = listing(&a);
    // …then batches only in memory, which the snapshot does not hold.
    feed(&a, &all, 90, 100, 1000);
    let snap = a.snapshot().unwrap().unwrap();
    assert_eq!(snap.persisted_seq, 90);
    assert_eq!(
        snap.manifest,
        fs::read(a_dir.path().join("MANIFEST")).unwrap(),
        "the manifest on disk, byte for byte"
    );
    // Three flushes of one day's data: a segment per tier each, and at least one series file.
    let segments = snap
        .files
        .iter()
        .filter(|f| f.name.starts_with("segments/"))
        .count();
    assert_eq!(segments, 3 * 3, "{snap:?}");
    assert!(snap.files[0].name.starts_with("series/"), "{snap:?}");
    for f in &snap.files {
        assert!(is_layout_name(&f.name), "{}", f.name);
        assert_eq!(f.path, a_dir.path().join(&f.name));
        assert!(f.path.is_file());
    }
    let names: Vec<String> = snap.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(snapshot_file_names(&snap.manifest).unwrap(), names);

    // Restore into a directory that does not exist yet.
    let b_root = tempfile::tempdir().unwrap();
    let b_dir = b_root.path().join("data/metrics");
    let mut calls = Vec::new();
    let outcome = restore_snapshot(&b_dir, &snap.manifest, fetch_from(&snap, &mut calls)).unwrap();
    assert_eq!(outcome, RestoreOutcome::Restored { persisted_seq: 90 });
    assert_eq!(outcome.persisted_seq(), 90);
    assert_eq!(calls, names, "each listed file fetched once, in order");
    let mut expected_files = names.clone();
    expected_files.push("MANIFEST".into());
    expected_files.sort();
    assert_eq!(files_below(&b_dir), expected_files, "nothing else written");

    let b = MetricStore::open(&b_dir, MetricStoreConfig::default()).unwrap();
    assert_eq!(b.persisted_seq(), Some(90));
    assert_eq!(answers(&b), expected_at_snapshot);
    assert_eq!(listing(&b), listing_at_snapshot);

    // The replica replays the shared log from the snapshot on: batches up to 90 are skipped,
    // and both stores then answer the same.
    for (i, batch) in all.iter().enumerate().take(100) {
        let out = b.ingest_events(i as u64 + 1, batch);
        assert_eq!(out.skipped, i < 90, "batch {}", i + 1);
    }
    assert_eq!(answers(&b), answers(&a));
    feed(&a, &all, 100, 120, 1000);
    feed(&b, &all, 100, 120, 1000);
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(answers(&b), answers(&a));
    assert_eq!(listing(&b), listing(&a));
    drop(b);
    let b = MetricStore::open(&b_dir, MetricStoreConfig::default()).unwrap();
    assert_eq!(b.persisted_seq(), Some(120));
    assert_eq!(answers(&b), answers(&a));
}

#[test]
fn compaction_and_retention_leave_a_held_snapshots_files_until_it_is_dropped() {
    let all = batches(12);
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    feed(&store, &all, 0, 120, 10); // twelve flushes: twelve segments per tier
    let before = answers(&store);
    let snap = store.snapshot().unwrap().unwrap();
    let twin = store.snapshot().unwrap().unwrap(); // a second holder of the same files
    let segments: Vec<std::path::PathBuf> = snap
        .files
        .iter()
        .filter(|f| f.name.starts_with("segments/"))
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(segments.len(), 36);

    // The partitions are closed: one file per (tier, partition). Dropped from the manifest,
    // still on disk.
    assert!(store.compact(T0 + 40 * DAY).unwrap() > 0);
    assert_eq!(store.stats().segments, 3);
    let manifest_now = fs::read(dir.path().join("MANIFEST")).unwrap();
    assert_ne!(manifest_now, snap.manifest);
    for p in &segments {
        assert!(p.is_file(), "{} deleted while pinned", p.display());
    }
    // The held snapshot is still a complete, restorable state.
    let copy = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    restore_snapshot(copy.path(), &snap.manifest, fetch_from(&snap, &mut calls)).unwrap();
    let restored = MetricStore::open(copy.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(answers(&restored), before);
    drop(restored);

    drop(snap);
    for p in &segments {
        assert!(
            p.is_file(),
            "{} deleted while the twin pins it",
            p.display()
        );
    }
    drop(twin);
    for p in &segments {
        assert!(
            !p.exists(),
            "{} kept after the last pin dropped",
            p.display()
        );
    }
    // Series files are still listed: never deleted.
    let after_compaction = store.snapshot().unwrap().unwrap();
    for f in &after_compaction.files {
        assert!(f.path.is_file(), "{}", f.name);
    }
    assert_eq!(answers(&store), before);

    // Retention while the new snapshot is held: every segment expires, none is deleted yet.
    let expired: Vec<_> = after_compaction
        .files
        .iter()
        .filter(|f| f.name.starts_with("segments/"))
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(expired.len(), 3);
    assert_eq!(store.apply_retention(T0 + 1000 * DAY).unwrap(), 3);
    assert_eq!(store.stats().segments, 0);
    for p in &expired {
        assert!(p.is_file(), "{} deleted while pinned", p.display());
    }
    drop(after_compaction);
    for p in &expired {
        assert!(!p.exists(), "{} kept after the pin dropped", p.display());
    }
}

#[test]
fn a_file_whose_deletion_was_deferred_is_harmless_after_a_restart() {
    let all = batches(13);
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    feed(&store, &all, 0, 60, 10);
    let snap = store.snapshot().unwrap().unwrap();
    store.compact(T0 + 40 * DAY).unwrap();
    let before = answers(&store);
    // The process stops while the snapshot is held (its files were never deleted): the next
    // open deletes them as unlisted files, and the store answers as before.
    drop(store);
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    let stale: Vec<_> = snap
        .files
        .iter()
        .filter(|f| f.name.starts_with("segments/"))
        .collect();
    assert!(!stale.is_empty());
    for f in &stale {
        assert!(!f.path.exists(), "{} not removed on open", f.name);
    }
    assert_eq!(answers(&store), before);
    // Dropping the old pin late deletes nothing that is listed now.
    drop(snap);
    assert_eq!(answers(&store), before);
    drop(store);
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(answers(&store), before);
}

#[test]
fn hostile_or_malformed_snapshot_manifests_are_refused_before_anything_is_fetched() {
    let all = batches(14);
    let src = tempfile::tempdir().unwrap();
    let store = MetricStore::open(src.path(), MetricStoreConfig::default()).unwrap();
    feed(&store, &all, 0, 20, 10);
    let snap = store.snapshot().unwrap().unwrap();
    let good = String::from_utf8(snap.manifest.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = v.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("x.kms");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "tier ../x",
            edit(&|v| v["segments"][0]["tier"] = "../x".into()),
        ),
        (
            "tier ../../series",
            edit(&|v| v["segments"][0]["tier"] = "../../series".into()),
        ),
        (
            "absolute tier",
            edit(&|v| v["segments"][0]["tier"] = escape.to_string_lossy().into_owned().into()),
        ),
        (
            "generation as a path",
            edit(&|v| v["segments"][0]["generation"] = "../x".into()),
        ),
        (
            "absolute generation",
            edit(&|v| v["series_files"][0]["generation"] = "/etc/passwd".into()),
        ),
        (
            "negative generation",
            edit(&|v| v["segments"][0]["generation"] = (-1).into()),
        ),
        (
            "generation listed twice",
            edit(&|v| {
                let g = v["series_files"][0]["generation"].clone();
                v["segments"][0]["generation"] = g;
            }),
        ),
        (
            "generation at next_gen",
            edit(&|v| {
                let n = v["next_gen"].clone();
                v["segments"][0]["generation"] = n;
            }),
        ),
        (
            "series ids not from 0",
            edit(&|v| v["series_files"][0]["first_id"] = 5.into()),
        ),
        (
            "unaligned partition",
            edit(&|v| v["segments"][0]["partition_start_ms"] = (T0 + 1).into()),
        ),
        (
            "never flushed",
            edit(&|v| v["persisted_seq"] = serde_json::Value::Null),
        ),
        (
            "another format",
            edit(&|v| v["format"] = "something-else".into()),
        ),
        ("version 99", edit(&|v| v["version"] = 99.into())),
        ("not json", b"{\"format\": ".to_vec()),
    ];
    for (what, manifest) in cases {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("metrics");
        let mut calls = Vec::new();
        let err =
            restore_snapshot(&target, &manifest, fetch_from(&snap, &mut calls)).expect_err(what);
        assert!(calls.is_empty(), "{what}: fetched {calls:?}");
        assert!(!target.exists(), "{what}: the directory was created");
        assert!(!escape.exists(), "{what}: wrote outside");
        assert!(snapshot_file_names(&manifest).is_err(), "{what}");
        if what == "version 99" {
            assert!(
                matches!(err, MetricsError::UnsupportedVersion { version: 99, .. }),
                "{what}: {err}"
            );
        } else {
            assert!(matches!(err, MetricsError::Corrupt { .. }), "{what}: {err}");
        }
    }
    assert_eq!(files_below(outside.path()), Vec::<String>::new());

    // An unknown field is ignored, never taken as a name: only layout names are fetched.
    let extra = edit(&|v| v["files"] = serde_json::json!(["../x", "/etc/passwd"]));
    let dir = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    restore_snapshot(dir.path(), &extra, fetch_from(&snap, &mut calls)).unwrap();
    assert!(calls.iter().all(|n| is_layout_name(n)), "{calls:?}");
}

#[test]
fn an_interrupted_or_damaged_restore_leaves_an_empty_store_and_can_be_retried() {
    let all = batches(15);
    let src = tempfile::tempdir().unwrap();
    let store = MetricStore::open(src.path(), MetricStoreConfig::default()).unwrap();
    feed(&store, &all, 0, 40, 10);
    let snap = store.snapshot().unwrap().unwrap();
    let expected = answers(&store);
    let dir = tempfile::tempdir().unwrap();

    // The download fails halfway.
    let mut inner_calls = Vec::new();
    let mut inner = fetch_from(&snap, &mut inner_calls);
    let half = snap.files.len() / 2;
    let mut n = 0;
    let err = restore_snapshot(dir.path(), &snap.manifest, |name: &str| {
        n += 1;
        if n > half {
            Err(format!("connection reset while downloading {name}"))
        } else {
            inner(name)
        }
    })
    .unwrap_err();
    match &err {
        MetricsError::SnapshotFetch { name, reason } => {
            assert_eq!(name, &snap.files[half].name);
            assert!(reason.contains("connection reset"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(!dir.path().join("MANIFEST").exists());
    assert_eq!(files_below(dir.path()), Vec::<String>::new(), "cleaned up");
    let empty = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(empty.persisted_seq(), None);
    assert_eq!(empty.stats().series, 0);
    assert_eq!(empty.stats().segments, 0);
    drop(empty);

    // A crash after some files were written and before the manifest: what is left opens as
    // an empty store, which deletes the unlisted files.
    for f in &snap.files[..half] {
        let p = dir.path().join(&f.name);
        fs::write(&p, fs::read(&f.path).unwrap()).unwrap();
    }
    let empty = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(empty.persisted_seq(), None);
    assert_eq!(empty.stats().segments, 0);
    assert_eq!(files_below(dir.path()), Vec::<String>::new());
    drop(empty);

    // A damaged download (a truncated segment) is caught before the manifest is written.
    let victim = snap
        .files
        .iter()
        .position(|f| f.name.starts_with("segments/"))
        .unwrap();
    let mut calls = Vec::new();
    let mut inner = fetch_from(&snap, &mut calls);
    let victim_name = snap.files[victim].name.clone();
    let err = restore_snapshot(dir.path(), &snap.manifest, |name: &str| {
        let mut bytes = inner(name)?;
        if name == victim_name {
            bytes.truncate(bytes.len() - 10);
        }
        Ok::<_, String>(bytes)
    })
    .unwrap_err();
    assert!(matches!(err, MetricsError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&victim_name), "{err}");
    assert!(!dir.path().join("MANIFEST").exists());

    // The retry succeeds.
    let mut calls = Vec::new();
    let outcome =
        restore_snapshot(dir.path(), &snap.manifest, fetch_from(&snap, &mut calls)).unwrap();
    assert_eq!(outcome, RestoreOutcome::Restored { persisted_seq: 40 });
    let restored = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(answers(&restored), expected);
}

#[test]
fn restoring_over_local_state_keeps_a_newer_one_and_replaces_an_older_one_entirely() {
    let all = batches(16);
    let src = tempfile::tempdir().unwrap();
    let store = MetricStore::open(src.path(), MetricStoreConfig::default()).unwrap();
    feed(&store, &all, 0, 50, 10);
    let snap = store.snapshot().unwrap().unwrap();
    assert_eq!(snap.persisted_seq, 50);
    let expected = answers(&store);
    let expected_listing = listing(&store);

    // A local store at or beyond the snapshot is kept, untouched and unfetched.
    for local_seq in [50, 70] {
        let dir = tempfile::tempdir().unwrap();
        {
            let local = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
            feed(&local, &all, 0, local_seq, local_seq);
        }
        let before = files_below(dir.path());
        let manifest_before = fs::read(dir.path().join("MANIFEST")).unwrap();
        let mut calls = Vec::new();
        let outcome =
            restore_snapshot(dir.path(), &snap.manifest, fetch_from(&snap, &mut calls)).unwrap();
        assert_eq!(
            outcome,
            RestoreOutcome::Kept {
                persisted_seq: local_seq as u64
            }
        );
        assert!(calls.is_empty());
        assert_eq!(files_below(dir.path()), before);
        assert_eq!(
            fs::read(dir.path().join("MANIFEST")).unwrap(),
            manifest_before
        );
    }

    // An older local store with other data, whose file names collide with the snapshot's
    // (same generations): replaced entirely, nothing of it left or mixed in.
    let dir = tempfile::tempdir().unwrap();
    {
        let other = batches(99);
        let local = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
        feed(&local, &other, 0, 20, 10);
        // An unlisted leftover too.
        fs::write(dir.path().join("segments/raw/000000000999.kms"), b"junk").unwrap();
    }
    let old_files = files_below(dir.path());
    let snap_names: Vec<&str> = snap.files.iter().map(|f| f.name.as_str()).collect();
    assert!(
        old_files.iter().any(|n| snap_names.contains(&n.as_str())),
        "the test needs colliding names: {old_files:?}"
    );
    let mut calls = Vec::new();
    let outcome =
        restore_snapshot(dir.path(), &snap.manifest, fetch_from(&snap, &mut calls)).unwrap();
    assert_eq!(outcome, RestoreOutcome::Restored { persisted_seq: 50 });
    let mut expected_files: Vec<String> = snap_names.iter().map(|s| s.to_string()).collect();
    expected_files.push("MANIFEST".into());
    expected_files.sort();
    assert_eq!(files_below(dir.path()), expected_files);
    assert_eq!(
        fs::read(dir.path().join("MANIFEST")).unwrap(),
        snap.manifest
    );
    let restored = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(restored.persisted_seq(), Some(50));
    assert_eq!(answers(&restored), expected);
    assert_eq!(listing(&restored), expected_listing);
    drop(restored);

    // A local manifest that cannot be read is an error, and left alone.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("MANIFEST"), "{not json").unwrap();
    let mut calls = Vec::new();
    let err =
        restore_snapshot(dir.path(), &snap.manifest, fetch_from(&snap, &mut calls)).unwrap_err();
    assert!(err.to_string().contains("MANIFEST"), "{err}");
    assert!(calls.is_empty());
    assert_eq!(
        fs::read_to_string(dir.path().join("MANIFEST")).unwrap(),
        "{not json"
    );
}
