//! The one error type of the crate. Each variant is one thing a caller acts on differently:
//! the HTTP layer maps them to status codes (and the CloudWatch-compatible API to
//! `MalformedQueryException`, `ResourceNotFoundException`, `InvalidParameterException`, …)
//! without looking into messages.

use kinsight_ql::ParseError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueryError {
    /// The Logs Insights query does not parse or plan (issue #5: line, column and what was
    /// expected). Reported by `start`, before anything runs.
    #[error("{0}")]
    Malformed(#[from] ParseError),
    /// The SQL text does not parse, or names tables/columns that do not exist, or is not a
    /// single read-only query. `line`/`column` are 1-based when the SQL parser knows them.
    #[error("{message}")]
    MalformedSql {
        message: String,
        line: Option<u64>,
        column: Option<u64>,
    },
    /// A request parameter is out of range (no groups, end before start, too many groups…).
    #[error("{0}")]
    InvalidParameter(String),
    #[error("log group {0:?} does not exist")]
    GroupNotFound(String),
    #[error("query {0:?} does not exist (finished queries are kept for a limited time)")]
    QueryNotFound(String),
    /// More queries are waiting than the service accepts.
    #[error("too many queries are running or waiting ({0}); try again later")]
    TooManyQueries(usize),
    /// `@ptr` that this server did not produce, or whose event is gone (retention, deleted
    /// stream).
    #[error("{0}")]
    RecordNotFound(String),
    /// The query ran longer than its timeout and was stopped.
    #[error("query timed out after {0} ms")]
    Timeout(u64),
    #[error("query was cancelled")]
    Cancelled,
    /// The query needed more memory than its cap (and could not spill).
    #[error("query exceeded its memory limit of {limit_bytes} bytes: {message}")]
    MemoryExceeded { limit_bytes: usize, message: String },
    /// The query's spill files would have grown past the cap on spill space.
    #[error(
        "query needed more than {limit_bytes} bytes of spill files on disk (the server's query spill limit); narrow the query or raise the limit"
    )]
    SpillExceeded { limit_bytes: u64 },
    /// The query is valid but failed while running (e.g. a function applied to a value it
    /// cannot take).
    #[error("query failed: {0}")]
    Execution(String),
    #[error(transparent)]
    Store(#[from] kinsight_store::StoreError),
    /// A bug in the planner: a plan DataFusion refused. Reported as a server error.
    #[error("internal error while planning the query: {0}")]
    Internal(String),
}

impl QueryError {
    /// Maps a DataFusion error raised while running a query.
    pub(crate) fn from_datafusion(e: datafusion::error::DataFusionError, limits: Limits) -> Self {
        use datafusion::error::DataFusionError as D;
        match e.find_root() {
            D::ResourcesExhausted(m) => QueryError::MemoryExceeded {
                limit_bytes: limits.memory_bytes,
                message: m.clone(),
            },
            // DataFusion's disk manager says so in an I/O error.
            root if root
                .to_string()
                .contains("spilling process has exceeded the allowable limit") =>
            {
                QueryError::SpillExceeded {
                    limit_bytes: limits.spill_bytes,
                }
            }
            _ => QueryError::Execution(strip_datafusion_prefixes(&e.to_string())),
        }
    }

    /// True when the failure is the caller's query, not the server.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            QueryError::Store(_) | QueryError::Internal(_) | QueryError::Execution(_)
        )
    }
}

/// DataFusion errors print as "Error during planning: …", "Arrow error: …" chains; users want
/// the last, specific part.
pub(crate) fn strip_datafusion_prefixes(s: &str) -> String {
    let mut out = s.trim();
    for prefix in [
        "External error: ",
        "Execution error: ",
        "Error during planning: ",
        "Schema error: ",
        "Arrow error: ",
        "Optimizer rule ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Invalid argument error: ",
        "Parser error: ",
        "ParserError(\"",
    ] {
        while let Some(rest) = out.strip_prefix(prefix) {
            out = rest.trim();
        }
    }
    out.trim_end_matches("\")").to_string()
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// The caps a running query's errors are explained with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub memory_bytes: usize,
    pub spill_bytes: u64,
}
