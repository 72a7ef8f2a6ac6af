//! The store facade: opening (checkpoint + WAL replay), ingest, catalogue operations and
//! listings. Reads are in [`crate::read`], flush/compaction/retention in
//! [`crate::maintenance`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, oneshot, watch};

use crate::cardinality::{CardinalityUsage, ClaimGuard};
use crate::catalogue::{GroupEntry, StreamEntry};
use crate::config::StoreConfig;
use crate::dedup::{self, DedupEntry, DedupIndex};
use crate::error::{Result, StoreError};
use crate::ingest::{IngestOutcome, IngestRequest, Rejection, classify, validate_batch};
use crate::memtable::Memtable;
use crate::observer::{DurableBatch, DurableSamples, IngestObserver, Observed};
use crate::paths;
use crate::record::{BatchRecord, CatalogueOp, SamplesRecord, WalEntry};
use crate::shared::SharedLog;
use crate::state::{PendingDelete, State};
use crate::storage::Storage;
use crate::wal::{self, Append, Durable, WalWriter};

/// The log store. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub feed: broadcast::Sender<DurableBatch>,
    /// Woken when unflushed memory shrinks (ingest waits on it under backpressure).
    pub memory_freed: Notify,
    /// Woken when ingest wants a flush sooner than the flusher's next tick.
    pub flush_wanted: Notify,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this crate; the state is still
        // consistent at every await-free step, so continue with it rather than cascade.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Inner {
    pub config: StoreConfig,
    pub storage: Storage,
    pub shared: Arc<Shared>,
    pub log: Log,
    pub observers: Vec<Arc<dyn IngestObserver>>,
    observer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(crate) observer_tx: Mutex<Option<std::sync::mpsc::SyncSender<Observed>>>,
    /// Batch ids being written right now: a concurrent retry waits for the first attempt.
    inflight: Mutex<HashMap<String, Arc<Notify>>>,
    /// Serialises manifest changes and checkpoint writes.
    pub maintenance: tokio::sync::Mutex<()>,
    pub shutdown: watch::Sender<bool>,
    /// The indexer/flusher and compaction tasks; [`Store::shutdown`] waits for them, so the
    /// data directory is free again when it returns.
    pub(crate) background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// First sequence number assigned by this process.
    first_seq: u64,
    _lock: File,
}

/// What applying a record answers its writer: its sequence number and, for a batch whose id
/// an earlier record stored already, that record's outcome (nothing was applied).
pub(crate) struct Applied {
    pub seq: u64,
    pub duplicate_of: Option<DedupEntry>,
}

/// Where records become durable: the local write-ahead log of a single server, or the log
/// replicas share (`crate::shared`).
pub(crate) enum Log {
    Local(WalWriter<Applied>),
    Shared(Arc<SharedLog>),
}

impl Log {
    async fn append(&self, a: Append<Applied>) -> Result<()> {
        match self {
            Log::Local(w) => w.append(a).await,
            Log::Shared(s) => s.append(a).await,
        }
    }

