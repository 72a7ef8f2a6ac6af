//! OTLP/HTTP logs and metrics (issue 17, docs/api.md "OpenTelemetry (OTLP/HTTP)"): `POST /v1/logs` with an
//! `ExportLogsServiceRequest` as protobuf (`application/x-protobuf`) or OTLP/JSON
//! (`application/json`), `Content-Encoding: gzip | zstd` optional — what OpenTelemetry SDKs and
//! collectors send to CloudWatch's own OTLP endpoint. Records go to the log group and stream the
//! `x-aws-log-group` / `x-aws-log-stream` headers name (defaults: [`DEFAULT_GROUP`], and the
//! resource's `service.name`, else [`DEFAULT_STREAM`]); each becomes one JSON event holding its
//! body, severity, attributes, resource attributes, scope and trace/span ids, so Logs Insights
//! queries fields like `attributes.user.id`. The answer is an `ExportLogsServiceResponse` in the
//! request's encoding, with `partialSuccess` when some records were refused (too old, …).
//!
//! `POST /v1/metrics` takes an `ExportMetricsServiceRequest` the same ways: its points become
//! Prometheus series (`kinsight_metrics::otlp`, Prometheus 3's naming) stored through remote
//! write's samples path (`super::remote_write::store_samples`); the answer's `partialSuccess`
//! counts the points refused and says why.
//!
//! `/v1/traces` is answered with a clear 404: kinsight stores no traces.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use kinsight_model::limits::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES,
};
use kinsight_store::{IngestRequest, LogEvent};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::{Map, Value, json};

use crate::auth::{CanIngest, Require};
use crate::body::DecodedBody;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Log group of records sent without `x-aws-log-group`.
pub const DEFAULT_GROUP: &str = "/kinsight/otlp";
/// Log stream of records sent without `x-aws-log-stream` whose resource has no `service.name`.
pub const DEFAULT_STREAM: &str = "otlp";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/logs", post(export_logs))
        .route("/v1/metrics", post(export_metrics))
        .route("/v1/traces", post(traces))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn encoding(content_type: Option<&str>) -> ApiResult<Encoding> {
    match content_type {
        Some("application/x-protobuf") | Some("application/protobuf") => Ok(Encoding::Protobuf),
        Some("application/json") => Ok(Encoding::Json),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {}: OTLP/HTTP takes application/x-protobuf or application/json",
                other.map_or_else(|| "missing".to_string(), |c| format!("{c:?}"))
            ),
        )),
    }
}

fn header(headers: &HeaderMap, name: &str) -> ApiResult<Option<String>> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_string())
                .map_err(|_| ApiError::bad_param(format!("{name} must be ASCII")))
        })
        .transpose()
        .map(|v| v.filter(|s| !s.is_empty()))
}

async fn export_logs(
    _: Require<CanIngest>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: DecodedBody,
) -> ApiResult<Response> {
    let enc = encoding(body.content_type.as_deref())?;
    let request = decode_logs(body.content_type.as_deref(), &body.bytes)?;
    let group = header(&headers, "x-aws-log-group")?;
    let stream = header(&headers, "x-aws-log-stream")?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let prepared = to_events(&request, group.as_deref(), stream.as_deref(), now_ms)?;
    // The store takes batches of at most 10,000 events and 1 MiB: a collector's batch (8,192
    // records, each carrying its resource) is stored in as many ingests as it needs.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejected = prepared.too_large as u64;
    if prepared.too_large > 0 {
        counts.insert("tooLargeLogEventCount".into(), prepared.too_large as u64);
    }
    for chunk in batches(prepared.events) {
        let outcome = state
            .store
            .ingest(IngestRequest {
                batch_id: None,
                events: chunk,
                auto_create_groups: true,
            })
            .await?;
        rejected += outcome.rejected_count as u64;
        for r in &outcome.rejected {
            *counts.entry(reason_key(r.reason)).or_default() += 1;
        }
    }
    let partial = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected as i64,
        error_message: serde_json::to_string(&counts).unwrap_or_default(),
    });
    let json = partial.as_ref().map(
        |p| json!({"rejectedLogRecords": p.rejected_log_records, "errorMessage": p.error_message}),
    );
    let response = ExportLogsServiceResponse {
        partial_success: partial,
    };
    Ok(answer(enc, response.encode_to_vec(), json))
}

