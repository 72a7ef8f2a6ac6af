//! Errors of the CloudWatch-compatible API in AWS's shape: HTTP status, `x-amzn-ErrorType`
//! and a JSON 1.1 body `{"__type": "ResourceNotFoundException", "message": "…"}`, with the
//! exception names and statuses CloudWatch Logs uses (every one of them is 400 except
//! throttling-free internal failures, 500, and an unavailable service, 503).
//!
//! Native errors ([`ApiError`]) and domain errors ([`StoreError`], [`QueryError`]) are mapped
//! here, in one place.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kinsight_query::QueryError;
use kinsight_store::StoreError;
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};

/// An error answer of the CloudWatch-compatible API.
#[derive(Debug, Clone, PartialEq)]
pub struct CwError {
    /// The exception name (`__type`).
    pub kind: &'static str,
    pub message: String,
    /// More members of the error body (`queryCompileError` of MalformedQueryException).
    pub extra: Map<String, Value>,
}

pub type CwResult<T> = Result<T, CwError>;

impl CwError {
    pub const RESOURCE_NOT_FOUND: &'static str = "ResourceNotFoundException";
    pub const RESOURCE_ALREADY_EXISTS: &'static str = "ResourceAlreadyExistsException";
    pub const INVALID_PARAMETER: &'static str = "InvalidParameterException";
    pub const MALFORMED_QUERY: &'static str = "MalformedQueryException";
    pub const LIMIT_EXCEEDED: &'static str = "LimitExceededException";
    pub const SERIALIZATION: &'static str = "SerializationException";
    pub const UNKNOWN_OPERATION: &'static str = "UnknownOperationException";
    pub const UNRECOGNIZED_CLIENT: &'static str = "UnrecognizedClientException";
    pub const INVALID_SIGNATURE: &'static str = "InvalidSignatureException";
    pub const INCOMPLETE_SIGNATURE: &'static str = "IncompleteSignatureException";
    pub const MISSING_AUTHENTICATION_TOKEN: &'static str = "MissingAuthenticationTokenException";
    pub const ACCESS_DENIED: &'static str = "AccessDeniedException";
    pub const SERVICE_UNAVAILABLE: &'static str = "ServiceUnavailableException";
    pub const INTERNAL_FAILURE: &'static str = "InternalFailure";

    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        CwError {
            kind,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        CwError::new(Self::INVALID_PARAMETER, message)
    }

    /// AWS's wording for a member that breaks a constraint.
    pub fn validation(value: &str, member: &str, constraint: &str) -> Self {
        CwError::invalid(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    pub fn group_not_found() -> Self {
        CwError::new(
            Self::RESOURCE_NOT_FOUND,
            "The specified log group does not exist.",
        )
    }

    pub fn stream_not_found() -> Self {
        CwError::new(
            Self::RESOURCE_NOT_FOUND,
            "The specified log stream does not exist.",
        )
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            Self::INTERNAL_FAILURE => StatusCode::INTERNAL_SERVER_ERROR,
            Self::SERVICE_UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for CwError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl IntoResponse for CwError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(kind = self.kind, message = %self.message, "CloudWatch API request failed");
        }
        let mut body = Map::new();
        body.insert("__type".into(), Value::String(self.kind.into()));
        body.insert("message".into(), Value::String(self.message));
        body.extend(self.extra);
        let mut resp = (status, Value::Object(body).to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(super::CONTENT_TYPE),
        );
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        resp
    }
}

impl From<StoreError> for CwError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::GroupNotFound(_) => CwError::group_not_found(),
            StoreError::StreamNotFound { .. } => CwError::stream_not_found(),
            StoreError::GroupAlreadyExists(_) => CwError::new(
                CwError::RESOURCE_ALREADY_EXISTS,
                "The specified log group already exists",
            ),
            StoreError::StreamAlreadyExists { .. } => CwError::new(
                CwError::RESOURCE_ALREADY_EXISTS,
                "The specified log stream already exists",
            ),
            StoreError::DiskFull { .. } => CwError::new(
                CwError::SERVICE_UNAVAILABLE,
                format!("nothing was stored: {e}; retry later"),
            ),
            StoreError::ShuttingDown => {
                CwError::new(CwError::SERVICE_UNAVAILABLE, "the server is shutting down")
            }
            _ => CwError::from(ApiError::from(e)),
        }
    }
}

impl From<ApiError> for CwError {
    fn from(e: ApiError) -> Self {
        use ErrorCode::*;
        let kind = match e.code {
            MalformedJson | UnsupportedMediaType | BadEncoding => CwError::SERIALIZATION,
            MalformedQuery => CwError::MALFORMED_QUERY,
            InvalidParameter | InvalidLogGroupName | InvalidLogStreamName | InvalidRetention
            | BatchTooLarge | PayloadTooLarge | RequestTimeout => CwError::INVALID_PARAMETER,
            Unauthenticated => CwError::UNRECOGNIZED_CLIENT,
            Forbidden => CwError::ACCESS_DENIED,
            ResourceNotFound | NotFound => CwError::RESOURCE_NOT_FOUND,
            ResourceAlreadyExists => CwError::RESOURCE_ALREADY_EXISTS,
            MethodNotAllowed => CwError::UNKNOWN_OPERATION,
            LimitExceeded => CwError::LIMIT_EXCEEDED,
            InsufficientStorage | ServiceUnavailable => CwError::SERVICE_UNAVAILABLE,
            InternalError => CwError::INTERNAL_FAILURE,
        };
        CwError::new(kind, e.message)
    }
}

impl From<QueryError> for CwError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Store(s) => s.into(),
            QueryError::GroupNotFound(g) => CwError::new(
                CwError::RESOURCE_NOT_FOUND,
                format!(
                    "Log group '{g}' does not exist for account ID '{}'",
                    super::ACCOUNT_ID
                ),
            ),
            QueryError::TooManyQueries(_) => CwError::new(CwError::LIMIT_EXCEEDED, e.to_string()),
            other => CwError::from(ApiError::from(other)),
        }
    }
}

/// MalformedQueryException with `queryCompileError` (character offsets into `query`).
pub fn malformed_query(p: &kinsight_ql::ParseError, query: &str) -> CwError {
    let offset: usize = query
        .split_inclusive('\n')
        .take(p.line.saturating_sub(1))
        .map(|l| l.chars().count())
        .sum::<usize>()
        + p.column.saturating_sub(1);
    let message = if p.expected.is_empty() {
        p.to_string()
    } else {
        format!("{p}; expected {}", p.expected.join(", "))
    };
    let mut err = CwError::new(CwError::MALFORMED_QUERY, message);
    err.extra.insert(
        "queryCompileError".into(),
        serde_json::json!({
            "location": {"startCharOffset": offset, "endCharOffset": offset + 1},
            "message": p.message,
        }),
    );
    err
}
