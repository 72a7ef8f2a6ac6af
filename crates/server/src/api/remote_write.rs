//! Prometheus remote write 1.0 in (issue 17, docs/api.md "Remote write"): `POST /api/v1/write`
//! with a snappy-compressed `WriteRequest` protobuf — what Prometheus, Grafana Alloy, vmagent
//! and OpenTelemetry collectors send. Samples are made durable in the WAL (or the replicas'
//! shared log) before the answer, then reach the metric store like EMF datapoints.
//!
//! Answers: 204 when every sample was kept; 400 with a message when some were refused (bad
//! series, out-of-order or conflicting samples, native histograms) — the rest of the request
//! is kept, and remote-write clients do not retry a 4xx; 400 for a body that is not a
//! snappy-compressed WriteRequest; 5xx when the samples could not be made durable (the client
//! retries). [`store_samples`] is shared with OTLP metrics.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kinsight_metrics::MetricStore;
use kinsight_metrics::labels::PROMETHEUS_NAMESPACE;
use kinsight_metrics::remote_write::{self, Converted, OrderGate};
use kinsight_metrics::samples::{self, SampleSeries};

use crate::auth::{CanIngest, Require};
use crate::body::DecodedBody;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/write", post(write))
}

/// Series whose newest sample the order gate remembers ([`OrderGate`]).
pub const GATE_SERIES: usize = 200_000;

/// The server's order gate, shared by remote write and OTLP metrics.
pub fn new_gate() -> Arc<Mutex<OrderGate>> {
    Arc::new(Mutex::new(OrderGate::new(GATE_SERIES)))
}

fn metric_store(state: &AppState) -> ApiResult<Arc<MetricStore>> {
    state.metrics.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the metric store is not enabled on this server",
        )
    })
}

