//! Replicated servers (issue 16): the alarm service's shared journal over the PostgreSQL
//! catalogue. The alarm service is synchronous (it runs off the async workers), the
//! catalogue is async: each call blocks on the server's runtime, bounded by a timeout, so a
//! PostgreSQL outage turns into a clear "unavailable" instead of a hung request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kinsight_alarms::shared::SHARED_JOURNAL_NAME;
use kinsight_alarms::{Appended, SharedJournal, SharedRead};
use kinsight_catalogue::{Catalogue, CatalogueError, Fence, JournalAppend};

/// How long one catalogue call may take before the alarm call fails as unavailable.
pub const CATALOGUE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The epoch of the lease under which this replica leads background work, if it does.
pub type LeaderEpoch = Arc<dyn Fn() -> Option<i64> + Send + Sync>;

/// [`SharedJournal`] over the catalogue's `alarms` journal. Fenced writes carry the
/// maintenance lease (`kinsight_store::shared::MAINTENANCE_LEASE`): the replica that maintains
/// the store also evaluates alarms and sends their notifications.
pub struct CatalogueJournal {
    catalogue: Catalogue,
    runtime: tokio::runtime::Handle,
    holder: String,
    lease: &'static str,
    epoch: LeaderEpoch,
}

impl CatalogueJournal {
    /// Must be called within the server's runtime; its methods must then be called off it
    /// (from `spawn_blocking`), as the alarm service does.
    pub fn new(
        catalogue: Catalogue,
        holder: impl Into<String>,
        lease: &'static str,
        epoch: LeaderEpoch,
    ) -> Self {
        CatalogueJournal {
            catalogue,
            runtime: tokio::runtime::Handle::current(),
            holder: holder.into(),
            lease,
            epoch,
        }
    }

    fn call<T>(&self, f: impl Future<Output = Result<T, CatalogueError>>) -> Result<T, String> {
        match self
            .runtime
            .block_on(tokio::time::timeout(CATALOGUE_CALL_TIMEOUT, f))
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the PostgreSQL catalogue did not answer within {CATALOGUE_CALL_TIMEOUT:?}"
            )),
        }
    }
}

impl SharedJournal for CatalogueJournal {
    fn append(&self, expected: u64, payload: &[u8], fenced: bool) -> Result<Appended, String> {
        let fence = if fenced {
            let Some(epoch) = (self.epoch)() else {
                return Ok(Appended::Fenced);
            };
            Some(Fence {
                lease: self.lease,
                holder: &self.holder,
                epoch,
            })
        } else {
            None
        };
        let r = self.call(self.catalogue.journal_append(
            SHARED_JOURNAL_NAME,
            expected,
            payload,
            fence,
        ))?;
        Ok(match r {
            JournalAppend::Appended { seq, .. } => Appended::Done(seq),
            JournalAppend::Behind => Appended::Behind,
            JournalAppend::Fenced => Appended::Fenced,
        })
    }

    fn read(&self, after: u64, limit: u32) -> Result<SharedRead, String> {
        let r = self.call(
            self.catalogue
                .journal_read(SHARED_JOURNAL_NAME, after, limit),
        )?;
        Ok(SharedRead {
            snapshot: r.snapshot,
            entries: r.entries.into_iter().map(|e| (e.seq, e.payload)).collect(),
            last_seq: r.last_seq,
        })
    }

    fn snapshot(&self, through: u64, snapshot: &[u8]) -> Result<bool, String> {
        let Some(epoch) = (self.epoch)() else {
            return Ok(false);
        };
        self.call(self.catalogue.journal_snapshot(
            SHARED_JOURNAL_NAME,
            through,
            snapshot,
            Fence {
                lease: self.lease,
                holder: &self.holder,
                epoch,
            },
        ))
    }

    fn leading(&self) -> bool {
        (self.epoch)().is_some()
    }
}

// ---- metric history for replicas that join ----

/// Opening a replica's metric store failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaMetricsError {
    #[error("restoring the published metric snapshot: {0}")]
    Restore(String),
    #[error(transparent)]
    Open(#[from] kinsight_metrics::MetricsError),
}

/// The catalogue document naming the published metric store snapshots.
pub const METRICS_DOCUMENT: &str = "metrics";

/// One published snapshot of the leader's metric store: its manifest and files in the bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Publication {
    pub persisted_seq: u64,
    pub manifest: String,
    /// Store-relative file name → object key.
    pub files: std::collections::BTreeMap<String, String>,
}

impl Publication {
    fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.manifest.as_str()).chain(self.files.values().map(String::as_str))
    }
}

/// The `metrics` document: the newest publication and the one before it (kept, with its
/// objects, so that a replica that read it just before the newer one appeared can still
/// restore it and find the log after it).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub current: Option<Publication>,
    pub previous: Option<Publication>,
}

