//! The one error type of the native API: a closed set of codes, each mapped to its HTTP status
//! here and nowhere else, answered as `{"code": "...", "message": "..."}`.
//!
//! Later API modules add codes to [`ErrorCode`] (and one line to [`ErrorCode::status`]) rather
//! than building responses by hand. The CloudWatch-compatible API (issue #8) renders errors in
//! AWS's shape instead, from the same [`ApiError`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kinsight_store::StoreError;
use serde::{Deserialize, Serialize};

/// Every error code the native API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The body is not valid JSON (or not the expected shape); the message names where.
    MalformedJson,
    /// A Logs Insights or SQL query that does not parse; the message gives line, column and
    /// what was expected (issue #5).
    MalformedQuery,
    /// A parameter is missing or has a wrong value.
    InvalidParameter,
    InvalidLogGroupName,
    InvalidLogStreamName,
    /// A retention value that is not one of the reference's allowed values.
    InvalidRetention,
    /// The batch exceeds 10,000 events or 1,048,576 bytes (reference §6.2).
    BatchTooLarge,
    /// The request body exceeds the server's byte limit (compressed or decompressed).
    PayloadTooLarge,
    /// A `Content-Encoding` or `Content-Type` the endpoint does not take.
    UnsupportedMediaType,
    /// The body could not be decompressed.
    BadEncoding,
    /// The request body did not arrive within the body read timeout (issue 15 item 2).
    RequestTimeout,
    /// No or an unknown bearer token.
    Unauthenticated,
    /// The token's scope does not allow this call.
    Forbidden,
    /// The log group (or stream, token...) does not exist.
    ResourceNotFound,
    ResourceAlreadyExists,
    NotFound,
    MethodNotAllowed,
    /// Creating a log group or stream would pass one of the server's caps (issue 15, item 12).
    LimitExceeded,
    /// The disk holding the write-ahead log is full: nothing of the request was stored.
    InsufficientStorage,
    /// Shutting down or overloaded: retry later.
    ServiceUnavailable,
    InternalError,
}

impl ErrorCode {
    /// The HTTP status of each code — the only place where this mapping lives.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            MalformedJson | MalformedQuery | InvalidParameter | InvalidLogGroupName
            | InvalidLogStreamName | InvalidRetention | BadEncoding | LimitExceeded => {
                StatusCode::BAD_REQUEST
            }
            BatchTooLarge | PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            ResourceNotFound | NotFound => StatusCode::NOT_FOUND,
            ResourceAlreadyExists => StatusCode::CONFLICT,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code as it appears in JSON bodies.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "MalformedJson",
            MalformedQuery => "MalformedQuery",
            InvalidParameter => "InvalidParameter",
            InvalidLogGroupName => "InvalidLogGroupName",
            InvalidLogStreamName => "InvalidLogStreamName",
            InvalidRetention => "InvalidRetention",
            BatchTooLarge => "BatchTooLarge",
            PayloadTooLarge => "PayloadTooLarge",
            UnsupportedMediaType => "UnsupportedMediaType",
            BadEncoding => "BadEncoding",
            RequestTimeout => "RequestTimeout",
            Unauthenticated => "Unauthenticated",
            Forbidden => "Forbidden",
            ResourceNotFound => "ResourceNotFound",
            ResourceAlreadyExists => "ResourceAlreadyExists",
            NotFound => "NotFound",
            MethodNotAllowed => "MethodNotAllowed",
            LimitExceeded => "LimitExceeded",
            InsufficientStorage => "InsufficientStorage",
            ServiceUnavailable => "ServiceUnavailable",
            InternalError => "InternalError",
        }
    }
}

/// An error answer: a code and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

/// The JSON body of every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_param(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidParameter, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code.as_str(), message = %self.message, "request failed");
        }
        (
            status,
            Json(ErrorBody {
                code: self.code.as_str().to_string(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use kinsight_model::names::NameError;
        let code = match &e {
            StoreError::InvalidGroupName { .. } => ErrorCode::InvalidLogGroupName,
            StoreError::InvalidStreamName { .. } => ErrorCode::InvalidLogStreamName,
            StoreError::InvalidName(n) => match n {
                NameError::GroupLength(_) | NameError::GroupChar { .. } => {
                    ErrorCode::InvalidLogGroupName
                }
                NameError::StreamLength(_) | NameError::StreamChar { .. } => {
                    ErrorCode::InvalidLogStreamName
                }
                NameError::Retention(_) => ErrorCode::InvalidRetention,
            },
            StoreError::InvalidParameter(_) => ErrorCode::InvalidParameter,
            StoreError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            StoreError::GroupNotFound(_) | StoreError::StreamNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            StoreError::GroupAlreadyExists(_) | StoreError::StreamAlreadyExists { .. } => {
                ErrorCode::ResourceAlreadyExists
            }
            StoreError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            StoreError::DiskFull { .. } => ErrorCode::InsufficientStorage,
            StoreError::RecordTooLarge { .. } => ErrorCode::PayloadTooLarge,
            StoreError::ShuttingDown
            | StoreError::Unavailable(_)
            | StoreError::AppendedNotApplied(_)
            | StoreError::Backpressure { .. } => ErrorCode::ServiceUnavailable,
            StoreError::WalIo { .. }
            | StoreError::WalCorrupt { .. }
            | StoreError::Io { .. }
            | StoreError::ObjectStore { .. }
            | StoreError::ObjectStoreConfig { .. }
            | StoreError::Parquet { .. }
            | StoreError::Arrow { .. }
            | StoreError::Format { .. }
            | StoreError::Locked { .. } => ErrorCode::InternalError,
        };
        ApiError::new(code, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_codes_and_statuses() {
        let e: ApiError = StoreError::GroupNotFound("/x".into()).into();
        assert_eq!(e.code.status(), StatusCode::NOT_FOUND);
        assert!(e.message.contains("/x"));
        let e: ApiError = StoreError::InvalidName(NameErrorAlias::Retention(2)).into();
        assert_eq!(e.code, ErrorCode::InvalidRetention);
        let e: ApiError = StoreError::DiskFull {
            path: "/wal".into(),
            source: std::io::Error::from_raw_os_error(28),
        }
        .into();
        assert_eq!(e.code.status(), StatusCode::INSUFFICIENT_STORAGE);
    }

    use kinsight_model::names::NameError as NameErrorAlias;
}
