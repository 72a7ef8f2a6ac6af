//! `POST /v1/ingest`: batches of log events from agents (docs/api.md).
//!
//! Body: a JSON array of events, `{"batchId": "...", "events": [...]}`, or NDJSON (one event
//! per line, `Content-Type: application/x-ndjson`); `Content-Encoding: zstd | gzip` optional.
//! The batch id comes from the `X-Kinsight-Batch-Id` header or the body. The answer comes
//! once the accepted events are fsynced in the WAL.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use kinsight_store::{IngestOutcome, IngestRequest, LogEvent};
use serde::Deserialize;

use crate::auth::{CanIngest, Require};
use crate::body::{DecodedBody, QueryParams, json_error, parse_json};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Header carrying the batch id.
pub const BATCH_ID_HEADER: &str = "x-kinsight-batch-id";

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/ingest", post(ingest))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngestParams {
    /// Create missing log groups (default true, like Fluent Bit's `auto_create_group`).
    auto_create: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrappedBatch {
    batch_id: Option<String>,
    events: Vec<LogEvent>,
}

/// Parses the body into events and an optional batch id.
pub fn parse_batch(body: &DecodedBody) -> ApiResult<(Option<String>, Vec<LogEvent>)> {
    let bytes = &body.bytes[..];
    match body.content_type.as_deref() {
        Some("application/x-ndjson") | Some("application/jsonl") => {
            let mut events = Vec::new();
            for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let e: LogEvent = serde_json::from_slice(line)
                    .map_err(|e| json_error(&e, &format!("line {}", n + 1)))?;
                events.push(e);
            }
            Ok((None, events))
        }
        None | Some("application/json") => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => Ok((None, parse_json(bytes, "request body")?)),
            Some(b'{') => {
                let w: WrappedBatch = parse_json(bytes, "request body")?;
                Ok((w.batch_id, w.events))
            }
            _ => Err(ApiError::new(
                ErrorCode::MalformedJson,
                "request body must be a JSON array of events or {\"batchId\", \"events\"}",
            )),
        },
        Some(other) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type {other:?}: use application/json or application/x-ndjson"),
        )),
    }
}

/// Batch ids: 1–128 printable ASCII characters without spaces.
fn check_batch_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_param(format!(
            "batch id {id:?} must be 1 to 128 printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

async fn ingest(
    _: Require<CanIngest>,
    State(state): State<AppState>,
    QueryParams(params): QueryParams<IngestParams>,
    headers: HeaderMap,
    body: DecodedBody,
) -> ApiResult<Json<IngestOutcome>> {
    let header_id = headers
        .get(BATCH_ID_HEADER)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_param("X-Kinsight-Batch-Id must be ASCII"))
        })
        .transpose()?;
    let (body_id, events) = parse_batch(&body)?;
    let batch_id = match (header_id, body_id) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::bad_param(format!(
                "batch id in header ({h:?}) and body ({b:?}) differ"
            )));
        }
        (h, b) => h.or(b),
    };
    if let Some(id) = &batch_id {
        check_batch_id(id)?;
    }
    let outcome = state
        .store
        .ingest(IngestRequest {
            batch_id,
            events,
            auto_create_groups: params.auto_create.unwrap_or(true),
        })
        .await?;
    Ok(Json(outcome))
}