async fn write(
    _: Require<CanIngest>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: DecodedBody,
) -> ApiResult<Response> {
    let store = metric_store(&state)?;
    // `Content-Encoding: snappy` was undone with the body's other encodings; Prometheus
    // reads a body without the header as snappy too.
    let snappy_done = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("snappy"));
    let max = state.limits.max_decoded_bytes;
    // The decoded message and its conversion take a few times the protobuf's size.
    let decoded_len = if snappy_done {
        body.bytes.len()
    } else {
        snap::raw::decompress_len(&body.bytes).unwrap_or(0).min(max)
    };
    let _reserved = state
        .budgets
        .requests
        .try_reserve(decoded_len.saturating_mul(DECODE_FACTOR))
        .ok_or_else(crate::body::busy)?;
    let bytes = body.bytes.clone();
    let converted = tokio::task::spawn_blocking(move || {
        let req = if snappy_done {
            prost::Message::decode(bytes.as_ref())
                .map_err(|e| remote_write::RemoteWriteError::Protobuf(e.to_string()))
        } else {
            remote_write::decode(&bytes, max)
        };
        req.map(remote_write::convert)
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?
    .map_err(|e| {
        let code = match e {
            remote_write::RemoteWriteError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::InvalidParameter,
        };
        ApiError::new(code, e.to_string())
    })?;
    drop(body);
    let Converted {
        series,
        refused,
        reasons,
    } = converted;
    let mut outcome = store_samples(&state, &store, series, Vec::new()).await?;
    outcome.refused += refused;
    outcome.reasons.splice(0..0, reasons);
    if outcome.refused == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(ApiError::bad_param(super::otlp::truncate(
        outcome.message(),
        super::otlp::MAX_ERROR_MESSAGE_BYTES,
    )))
}

/// Memory a decoded WriteRequest and its conversion take per byte of protobuf, reserved in the
/// request budget while they exist (prost's structures are larger than the wire form).
const DECODE_FACTOR: usize = 4;

/// What [`store_samples`] kept and refused.
#[derive(Debug, Default)]
pub struct Stored {
    pub kept: u64,
    pub refused: u64,
    pub reasons: Vec<String>,
}

impl Stored {
    pub fn message(&self) -> String {
        format!(
            "{} samples refused ({}); the other {} were stored",
            self.refused,
            self.reasons.join("; "),
            self.kept
        )
    }
}

/// How far ahead of the server's clock a sample may be (as the log store takes events).
pub const MAX_AHEAD_MS: i64 = 2 * 3_600_000;

/// Checks and stores samples: drops those outside the raw tier's time range (older than its
/// retention, or more than [`MAX_AHEAD_MS`] ahead) and those of new series past the metric
/// store's cardinality limits, applies the order rule to `absolute` series and turns `delta`
/// series into cumulative ones ([`OrderGate`]), then makes what is left durable in one WAL
/// record. Runs to its end in a task of its own, so that a client going away cannot leave the
/// gate ahead of what was stored; returns once the record is durable.
pub async fn store_samples(
    state: &AppState,
    store: &Arc<MetricStore>,
    absolute: Vec<SampleSeries>,
    delta: Vec<SampleSeries>,
) -> ApiResult<Stored> {
    let state = state.clone();
    let store = store.clone();
    tokio::spawn(async move { store_samples_task(state, store, absolute, delta).await })
        .await
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?
}

async fn store_samples_task(
    state: AppState,
    store: Arc<MetricStore>,
    mut absolute: Vec<SampleSeries>,
    mut delta: Vec<SampleSeries>,
) -> ApiResult<Stored> {
    let mut out = Stored::default();
    let gate = state.sample_gate.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let (min_ms, max_ms) = (now - store.raw_retention_ms(), now + MAX_AHEAD_MS);
    // The gate may read the store's segments for series it does not remember.
    let checked = store.clone();
    let (series, counts) = tokio::task::spawn_blocking(move || {
        let out_of_bounds = OrderGate::bound(&mut absolute, min_ms, max_ms)
            + OrderGate::bound(&mut delta, min_ms, max_ms);
        let mut over_limit = 0u64;
        for list in [&mut absolute, &mut delta] {
            list.retain(|s| {
                let ok = checked.admits_series(PROMETHEUS_NAMESPACE, &s.name, &s.labels);
                if !ok {
                    over_limit += s.samples.len() as u64;
                }
                ok
            });
        }
        let mut gate = gate.lock().unwrap_or_else(|p| p.into_inner());
        let newest = |name: &str, labels: &std::collections::BTreeMap<String, String>| {
            checked
                .newest_raw_sample(PROMETHEUS_NAMESPACE, name, labels)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading a series' newest sample failed");
                    None
                })
        };
        let mut r = gate.admit(&mut absolute, newest);
        let d = gate.admit_delta(&mut delta, newest);
        r.out_of_order += d.out_of_order;
        r.duplicate_timestamp += d.duplicate_timestamp;
        absolute.extend(delta);
        (absolute, (out_of_bounds, over_limit, r))
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    let (out_of_bounds, over_limit, refusals) = counts;
    for (n, reason) in [
        (
            out_of_bounds,
            "out of bounds: older than the raw samples' retention or more than 2 h ahead",
        ),
        (
            over_limit,
            "of new series past the metric store's series limits (GET /v1/metrics/cardinality)",
        ),
        (
            refusals.out_of_order,
            "out of order: older than the newest sample of their series",
        ),
        (
            refusals.duplicate_timestamp,
            "duplicate sample for timestamp: a different value at the newest sample's time",
        ),
    ] {
        if n > 0 {
            out.refused += n;
            out.reasons.push(format!("{n} {reason}"));
        }
    }
    out.kept = series.iter().map(|s| s.samples.len() as u64).sum();
    if out.kept > 0 {
        let payload = samples::encode(&series);
        match state.store.append_samples(payload).await {
            Ok(_) => {}
            // In the replicas' shared log, applied later: what the gate remembers is true.
            Err(e @ kinsight_store::StoreError::AppendedNotApplied(_)) => return Err(e.into()),
            Err(e) => {
                // Nothing was stored: a retry must be compared with the store, not with
                // samples that never were. (The gate's lock may be held by a request reading
                // the store: not on an async worker.)
                let gate = state.sample_gate.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    gate.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .forget(&series)
                })
                .await;
                return Err(e.into());
            }
        }
    }
    Ok(out)
}
