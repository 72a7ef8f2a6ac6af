//! The query service: start a query, poll its status, results and statistics, stop it, list
//! queries — what the native HTTP API, the console and CloudWatch's StartQuery /
//! GetQueryResults / StopQuery / DescribeQueries (issue #8) call.
//!
//! Isolation (issue #5: "a dedicated runtime for queries so ingest never starves"): queries run
//! on their own tokio runtime, whose threads run at a lower CPU priority (nice +10) than the
//! server's, so ingest and the WAL keep their latency under a heavy query. Each query has
//! - its own DataFusion memory pool (operators that can spill to disk do so, others fail the
//!   query with [`QueryError::MemoryExceeded`]) — the server's memory is not at stake;
//! - a timeout (default 15 minutes, the reference's §5.5 limit) after which it is stopped;
//! - a slot among [`QueryConfig::max_running`]; later queries wait as `Scheduled`;
//! - panic containment: a panic inside DataFusion fails that query only.
//!
//! Results are bounded (issue 15 item 4): one query keeps at most
//! [`QueryConfig::max_result_bytes`] of rows (the query ends there, with a warning); finished
//! queries keep their results for [`QueryConfig::result_ttl_ms`], at most
//! [`QueryConfig::retain_finished`] of them and [`QueryConfig::max_retained_result_bytes`]
//! together (the oldest go first); a poll shares the rows instead of copying them. Query
//! memory is a share of what the process may use (its cgroup's limit,
//! [`crate::memory::available_bytes`]); spill files have a size cap; scalar functions cannot
//! allocate beyond [`QueryConfig::max_function_output_bytes`] a batch ([`crate::guard`]).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{FutureExt, StreamExt};
use kinsight_ql::{Pipeline, Warning};
use kinsight_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::error::{QueryError, Result};
use crate::planner::{self, PlanOptions};
use crate::results::{self, Row, Rows};
use crate::sql;
use crate::stats::{QueryStatistics, plan_statistics};
use crate::table::{self, GroupData, LogTable, ScanCounters, TimeRange};

/// Most log groups in one query (CloudWatch allows 50, reference §5.5 service limits).
pub const MAX_GROUPS_PER_QUERY: usize = 50;
/// Result rows turned into JSON at a time (a batch can hold 8,192 rows of 256 KiB).
const ROWS_PER_SLICE: usize = 64;

/// Longest query text accepted (CloudWatch's `queryString` limit).
pub const MAX_QUERY_TEXT_CHARS: usize = 10_000;

