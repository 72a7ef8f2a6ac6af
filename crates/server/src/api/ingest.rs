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
use kinsight_model::limits::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use kinsight_store::{IngestOutcome, IngestRequest, LogEvent, StoreError};
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
    events: Capped,
}

/// The events of a body, at most [`MAX_BATCH_EVENTS`] of them held: the rest are only checked
/// for being JSON and counted. A batch over the limit is refused anyway, and a small
/// compressed body can hold hundreds of thousands of tiny events, each far larger parsed than
/// as text: parsing them all first would hold many times the body's budgeted size.
#[derive(Default)]
struct Capped {
    events: Vec<LogEvent>,
    total: usize,
}

impl Capped {
    fn push(&mut self, e: LogEvent) {
        self.total += 1;
        if self.events.len() < MAX_BATCH_EVENTS {
            self.events.push(e);
        }
    }

    /// The events, or the store's refusal of a batch with too many.
    fn into_events(self, body_bytes: usize) -> ApiResult<Vec<LogEvent>> {
        if self.total > MAX_BATCH_EVENTS {
            return Err(StoreError::BatchTooLarge {
                events: self.total,
                bytes: body_bytes,
                max_events: MAX_BATCH_EVENTS,
                max_bytes: MAX_BATCH_BYTES,
            }
            .into());
        }
        Ok(self.events)
    }
}

impl<'de> Deserialize<'de> for Capped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Capped;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of log events")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Capped, A::Error> {
                let mut out = Capped::default();
                loop {
                    if out.events.len() < MAX_BATCH_EVENTS {
                        match seq.next_element::<LogEvent>()? {
                            Some(e) => out.push(e),
                            None => break,
                        }
                    } else {
                        match seq.next_element::<serde::de::IgnoredAny>()? {
                            Some(_) => out.total += 1,
                            None => break,
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// Parses the body into events and an optional batch id.
pub fn parse_batch(body: &DecodedBody) -> ApiResult<(Option<String>, Vec<LogEvent>)> {
    let bytes = &body.bytes[..];
    match body.content_type.as_deref() {
        Some("application/x-ndjson") | Some("application/jsonl") => {
            let mut events = Capped::default();
            for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                if events.total >= MAX_BATCH_EVENTS {
                    // Over the limit already: count the lines, hold nothing more.
                    events.total += 1;
                    continue;
                }
                let e: LogEvent = serde_json::from_slice(line)
                    .map_err(|e| json_error(&e, &format!("line {}", n + 1)))?;
                events.push(e);
            }
            Ok((None, events.into_events(bytes.len())?))
        }
        None | Some("application/json") => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => {
                let events: Capped = parse_json(bytes, "request body")?;
                Ok((None, events.into_events(bytes.len())?))
            }
            Some(b'{') => {
                let w: WrappedBatch = parse_json(bytes, "request body")?;
                Ok((w.batch_id, w.events.into_events(bytes.len())?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Reserved;

    fn body(content_type: &str, text: String) -> DecodedBody {
        DecodedBody {
            bytes: text.into(),
            content_type: Some(content_type.to_string()),
            reserved: Reserved::none(),
        }
    }

    /// A batch over the event limit holds at most the limit's events while it is counted,
    /// and is refused like the store refuses it, with the true count.
    #[test]
    fn events_past_the_limit_are_counted_not_held() {
        let one = r#"{"logGroupName":"/g","logStreamName":"s","timestamp":1,"message":"m"}"#;
        let n = MAX_BATCH_EVENTS + 50_000;
        let array = format!("[{}]", vec![one; n].join(","));
        let capped: Capped = serde_json::from_str(&array).unwrap();
        assert_eq!((capped.events.len(), capped.total), (MAX_BATCH_EVENTS, n));
        let ndjson = vec![one; n].join("\n");
        for b in [
            body("application/json", array.clone()),
            body(
                "application/json",
                format!(r#"{{"batchId":"b","events":{array}}}"#),
            ),
            body("application/x-ndjson", ndjson),
        ] {
            let e = parse_batch(&b).unwrap_err();
            assert_eq!(e.code, ErrorCode::BatchTooLarge);
            assert!(
                e.message.contains(&format!("batch of {n} events")),
                "{}",
                e.message
            );
        }
        // At the limit, everything is kept; a malformed element past it is still an error.
        let at = format!("[{}]", vec![one; MAX_BATCH_EVENTS].join(","));
        assert_eq!(
            parse_batch(&body("application/json", at)).unwrap().1.len(),
            MAX_BATCH_EVENTS
        );
        let broken = format!("[{},{{]", vec![one; MAX_BATCH_EVENTS].join(","));
        assert!(parse_batch(&body("application/json", broken)).is_err());
    }
}