    fn last_seq(&self) -> u64 {
        match self {
            Log::Local(w) => w.last_seq(),
            Log::Shared(s) => s.applied.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    fn commits(&self) -> u64 {
        match self {
            Log::Local(w) => w.commits(),
            Log::Shared(s) => s.commits.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub(crate) fn shared(&self) -> Option<&Arc<SharedLog>> {
        match self {
            Log::Local(_) => None,
            Log::Shared(s) => Some(s),
        }
    }
}

/// Applies durable records in sequence order under the state lock, answers their writers,
/// then hands batches to the observers and the follow feed. `now_ms` is the local clock on a
/// single server and the records' commit time on replicas.
pub(crate) fn apply_durable(
    shared: &Shared,
    observer_tx: Option<&std::sync::mpsc::SyncSender<Observed>>,
    group: Vec<Durable<Applied>>,
    now_ms: i64,
    gc_grace_ms: i64,
) {
    let mut results = Vec::with_capacity(group.len());
    let mut batches = Vec::new();
    {
        let mut st = shared.lock();
        for d in &group {
            let r = st.apply(d.seq, &d.entry, now_ms, gc_grace_ms);
            match (&r, &d.entry) {
                (Ok(None), WalEntry::Batch(record)) => {
                    batches.push(Observed::Batch(DurableBatch {
                        seq: d.seq,
                        record: record.clone(),
                        replayed: false,
                    }))
                }
                (Ok(None), WalEntry::Samples(record)) => {
                    batches.push(Observed::Samples(DurableSamples {
                        seq: d.seq,
                        record: record.clone(),
                        replayed: false,
                    }))
                }
                _ => {}
            }
            results.push(r);
        }
    }
    for (d, r) in group.into_iter().zip(results) {
        let _ = d.reply.send(r.map(|duplicate_of| Applied {
            seq: d.seq,
            duplicate_of,
        }));
    }
    for b in batches {
        if let Some(tx) = observer_tx {
            // Blocks when the observers lag: backpressure, never loss.
            let _ = tx.send(b.clone());
        }
        if let Observed::Batch(b) = b {
            let _ = shared.feed.send(b);
        }
    }
}

/// A log group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    pub name: String,
    pub id: u64,
    pub created_ms: i64,
    pub retention_days: Option<u32>,
    pub tags: BTreeMap<String, String>,
    /// Bytes of the group's segments in the object store (compressed, what retention frees).
    pub stored_bytes: u64,
    /// Message bytes not yet in segments.
    pub unflushed_bytes: u64,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    pub last_ingestion_ms: Option<i64>,
    pub stream_count: usize,
    pub segment_count: usize,
}

/// A log stream as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    pub name: String,
    pub created_ms: i64,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    pub last_ingestion_ms: Option<i64>,
}

impl StreamInfo {
    fn new(name: &str, s: &StreamEntry) -> Self {
        StreamInfo {
            name: name.to_string(),
            created_ms: s.created_ms,
            first_event_ms: s.first_event_ms,
            last_event_ms: s.last_event_ms,
            last_ingestion_ms: s.last_ingestion_ms,
        }
    }
}

/// Order of a stream listing (DescribeLogStreams' `orderBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StreamOrder {
    #[default]
    LogStreamName,
    LastEventTime,
}

/// One page of a listing; `next` is the token for the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Counters for health and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub last_seq: u64,
    pub checkpoint_seq: u64,
    pub groups: usize,
    pub segments: usize,
    pub segment_bytes: u64,
    pub unflushed_rows: usize,
    pub unflushed_bytes: usize,
    pub dedup_ids: usize,
    pub wal_files: usize,
    /// Group commits (one write + one fdatasync each) since start.
    pub wal_commits: u64,
    /// WAL records written since start.
    pub wal_records: u64,
    /// How close the group and stream caps are (issue 15, item 12).
    pub cardinality: CardinalityUsage,
}

