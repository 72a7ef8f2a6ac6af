//! The Prometheus HTTP API (issue 17, docs/api.md "Prometheus HTTP API") over the metric
//! store, so that Grafana's Prometheus data source pointed at the server works.
//!
//! Routes (GET, and POST with a form-encoded body as Grafana sends): `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`,
//! `/api/v1/metadata`, `/api/v1/status/buildinfo`; anything else under `/api/v1` is 404.
//! They sit behind the native bearer authentication (read scope). Answers use Prometheus's
//! envelope and status codes; the PromQL engine is `kinsight-promql`, fed by [`StoreSource`]
//! (the label model is `kinsight_metrics::labels`) and run off the async workers.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use kinsight_metrics::labels::{PROMETHEUS_NAMESPACE, is_valid_label_name, series_labels};
use kinsight_metrics::{MetricStore, SeriesInfo};
use kinsight_promql::{Labels, Matcher, PromError, Series, Source, Value};

use crate::auth::{CanRead, Require};
use crate::body::DecodedBody;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/query", get_post(query))
        .route("/api/v1/query_range", get_post(query_range))
        .route("/api/v1/series", get_post(series))
        .route("/api/v1/labels", get_post(labels))
        .route("/api/v1/label/{name}/values", get_only(label_values))
        .route("/api/v1/metadata", get_only(metadata))
        .route("/api/v1/status/buildinfo", get_only(buildinfo))
        .route("/api/v1", any(not_found))
        .route("/api/v1/{*rest}", any(not_found))
}

fn get_post<H, T>(h: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState> + Clone,
    T: 'static,
{
    axum::routing::get(h.clone())
        .post(h)
        .fallback(method_not_allowed)
}

fn get_only<H, T>(h: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    get(h).fallback(method_not_allowed)
}

/// Most points per series of a range query (Prometheus's limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// Longest a query may run; a `timeout` parameter can only shorten it.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Most raw samples one query may load from the store (and the engine hold).
pub const MAX_SAMPLES: usize = 50_000_000;

/// Earliest and latest instants (Prometheus's `minTime`/`maxTime`, which clients send as
/// "no bound").
const MIN_TIME_MS: i64 = i64::MIN / 2;
const MAX_TIME_MS: i64 = i64::MAX / 2;
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

// ---------------------------------------------------------------------------------------
// The envelope

/// An error in Prometheus's envelope: `{"status":"error","errorType":…,"error":…}`.
#[derive(Debug)]
pub struct PromApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl PromApiError {
    fn bad_data(message: impl Into<String>) -> Self {
        PromApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }

    fn param(name: &str, message: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {message}"))
    }

    fn execution(message: impl Into<String>) -> Self {
        PromApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "execution",
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        PromApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        PromApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable",
            message: message.into(),
        }
    }
}

impl From<ApiError> for PromApiError {
    /// Errors of the shared extractors (body limits, encodings), in this envelope.
    fn from(e: ApiError) -> Self {
        let status = e.code.status();
        let kind = match status.as_u16() {
            503 => "unavailable",
            s if s >= 500 => "internal",
            404 => "not_found",
            _ => "bad_data",
        };
        PromApiError {
            status,
            kind,
            message: e.message,
        }
    }
}

