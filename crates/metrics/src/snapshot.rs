//! Snapshots of the committed store, for a replica that starts with an empty data directory
//! after the shared log it would replay from was truncated.
//!
//! Out: [`MetricStore::snapshot`](crate::MetricStore::snapshot) returns the manifest bytes of
//! the committed state and the files they list, pinned: while the [`MetricSnapshot`] lives,
//! compaction and retention leave those files on disk (their deletion is deferred until the
//! last snapshot pinning them is dropped), so the caller can upload them at leisure.
//!
//! In: [`restore_snapshot`] writes the listed files into a store directory, each durably, and
//! the manifest last, atomically; the store then opens at the snapshot's `persisted_seq`.
//! Format and order: docs/formats/metrics.md, "Snapshots".

use crate::MetricsError;
use crate::manifest::{self, Manifest};
use crate::series::Registry;
use crate::tier::Tier;
use kinsight_model::durable;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The committed state of a [`MetricStore`](crate::MetricStore) as of one manifest, with its
/// files pinned on disk until this value is dropped.
pub struct MetricSnapshot {
    /// Highest ingest sequence number whose datapoints are all in `files`: a store restored
    /// from this snapshot replays the log from the batch after it.
    pub persisted_seq: u64,
    /// The manifest naming exactly `files`: the store's committed manifest serialised as its
    /// `MANIFEST` file holds it (version 1; after a failed flush only `next_gen` may be
    /// higher than on disk). Upload it after the files; [`restore_snapshot`] takes it back.
    pub manifest: Vec<u8>,
    /// Every file the manifest lists: series files, then segments.
    pub files: Vec<SnapshotFile>,
    _pin: SnapshotPin,
}

impl fmt::Debug for MetricSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSnapshot")
            .field("persisted_seq", &self.persisted_seq)
            .field("manifest_bytes", &self.manifest.len())
            .field("files", &self.files)
            .finish()
    }
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Path relative to the store directory, `/`-separated, as the layout names it:
    /// `series/<12 digits>.kmi` or `segments/{raw,minute,hour}/<12 digits>.kms`. The name
    /// [`restore_snapshot`] asks its `fetch` for.
    pub name: String,
    /// Where it is on this machine (absolute when the store was opened with an absolute
    /// directory).
    pub path: PathBuf,
}

/// What [`restore_snapshot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The directory now holds the snapshot's state (any older local state was discarded).
    Restored { persisted_seq: u64 },
    /// The directory already held a store whose `persisted_seq` is at or beyond the
    /// snapshot's; nothing was fetched or changed. Open it and replay from its own
    /// `persisted_seq`.
    Kept { persisted_seq: u64 },
}

impl RestoreOutcome {
    /// The sequence number the store in the directory is persisted up to: replay the log from
    /// the batch after it.
    pub fn persisted_seq(&self) -> u64 {
        match *self {
            RestoreOutcome::Restored { persisted_seq } | RestoreOutcome::Kept { persisted_seq } => {
                persisted_seq
            }
        }
    }
}

/// Files pinned by live snapshots, and those whose deletion waits for their pins to go.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    counts: HashMap<PathBuf, usize>,
    deferred: HashSet<PathBuf>,
}

pub(crate) type SharedPins = Arc<Mutex<Pins>>;

fn lock(pins: &SharedPins) -> MutexGuard<'_, Pins> {
    pins.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pins `paths`. Must be called while the store's state lock is held (read or write), so that
/// a compaction or retention that drops them from the manifest afterwards sees the pins.
pub(crate) fn pin(pins: &SharedPins, paths: Vec<PathBuf>) -> SnapshotPin {
    let mut p = lock(pins);
    for path in &paths {
        *p.counts.entry(path.clone()).or_default() += 1;
    }
    SnapshotPin {
        pins: pins.clone(),
        paths,
    }
}

/// Deletes files the manifest stopped listing, or, for those a snapshot pins, defers the
/// deletion to the drop of the last pin. Called after the new manifest is committed and the
/// in-memory state updated. A failed delete is only wasted space: the next open removes files
/// the manifest does not list.
pub(crate) fn remove_or_defer<'a>(pins: &SharedPins, paths: impl IntoIterator<Item = &'a Path>) {
    let mut p = lock(pins);
    for path in paths {
        if p.counts.contains_key(path) {
            p.deferred.insert(path.to_path_buf());
        } else {
            let _ = fs::remove_file(path);
        }
    }
}

