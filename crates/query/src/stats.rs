//! Query statistics (CloudWatch's `recordsMatched`, `recordsScanned`, `bytesScanned`), read
//! from the live metrics of the running DataFusion plan, so a poll during a long query shows
//! progress.
//!
//! - `recordsScanned`: rows read — rows decoded from segments (row groups and pages skipped
//!   by statistics are not read and not counted) plus the unflushed rows of the range;
//! - `bytesScanned`: bytes fetched from segment objects (compressed, as stored) plus the
//!   message bytes of the unflushed rows;
//! - `recordsMatched`: rows that passed the query's event filters (the time range
//!   included) — per branch of the plan below the aggregation, the output of the topmost
//!   filter, or of the scan where the filters were pushed into the Parquet reader.

use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::FilterExec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatistics {
    pub records_matched: u64,
    pub records_scanned: u64,
    pub bytes_scanned: u64,
}

fn output_rows(plan: &dyn ExecutionPlan) -> u64 {
    plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0) as u64
}

fn metric(plan: &dyn ExecutionPlan, name: &str) -> u64 {
    plan.metrics()
        .and_then(|m| m.sum_by_name(name))
        .map_or(0, |v| v.as_usize() as u64)
}

/// Rows read by the Parquet scans: the rows they output plus those their pushed-down
/// filters dropped while decoding (row groups and pages skipped by statistics are not read).
fn scans(plan: &dyn ExecutionPlan, rows: &mut u64, bytes: &mut u64) {
    if plan.is::<DataSourceExec>() {
        *rows += output_rows(plan) + metric(plan, "pushdown_rows_pruned");
        *bytes += metric(plan, "bytes_scanned");
    }
    for c in plan.children() {
        scans(c.as_ref(), rows, bytes);
    }
}

/// Rows that passed the query's event filters under `node`: the output of the topmost
/// filter of each branch; on a branch without one, the scan's output (filters pushed into
/// the Parquet reader have already been applied there); an in-memory scan has no metrics
/// and counts `memory_rows` (once).
fn matched_rows(node: &dyn ExecutionPlan, memory_rows: &mut Option<u64>) -> u64 {
    if node.is::<FilterExec>() {
        return output_rows(node);
    }
    if node.is::<DataSourceExec>() {
        return match node.metrics().and_then(|m| m.output_rows()) {
            Some(n) => n as u64,
            None => memory_rows.take().unwrap_or(0),
        };
    }
    node.children()
        .into_iter()
        .map(|c| matched_rows(c.as_ref(), memory_rows))
        .sum()
}

/// The node under which event filters live: below the lowest aggregation, else the root.
fn events_root(plan: &dyn ExecutionPlan) -> &dyn ExecutionPlan {
    let mut found = plan;
    let mut stack = vec![plan];
    while let Some(p) = stack.pop() {
        if p.is::<AggregateExec>() {
            found = p;
        }
        stack.extend(p.children().into_iter().map(|c| c.as_ref()));
    }
    found
}

/// Statistics of a (running or finished) plan, plus the unflushed rows the scan holds.
pub(crate) fn plan_statistics(
    plan: Option<&dyn ExecutionPlan>,
    memory_rows: u64,
    memory_bytes: u64,
) -> QueryStatistics {
    let (mut rows, mut bytes) = (memory_rows, memory_bytes);
    let mut matched = 0;
    if let Some(plan) = plan {
        scans(plan, &mut rows, &mut bytes);
        matched = matched_rows(events_root(plan), &mut Some(memory_rows));
    }
    QueryStatistics {
        records_matched: matched,
        records_scanned: rows,
        bytes_scanned: bytes,
    }
}