impl IntoResponse for PromApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(kind = self.kind, message = %self.message, "Prometheus API request failed");
        }
        let body = serde_json::json!({
            "status": "error",
            "errorType": self.kind,
            "error": self.message,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

type PromResult = Result<Response, PromApiError>;

/// `{"status":"success","data":<data>[,"warnings":[…]]}` with `data` already JSON text.
fn success_raw(data: &str, warnings: &[String]) -> Response {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str(r#"{"status":"success","data":"#);
    out.push_str(data);
    if !warnings.is_empty() {
        out.push_str(r#","warnings":"#);
        out.push_str(&serde_json::to_string(warnings).unwrap_or_else(|_| "[]".into()));
    }
    out.push('}');
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json")],
        Body::from(out),
    )
        .into_response()
}

fn success(data: serde_json::Value, warnings: &[String]) -> Response {
    success_raw(&data.to_string(), warnings)
}

async fn not_found(req: Request) -> PromApiError {
    PromApiError {
        status: StatusCode::NOT_FOUND,
        kind: "not_found",
        message: format!("no endpoint {} {}", req.method(), req.uri().path()),
    }
}

async fn method_not_allowed(method: Method, req: Request) -> PromApiError {
    PromApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "bad_data",
        message: format!("{} does not take {method}", req.uri().path()),
    }
}

// ---------------------------------------------------------------------------------------
// Parameters

/// The request's parameters: the form-encoded body of a POST, then the query string (as
/// Go's `Request.Form`: body values first).
pub struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// `application/x-www-form-urlencoded` text (a query string or a POST body) as pairs, in
/// order: `&`-separated, `+` is a space, `%XX` a byte (an invalid escape is kept as written),
/// invalid UTF-8 replaced. Parsed directly, not through a URI, so a body of any length the
/// body limit allows is taken.
fn parse_form(text: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (
                        b.get(i + 1).and_then(|&c| hex(c)),
                        b.get(i + 2).and_then(|&c| hex(c)),
                    ) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.trim()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

impl FromRequest<AppState> for Params {
    type Rejection = PromApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let from_query = parse_form(req.uri().query().unwrap_or(""));
        if req.method() != Method::POST {
            return Ok(Params(from_query));
        }
        let body = DecodedBody::from_request(req, state).await?;
        let mut params = Vec::new();
        if !body.bytes.is_empty() {
            match body.content_type.as_deref() {
                Some("application/x-www-form-urlencoded") | None => {}
                Some(other) => {
                    return Err(PromApiError {
                        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        kind: "bad_data",
                        message: format!(
                            "Content-Type {other:?}: POST parameters must be application/x-www-form-urlencoded"
                        ),
                    });
                }
            }
            let text = std::str::from_utf8(&body.bytes)
                .map_err(|_| PromApiError::bad_data("the request body is not UTF-8"))?;
            params = parse_form(text);
        }
        params.extend(from_query);
        Ok(Params(params))
    }
}

/// A Prometheus timestamp: unix seconds (float, millisecond precision) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f.abs() >= (i64::MAX / 1000) as f64 {
            return Err(bad());
        }
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        return Ok(secs as i64 * 1000 + ms as i64);
    }
    match s {
        MIN_TIME_TEXT => return Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => return Ok(MAX_TIME_MS),
        _ => {}
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| bad())
}

/// A Prometheus duration in milliseconds: float seconds, or `1h30m`-style (`ms s m h d w y`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid duration");
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() >= i64::MAX as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms as i64);
    }
    if s.is_empty() {
        return Err(bad());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_unit = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // `ms` before `m`.
        let (i, unit) = if rest.starts_with("ms") {
            (6, "ms")
        } else {
            let u = UNITS
                .iter()
                .position(|(u, _)| *u != "ms" && rest.starts_with(u))
                .ok_or_else(bad)?;
            (u, UNITS[u].0)
        };
        // Units in decreasing order, each once (as Prometheus's model.ParseDuration).
        if last_unit.is_some_and(|l| i <= l) {
            return Err(bad());
        }
        last_unit = Some(i);
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(UNITS[i].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, PromApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(s) => parse_time(s).map_err(|e| PromApiError::param(name, e)),
    }
}

fn required_time(p: &Params, name: &str) -> Result<i64, PromApiError> {
    parse_time(p.get(name).unwrap_or("")).map_err(|e| PromApiError::param(name, e))
}

fn limit_param(p: &Params) -> Result<usize, PromApiError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n as usize),
            Ok(_) => Err(PromApiError::param("limit", "limit must be non-negative")),
            Err(_) => Err(PromApiError::param(
                "limit",
                format!("cannot parse {s:?} to a valid limit"),
            )),
        },
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn store_of(state: &AppState) -> Result<Arc<MetricStore>, PromApiError> {
    state
        .metrics
        .clone()
        .ok_or_else(|| PromApiError::unavailable("the metric store is not enabled on this server"))
}

// ---------------------------------------------------------------------------------------
// Selection: the engine's `Source`, and `match[]`

/// Whether `labels` (sorted) satisfy every matcher; an absent label is the empty value.
/// Matching is the engine's (`Matcher::matches`: fully anchored regular expressions,
/// compiled once per thread).
fn labels_match(labels: &[(String, String)], matchers: &[&Matcher]) -> bool {
    matchers.iter().all(|m| {
        let v = labels
            .binary_search_by(|(n, _)| n.as_str().cmp(&m.name))
            .map(|i| labels[i].1.as_str())
            .unwrap_or("");
        m.matches(v)
    })
}

/// A series with its labels.
type Labelled = (SeriesInfo, Vec<(String, String)>);

