//! The JSON shapes of the metric API (docs/api.md, "Metrics"), shared by the server and the
//! CLI. CloudWatch member names (PascalCase), so that ListMetrics-style answers read like
//! aws-cli's. Times are epoch milliseconds.

use crate::query::MetricQuery;
use crate::series::{DimensionMatcher, SeriesInfo, SeriesSelector};
use crate::{QueryResult, Statistic, Tier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A dimension condition: `Value` absent or `*` matches any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DimensionFilter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl DimensionFilter {
    fn matcher(&self) -> DimensionMatcher {
        match self.value.as_deref() {
            None | Some("*") => DimensionMatcher::any(&self.name),
            Some(v) => DimensionMatcher::exact(&self.name, v),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ListMetricsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Series must have these dimensions (and values, where given); others may exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<DimensionFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Largest ListMetrics answer.
pub const MAX_LIST_LIMIT: usize = 10_000;
pub const DEFAULT_LIST_LIMIT: usize = 500;

impl ListMetricsRequest {
    pub fn selector(&self) -> SeriesSelector {
        SeriesSelector {
            namespace: self.namespace.clone(),
            metric_name: self.metric_name.clone(),
            dimensions: self
                .dimensions
                .iter()
                .map(DimensionFilter::matcher)
                .collect(),
            exact_dimensions: false,
        }
    }

    pub fn limit(&self) -> Result<usize, String> {
        match self.limit {
            None => Ok(DEFAULT_LIST_LIMIT),
            Some(0) => Err("Limit must be at least 1".into()),
            Some(n) if n > MAX_LIST_LIMIT => Err(format!("Limit must be at most {MAX_LIST_LIMIT}")),
            Some(n) => Ok(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDescriptor {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl From<SeriesInfo> for MetricDescriptor {
    fn from(s: SeriesInfo) -> Self {
        MetricDescriptor {
            namespace: s.key.namespace,
            metric_name: s.key.name,
            dimensions: dims(s.key.dimensions),
            unit: s.unit,
        }
    }
}

fn dims(d: BTreeMap<String, String>) -> Vec<Dimension> {
    d.into_iter()
        .map(|(name, value)| Dimension { name, value })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMetricsResponse {
    pub metrics: Vec<MetricDescriptor>,
    /// More metrics matched than `Limit`.
    pub truncated: bool,
}

/// One statistic of one metric, or of every metric a dimension search matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MetricQueryRequest {
    pub namespace: String,
    pub metric_name: String,
    #[serde(default)]
    pub dimensions: Vec<DimensionFilter>,
    /// `true` (default): series have exactly these dimension names, as a CloudWatch metric
    /// identity or a SEARCH schema; `false`: at least these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_dimensions: Option<bool>,
    /// `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount`, `pNN`, `pNN.NN`.
    pub statistic: String,
    /// Seconds, 1 to 86,400.
    pub period: u32,
    /// Epoch ms, inclusive (floored to the period).
    pub start_time: i64,
    /// Epoch ms, exclusive.
    pub end_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_series: Option<usize>,
}

impl MetricQueryRequest {
    pub fn to_query(&self) -> Result<MetricQuery, String> {
        let statistic: Statistic = self
            .statistic
            .parse()
            .map_err(|e: crate::statistic::StatisticParseError| e.to_string())?;
        let max_series = self.max_series.unwrap_or(5_000);
        if max_series == 0 {
            return Err("MaxSeries must be at least 1".into());
        }
        Ok(MetricQuery {
            selector: SeriesSelector {
                namespace: Some(self.namespace.clone()),
                metric_name: Some(self.metric_name.clone()),
                dimensions: self
                    .dimensions
                    .iter()
                    .map(DimensionFilter::matcher)
                    .collect(),
                exact_dimensions: self.exact_dimensions.unwrap_or(true),
            },
            statistic,
            period_s: self.period,
            start_ms: self.start_time,
            end_ms: self.end_time,
            max_series,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SeriesResult {
    /// `MetricName{K=V,…}`.
    pub label: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// One per timestamp; `null` = no sample in that period.
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricQueryResponse {
    pub statistic: String,
    pub period: u32,
    /// Period starts, epoch ms, shared by every series.
    pub timestamps: Vec<i64>,
    pub series: Vec<SeriesResult>,
    pub tier: Tier,
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

impl From<QueryResult> for MetricQueryResponse {
    fn from(r: QueryResult) -> Self {
        MetricQueryResponse {
            statistic: r.statistic.to_string(),
            period: r.period_s,
            timestamps: r.timestamps,
            series: r
                .series
                .into_iter()
                .map(|s| SeriesResult {
                    label: s.key.label(),
                    namespace: s.key.namespace,
                    metric_name: s.key.name,
                    dimensions: dims(s.key.dimensions),
                    unit: s.unit,
                    values: s.values,
                })
                .collect(),
            tier: r.tier,
            truncated: r.truncated,
            messages: r.messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_cloudwatch_names_and_refuse_unknown_members() {
        let r: MetricQueryRequest = serde_json::from_str(
            r#"{"Namespace":"ContainerInsights","MetricName":"pod_cpu_utilization",
                "Dimensions":[{"Name":"ClusterName","Value":"c"},{"Name":"PodName","Value":"*"},{"Name":"Namespace"}],
                "Statistic":"p99.5","Period":60,"StartTime":0,"EndTime":3600000}"#,
        )
        .unwrap();
        let q = r.to_query().unwrap();
        assert_eq!(q.statistic, Statistic::Percentile(99.5));
        assert!(q.selector.exact_dimensions);
        assert_eq!(q.selector.dimensions[1], DimensionMatcher::any("PodName"));
        assert_eq!(q.selector.dimensions[2], DimensionMatcher::any("Namespace"));
        let bad = serde_json::from_str::<MetricQueryRequest>(
            r#"{"Namespace":"a","MetricName":"b","Statistic":"Average","Period":60,"StartTime":0,"EndTime":1,"Color":1}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("Color"));
        let r = MetricQueryRequest {
            statistic: "Mean".into(),
            ..r
        };
        assert!(r.to_query().unwrap_err().contains("unknown statistic"));
        assert!(
            ListMetricsRequest {
                limit: Some(0),
                ..Default::default()
            }
            .limit()
            .is_err()
        );
    }
}
