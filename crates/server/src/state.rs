//! What every handler can reach. Later API modules add their engines here (the query runtime,
//! the metric store, the alarm service) as new fields; handlers take `State<AppState>`.

use std::sync::Arc;

use kinsight_store::Store;

use crate::auth::Auth;
use crate::feed::FollowHub;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub auth: Arc<Auth>,
    /// Recent durable batches for follow/tail.
    pub feed: Arc<FollowHub>,
    pub limits: Limits,
    /// The metric store (issue #6, `api::metrics::MetricsEngine`); `None` = not enabled.
    pub metrics: Option<Arc<kinsight_metrics::MetricStore>>,
    /// The alarm service (issue #6); `None` = not enabled.
    pub alarms: Option<Arc<kinsight_alarms::AlarmService>>,
    /// The query service (issue #5) on its own runtime; `None` if it could not start.
    pub query: Option<kinsight_query::QueryService>,
    /// Access keys of the CloudWatch-compatible API (issue #8); none by default.
    pub aws_keys: Arc<crate::cwlogs::AccessKeys>,
    /// What request bodies and large answers in progress may hold.
    pub budgets: crate::budget::Budgets,
    /// Remote write's and OTLP metrics' per-series order rule (`api::remote_write`).
    pub sample_gate: Arc<std::sync::Mutex<kinsight_metrics::remote_write::OrderGate>>,
}

/// Request size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body on the wire (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression. A full batch (1 MiB of messages, 10,000 events)
    /// needs room for JSON escaping and the per-event group and stream names.
    pub max_decoded_bytes: usize,
    /// Largest CloudWatch Logs request, on the wire and decoded. PutLogEvents carries at most
    /// 1 MiB of messages (plus 26 bytes an event) and every other action far less; this leaves
    /// room for JSON escaping and members.
    pub max_cloudwatch_body_bytes: usize,
    /// Bounds of the follow ring (`GET /v1/follow`, `GET /v1/tail`).
    pub follow: crate::feed::FollowLimits,
    /// Most bytes of events in one page of `GET /v1/events`, `/v1/follow` and a tail's
    /// backlog (each event's message plus 26 bytes); a page always holds one event.
    pub max_page_bytes: usize,
    /// What request bodies (as sent and decoded) and query-result answers in progress may
    /// hold together ([`crate::budget`]).
    pub request_memory_bytes: usize,
    /// Most bytes of result rows in one answer of `GET /v1/queries/{id}`.
    pub max_result_page_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_decoded_bytes: 32 * 1024 * 1024,
            max_cloudwatch_body_bytes: 4 * 1024 * 1024,
            follow: crate::feed::FollowLimits::default(),
            max_page_bytes: kinsight_store::MAX_PAGE_BYTES,
            request_memory_bytes: crate::budget::default_request_bytes(),
            max_result_page_bytes: 4 << 20,
        }
    }
}

impl AppState {
    pub fn new(store: Store, auth: Auth) -> Self {
        Self::with_limits(store, auth, Limits::default())
    }

    pub fn with_limits(store: Store, auth: Auth, limits: Limits) -> Self {
        Self::with_config(store, auth, limits, kinsight_query::QueryConfig::default())
    }

    pub fn with_config(
        store: Store,
        auth: Auth,
        limits: Limits,
        query: kinsight_query::QueryConfig,
    ) -> Self {
        let feed = FollowHub::start(&store, limits.follow);
        let query = kinsight_query::QueryService::new(store.clone(), query)
            .map_err(|e| tracing::error!("query engine not started: {e}"))
            .ok();
        AppState {
            store,
            auth: Arc::new(auth),
            feed,
            limits,
            metrics: None,
            alarms: None,
            query,
            aws_keys: Arc::new(crate::cwlogs::AccessKeys::none()),
            budgets: crate::budget::Budgets::new(limits.request_memory_bytes),
            sample_gate: crate::api::remote_write::new_gate(),
        }
    }
}