/// Refuses a query text over [`MAX_QUERY_TEXT_CHARS`], in either language: the one check that
/// starting a query and checking its syntax (`POST /v1/queries/check`) share, so both answer the
/// same error.
pub fn check_query_text(query: &str) -> Result<()> {
    if query.chars().count() > MAX_QUERY_TEXT_CHARS {
        return Err(QueryError::InvalidParameter(format!(
            "the query is longer than {MAX_QUERY_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

/// Settings of the query service.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Threads of the query runtime (and DataFusion partitions of each query).
    pub threads: usize,
    /// Queries executing at once; more wait as `Scheduled`.
    pub max_running: usize,
    /// Queries running or waiting; beyond this `start` fails with
    /// [`QueryError::TooManyQueries`].
    pub max_queued: usize,
    /// Timeout of a query that asks for none.
    pub default_timeout_ms: u64,
    /// Longest timeout a caller may ask for.
    pub max_timeout_ms: u64,
    /// Memory one query's operators may hold (hash tables, sorts) before spilling or failing.
    /// By default a quarter of what the process may use, shared by the running queries
    /// ([`memory_per_query_default`]).
    pub memory_per_query_bytes: usize,
    /// Finished queries whose results are kept for polling.
    pub retain_finished: usize,
    /// Most bytes of result rows one query keeps ([`crate::results::row_bytes`]); the query
    /// stops there and says so in a warning.
    pub max_result_bytes: usize,
    /// Most bytes of results all finished queries keep together; the oldest go first.
    pub max_retained_result_bytes: usize,
    /// How long a finished query's results are kept.
    pub result_ttl_ms: u64,
    /// Most bytes one scalar function may produce for one batch ([`crate::guard`]); by
    /// default 256 MiB, or a quarter of a query's memory when that is less.
    pub max_function_output_bytes: usize,
    /// Nice value of the query threads (0 = same priority as the server).
    pub nice: i32,
    /// Directory for spill files; `None`: the system temporary directory.
    pub spill_dir: Option<std::path::PathBuf>,
    /// Most bytes of spill files of all queries together; a query that needs more fails.
    pub max_spill_bytes: u64,
}

/// Share of the process's memory all running queries may hold together by default.
pub const QUERY_MEMORY_SHARE: f64 = 0.25;

/// [`QueryConfig::memory_per_query_bytes`] by default: [`QUERY_MEMORY_SHARE`] of what the
/// process may use (its cgroup limit or the machine's memory), split between `max_running`
/// queries; at least 64 MiB; 512 MiB when nothing can be read.
pub fn memory_per_query_default(max_running: usize) -> usize {
    match crate::memory::available_bytes() {
        Some(total) => {
            let share = (total as f64 * QUERY_MEMORY_SHARE) as usize / max_running.max(1);
            share.max(64 << 20)
        }
        None => 512 << 20,
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_running = threads.max(2);
        let memory_per_query_bytes = memory_per_query_default(max_running);
        QueryConfig {
            threads,
            max_running,
            max_queued: 100,
            default_timeout_ms: 15 * 60_000,
            max_timeout_ms: 60 * 60_000,
            memory_per_query_bytes,
            retain_finished: 1000,
            max_result_bytes: 32 << 20,
            max_retained_result_bytes: 256 << 20,
            result_ttl_ms: 60 * 60_000,
            max_function_output_bytes: crate::guard::MAX_FUNCTION_OUTPUT_BYTES
                .min(memory_per_query_bytes / 4),
            nice: 10,
            spill_dir: None,
            max_spill_bytes: 4 << 30,
        }
    }
}

/// The language of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// CloudWatch Logs Insights QL (reference §5).
    #[default]
    Insights,
    /// SQL over the groups as tables (see [`crate::sql`]).
    Sql,
}

/// A query to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    /// Log groups (1 to [`MAX_GROUPS_PER_QUERY`]).
    pub groups: Vec<String>,
    /// Inclusive, epoch milliseconds.
    pub start_ms: i64,
    /// Exclusive, epoch milliseconds.
    pub end_ms: i64,
    pub query: String,
    #[serde(default)]
    pub language: Language,
    /// Most rows returned (1 to 10,000). Without it the query's own `limit` applies, else
    /// 1,000 (reference §5.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Timeout; without it [`QueryConfig::default_timeout_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Where a query is (CloudWatch's query statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryStatus {
    Scheduled,
    Running,
    Complete,
    Failed,
    Cancelled,
    Timeout,
}

impl QueryStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, QueryStatus::Scheduled | QueryStatus::Running)
    }
}

/// Why a query failed, for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryFailure {
    /// `memory_exceeded`, `execution`, `store`, `internal`, `timeout`, `cancelled`.
    pub code: String,
    pub message: String,
}

/// A query as listed (DescribeQueries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    pub query_id: String,
    pub status: QueryStatus,
    pub groups: Vec<String>,
    pub query: String,
    pub language: Language,
    pub start_ms: i64,
    pub end_ms: i64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

/// Everything known about a query at one moment (GetQueryResults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuerySnapshot {
    #[serde(flatten)]
    pub info: QueryInfo,
    /// Result columns in order; raw-event queries end with `@ptr`. Empty until planned.
    pub columns: Vec<String>,
    /// Rows from `rows_from` on (see [`QueryService::snapshot`]); while running, the rows so
    /// far. Shared with the query, not copied.
    pub rows: Rows,
    pub rows_from: usize,
    pub total_rows: usize,
    pub statistics: QueryStatistics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<QueryFailure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A finished query's results, as [`QueryService::run`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub statistics: QueryStatistics,
    pub warnings: Vec<String>,
}