impl Store {
    /// Opens the store: takes the data directory's lock, loads the checkpoint and the dedup
    /// files, replays the WAL (to the state and to each observer past its persisted
    /// sequence number), then starts the WAL thread and, if configured, the background tasks.
    /// Must be called within a tokio runtime.
    pub async fn open(
        config: StoreConfig,
        observers: Vec<Arc<dyn IngestObserver>>,
    ) -> Result<Store> {
        kinsight_model::durable::create_dir_all(&config.data_dir)
            .map_err(crate::storage::durable_error)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let storage = Storage::open(&config.object_store, &config.s3_options)?;
        let now = config.clock.now_ms();

        let wal_dir = config.wal_dir();
        let loaded = match &config.shared {
            None => crate::checkpoint::load(&storage, &wal_dir, now).await?,
            Some(s) => crate::checkpoint::load_shared(&storage, &s.catalogue, now).await?,
        };
        let loaded_version = loaded.version;
        let ckpt = loaded.checkpoint;
        let mut dedup = DedupIndex::new(config.dedup_window_ms, config.dedup_max_entries);
        for obj in storage.list(&paths::dedup_root()).await? {
            if paths::parse_dedup(&obj.location).is_none() {
                continue; // a write a crash interrupted (`.<seq>.bin.tmp`)
            }
            let Some(bytes) = storage.get_opt(&obj.location).await? else {
                continue;
            };
            let entries = dedup::decode(obj.location.as_ref(), &bytes)?;
            let newest = entries.iter().map(|(_, e)| e.ingestion_ms).max();
            if newest.is_none_or(|t| t < now - config.dedup_window_ms) {
                storage.delete(&obj.location).await?;
                continue;
            }
            for (id, e) in entries {
                dedup.insert(&id, e, now, false);
            }
        }

        let ckpt_catalogue = Arc::new(ckpt.catalogue.clone());
        let mut state = State {
            applied_seq: ckpt.seq,
            catalogue: ckpt.catalogue,
            memtable: Memtable::default(),
            frozen: Vec::new(),
            manifest: ckpt.manifest,
            dedup,
            checkpoint_seq: ckpt.seq,
            checkpoint_catalogue: ckpt_catalogue,
            saved_checkpoint_seq: ckpt.seq,
            saved_checkpoint_ms: now,
            newest_checkpoint_valid: loaded.newest_valid,
            previous_checkpoint_seq: loaded.previous_seq,
            // The newest checkpoint is durable without them; one more and they can go.
            pending_deletes: loaded
                .previous_only_paths
                .into_iter()
                .map(|path| PendingDelete {
                    due_ms: now + config.gc_grace_ms,
                    path,
                    checkpoints_without: 1,
                })
                .collect(),
            reservations: Default::default(),
            unpublished: Vec::new(),
        };

        let observer_seqs: Vec<u64> = observers.iter().map(|o| o.persisted_seq()).collect();
        let skip = observer_seqs.iter().copied().fold(ckpt.seq, u64::min);
        let mut first_replayed: Option<u64> = None;
        let replay = |seq: u64, entry: &WalEntry, now: i64, state: &mut State| {
            // Outcomes of catalogue operations were reported when they were written; a batch
            // another replica had stored under the same id changed nothing.
            let duplicate = if seq > ckpt.seq {
                matches!(
                    state.apply(seq, entry, now, config.gc_grace_ms),
                    Ok(Some(_))
                )
            } else {
                match entry {
                    WalEntry::Batch(r) => r
                        .batch_id
                        .as_deref()
                        .and_then(|id| state.dedup.get(id))
                        .is_some_and(|first| first.seq < seq),
                    WalEntry::Catalogue(_) | WalEntry::Samples(_) => false,
                }
            };
            if duplicate {
                return;
            }
            let observed = match entry {
                WalEntry::Batch(record) => Observed::Batch(DurableBatch {
                    seq,
                    record: record.clone(),
                    replayed: true,
                }),
                WalEntry::Samples(record) => Observed::Samples(DurableSamples {
                    seq,
                    record: record.clone(),
                    replayed: true,
                }),
                WalEntry::Catalogue(_) => return,
            };
            for (o, &p) in observers.iter().zip(&observer_seqs) {
                if seq > p {
                    observed.deliver(o.as_ref());
                }
            }
        };
        let stats = if let Some(shared) = &config.shared {
            // Registered before (and while) replaying, with what it still needs: the leader
            // truncates the log only through what every registered replica has applied.
            crate::shared::replay(&storage, shared, now, skip, ckpt.seq, |seq, entry, now| {
                first_replayed.get_or_insert(seq);
                replay(seq, entry, now, &mut state);
            })
            .await?
        } else {
            wal::replay(&wal_dir, skip, |seq, kind, payload| {
                first_replayed.get_or_insert(seq);
                let entry = WalEntry::decode_payload(kind, payload).map_err(|reason| {
                    StoreError::WalCorrupt {
                        path: wal_dir.clone(),
                        offset: 0,
                        reason: format!("record {seq}: {reason}"),
                    }
                })?;
                replay(seq, &entry, now, &mut state);
                Ok(())
            })?
        };
        for (o, &p) in observers.iter().zip(&observer_seqs) {
            if p < ckpt.seq && first_replayed.is_none_or(|f| f > p + 1) {
                tracing::warn!(
                    observer = o.name(),
                    persisted_seq = p,
                    "the WAL no longer holds every record this observer has not persisted"
                );
            }
        }
        let next_seq = stats.last_seq.max(ckpt.seq) + 1;
        tracing::info!(
            checkpoint_seq = ckpt.seq,
            wal_files = stats.files,
            replayed_records = stats.records,
            torn_tail_bytes = stats.torn_tail_bytes,
            next_seq,
            unflushed_rows = state.memtable.rows,
            "store opened"
        );

        let (feed, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            feed,
            memory_freed: Notify::new(),
            flush_wanted: Notify::new(),
        });

