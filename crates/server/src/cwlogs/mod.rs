//! The CloudWatch Logs–compatible API (issue #8): AWS's JSON 1.1 protocol on the server's
//! listener, so boto3, the aws CLI, Fluent Bit's `cloudwatch_logs` output and the CloudWatch
//! agent work against kinsight with an endpoint override (docs/cloudwatch-compat.md).
//!
//! `POST /` with `X-Amz-Target: Logs_20140328.<Action>` and a JSON body; the request is signed
//! with Signature Version 4 ([`sigv4`]) by one of the configured access keys, each mapped to
//! one of the native API's scopes. Answers are JSON 1.1 documents; errors are AWS-shaped
//! ([`error::CwError`]). Each action lives with its kind: log groups, streams, retention and
//! tags in [`groups`], events in [`events`] (filter patterns in [`filter_pattern`]), Logs
//! Insights in [`insights`]. Handlers translate and call the store or the query service; they
//! hold no storage rules of their own beyond PutLogEvents' request-level checks.

pub mod error;
pub mod events;
pub mod filter_pattern;
pub mod groups;
pub mod insights;
pub mod sigv4;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::{CwError, CwResult};
pub use sigv4::{AccessKeys, AccessKeysError, Verified};

use crate::auth::{Action, Scope};
use crate::state::AppState;

/// The protocol's content type (requests and answers).
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// `X-Amz-Target` of CloudWatch Logs: `Logs_20140328.<Action>`.
pub const TARGET_PREFIX: &str = "Logs_20140328.";
/// The account id in ARNs (`arn:aws:logs:<region>:000000000000:log-group:<name>`): one
/// kinsight server is one account.
pub const ACCOUNT_ID: &str = "000000000000";
/// Region in ARNs when a request names none (authentication off, unsigned request).
pub const DEFAULT_REGION: &str = "us-east-1";

pub fn routes() -> Router<AppState> {
    Router::new().route("/", post(handle))
}

/// What a handler knows about its request.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub caller: Verified,
}

impl Ctx<'_> {
    /// `arn:aws:logs:<region>:<account>:log-group:<name>` (without the `:*` suffix).
    pub fn group_arn(&self, group: &str) -> String {
        format!(
            "arn:aws:logs:{}:{ACCOUNT_ID}:log-group:{group}",
            self.caller.region
        )
    }

    pub fn now_ms(&self) -> i64 {
        self.state.store.config().clock.now_ms()
    }
}

/// What each action needs of the caller's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Ingest,
    Read,
    /// Describe groups or streams: read keys and ingest keys (agents' IAM policies allow
    /// `logs:DescribeLogStreams`/`DescribeLogGroups` next to `PutLogEvents`).
    Describe,
    Manage,
}

/// Every action served, with what it needs.
const ACTIONS: &[(&str, Need)] = &[
    ("CreateLogGroup", Need::Ingest),
    ("CreateLogStream", Need::Ingest),
    ("PutLogEvents", Need::Ingest),
    ("DescribeLogGroups", Need::Describe),
    ("DescribeLogStreams", Need::Describe),
    ("GetLogEvents", Need::Read),
    ("FilterLogEvents", Need::Read),
    ("StartQuery", Need::Read),
    ("GetQueryResults", Need::Read),
    ("StopQuery", Need::Read),
    ("DescribeQueries", Need::Read),
    ("GetLogRecord", Need::Read),
    ("GetLogGroupFields", Need::Read),
    ("ListTagsForResource", Need::Read),
    ("ListTagsLogGroup", Need::Read),
    ("DeleteLogGroup", Need::Manage),
    ("DeleteLogStream", Need::Manage),
    ("PutRetentionPolicy", Need::Manage),
    ("DeleteRetentionPolicy", Need::Manage),
    ("TagResource", Need::Manage),
    ("UntagResource", Need::Manage),
    ("TagLogGroup", Need::Manage),
    ("UntagLogGroup", Need::Manage),
];

fn allowed(scope: Scope, need: Need) -> bool {
    match need {
        Need::Ingest => scope.allows(Action::Ingest),
        Need::Read => scope.allows(Action::Read),
        Need::Describe => scope.allows(Action::Read) || scope.allows(Action::Ingest),
        Need::Manage => scope.allows(Action::Manage),
    }
}