/// Keeps a snapshot's files on disk; dropping it deletes those whose deletion was deferred.
pub(crate) struct SnapshotPin {
    pins: SharedPins,
    paths: Vec<PathBuf>,
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        let mut p = lock(&self.pins);
        for path in &self.paths {
            let Some(n) = p.counts.get_mut(path) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                p.counts.remove(path);
                if p.deferred.remove(path) {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }
}

impl MetricSnapshot {
    pub(crate) fn new(
        dir: &Path,
        manifest: &Manifest,
        pins: &SharedPins,
    ) -> Result<Option<MetricSnapshot>, MetricsError> {
        let Some(persisted_seq) = manifest.persisted_seq else {
            return Ok(None);
        };
        let bytes = manifest.to_bytes()?;
        let files: Vec<SnapshotFile> = listed_files(dir, manifest)
            .into_iter()
            .map(|(name, path)| SnapshotFile { name, path })
            .collect();
        let pin = pin(pins, files.iter().map(|f| f.path.clone()).collect());
        Ok(Some(MetricSnapshot {
            persisted_seq,
            manifest: bytes,
            files,
            _pin: pin,
        }))
    }
}

/// (name relative to the store directory, path under `dir`) of every file the manifest lists.
fn listed_files(dir: &Path, m: &Manifest) -> Vec<(String, PathBuf)> {
    let series = m.series_files.iter().map(|f| {
        (
            manifest::series_name(f.generation),
            manifest::series_path(dir, f.generation),
        )
    });
    let segments = m.segments.iter().map(|s| {
        (
            manifest::segment_name(s.tier, s.generation),
            manifest::segment_path(dir, s.tier, s.generation),
        )
    });
    series.chain(segments).collect()
}

/// How errors name a snapshot's manifest (it has no path of its own).
fn snapshot_label() -> PathBuf {
    PathBuf::from("snapshot MANIFEST")
}

/// Decodes and checks a snapshot manifest: format and version as [`Manifest::load`] does, a
/// `persisted_seq`, distinct generations below `next_gen`, series ids numbered consecutively.
/// File names are never read from it: they are built from generations (integers) and tiers
/// (`raw`, `minute`, `hour`), so every name is one the layout produces — a tier such as
/// `"../x"` or `"/etc"` does not decode.
fn parse_snapshot_manifest(bytes: &[u8]) -> Result<(Manifest, u64), MetricsError> {
    let m = Manifest::parse(bytes, &snapshot_label())?;
    let bad = |reason: String| MetricsError::Corrupt {
        path: snapshot_label(),
        reason,
    };
    let persisted_seq = m
        .persisted_seq
        .ok_or_else(|| bad("no persisted_seq: nothing was ever flushed".into()))?;
    let mut seen = BTreeSet::new();
    let generations = m
        .series_files
        .iter()
        .map(|f| f.generation)
        .chain(m.segments.iter().map(|s| s.generation));
    for g in generations {
        if g >= m.next_gen {
            return Err(bad(format!(
                "generation {g} is not below next_gen {}",
                m.next_gen
            )));
        }
        if !seen.insert(g) {
            return Err(bad(format!("generation {g} is listed twice")));
        }
    }
    let mut next_id: u64 = 0;
    for f in &m.series_files {
        if u64::from(f.first_id) != next_id {
            return Err(bad(format!(
                "series file {} starts at id {}, expected {next_id}",
                f.generation, f.first_id
            )));
        }
        next_id += u64::from(f.count);
    }
    if next_id > u64::from(u32::MAX) {
        return Err(bad(format!("{next_id} series do not fit 32-bit ids")));
    }
    for s in &m.segments {
        if s.partition_start_ms != s.tier.partition_of(s.partition_start_ms) {
            return Err(bad(format!(
                "segment {} has a partition start {} not aligned to its tier",
                s.generation, s.partition_start_ms
            )));
        }
    }
    Ok((m, persisted_seq))
}

/// The names (relative to the store directory, `/`-separated) of the files a snapshot
/// manifest lists, in the order [`restore_snapshot`] fetches them, after the checks it makes
/// on the manifest. For a caller that downloads them before restoring.
pub fn snapshot_file_names(manifest: &[u8]) -> Result<Vec<String>, MetricsError> {
    let (m, _) = parse_snapshot_manifest(manifest)?;
    Ok(listed_files(Path::new(""), &m)
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// Makes `dir` a metric store holding a snapshot taken by
/// [`MetricStore::snapshot`](crate::MetricStore::snapshot) on another server: `manifest` is
/// the snapshot's manifest bytes, `fetch(name)` returns the content of the file the snapshot
/// calls `name` (see [`SnapshotFile::name`]; `fetch` is only ever asked for names the layout
/// produces). No [`MetricStore`](crate::MetricStore) may have `dir` open meanwhile.
///
/// The manifest is untrusted input: it is checked first (format and version, a
/// `persisted_seq`, distinct generations, consecutive series ids), and file names are built
/// from its generations and tiers, never taken from it, so nothing outside the store's
/// `series/` and `segments/<tier>/` directories is ever written.
///
/// - If `dir` already holds a manifest whose `persisted_seq` is at or beyond the snapshot's,
///   nothing is changed: [`RestoreOutcome::Kept`]. A local manifest that cannot be read
///   (corrupt, newer version) is an error, and is left alone.
/// - Otherwise the local state is discarded: the local `MANIFEST` is removed first (durably),
///   then every file in `series/` and `segments/*/`, so no old file can be taken for a
///   snapshot file. Then each listed file is fetched and written durably (temporary file,
///   fsync, rename, fsync of the directory), the written files are checked the way
///   [`MetricStore::open`](crate::MetricStore::open) checks them (series files decode and
///   number ids consecutively, segment headers and indexes are intact and agree with the
///   manifest), and the manifest is written last, atomically: [`RestoreOutcome::Restored`].
///
/// A failure or crash before the manifest is written leaves a directory without `MANIFEST`,
/// which opens as an empty store (the open deletes the unlisted files): calling this again is
/// the retry. On error the files written so far are removed (best effort).
pub fn restore_snapshot<E: fmt::Display>(
    dir: &Path,
    manifest: &[u8],
    mut fetch: impl FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<RestoreOutcome, MetricsError> {
    let (snap, persisted_seq) = parse_snapshot_manifest(manifest)?;
    if let Some(local) = Manifest::load(dir)?
        && let Some(local_seq) = local.persisted_seq
        && local_seq >= persisted_seq
    {
        return Ok(RestoreOutcome::Kept {
            persisted_seq: local_seq,
        });
    }
    let subdirs = store_subdirs(dir);
    for sub in std::iter::once(dir.to_path_buf()).chain(subdirs.iter().cloned()) {
        durable::create_dir_all(&sub).map_err(manifest::durable_error)?;
    }
    // Without a manifest, every file below is unlisted: a crash from here on opens as an
    // empty store, never as the old state mixed with the new.
    let manifest_path = manifest::manifest_path(dir);
    match fs::remove_file(&manifest_path) {
        Ok(()) => manifest::sync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(MetricsError::io(&manifest_path, e)),
    }
    let _ = fs::remove_file(durable::temp_path(&manifest_path));
    for sub in &subdirs {
        let entries = fs::read_dir(sub).map_err(|e| MetricsError::io(sub, e))?;
        for entry in entries {
            let path = entry.map_err(|e| MetricsError::io(sub, e))?.path();
            // Best effort: a file left here is unlisted, so the next open deletes it, and a
            // snapshot file of the same name replaces it atomically.
            let _ = fs::remove_file(&path);
        }
        manifest::sync_dir(sub)?;
    }
    let files = listed_files(dir, &snap);
    let result = write_and_check(dir, &snap, &files, &mut fetch)
        .and_then(|()| manifest::write_atomically(&manifest_path, manifest));
    if let Err(e) = result {
        for (_, path) in &files {
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(durable::temp_path(path));
        }
        return Err(e);
    }
    Ok(RestoreOutcome::Restored { persisted_seq })
}

fn write_and_check<E: fmt::Display>(
    dir: &Path,
    snap: &Manifest,
    files: &[(String, PathBuf)],
    fetch: &mut impl FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<(), MetricsError> {
    for (name, path) in files {
        let bytes = fetch(name).map_err(|e| MetricsError::SnapshotFetch {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        manifest::write_atomically(path, &bytes)?;
    }
    let mut registry = Registry::new(usize::MAX, usize::MAX);
    crate::store::load_committed(dir, snap, &mut registry)?;
    let listed: u64 = snap.series_files.iter().map(|f| u64::from(f.count)).sum();
    if registry.len() as u64 != listed {
        return Err(MetricsError::Corrupt {
            path: snapshot_label(),
            reason: format!(
                "the series files hold {} series, the manifest counts {listed}",
                registry.len()
            ),
        });
    }
    Ok(())
}

/// The directories of the layout below the store directory.
pub(crate) fn store_subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.join("series")];
    out.extend(
        Tier::ALL
            .iter()
            .map(|t| dir.join("segments").join(t.as_str())),
    );
    out
}