/// Most samples one metrics request may become (a histogram point is one sample per bucket
/// plus `_sum` and `_count`): beyond it the request is refused (413) before it is translated.
/// SDKs and collectors export far fewer per request.
pub const MAX_METRIC_SAMPLES: u64 = 200_000;
/// Most memory the translated series of one metrics request may take by
/// [`check_metrics_expansion`]'s estimate (labels repeat in every series): beyond it, 413.
pub const MAX_METRIC_EXPANDED_BYTES: u64 = 128 << 20;

async fn export_metrics(
    _: Require<CanIngest>,
    State(state): State<AppState>,
    body: DecodedBody,
) -> ApiResult<Response> {
    let enc = encoding(body.content_type.as_deref())?;
    let store = state.metrics.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the metric store is not enabled on this server",
        )
    })?;
    let content_type = body.content_type.clone();
    // Decoding (JSON: a whole tree first) and the estimate are CPU work: off the async workers.
    // The decoded request is about as large as the body, whose reservation it keeps.
    let (request, _body_reservation, expanded) = tokio::task::spawn_blocking(move || {
        let request = decode_metrics(content_type.as_deref(), &body.bytes)?;
        let expanded = check_metrics_expansion(&request)?;
        Ok::<_, ApiError>((request, body.reserved, expanded))
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))??;
    // What translation builds is held in the request budget until the samples are stored.
    let _reserved = state
        .budgets
        .requests
        .try_reserve(expanded as usize)
        .ok_or_else(crate::body::busy)?;
    let translated =
        tokio::task::spawn_blocking(move || kinsight_metrics::otlp::translate(&request))
            .await
            .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    let stored =
        super::remote_write::store_samples(&state, &store, translated.absolute, translated.delta)
            .await?;
    let rejected = translated.rejected_points + stored.refused;
    let mut reasons = translated.errors;
    reasons.extend(stored.reasons);
    let partial = (rejected > 0 || !reasons.is_empty()).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: rejected as i64,
        error_message: truncate(reasons.join("; "), MAX_ERROR_MESSAGE_BYTES),
    });
    let json = partial.as_ref().map(
        |p| json!({"rejectedDataPoints": p.rejected_data_points, "errorMessage": p.error_message}),
    );
    let response = ExportMetricsServiceResponse {
        partial_success: partial,
    };
    Ok(answer(enc, response.encode_to_vec(), json))
}

/// An `ExportMetricsServiceRequest` from a (decompressed) body of the given media type.
pub fn decode_metrics(
    content_type: Option<&str>,
    bytes: &[u8],
) -> ApiResult<ExportMetricsServiceRequest> {
    match encoding(content_type)? {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(bytes).map_err(|e| {
            ApiError::bad_param(format!(
                "the body is not an OTLP ExportMetricsServiceRequest: {e}"
            ))
        }),
        Encoding::Json => {
            let bad = |e: serde_json::Error| {
                ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("the body is not OTLP/JSON metrics: {e}"),
                )
            };
            let mut v: Value = serde_json::from_slice(bytes).map_err(bad)?;
            int64_strings_to_numbers(&mut v);
            serde_json::from_value(v).map_err(bad)
        }
    }
}

/// OTLP/JSON writes 64-bit integers as strings (`"asInt": "12"`, `"count": "3"`,
/// `"bucketCounts": ["1", "2"]`), and receivers take numbers too. The OTLP types' serde
/// mapping is stricter and uneven: it reads counts and `asInt` only as numbers (a string there
/// silently loses the point's value), the timestamps of gauge, sum and histogram points only as
/// strings, and those of exponential histogram, summary and exemplar points only as numbers.
/// Each member is made what the mapping reads first. serde_json's own recursion limit bounds
/// the walk.
fn int64_strings_to_numbers(v: &mut Value) {
    normalize_otlp_json(v, Times::Keep)
}

#[derive(Clone, Copy)]
enum Times {
    Keep,
    Strings,
    Numbers,
}

