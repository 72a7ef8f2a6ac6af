//! The alarm service: definitions, states, history and the notification outbox, persisted in
//! one document; evaluation of due alarms against a [`MetricSource`] at an injected time; and
//! the two background tasks (evaluator, notifier) the server spawns.

use crate::AlarmError;
use crate::clock::Clock;
use crate::evaluate::{EvalParams, Point, evaluate, num};
use crate::journal::{self, Journal, Op};
use crate::model::{
    Alarm, AlarmConfig, LowSampleCountPercentile, MAX_PROMQL_SERIES, StateValue, TreatMissingData,
};
use crate::notify::{Delivery, Notification, NotifierConfig, Target, deliver, redact_url};
use crate::shared::{Appended, SHARED_JOURNAL_NAME, SharedJournal, SharedRead};
use crate::source::MetricSource;
use crate::state::{
    self, AlarmHistoryItem, AlarmState, Document, HISTORY_RETENTION_MS, HistoryItemType,
    MetricAlarm, StoredAlarm, StoredHistoryItem, iso,
};
use kinsight_metrics::{SeriesKey, Statistic};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AlarmServiceConfig {
    /// An evaluation for the window ending at tick `t` runs at `t + lag`, leaving agents
    /// (which flush every 5 s by default) and the WAL time to deliver the last samples.
    pub evaluation_lag_ms: i64,
    /// How often the background evaluator looks for due alarms.
    pub poll_ms: u64,
    /// History items kept per alarm (besides the 14-day limit).
    pub max_history_per_alarm: usize,
    pub notifier: NotifierConfig,
}

impl Default for AlarmServiceConfig {
    fn default() -> Self {
        AlarmServiceConfig {
            evaluation_lag_ms: 10_000,
            poll_ms: 1_000,
            max_history_per_alarm: 1_000,
            notifier: NotifierConfig::default(),
        }
    }
}

/// DescribeAlarms filters.
#[derive(Debug, Clone, Default)]
pub struct DescribeFilter {
    pub alarm_names: Vec<String>,
    pub alarm_name_prefix: Option<String>,
    pub state_value: Option<StateValue>,
}

/// A state change made by an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub alarm_name: String,
    pub from: StateValue,
    pub to: StateValue,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    /// Alarms evaluated (due at this time).
    pub evaluated: usize,
    pub transitions: Vec<Transition>,
    /// Alarms whose metric could not be read, with the error.
    pub errors: Vec<(String, String)>,
}

#[derive(Clone)]
struct Entry {
    alarm: Arc<Alarm>,
    state: AlarmState,
    config_updated_ms: i64,
    /// Per-series states of a multi-series alarm, by series label.
    series: BTreeMap<String, AlarmState>,
    /// The last evaluation tick done (in memory only: re-evaluating a tick after a restart
    /// gives the same state, hence no transition and no action).
    last_tick_ms: i64,
}

/// What the journal records: everything but in-memory bookkeeping.
#[derive(Clone, Default)]
struct Data {
    alarms: BTreeMap<String, Entry>,
    history: Vec<StoredHistoryItem>,
    outbox: Vec<Notification>,
    next_id: u64,
}

impl Data {
    fn from_document(doc: Document, path: &Path) -> Result<Data, AlarmError> {
        let mut data = Data {
            history: doc.history,
            outbox: doc.outbox,
            next_id: doc.next_notification_id.max(1),
            ..Data::default()
        };
        for s in doc.alarms {
            let e = entry_of(s, path)?;
            data.alarms.insert(e.alarm.name().to_string(), e);
        }
        Ok(data)
    }

    fn document(&self, journal_generation: u64) -> Document {
        Document {
            format: state::FORMAT.into(),
            version: state::VERSION,
            journal_generation,
            alarms: self.alarms.values().map(stored).collect(),
            history: self.history.clone(),
            outbox: self.outbox.clone(),
            next_notification_id: self.next_id,
        }
    }
}

struct Inner {
    data: Data,
    in_flight: HashSet<u64>,
    backend: Backend,
    /// Size of the last snapshot: the journal is folded into a new one once it is larger.
    snapshot_bytes: u64,
}

/// Where changes go: the local journal of a single server, or the replicas' shared journal.
enum Backend {
    Local(Journal),
    Shared(Box<Shared>),
}

/// A replica's view of the shared journal.
struct Shared {
    journal: Arc<dyn SharedJournal>,
    /// The last entry applied.
    applied: u64,
    /// The state as of `applied`: a change the journal refused (another replica came first,
    /// or the catalogue is down) is undone by going back to it.
    committed: Data,
    /// Entries and bytes applied since the last snapshot this replica saw or wrote.
    entries_since_snapshot: u64,
    bytes_since_snapshot: u64,
}

/// Entries after which the leader folds the shared journal into a snapshot.
const SHARED_ENTRIES_BEFORE_SNAPSHOT: u64 = 1_000;
/// Change sets one catch-up reads per round trip.
const SHARED_READ_PAGE: u32 = 256;
/// A refused shared append is retried this often (re-planned on the newer state) before the
/// caller is told the alarms are too busy.
const SHARED_APPEND_TRIES: u32 = 20;

/// The journal is folded into a snapshot once it exceeds both this and the last snapshot.
const MIN_JOURNAL_BYTES_BEFORE_SNAPSHOT: u64 = 4 << 20;

fn stored(e: &Entry) -> StoredAlarm {
    StoredAlarm {
        config: e.alarm.config.clone(),
        state: e.state.clone(),
        config_updated_ms: e.config_updated_ms,
        series_states: e.series.clone(),
    }
}

fn entry_of(s: StoredAlarm, path: &Path) -> Result<Entry, AlarmError> {
    let name = s.config.alarm_name.clone();
    let alarm = Alarm::try_from(s.config).map_err(|e| AlarmError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("alarm {name:?}: {e}"),
    })?;
    Ok(Entry {
        alarm: Arc::new(alarm),
        state: s.state,
        config_updated_ms: s.config_updated_ms,
        series: s.series_states,
        last_tick_ms: i64::MIN,
    })
}

fn apply(inner: &mut Data, op: Op, path: &Path) -> Result<(), AlarmError> {
    match op {
        Op::Put(s) => {
            let e = entry_of(*s, path)?;
            inner.alarms.insert(e.alarm.name().to_string(), e);
        }
        Op::Delete(name) => {
            inner.alarms.remove(&name);
        }
        Op::History(h) => inner.history.push(h),
        Op::OutboxPut(n) => match inner.outbox.iter_mut().find(|x| x.id == n.id) {
            Some(x) => *x = *n,
            None => inner.outbox.push(*n),
        },
        Op::OutboxRemove(id) => inner.outbox.retain(|x| x.id != id),
        Op::NextNotificationId(n) => inner.next_id = inner.next_id.max(n),
    }
    Ok(())
}

pub struct AlarmService {
    path: PathBuf,
    config: AlarmServiceConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    http: reqwest::Client,
    /// Replicas: after a failed call to the shared journal, changes fail at once until then
    /// (the lock is not held for a catalogue timeout by every caller during an outage).
    journal_down_until: Mutex<Option<std::time::Instant>>,
    /// Replicas: delivery results that could not be recorded yet (recorded before the next
    /// claim, so a catalogue hiccup does not make the claim lapse and the webhook repeat).
    unrecorded: Mutex<Unrecorded>,
    /// When followers last dropped expired history (the leader does it in its snapshots).
    last_prune_ms: std::sync::atomic::AtomicI64,
}