/// The series of the store whose labels satisfy all `matchers`, with their labels. Metric
/// name matchers are tried first, on the series' name, before its labels are built.
fn select_series(store: &MetricStore, matchers: &[Matcher]) -> Result<Vec<Labelled>, String> {
    let (by_name, rest): (Vec<&Matcher>, Vec<&Matcher>) =
        matchers.iter().partition(|m| m.name == "__name__");
    let infos = store.series_matching(|s| by_name.iter().all(|m| m.matches(&s.key.name)));
    Ok(infos
        .into_iter()
        .filter_map(|info| {
            let labels = series_labels(&info.key);
            labels_match(&labels, &rest).then_some((info, labels))
        })
        .collect())
}

/// The metric store as the PromQL engine's source of series: labels per
/// `kinsight_metrics::labels`, raw samples with their exact timestamps. Of several samples
/// with one timestamp (the values of one EMF datapoint) the last stored is kept. Stops with
/// an error once more than `max_samples` samples were loaded (noted in `exceeded`).
pub struct StoreSource {
    store: Arc<MetricStore>,
    max_samples: usize,
    loaded: AtomicUsize,
    exceeded: AtomicBool,
}

impl StoreSource {
    pub fn new(store: Arc<MetricStore>, max_samples: usize) -> Self {
        StoreSource {
            store,
            max_samples,
            loaded: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
        }
    }

    /// Whether a `select` failed for loading more than `max_samples`.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }
}

impl Source for StoreSource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, String> {
        let mut out = Vec::new();
        for (info, labels) in select_series(&self.store, matchers)? {
            let mut samples = self
                .store
                .raw_samples(info.id, start_ms, end_ms)
                .map_err(|e| e.to_string())?;
            // One sample per timestamp: the last stored.
            samples.reverse();
            samples.dedup_by_key(|s| s.0);
            samples.reverse();
            let loaded = self.loaded.fetch_add(samples.len(), Ordering::Relaxed) + samples.len();
            if loaded > self.max_samples {
                self.exceeded.store(true, Ordering::Relaxed);
                return Err(format!(
                    "query processing would load more than {} samples into memory",
                    self.max_samples
                ));
            }
            if samples.is_empty() {
                continue;
            }
            out.push(Series {
                labels: Labels(labels),
                samples,
            });
        }
        Ok(out)
    }
}

/// Limits of one instant query of a PromQL alarm (the evaluator runs them one after another,
/// N + 2 per alarm and evaluation).
const ALARM_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const ALARM_QUERY_MAX_SAMPLES: usize = 10_000_000;

/// What the alarms evaluate against: the metric store for metric alarms, and the PromQL
/// engine over it ([`StoreSource`]) for PromQL alarms. kinsight-alarms depends on neither
/// the server nor kinsight-promql: the server passes this to `AlarmService::spawn`.
pub struct AlarmSource(pub Arc<MetricStore>);

impl kinsight_alarms::MetricSource for AlarmSource {
    fn fetch(
        &self,
        key: &kinsight_metrics::SeriesKey,
        start_ms: i64,
        period_ms: i64,
        n: usize,
        keep_samples: bool,
    ) -> Result<Vec<kinsight_metrics::SlotSummary>, String> {
        kinsight_alarms::MetricSource::fetch(&*self.0, key, start_ms, period_ms, n, keep_samples)
    }

    fn matching(
        &self,
        selector: &kinsight_metrics::SeriesSelector,
    ) -> Vec<kinsight_metrics::SeriesKey> {
        kinsight_alarms::MetricSource::matching(&*self.0, selector)
    }

    fn promql_instant(
        &self,
        expr: &str,
        t_ms: i64,
    ) -> Result<Vec<kinsight_alarms::source::PromSample>, String> {
        let opts = kinsight_promql::Options {
            timeout: ALARM_QUERY_TIMEOUT,
            max_samples: ALARM_QUERY_MAX_SAMPLES,
            ..Default::default()
        };
        let source = StoreSource::new(self.0.clone(), opts.max_samples);
        match kinsight_promql::instant_query(&source, expr, t_ms, &opts)
            .map_err(|e| e.to_string())?
        {
            Value::Scalar { v, .. } => Ok(vec![(Vec::new(), v)]),
            Value::Vector(samples) => Ok(samples
                .into_iter()
                .map(|s| (Labels::new(s.labels.0).0, s.v))
                .collect()),
            Value::String { .. } | Value::Matrix(_) => {
                Err("the expression does not give an instant vector or a scalar".to_string())
            }
        }
    }
}

/// A `match[]` series selector as alternatives (OR) of matcher sets (AND), parsed by the
/// engine (`kinsight_promql::parse_selector`: guarded against deep nesting and parser
/// panics). Called off the async workers (the parser recurses).
fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, PromApiError> {
    kinsight_promql::parse_selector(s).map_err(|e| PromApiError::param("match[]", e))
}