fn normalize_otlp_json(v: &mut Value, times: Times) {
    const COUNTS: [&str; 4] = ["asInt", "count", "bucketCounts", "zeroCount"];
    const TIMES: [&str; 2] = ["timeUnixNano", "startTimeUnixNano"];
    fn number(v: &mut Value) {
        let n = match v.as_str() {
            Some(s) => s
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| s.parse::<u64>().map(Value::from)),
            None => return,
        };
        if let Ok(n) = n {
            *v = n;
        }
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                match k.as_str() {
                    "gauge" | "sum" | "histogram" => normalize_otlp_json(child, Times::Strings),
                    "exponentialHistogram" | "summary" | "exemplars" => {
                        normalize_otlp_json(child, Times::Numbers)
                    }
                    k if TIMES.contains(&k) => match (times, &*child) {
                        (Times::Strings, Value::Number(n)) => *child = Value::String(n.to_string()),
                        (Times::Numbers, Value::String(_)) => number(child),
                        _ => {}
                    },
                    k if COUNTS.contains(&k) => match child {
                        Value::Array(items) => items.iter_mut().for_each(number),
                        other => number(other),
                    },
                    _ => normalize_otlp_json(child, times),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| normalize_otlp_json(item, times)),
        _ => {}
    }
}

/// At most this many bytes of refusal reasons in `partialSuccess.errorMessage` (reasons quote
/// names the client chose).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// What one label costs in a translated series beyond its text (map node, two strings).
const LABEL_OVERHEAD: u64 = 96;

/// Estimates, before anything is built, the memory the request's translation takes — every
/// sample's series carries the resource's, the scope's and the point's labels, rendered as text
/// (arrays and maps as JSON, up to 6 bytes per encoded byte) — and refuses (413) a request past
/// [`MAX_METRIC_SAMPLES`] samples or [`MAX_METRIC_EXPANDED_BYTES`]. Returns the estimate.
pub fn check_metrics_expansion(request: &ExportMetricsServiceRequest) -> ApiResult<u64> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    fn value_bytes(v: Option<&AnyValue>) -> u64 {
        match v.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.len() as u64,
            Some(any_value::Value::BytesValue(b)) => b.len() as u64 * 4 / 3 + 4,
            Some(v @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
                AnyValue {
                    value: Some(v.clone()),
                }
                .encoded_len() as u64
                    * 6
                    + 2
            }
            _ => 24,
        }
    }
    fn labels_bytes(attrs: &[KeyValue]) -> u64 {
        attrs
            .iter()
            .map(|kv| LABEL_OVERHEAD + kv.key.len() as u64 + value_bytes(kv.value.as_ref()))
            .sum()
    }
    let (mut samples, mut bytes) = (0u64, 0u64);
    for rm in &request.resource_metrics {
        // job and instance too.
        let resource = rm
            .resource
            .as_ref()
            .map_or(0, |r| labels_bytes(&r.attributes))
            + 2 * LABEL_OVERHEAD
            + rm.schema_url.len() as u64;
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref().map_or(0, |s| {
                (s.name.len() + s.version.len()) as u64 + labels_bytes(&s.attributes)
            }) + sm.schema_url.len() as u64
                + 3 * LABEL_OVERHEAD;
            for m in &sm.metrics {
                let points: Vec<(u64, u64)> = match &m.data {
                    Some(Data::Gauge(g)) => g
                        .data_points
                        .iter()
                        .map(|p| (1, labels_bytes(&p.attributes)))
                        .collect(),
                    Some(Data::Sum(g)) => g
                        .data_points
                        .iter()
                        .map(|p| (1, labels_bytes(&p.attributes)))
                        .collect(),
                    Some(Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .map(|p| {
                            (
                                p.explicit_bounds.len().max(p.bucket_counts.len()) as u64 + 3,
                                labels_bytes(&p.attributes),
                            )
                        })
                        .collect(),
                    Some(Data::Summary(s)) => s
                        .data_points
                        .iter()
                        .map(|p| {
                            (
                                p.quantile_values.len() as u64 + 2,
                                labels_bytes(&p.attributes),
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                // Per series: its name (with suffixes), an `le`/`quantile` label, the sample.
                let per_series = resource + scope + 2 * m.name.len() as u64 + LABEL_OVERHEAD + 128;
                for (n, attrs) in points {
                    samples = samples.saturating_add(n);
                    bytes = bytes.saturating_add(n.saturating_mul(per_series + attrs));
                }
            }
        }
    }
    if samples > MAX_METRIC_SAMPLES || bytes > MAX_METRIC_EXPANDED_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request's data points become {samples} samples taking about {bytes} bytes with their labels; at most {MAX_METRIC_SAMPLES} samples and {MAX_METRIC_EXPANDED_BYTES} bytes (send smaller batches)"
            ),
        ));
    }
    Ok(bytes)
}