/// The plans of a query, as text, for `explain` and plan snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explained {
    pub logical: String,
    pub optimized: String,
    pub physical: String,
}

enum Compiled {
    Insights(Box<Pipeline>),
    Sql(String),
}

struct EntryState {
    status: QueryStatus,
    columns: Vec<String>,
    rows: Rows,
    /// [`crate::results::row_bytes`] of `rows`.
    result_bytes: usize,
    error: Option<QueryFailure>,
    warnings: Vec<String>,
    finished_ms: Option<i64>,
    /// Set while running; replaced by `final_stats` when finished.
    plan: Option<Arc<dyn ExecutionPlan>>,
    final_stats: Option<QueryStatistics>,
}

struct Entry {
    id: String,
    request: QueryRequest,
    created_ms: i64,
    state: Mutex<EntryState>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
    /// Unflushed rows and bytes the query's scans read.
    counters: Arc<ScanCounters>,
    done: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Entry {
    fn info(&self, st: &EntryState) -> QueryInfo {
        QueryInfo {
            query_id: self.id.clone(),
            status: st.status,
            groups: self.request.groups.clone(),
            query: self.request.query.clone(),
            language: self.request.language,
            start_ms: self.request.start_ms,
            end_ms: self.request.end_ms,
            created_ms: self.created_ms,
            finished_ms: st.finished_ms,
        }
    }

    fn statistics(&self, st: &EntryState) -> QueryStatistics {
        if let Some(s) = st.final_stats {
            return s;
        }
        plan_statistics(
            st.plan.as_deref(),
            self.counters.rows(),
            self.counters.bytes(),
        )
    }

    /// Moves to a finished status unless already finished; returns whether it did.
    fn finish(&self, status: QueryStatus, error: Option<QueryFailure>) -> bool {
        let mut st = lock(&self.state);
        if st.status.is_finished() {
            return false;
        }
        st.final_stats = Some(self.statistics(&st));
        st.plan = None;
        st.status = status;
        st.error = error;
        st.finished_ms = Some(now_ms());
        drop(st);
        // send_replace: `send` stores nothing when no receiver exists yet, and `wait`
        // subscribes later — a query finished before anyone waited would never be seen.
        self.done.send_replace(true);
        true
    }
}

struct Registry {
    entries: HashMap<String, Arc<Entry>>,
    /// Ids in start order, for listing and eviction.
    order: VecDeque<String>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    config: QueryConfig,
    /// The query runtime; `None` only while dropping.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pub(crate) handle: tokio::runtime::Handle,
    /// Object store registry, metadata cache and disk manager shared by all queries.
    shared_env: Arc<RuntimeEnv>,
    registry: Mutex<Registry>,
    slots: Arc<Semaphore>,
}

impl Inner {
    /// Drops finished queries whose results expired, then the oldest beyond the retention
    /// count or the retained-bytes budget.
    fn sweep(&self, reg: &mut Registry) {
        let c = &self.config;
        let now = now_ms();
        let finished: Vec<(String, i64, usize)> = reg
            .order
            .iter()
            .filter_map(|id| {
                let e = reg.entries.get(id)?;
                let st = lock(&e.state);
                st.status
                    .is_finished()
                    .then(|| (id.clone(), st.finished_ms.unwrap_or(now), st.result_bytes))
            })
            .collect();
        let mut count = finished.len();
        let mut bytes: usize = finished.iter().map(|f| f.2).sum();
        let mut gone = std::collections::HashSet::new();
        for (id, finished_ms, size) in finished {
            let expired = now.saturating_sub(finished_ms) >= c.result_ttl_ms as i64;
            if expired || count > c.retain_finished || bytes > c.max_retained_result_bytes {
                count -= 1;
                bytes -= size;
                gone.insert(id);
            }
        }
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            reg.entries.remove(id);
        }
        reg.order.retain(|id| !gone.contains(id));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A runtime cannot be dropped from within async code; let its threads wind down on
        // their own.
        if let Some(rt) = lock(&self.runtime).take() {
            rt.shutdown_background();
        }
    }
}

/// The query service. Cheap to clone; clones share the runtime and the registry.
#[derive(Clone)]
pub struct QueryService {
    pub(crate) inner: Arc<Inner>,
}

fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours; on
    // Linux the nice value is per thread, so this lowers only the calling (query) thread.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        tracing::debug!("could not lower the priority of a query thread");
    }
}

impl QueryService {
    /// Starts the query runtime. Call from anywhere (it does not need a runtime itself).
    pub fn new(store: Store, config: QueryConfig) -> Result<QueryService> {
        let nice = config.nice;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("kinsight-query")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .map_err(|e| QueryError::Internal(format!("query runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let mut builder =
            RuntimeEnvBuilder::new().with_max_temp_directory_size(config.max_spill_bytes);
        if let Some(dir) = &config.spill_dir {
            builder = builder.with_temp_file_path(dir.clone());
        }
        let shared_env = builder
            .build_arc()
            .map_err(|e| QueryError::Internal(format!("query environment: {e}")))?;
        table::register_store(&shared_env, store.object_store())?;
        let service = QueryService {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_running.max(1))),
                store,
                config,
                runtime: Mutex::new(Some(runtime)),
                handle,
                shared_env,
                registry: Mutex::new(Registry {
                    entries: HashMap::new(),
                    order: VecDeque::new(),
                }),
            }),
        };
        // Expired results go even when nobody starts or polls a query.
        let weak = Arc::downgrade(&service.inner);
        service.inner.handle.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let Some(inner) = weak.upgrade() else { return };
                let mut reg = lock(&inner.registry);
                inner.sweep(&mut reg);
            }
        });
        Ok(service)
    }

    pub fn config(&self) -> &QueryConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Checks a request and compiles its query; nothing runs yet.
    fn compile(&self, req: &QueryRequest) -> Result<Compiled> {
        if req.groups.is_empty() {
            return Err(QueryError::InvalidParameter(
                "a query needs at least one log group".into(),
            ));
        }
        if req.groups.len() > MAX_GROUPS_PER_QUERY {
            return Err(QueryError::InvalidParameter(format!(
                "a query can read at most {MAX_GROUPS_PER_QUERY} log groups, got {}",
                req.groups.len()
            )));
        }
        if req.end_ms <= req.start_ms {
            return Err(QueryError::InvalidParameter(format!(
                "the end of the time range ({}) must be after its start ({})",
                req.end_ms, req.start_ms
            )));
        }
        if let Some(l) = req.limit
            && !(1..=kinsight_ql::MAX_RESULT_ROWS).contains(&l)
        {
            return Err(QueryError::InvalidParameter(format!(
                "limit must be from 1 to {}, got {l}",
                kinsight_ql::MAX_RESULT_ROWS
            )));
        }
        check_query_text(&req.query)?;
        for g in &req.groups {
            if self.inner.store.group(g).is_none() {
                return Err(QueryError::GroupNotFound(g.clone()));
            }
        }
        Ok(match req.language {
            Language::Insights => Compiled::Insights(Box::new(kinsight_ql::plan(&req.query)?)),
            Language::Sql => {
                sql::check(&req.query)?;
                Compiled::Sql(req.query.clone())
            }
        })
    }

    /// Starts a query and returns its id. Malformed queries, unknown groups and bad
    /// parameters are refused here, before anything runs.
    pub fn start(&self, req: QueryRequest) -> Result<String> {
        let compiled = self.compile(&req)?;
        let warnings = match &compiled {
            Compiled::Insights(p) => p.warnings.iter().map(Warning::to_string).collect(),
            Compiled::Sql(_) => Vec::new(),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let (done, _) = watch::channel(false);
        let entry = Arc::new(Entry {
            id: id.clone(),
            request: req,
            created_ms: now_ms(),
            state: Mutex::new(EntryState {
                status: QueryStatus::Scheduled,
                columns: Vec::new(),
                rows: Rows::default(),
                result_bytes: 0,
                error: None,
                warnings,
                finished_ms: None,
                plan: None,
                final_stats: None,
            }),
            abort: Mutex::new(None),
            counters: Arc::default(),
            done,
        });
        {
            let mut reg = lock(&self.inner.registry);
            let active = reg
                .entries
                .values()
                .filter(|e| !lock(&e.state).status.is_finished())
                .count();
            if active >= self.inner.config.max_queued {
                return Err(QueryError::TooManyQueries(active));
            }
            reg.entries.insert(id.clone(), entry.clone());
            reg.order.push_back(id.clone());
            self.inner.sweep(&mut reg);
        }
        let inner = self.inner.clone();
        let task_entry = entry.clone();
        let task = self.inner.handle.spawn(async move {
            run(inner, task_entry, compiled).await;
        });
        *lock(&entry.abort) = Some(task.abort_handle());
        Ok(id)
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>> {
        let mut reg = lock(&self.inner.registry);
        self.inner.sweep(&mut reg);
        reg.entries
            .get(id)
            .cloned()
            .ok_or_else(|| QueryError::QueryNotFound(id.to_string()))
    }

    /// Bytes of results the finished queries hold now.
    pub fn retained_result_bytes(&self) -> usize {
        let reg = lock(&self.inner.registry);
        reg.entries
            .values()
            .map(|e| lock(&e.state))
            .filter(|st| st.status.is_finished())
            .map(|st| st.result_bytes)
            .sum()
    }

    /// The status, statistics and the rows from `rows_from` on (0 for all).
    pub fn snapshot(&self, id: &str, rows_from: usize) -> Result<QuerySnapshot> {
        let e = self.entry(id)?;
        let st = lock(&e.state);
        let from = rows_from.min(st.rows.len());
        Ok(QuerySnapshot {
            info: e.info(&st),
            columns: st.columns.clone(),
            rows: st.rows.starting_at(from),
            rows_from: from,
            total_rows: st.rows.len(),
            statistics: e.statistics(&st),
            error: st.error.clone(),
            warnings: st.warnings.clone(),
        })
    }

    /// Like [`QueryService::snapshot`], with at most `max_bytes` of rows
    /// ([`crate::results::row_bytes`]; at least one row): poll again from `rows_from` plus the
    /// rows returned until `total_rows` are read.
    pub fn snapshot_page(
        &self,
        id: &str,
        rows_from: usize,
        max_bytes: usize,
    ) -> Result<QuerySnapshot> {
        let mut snap = self.snapshot(id, rows_from)?;
        snap.rows = snap.rows.prefix_within(max_bytes).0;
        Ok(snap)
    }

    /// Stops a query. Returns false if it had already finished.
    pub fn stop(&self, id: &str) -> Result<bool> {
        let e = self.entry(id)?;
        let stopped = e.finish(
            QueryStatus::Cancelled,
            Some(QueryFailure {
                code: "cancelled".into(),
                message: "query was cancelled".into(),
            }),
        );
        if stopped && let Some(a) = lock(&e.abort).take() {
            a.abort();
        }
        Ok(stopped)
    }

    /// Queries, newest first, optionally only those with `status`.
    pub fn list(&self, status: Option<QueryStatus>, max: usize) -> Vec<QueryInfo> {
        let mut reg = lock(&self.inner.registry);
        self.inner.sweep(&mut reg);
        reg.order
            .iter()
            .rev()
            .filter_map(|id| reg.entries.get(id))
            .map(|e| {
                let st = lock(&e.state);
                e.info(&st)
            })
            .filter(|i| status.is_none_or(|s| i.status == s))
            .take(max)
            .collect()
    }

    /// Waits until the query has finished and returns its final snapshot.
    pub async fn wait(&self, id: &str) -> Result<QuerySnapshot> {
        let e = self.entry(id)?;
        let mut rx = e.done.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.snapshot(id, 0)
    }

    /// Runs a query to the end: `start` + `wait`, with failures as errors.
    pub async fn run(&self, req: QueryRequest) -> Result<QueryOutput> {
        let timeout = self.timeout_of(&req);
        let id = self.start(req)?;
        let snap = self.wait(&id).await?;
        match snap.info.status {
            QueryStatus::Complete => Ok(QueryOutput {
                columns: snap.columns,
                rows: snap.rows.to_vec(),
                statistics: snap.statistics,
                warnings: snap.warnings,
            }),
            QueryStatus::Timeout => Err(QueryError::Timeout(timeout.as_millis() as u64)),
            QueryStatus::Cancelled => Err(QueryError::Cancelled),
            _ => {
                let f = snap.error.unwrap_or(QueryFailure {
                    code: "internal".into(),
                    message: "query failed".into(),
                });
                Err(match f.code.as_str() {
                    "malformed_query" => QueryError::MalformedSql {
                        message: f.message,
                        line: None,
                        column: None,
                    },
                    "memory_exceeded" => {
                        let limit_bytes = self.inner.config.memory_per_query_bytes;
                        // The failure's text is the error's own Display: do not say it twice.
                        let prefix =
                            format!("query exceeded its memory limit of {limit_bytes} bytes: ");
                        QueryError::MemoryExceeded {
                            limit_bytes,
                            message: f
                                .message
                                .strip_prefix(&prefix)
                                .map(str::to_string)
                                .unwrap_or(f.message),
                        }
                    }
                    "spill_exceeded" => QueryError::SpillExceeded {
                        limit_bytes: self.inner.config.max_spill_bytes,
                    },
                    "internal" => QueryError::Internal(f.message),
                    _ => QueryError::Execution(
                        f.message
                            .strip_prefix("query failed: ")
                            .map(str::to_string)
                            .unwrap_or(f.message),
                    ),
                })
            }
        }
    }

    fn timeout_of(&self, req: &QueryRequest) -> Duration {
        let c = &self.inner.config;
        Duration::from_millis(
            req.timeout_ms
                .unwrap_or(c.default_timeout_ms)
                .clamp(1, c.max_timeout_ms),
        )
    }

    /// The logical, optimized and physical plans of a query, without running it.
    pub async fn explain(&self, req: QueryRequest) -> Result<Explained> {
        let compiled = self.compile(&req)?;
        let inner = self.inner.clone();
        self.inner
            .handle
            .spawn(async move {
                let counters = Arc::default();
                let (ctx, plan) = prepare(&inner, &req, &compiled, &counters).await?;
                let state = ctx.state();
                let optimized = state
                    .optimize(&plan)
                    .map_err(|e| QueryError::Internal(e.to_string()))?;
                let physical = state
                    .create_physical_plan(&plan)
                    .await
                    .map_err(|e| QueryError::Internal(e.to_string()))?;
                Ok(Explained {
                    logical: plan.display_indent().to_string(),
                    optimized: optimized.display_indent().to_string(),
                    physical: datafusion::physical_plan::displayable(physical.as_ref())
                        .indent(false)
                        .to_string(),
                })
            })
            .await
            .map_err(|e| QueryError::Internal(format!("explain task: {e}")))?
    }

    /// The session of one query: shared object store and caches, its own memory pool.
    pub(crate) fn session(inner: &Inner) -> Result<SessionContext> {
        let c = &inner.config;
        let mut config = SessionConfig::new()
            .with_target_partitions(c.threads.max(1))
            .with_batch_size(8192)
            .with_information_schema(false);
        {
            let o = config.options_mut();
            o.execution.parquet.pruning = true;
            // Row-group statistics prune; the page index does not pay for itself here: it is
            // read for every column of a wide segment (the performance group has ~150), and
            // page-level row selections fragment the decoding that late materialization
            // does. Turning it off made 8 of the 12 benchmark queries 10-30 % faster and none
            // slower (docs/benchmarks.md, "Query engine").
            o.execution.parquet.enable_page_index = false;
            o.execution.parquet.schema_force_view_types = true;
            // Late materialization: filters are evaluated while decoding, and the other
            // columns are decoded only for the rows that pass (`filter Type = "Pod"` reads
            // pod columns of pod events only).
            o.execution.parquet.pushdown_filters = true;
            o.execution.parquet.reorder_filters = true;
            // Names are case-sensitive (`NodeName`, `PodName`, reference §1.1).
            o.sql_parser.enable_ident_normalization = false;
        }
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(c.memory_per_query_bytes),
            NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        );
        let mut builder = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_object_store_registry(inner.shared_env.object_store_registry.clone())
            .with_cache_manager(CacheManagerConfig::default().with_file_metadata_cache(Some(
                inner.shared_env.cache_manager.get_file_metadata_cache(),
            )));
        builder.disk_manager = Some(Arc::<DiskManager>::clone(&inner.shared_env.disk_manager));
        let env = builder
            .build_arc()
            .map_err(|e| QueryError::Internal(format!("query environment: {e}")))?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(env)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        // This rule also drops sort keys it believes functionally determined by earlier
        // ones; after `parse` it wrongly took one capture as determined by another (both
        // computed from the same column) and dropped `workload` from `sort level, workload`.
        // Duplicate keys cost little; a wrong order does not.
        ctx.remove_optimizer_rule("eliminate_duplicated_expr");
        Ok(ctx)
    }
}

