//! Metric queries: one statistic over aligned periods for every series a selector matches,
//! like CloudWatch's GetMetricData with a SEARCH expression.

use crate::series::{SeriesKey, SeriesSelector};
use crate::statistic::Statistic;
use crate::tier::Tier;
use serde::{Deserialize, Serialize};

/// Shortest and longest period (issue #6: 1 s to 1 day).
pub const MIN_PERIOD_S: u32 = 1;
pub const MAX_PERIOD_S: u32 = 86_400;
/// Most periods in one series of one answer — GetMetricData's per-metric limit.
pub const MAX_PERIODS_PER_SERIES: usize = 100_800;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricQuery {
    /// Namespace and metric name are required; dimensions select one or many series.
    pub selector: SeriesSelector,
    pub statistic: Statistic,
    pub period_s: u32,
    /// Inclusive; floored to a multiple of the period (epoch-aligned, like Logs Insights'
    /// `bin()`), so that periods line up across queries.
    pub start_ms: i64,
    /// Exclusive; the last period may extend past it so that every period is whole.
    pub end_ms: i64,
    /// At most this many series (the first ones in key order); the answer says when more
    /// matched.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

fn default_max_series() -> usize {
    5_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    pub statistic: Statistic,
    pub period_s: u32,
    /// Start of every period, shared by all series.
    pub timestamps: Vec<i64>,
    pub series: Vec<SeriesValues>,
    /// Which tier answered (raw samples or a rollup).
    pub tier: Tier,
    /// True when more series matched than `max_series`.
    pub truncated: bool,
    /// Notes such as "percentiles need raw samples, kept N days".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesValues {
    #[serde(flatten)]
    pub key: SeriesKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// One value per timestamp; `null` where the period has no sample.
    pub values: Vec<Option<f64>>,
}

impl MetricQuery {
    /// The aligned start, the period in ms and the number of periods, after validation.
    pub fn plan(&self) -> Result<(i64, i64, usize), String> {
        if self.selector.namespace.as_deref().is_none_or(str::is_empty) {
            return Err("a metric query needs a namespace".into());
        }
        if self
            .selector
            .metric_name
            .as_deref()
            .is_none_or(str::is_empty)
        {
            return Err("a metric query needs a metric name".into());
        }
        if !(MIN_PERIOD_S..=MAX_PERIOD_S).contains(&self.period_s) {
            return Err(format!(
                "period {} s is out of range: {MIN_PERIOD_S} to {MAX_PERIOD_S} seconds",
                self.period_s
            ));
        }
        if self.end_ms <= self.start_ms {
            return Err(format!(
                "end time {} must be after start time {}",
                self.end_ms, self.start_ms
            ));
        }
        let period_ms = i64::from(self.period_s) * 1000;
        let start = self.start_ms.div_euclid(period_ms) * period_ms;
        let span = self.end_ms.saturating_sub(start);
        let n = span.div_euclid(period_ms) + i64::from(span.rem_euclid(period_ms) != 0);
        let n = usize::try_from(n).map_err(|_| "time range overflows".to_string())?;
        if n > MAX_PERIODS_PER_SERIES {
            return Err(format!(
                "{n} periods of {} s in the time range; at most {MAX_PERIODS_PER_SERIES} per series — use a longer period or a shorter range",
                self.period_s
            ));
        }
        Ok((start, period_ms, n))
    }
}