/// Splits events into the store's batches: at most [`MAX_BATCH_EVENTS`] events and
/// [`MAX_BATCH_BYTES`] (messages plus 26 bytes each), order kept.
fn batches(events: Vec<LogEvent>) -> Vec<Vec<LogEvent>> {
    let mut out: Vec<Vec<LogEvent>> = Vec::new();
    let mut bytes = 0;
    for e in events {
        let size = e.message.len() + EVENT_OVERHEAD_BYTES;
        match out.last_mut() {
            Some(b) if b.len() < MAX_BATCH_EVENTS && bytes + size <= MAX_BATCH_BYTES => {
                bytes += size;
                b.push(e);
            }
            _ => {
                bytes = size;
                out.push(vec![e]);
            }
        }
    }
    out
}

/// CloudWatch's partial-success counters: `tooOldLogEventCount`, ….
fn reason_key(reason: kinsight_store::RejectReason) -> String {
    let reason = serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "rejected".into());
    format!("{reason}LogEventCount")
}

/// An OTLP export answer in the request's encoding: the response message's protobuf bytes, or
/// OTLP/JSON — `{}`, or `{"partialSuccess": …}` when `partial` is given.
fn answer(enc: Encoding, protobuf: Vec<u8>, partial: Option<Value>) -> Response {
    match enc {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            protobuf,
        )
            .into_response(),
        Encoding::Json => {
            let body = match partial {
                Some(p) => json!({ "partialSuccess": p }),
                None => json!({}),
            };
            (StatusCode::OK, Json(body)).into_response()
        }
    }
}

/// An `ExportLogsServiceRequest` from a (decompressed) body of the given media type.
pub fn decode_logs(
    content_type: Option<&str>,
    bytes: &[u8],
) -> ApiResult<ExportLogsServiceRequest> {
    match encoding(content_type)? {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(bytes).map_err(|e| {
            ApiError::bad_param(format!(
                "the body is not an OTLP ExportLogsServiceRequest: {e}"
            ))
        }),
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("the body is not OTLP/JSON logs: {e}"),
            )
        }),
    }
}

async fn traces() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "kinsight stores logs and metrics, not traces: send OTLP traces to a tracing backend",
    )
}

/// Most message bytes one request may expand to (resource and scope attributes are repeated in
/// every record's event): beyond it the request is refused before more is built.
pub const MAX_REQUEST_EXPANDED_BYTES: usize = 64 << 20;

/// A request's records as log events.
#[derive(Debug, Default)]
pub struct Prepared {
    /// In the request's order.
    pub events: Vec<LogEvent>,
    /// Records whose event would exceed the event size limit (not built; refused like the
    /// store refuses too large events).
    pub too_large: usize,
}

/// The request's records as log events, in order. More than [`MAX_BATCH_EVENTS`] records, or
/// more than [`MAX_REQUEST_EXPANDED_BYTES`] of events, are refused as a whole (413).
pub fn to_events(
    request: &ExportLogsServiceRequest,
    group: Option<&str>,
    stream: Option<&str>,
    now_ms: i64,
) -> ApiResult<Prepared> {
    let total: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if total > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "{total} log records in one request; at most {MAX_BATCH_EVENTS} (lower the exporter's batch size)"
            ),
        ));
    }
    let group = group.unwrap_or(DEFAULT_GROUP);
    let mut out = Prepared {
        events: Vec::with_capacity(total),
        too_large: 0,
    };
    let mut expanded = 0usize;
    for rl in &request.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let stream = stream
            .map(str::to_string)
            .or_else(|| {
                resource
                    .get("service.name")
                    .and_then(Value::as_str)
                    .and_then(stream_name)
            })
            .unwrap_or_else(|| DEFAULT_STREAM.to_string());
        // Serialised once, spliced into every record's event.
        let resource_json =
            (!resource.is_empty()).then(|| json!({"attributes": resource}).to_string());
        for sl in &rl.scope_logs {
            let scope_json = sl.scope.as_ref().map(|s| {
                let mut m = Map::new();
                m.insert("name".into(), Value::String(s.name.clone()));
                if !s.version.is_empty() {
                    m.insert("version".into(), Value::String(s.version.clone()));
                }
                if !s.attributes.is_empty() {
                    m.insert(
                        "attributes".into(),
                        Value::Object(attributes(&s.attributes)),
                    );
                }
                Value::Object(m).to_string()
            });
            let shared = resource_json.as_ref().map_or(0, |r| r.len() + 12)
                + scope_json.as_ref().map_or(0, |s| s.len() + 9);
            for r in &sl.log_records {
                if shared > MAX_MESSAGE_BYTES {
                    out.too_large += 1;
                    continue;
                }
                let rest = Value::Object(record_fields(r)).to_string();
                let mut message = String::with_capacity(shared + rest.len() + 2);
                message.push('{');
                if let Some(r) = &resource_json {
                    message.push_str("\"resource\":");
                    message.push_str(r);
                    message.push(',');
                }
                if let Some(s) = &scope_json {
                    message.push_str("\"scope\":");
                    message.push_str(s);
                    message.push(',');
                }
                // `rest` is an object: `{}` or `{…}`.
                if rest.len() > 2 {
                    message.push_str(&rest[1..]);
                } else {
                    if message.ends_with(',') {
                        message.pop();
                    }
                    message.push('}');
                }
                if message.len() > MAX_MESSAGE_BYTES {
                    out.too_large += 1;
                    continue;
                }
                expanded += message.len();
                if expanded > MAX_REQUEST_EXPANDED_BYTES {
                    return Err(ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!(
                            "the request's records expand to more than {MAX_REQUEST_EXPANDED_BYTES} bytes of events (resource and scope attributes repeat in every record); send smaller batches"
                        ),
                    ));
                }
                let nanos = if r.time_unix_nano != 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                let timestamp = if nanos == 0 {
                    now_ms
                } else {
                    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
                };
                out.events
                    .push(LogEvent::new(group, stream.clone(), timestamp, message));
            }
        }
    }
    Ok(out)
}