/// What the store holds of each group over `range`.
async fn scan_groups(
    inner: &Inner,
    names: &[String],
    range: TimeRange,
) -> Result<Vec<Arc<GroupData>>> {
    let mut groups = Vec::with_capacity(names.len());
    for name in names {
        let scan = inner
            .store
            .scan(name, Some(range.start_ms), Some(range.end_ms))
            .await
            .map_err(|e| match e {
                kinsight_store::StoreError::GroupNotFound(g) => QueryError::GroupNotFound(g),
                other => QueryError::Store(other),
            })?;
        groups.push(Arc::new(GroupData {
            name: name.clone(),
            scan,
        }));
    }
    Ok(groups)
}

/// Scans the groups and plans the query.
async fn prepare(
    inner: &Inner,
    req: &QueryRequest,
    compiled: &Compiled,
    counters: &Arc<ScanCounters>,
) -> Result<(SessionContext, LogicalPlan)> {
    let range = TimeRange {
        start_ms: req.start_ms,
        end_ms: req.end_ms,
    };
    let groups = scan_groups(inner, &req.groups, range).await?;
    let all = Arc::new(LogTable::new(groups.clone(), range)?.with_counters(counters.clone()));
    let ctx = QueryService::session(inner)?;
    let plan = match compiled {
        Compiled::Insights(pipeline) => {
            let row_cap = req.limit.unwrap_or(pipeline.result_row_cap);
            // `diff` also reads the groups over the range it compares with.
            let previous = match &pipeline.diff {
                Some(d) => {
                    let earlier = crate::pattern::previous_range(range, d.node);
                    let groups = scan_groups(inner, &req.groups, earlier).await?;
                    Some(Arc::new(
                        LogTable::new(groups, earlier)?.with_counters(counters.clone()),
                    ))
                }
                None => None,
            };
            planner::plan_pipeline_compared(
                pipeline,
                &all,
                previous.as_ref(),
                PlanOptions {
                    row_cap,
                    now_ms: now_ms(),
                },
            )?
        }
        Compiled::Sql(text) => {
            let mut tables = Vec::with_capacity(groups.len());
            for g in &groups {
                tables.push((
                    g.name.clone(),
                    Arc::new(LogTable::new(vec![g.clone()], range)?),
                ));
            }
            sql::register(&ctx, &all, &tables)?;
            let row_cap = req.limit.unwrap_or(kinsight_ql::DEFAULT_RESULT_ROWS);
            sql::plan(&ctx, text, row_cap).await?
        }
    };
    let plan =
        crate::guard::guard_plan(plan, inner.config.max_function_output_bytes).map_err(|e| {
            QueryError::from_datafusion(
                e,
                crate::error::Limits {
                    memory_bytes: inner.config.memory_per_query_bytes,
                    spill_bytes: inner.config.max_spill_bytes,
                },
            )
        })?;
    Ok((ctx, plan))
}