/// What an action answers: JSON built as a value, or JSON text written directly (large
/// answers, [`insights::get_query_results`]).
pub enum Answer {
    Json(Value),
    /// Text made within a reservation of the request budget, kept until it is sent.
    Held(String, crate::budget::Reserved),
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let mut resp = match serve(&state, req).await {
        Ok(Answer::Json(Value::Null)) => StatusCode::OK.into_response(),
        Ok(Answer::Json(v)) => v.to_string().into_response(),
        Ok(Answer::Held(t, reserved)) => {
            let mut r = t.into_response();
            r.extensions_mut()
                .insert(crate::budget::HeldUntilSent(std::sync::Arc::new(reserved)));
            r
        }
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-amzn-requestid", id);
    }
    resp
}

async fn serve(state: &AppState, req: Request) -> CwResult<Answer> {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(action) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(CwError::new(
            CwError::UNKNOWN_OPERATION,
            if target.is_empty() {
                "POST / is the CloudWatch Logs API: the X-Amz-Target header (Logs_20140328.<Action>) is missing".to_string()
            } else {
                format!(
                    "unknown X-Amz-Target {target:?}: this endpoint serves Logs_20140328.<Action>"
                )
            },
        ));
    };
    let action = action.to_string();
    let need = ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, n)| *n)
        .ok_or_else(|| {
            CwError::new(
                CwError::UNKNOWN_OPERATION,
                format!("kinsight does not implement the CloudWatch Logs action {action:?}"),
            )
        })?;
    if let Some(ct) = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(ct.starts_with("application/x-amz-json") || ct == "application/json") {
            return Err(CwError::new(
                CwError::SERIALIZATION,
                format!("Content-Type {ct:?}: CloudWatch Logs requests are {CONTENT_TYPE}"),
            ));
        }
    }
    // Everything that can refuse a request without its body does so first: an unsigned or
    // forged request costs its headers, not up to a body limit's worth of memory.
    let pending = authenticate_headers(state, &parts)?;
    let caller_scope = match &pending {
        Pending::Anonymous(v) => v.scope,
        Pending::Signed(check) => check.scope(),
    };
    if !allowed(caller_scope, need) {
        let who = match &pending {
            Pending::Anonymous(v) => v.access_key_id.clone(),
            Pending::Signed(check) => check.access_key_id().to_string(),
        };
        return Err(CwError::new(
            CwError::ACCESS_DENIED,
            // The scope is not named: the signature is not verified yet.
            format!("User: {who} is not authorized to perform: logs:{action}"),
        ));
    }
    let limit = state.limits.max_cloudwatch_body_bytes;
    let too_large = |n: String| {
        CwError::invalid(format!(
            "Upload too large: {n} bytes exceeds the limit of {limit} bytes for a CloudWatch Logs request"
        ))
    };
    let declared = crate::body::content_length(&parts.headers);
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(too_large(n.to_string()));
    }
    // The body is held in the request budget; before its signature is verified, in the
    // smaller budget of unverified bodies, without waiting for room there.
    let budgets = &state.budgets;
    let size = declared.map_or(limit, |n| n as usize);
    let mut reserved = match &pending {
        Pending::Signed(_) => budgets.unverified.try_reserve(size),
        Pending::Anonymous(_) => budgets.requests.reserve(size, budgets.wait).await,
    }
    .ok_or_else(crate::body::busy)?;
    let raw: Bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::body::is_length_limit(&e) {
            too_large(format!("more than {limit}"))
        } else {
            CwError::invalid(format!("could not read the request body: {e}"))
        }
    })?;
    let caller = match pending {
        Pending::Anonymous(v) => v,
        Pending::Signed(check) => {
            let v = sigv4::verify_signature(
                check,
                &sigv4::SignedRequest {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query().unwrap_or(""),
                    headers: &parts.headers,
                    body: &raw,
                },
            )?;
            // Verified: its body now counts in the budget of authenticated requests.
            reserved = budgets
                .requests
                .reserve(raw.len(), budgets.wait)
                .await
                .ok_or_else(crate::body::busy)?;
            v
        }
    };
    let body = crate::body::decode(&parts.headers, raw, limit, &mut |n| {
        reserved.merge(budgets.requests.try_reserve(n)?);
        Some(())
    })?;
    let ctx = Ctx { state, caller };
    run(&ctx, &action, &body).await
}

