//! Replicated servers (issue 16): the object store is the write-ahead log and PostgreSQL
//! orders it.
//!
//! Every replica runs the same state machine as a single server ([`crate::state::State`]),
//! fed by one log that all replicas share instead of a local WAL:
//! 1. **write** (any replica): the batches and catalogue operations waiting are encoded into
//!    one *log object* and put in the bucket (`v1/log/<replica>/<uuid>.log`); then one
//!    PostgreSQL transaction gives its records the next sequence numbers
//!    ([`kinsight_catalogue::Catalogue::append_log`], commit order = sequence order). Only
//!    then, and once the records are applied locally, is the caller answered: an
//!    acknowledged event is in the bucket and in the catalogue, so losing the replica — disk
//!    included — loses nothing.
//! 2. **apply** (every replica): an applier task reads the catalogue's new rows in order
//!    (woken by its own commits, and every `poll_interval` for the others'), takes its own
//!    records from memory and fetches the others' objects, and applies them all in sequence
//!    order. Replicas therefore hold the same catalogue, dedup index and unflushed rows: an
//!    event acknowledged by one is readable on another after at most one poll.
//! 3. **maintain** (one replica, the holder of the `maintenance` lease): to flush it writes a
//!    [`CatalogueOp::Freeze`] record — every replica freezes the same rows at it —, writes the
//!    segments and a checkpoint object, and publishes the checkpoint in PostgreSQL fenced by
//!    its lease epoch. The other replicas adopt a published checkpoint (its manifest, and drop
//!    their frozen rows it covers). Compaction, retention, garbage collection and log
//!    truncation run only on the leader; when it dies the lease lapses and another replica
//!    takes over from the same state.
//!
//! Log object layout: a 24-byte header (`KSIGHTLG`, version, reserved, record count) and the
//! WAL's record framing (`docs/formats/wal.md`) with sequence numbers 0..n — the catalogue
//! row gives the real ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinsight_catalogue::{Catalogue, Lease, LogObject};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::error::{Result, StoreError};
use crate::record::{CatalogueOp, WalEntry};
use crate::store::{Applied, Store};
use crate::wal::{Append, Durable, RECORD_HEADER_BYTES};

/// The lease whose holder runs flushes, compaction, retention and garbage collection.
pub const MAINTENANCE_LEASE: &str = "maintenance";
/// Checkpoints kept in the catalogue (and their objects in the bucket): the newest is what a
/// replica starts from, the previous one what it falls back to if the newest is damaged —
/// the same two a single server keeps, so that objects dropped from the manifest are deleted
/// under the same rule (once neither lists them).
pub const CHECKPOINTS_KEPT: u32 = 2;

const OBJECT_MAGIC: &[u8; 8] = b"KSIGHTLG";
const OBJECT_VERSION: u32 = 1;
const OBJECT_HEADER_BYTES: usize = 24;
/// How long a replica that does not lead remembers objects a checkpoint dropped (for when it
/// becomes the leader); past that, the leader of the time has deleted them.
const FOLLOWER_DELETE_MEMORY_MS: i64 = 3_600_000;
/// Group commits being written at once by one replica (each an object put and a catalogue
/// transaction; their order is settled by the catalogue).
const COMMITS_IN_FLIGHT: usize = 4;
/// Bytes of waiting records gathered into one log object.
const MAX_OBJECT_BYTES: usize = 16 * 1024 * 1024;

/// How a store joins a replicated deployment.
#[derive(Clone, Debug)]
pub struct SharedConfig {
    pub catalogue: Catalogue,
    /// This replica's name in the catalogue (unique among live replicas; the pod name).
    pub replica_id: String,
    /// Where other replicas and operators can reach this one (shown in the registry).
    pub address: String,
    /// How often the applier looks for other replicas' records.
    pub poll_interval: Duration,
    /// Lease length of the maintenance leader; it renews at a third of it.
    pub lease_ttl: Duration,
    /// A write that the object store or the catalogue has not completed in this time fails
    /// (HTTP 503) instead of holding its caller.
    pub commit_timeout: Duration,
}