fn failure(e: &QueryError) -> QueryFailure {
    let code = match e {
        QueryError::MemoryExceeded { .. } => "memory_exceeded",
        QueryError::SpillExceeded { .. } => "spill_exceeded",
        QueryError::Store(_) => "store",
        QueryError::Internal(_) => "internal",
        QueryError::Timeout(_) => "timeout",
        QueryError::Cancelled => "cancelled",
        QueryError::Malformed(_) | QueryError::MalformedSql { .. } => "malformed_query",
        QueryError::GroupNotFound(_) => "group_not_found",
        _ => "execution",
    };
    QueryFailure {
        code: code.into(),
        message: e.to_string(),
    }
}

async fn run(inner: Arc<Inner>, entry: Arc<Entry>, compiled: Compiled) {
    let Ok(_permit) = inner.slots.clone().acquire_owned().await else {
        entry.finish(
            QueryStatus::Failed,
            Some(failure(&QueryError::Internal("query slots closed".into()))),
        );
        return;
    };
    {
        let mut st = lock(&entry.state);
        if st.status.is_finished() {
            return; // stopped while waiting
        }
        st.status = QueryStatus::Running;
    }
    let timeout = QueryService {
        inner: inner.clone(),
    }
    .timeout_of(&entry.request);
    let work = AssertUnwindSafe(execute(&inner, &entry, &compiled)).catch_unwind();
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(Ok(()))) => {
            entry.finish(QueryStatus::Complete, None);
        }
        Ok(Ok(Err(e))) => {
            entry.finish(QueryStatus::Failed, Some(failure(&e)));
        }
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tracing::error!(query = %entry.id, "query panicked: {what}");
            entry.finish(
                QueryStatus::Failed,
                Some(failure(&QueryError::Internal(format!(
                    "the query engine failed on this query: {what}"
                )))),
            );
        }
        Err(_) => {
            entry.finish(
                QueryStatus::Timeout,
                Some(failure(&QueryError::Timeout(timeout.as_millis() as u64))),
            );
        }
    }
}

