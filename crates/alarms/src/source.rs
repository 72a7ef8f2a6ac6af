//! Where alarms read their metric: the metric store, behind a trait so the state machine's
//! tests and benchmarks can feed datapoints directly. PromQL alarms need a source that
//! evaluates PromQL: the alarms crate does not (the server wraps the store with its engine).

use kinsight_metrics::{MetricStore, SeriesKey, SeriesSelector, SlotSummary};

pub trait MetricSource: Send + Sync {
    /// Summaries of `n` periods of `period_ms` starting at `start_ms`; samples kept when
    /// `keep_samples` (percentiles). An unknown series gives empty periods.
    fn fetch(
        &self,
        key: &SeriesKey,
        start_ms: i64,
        period_ms: i64,
        n: usize,
        keep_samples: bool,
    ) -> Result<Vec<SlotSummary>, String>;

    /// Series a multi-series alarm watches.
    fn matching(&self, selector: &SeriesSelector) -> Vec<SeriesKey>;

    /// The value of the PromQL expression `expr` at `t_ms` (an instant query): one element
    /// per series, its labels sorted by name (a scalar: no labels). By default the source
    /// cannot evaluate PromQL, and PromQL alarms fail to evaluate with this error.
    fn promql_instant(&self, expr: &str, t_ms: i64) -> Result<Vec<PromSample>, String> {
        let _ = (expr, t_ms);
        Err("this metric source does not evaluate PromQL".into())
    }
}

/// One element of a PromQL instant result: labels sorted by name, and the value.
pub type PromSample = (Vec<(String, String)>, f64);

impl MetricSource for MetricStore {
    fn fetch(
        &self,
        key: &SeriesKey,
        start_ms: i64,
        period_ms: i64,
        n: usize,
        keep_samples: bool,
    ) -> Result<Vec<SlotSummary>, String> {
        self.aggregate(key, start_ms, period_ms, n, keep_samples)
            .map_err(|e| e.to_string())
    }

    fn matching(&self, selector: &SeriesSelector) -> Vec<SeriesKey> {
        self.find_series(selector)
            .into_iter()
            .map(|s| s.key)
            .collect()
    }
}