impl SharedConfig {
    pub fn new(catalogue: Catalogue, replica_id: impl Into<String>) -> Self {
        SharedConfig {
            catalogue,
            replica_id: replica_id.into(),
            address: String::new(),
            poll_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(10),
            commit_timeout: Duration::from_secs(10),
        }
    }
}

/// The running shared log of one replica.
pub(crate) struct SharedLog {
    pub cfg: SharedConfig,
    tx: Mutex<Option<mpsc::Sender<Append<Applied>>>>,
    rx: Mutex<Option<mpsc::Receiver<Append<Applied>>>>,
    /// Highest sequence number applied here.
    pub applied: AtomicU64,
    pub commits: AtomicU64,
    /// Own records written and not applied yet, by object key (the applier takes them).
    pending: Mutex<HashMap<String, Vec<Append<Applied>>>>,
    kick: Notify,
    /// The maintenance lease while this replica holds it, and when it was last renewed.
    lease: Mutex<Option<(Lease, Instant)>>,
    /// Version of the newest checkpoint this replica's manifest reflects.
    pub adopted_version: AtomicI64,
    /// The applier is keeping up (false after it found the log damaged).
    pub healthy: AtomicBool,
    /// A heartbeat reached the catalogue.
    pub joined: AtomicBool,
    pub started_ms: i64,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl SharedLog {
    pub fn new(cfg: SharedConfig, queue: usize, applied: u64, started_ms: i64) -> SharedLog {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let (stop, _) = watch::channel(false);
        SharedLog {
            cfg,
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(Some(rx)),
            applied: AtomicU64::new(applied),
            commits: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            kick: Notify::new(),
            lease: Mutex::new(None),
            adopted_version: AtomicI64::new(0),
            healthy: AtomicBool::new(true),
            joined: AtomicBool::new(false),
            started_ms,
            stop,
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub async fn append(&self, a: Append<Applied>) -> Result<()> {
        crate::wal::queue(&self.tx, a).await
    }

    /// The maintenance lease, if this replica holds it (renewed recently enough that no other
    /// replica can have taken it).
    pub fn lease(&self) -> Option<Lease> {
        let l = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        l.filter(|(_, at)| at.elapsed() < self.cfg.lease_ttl * 2 / 3)
            .map(|(l, _)| l)
    }

    fn pending_take(&self, key: &str) -> Option<Vec<Append<Applied>>> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

impl Store {
    fn shared_log(&self) -> Option<&Arc<SharedLog>> {
        self.inner.log.shared()
    }

    /// Whether this replica runs maintenance: always on a single server; on replicas, while
    /// it holds the maintenance lease.
    pub(crate) fn may_maintain(&self) -> bool {
        self.shared_log().is_none_or(|s| s.lease().is_some())
    }

    /// Starts the writer, applier, lease and heartbeat tasks of a replica.
    pub(crate) fn start_shared(&self) {
        let Some(log) = self.shared_log().cloned() else {
            return;
        };
        let rx = log.rx.lock().ok().and_then(|mut r| r.take());
        let mut tasks = Vec::new();
        if let Some(rx) = rx {
            tasks.push(tokio::spawn(self.clone().run_writer(rx)));
        }
        tasks.push(tokio::spawn(self.clone().run_applier()));
        tasks.push(tokio::spawn(self.clone().run_lease()));
        tasks.push(tokio::spawn(self.clone().run_heartbeat()));
        log.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tasks);
    }

    /// Stops the replica's tasks after queued writes are answered; gives up the lease and
    /// the registry row so that others need not wait for them to lapse.
    pub(crate) async fn stop_shared(&self) {
        let Some(log) = self.shared_log().cloned() else {
            return;
        };
        if let Ok(mut tx) = log.tx.lock() {
            tx.take();
        }
        // The writer ends when its queue is empty and its commits are done; give the applier
        // a moment to answer them, then stop everything.
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.pending.lock().map(|p| !p.is_empty()).unwrap_or(false)
            && Instant::now() < deadline
        {
            log.kick.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        log.stop.send_replace(true);
        let tasks = std::mem::take(&mut *log.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let _ =
            tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(tasks)).await;
        let cat = &log.cfg.catalogue;
        let held = log
            .lease
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some();
        if held {
            let _ = cat
                .release_lease(MAINTENANCE_LEASE, &log.cfg.replica_id)
                .await;
        }
        let _ = cat.deregister(&log.cfg.replica_id).await;
    }

    async fn run_writer(self, mut rx: mpsc::Receiver<Append<Applied>>) {
        let sem = Arc::new(tokio::sync::Semaphore::new(COMMITS_IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let mut bytes = first.payload.len();
            let mut group = vec![first];
            while bytes < MAX_OBJECT_BYTES {
                match rx.try_recv() {
                    Ok(a) => {
                        bytes += a.payload.len();
                        group.push(a);
                    }
                    Err(_) => break,
                }
            }
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let store = self.clone();
            tokio::spawn(async move {
                store.commit_group(group).await;
                drop(permit);
            });
        }
        let _ = sem.acquire_many(COMMITS_IN_FLIGHT as u32).await;
    }

    /// One group commit: the object, then its place in the log; the applier answers.
    async fn commit_group(&self, group: Vec<Append<Applied>>) {
        let Some(log) = self.shared_log() else { return };
        let cfg = &log.cfg;
        let key = crate::paths::log_object(&cfg.replica_id, &uuid::Uuid::new_v4().to_string());
        let body = encode_object(&group);
        let (n, len) = (group.len() as u64, body.len() as u64);
        log.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), group);
        let result = async {
            tokio::time::timeout(
                cfg.commit_timeout,
                self.inner.storage.put_durable(&key, body),
            )
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the object store did not store the log object within {:?}",
                    cfg.commit_timeout
                ))
            })?
            .map_err(|e| {
                StoreError::Unavailable(format!("the object store refused the log object: {e}"))
            })?;
            tokio::time::timeout(
                cfg.commit_timeout,
                cfg.catalogue
                    .append_log(key.as_ref(), &cfg.replica_id, n, len),
            )
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the catalogue did not order the write within {:?}",
                    cfg.commit_timeout
                ))
            })?
            .map_err(|e| StoreError::Unavailable(e.to_string()))
        }
        .await;
        match result {
            Ok(_) => {
                log.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, records = n, "shared log write failed; nothing of it is acknowledged");
                // Unless the applier already found it (the commit went through after all),
                // the writers get the error; a row that did commit is applied from the object.
                let message = match &e {
                    StoreError::Unavailable(m) => m.clone(),
                    other => other.to_string(),
                };
                if let Some(group) = log.pending_take(key.as_ref()) {
                    for a in group {
                        let _ = a.reply.send(Err(StoreError::Unavailable(message.clone())));
                    }
                }
            }
        }
        log.kick.notify_one();
    }

    async fn run_applier(self) {
        let Some(log) = self.shared_log().cloned() else {
            return;
        };
        let mut stop = log.stop.subscribe();
        let mut last_adopt_check = Instant::now() - Duration::from_secs(60);
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = log.kick.notified() => {}
                _ = tokio::time::sleep(log.cfg.poll_interval) => {}
            }
            match self.apply_new().await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(e) => {
                    tracing::warn!(error = %e, "applying the shared log failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if last_adopt_check.elapsed() >= log.cfg.poll_interval * 5 {
                last_adopt_check = Instant::now();
                if let Err(e) = self.adopt_checkpoint().await {
                    tracing::warn!(error = %e, "adopting the newest checkpoint failed; retrying");
                }
            }
        }
    }

    /// Applies every record the catalogue has after the ones applied here.
    async fn apply_new(&self) -> Result<()> {
        let Some(log) = self.shared_log() else {
            return Ok(());
        };
        let cat = &log.cfg.catalogue;
        loop {
            let after = log.applied.load(Ordering::Acquire);
            let rows = tokio::time::timeout(log.cfg.commit_timeout, cat.log_after(after, 64))
                .await
                .map_err(|_| StoreError::Unavailable("the catalogue did not answer".into()))?
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            if rows.is_empty() {
                return Ok(());
            }
            if rows[0].first_seq > after + 1 {
                // The leader truncated records this replica never applied (it was out of the
                // registry too long): its state cannot be completed. Unhealthy → restarted →
                // starts again from the newest checkpoint.
                log.healthy.store(false, Ordering::Release);
                return Err(StoreError::Format {
                    path: rows[0].object_key.clone(),
                    reason: format!(
                        "the shared log continues at record {} but this replica applied only through {after}: it fell behind log truncation and must restart",
                        rows[0].first_seq
                    ),
                });
            }
            // Others' objects are fetched a few at a time, applied strictly in order.
            use futures::StreamExt;
            let mut fetched = futures::stream::iter(rows.into_iter().map(|row| async move {
                match log.pending_take(&row.object_key) {
                    Some(own) => Ok((row, Records::Own(own))),
                    None => self
                        .fetch_log_object(&row)
                        .await
                        .map(|e| (row, Records::Other(e))),
                }
            }))
            .buffered(8);
            while let Some(item) = fetched.next().await {
                let (row, records) = item?;
                let last = row.last_seq;
                // Applying hands batches to the observers' bounded queue, which blocks while
                // they lag: not on a runtime worker.
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.apply_row(&row, records))
                    .await
                    .map_err(|e| StoreError::io("applier", std::io::Error::other(e)))?;
                log.applied.store(last, Ordering::Release);
            }
        }
    }

    fn apply_row(&self, row: &LogObject, records: Records) {
        let applied = self
            .shared_log()
            .map_or(0, |l| l.applied.load(Ordering::Acquire));
        let durable: Vec<Durable<Applied>> = match records {
            Records::Own(own) => own
                .into_iter()
                .enumerate()
                .map(|(i, a)| Durable {
                    seq: row.first_seq + i as u64,
                    entry: a.entry,
                    reply: a.reply,
                })
                .collect(),
            Records::Other(entries) => entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| Durable {
                    seq: row.first_seq + i as u64,
                    entry,
                    reply: oneshot::channel().0,
                })
                .collect(),
        };
        let durable: Vec<_> = durable.into_iter().filter(|d| d.seq > applied).collect();
        let tx = self
            .inner
            .observer_tx
            .lock()
            .ok()
            .and_then(|t| t.as_ref().cloned());
        crate::store::apply_durable(
            &self.inner.shared,
            tx.as_ref(),
            durable,
            row.committed_ms,
            self.inner.config.gc_grace_ms,
        );
    }

    /// Reads one log object, retrying while the object store is unreachable.
    pub(crate) async fn fetch_log_object(&self, row: &LogObject) -> Result<Vec<WalEntry>> {
        let path = object_store::path::Path::from(row.object_key.as_str());
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.inner.storage.get_opt(&path).await {
                Ok(Some(bytes)) => {
                    // A log object this build cannot read stops this replica for good (an
                    // upgrade must not mix readers of different formats): unhealthy → restart.
                    let unreadable = |e: StoreError| {
                        if let Some(l) = self.shared_log() {
                            l.healthy.store(false, Ordering::Release);
                        }
                        e
                    };
                    let entries = decode_object(&row.object_key, &bytes).map_err(unreadable)?;
                    if entries.len() as u64 != row.last_seq - row.first_seq + 1 {
                        if let Some(l) = self.shared_log() {
                            l.healthy.store(false, Ordering::Release);
                        }
                        return Err(StoreError::Format {
                            path: row.object_key.clone(),
                            reason: format!(
                                "holds {} records, the catalogue says {}",
                                entries.len(),
                                row.last_seq - row.first_seq + 1
                            ),
                        });
                    }
                    return Ok(entries);
                }
                Ok(None) => {
                    if let Some(l) = self.shared_log() {
                        l.healthy.store(false, Ordering::Release);
                    }
                    return Err(StoreError::Format {
                        path: row.object_key.clone(),
                        reason: "a log object the catalogue lists is missing from the object store (this replica fell behind log truncation; restart it)".into(),
                    });
                }
                Err(e) => {
                    if self.shared_log().is_some_and(|l| l.stopped()) {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, object = %row.object_key, "fetching a log object failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Leader, before changing the manifest: adopts the newest published checkpoint, or
    /// fails if this replica cannot yet (it has not applied the log that far).
    pub(crate) async fn require_current_checkpoint(&self) -> Result<()> {
        if self.adopt_checkpoint().await? {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "this replica has not applied the log up to the newest checkpoint yet".into(),
            ))
        }
    }

    /// Takes over the newest published checkpoint if it is newer than this replica's
    /// manifest and the replica has applied the log up to it. Returns whether the manifest
    /// reflects the newest checkpoint now.
    pub(crate) async fn adopt_checkpoint(&self) -> Result<bool> {
        let Some(log) = self.shared_log() else {
            return Ok(true);
        };
        let rows = log
            .cfg
            .catalogue
            .checkpoints(1)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(true);
        };
        if row.version <= log.adopted_version.load(Ordering::Acquire) {
            return Ok(true);
        }
        if log.applied.load(Ordering::Acquire) < row.seq {
            return Ok(false);
        }
        let path = object_store::path::Path::from(row.object_key.as_str());
        let Some(bytes) = self.inner.storage.get_opt(&path).await? else {
            return Ok(false); // replaced meanwhile; the next look finds the newer one
        };
        let ckpt = crate::checkpoint::Checkpoint::decode(&row.object_key, &bytes)?;
        let _m = self.inner.maintenance.lock().await;
        {
            let now = self.now_ms();
            let mut st = self.inner.shared.lock();
            let st = &mut *st;
            st.frozen.retain(|f| f.seq > ckpt.seq);
            // Rows this replica flushed but never got published stay readable (and flushable).
            let restore: Vec<_> = std::mem::take(&mut st.unpublished)
                .into_iter()
                .filter(|f| f.seq > ckpt.seq)
                .collect();
            if !restore.is_empty() {
                tracing::warn!(
                    frozen = restore.len(),
                    "a checkpoint without this replica's unpublished flush was adopted; its rows are unflushed again"
                );
                st.frozen.extend(restore);
                st.frozen.sort_by_key(|f| f.seq);
            }
            let mut manifest = ckpt.manifest;
            for (gid, fields) in &st.manifest.fields {
                crate::schema::merge_fields(manifest.fields.entry(*gid).or_default(), fields);
            }
            // Groups deleted by records after the checkpoint are gone here already.
            manifest
                .segments
                .retain(|gid, _| st.catalogue.group_by_id(*gid).is_some());
            manifest
                .fields
                .retain(|gid, _| st.catalogue.group_by_id(*gid).is_some());
            manifest.next_segment_id = manifest.next_segment_id.max(st.manifest.next_segment_id);
            // What the checkpoint dropped is deleted by whoever leads when it is safe (two
            // checkpoints without it, the grace period over), so a change of leader leaks
            // nothing; entries long past due were the previous leader's to delete.
            let kept = manifest.paths();
            for d in &mut st.pending_deletes {
                d.checkpoints_without = d.checkpoints_without.saturating_add(1);
            }
            st.pending_deletes
                .retain(|d| d.due_ms > now - FOLLOWER_DELETE_MEMORY_MS);
            for path in st.manifest.paths() {
                if !kept.contains(&path) && !st.pending_deletes.iter().any(|d| d.path == path) {
                    st.pending_deletes.push(crate::state::PendingDelete {
                        due_ms: now + self.inner.config.gc_grace_ms,
                        path,
                        checkpoints_without: 1,
                    });
                }
            }
            st.manifest = manifest;
            st.checkpoint_seq = ckpt.seq;
            st.checkpoint_catalogue = Arc::new(ckpt.catalogue);
            st.saved_checkpoint_seq = ckpt.seq;
            st.saved_checkpoint_ms = self.now_ms();
            st.newest_checkpoint_valid = true;
            st.dedup.take_unsaved_through(ckpt.seq);
        }
        log.adopted_version.store(row.version, Ordering::Release);
        self.inner.shared.memory_freed.notify_waiters();
        Ok(true)
    }

    async fn run_lease(self) {
        let Some(log) = self.shared_log().cloned() else {
            return;
        };
        let mut stop = log.stop.subscribe();
        let every = log.cfg.lease_ttl / 3;
        loop {
            // The lease counts from before the request: it cannot have been granted earlier.
            let renewed_at = Instant::now();
            let r = tokio::time::timeout(
                every,
                log.cfg.catalogue.acquire_lease(
                    MAINTENANCE_LEASE,
                    &log.cfg.replica_id,
                    log.cfg.lease_ttl,
                ),
            )
            .await;
            match r {
                Ok(Ok(Some(lease))) => {
                    let was = log.lease();
                    if was.is_none_or(|w| w.epoch != lease.epoch) {
                        tracing::info!(epoch = lease.epoch, "this replica runs maintenance now");
                        // Segment ids of this term cannot collide with those a previous
                        // leader may still be writing.
                        let floor = (lease.epoch.max(0) as u64) << 40;
                        let mut st = self.inner.shared.lock();
                        st.manifest.next_segment_id = st.manifest.next_segment_id.max(floor);
                    }
                    *log.lease.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((lease, renewed_at));
                }
                Ok(Ok(None)) => {
                    *log.lease.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the maintenance lease failed");
                }
                Err(_) => tracing::warn!("renewing the maintenance lease timed out"),
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn run_heartbeat(self) {
        let Some(log) = self.shared_log().cloned() else {
            return;
        };
        let mut stop = log.stop.subscribe();
        loop {
            // What this replica still needs from the log: its observers (metric store)
            // persist on their own schedule.
            let needed = self
                .inner
                .observers
                .iter()
                .map(|o| o.persisted_seq())
                .fold(log.applied.load(Ordering::Acquire), u64::min);
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                log.cfg.catalogue.heartbeat(
                    &log.cfg.replica_id,
                    &log.cfg.address,
                    log.started_ms,
                    needed,
                ),
            )
            .await;
            match r {
                Ok(Ok(())) => log.joined.store(true, Ordering::Release),
                Ok(Err(e)) => tracing::warn!(error = %e, "replica heartbeat failed"),
                Err(_) => tracing::warn!("replica heartbeat timed out"),
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Leader, before a flush: writes the record at which every replica freezes the rows
    /// this flush writes.
    pub(crate) async fn freeze_everywhere(&self) -> Result<()> {
        self.append(WalEntry::Catalogue(CatalogueOp::Freeze))
            .await
            .map(|_| ())
    }

    /// Leader: publishes a checkpoint object (already written) fenced by the lease; then
    /// drops log objects no replica needs and checkpoints no longer kept.
    pub(crate) async fn publish_checkpoint(&self, seq: u64, key: &str) -> Result<()> {
        let Some(log) = self.shared_log() else {
            return Ok(());
        };
        let cfg = &log.cfg;
        let not_leader =
            || StoreError::Unavailable("this replica no longer holds the maintenance lease".into());
        let lease = log.lease().ok_or_else(not_leader)?;
        let unavailable =
            |e: kinsight_catalogue::CatalogueError| StoreError::Unavailable(e.to_string());
        let timeout = cfg.commit_timeout;
        async fn timed<T>(
            timeout: Duration,
            f: impl std::future::Future<Output = Result<T, kinsight_catalogue::CatalogueError>>,
        ) -> Result<T, kinsight_catalogue::CatalogueError> {
            tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| {
                Err(kinsight_catalogue::CatalogueError::Unavailable(format!(
                    "no answer within {timeout:?}"
                )))
            })
        }
        let published = timed(
            timeout,
            cfg.catalogue.publish_checkpoint(
                seq,
                key,
                MAINTENANCE_LEASE,
                &cfg.replica_id,
                lease.epoch,
                CHECKPOINTS_KEPT,
            ),
        )
        .await
        .map_err(unavailable)?;
        let Some((row, dropped)) = published else {
            let _ = self
                .inner
                .storage
                .delete(&object_store::path::Path::from(key))
                .await;
            return Err(not_leader());
        };
        log.adopted_version.store(row.version, Ordering::Release);
        for k in dropped {
            let _ = self
                .inner
                .storage
                .delete(&object_store::path::Path::from(k.as_str()))
                .await;
        }
        // Log objects every kept checkpoint and every live replica are past can go.
        let kept = timed(timeout, cfg.catalogue.checkpoints(CHECKPOINTS_KEPT))
            .await
            .map_err(unavailable)?;
        let oldest_kept = kept.iter().map(|c| c.seq).min().unwrap_or(0);
        let live = timed(timeout, cfg.catalogue.live_replicas(cfg.lease_ttl * 3))
            .await
            .map_err(unavailable)?;
        let through = live
            .iter()
            .map(|r| r.applied_seq)
            .chain(
                self.inner
                    .observers
                    .iter()
                    .map(|o| o.shared_bound().unwrap_or_else(|| o.persisted_seq())),
            )
            .fold(oldest_kept, u64::min);
        if let Some(keys) = timed(
            timeout,
            cfg.catalogue
                .truncate_log(through, MAINTENANCE_LEASE, &cfg.replica_id, lease.epoch),
        )
        .await
        .map_err(unavailable)?
        {
            for k in keys {
                let _ = self
                    .inner
                    .storage
                    .delete(&object_store::path::Path::from(k.as_str()))
                    .await;
            }
        }
        Ok(())
    }

    /// Whether the store can go on at all: false only when a replica found the shared log
    /// truncated past what it applied (it must restart from the newest checkpoint).
    pub fn is_healthy(&self) -> bool {
        self.shared_log()
            .is_none_or(|l| l.healthy.load(Ordering::Acquire))
    }

    /// Whether this replica can serve: the store is open, its applier keeps up and it has
    /// registered in the catalogue. Always true on a single server.
    pub fn is_ready(&self) -> bool {
        self.shared_log()
            .is_none_or(|l| l.joined.load(Ordering::Acquire) && l.healthy.load(Ordering::Acquire))
    }

    /// The epoch of the maintenance lease while this replica holds it (`None` on a single
    /// server and on the others). Other background work (alarms) runs under the same lease
    /// and fences its writes with this epoch ([`MAINTENANCE_LEASE`]).
    pub fn maintenance_epoch(&self) -> Option<i64> {
        self.shared_log().and_then(|l| l.lease()).map(|l| l.epoch)
    }

    /// This replica's id and whether it runs maintenance now (`None` on a single server).
    pub fn replica(&self) -> Option<(String, bool)> {
        self.shared_log()
            .map(|l| (l.cfg.replica_id.clone(), l.lease().is_some()))
    }
}

enum Records {
    Own(Vec<Append<Applied>>),
    Other(Vec<WalEntry>),
}

/// A log object: header and the records of one group commit.
fn encode_object(group: &[Append<Applied>]) -> Bytes {
    let total: usize = group
        .iter()
        .map(|a| a.payload.len() + RECORD_HEADER_BYTES)
        .sum();
    let mut out = Vec::with_capacity(OBJECT_HEADER_BYTES + total);
    out.extend_from_slice(OBJECT_MAGIC);
    out.extend_from_slice(&OBJECT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(group.len() as u64).to_le_bytes());
    for (i, a) in group.iter().enumerate() {
        crate::wal::encode_record_header(
            &mut out,
            i as u64,
            a.entry.kind(),
            a.payload.len(),
            &a.payload_crc,
        );
        out.extend_from_slice(&a.payload);
    }
    Bytes::from(out)
}

/// Decodes a log object; any damage is an error naming the object and offset.
pub(crate) fn decode_object(key: &str, buf: &[u8]) -> Result<Vec<WalEntry>> {
    let bad = |offset: usize, reason: String| StoreError::Format {
        path: key.to_string(),
        reason: format!("offset {offset}: {reason}"),
    };
    if buf.len() < OBJECT_HEADER_BYTES || &buf[0..8] != OBJECT_MAGIC {
        return Err(bad(0, "not a log object".into()));
    }
    let version = u32::from_le_bytes(buf[8..12].try_into().unwrap_or_default());
    if version != OBJECT_VERSION {
        return Err(bad(
            8,
            format!("log object version {version}, this build reads {OBJECT_VERSION}"),
        ));
    }
    let count = u64::from_le_bytes(buf[16..24].try_into().unwrap_or_default());
    let mut out = Vec::new();
    let mut pos = OBJECT_HEADER_BYTES;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < RECORD_HEADER_BYTES {
            return Err(bad(pos, "short record header".into()));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let stored_crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        if rest.len() < RECORD_HEADER_BYTES + len {
            return Err(bad(pos, "short record payload".into()));
        }
        if crc32fast::hash(&rest[8..RECORD_HEADER_BYTES + len]) != stored_crc {
            return Err(bad(pos, "checksum mismatch".into()));
        }
        let index = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
        if index != out.len() as u64 {
            return Err(bad(
                pos,
                format!("record {index} where {} belongs", out.len()),
            ));
        }
        let entry = WalEntry::decode_payload(
            rest[16],
            &rest[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len],
        )
        .map_err(|r| bad(pos, r))?;
        out.push(entry);
        pos += RECORD_HEADER_BYTES + len;
    }
    if out.len() as u64 != count {
        return Err(bad(
            pos,
            format!("{} records, the header says {count}", out.len()),
        ));
    }
    Ok(out)
}

/// At start: visits every record the catalogue lists after `after`, in order, with its commit
/// time. Records at or below `checkpoint_seq` may be gone (only observers wanted them); a gap
/// above it is an error — the state would be incomplete. Returns what a local WAL replay
/// would (records, last sequence number).
pub(crate) async fn replay(
    storage: &crate::storage::Storage,
    cfg: &SharedConfig,
    started_ms: i64,
    after: u64,
    checkpoint_seq: u64,
    mut visit: impl FnMut(u64, &WalEntry, i64),
) -> Result<crate::wal::ReplayStats> {
    let catalogue = &cfg.catalogue;
    let mut stats = crate::wal::ReplayStats::default();
    let mut next = after;
    loop {
        // Still registered (with what it still needs) while a long replay runs, so that the
        // leader does not truncate the log under it.
        catalogue
            .heartbeat(&cfg.replica_id, &cfg.address, started_ms, after)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let rows = catalogue
            .log_after(next, 256)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if rows.is_empty() {
            return Ok(stats);
        }
        for row in rows {
            if row.first_seq > next + 1 && row.first_seq > checkpoint_seq + 1 {
                return Err(StoreError::Format {
                    path: row.object_key.clone(),
                    reason: format!(
                        "the shared log continues at record {} after {next}, past the checkpoint at {checkpoint_seq}: it was truncated while this replica started; start it again",
                        row.first_seq
                    ),
                });
            }
            if row.first_seq > next + 1 {
                tracing::warn!(
                    from = next + 1,
                    to = row.first_seq - 1,
                    "the shared log no longer holds these records (the checkpoint covers them; an observer that had not persisted them misses them)"
                );
            }
            let path = object_store::path::Path::from(row.object_key.as_str());
            let bytes = storage
                .get_opt(&path)
                .await?
                .ok_or_else(|| StoreError::Format {
                    path: row.object_key.clone(),
                    reason: "a log object the catalogue lists is missing from the object store"
                        .into(),
                })?;
            let entries = decode_object(&row.object_key, &bytes)?;
            stats.files += 1;
            for (i, e) in entries.iter().enumerate() {
                let seq = row.first_seq + i as u64;
                if seq > next {
                    stats.records += 1;
                    visit(seq, e, row.committed_ms);
                }
            }
            stats.last_seq = row.last_seq;
            next = row.last_seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BatchRecord;

    fn append(entry: WalEntry) -> Append<Applied> {
        let payload = entry.encode_payload();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&payload);
        Append {
            entry,
            payload,
            payload_crc: crc,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn log_objects_round_trip_and_damage_is_an_error() {
        let batch = WalEntry::Batch(Arc::new(BatchRecord {
            batch_id: Some("b1".into()),
            ingestion_time_ms: 5,
            rejected: 0,
            events: vec![kinsight_model::LogEvent {
                log_group_name: "/g".into(),
                log_stream_name: "s".into(),
                timestamp: 1,
                message: "hello".into(),
            }],
        }));
        let group = vec![
            append(batch.clone()),
            append(WalEntry::Catalogue(CatalogueOp::Freeze)),
        ];
        let bytes = encode_object(&group);
        let back = decode_object("k", &bytes).unwrap();
        assert_eq!(back, vec![batch, WalEntry::Catalogue(CatalogueOp::Freeze)]);
        for cut in [0, 10, OBJECT_HEADER_BYTES + 3, bytes.len() - 1] {
            assert!(decode_object("k", &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.to_vec();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        let err = decode_object("k", &flipped).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
