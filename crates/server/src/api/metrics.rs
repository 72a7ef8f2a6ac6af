//! Metrics API (issue #6, docs/api.md "Metrics"): ListMetrics-style listing and statistic
//! queries over the metric store, plus the wiring of the store into the server — the ingest
//! observer that feeds it every durable batch, and its maintenance loop.
//!
//! Routes: `POST /v1/metrics/list`, `POST /v1/metrics/query`, `GET /v1/metrics/cardinality`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kinsight_alarms::{
    AlarmError, AlarmService, AlarmServiceConfig, BackgroundTasks, Clock, MetricSource,
};
use kinsight_metrics::wire::{
    ListMetricsRequest, ListMetricsResponse, MetricQueryRequest, MetricQueryResponse,
};
use kinsight_metrics::{CardinalityStats, MetricStore, MetricStoreConfig, MetricsError};
use kinsight_store::{DurableBatch, DurableSamples, IngestObserver};

use crate::auth::{CanRead, Require};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/metrics/list", post(list_metrics))
        .route("/v1/metrics/query", post(query_metrics))
        .route("/v1/metrics/cardinality", get(cardinality))
}

/// The metric store and the alarm service of a server. Open before `Server::bind` — its
/// observer must see the WAL replay — then attach to the server's state:
///
/// ```ignore
/// let engine = MetricsEngine::open(&data_dir, MetricStoreConfig::default())?;
/// let mut server = Server::bind(config, vec![engine.observer()]).await?;
/// let _tasks = engine.attach(&mut server.state, AlarmServiceConfig::default(), Arc::new(SystemClock))?;
/// ```
pub struct MetricsEngine {
    pub metrics: Arc<MetricStore>,
    data_dir: PathBuf,
    /// Replicas: publishes the metric store for replicas that join (`open_replica`).
    publisher: Option<Arc<crate::replicas::MetricsPublisher>>,
}

/// The engine's background tasks: alarm evaluator, notifier, metric store maintenance.
pub struct EngineTasks {
    pub alarms: Option<BackgroundTasks>,
    pub maintenance: tokio::task::JoinHandle<()>,
}

impl EngineTasks {
    pub fn abort(&self) {
        if let Some(a) = &self.alarms {
            a.abort();
        }
        self.maintenance.abort();
    }
}

/// How often the metric store flushes, compacts and applies retention.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);

impl MetricsEngine {
    /// Opens the metric store under `<data_dir>/metrics`.
    pub fn open(data_dir: &Path, config: MetricStoreConfig) -> Result<Self, MetricsError> {
        Ok(MetricsEngine {
            metrics: Arc::new(MetricStore::open(data_dir.join("metrics"), config)?),
            data_dir: data_dir.to_path_buf(),
            publisher: None,
        })
    }

    /// Replicas: first makes `<data_dir>/metrics` the metric snapshot the leader published, if
    /// that is newer (a replica joining with an empty disk gets the whole history), then
    /// opens it; as leader, the replica publishes its own after each maintenance
    /// (`replicas::MetricsPublisher`), and the shared log is kept above what was published.
    pub async fn open_replica(
        data_dir: &Path,
        config: MetricStoreConfig,
        catalogue: kinsight_catalogue::Catalogue,
        storage: kinsight_store::Storage,
        me: (&str, &str),
    ) -> Result<Self, crate::replicas::ReplicaMetricsError> {
        use crate::replicas::ReplicaMetricsError;
        let dir = data_dir.join("metrics");
        match crate::replicas::restore_metrics(&catalogue, &storage, &dir, me).await {
            Ok(Some(seq)) => tracing::info!(
                persisted_seq = seq,
                "metric store restored from the published snapshot"
            ),
            Ok(None) => {}
            // The server still starts: the store then holds what the kept log holds.
            Err(e) => tracing::error!(
                error = %e,
                "restoring the published metric snapshot failed; the metric history before the kept log is missing on this replica"
            ),
        }
        let mut engine = tokio::task::spawn_blocking({
            let data_dir = data_dir.to_path_buf();
            move || Self::open(&data_dir, config)
        })
        .await
        .map_err(|e| ReplicaMetricsError::Restore(e.to_string()))??;
        engine.publisher = Some(Arc::new(crate::replicas::MetricsPublisher::new(
            catalogue, storage,
        )));
        Ok(engine)
    }

    /// The observer to register with the log store: every durable batch, live or replayed,
    /// reaches the metric store.
    pub fn observer(&self) -> Arc<dyn IngestObserver> {
        Arc::new(MetricsObserver {
            store: self.metrics.clone(),
            shared_bound: self.publisher.as_ref().map(|p| p.bound()),
        })
    }

