//! kinsight-query: runs CloudWatch Logs Insights queries (reference §5) and SQL over the log
//! groups of the store, on DataFusion.
//!
//! What it does:
//! - [`LogTable`] is a DataFusion table over one or several log groups for a time range:
//!   their Parquet segments read straight from the object store (projection, row-group and
//!   page pruning by statistics, segments spread over all query threads) and their unflushed
//!   rows, with `@log` naming the group of each row;
//! - [`planner`] turns a `kinsight_ql` [`Pipeline`](kinsight_ql::Pipeline) into a DataFusion
//!   logical plan — no interpreter of our own: every §5.5 function is a DataFusion expression
//!   or one of the few functions in `functions` (JSON values, IP predicates, `parse`, the
//!   nearest-rank `pct`, `@ptr`), and `pattern`'s clustering ([`pattern`]) is a scalar
//!   function and an aggregate function;
//! - [`sql`] offers the same tables to SQL;
//! - [`QueryService`] runs queries on a dedicated, lower-priority runtime with a per-query
//!   memory pool, timeout and cancellation, keeps their status, results and statistics for
//!   polling, and resolves `@ptr` back to the whole event ([`QueryService::get_record`]).
//!
//! What it deliberately does not: parse Logs Insights text (that is `kinsight_ql`, which knows
//! nothing of DataFusion), know HTTP (the server maps [`QueryError`] to status codes and the
//! CloudWatch-compatible API shapes), or store anything (`kinsight_store`).
//!
//! Documentation for users: `docs/query.md`.

mod error;
mod functions;
pub mod guard;
pub mod memory;
pub mod pattern;
pub mod planner;
mod record;
pub mod results;
mod service;
pub mod sql;
mod stats;
pub mod table;

pub use error::{QueryError, Result};
pub use functions::ptr::RecordPointer;
pub use planner::{PTR, PlanOptions, plan_pipeline, plan_pipeline_compared};
pub use record::LogRecord;
pub use results::{Row, Rows, format_timestamp_ms, value_text};
pub use service::{
    Explained, Language, MAX_GROUPS_PER_QUERY, MAX_QUERY_TEXT_CHARS, QUERY_MEMORY_SHARE,
    QueryConfig, QueryFailure, QueryInfo, QueryOutput, QueryRequest, QueryService, QuerySnapshot,
    QueryStatus, check_query_text, memory_per_query_default,
};
pub use stats::QueryStatistics;
pub use table::{GroupData, LOG, LogTable, TimeRange};