/// The series every `match[]` (or, without any, every series) selects that have samples in
/// `[start, end]`, each once, with their labels, sorted by labels.
fn matched_series(
    store: &MetricStore,
    selectors: &[Vec<Vec<Matcher>>],
    start: i64,
    end: i64,
) -> Result<Vec<Labelled>, PromApiError> {
    let mut found: Vec<Labelled> = Vec::new();
    if selectors.is_empty() {
        found = store
            .series_matching(|_| true)
            .into_iter()
            .map(|s| {
                let l = series_labels(&s.key);
                (s, l)
            })
            .collect();
    } else {
        let mut seen = HashSet::new();
        for alternatives in selectors {
            for matchers in alternatives {
                for (info, labels) in
                    select_series(store, matchers).map_err(|e| PromApiError::param("match[]", e))?
                {
                    if seen.insert(info.id) {
                        found.push((info, labels));
                    }
                }
            }
        }
    }
    if start > MIN_TIME_MS || end < MAX_TIME_MS {
        let ids: Vec<u32> = found.iter().map(|(s, _)| s.id).collect();
        let keep = store.raw_overlapping(&ids, start, end);
        found = found
            .into_iter()
            .zip(keep)
            .filter_map(|(f, k)| k.then_some(f))
            .collect();
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// The `match[]` parameters, parsed off the async workers.
async fn selectors(p: &Params) -> Result<Vec<Vec<Vec<Matcher>>>, PromApiError> {
    let texts: Vec<String> = p.all("match[]").into_iter().map(str::to_string).collect();
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    blocking(move || texts.iter().map(|s| parse_selector(s)).collect()).await
}

fn range_params(p: &Params) -> Result<(i64, i64), PromApiError> {
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    if end < start {
        return Err(PromApiError::param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// Runs a listing off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PromApiError> + Send + 'static,
) -> Result<T, PromApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PromApiError::internal(e.to_string()))?
}

fn truncate<T>(v: &mut Vec<T>, limit: usize, warnings: &mut Vec<String>) {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push("results truncated due to limit".into());
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn series(_: Require<CanRead>, State(state): State<AppState>, p: Params) -> PromResult {
    let store = store_of(&state)?;
    let sel = selectors(&p).await?;
    if sel.is_empty() {
        return Err(PromApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = range_params(&p)?;
    let limit = limit_param(&p)?;
    let mut found = blocking(move || matched_series(&store, &sel, start, end)).await?;
    let mut warnings = Vec::new();
    truncate(&mut found, limit, &mut warnings);
    let data: Vec<serde_json::Value> = found
        .into_iter()
        .map(|(_, labels)| {
            serde_json::Value::Object(
                labels
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            )
        })
        .collect();
    Ok(success(serde_json::Value::Array(data), &warnings))
}

async fn labels(_: Require<CanRead>, State(state): State<AppState>, p: Params) -> PromResult {
    let store = store_of(&state)?;
    let sel = selectors(&p).await?;
    let (start, end) = range_params(&p)?;
    let limit = limit_param(&p)?;
    let mut names: Vec<String> = blocking(move || {
        let found = matched_series(&store, &sel, start, end)?;
        let set: BTreeSet<String> = found
            .into_iter()
            .flat_map(|(_, l)| l.into_iter().map(|(k, _)| k))
            .collect();
        Ok(set.into_iter().collect())
    })
    .await?;
    let mut warnings = Vec::new();
    truncate(&mut names, limit, &mut warnings);
    Ok(success(serde_json::json!(names), &warnings))
}

async fn label_values(
    _: Require<CanRead>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> PromResult {
    let store = store_of(&state)?;
    if !is_valid_label_name(&name) {
        return Err(PromApiError::bad_data(format!(
            "invalid label name: {name:?}"
        )));
    }
    let sel = selectors(&p).await?;
    let (start, end) = range_params(&p)?;
    let limit = limit_param(&p)?;
    let mut values: Vec<String> = blocking(move || {
        let set: BTreeSet<String> =
            if name == "__name__" && sel.is_empty() && start <= MIN_TIME_MS && end >= MAX_TIME_MS {
                store
                    .series_matching(|_| true)
                    .into_iter()
                    .map(|s| s.key.name)
                    .collect()
            } else {
                matched_series(&store, &sel, start, end)?
                    .into_iter()
                    .filter_map(|(_, l)| {
                        l.into_iter()
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| v)
                            .filter(|v| !v.is_empty())
                    })
                    .collect()
            };
        Ok(set.into_iter().collect())
    })
    .await?;
    let mut warnings = Vec::new();
    truncate(&mut values, limit, &mut warnings);
    Ok(success(serde_json::json!(values), &warnings))
}

/// Metadata of one metric name: the catalogue's Container Insights metrics are gauges with
/// the catalogue's unit; other CloudWatch metrics are gauges with the unit of their first
/// datapoint; the `Prometheus` namespace's are `unknown`.
fn metadata_of(info: &SeriesInfo) -> (&'static str, String) {
    use kinsight_model::catalogue;
    let known = info.key.namespace == catalogue::NAMESPACE
        && [
            catalogue::STANDARD,
            catalogue::ENHANCED,
            catalogue::CONTROL_PLANE,
            catalogue::accelerated::DECLARATIONS,
            catalogue::restart::DECLARATIONS,
        ]
        .iter()
        .flat_map(|d| d.iter())
        .any(|d| d.metrics.contains(&info.key.name.as_str()));
    if known {
        let unit = catalogue::unit_of(&info.key.name)
            .as_cloudwatch()
            .unwrap_or("");
        ("gauge", unit.to_string())
    } else if info.key.namespace == PROMETHEUS_NAMESPACE {
        ("unknown", String::new())
    } else {
        ("gauge", info.unit.clone().unwrap_or_default())
    }
}

async fn metadata(_: Require<CanRead>, State(state): State<AppState>, p: Params) -> PromResult {
    let store = store_of(&state)?;
    let limit = match p.get("limit") {
        None | Some("") | Some("-1") => 0,
        Some(_) => limit_param(&p)?,
    };
    let metric = p
        .get("metric")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let by_name = blocking(move || {
        let all = store.series_matching(|s| metric.as_ref().is_none_or(|m| *m == s.key.name));
        let mut by_name: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
        for info in &all {
            let entry = metadata_of(info);
            let list = by_name.entry(info.key.name.clone()).or_default();
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
        Ok(by_name)
    })
    .await?;
    let mut data = serde_json::Map::new();
    for (name, entries) in by_name {
        if limit > 0 && data.len() >= limit {
            break;
        }
        data.insert(
            name,
            entries
                .into_iter()
                .map(|(kind, unit)| serde_json::json!({"type": kind, "help": "", "unit": unit}))
                .collect(),
        );
    }
    Ok(success(serde_json::Value::Object(data), &[]))
}

async fn buildinfo(_: Require<CanRead>) -> Response {
    success(
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }),
        &[],
    )
}

fn query_options(p: &Params) -> Result<kinsight_promql::Options, PromApiError> {
    let mut opts = kinsight_promql::Options {
        max_samples: MAX_SAMPLES,
        timeout: QUERY_TIMEOUT,
        ..Default::default()
    };
    if let Some(t) = p.get("timeout").filter(|t| !t.is_empty()) {
        let ms = parse_duration(t).map_err(|e| PromApiError::param("timeout", e))?;
        if ms <= 0 {
            return Err(PromApiError::param("timeout", "timeout must be positive"));
        }
        opts.timeout = opts.timeout.min(Duration::from_millis(ms as u64));
    }
    if let Some(d) = p.get("lookback_delta").filter(|t| !t.is_empty()) {
        let ms = parse_duration(d).map_err(|e| PromApiError::param("lookback_delta", e))?;
        if ms > 0 {
            opts.lookback_ms = ms;
        }
    }
    Ok(opts)
}

/// Most PromQL queries evaluated at once (Prometheus's `--query.max-concurrency` default).
pub const MAX_CONCURRENT_QUERIES: usize = 20;
/// How long a query waits for one of the [`MAX_CONCURRENT_QUERIES`] slots before 503.
pub const QUERY_SLOT_WAIT: Duration = Duration::from_secs(5);

static QUERY_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_CONCURRENT_QUERIES);

/// A slot of `slots`, waiting at most `wait`; 503 `unavailable` when none frees up.
async fn query_slot(
    slots: &'static tokio::sync::Semaphore,
    wait: Duration,
) -> Result<tokio::sync::SemaphorePermit<'static>, PromApiError> {
    match tokio::time::timeout(wait, slots.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(PromApiError::unavailable(format!(
            "{MAX_CONCURRENT_QUERIES} PromQL queries are running, the most evaluated at once; retry shortly"
        ))),
    }
}

/// About how many bytes [`render_value`] makes of `v` (the JSON text of typical values, with
/// room for escapes; a value such as 1e-300 prints hundreds of digits and is not foreseen).
fn rendered_size(v: &Value) -> usize {
    let labels = |l: &Labels| {
        l.0.iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
    };
    64 + match v {
        Value::Scalar { .. } => 64,
        Value::String { v, .. } => 64 + 2 * v.len(),
        Value::Vector(samples) => samples.iter().map(|s| 64 + labels(&s.labels)).sum(),
        Value::Matrix(series) => series
            .iter()
            .map(|s| 48 + labels(&s.labels) + 48 * s.samples.len())
            .sum(),
    }
}

/// The answer to a query, rendered while its size is reserved in the request budget (503
/// when there is no room within the budget's wait); the reservation stays with the answer
/// until it is sent.
async fn answer(state: &AppState, value: Value) -> PromResult {
    let (data, reserved) =
        crate::api::query::serialize_within_budget(state, rendered_size(&value), || {
            let data = render_value(&value);
            drop(value);
            data
        })
        .await?;
    let mut res = success_raw(&data, &[]);
    drop(data);
    res.extensions_mut()
        .insert(crate::budget::HeldUntilSent(Arc::new(reserved)));
    Ok(res)
}

/// Runs the engine off the async workers, in one of the [`MAX_CONCURRENT_QUERIES`] slots,
/// and maps its errors to Prometheus's.
async fn run(
    store: Arc<MetricStore>,
    opts: kinsight_promql::Options,
    f: impl FnOnce(&dyn Source, &kinsight_promql::Options) -> Result<Value, PromError> + Send + 'static,
) -> Result<Value, PromApiError> {
    let _slot = query_slot(&QUERY_SLOTS, QUERY_SLOT_WAIT).await?;
    let source = StoreSource::new(store, opts.max_samples);
    let (res, exceeded) = tokio::task::spawn_blocking(move || {
        let r = f(&source, &opts);
        (r, source.exceeded())
    })
    .await
    .map_err(|e| PromApiError::internal(e.to_string()))?;
    res.map_err(|e| engine_error(e, exceeded))
}

/// The engine's errors as Prometheus's API answers them; `exceeded`: the source stopped at
/// its sample limit.
fn engine_error(e: PromError, exceeded: bool) -> PromApiError {
    match e {
        PromError::BadData(m) => PromApiError::param("query", m),
        PromError::Execution(m) => PromApiError::execution(m),
        PromError::Timeout => PromApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "timeout",
            message: "query timed out in expression evaluation".into(),
        },
        PromError::TooManySamples => PromApiError::execution(
            "query processing would load too many samples into memory in query execution",
        ),
        PromError::Source(m) if exceeded => PromApiError::execution(m),
        PromError::Source(m) => PromApiError::internal(m),
    }
}

/// A query's evaluation time: within the engine's range (`MAX_EVAL_TIME_MS`, about 73
/// million years either side of 1970), else 400 naming the parameter.
fn eval_time(name: &str, t: i64) -> Result<i64, PromApiError> {
    if t.unsigned_abs() > kinsight_promql::MAX_EVAL_TIME_MS as u64 {
        return Err(PromApiError::param(
            name,
            format!(
                "time out of range: at most {} s from 1970",
                kinsight_promql::MAX_EVAL_TIME_MS / 1000
            ),
        ));
    }
    Ok(t)
}

async fn query(_: Require<CanRead>, State(state): State<AppState>, p: Params) -> PromResult {
    let store = store_of(&state)?;
    let t = eval_time("time", time_param(&p, "time", now_ms())?)?;
    let opts = query_options(&p)?;
    let q = p.get("query").unwrap_or("").to_string();
    let value = run(store, opts, move |src, o| {
        kinsight_promql::instant_query(src, &q, t, o)
    })
    .await?;
    answer(&state, value).await
}

async fn query_range(_: Require<CanRead>, State(state): State<AppState>, p: Params) -> PromResult {
    let store = store_of(&state)?;
    let start = eval_time("start", required_time(&p, "start")?)?;
    let end = eval_time("end", required_time(&p, "end")?)?;
    if end < start {
        return Err(PromApiError::param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step =
        parse_duration(p.get("step").unwrap_or("")).map_err(|e| PromApiError::param("step", e))?;
    if step <= 0 {
        return Err(PromApiError::param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (i128::from(end) - i128::from(start)) / i128::from(step) > i128::from(MAX_POINTS_PER_SERIES)
    {
        return Err(PromApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let opts = query_options(&p)?;
    let q = p.get("query").unwrap_or("").to_string();
    let value = run(store, opts, move |src, o| {
        kinsight_promql::range_query(src, &q, start, end, step, o)
    })
    .await?;
    answer(&state, value).await
}

// ---------------------------------------------------------------------------------------
// Rendering results

/// A timestamp as Prometheus prints it: unix seconds with the milliseconds, if any, as
/// three digits (`1435781451.781`, `1435781451.010`, `1435781451`).
pub fn write_timestamp(out: &mut String, t: i64) {
    use std::fmt::Write;
    let (sign, t) = if t < 0 {
        ("-", t.unsigned_abs())
    } else {
        ("", t as u64)
    };
    let _ = write!(out, "{sign}{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn write_point(out: &mut String, t: i64, v: &str) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_string(out, v);
    out.push(']');
}

fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (k, v)) in labels.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_string(out, v);
    }
    out.push('}');
}

/// `{"resultType":…,"result":…}` as Prometheus shapes it.
pub fn render_value(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Scalar { t, v } => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(&mut out, *t, &kinsight_promql::format_value(*v));
        }
        Value::String { t, v } => {
            out.push_str(r#"{"resultType":"string","result":"#);
            write_point(&mut out, *t, v);
        }
        Value::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                write_point(&mut out, s.t, &kinsight_promql::format_value(s.v));
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str(r#"{"resultType":"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(&mut out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, (t, v)) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, *t, &kinsight_promql::format_value(*v));
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_knows_every_catalogue_metric_and_its_unit() {
        use kinsight_metrics::{SeriesInfo, SeriesKey};
        let info = |name: &str, unit: Option<&str>| SeriesInfo {
            id: 0,
            key: SeriesKey::new("ContainerInsights", name, [("ClusterName", "c")]),
            unit: unit.map(str::to_string),
        };
        // The catalogue's unit, not the first datapoint's.
        for (name, unit) in [
            ("node_cpu_utilization", "Percent"),
            ("apiserver_request_duration_seconds", "Seconds"),
            ("node_gpu_memory_used", "Bytes"),
            ("RestartCount", "Count"),
        ] {
            assert_eq!(
                super::metadata_of(&info(name, Some("Wrong"))),
                ("gauge", unit.to_string()),
                "{name}"
            );
        }
        assert_eq!(
            super::metadata_of(&info("my_metric", Some("Bytes"))),
            ("gauge", "Bytes".to_string())
        );
    }

    use super::*;
    use kinsight_promql::MatchOp;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
        assert_eq!(parse_time("1435781451.0006"), Ok(1_435_781_451_001));
        assert_eq!(parse_time("-1.5"), Ok(-1_500));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(parse_time(MIN_TIME_TEXT), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_TEXT), Ok(MAX_TIME_MS));
        for bad in ["", "x", "NaN", "inf", "2015-07-01", "1e300"] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("to a valid timestamp"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("15s"), Ok(15_000));
        assert_eq!(parse_duration("1m"), Ok(60_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert_eq!(parse_duration("1m30s500ms"), Ok(90_500));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        assert_eq!(parse_duration("1y"), Ok(31_536_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "1x", "s", "1s1m", "1m1m", "1.5m", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("1e300").unwrap_err().contains("overflows"));
    }

    #[test]
    fn timestamps_print_like_prometheus() {
        let p = |t| {
            let mut s = String::new();
            write_timestamp(&mut s, t);
            s
        };
        assert_eq!(p(1_435_781_451_781), "1435781451.781");
        assert_eq!(p(1_435_781_451_010), "1435781451.010");
        assert_eq!(p(1_435_781_451_001), "1435781451.001");
        assert_eq!(p(1_435_781_451_000), "1435781451");
        assert_eq!(p(0), "0");
        assert_eq!(p(-1_500), "-1.500");
    }

    fn point(ts: i64, values: &[f64]) -> kinsight_model::emf::Datapoint {
        kinsight_model::emf::Datapoint {
            namespace: "App".into(),
            name: "m".into(),
            dimensions: [("k8s.pod".to_string(), "p".to_string())].into(),
            timestamp_ms: ts,
            values: values.to_vec(),
            unit: None,
            storage_resolution: 60,
        }
    }

    #[test]
    fn the_source_keeps_one_sample_per_timestamp_and_stops_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            MetricStore::open(dir.path(), kinsight_metrics::MetricStoreConfig::default()).unwrap(),
        );
        store.ingest(1, &[point(1_000, &[1.0, 2.0]), point(2_000, &[3.0])]);
        store.ingest(2, &[point(3_000, &[4.0]), point(4_000, &[5.0])]);
        let m = |name: &str, op, value: &str| Matcher {
            name: name.into(),
            op,
            value: value.into(),
        };
        let src = StoreSource::new(store.clone(), 100);
        let got = src
            .select(
                &[
                    m("__name__", MatchOp::Equal, "m"),
                    m("k8s_pod", MatchOp::Re, "p|q"),
                    m("cloudwatch_namespace", MatchOp::NotEqual, "x"),
                ],
                1_000,
                3_000,
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].labels.0,
            vec![
                ("__name__".to_string(), "m".to_string()),
                ("cloudwatch_namespace".to_string(), "App".to_string()),
                ("k8s_pod".to_string(), "p".to_string()),
            ]
        );
        assert_eq!(
            got[0].samples,
            vec![(1_000, 2.0), (2_000, 3.0), (3_000, 4.0)]
        );
        assert!(
            src.select(&[m("k8s_pod", MatchOp::Equal, "")], 0, 10_000)
                .unwrap()
                .is_empty()
        );
        assert!(!src.exceeded());

        let small = StoreSource::new(store, 3);
        let err = kinsight_promql::instant_query(
            &small,
            "count_over_time(m[1m])",
            10_000,
            &kinsight_promql::Options::default(),
        )
        .unwrap_err();
        assert!(small.exceeded());
        let e = engine_error(err, small.exceeded());
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::UNPROCESSABLE_ENTITY, "execution")
        );
        assert!(e.message.contains("more than 3 samples"), "{}", e.message);
    }

    #[test]
    fn engine_errors_map_to_prometheus_statuses() {
        let cases = [
            (PromError::BadData("x".into()), 400, "bad_data"),
            (PromError::Execution("x".into()), 422, "execution"),
            (PromError::Timeout, 503, "timeout"),
            (PromError::TooManySamples, 422, "execution"),
            (PromError::Source("disk".into()), 500, "internal"),
        ];
        for (e, status, kind) in cases {
            let got = engine_error(e, false);
            assert_eq!((got.status.as_u16(), got.kind), (status, kind));
        }
        assert!(
            engine_error(PromError::BadData("x".into()), false)
                .message
                .starts_with(r#"invalid parameter "query": "#)
        );
    }

    #[tokio::test]
    async fn queries_wait_for_a_slot_then_get_503() {
        static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
        let wait = Duration::from_millis(50);
        let a = query_slot(&SLOTS, wait).await.unwrap();
        let _b = query_slot(&SLOTS, wait).await.unwrap();
        let e = query_slot(&SLOTS, wait).await.unwrap_err();
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert!(e.message.contains("retry shortly"), "{}", e.message);
        drop(a);
        let _c = query_slot(&SLOTS, wait).await.unwrap();
    }

    #[test]
    fn rendered_size_bounds_the_rendering() {
        let labels = Labels(vec![
            ("__name__".into(), "m\"x".into()),
            ("a".into(), "é".into()),
        ]);
        let values = [
            Value::Scalar {
                t: -1_500,
                v: f64::NAN,
            },
            Value::String {
                t: 1,
                v: "\"\"\"".into(),
            },
            Value::Vector(vec![
                kinsight_promql::Sample {
                    labels: labels.clone(),
                    t: i64::MIN / 4,
                    v: -1_234_567.890_123_456_7
                };
                3
            ]),
            Value::Matrix(vec![Series {
                labels,
                samples: vec![(i64::MIN / 4, 0.1 + 0.2); 100],
            }]),
        ];
        // Typical values; `serialize_within_budget` reserves twice the estimate, room for
        // the rare value printed with hundreds of digits (Prometheus never uses exponents).
        for v in values {
            assert!(render_value(&v).len() <= rendered_size(&v), "{v:?}");
        }
    }

    #[test]
    fn selectors_become_matcher_alternatives() {
        let alts = parse_selector(r#"up{job="api",instance=~"10\\..*"}"#).unwrap();
        assert_eq!(alts.len(), 1);
        let names: Vec<(&str, &MatchOp, &str)> = alts[0]
            .iter()
            .map(|m| (m.name.as_str(), &m.op, m.value.as_str()))
            .collect();
        assert!(names.contains(&("__name__", &MatchOp::Equal, "up")));
        assert!(names.contains(&("job", &MatchOp::Equal, "api")));
        assert!(names.contains(&("instance", &MatchOp::Re, r"10\..*")));
        let alts = parse_selector(r#"{a="1" or b="2"}"#).unwrap();
        assert_eq!(alts.len(), 2);
        for bad in ["sum(up)", "up[5m]", "{}", "up{", ""] {
            let e = parse_selector(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains("match[]"), "{bad}: {}", e.message);
        }
    }
}