/// A request whose headers passed authentication; a signed one still needs its body checked.
enum Pending<'k> {
    /// Authentication off: every caller is admin.
    Anonymous(Verified),
    Signed(sigv4::HeaderCheck<'k>),
}

fn authenticate_headers<'s>(
    state: &'s AppState,
    parts: &axum::http::request::Parts,
) -> CwResult<Pending<'s>> {
    if state.aws_keys.is_empty() {
        if !state.auth.enabled() {
            // Authentication off (loopback, no KINSIGHT_TOKEN): every caller is admin, as on
            // the native API; the signature, if any, is not checked.
            return Ok(Pending::Anonymous(Verified {
                access_key_id: "anonymous".into(),
                scope: Scope::Admin,
                region: sigv4::claimed_region(&parts.headers)
                    .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            }));
        }
        return Err(CwError::new(
            CwError::UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid: no AWS access keys are configured on this server (KINSIGHT_AWS_ACCESS_KEY_ID / KINSIGHT_AWS_SECRET_ACCESS_KEY or KINSIGHT_AWS_KEYS_FILE)",
        ));
    }
    sigv4::check_headers(&state.aws_keys, &parts.headers, chrono::Utc::now()).map(Pending::Signed)
}

/// Parses an action's input; an empty body is `{}`. Unknown members are ignored (newer
/// clients send members this server does not know, such as PutLogEvents' `entity`).
pub fn input<T: DeserializeOwned>(body: &[u8]) -> CwResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => CwError::invalid(format!("1 validation error detected: {e}")),
            _ => CwError::new(
                CwError::SERIALIZATION,
                format!("the request body is not valid JSON: {e}"),
            ),
        }
    })
}

async fn run(ctx: &Ctx<'_>, action: &str, body: &[u8]) -> CwResult<Answer> {
    let json = match action {
        "CreateLogGroup" => groups::create_log_group(ctx, input(body)?).await,
        "DeleteLogGroup" => groups::delete_log_group(ctx, input(body)?).await,
        "DescribeLogGroups" => groups::describe_log_groups(ctx, input(body)?),
        "CreateLogStream" => groups::create_log_stream(ctx, input(body)?).await,
        "DeleteLogStream" => groups::delete_log_stream(ctx, input(body)?).await,
        "DescribeLogStreams" => groups::describe_log_streams(ctx, input(body)?),
        "PutRetentionPolicy" => groups::put_retention_policy(ctx, input(body)?).await,
        "DeleteRetentionPolicy" => groups::delete_retention_policy(ctx, input(body)?).await,
        "TagResource" => groups::tag_resource(ctx, input(body)?).await,
        "UntagResource" => groups::untag_resource(ctx, input(body)?).await,
        "ListTagsForResource" => groups::list_tags_for_resource(ctx, input(body)?),
        "TagLogGroup" => groups::tag_log_group(ctx, input(body)?).await,
        "UntagLogGroup" => groups::untag_log_group(ctx, input(body)?).await,
        "ListTagsLogGroup" => groups::list_tags_log_group(ctx, input(body)?),
        "PutLogEvents" => events::put_log_events(ctx, input(body)?).await,
        "GetLogEvents" => events::get_log_events(ctx, input(body)?).await,
        "FilterLogEvents" => events::filter_log_events(ctx, input(body)?).await,
        "StartQuery" => insights::start_query(ctx, input(body)?),
        "GetQueryResults" => return insights::get_query_results(ctx, input(body)?).await,
        "StopQuery" => insights::stop_query(ctx, input(body)?),
        "DescribeQueries" => insights::describe_queries(ctx, input(body)?),
        "GetLogRecord" => insights::get_log_record(ctx, input(body)?).await,
        "GetLogGroupFields" => insights::get_log_group_fields(ctx, input(body)?).await,
        other => Err(CwError::new(
            CwError::UNKNOWN_OPERATION,
            format!("kinsight does not implement the CloudWatch Logs action {other:?}"),
        )),
    };
    json.map(Answer::Json)
}

/// A `limit` member: `default` when absent, else within `1..=max`.
pub fn limit(value: Option<i64>, member: &str, default: usize, max: usize) -> CwResult<usize> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) if n < 1 => Err(CwError::validation(
            &n.to_string(),
            member,
            "Member must have value greater than or equal to 1",
        )),
        Some(n) => Err(CwError::validation(
            &n.to_string(),
            member,
            &format!("Member must have value less than or equal to {max}"),
        )),
    }
}
