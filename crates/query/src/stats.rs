//! Query statistics (CloudWatch's `recordsMatched`, `recordsScanned`, `bytesScanned`), read
//! from the live metrics of the running DataFusion plan, so a poll during a long query shows
//! progress.
//!
//! - `recordsScanned`: rows read — rows decoded from segments (row groups and pages skipped
//!   by statistics are not read and not counted) plus the unflushed rows of the range;
//! - `bytesScanned`: bytes fetched from segment objects (compressed, as stored) plus the
//!   message bytes of the unflushed rows;
//! - `recordsMatched`: rows that passed the query's event filters — the output of the
//!   topmost filter below the aggregation (or of the whole plan without one), which includes
//!   the time-range filter; without any filter, every scanned row.

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

fn scans(plan: &dyn ExecutionPlan, rows: &mut u64, bytes: &mut u64) {
    if plan.is::<DataSourceExec>() {
        if let Some(m) = plan.metrics() {
            *rows += m.output_rows().unwrap_or(0) as u64;
            *bytes += m
                .sum_by_name("bytes_scanned")
                .map_or(0, |v| v.as_usize() as u64);
        }
    }
    for c in plan.children() {
        scans(c.as_ref(), rows, bytes);
    }
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

/// Rows out of the topmost filters under `root` (a filter pushed below a union appears once
/// per branch), or `None` without any filter.
fn topmost_filter_rows(root: &dyn ExecutionPlan) -> Option<u64> {
    if root.is::<FilterExec>() {
        return Some(output_rows(root));
    }
    root.children()
        .into_iter()
        .filter_map(|c| topmost_filter_rows(c.as_ref()))
        .reduce(|a, b| a + b)
}

/// Statistics of a (running or finished) plan, plus the unflushed rows the scan holds.
pub(crate) fn plan_statistics(
    plan: Option<&dyn ExecutionPlan>,
    memory_rows: u64,
    memory_bytes: u64,
) -> QueryStatistics {
    let (mut rows, mut bytes) = (memory_rows, memory_bytes);
    let mut matched = None;
    if let Some(plan) = plan {
        scans(plan, &mut rows, &mut bytes);
        matched = topmost_filter_rows(events_root(plan));
    }
    QueryStatistics {
        records_matched: matched.unwrap_or(rows),
        records_scanned: rows,
        bytes_scanned: bytes,
    }
}
