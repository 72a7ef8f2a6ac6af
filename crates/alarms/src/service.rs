//! The alarm service: definitions, states, history and the notification outbox, persisted in
//! one document; evaluation of due alarms against a [`MetricSource`] at an injected time; and
//! the two background tasks (evaluator, notifier) the server spawns.

use crate::AlarmError;
use crate::clock::Clock;
use crate::evaluate::{EvalParams, Point, evaluate, num};
use crate::journal::{self, Journal, Op};
use crate::model::{Alarm, AlarmConfig, LowSampleCountPercentile, StateValue, TreatMissingData};
use crate::notify::{Delivery, Notification, NotifierConfig, Target, deliver, redact_url};
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

struct Inner {
    alarms: BTreeMap<String, Entry>,
    history: Vec<StoredHistoryItem>,
    outbox: Vec<Notification>,
    in_flight: HashSet<u64>,
    next_id: u64,
    journal: Journal,
    /// Size of the last snapshot: the journal is folded into a new one once it is larger.
    snapshot_bytes: u64,
}

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

fn apply(inner: &mut Inner, op: Op, path: &Path) -> Result<(), AlarmError> {
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
}

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
        let mut inner = Inner {
            alarms: BTreeMap::new(),
            history: Vec::new(),
            outbox: Vec::new(),
            in_flight: HashSet::new(),
            next_id: 1,
            journal,
            snapshot_bytes,
        };
        if let Some(doc) = doc {
            for s in doc.alarms {
                let e = entry_of(s, &path)?;
                inner.alarms.insert(e.alarm.name().to_string(), e);
            }
            inner.history = doc.history;
            inner.outbox = doc.outbox;
            inner.next_id = doc.next_notification_id.max(1);
        }
        let jpath = journal::journal_path(dir, generation);
        for ops in batches {
            for op in ops {
                apply(&mut inner, op, &jpath)?;
            }
        }
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
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a change set durable (one fsynced journal line); folds the journal into a new
    /// snapshot when it has grown large.
    fn commit(&self, inner: &mut Inner, ops: Vec<Op>) -> Result<(), AlarmError> {
        inner.journal.append(&ops)?;
        if inner.journal.bytes() > MIN_JOURNAL_BYTES_BEFORE_SNAPSHOT.max(inner.snapshot_bytes) {
            // The change is already durable in the journal: a failed snapshot is retried at
            // the next change, not reported as a failed change.
            if let Err(e) = self.snapshot(inner) {
                tracing::error!(
                    "alarm state snapshot failed (the journal keeps every change): {e}"
                );
            }
        }
        Ok(())
    }

    fn snapshot(&self, inner: &mut Inner) -> Result<(), AlarmError> {
        let now = self.clock.now_ms();
        prune_history(&mut inner.history, now, self.config.max_history_per_alarm);
        let doc = Document {
            format: state::FORMAT.into(),
            version: state::VERSION,
            journal_generation: inner.journal.generation() + 1,
            alarms: inner.alarms.values().map(stored).collect(),
            history: inner.history.clone(),
            outbox: inner.outbox.clone(),
            next_notification_id: inner.next_id,
        };
        state::save(&self.path, &doc)?;
        inner.snapshot_bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        inner.journal.rotate()
    }

    /// Writes a snapshot now (starting a new journal), dropping history older than 14 days.
    pub fn compact_state(&self) -> Result<(), AlarmError> {
        let mut g = self.lock();
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
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let name = alarm.name().to_string();
        let previous = g.alarms.remove(&name);
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
        if let Err(e) = self.commit(&mut g, ops) {
            // Nothing half-done stays in memory.
            if let Some(p) = previous {
                g.alarms.insert(name, p);
            }
            return Err(e);
        }
        g.alarms.insert(name.clone(), entry);
        g.history.push(item);
        let e = &g.alarms[&name];
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
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let Some(removed) = g.alarms.remove(name) else {
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
        if let Err(e) = self.commit(&mut g, ops) {
            g.alarms.insert(name.to_string(), removed);
            return Err(e);
        }
        g.history.push(item);
        Ok(())
    }

    /// DescribeAlarms.
    pub fn describe(&self, filter: &DescribeFilter) -> Vec<MetricAlarm> {
        let g = self.lock();
        g.alarms
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
        g.alarms
            .get(name)
            .map(|e| state::describe(&e.alarm, &e.state, e.config_updated_ms, &e.series))
    }

    pub fn len(&self) -> usize {
        self.lock().alarms.len()
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
        g.history
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
        self.lock().outbox.clone()
    }

    /// SetAlarmState: sets the state until the next evaluation says otherwise; runs the
    /// actions if the state changes.
    pub fn set_state(&self, name: &str, value: StateValue, reason: &str) -> Result<(), AlarmError> {
        let now = self.clock.now_ms();
        let mut g = self.lock();
        let Some(e) = g.alarms.get(name) else {
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
            if let Some(e) = g.alarms.get_mut(name) {
                e.state = new;
            }
            Vec::new()
        } else {
            self.transition(&mut g, &alarm, new, &[], &[])
        };
        ops.push(Op::Put(Box::new(stored(&g.alarms[name]))));
        self.commit(&mut g, ops)?;
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
        let Some(entry) = g.alarms.get_mut(&name) else {
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
        g.history.push(item);
        if !alarm.actions_enabled {
            return ops;
        }
        let message = transition_message(alarm, &old, &new, now, values, series);
        for action in alarm.actions_for(new.value) {
            let id = g.next_id;
            g.next_id += 1;
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
            g.outbox.push(n);
        }
        ops.push(Op::NextNotificationId(g.next_id));
        ops
    }

    /// Evaluates every alarm due at `now_ms`: an alarm is due once per cadence tick (10 s
    /// for 10/30-s periods, 60 s otherwise), `evaluation_lag_ms` after the tick.
    pub fn evaluate_at(
        &self,
        now_ms: i64,
        source: &dyn MetricSource,
    ) -> Result<EvalReport, AlarmError> {
        let due: Vec<DueAlarm> = {
            let mut g = self.lock();
            let mut due = Vec::new();
            for (name, e) in g.alarms.iter_mut() {
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
            let Some(entry) = g.alarms.get_mut(&o.name) else {
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
            if changed && let Some(e) = g.alarms.get(&o.name) {
                ops.push(Op::Put(Box::new(stored(e))));
            }
        }
        if !ops.is_empty() {
            // One fsynced journal line for the whole round.
            self.commit(&mut g, ops)?;
            drop(g);
            self.wake.notify_one();
        }
        Ok(report)
    }

    /// Sends the notifications that are due, once each; records results in the history and
    /// reschedules failures with backoff. Returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, AlarmError> {
        let now = self.clock.now_ms();
        let batch: Vec<Notification> = {
            let mut g = self.lock();
            let due: Vec<Notification> = g
                .outbox
                .iter()
                .filter(|n| n.next_attempt_ms <= now && !g.in_flight.contains(&n.id))
                .take(self.config.notifier.concurrency.max(1) * 4)
                .cloned()
                .collect();
            for n in &due {
                g.in_flight.insert(n.id);
            }
            due
        };
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
        let done_at = self.clock.now_ms();
        let mut g = self.lock();
        let mut ops = Vec::new();
        for n in &batch {
            g.in_flight.remove(&n.id);
            let Some(result) = results.remove(&n.id) else {
                continue;
            };
            let Some(pos) = g.outbox.iter().position(|x| x.id == n.id) else {
                continue;
            };
            // Logs and the history show the URL without its secret parts (issue 15, item 10).
            let url = redact_url(&n.action);
            let (summary, give_up) = match &result {
                Delivery::Delivered(status) => (
                    Some(format!(
                        "Successfully executed action {url} (HTTP {status})"
                    )),
                    true,
                ),
                Delivery::Failed(e) => (Some(format!("Failed to execute action {url}: {e}")), true),
                Delivery::Retry(e) => {
                    let attempts = g.outbox[pos].attempts + 1;
                    if attempts >= self.config.notifier.max_attempts {
                        (
                            Some(format!(
                                "Failed to execute action {url}: giving up after {attempts} attempts, last error: {e}"
                            )),
                            true,
                        )
                    } else {
                        let item = &mut g.outbox[pos];
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
                let item = g.outbox.remove(pos);
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
                    g.history.push(h);
                }
            }
        }
        self.commit(&mut g, ops)?;
        Ok(batch.len())
    }

    /// Spawns the evaluator and the notifier on the current tokio runtime.
    pub fn spawn(self: &Arc<Self>, source: Arc<dyn MetricSource>) -> BackgroundTasks {
        let svc = self.clone();
        let evaluator = tokio::spawn(async move {
            loop {
                let now = svc.clock.now_ms();
                let (s, src) = (svc.clone(), source.clone());
                match tokio::task::spawn_blocking(move || s.evaluate_at(now, &*src)).await {
                    Ok(Ok(report)) => {
                        for (name, e) in &report.errors {
                            tracing::warn!(alarm = %name, "alarm not evaluated: {e}");
                        }
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
    json!({
        "version": "1.0",
        "queryDate": iso(now),
        "startDate": iso(start),
        "statistic": alarm.statistic.to_string(),
        "period": alarm.period_s,
        "recentDatapoints": points.iter().filter_map(|p| p.value).collect::<Vec<f64>>(),
        "threshold": alarm.threshold(),
        "evaluatedDatapoints": evaluated.iter().map(|p| json!({"timestamp": iso(p.timestamp_ms), "value": p.value})).collect::<Vec<_>>(),
    })
}

fn evaluate_alarm(
    alarm: &Arc<Alarm>,
    tick: i64,
    now: i64,
    current: StateValue,
    series: &BTreeMap<String, AlarmState>,
    source: &dyn MetricSource,
) -> Result<Outcome, String> {
    let params = EvalParams::from(&**alarm);
    let mut out = Outcome {
        name: String::new(),
        alarm: alarm.clone(),
        state: current,
        reason: None,
        reason_data: Value::Null,
        values: Vec::new(),
        series: None,
        breaching_series: Vec::new(),
    };
    if !alarm.is_multi_series() {
        let (points, low) = fetch_points(alarm, &alarm.series_key(), tick, source)?;
        if low {
            return Ok(out); // keep the state while the sample is too small
        }
        let ev = evaluate(&params, &points, current);
        out.state = ev.state;
        out.reason = ev.reason;
        out.reason_data = reason_data(alarm, tick, now, &points, &ev.evaluated);
        out.values = ev.evaluated;
        return Ok(out);
    }

    // Multi-series (kinsight extension): every matching series through the same state
    // machine with its own state; the alarm is ALARM if any series is, else OK if any is,
    // else INSUFFICIENT_DATA. Series that disappeared are forgotten.
    let keys = source.matching(&alarm.selector());
    if keys.is_empty() {
        let n = alarm.evaluation_range();
        let period_ms = alarm.period_s as i64 * 1000;
        let empty: Vec<Point> = (0..n)
            .map(|i| Point {
                timestamp_ms: tick - (n - i) as i64 * period_ms,
                value: None,
            })
            .collect();
        let ev = evaluate(&params, &empty, current);
        out.state = ev.state;
        out.reason = ev
            .reason
            .map(|r| format!("No series matches the alarm's dimensions yet. {r}"));
        out.series = Some(BTreeMap::new());
        return Ok(out);
    }
    let mut states = BTreeMap::new();
    let (mut alarming, mut ok) = (Vec::new(), 0usize);
    for key in &keys {
        let label = series_label(key, alarm);
        let prev = series.get(&label).cloned();
        let prev_value = prev
            .as_ref()
            .map_or(StateValue::InsufficientData, |p| p.value);
        let (points, low) = fetch_points(alarm, key, tick, source)?;
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
            alarming.push((
                label.clone(),
                reason.clone(),
                evaluated.clone(),
                key.dimensions.clone(),
            ));
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
    let total = keys.len();
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
    out.reason_data = json!({"version": "1.0", "queryDate": iso(now), "statistic": alarm.statistic.to_string(),
        "period": alarm.period_s, "threshold": alarm.threshold(), "seriesInAlarm": alarming.len(), "seriesTotal": total});
    out.series = Some(states);
    Ok(out)
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