impl Published {
    /// What the leader keeps the shared log above: the older publication kept.
    pub fn bound(&self) -> u64 {
        self.previous
            .as_ref()
            .or(self.current.as_ref())
            .map_or(0, |p| p.persisted_seq)
    }
}

/// A key the `metrics` document names, checked: the document is shared state, not trusted
/// to point anywhere but the snapshot objects.
fn snapshot_object(key: &str) -> Result<object_store::path::Path, String> {
    let ok = key.starts_with("v1/metrics/")
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !ok {
        return Err(format!("{key:?} is not a metric snapshot object"));
    }
    Ok(object_store::path::Path::from(key))
}

async fn published(catalogue: &Catalogue) -> Result<(i64, Published), String> {
    match timed(catalogue.document(METRICS_DOCUMENT)).await? {
        None => Ok((0, Published::default())),
        Some((version, body)) => serde_json::from_slice(&body)
            .map(|p| (version, p))
            .map_err(|e| format!("the catalogue's {METRICS_DOCUMENT:?} document: {e}")),
    }
}

async fn timed<T>(f: impl Future<Output = Result<T, CatalogueError>>) -> Result<T, String> {
    match tokio::time::timeout(CATALOGUE_CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the PostgreSQL catalogue did not answer within {CATALOGUE_CALL_TIMEOUT:?}"
        )),
    }
}