        // Observers run on their own thread behind a bounded queue.
        let (observer_tx, observer_thread) = if observers.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Observed>(1024);
            let obs = observers.clone();
            let t = std::thread::Builder::new()
                .name("kinsight-observers".into())
                .spawn(move || {
                    while let Ok(b) = rx.recv() {
                        for o in &obs {
                            // A panicking observer must not take the others (or the WAL
                            // thread, blocked on this queue) down with it.
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                b.deliver(o.as_ref())
                            }));
                            if r.is_err() {
                                tracing::error!(
                                    observer = o.name(),
                                    seq = b.seq(),
                                    "ingest observer panicked on a batch; it will see it again after a restart if it did not persist it"
                                );
                            }
                        }
                    }
                })
                .map_err(|e| StoreError::io("observer thread", e))?;
            (Some(tx), Some(t))
        };

        let on_durable = {
            let shared = shared.clone();
            let clock = config.clock.clone();
            let grace = config.gc_grace_ms;
            let observer_tx = observer_tx.clone();
            Box::new(move |group: Vec<Durable<Applied>>| {
                apply_durable(&shared, observer_tx.as_ref(), group, clock.now_ms(), grace);
            }) as wal::OnDurable<Applied>
        };
        let log = match &config.shared {
            None => Log::Local(WalWriter::start(
                &wal_dir,
                next_seq,
                config.wal_file_bytes,
                config.wal_queue,
                on_durable,
            )?),
            Some(s) => Log::Shared(Arc::new(SharedLog::new(
                s.clone(),
                config.wal_queue,
                next_seq - 1,
                now,
            ))),
        };

        let (shutdown, _) = watch::channel(false);
        let store = Store {
            inner: Arc::new(Inner {
                config,
                storage,
                shared,
                log,
                observers,
                observer_thread: Mutex::new(observer_thread),
                background: Mutex::new(Vec::new()),
                observer_tx: Mutex::new(observer_tx),
                inflight: Mutex::new(HashMap::new()),
                maintenance: tokio::sync::Mutex::new(()),
                shutdown,
                first_seq: next_seq,
                _lock: lock,
            }),
        };
        if let Some(log) = store.inner.log.shared() {
            // The checkpoint this replica started from is its manifest.
            if let Some(v) = loaded_version {
                log.adopted_version
                    .store(v, std::sync::atomic::Ordering::Release);
            }
            store.start_shared();
        } else {
            // Replicas never sweep at start: the maintenance leader may be writing right now.
            store.sweep_orphans().await?;
        }
        if store.inner.config.background {
            store.spawn_background();
        }
        Ok(store)
    }

    /// Stops background tasks and the WAL thread after queued records are written. Durable
    /// state needs no flush: the next open replays the WAL.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // A flush or compaction in progress finishes first (for at most `SHUTDOWN_WAIT`: a long
        // compaction is safe to cut off — its output is not in the manifest yet); then the
        // tasks drop their handles on the store, and with the last one the directory's lock.
        let tasks = std::mem::take(
            &mut *self
                .inner
                .background
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(SHUTDOWN_WAIT, all).await.is_err() {
            tracing::warn!(
                "background maintenance still running after {SHUTDOWN_WAIT:?}; stopping without it"
            );
        }
        // Replicas: background maintenance has stopped, so giving up the lease now cannot
        // let another leader start while this one still writes.
        self.stop_shared().await;
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Log::Local(w) = &inner.log {
                w.shutdown();
            }
            if let Ok(mut tx) = inner.observer_tx.lock() {
                tx.take();
            }
            let t = inner.observer_thread.lock().ok().and_then(|mut t| t.take());
            if let Some(t) = t {
                let _ = t.join();
            }
        })
        .await;
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The object store holding segments; keys are relative ([`SegmentMeta::path`]).
    ///
    /// [`SegmentMeta::path`]: crate::SegmentMeta::path
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.storage.object_store()
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Highest durable WAL sequence number.
    pub fn last_seq(&self) -> u64 {
        self.inner.log.last_seq()
    }

    /// A live feed of durable batches in sequence order (for follow/tail). A receiver that
    /// falls more than 4,096 batches behind gets `RecvError::Lagged`.
    pub fn follow(&self) -> broadcast::Receiver<DurableBatch> {
        self.inner.shared.feed.subscribe()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.config.clock.now_ms()
    }

    /// Ingests a batch: validates it, rejects single events per the reference's rules,
    /// writes the rest to the WAL and returns once they are fsynced (group commit) and
    /// readable. A batch id seen before returns the first outcome with `duplicate: true`.
    pub async fn ingest(&self, req: IngestRequest) -> Result<IngestOutcome> {
        validate_batch(&req)?;
        let Some(id) = req.batch_id.clone() else {
            return self.ingest_once(req).await;
        };
        // Claim the id, or wait for whoever holds it and then look again.
        loop {
            if let Some(prev) = self.inner.shared.lock().dedup.get(&id) {
                return Ok(IngestOutcome {
                    seq: Some(prev.seq),
                    accepted: prev.accepted as usize,
                    rejected: Vec::new(),
                    rejected_count: prev.rejected as usize,
                    duplicate: true,
                });
            }
            let wait = {
                let mut inflight = self
                    .inner
                    .inflight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match inflight.get(&id) {
                    Some(n) => Some(n.clone()),
                    None => {
                        inflight.insert(id.clone(), Arc::new(Notify::new()));
                        None
                    }
                }
            };
            match wait {
                Some(n) => {
                    // Notify::notified() registered before the re-check would be ideal; a
                    // short timeout makes a missed wake-up cost milliseconds, not a hang.
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_millis(50), n.notified())
                            .await;
                }
                None => break,
            }
        }
        // The write runs in its own task holding the claim: if the caller goes away (an HTTP
        // client timing out), the batch still either becomes durable — and its id enters the
        // dedup index — or fails, and only then is the claim released. A retry can therefore
        // never slip in between and store the batch twice.
        let store = self.clone();
        let task = tokio::spawn(async move {
            let result = store.ingest_once(req).await;
            let notify = store
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(n) = notify {
                n.notify_waiters();
            }
            result
        });
        task.await
            .map_err(|e| StoreError::io("ingest task", std::io::Error::other(e)))?
    }

    async fn ingest_once(&self, req: IngestRequest) -> Result<IngestOutcome> {
        let now = self.now_ms();
        let mut rejected = Vec::new();
        let mut accepted = Vec::with_capacity(req.events.len());
        let claim = {
            let mut st = self.inner.shared.lock();
            let mut last: Option<(&str, Option<u32>)> = None;
            for (index, e) in req.events.iter().enumerate() {
                let retention = match last {
                    Some((g, r)) if g == e.log_group_name => r,
                    _ => {
                        let group = st.catalogue.group(&e.log_group_name);
                        if group.is_none() && !req.auto_create_groups {
                            return Err(StoreError::GroupNotFound(e.log_group_name.clone()));
                        }
                        let r = group.and_then(|g| g.retention_days);
                        last = Some((&e.log_group_name, r));
                        r
                    }
                };
                match classify(e, now, retention) {
                    Some(reason) => rejected.push(Rejection { index, reason }),
                    None => accepted.push(index),
                }
            }
            // Groups and streams past the caps (issue 15, item 12); new names of the rest are
            // reserved until the record is applied.
            let State {
                catalogue,
                reservations,
                ..
            } = &mut *st;
            let (over, claim) = reservations.admit(
                catalogue,
                &self.inner.config.limits,
                &req.events,
                &mut accepted,
            );
            if !over.is_empty() {
                rejected.extend(over);
                rejected.sort_by_key(|r| r.index);
            }
            ClaimGuard {
                shared: self.inner.shared.clone(),
                claim,
            }
        };
        if accepted.is_empty() {
            return Ok(IngestOutcome {
                seq: None,
                accepted: 0,
                rejected_count: rejected.len(),
                rejected,
                duplicate: false,
            });
        }
        let n_accepted = accepted.len();
        let events = if rejected.is_empty() {
            req.events
        } else {
            let mut all: Vec<Option<_>> = req.events.into_iter().map(Some).collect();
            accepted.iter().filter_map(|&i| all[i].take()).collect()
        };
        let record = BatchRecord {
            batch_id: req.batch_id,
            ingestion_time_ms: now,
            rejected: rejected.len() as u32,
            events,
        };
        self.wait_for_memory().await?;
        let applied = self
            .append_claimed(WalEntry::Batch(Arc::new(record)), claim)
            .await?;
        if let Some(first) = applied.duplicate_of {
            // Another replica stored this batch id first (a retry sent to both).
            return Ok(IngestOutcome {
                seq: Some(first.seq),
                accepted: first.accepted as usize,
                rejected: Vec::new(),
                rejected_count: first.rejected as usize,
                duplicate: true,
            });
        }
        let seq = applied.seq;
        Ok(IngestOutcome {
            seq: Some(seq),
            accepted: n_accepted,
            rejected_count: rejected.len(),
            rejected,
            duplicate: false,
        })
    }

    /// Makes metric samples durable (issue 17: remote write, OTLP metrics) and returns their
    /// sequence number once they are — fsynced in the local WAL, or in the replicas' shared
    /// log. The observers (the metric store) receive them like batches; `payload` is theirs
    /// to read (`kinsight_metrics::samples`).
    pub async fn append_samples(&self, payload: Vec<u8>) -> Result<u64> {
        let record = SamplesRecord {
            ingestion_time_ms: self.now_ms(),
            payload,
        };
        Ok(self.append(WalEntry::Samples(Arc::new(record))).await?.seq)
    }

    /// Backpressure: while too much is unflushed, ask for a flush and wait.
    async fn wait_for_memory(&self) -> Result<()> {
        let max = self.inner.config.max_unflushed_bytes;
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.inner.config.backpressure_timeout_ms);
        loop {
            let unflushed = self.inner.shared.lock().unflushed_bytes();
            if unflushed < max {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                // Flushes are not keeping up (e.g. the object store is unreachable): say so
                // rather than hold the request until the client gives up.
                return Err(StoreError::Backpressure {
                    unflushed_bytes: unflushed,
                });
            }
            self.inner.shared.flush_wanted.notify_one();
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(100),
                self.inner.shared.memory_freed.notified(),
            )
            .await;
        }
    }

    /// Writes a record and waits until it is durable and applied.
    pub(crate) async fn append(&self, entry: WalEntry) -> Result<Applied> {
        let payload = entry.encode_payload();
        if payload.len() > crate::wal::MAX_RECORD_BYTES {
            return Err(StoreError::RecordTooLarge {
                bytes: payload.len(),
                max: crate::wal::MAX_RECORD_BYTES,
            });
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&payload);
        let (reply, rx) = oneshot::channel();
        self.inner
            .log
            .append(Append {
                entry,
                payload,
                payload_crc: crc,
                reply,
            })
            .await?;
        match self.inner.log.shared() {
            None => rx.await.map_err(|_| StoreError::ShuttingDown)?,
            // A replica applies its records in the log's order, after the others' before them:
            // while the object store cannot serve those, the answer waits — boundedly. The
            // record may still be applied later; a retry with the same batch id is then told
            // it is a duplicate.
            Some(log) => match tokio::time::timeout(log.cfg.commit_timeout * 2, rx).await {
                Ok(r) => r.map_err(|_| StoreError::ShuttingDown)?,
                Err(_) => Err(StoreError::AppendedNotApplied(format!(
                    "the write is in the shared log but was not applied within {:?} (the object store is slow or unreachable)",
                    log.cfg.commit_timeout * 2
                ))),
            },
        }
    }

    /// Writes a record that creates the names `claim` reserved; the reservation is released
    /// once the record is applied (or failed) — also when the caller goes away meanwhile, so
    /// that a cancelled request cannot free a reservation its record still needs.
    async fn append_claimed(&self, entry: WalEntry, claim: ClaimGuard) -> Result<Applied> {
        if claim.claim.is_empty() {
            return self.append(entry).await;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let r = store.append(entry).await;
            drop(claim);
            r
        })
        .await
        .map_err(|e| StoreError::io("ingest task", std::io::Error::other(e)))?
    }

    async fn catalogue_op(&self, op: CatalogueOp) -> Result<Applied> {
        self.append(WalEntry::Catalogue(op)).await
    }

    /// Creates a group (`GroupAlreadyExists` if it exists).
    pub async fn create_group(
        &self,
        name: &str,
        retention_days: Option<u32>,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        kinsight_model::names::validate_log_group_name(name)?;
        if let Some(d) = retention_days {
            kinsight_model::names::validate_retention_days(d)?;
        }
        let claim = {
            let mut st = self.inner.shared.lock();
            if st.catalogue.group(name).is_some() {
                return Err(StoreError::GroupAlreadyExists(name.to_string()));
            }
            let State {
                catalogue,
                reservations,
                ..
            } = &mut *st;
            reservations.admit_group(catalogue, &self.inner.config.limits, name)?
        };
        let claim = ClaimGuard {
            shared: self.inner.shared.clone(),
            claim,
        };
        self.append_claimed(
            WalEntry::Catalogue(CatalogueOp::CreateGroup {
                name: name.to_string(),
                retention_days,
                tags,
                created_ms: self.now_ms(),
            }),
            claim,
        )
        .await
        .map(|_| ())
    }

    /// Deletes a group with all its streams and events.
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        self.require_group(name)?;
        self.catalogue_op(CatalogueOp::DeleteGroup {
            name: name.to_string(),
        })
        .await
        .map(|_| ())
    }

    /// Sets (`Some`) or removes (`None`: never expire) a group's retention.
    pub async fn put_retention(&self, name: &str, retention_days: Option<u32>) -> Result<()> {
        if let Some(d) = retention_days {
            kinsight_model::names::validate_retention_days(d)?;
        }
        self.require_group(name)?;
        self.catalogue_op(CatalogueOp::PutRetention {
            name: name.to_string(),
            retention_days,
        })
        .await
        .map(|_| ())
    }

    pub async fn tag_group(&self, name: &str, tags: BTreeMap<String, String>) -> Result<()> {
        self.require_group(name)?;
        self.catalogue_op(CatalogueOp::TagGroup {
            name: name.to_string(),
            tags,
        })
        .await
        .map(|_| ())
    }

    pub async fn untag_group(&self, name: &str, keys: Vec<String>) -> Result<()> {
        self.require_group(name)?;
        self.catalogue_op(CatalogueOp::UntagGroup {
            name: name.to_string(),
            keys,
        })
        .await
        .map(|_| ())
    }

    pub async fn create_stream(&self, group: &str, stream: &str) -> Result<()> {
        kinsight_model::names::validate_log_stream_name(stream)?;
        let claim = {
            let mut st = self.inner.shared.lock();
            let Some(g) = st.catalogue.group(group) else {
                return Err(StoreError::GroupNotFound(group.to_string()));
            };
            if g.streams.contains_key(stream) {
                return Err(StoreError::StreamAlreadyExists {
                    group: group.to_string(),
                    stream: stream.to_string(),
                });
            }
            let State {
                catalogue,
                reservations,
                ..
            } = &mut *st;
            reservations.admit_stream(catalogue, &self.inner.config.limits, group, stream)?
        };
        let claim = ClaimGuard {
            shared: self.inner.shared.clone(),
            claim,
        };
        self.append_claimed(
            WalEntry::Catalogue(CatalogueOp::CreateStream {
                group: group.to_string(),
                stream: stream.to_string(),
                created_ms: self.now_ms(),
            }),
            claim,
        )
        .await
        .map(|_| ())
    }

    /// Deletes a stream and the events it had (events written later start it afresh).
    pub async fn delete_stream(&self, group: &str, stream: &str) -> Result<()> {
        self.require_group(group)?;
        self.catalogue_op(CatalogueOp::DeleteStream {
            group: group.to_string(),
            stream: stream.to_string(),
            deleted_ms: self.now_ms(),
        })
        .await
        .map(|_| ())
    }

    fn require_group(&self, name: &str) -> Result<()> {
        if self.inner.shared.lock().catalogue.group(name).is_none() {
            return Err(StoreError::GroupNotFound(name.to_string()));
        }
        Ok(())
    }

    pub(crate) fn group_info(st: &State, g: &GroupEntry) -> GroupInfo {
        let unflushed = st.memtable.groups.get(&g.id).map_or(0, |m| m.raw_bytes)
            + st.frozen
                .iter()
                .filter_map(|f| f.groups.get(&g.id))
                .map(|m| m.raw_bytes)
                .sum::<usize>();
        GroupInfo {
            name: g.name.clone(),
            id: g.id,
            created_ms: g.created_ms,
            retention_days: g.retention_days,
            tags: g.tags.clone(),
            stored_bytes: st.manifest.group_bytes(g.id),
            unflushed_bytes: unflushed as u64,
            first_event_ms: g.first_event_ms,
            last_event_ms: g.last_event_ms,
            last_ingestion_ms: g.last_ingestion_ms,
            stream_count: g.streams.len(),
            segment_count: st.manifest.segments.get(&g.id).map_or(0, |s| s.len()),
        }
    }

    /// One group, if it exists.
    pub fn group(&self, name: &str) -> Option<GroupInfo> {
        let st = self.inner.shared.lock();
        st.catalogue.group(name).map(|g| Self::group_info(&st, g))
    }

    /// Groups by name, starting after the token `after` (a name), at most `limit`.
    pub fn list_groups(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Page<GroupInfo> {
        let st = self.inner.shared.lock();
        let prefix = prefix.unwrap_or("");
        let start = after.map_or(std::ops::Bound::Unbounded, |a| {
            std::ops::Bound::Excluded(a.to_string())
        });
        let mut items: Vec<GroupInfo> = st
            .catalogue
            .groups
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(n, _)| n.starts_with(prefix))
            .take(limit.saturating_add(1))
            .map(|(_, g)| Self::group_info(&st, g))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|g| g.name.clone())
        } else {
            None
        };
        Page { items, next }
    }

    /// Streams of a group. By name: `prefix` filters, the token is the last name. By last
    /// event time (newest first when `descending`): the token is `"<ms>/<name>"` of the last
    /// item. `after` tokens come from a previous page.
    pub fn list_streams(
        &self,
        group: &str,
        prefix: Option<&str>,
        order: StreamOrder,
        descending: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StreamInfo>> {
        let st = self.inner.shared.lock();
        let g = st
            .catalogue
            .group(group)
            .ok_or_else(|| StoreError::GroupNotFound(group.to_string()))?;
        let prefix = prefix.unwrap_or("");
        let key = |s: &StreamInfo| match order {
            StreamOrder::LogStreamName => s.name.clone(),
            StreamOrder::LastEventTime => {
                format!(
                    "{:020}/{}",
                    s.last_event_ms.unwrap_or(i64::MIN).max(0),
                    s.name
                )
            }
        };
        let mut all: Vec<(String, StreamInfo)> = g
            .streams
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, s)| {
                let info = StreamInfo::new(n, s);
                (key(&info), info)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        if descending {
            all.reverse();
        }
        let after_key = after.map(|a| match order {
            StreamOrder::LogStreamName => a.to_string(),
            StreamOrder::LastEventTime => match a.split_once('/') {
                Some((ms, name)) => format!("{:020}/{name}", ms.parse::<i64>().unwrap_or(0).max(0)),
                None => a.to_string(),
            },
        });
        let mut items: Vec<StreamInfo> = all
            .into_iter()
            .filter(|(k, _)| match &after_key {
                None => true,
                Some(a) if descending => k < a,
                Some(a) => k > a,
            })
            .take(limit.saturating_add(1))
            .map(|(_, s)| s)
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|s| match order {
                StreamOrder::LogStreamName => s.name.clone(),
                StreamOrder::LastEventTime => {
                    format!("{}/{}", s.last_event_ms.unwrap_or(0).max(0), s.name)
                }
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub fn stats(&self) -> StoreStats {
        let st = self.inner.shared.lock();
        StoreStats {
            last_seq: self.inner.log.last_seq(),
            checkpoint_seq: st.saved_checkpoint_seq,
            groups: st.catalogue.groups.len(),
            segments: st.manifest.segments.values().map(|s| s.len()).sum(),
            segment_bytes: st
                .manifest
                .segments
                .values()
                .flatten()
                .map(|s| s.size_bytes)
                .sum(),
            unflushed_rows: st.memtable.rows
                + st.frozen
                    .iter()
                    .flat_map(|f| f.groups.values())
                    .map(|g| g.rows)
                    .sum::<usize>(),
            unflushed_bytes: st.unflushed_bytes(),
            dedup_ids: st.dedup.len(),
            wal_files: wal::list_files(&self.inner.config.wal_dir()).map_or(0, |f| f.len()),
            wal_commits: self.inner.log.commits(),
            wal_records: self
                .inner
                .log
                .last_seq()
                .saturating_sub(self.inner.first_seq.saturating_sub(1)),
            cardinality: crate::cardinality::usage(
                &st.catalogue,
                &self.inner.config.limits,
                &st.reservations,
            ),
        }
    }
}

/// How long [`Store::shutdown`] waits for a flush or compaction in progress.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes an exclusive advisory lock on `<data_dir>/LOCK` so two servers never share a WAL.
fn lock_data_dir(dir: &std::path::Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    // SAFETY: flock on a valid, owned file descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StoreError::Locked {
            path: dir.to_path_buf(),
        });
    }
    Ok(f)
}
