//! Queries (issue #5): start a Logs Insights or SQL query over log groups, poll its status,
//! rows and statistics, stop it, list queries, check a query's syntax, and resolve a result's
//! `@ptr` to the whole event. The console (#7) and `kinsight query` call these; the
//! CloudWatch-compatible API (#8) calls the same [`QueryService`] for StartQuery,
//! GetQueryResults, StopQuery, DescribeQueries and GetLogRecord. docs/api.md, "Queries".

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use kinsight_query::{
    Language, LogRecord, QueryError, QueryInfo, QueryRequest, QueryService, QuerySnapshot,
    QueryStatus,
};
use serde::{Deserialize, Serialize};

use crate::auth::{CanRead, Require};
use crate::body::{JsonBody, QueryParams};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/queries", post(start).get(list))
        .route("/v1/queries/check", post(check))
        .route("/v1/queries/{id}", get(results))
        .route("/v1/queries/{id}/stop", post(stop))
        .route("/v1/records", get(record))
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        // Store errors keep their own mapping (a missing group is 404, a full disk 507 …).
        let e = match e {
            QueryError::Store(s) => return s.into(),
            other => other,
        };
        let code = match &e {
            QueryError::Malformed(_) | QueryError::MalformedSql { .. } => ErrorCode::MalformedQuery,
            QueryError::InvalidParameter(_) => ErrorCode::InvalidParameter,
            QueryError::GroupNotFound(_)
            | QueryError::QueryNotFound(_)
            | QueryError::RecordNotFound(_) => ErrorCode::ResourceNotFound,
            QueryError::TooManyQueries(_) => ErrorCode::ServiceUnavailable,
            QueryError::Store(_) => ErrorCode::InternalError,
            QueryError::Timeout(_)
            | QueryError::Cancelled
            | QueryError::MemoryExceeded { .. }
            | QueryError::SpillExceeded { .. }
            | QueryError::Execution(_)
            | QueryError::Internal(_) => ErrorCode::InternalError,
        };
        let message = match &e {
            QueryError::Malformed(p) if !p.expected.is_empty() => {
                format!("{e}; expected {}", p.expected.join(", "))
            }
            _ => e.to_string(),
        };
        ApiError::new(code, message)
    }
}

fn service(state: &AppState) -> ApiResult<&QueryService> {
    state.query.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the query engine is not running on this server",
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartBody {
    /// Log groups; `group` is accepted for a single one.
    #[serde(default)]
    groups: Vec<String>,
    group: Option<String>,
    /// Epoch milliseconds, inclusive.
    start: i64,
    /// Epoch milliseconds, exclusive.
    end: i64,
    query: String,
    #[serde(default)]
    language: Language,
    limit: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    query_id: String,
}

async fn start(
    _: Require<CanRead>,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<StartBody>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let mut groups = b.groups;
    groups.extend(b.group);
    let id = service(&state)?.start(QueryRequest {
        groups,
        start_ms: b.start,
        end_ms: b.end,
        query: b.query,
        language: b.language,
        limit: b.limit,
        timeout_ms: b.timeout_ms,
    })?;
    Ok((StatusCode::CREATED, Json(Started { query_id: id })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResultsParams {
    /// Leave out the first rows (already fetched by an earlier poll).
    #[serde(default)]
    rows_from: usize,
}

/// At most `max_result_page_bytes` of rows an answer: poll on from `rowsFrom` plus the rows
/// received until `totalRows` are read. The answer is serialised within the request budget.
async fn results(
    _: Require<CanRead>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<ResultsParams>,
) -> ApiResult<axum::response::Response> {
    let snap: QuerySnapshot =
        service(&state)?.snapshot_page(&id, p.rows_from, state.limits.max_result_page_bytes)?;
    let (body, reserved) =
        serialize_within_budget(&state, snap.rows.bytes(), || serde_json::to_vec(&snap)).await?;
    let body = body.map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    let mut res = (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    // The room the answer was made in stays with it until it is sent: no second reservation
    // that another request could take meanwhile.
    res.extensions_mut()
        .insert(crate::budget::HeldUntilSent(std::sync::Arc::new(reserved)));
    Ok(res)
}

/// Runs `serialize` while twice `bytes` (JSON text beside its values) is reserved in the
/// request budget, and returns the reservation with it; 503 when there is no room within the
/// budget's wait.
pub(crate) async fn serialize_within_budget<T>(
    state: &AppState,
    bytes: usize,
    serialize: impl FnOnce() -> T,
) -> ApiResult<(T, crate::budget::Reserved)> {
    let b = &state.budgets;
    let reserved = b
        .requests
        .reserve(bytes.saturating_mul(2), b.wait)
        .await
        .ok_or_else(crate::body::busy)?;
    Ok((serialize(), reserved))
}

#[derive(Serialize)]
struct Stopped {
    /// False when the query had already finished.
    stopped: bool,
}

async fn stop(
    _: Require<CanRead>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Stopped>> {
    Ok(Json(Stopped {
        stopped: service(&state)?.stop(&id)?,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListParams {
    status: Option<QueryStatus>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct QueryList {
    queries: Vec<QueryInfo>,
}

async fn list(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> ApiResult<Json<QueryList>> {
    let limit = match p.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(ApiError::bad_param(format!(
                "limit must be from 1 to 1000, got {n}"
            )));
        }
    };
    Ok(Json(QueryList {
        queries: service(&state)?.list(p.status, limit),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckBody {
    query: String,
    #[serde(default)]
    language: Language,
}

/// The outcome of a syntax check: `valid`, else where and what (1-based line and column).
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Checked {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    expected: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Checks a query without running it (for editors): 200, the answer says whether it is valid
/// and where it is not — except a query over the 10,000-character limit, refused with the same
/// 400 as starting it (before any parser sees it).
async fn check(_: Require<CanRead>, JsonBody(b): JsonBody<CheckBody>) -> ApiResult<Json<Checked>> {
    kinsight_query::check_query_text(&b.query)?;
    Ok(Json(match b.language {
        Language::Insights => match kinsight_ql::plan(&b.query) {
            Ok(p) => Checked {
                valid: true,
                warnings: p.warnings.iter().map(ToString::to_string).collect(),
                ..Checked::default()
            },
            Err(e) => Checked {
                line: Some(e.line as u64),
                column: Some(e.column as u64),
                message: Some(e.message),
                expected: e.expected,
                ..Checked::default()
            },
        },
        Language::Sql => match kinsight_query::sql::check(&b.query) {
            Ok(()) => Checked {
                valid: true,
                ..Checked::default()
            },
            Err(QueryError::MalformedSql {
                message,
                line,
                column,
            }) => Checked {
                line,
                column,
                message: Some(message),
                ..Checked::default()
            },
            Err(other) => Checked {
                message: Some(other.to_string()),
                ..Checked::default()
            },
        },
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordParams {
    ptr: String,
}

async fn record(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<RecordParams>,
) -> ApiResult<Json<LogRecord>> {
    Ok(Json(service(&state)?.get_record(&p.ptr).await?))
}