    /// Opens the alarm service under `<data_dir>/alarms`, puts both engines in the server's
    /// state and starts the background tasks on the current runtime.
    pub fn attach(
        self,
        state: &mut AppState,
        alarms: AlarmServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<EngineTasks, AlarmError> {
        let service = AlarmService::open(self.data_dir.join("alarms"), alarms, clock)?;
        let source: Arc<dyn MetricSource> =
            Arc::new(super::prometheus::AlarmSource(self.metrics.clone()));
        let tasks = EngineTasks {
            alarms: Some(service.spawn(source)),
            maintenance: spawn_maintenance(self.metrics.clone(), MAINTENANCE_INTERVAL),
        };
        state.metrics = Some(self.metrics);
        state.alarms = Some(service);
        Ok(tasks)
    }

    /// Replicas: the metric store, and the alarm service on the replicas' shared journal in
    /// the catalogue (`replicas::CatalogueJournal`): every replica serves the alarm API; the
    /// one holding the maintenance lease evaluates and notifies, its writes fenced by it.
    pub async fn attach_replica(
        self,
        state: &mut AppState,
        alarms: AlarmServiceConfig,
        clock: Arc<dyn Clock>,
        catalogue: kinsight_catalogue::Catalogue,
        replica_id: &str,
    ) -> Result<EngineTasks, AlarmError> {
        let store = state.store.clone();
        let journal = crate::replicas::CatalogueJournal::new(
            catalogue,
            replica_id,
            kinsight_store::shared::MAINTENANCE_LEASE,
            Arc::new(move || store.maintenance_epoch()),
        );
        // Reads the journal through the catalogue: off the async workers.
        let service = tokio::task::spawn_blocking(move || {
            AlarmService::open_shared(Arc::new(journal), alarms, clock)
        })
        .await
        .map_err(|e| AlarmError::Unavailable(e.to_string()))??;
        let source: Arc<dyn MetricSource> =
            Arc::new(super::prometheus::AlarmSource(self.metrics.clone()));
        let maintenance = spawn_maintenance_publishing(
            self.metrics.clone(),
            MAINTENANCE_INTERVAL,
            self.publisher.clone().map(|p| (p, state.store.clone())),
        );
        let tasks = EngineTasks {
            alarms: Some(service.spawn(source)),
            maintenance,
        };
        state.metrics = Some(self.metrics);
        state.alarms = Some(service);
        Ok(tasks)
    }
}

async fn maintain_once(store: &Arc<MetricStore>) {
    let s = store.clone();
    let now = chrono::Utc::now().timestamp_millis();
    match tokio::task::spawn_blocking(move || s.maintain(now)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("metric store maintenance: {e}"),
        Err(e) => tracing::error!("metric store maintenance task: {e}"),
    }
}

/// Feeds the metric store from the WAL: EMF datapoints of every event of every durable batch.
pub struct MetricsObserver {
    pub store: Arc<MetricStore>,
    /// Replicas: what the leader published (`IngestObserver::shared_bound`).
    pub shared_bound: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl IngestObserver for MetricsObserver {
    fn name(&self) -> &str {
        "metrics"
    }

    fn persisted_seq(&self) -> u64 {
        self.store.persisted_seq().unwrap_or(0)
    }

    fn shared_bound(&self) -> Option<u64> {
        self.shared_bound
            .as_ref()
            .map(|b| b.load(std::sync::atomic::Ordering::Acquire))
    }

    fn on_batch(&self, batch: &DurableBatch) {
        let out = self.store.ingest_events(batch.seq, &batch.record.events);
        if out.rejected > 0 {
            tracing::debug!(
                seq = batch.seq,
                rejected = out.rejected,
                "datapoints refused by the cardinality guard"
            );
        }
    }

    fn on_samples(&self, batch: &DurableSamples) {
        // The record was written by this server's receivers: garbage means a corrupted WAL
        // record that still passed its checksum, and only its samples are lost.
        match kinsight_metrics::samples::decode(&batch.record.payload) {
            Ok(series) => {
                let out = self.store.ingest_samples(batch.seq, &series);
                if out.rejected > 0 {
                    tracing::debug!(
                        seq = batch.seq,
                        rejected = out.rejected,
                        "samples refused by the cardinality guard"
                    );
                }
            }
            Err(e) => tracing::error!(seq = batch.seq, "samples record unreadable: {e}"),
        }
    }
}

/// Flushes, compacts and applies retention every `interval` (the WAL keeps batches until the
/// store has flushed them, so this also bounds the WAL).
pub fn spawn_maintenance(
    store: Arc<MetricStore>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    spawn_maintenance_publishing(store, interval, None)
}

/// Maintenance; on replicas, while this one leads (`logs` holds the maintenance lease), also
/// the publication of the store's committed state after it.
fn spawn_maintenance_publishing(
    store: Arc<MetricStore>,
    interval: Duration,
    publish: Option<(
        Arc<crate::replicas::MetricsPublisher>,
        kinsight_store::Store,
    )>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            maintain_once(&store).await;
            if let Some((publisher, logs)) = &publish
                && logs.maintenance_epoch().is_some()
                && let Err(e) = publisher.publish(&store).await
            {
                tracing::warn!(error = %e, "publishing the metric store for replicas failed");
            }
        }
    })
}

pub(crate) fn metrics_of(state: &AppState) -> ApiResult<Arc<MetricStore>> {
    state.metrics.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the metric store is not enabled on this server",
        )
    })
}

fn metrics_error(e: MetricsError) -> ApiError {
    match e {
        MetricsError::InvalidQuery(m) => ApiError::bad_param(m),
        other => ApiError::new(ErrorCode::InternalError, other.to_string()),
    }
}

async fn list_metrics(
    _: Require<CanRead>,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ListMetricsRequest>,
) -> ApiResult<Json<ListMetricsResponse>> {
    let store = metrics_of(&state)?;
    let limit = req.limit().map_err(ApiError::bad_param)?;
    let mut found = store.list_metrics(&req.selector(), limit + 1);
    let truncated = found.len() > limit;
    found.truncate(limit);
    Ok(Json(ListMetricsResponse {
        metrics: found.into_iter().map(Into::into).collect(),
        truncated,
    }))
}

async fn query_metrics(
    _: Require<CanRead>,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<MetricQueryRequest>,
) -> ApiResult<Json<MetricQueryResponse>> {
    let store = metrics_of(&state)?;
    let q = req.to_query().map_err(ApiError::bad_param)?;
    // Reads segment files: off the async workers.
    let res = tokio::task::spawn_blocking(move || store.query(&q))
        .await
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?
        .map_err(metrics_error)?;
    Ok(Json(res.into()))
}

async fn cardinality(
    _: Require<CanRead>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<CardinalityStats>>> {
    Ok(Json(metrics_of(&state)?.cardinality()))
}