async fn execute(inner: &Inner, entry: &Entry, compiled: &Compiled) -> Result<()> {
    let (ctx, plan) = prepare(inner, &entry.request, compiled, &entry.counters).await?;
    let columns: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let limit = crate::error::Limits {
        memory_bytes: inner.config.memory_per_query_bytes,
        spill_bytes: inner.config.max_spill_bytes,
    };
    let physical = ctx
        .state()
        .create_physical_plan(&plan)
        .await
        .map_err(|e| match compiled {
            // Planning also folds constants: a refused allocation is no syntax error.
            Compiled::Sql(_)
                if !matches!(
                    e.find_root(),
                    datafusion::error::DataFusionError::ResourcesExhausted(_)
                ) =>
            {
                QueryError::MalformedSql {
                    message: crate::error::strip_datafusion_prefixes(&e.to_string()),
                    line: None,
                    column: None,
                }
            }
            _ => QueryError::from_datafusion(e, limit),
        })?;
    {
        let mut st = lock(&entry.state);
        st.columns = columns;
        st.plan = Some(physical.clone());
    }
    let mut stream = execute_stream(physical, ctx.task_ctx())
        .map_err(|e| QueryError::from_datafusion(e, limit))?;
    let max_bytes = inner.config.max_result_bytes;
    'batches: while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| QueryError::from_datafusion(e, limit))?;
        // Rows are made a slice at a time, so that a batch of large values is not turned
        // into JSON whole before the budget is checked.
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = ROWS_PER_SLICE.min(batch.num_rows() - offset);
            let mut rows = results::batch_rows(&batch.slice(offset, n))?;
            offset += n;
            let mut st = lock(&entry.state);
            if st.status.is_finished() {
                break 'batches;
            }
            let mut bytes = st.result_bytes;
            let fit = rows
                .iter()
                .take_while(|r| {
                    bytes += results::row_bytes(r);
                    bytes <= max_bytes
                })
                .count();
            let full = fit < rows.len();
            rows.truncate(fit);
            st.result_bytes += rows.iter().map(results::row_bytes).sum::<usize>();
            st.rows.push(rows);
            if full {
                let kept = st.rows.len();
                st.warnings.push(format!(
                    "results were cut at {kept} rows: a query keeps at most {} of results; narrow the query or select fewer fields",
                    crate::guard::human_bytes(max_bytes as u128)
                ));
                // Dropping the stream stops the query's execution.
                break 'batches;
            }
        }
    }
    Ok(())
}