/// Sent notifications with their results, not recorded yet.
type Unrecorded = Vec<(Vec<Notification>, HashMap<u64, Delivery>)>;

/// How long changes fail fast after the shared journal could not be reached.
const JOURNAL_BACKOFF: Duration = Duration::from_secs(2);

/// Handles of the background tasks; dropping them does not stop the tasks, `abort` does.
pub struct BackgroundTasks {
    pub evaluator: tokio::task::JoinHandle<()>,
    pub notifier: tokio::task::JoinHandle<()>,
}

impl BackgroundTasks {
    pub fn abort(&self) {
        self.evaluator.abort();
        self.notifier.abort();
    }
}

/// An alarm picked for evaluation: name, definition, tick, current state, series states.
type DueAlarm = (
    String,
    Arc<Alarm>,
    i64,
    StateValue,
    BTreeMap<String, AlarmState>,
);

/// The result of evaluating one alarm, computed without the lock.
struct Outcome {
    name: String,
    alarm: Arc<Alarm>,
    state: StateValue,
    reason: Option<String>,
    reason_data: Value,
    values: Vec<Point>,
    series: Option<BTreeMap<String, AlarmState>>,
    breaching_series: Vec<Value>,
}

impl AlarmService {
    /// Opens (or creates) the alarm state in `dir/alarms.json`.
    pub fn open(
        dir: impl AsRef<Path>,
        config: AlarmServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, AlarmError> {
        let dir = dir.as_ref();
        kinsight_model::durable::create_dir_all(dir)?;
        let path = dir.join("alarms.json");
        let doc = state::load(&path)?;
        let snapshot_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let generation = doc.as_ref().map_or(0, |d| d.journal_generation);
        journal::remove_stale(dir, generation)?;
        let (journal, batches) = Journal::open(dir, generation)?;
        let mut data = match doc {
            Some(doc) => Data::from_document(doc, &path)?,
            None => Data {
                next_id: 1,
                ..Data::default()
            },
        };
        let jpath = journal::journal_path(dir, generation);
        for ops in batches {
            for op in ops {
                apply(&mut data, op, &jpath)?;
            }
        }
        let inner = Inner {
            data,
            in_flight: HashSet::new(),
            backend: Backend::Local(journal),
            snapshot_bytes,
        };
        Self::with(inner, path, config, clock)
    }

    /// Replicated servers: the alarm state lives in the replicas' shared journal (the
    /// PostgreSQL catalogue). Every replica serves the whole API and applies every change in
    /// the journal's order; only the one that [`SharedJournal::leading`] evaluates and
    /// notifies, its writes fenced by its lease. Reads the journal before returning.
    pub fn open_shared(
        journal: Arc<dyn SharedJournal>,
        config: AlarmServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, AlarmError> {
        let data = Data {
            next_id: 1,
            ..Data::default()
        };
        let inner = Inner {
            data: data.clone(),
            in_flight: HashSet::new(),
            backend: Backend::Shared(Box::new(Shared {
                journal,
                applied: 0,
                committed: data,
                entries_since_snapshot: 0,
                bytes_since_snapshot: 0,
            })),
            snapshot_bytes: 0,
        };
        let svc = Self::with(inner, PathBuf::from(SHARED_JOURNAL_NAME), config, clock)?;
        svc.sync()?;
        Ok(svc)
    }

    fn with(
        inner: Inner,
        path: PathBuf,
        config: AlarmServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, AlarmError> {
        let http = config
            .notifier
            .egress
            .client(Duration::from_millis(config.notifier.timeout_ms))
            .map_err(|e| AlarmError::Http(e.to_string()))?;
        Ok(Arc::new(AlarmService {
            path,
            config,
            clock,
            inner: Mutex::new(inner),
            wake: tokio::sync::Notify::new(),
            http,
            journal_down_until: Mutex::new(None),
            unrecorded: Mutex::new(Vec::new()),
            last_prune_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One call to the shared journal: refused at once for a moment after one failed.
    fn journal_call<T>(&self, f: impl FnOnce() -> Result<T, String>) -> Result<T, AlarmError> {
        let mut down = self
            .journal_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if down.is_some_and(|t| std::time::Instant::now() < t) {
            return Err(AlarmError::Unavailable(
                "the catalogue did not answer a moment ago; try again shortly".into(),
            ));
        }
        drop(down);
        let r = f();
        down = self
            .journal_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *down = match &r {
            Err(_) => Some(std::time::Instant::now() + JOURNAL_BACKOFF),
            Ok(_) => None,
        };
        r.map_err(AlarmError::Unavailable)
    }

    /// Whether this service runs evaluation and notification now: always on a single server;
    /// on replicas, only the leader.
    pub fn leading(&self) -> bool {
        match &self.lock().backend {
            Backend::Local(_) => true,
            Backend::Shared(s) => s.journal.leading(),
        }
    }

    /// Replicas: applies the changes other replicas made (blocking; a no-op on a single
    /// server). The background evaluator calls it every poll. The catalogue is read without
    /// holding the service's lock, so readers never wait for it.
    pub fn sync(&self) -> Result<(), AlarmError> {
        loop {
            let (journal, after) = match &self.lock().backend {
                Backend::Local(_) => return Ok(()),
                Backend::Shared(s) => (s.journal.clone(), s.applied),
            };
            // Not through `journal_call`: the poll is what finds the catalogue back.
            let read = journal
                .read(after, SHARED_READ_PAGE)
                .map_err(AlarmError::Unavailable);
            *self
                .journal_down_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = match &read {
                Err(_) => Some(std::time::Instant::now() + JOURNAL_BACKOFF),
                Ok(_) => None,
            };
            let read = read?;
            let mut g = self.lock();
            if matches!(&g.backend, Backend::Shared(s) if s.applied != after) {
                continue; // a change of this replica's moved on meanwhile: read again from there
            }
            if !self.apply_read(&mut g, read)? {
                self.prune_followers_history(&mut g);
                return Ok(());
            }
        }
    }

    /// Followers drop expired history once a minute, as the leader's snapshots do.
    fn prune_followers_history(&self, inner: &mut Inner) {
        use std::sync::atomic::Ordering;
        let now = self.clock.now_ms();
        if now.saturating_sub(self.last_prune_ms.load(Ordering::Relaxed)) < 60_000 {
            return;
        }
        self.last_prune_ms.store(now, Ordering::Relaxed);
        let max = self.config.max_history_per_alarm;
        prune_history(&mut inner.data.history, now, max);
        if let Backend::Shared(s) = &mut inner.backend {
            prune_history(&mut s.committed.history, now, max);
        }
    }

    /// Catches up while holding the lock (after a refused append, before planning again).
    fn catch_up(&self, inner: &mut Inner) -> Result<(), AlarmError> {
        loop {
            let Backend::Shared(shared) = &inner.backend else {
                return Ok(());
            };
            let (journal, after) = (shared.journal.clone(), shared.applied);
            let read = self.journal_call(|| journal.read(after, SHARED_READ_PAGE))?;
            if !self.apply_read(inner, read)? {
                return Ok(());
            }
        }
    }

    /// Applies what a read of the shared journal returned; true when there is more to read.
    fn apply_read(&self, inner: &mut Inner, read: SharedRead) -> Result<bool, AlarmError> {
        let Backend::Shared(shared) = &mut inner.backend else {
            return Ok(false);
        };
        let before = (
            shared.applied,
            shared.entries_since_snapshot,
            shared.bytes_since_snapshot,
        );
        let applied = Self::apply_read_to(&self.path, &mut inner.data, shared, read);
        match applied {
            Ok(more) => Ok(more),
            Err(e) => {
                // All of the read or none of it: back to the committed state.
                inner.data = shared.committed.clone();
                (
                    shared.applied,
                    shared.entries_since_snapshot,
                    shared.bytes_since_snapshot,
                ) = before;
                Err(e)
            }
        }
    }

    fn apply_read_to(
        path: &Path,
        data: &mut Data,
        shared: &mut Shared,
        read: SharedRead,
    ) -> Result<bool, AlarmError> {
        // Decode everything before changing anything.
        let snapshot = match read.snapshot {
            Some((seq, bytes)) => Some((
                seq,
                serde_json::from_slice::<Document>(&bytes).map_err(|e| AlarmError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("snapshot at entry {seq}: {e}"),
                })?,
            )),
            None => None,
        };
        let mut lines = Vec::with_capacity(read.entries.len());
        for (seq, payload) in &read.entries {
            let line: journal::Line =
                serde_json::from_slice(payload).map_err(|e| AlarmError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("entry {seq}: {e}"),
                })?;
            lines.push((*seq, payload.len() as u64, line));
        }
        let mut changed = false;
        if let Some((seq, doc)) = snapshot {
            *data = Data::from_document(doc, path)?;
            shared.applied = seq;
            shared.entries_since_snapshot = 0;
            shared.bytes_since_snapshot = 0;
            changed = true;
        }
        let n = lines.len();
        for (seq, bytes, line) in lines {
            for op in line.ops {
                apply(data, op, path)?;
            }
            shared.applied = seq;
            shared.entries_since_snapshot += 1;
            shared.bytes_since_snapshot += bytes;
            changed = true;
        }
        if changed {
            shared.committed = data.clone();
        }
        Ok(n >= SHARED_READ_PAGE as usize && shared.applied < read.last_seq)
    }

    /// Runs `f` again while the shared journal says another replica changed the alarms first
    /// (`f` re-plans on the newer state each time).
    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T, AlarmError>) -> Result<T, AlarmError> {
        let mut tries = 1;
        loop {
            match f() {
                Err(AlarmError::Conflict) if tries < SHARED_APPEND_TRIES => tries += 1,
                Err(AlarmError::Conflict) => {
                    return Err(AlarmError::Unavailable(format!(
                        "the alarms changed concurrently {tries} times in a row; try again"
                    )));
                }
                r => return r,
            }
        }
    }

    /// Makes a change set durable: one fsynced local journal line, or one entry of the shared
    /// journal (`fenced`: only while this replica leads). On a single server, folds the journal
    /// into a new snapshot when it has grown large. On replicas a refused change is undone in
    /// memory (back to the last committed state) and reported as [`AlarmError::Conflict`]
    /// (caught up: plan again) or as unavailable.
    fn commit(&self, inner: &mut Inner, ops: Vec<Op>, fenced: bool) -> Result<(), AlarmError> {
        let shared = match &mut inner.backend {
            Backend::Local(journal) => {
                journal.append(&ops)?;
                if journal.bytes() > MIN_JOURNAL_BYTES_BEFORE_SNAPSHOT.max(inner.snapshot_bytes) {
                    // The change is already durable in the journal: a failed snapshot is
                    // retried at the next change, not reported as a failed change.
                    if let Err(e) = self.snapshot(inner) {
                        tracing::error!(
                            "alarm state snapshot failed (the journal keeps every change): {e}"
                        );
                    }
                }
                return Ok(());
            }
            Backend::Shared(shared) => shared,
        };
        if ops.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_vec(&journal::LineRef { ops: &ops }).map_err(|e| {
            AlarmError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        })?;
        let (journal, after) = (shared.journal.clone(), shared.applied);
        let appended = self.journal_call(|| journal.append(after, &payload, fenced));
        let Backend::Shared(shared) = &mut inner.backend else {
            return Ok(());
        };
        let refused = match appended {
            Ok(Appended::Done(seq)) => {
                for op in ops {
                    apply(&mut shared.committed, op, &self.path)?;
                }
                shared.applied = seq;
                shared.entries_since_snapshot += 1;
                shared.bytes_since_snapshot += payload.len() as u64;
                return Ok(());
            }
            Ok(Appended::Behind) => AlarmError::Conflict,
            Ok(Appended::Fenced) => AlarmError::Unavailable(
                "this replica no longer leads alarm evaluation; its change was not made".into(),
            ),
            Err(e) => e,
        };
        inner.data = shared.committed.clone();
        if matches!(refused, AlarmError::Conflict) {
            self.catch_up(inner)?;
        }
        Err(refused)
    }

    fn snapshot(&self, inner: &mut Inner) -> Result<(), AlarmError> {
        let now = self.clock.now_ms();
        prune_history(
            &mut inner.data.history,
            now,
            self.config.max_history_per_alarm,
        );
        match &mut inner.backend {
            Backend::Local(journal) => {
                state::save(&self.path, &inner.data.document(journal.generation() + 1))?;
                inner.snapshot_bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
                journal.rotate()
            }
            Backend::Shared(shared) => {
                prune_history(
                    &mut shared.committed.history,
                    now,
                    self.config.max_history_per_alarm,
                );
                let bytes = serde_json::to_vec(&shared.committed.document(0)).map_err(|e| {
                    AlarmError::Corrupt {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let (journal, through) = (shared.journal.clone(), shared.applied);
                let done = self.journal_call(|| journal.snapshot(through, &bytes))?;
                let Backend::Shared(shared) = &mut inner.backend else {
                    return Ok(());
                };
                if done {
                    shared.entries_since_snapshot = 0;
                    shared.bytes_since_snapshot = 0;
                }
                Ok(())
            }
        }
    }

    /// Writes a snapshot now (starting a new journal), dropping history older than 14 days.
    /// On replicas only the leader folds the shared journal (a no-op elsewhere).
    pub fn compact_state(&self) -> Result<(), AlarmError> {
        let mut g = self.lock();
        if let Backend::Shared(s) = &g.backend
            && !s.journal.leading()
        {
            return Ok(());
        }
        self.snapshot(&mut g)
    }

    /// Replicas, leader: folds the shared journal once it has grown.
    fn snapshot_if_grown(&self) -> Result<(), AlarmError> {
        let mut g = self.lock();
        let Backend::Shared(s) = &g.backend else {
            return Ok(());
        };
        if !s.journal.leading()
            || (s.entries_since_snapshot < SHARED_ENTRIES_BEFORE_SNAPSHOT
                && s.bytes_since_snapshot < MIN_JOURNAL_BYTES_BEFORE_SNAPSHOT)
        {
            return Ok(());
        }
        self.snapshot(&mut g)
    }

    /// Refuses actions whose host is an address webhooks may not reach (issue 15, item 10);
    /// host names are checked when a delivery resolves them.
    fn check_destinations(&self, alarm: &Alarm) -> Result<(), AlarmError> {
        let c = &alarm.config;
        for (field, list) in [
            ("AlarmActions", &c.alarm_actions),
            ("OKActions", &c.ok_actions),
            ("InsufficientDataActions", &c.insufficient_data_actions),
        ] {
            for action in list {
                let url = Target::parse(action).map_err(|m| AlarmError::invalid(field, m))?;
                let url = reqwest::Url::parse(&url.url)
                    .map_err(|e| AlarmError::invalid(field, e.to_string()))?;
                if let Err(refused) = self.config.notifier.egress.check_literal(&url) {
                    return Err(AlarmError::invalid(
                        field,
                        format!("{}: {refused}", redact_url(action)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// PutMetricAlarm: creates the alarm, or replaces its configuration keeping its state.
    pub fn put(&self, config: AlarmConfig) -> Result<MetricAlarm, AlarmError> {
        let alarm = Arc::new(Alarm::try_from(config)?);
        self.check_destinations(&alarm)?;
        self.retrying(|| self.put_once(alarm.clone()))
    }

    fn put_once(&self, alarm: Arc<Alarm>) -> Result<MetricAlarm, AlarmError> {
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let name = alarm.name().to_string();
        let previous = g.data.alarms.remove(&name);
        let created = previous.is_none();
        let entry = match &previous {
            Some(p) => Entry {
                alarm: alarm.clone(),
                state: p.state.clone(),
                config_updated_ms: now,
                series: if p.alarm.is_multi_series() && alarm.is_multi_series() {
                    p.series.clone()
                } else {
                    BTreeMap::new()
                },
                last_tick_ms: i64::MIN,
            },
            None => Entry {
                alarm: alarm.clone(),
                state: AlarmState::initial(now),
                config_updated_ms: now,
                series: BTreeMap::new(),
                last_tick_ms: i64::MIN,
            },
        };
        let item = StoredHistoryItem {
            alarm_name: name.clone(),
            timestamp_ms: now,
            item_type: HistoryItemType::ConfigurationUpdate,
            summary: format!(
                "Alarm \"{name}\" {}",
                if created { "created" } else { "updated" }
            ),
            data: json!({
                "version": "1.0",
                "type": if created { "Create" } else { "Update" },
                if created { "createdAlarm" } else { "updatedAlarm" }: alarm.config,
            }),
        };
        let ops = vec![Op::Put(Box::new(stored(&entry))), Op::History(item.clone())];
        if let Err(e) = self.commit(&mut g, ops, false) {
            // Nothing half-done stays in memory (replicas: `commit` went back to the committed
            // state, which may be newer than `previous`).
            if let (Backend::Local(_), Some(p)) = (&g.backend, previous) {
                g.data.alarms.insert(name, p);
            }
            return Err(e);
        }
        g.data.alarms.insert(name.clone(), entry);
        g.data.history.push(item);
        let e = &g.data.alarms[&name];
        Ok(state::describe(
            &e.alarm,
            &e.state,
            e.config_updated_ms,
            &e.series,
        ))
    }

    /// Installs (or re-installs, replacing) the Kubernetes alarm pack for one cluster.
    pub fn install_pack(
        &self,
        opts: &crate::pack::PackOptions,
    ) -> Result<Vec<MetricAlarm>, AlarmError> {
        if opts.cluster.is_empty() {
            return Err(AlarmError::invalid("ClusterName", "must not be empty"));
        }
        // Validate all before storing any, so a bad action URL installs nothing.
        let configs = crate::pack::kubernetes_pack(opts);
        for c in &configs {
            self.check_destinations(&Alarm::try_from(c.clone())?)?;
        }
        configs.into_iter().map(|c| self.put(c)).collect()
    }

    /// DeleteAlarms (one name).
    pub fn delete(&self, name: &str) -> Result<(), AlarmError> {
        self.retrying(|| self.delete_once(name))
    }

    fn delete_once(&self, name: &str) -> Result<(), AlarmError> {
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let Some(removed) = g.data.alarms.remove(name) else {
            return Err(AlarmError::NotFound(name.to_string()));
        };
        let item = StoredHistoryItem {
            alarm_name: name.to_string(),
            timestamp_ms: now,
            item_type: HistoryItemType::ConfigurationUpdate,
            summary: format!("Alarm \"{name}\" deleted"),
            data: json!({"version": "1.0", "type": "Delete", "deletedAlarm": removed.alarm.config}),
        };
        let ops = vec![Op::Delete(name.to_string()), Op::History(item.clone())];
        if let Err(e) = self.commit(&mut g, ops, false) {
            if let Backend::Local(_) = &g.backend {
                g.data.alarms.insert(name.to_string(), removed);
            }
            return Err(e);
        }
        g.data.history.push(item);
        Ok(())
    }

    /// DescribeAlarms.
    pub fn describe(&self, filter: &DescribeFilter) -> Vec<MetricAlarm> {
        let g = self.lock();
        g.data
            .alarms
            .values()
            .filter(|e| {
                filter.alarm_names.is_empty()
                    || filter.alarm_names.iter().any(|n| n == e.alarm.name())
            })
            .filter(|e| {
                filter
                    .alarm_name_prefix
                    .as_ref()
                    .is_none_or(|p| e.alarm.name().starts_with(p.as_str()))
            })
            .filter(|e| filter.state_value.is_none_or(|s| s == e.state.value))
            .map(|e| state::describe(&e.alarm, &e.state, e.config_updated_ms, &e.series))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<MetricAlarm> {
        let g = self.lock();
        g.data
            .alarms
            .get(name)
            .map(|e| state::describe(&e.alarm, &e.state, e.config_updated_ms, &e.series))
    }

    pub fn len(&self) -> usize {
        self.lock().data.alarms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// DescribeAlarmHistory, newest first. History outlives a deleted alarm (14 days).
    pub fn history(
        &self,
        name: Option<&str>,
        item_type: Option<HistoryItemType>,
        limit: usize,
    ) -> Vec<AlarmHistoryItem> {
        // Expired items vanish at once; the next snapshot drops them from disk.
        let horizon = self.clock.now_ms() - HISTORY_RETENTION_MS;
        let g = self.lock();
        g.data
            .history
            .iter()
            .rev()
            .take_while(|h| h.timestamp_ms >= horizon)
            .filter(|h| name.is_none_or(|n| n == h.alarm_name))
            .filter(|h| item_type.is_none_or(|t| t == h.item_type))
            .take(limit)
            .map(StoredHistoryItem::to_api)
            .collect()
    }

    /// Pending notifications (not yet delivered or given up).
    pub fn outbox(&self) -> Vec<Notification> {
        self.lock().data.outbox.clone()
    }

    /// SetAlarmState: sets the state until the next evaluation says otherwise; runs the
    /// actions if the state changes.
    pub fn set_state(&self, name: &str, value: StateValue, reason: &str) -> Result<(), AlarmError> {
        self.retrying(|| self.set_state_once(name, value, reason))
    }

    fn set_state_once(
        &self,
        name: &str,
        value: StateValue,
        reason: &str,
    ) -> Result<(), AlarmError> {
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let Some(e) = g.data.alarms.get(name) else {
            return Err(AlarmError::NotFound(name.to_string()));
        };
        let alarm = e.alarm.clone();
        let old = e.state.clone();
        let new = AlarmState {
            value,
            reason: reason.to_string(),
            reason_data: Value::Null,
            updated_ms: now,
            transitioned_ms: if value == old.value {
                old.transitioned_ms
            } else {
                now
            },
        };
        let mut ops = if value == old.value {
            if let Some(e) = g.data.alarms.get_mut(name) {
                e.state = new;
            }
            Vec::new()
        } else {
            self.transition(&mut g, &alarm, new, &[], &[])
        };
        ops.push(Op::Put(Box::new(stored(&g.data.alarms[name]))));
        self.commit(&mut g, ops, false)?;
        drop(g);
        self.wake.notify_one();
        Ok(())
    }

    /// Records a state change: state, history, and one outbox entry per action.
    fn transition(
        &self,
        g: &mut Inner,
        alarm: &Alarm,
        new: AlarmState,
        values: &[Point],
        series: &[Value],
    ) -> Vec<Op> {
        let now = self.clock.now_ms();
        let name = alarm.name().to_string();
        let Some(entry) = g.data.alarms.get_mut(&name) else {
            return Vec::new();
        };
        let old = std::mem::replace(&mut entry.state, new.clone());
        let mut ops = Vec::new();
        let item = StoredHistoryItem {
            alarm_name: name.clone(),
            timestamp_ms: now,
            item_type: HistoryItemType::StateUpdate,
            summary: format!("Alarm updated from {} to {}", old.value, new.value),
            data: json!({
                "version": "1.0",
                "oldState": {"stateValue": old.value, "stateReason": old.reason},
                "newState": {"stateValue": new.value, "stateReason": new.reason, "stateReasonData": new.reason_data},
            }),
        };
        ops.push(Op::History(item.clone()));
        g.data.history.push(item);
        if !alarm.actions_enabled {
            return ops;
        }
        let message = transition_message(alarm, &old, &new, now, values, series);
        for action in alarm.actions_for(new.value) {
            let id = g.data.next_id;
            g.data.next_id += 1;
            let n = Notification {
                id,
                alarm_name: name.clone(),
                action: action.clone(),
                message: message.clone(),
                attempts: 0,
                next_attempt_ms: now,
                created_ms: now,
                last_error: None,
            };
            ops.push(Op::OutboxPut(Box::new(n.clone())));
            g.data.outbox.push(n);
        }
        ops.push(Op::NextNotificationId(g.data.next_id));
        ops
    }

    /// Evaluates every alarm due at `now_ms`: an alarm is due once per cadence tick (10 s
    /// for 10/30-s periods, 60 s otherwise), `evaluation_lag_ms` after the tick.
    pub fn evaluate_at(
        &self,
        now_ms: i64,
        source: &dyn MetricSource,
    ) -> Result<EvalReport, AlarmError> {
        self.retrying(|| self.evaluate_once(now_ms, source))
    }

    fn evaluate_once(
        &self,
        now_ms: i64,
        source: &dyn MetricSource,
    ) -> Result<EvalReport, AlarmError> {
        let due: Vec<DueAlarm> = {
            let mut g = self.lock();
            let mut due = Vec::new();
            for (name, e) in g.data.alarms.iter_mut() {
                let cadence = e.alarm.cadence_ms();
                let tick = (now_ms - self.config.evaluation_lag_ms).div_euclid(cadence) * cadence;
                if tick > e.last_tick_ms {
                    e.last_tick_ms = tick;
                    let series = if e.alarm.is_multi_series() {
                        e.series.clone()
                    } else {
                        BTreeMap::new()
                    };
                    due.push((name.clone(), e.alarm.clone(), tick, e.state.value, series));
                }
            }
            due
        };
        let mut report = EvalReport {
            evaluated: due.len(),
            ..Default::default()
        };
        let mut outcomes = Vec::with_capacity(due.len());
        for (name, alarm, tick, current, series) in due {
            match evaluate_alarm(&alarm, tick, now_ms, current, &series, source) {
                Ok(mut o) => {
                    o.name = name;
                    outcomes.push(o);
                }
                Err(e) => report.errors.push((name, e)),
            }
        }
        let mut g = self.lock();
        let mut ops = Vec::new();
        for o in outcomes {
            let mut changed = false;
            let Some(entry) = g.data.alarms.get_mut(&o.name) else {
                continue;
            };
            if !Arc::ptr_eq(&entry.alarm, &o.alarm) {
                continue; // replaced while we evaluated; the next tick evaluates the new one
            }
            if let Some(series) = o.series {
                let values_changed = series.len() != entry.series.len()
                    || series
                        .iter()
                        .any(|(k, s)| entry.series.get(k).is_none_or(|p| p.value != s.value));
                changed |= values_changed;
                entry.series = series;
            }
            let old = entry.state.value;
            if o.state != old {
                let reason = o.reason.clone().unwrap_or_default();
                let new = AlarmState {
                    value: o.state,
                    reason: reason.clone(),
                    reason_data: o.reason_data,
                    updated_ms: now_ms,
                    transitioned_ms: now_ms,
                };
                ops.extend(self.transition(&mut g, &o.alarm, new, &o.values, &o.breaching_series));
                report.transitions.push(Transition {
                    alarm_name: o.name.clone(),
                    from: old,
                    to: o.state,
                    reason,
                });
                changed = true;
            }
            if changed && let Some(e) = g.data.alarms.get(&o.name) {
                ops.push(Op::Put(Box::new(stored(e))));
            }
        }
        if !ops.is_empty() {
            // One fsynced journal line (one shared entry, fenced) for the whole round.
            self.commit(&mut g, ops, true)?;
            drop(g);
            self.wake.notify_one();
        }
        Ok(report)
    }

    /// Sends the notifications that are due, once each; records results in the history and
    /// reschedules failures with backoff. Returns how many were attempted.
    ///
    /// On replicas only the leader delivers, and it first records a claim on what it is about
    /// to send (fenced by its lease, due again only after [`Self::claim_ms`]): a replica that
    /// lost the lease cannot send, and its successor does not send what is being sent. Results
    /// the catalogue could not take are kept and recorded before the next claim. Only a leader
    /// that dies between sending and recording the result (or cannot record it before its
    /// claim lapses) leaves a notification that is sent again (at least once; the
    /// `x-kinsight-notification-id` header lets receivers drop the repeat).
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, AlarmError> {
        let svc = self.clone();
        let batch = tokio::task::spawn_blocking(move || {
            svc.record_unrecorded()?;
            svc.claim_due()
        })
        .await
        .map_err(|e| AlarmError::Http(e.to_string()))??;
        if batch.is_empty() {
            return Ok(0);
        }
        let mut results: HashMap<u64, Delivery> = HashMap::new();
        for chunk in batch.chunks(self.config.notifier.concurrency.max(1)) {
            let mut set = tokio::task::JoinSet::new();
            for n in chunk {
                let client = self.http.clone();
                let policy = self.config.notifier.egress.clone();
                let n = n.clone();
                set.spawn(async move { (n.id, deliver(&client, &policy, &n).await) });
            }
            while let Some(r) = set.join_next().await {
                if let Ok((id, d)) = r {
                    results.insert(id, d);
                }
            }
        }
        let attempted = batch.len();
        let svc = self.clone();
        tokio::task::spawn_blocking(move || {
            let r = svc.retrying(|| svc.record_deliveries(&batch, &results));
            if r.is_err() {
                // Kept (and still in flight) until they can be recorded: sent, not to be sent
                // again.
                let mut g = svc.lock();
                g.in_flight.extend(batch.iter().map(|n| n.id));
                drop(g);
                svc.unrecorded_lock().push((batch, results));
            }
            r
        })
        .await
        .map_err(|e| AlarmError::Http(e.to_string()))??;
        Ok(attempted)
    }

    fn unrecorded_lock(&self) -> MutexGuard<'_, Unrecorded> {
        self.unrecorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the results a catalogue outage kept from being recorded, oldest first.
    fn record_unrecorded(&self) -> Result<(), AlarmError> {
        let pending = std::mem::take(&mut *self.unrecorded_lock());
        let mut left = pending.into_iter();
        while let Some((batch, results)) = left.next() {
            if let Err(e) = self.retrying(|| self.record_deliveries(&batch, &results)) {
                let mut g = self.lock();
                g.in_flight.extend(batch.iter().map(|n| n.id));
                drop(g);
                let mut keep = vec![(batch, results)];
                keep.extend(left);
                let mut u = self.unrecorded_lock();
                keep.append(&mut u);
                *u = keep;
                return Err(e);
            }
        }
        Ok(())
    }

    /// How long a replica's claim on a notification it is sending holds off its successor:
    /// longer than a delivery round can take.
    pub fn claim_ms(&self) -> i64 {
        let n = &self.config.notifier;
        let rounds = 4; // a round sends up to 4 × concurrency, `concurrency` at a time
        (n.timeout_ms as i64).saturating_mul(rounds + 1) + 30_000
    }

    /// Picks the due notifications (replicas: claims them in the shared journal).
    fn claim_due(&self) -> Result<Vec<Notification>, AlarmError> {
        self.retrying(|| {
            let mut g = self.lock();
            // Taken under the lock: a claim lasts `claim_ms` from when it is written.
            let now = self.clock.now_ms();
            let shared = match &g.backend {
                Backend::Local(_) => false,
                Backend::Shared(s) if s.journal.leading() => true,
                Backend::Shared(_) => return Ok(Vec::new()),
            };
            let due: Vec<Notification> = g
                .data
                .outbox
                .iter()
                .filter(|n| n.next_attempt_ms <= now && !g.in_flight.contains(&n.id))
                .take(self.config.notifier.concurrency.max(1) * 4)
                .cloned()
                .collect();
            if shared && !due.is_empty() {
                let until = now + self.claim_ms();
                let mut ops = Vec::new();
                for n in &due {
                    if let Some(x) = g.data.outbox.iter_mut().find(|x| x.id == n.id) {
                        x.next_attempt_ms = until;
                        ops.push(Op::OutboxPut(Box::new(x.clone())));
                    }
                }
                self.commit(&mut g, ops, true)?;
            }
            for n in &due {
                g.in_flight.insert(n.id);
            }
            Ok(due)
        })
    }

    /// Records the results of a delivery round: history, retries, removals.
    fn record_deliveries(
        &self,
        batch: &[Notification],
        results: &HashMap<u64, Delivery>,
    ) -> Result<(), AlarmError> {
        let done_at = self.clock.now_ms();
        let mut g = self.lock();
        let mut ops = Vec::new();
        for n in batch {
            g.in_flight.remove(&n.id);
            let Some(result) = results.get(&n.id) else {
                continue;
            };
            let Some(pos) = g.data.outbox.iter().position(|x| x.id == n.id) else {
                continue;
            };
            // Logs and the history show the URL without its secret parts (issue 15, item 10).
            let url = redact_url(&n.action);
            let (summary, give_up) = match result {
                Delivery::Delivered(status) => (
                    Some(format!(
                        "Successfully executed action {url} (HTTP {status})"
                    )),
                    true,
                ),
                Delivery::Failed(e) => (Some(format!("Failed to execute action {url}: {e}")), true),
                Delivery::Retry(e) => {
                    let attempts = g.data.outbox[pos].attempts + 1;
                    if attempts >= self.config.notifier.max_attempts {
                        (
                            Some(format!(
                                "Failed to execute action {url}: giving up after {attempts} attempts, last error: {e}"
                            )),
                            true,
                        )
                    } else {
                        let item = &mut g.data.outbox[pos];
                        item.attempts = attempts;
                        item.last_error = Some(e.clone());
                        item.next_attempt_ms = done_at + self.config.notifier.backoff_ms(attempts);
                        ops.push(Op::OutboxPut(Box::new(item.clone())));
                        tracing::warn!(alarm = %n.alarm_name, action = %url, attempts, "alarm notification failed, will retry: {e}");
                        (None, false)
                    }
                }
            };
            if give_up {
                let item = g.data.outbox.remove(pos);
                ops.push(Op::OutboxRemove(item.id));
                if let Some(summary) = summary {
                    if !matches!(result, Delivery::Delivered(_)) {
                        tracing::warn!(alarm = %item.alarm_name, "{summary}");
                    }
                    let h = StoredHistoryItem {
                        alarm_name: item.alarm_name.clone(),
                        timestamp_ms: done_at,
                        item_type: HistoryItemType::Action,
                        summary,
                        data: json!({"version": "1.0", "actionArn": url, "attempts": item.attempts + 1,
                                      "newState": item.message.get("NewStateValue")}),
                    };
                    ops.push(Op::History(h.clone()));
                    g.data.history.push(h);
                }
            }
        }
        self.commit(&mut g, ops, false)
    }

    /// Spawns the evaluator and the notifier on the current tokio runtime.
    pub fn spawn(self: &Arc<Self>, source: Arc<dyn MetricSource>) -> BackgroundTasks {
        let svc = self.clone();
        let evaluator = tokio::spawn(async move {
            loop {
                let now = svc.clock.now_ms();
                let (s, src) = (svc.clone(), source.clone());
                // Replicas: every one applies the others' changes; the leader evaluates.
                let round = move || -> Result<Option<EvalReport>, AlarmError> {
                    s.sync()?;
                    if !s.leading() {
                        return Ok(None);
                    }
                    let report = s.evaluate_at(now, &*src)?;
                    s.snapshot_if_grown()?;
                    Ok(Some(report))
                };
                match tokio::task::spawn_blocking(round).await {
                    Ok(Ok(report)) => {
                        for (name, e) in report.iter().flat_map(|r| &r.errors) {
                            tracing::warn!(alarm = %name, "alarm not evaluated: {e}");
                        }
                    }
                    Ok(Err(e @ AlarmError::Unavailable(_))) => {
                        tracing::warn!("alarm evaluation: {e}")
                    }
                    Ok(Err(e)) => tracing::error!("alarm evaluation failed: {e}"),
                    Err(e) => tracing::error!("alarm evaluation task failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(svc.config.poll_ms)).await;
            }
        });
        let svc = self.clone();
        let notifier = tokio::spawn(async move {
            loop {
                if let Err(e) = svc.deliver_due().await {
                    tracing::error!("alarm notifications: {e}");
                }
                tokio::select! {
                    _ = svc.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        BackgroundTasks {
            evaluator,
            notifier,
        }
    }
}

/// Low-sample rule for percentiles (reference §6.1): fewer than 10/(1−p) samples for
/// 0.5 ≤ p < 1, fewer than 10/p for p < 0.5.
fn low_sample_threshold(p_percent: f64) -> Option<f64> {
    let p = p_percent / 100.0;
    if p >= 1.0 {
        None
    } else if p >= 0.5 {
        Some(10.0 / (1.0 - p))
    } else {
        Some(10.0 / p)
    }
}

/// The evaluation range of one series at `tick`, and whether the newest real period has too
/// few samples for a percentile alarm set to ignore such periods.
fn fetch_points(
    alarm: &Alarm,
    key: &SeriesKey,
    tick: i64,
    source: &dyn MetricSource,
) -> Result<(Vec<Point>, bool), String> {
    let period_ms = alarm.period_s as i64 * 1000;
    let n = alarm.evaluation_range();
    let start = tick - n as i64 * period_ms;
    let slots = source.fetch(key, start, period_ms, n, alarm.statistic.is_extended())?;
    let points: Vec<Point> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| Point {
            timestamp_ms: start + i as i64 * period_ms,
            value: alarm.statistic.compute(s),
        })
        .collect();
    let low = match (alarm.statistic, alarm.low_sample) {
        (Statistic::Percentile(p), LowSampleCountPercentile::Ignore) => {
            let newest = slots.iter().rev().find(|s| s.count > 0);
            match (newest, low_sample_threshold(p)) {
                (Some(s), Some(min)) => (s.count as f64) < min,
                _ => false,
            }
        }
        _ => false,
    };
    Ok((points, low))
}

fn reason_data(alarm: &Alarm, tick: i64, now: i64, points: &[Point], evaluated: &[Point]) -> Value {
    let start = points.first().map_or(tick, |p| p.timestamp_ms);
    let mut data = json!({
        "version": "1.0",
        "queryDate": iso(now),
        "startDate": iso(start),
        "period": alarm.period_s,
        "recentDatapoints": points.iter().filter_map(|p| p.value).collect::<Vec<f64>>(),
        "threshold": alarm.threshold(),
        "evaluatedDatapoints": evaluated.iter().map(|p| json!({"timestamp": iso(p.timestamp_ms), "value": p.value})).collect::<Vec<_>>(),
    });
    add_measure(alarm, &mut data);
    data
}

fn evaluate_alarm(
    alarm: &Arc<Alarm>,
    tick: i64,
    now: i64,
    current: StateValue,
    series: &BTreeMap<String, AlarmState>,
    source: &dyn MetricSource,
) -> Result<Outcome, String> {
    let out = Outcome {
        name: String::new(),
        alarm: alarm.clone(),
        state: current,
        reason: None,
        reason_data: Value::Null,
        values: Vec::new(),
        series: None,
        breaching_series: Vec::new(),
    };
    if alarm.promql().is_some() {
        return evaluate_promql_alarm(alarm, tick, now, current, series, source, out);
    }
    if !alarm.is_multi_series() {
        let (points, low) = fetch_points(alarm, &alarm.series_key(), tick, source)?;
        if low {
            return Ok(out); // keep the state while the sample is too small
        }
        return Ok(evaluate_single(alarm, tick, now, &points, current, out));
    }

    // Multi-series (kinsight extension): every matching series through the same state
    // machine with its own state; the alarm is ALARM if any series is, else OK if any is,
    // else INSUFFICIENT_DATA. Series that disappeared are forgotten.
    let keys = source.matching(&alarm.selector());
    let mut watched = Vec::with_capacity(keys.len());
    for key in &keys {
        let (points, low) = fetch_points(alarm, key, tick, source)?;
        watched.push(Watched {
            label: series_label(key, alarm),
            dimensions: json!(key.dimensions),
            points,
            low,
        });
    }
    Ok(evaluate_series(
        alarm, tick, now, current, series, watched, out,
    ))
}

/// One series of a multi-series alarm: its label (the key of its state), what the webhook
/// names it by, its evaluation range, and whether its newest period has too few samples.
struct Watched {
    label: String,
    dimensions: Value,
    points: Vec<Point>,
    low: bool,
}

/// A PromQL result's label set, sorted by name.
type PromLabels = Vec<(String, String)>;

/// A PromQL alarm: the expression evaluated at the end of each period of the evaluation
/// range, by label set. A label set without a value at a period's end (or with NaN) is
/// missing data there.
fn promql_points(
    alarm: &Alarm,
    expr: &str,
    tick: i64,
    source: &dyn MetricSource,
) -> Result<BTreeMap<PromLabels, Vec<Point>>, String> {
    let period_ms = alarm.period_s as i64 * 1000;
    let n = alarm.evaluation_range();
    let start = tick - n as i64 * period_ms;
    let mut by_labels: BTreeMap<PromLabels, Vec<Point>> = BTreeMap::new();
    for i in 0..n {
        let end = start + (i as i64 + 1) * period_ms;
        for (labels, v) in source.promql_instant(expr, end)? {
            if !by_labels.contains_key(&labels) && by_labels.len() >= MAX_PROMQL_SERIES {
                return Err(format!(
                    "the expression gives more than {MAX_PROMQL_SERIES} series; a PromQL alarm evaluates at most {MAX_PROMQL_SERIES} (aggregate with by (...))"
                ));
            }
            let points = by_labels.entry(labels).or_insert_with(|| {
                (0..n)
                    .map(|j| Point {
                        timestamp_ms: start + j as i64 * period_ms,
                        value: None,
                    })
                    .collect()
            });
            if !v.is_nan() {
                points[i].value = Some(v);
            }
        }
    }
    Ok(by_labels)
}

/// `k=v,…` of a PromQL result's labels; `{}` for none. `\`, `,` and `=` in values are
/// escaped with `\`, so two label sets never share a key (label names cannot hold them).
fn labels_label(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return "{}".into();
    }
    labels
        .iter()
        .map(|(k, v)| {
            let mut out = String::with_capacity(k.len() + v.len() + 1);
            out.push_str(k);
            out.push('=');
            for c in v.chars() {
                if matches!(c, '\\' | ',' | '=') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn evaluate_promql_alarm(
    alarm: &Arc<Alarm>,
    tick: i64,
    now: i64,
    current: StateValue,
    series: &BTreeMap<String, AlarmState>,
    source: &dyn MetricSource,
    mut out: Outcome,
) -> Result<Outcome, String> {
    let expr = alarm.promql().unwrap_or_default();
    let mut by_labels = promql_points(alarm, expr, tick, source)?;
    if by_labels.len() > 1 {
        let watched = by_labels
            .into_iter()
            .map(|(labels, points)| Watched {
                label: labels_label(&labels),
                dimensions: json!(labels.into_iter().collect::<BTreeMap<_, _>>()),
                points,
                low: false,
            })
            .collect();
        return Ok(evaluate_series(
            alarm, tick, now, current, series, watched, out,
        ));
    }
    // One label set (or none): a single-series alarm over the expression's values.
    let points = match by_labels.pop_first() {
        Some((_, points)) => points,
        None => empty_range(alarm, tick),
    };
    out.series = Some(BTreeMap::new());
    Ok(evaluate_single(alarm, tick, now, &points, current, out))
}

/// A single-series alarm's next state over its evaluation range.
fn evaluate_single(
    alarm: &Alarm,
    tick: i64,
    now: i64,
    points: &[Point],
    current: StateValue,
    mut out: Outcome,
) -> Outcome {
    let ev = evaluate(&EvalParams::from(alarm), points, current);
    out.state = ev.state;
    out.reason = ev.reason;
    out.reason_data = reason_data(alarm, tick, now, points, &ev.evaluated);
    out.values = ev.evaluated;
    out
}

/// The evaluation range ending at `tick` with no value in any period.
fn empty_range(alarm: &Alarm, tick: i64) -> Vec<Point> {
    let n = alarm.evaluation_range();
    let period_ms = alarm.period_s as i64 * 1000;
    (0..n)
        .map(|i| Point {
            timestamp_ms: tick - (n - i) as i64 * period_ms,
            value: None,
        })
        .collect()
}

/// The multi-series machinery over the series `watched` (matching series of a `*` alarm,
/// label sets of a PromQL alarm).
fn evaluate_series(
    alarm: &Arc<Alarm>,
    tick: i64,
    now: i64,
    current: StateValue,
    series: &BTreeMap<String, AlarmState>,
    watched: Vec<Watched>,
    mut out: Outcome,
) -> Outcome {
    let params = EvalParams::from(&**alarm);
    if watched.is_empty() {
        let ev = evaluate(&params, &empty_range(alarm, tick), current);
        out.state = ev.state;
        out.reason = ev
            .reason
            .map(|r| format!("No series matches the alarm's dimensions yet. {r}"));
        out.series = Some(BTreeMap::new());
        return out;
    }
    let mut states = BTreeMap::new();
    let (mut alarming, mut ok) = (Vec::new(), 0usize);
    let total = watched.len();
    for Watched {
        label,
        dimensions,
        points,
        low,
    } in watched
    {
        let prev = series.get(&label).cloned();
        let prev_value = prev
            .as_ref()
            .map_or(StateValue::InsufficientData, |p| p.value);
        let (value, reason, evaluated) = if low {
            (prev_value, None, Vec::new())
        } else {
            let ev = evaluate(&params, &points, prev_value);
            (ev.state, ev.reason, ev.evaluated)
        };
        let reason = reason
            .or_else(|| prev.as_ref().map(|p| p.reason.clone()))
            .unwrap_or_default();
        if value == StateValue::Alarm {
            alarming.push((label.clone(), reason.clone(), evaluated.clone(), dimensions));
        } else if value == StateValue::Ok {
            ok += 1;
        }
        let changed = prev.as_ref().is_none_or(|p| p.value != value);
        states.insert(
            label,
            AlarmState {
                value,
                reason,
                reason_data: Value::Null,
                updated_ms: if changed {
                    now
                } else {
                    prev.as_ref().map_or(now, |p| p.updated_ms)
                },
                transitioned_ms: if changed {
                    now
                } else {
                    prev.as_ref().map_or(now, |p| p.transitioned_ms)
                },
            },
        );
    }
    if !alarming.is_empty() {
        out.state = StateValue::Alarm;
        let listed: Vec<String> = alarming
            .iter()
            .take(10)
            .map(|(l, r, _, _)| format!("{l}: {r}"))
            .collect();
        out.reason = Some(format!(
            "{} of {total} series in ALARM{}. {}",
            alarming.len(),
            if alarming.len() > 10 {
                " (first 10 listed)"
            } else {
                ""
            },
            listed.join(" | ")
        ));
        out.values = alarming[0].2.clone();
        out.breaching_series = alarming
            .iter()
            .map(|(l, r, ev, dims)| {
                json!({"Series": l, "Dimensions": dims, "Reason": r,
                       "Values": ev.iter().map(|p| json!({"Timestamp": iso(p.timestamp_ms), "Value": p.value})).collect::<Vec<_>>()})
            })
            .collect();
    } else if ok > 0 {
        out.state = StateValue::Ok;
        out.reason = Some(format!(
            "No series breaches the threshold ({}): {ok} of {total} series OK, {} without enough data.",
            num(alarm.threshold()),
            total - ok
        ));
    } else {
        out.state = StateValue::InsufficientData;
        out.reason = Some(format!(
            "Insufficient Data: none of the {total} matching series has enough data."
        ));
    }
    if alarm.treat_missing_data == TreatMissingData::Ignore
        && out.state == StateValue::InsufficientData
    {
        out.state = current;
        out.reason = None;
    }
    out.reason_data = json!({"version": "1.0", "queryDate": iso(now), "period": alarm.period_s,
        "threshold": alarm.threshold(), "seriesInAlarm": alarming.len(), "seriesTotal": total});
    add_measure(alarm, &mut out.reason_data);
    out.series = Some(states);
    out
}

/// What the datapoints are: the statistic of a metric alarm, the expression of a PromQL one.
fn add_measure(alarm: &Alarm, data: &mut Value) {
    match alarm.promql() {
        Some(expr) => data["promQL"] = json!(expr),
        None => data["statistic"] = json!(alarm.statistic.to_string()),
    }
}

/// `K=V,…` of the wildcard dimensions only: what tells the series of one alarm apart.
fn series_label(key: &SeriesKey, alarm: &Alarm) -> String {
    alarm
        .config
        .dimensions
        .iter()
        .filter(|d| d.value == crate::model::WILDCARD)
        .map(|d| {
            format!(
                "{}={}",
                d.name,
                key.dimensions
                    .get(&d.name)
                    .map(String::as_str)
                    .unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The webhook body: CloudWatch's SNS alarm message members, plus the datapoints.
fn transition_message(
    alarm: &Alarm,
    old: &AlarmState,
    new: &AlarmState,
    now: i64,
    values: &[Point],
    series: &[Value],
) -> Value {
    let c = &alarm.config;
    let mut m = json!({
        "AlarmName": c.alarm_name,
        "AlarmDescription": c.alarm_description,
        "AlarmArn": format!("arn:kinsight:cloudwatch::alarm:{}", c.alarm_name),
        "NewStateValue": new.value,
        "NewStateReason": new.reason,
        "OldStateValue": old.value,
        "StateChangeTime": iso(now),
        "Trigger": {
            "MetricName": c.metric_name,
            "Namespace": c.namespace,
            "StatisticType": if alarm.statistic.is_extended() { "ExtendedStatistic" } else { "Statistic" },
            "Statistic": alarm.statistic.to_string(),
            "Unit": c.unit,
            "Dimensions": c.dimensions.iter().map(|d| json!({"name": d.name, "value": d.value})).collect::<Vec<_>>(),
            "Period": alarm.period_s,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": c.comparison_operator,
            "Threshold": c.threshold,
            "TreatMissingData": alarm.treat_missing_data.as_str(),
        },
        "Values": values.iter().map(|p| json!({"Timestamp": iso(p.timestamp_ms), "Value": p.value})).collect::<Vec<_>>(),
    });
    if let Some(expr) = alarm.promql() {
        // No metric: the expression instead (kinsight extension).
        let t = m["Trigger"].as_object_mut().expect("an object");
        for k in [
            "MetricName",
            "Namespace",
            "StatisticType",
            "Statistic",
            "Dimensions",
        ] {
            t.remove(k);
        }
        t.insert("PromQL".into(), json!(expr));
    }
    if !series.is_empty() {
        m["Series"] = Value::Array(series.to_vec());
    }
    m
}

fn prune_history(history: &mut Vec<StoredHistoryItem>, now: i64, max_per_alarm: usize) {
    let horizon = now - HISTORY_RETENTION_MS;
    let mut per_alarm: HashMap<String, usize> = HashMap::new();
    // Walk newest first to keep the newest `max_per_alarm` of each alarm.
    let mut keep = vec![false; history.len()];
    for (i, h) in history.iter().enumerate().rev() {
        if h.timestamp_ms < horizon {
            continue;
        }
        let c = per_alarm.entry(h.alarm_name.clone()).or_default();
        if *c < max_per_alarm {
            *c += 1;
            keep[i] = true;
        }
    }
    let mut i = 0;
    history.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });
}