/// The leader's side: after each metric store maintenance, uploads the files of the committed
/// state it has not uploaded yet (files are immutable; names are unique within a store
/// directory, keys unique to this process) and publishes the snapshot, never going back; then
/// deletes the objects of the publication that dropped out. Keeps [`Self::bound`] — what the
/// log must be kept above — for the store's truncation.
pub struct MetricsPublisher {
    catalogue: Catalogue,
    storage: kinsight_store::Storage,
    prefix: String,
    bound: Arc<std::sync::atomic::AtomicU64>,
    last_sweep: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the leader looks for snapshot objects no publication names (uploads of a leader
/// that died before publishing), and how old such an object must be to go.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(600);
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

impl MetricsPublisher {
    pub fn new(catalogue: Catalogue, storage: kinsight_store::Storage) -> Self {
        MetricsPublisher {
            catalogue,
            storage,
            prefix: format!("v1/metrics/{}", uuid::Uuid::new_v4()),
            bound: Arc::default(),
            last_sweep: Default::default(),
        }
    }

    /// Shared with the metric store's ingest observer (`IngestObserver::shared_bound`).
    pub fn bound(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.bound.clone()
    }

    /// Publishes the store's committed state if it is newer than the published one.
    pub async fn publish(&self, store: &Arc<kinsight_metrics::MetricStore>) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let (version, doc) = published(&self.catalogue).await?;
        self.bound.store(doc.bound(), Ordering::Release);
        let s = store.clone();
        let Some(snap) = tokio::task::spawn_blocking(move || s.snapshot())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        if doc
            .current
            .as_ref()
            .is_some_and(|c| c.persisted_seq >= snap.persisted_seq)
        {
            return Ok(());
        }
        // Uploaded already = named by a kept publication (objects of others may be gone: a
        // replica that led before and leads again uploads what was deleted meanwhile).
        let named: std::collections::BTreeSet<&str> = doc
            .current
            .iter()
            .chain(doc.previous.iter())
            .flat_map(Publication::keys)
            .collect();
        let mut files = std::collections::BTreeMap::new();
        for f in &snap.files {
            let key = format!("{}/{}", self.prefix, f.name);
            if !named.contains(key.as_str()) {
                let bytes = tokio::fs::read(&f.path)
                    .await
                    .map_err(|e| format!("{}: {e}", f.path.display()))?;
                self.storage
                    .put_durable(&object_store::path::Path::from(key.as_str()), bytes.into())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            files.insert(f.name.clone(), key);
        }
        let manifest = format!("{}/MANIFEST-{:020}", self.prefix, snap.persisted_seq);
        self.storage
            .put_durable(
                &object_store::path::Path::from(manifest.as_str()),
                snap.manifest.clone().into(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let next = Published {
            current: Some(Publication {
                persisted_seq: snap.persisted_seq,
                manifest,
                files,
            }),
            previous: doc.current.clone(),
        };
        let body = serde_json::to_vec(&next).map_err(|e| e.to_string())?;
        if timed(
            self.catalogue
                .replace_document(METRICS_DOCUMENT, version, &body),
        )
        .await?
        .is_none()
        {
            return Ok(()); // another replica published meanwhile: next round
        }
        self.bound.store(next.bound(), Ordering::Release);
        // The publication that dropped out: its objects no kept publication names.
        if let Some(dropped) = &doc.previous {
            let kept: std::collections::BTreeSet<&str> = next
                .current
                .iter()
                .chain(next.previous.iter())
                .flat_map(Publication::keys)
                .collect();
            for key in dropped.keys().filter(|k| !kept.contains(k)) {
                let Ok(path) = snapshot_object(key) else {
                    tracing::warn!(key, "not deleting a key outside v1/metrics/");
                    continue;
                };
                if let Err(e) = self.storage.delete(&path).await {
                    tracing::warn!(key, error = %e, "deleting an old metric snapshot object failed");
                }
            }
        }
        self.sweep_orphans(&next).await;
        Ok(())
    }

    /// Deletes objects under `v1/metrics/` that no kept publication names, once they are old
    /// enough that no leader can still be about to publish them (at most every ten minutes).
    async fn sweep_orphans(&self, kept: &Published) {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < ORPHAN_SWEEP_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let named: std::collections::BTreeSet<&str> = kept
            .current
            .iter()
            .chain(kept.previous.iter())
            .flat_map(Publication::keys)
            .collect();
        let listed = match self
            .storage
            .list(&object_store::path::Path::from("v1/metrics"))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing metric snapshot objects failed");
                return;
            }
        };
        let horizon = chrono::Utc::now()
            - chrono::Duration::from_std(ORPHAN_MIN_AGE).unwrap_or(chrono::Duration::zero());
        for o in listed {
            let key = o.location.to_string();
            if named.contains(key.as_str())
                || key.starts_with(&format!("{}/", self.prefix))
                || o.last_modified > horizon
            {
                continue;
            }
            if let Err(e) = self.storage.delete(&o.location).await {
                tracing::warn!(key, error = %e, "deleting an orphaned metric snapshot object failed");
            }
        }
    }
}

/// A replica starting: when the published metric snapshot is newer than what `dir` holds
/// (an empty data directory, or one that was away), makes `dir` that snapshot, so the store
/// replays only the log after it. Returns the restored `persisted_seq`, `None` when the local
/// state was kept or nothing is published.
///
/// While it downloads, the replica is registered as needing the log after the snapshot (`me`:
/// its id and address), so the leader does not truncate what it will replay.
pub async fn restore_metrics(
    catalogue: &Catalogue,
    storage: &kinsight_store::Storage,
    dir: &std::path::Path,
    me: (&str, &str),
) -> Result<Option<u64>, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (_, doc) = published(catalogue).await?;
        let Some(current) = doc.current else {
            return Ok(None);
        };
        let _registered = HoldLog::start(catalogue, me, current.persisted_seq).await?;
        let Some(manifest) = storage
            .get_opt(&snapshot_object(&current.manifest)?)
            .await
            .map_err(|e| e.to_string())?
        else {
            if tries < 3 {
                continue; // replaced and deleted meanwhile: read the document again
            }
            return Err(format!("{} is missing from the bucket", current.manifest));
        };
        let (storage, dir, runtime) = (
            storage.clone(),
            dir.to_path_buf(),
            tokio::runtime::Handle::current(),
        );
        let files = current.files.clone();
        let restored = tokio::task::spawn_blocking(move || {
            kinsight_metrics::restore_snapshot(&dir, &manifest, |name| {
                let key = files
                    .get(name)
                    .ok_or_else(|| format!("the publication does not name {name}"))?;
                runtime
                    .block_on(storage.get_opt(&snapshot_object(key)?))
                    .map_err(|e| e.to_string())?
                    .map(|b| b.to_vec())
                    .ok_or_else(|| format!("{key} is missing from the bucket"))
            })
        })
        .await
        .map_err(|e| e.to_string())?;
        match restored {
            Ok(kinsight_metrics::RestoreOutcome::Restored { persisted_seq }) => {
                return Ok(Some(persisted_seq));
            }
            Ok(kinsight_metrics::RestoreOutcome::Kept { .. }) => return Ok(None),
            Err(e) if tries < 3 => {
                tracing::warn!(error = %e, "restoring the published metric snapshot failed; trying again");
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Registers a starting replica as needing the shared log after `seq` until dropped
/// (heartbeats every two seconds; the store's own heartbeats take over once it opens).
struct HoldLog(tokio::task::JoinHandle<()>);

impl HoldLog {
    async fn start(catalogue: &Catalogue, me: (&str, &str), seq: u64) -> Result<HoldLog, String> {
        let (id, address) = (me.0.to_string(), me.1.to_string());
        let started_ms = chrono::Utc::now().timestamp_millis();
        timed(catalogue.heartbeat(&id, &address, started_ms, seq)).await?;
        let catalogue = catalogue.clone();
        Ok(HoldLog(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Err(e) = timed(catalogue.heartbeat(&id, &address, started_ms, seq)).await {
                    tracing::warn!(error = %e, "heartbeat while restoring metrics failed");
                }
            }
        })))
    }
}

impl Drop for HoldLog {
    fn drop(&mut self) {
        self.0.abort();
    }
}