/// A default stream name from `service.name`: characters streams may not hold (`:` and `*`,
/// as in the SDKs' `unknown_service:<process>`) become `_`, at most 512 bytes; `None` when
/// nothing usable is left.
fn stream_name(service: &str) -> Option<String> {
    let mut name: String = service
        .chars()
        .map(|c| if c == ':' || c == '*' { '_' } else { c })
        .collect();
    while name.len() > 512 {
        name.pop();
    }
    (!name.trim().is_empty() && kinsight_model::names::validate_log_stream_name(&name).is_ok())
        .then_some(name)
}

/// A record's own fields (everything but resource and scope), empty ones left out.
fn record_fields(r: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> Map<String, Value> {
    let mut m = Map::new();
    if r.time_unix_nano != 0 {
        m.insert("timeUnixNano".into(), json!(r.time_unix_nano));
    }
    if r.observed_time_unix_nano != 0 {
        m.insert(
            "observedTimeUnixNano".into(),
            json!(r.observed_time_unix_nano),
        );
    }
    if r.severity_number != 0 {
        m.insert("severityNumber".into(), json!(r.severity_number));
    }
    if !r.severity_text.is_empty() {
        m.insert("severityText".into(), json!(r.severity_text));
    }
    if !r.event_name.is_empty() {
        m.insert("eventName".into(), json!(r.event_name));
    }
    if let Some(b) = &r.body {
        m.insert("body".into(), any_value(b));
    }
    if !r.attributes.is_empty() {
        m.insert(
            "attributes".into(),
            Value::Object(attributes(&r.attributes)),
        );
    }
    if r.dropped_attributes_count != 0 {
        m.insert(
            "droppedAttributesCount".into(),
            json!(r.dropped_attributes_count),
        );
    }
    if r.flags != 0 {
        m.insert("flags".into(), json!(r.flags));
    }
    if r.trace_id.iter().any(|b| *b != 0) {
        m.insert("traceId".into(), json!(hex::encode(&r.trace_id)));
    }
    if r.span_id.iter().any(|b| *b != 0) {
        m.insert("spanId".into(), json!(hex::encode(&r.span_id)));
    }
    m
}

/// Attributes as a JSON object (a repeated key keeps its last value, as OTLP says keys are
/// unique).
fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, any_value),
            )
        })
        .collect()
}

/// An OTLP value as plain JSON: strings, booleans, integers and finite doubles as themselves,
/// non-finite doubles as strings (`"NaN"`, `"Infinity"`), bytes as base64, arrays and key-value
/// lists as arrays and objects.
fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| {
                Value::String(if d.is_nan() {
                    "NaN".into()
                } else if *d > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                })
            }),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_value).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(attributes(&l.values)),
        Some(any_value::Value::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}
