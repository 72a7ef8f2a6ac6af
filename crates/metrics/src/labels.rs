//! The Prometheus view of the store (issue 17, docs/api.md "Prometheus HTTP API"): every
//! series is a PromQL series with labels, and its raw samples are read with their exact
//! timestamps. The PromQL engine itself is another crate; the server adapts this module to it.
//!
//! Label model ([`series_labels`]):
//! - `__name__` is the metric name, as stored (not sanitised: PromQL reaches any name with
//!   `{__name__="…"}`).
//! - the CloudWatch namespace is the label `cloudwatch_namespace` — except for the namespace
//!   `Prometheus` (what remote-write stores), whose series carry only their own labels;
//! - every dimension is a label with the dimension's value. A dimension name that is not a
//!   valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`) is sanitised as Prometheus does
//!   (`strutil.SanitizeFullLabelName`): every invalid character becomes `_` (a leading digit
//!   too), an empty name is `_`. A dimension with an empty value has no label (Prometheus:
//!   an empty label is an absent one).
//! - names are unique: on a clash the first label in this order keeps the name and the others
//!   are left out — `__name__`, `cloudwatch_namespace`, dimensions whose names were valid,
//!   sanitised dimensions (each group in dimension-name order).

use crate::series::{SeriesInfo, SeriesKey};
use crate::tier::Tier;
use crate::{MetricStore, MetricsError};
use std::collections::BTreeMap;

/// The label holding the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";
/// The label holding the CloudWatch namespace of a series.
pub const NAMESPACE_LABEL: &str = "cloudwatch_namespace";
/// The namespace whose series get no [`NAMESPACE_LABEL`]: Prometheus's own series.
pub const PROMETHEUS_NAMESPACE: &str = "Prometheus";

/// Whether `name` is a valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` as a valid label name, the way Prometheus sanitises (`SanitizeFullLabelName`):
/// each invalid character (a leading digit included) becomes `_`; an empty name is `_`.
pub fn sanitize_label_name(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The labels of a series, sorted by name, names unique (module doc).
pub fn series_labels(key: &SeriesKey) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    out.insert(METRIC_NAME_LABEL.into(), key.name.clone());
    if key.namespace != PROMETHEUS_NAMESPACE {
        out.insert(NAMESPACE_LABEL.into(), key.namespace.clone());
    }
    for (name, value) in &key.dimensions {
        if !value.is_empty() && is_valid_label_name(name) && !out.contains_key(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in &key.dimensions {
        if !value.is_empty() && !is_valid_label_name(name) {
            out.entry(sanitize_label_name(name))
                .or_insert_with(|| value.clone());
        }
    }
    out.into_iter().collect()
}

impl MetricStore {
    /// Every series for which `pred` holds, in id order (one read lock; `pred` runs under it,
    /// so keep it cheap).
    pub fn series_matching(&self, pred: impl Fn(&SeriesInfo) -> bool) -> Vec<SeriesInfo> {
        self.with_series(|all| all.iter().filter(|s| pred(s)).cloned().collect())
    }

    /// For each of `ids`, whether the series has raw samples with `start_ms <= t <= end_ms`
    /// — exact for data not yet flushed, at the granularity of a raw segment (one UTC day per
    /// partition: its first and last sample of the series) for the rest, so a series may be
    /// reported with samples elsewhere in the same day. Cheap: reads no segment data.
    pub fn raw_overlapping(&self, ids: &[u32], start_ms: i64, end_ms: i64) -> Vec<bool> {
        if end_ms < start_ms {
            return vec![false; ids.len()];
        }
        self.raw_overlapping_impl(ids, start_ms, end_ms.saturating_add(1))
    }

    /// The raw samples of series `id` with `start_ms <= t <= end_ms`, sorted by time (stable:
    /// samples of one timestamp — the values of one EMF datapoint — in the order stored),
    /// from the head, the head being flushed and the raw segments, as one consistent view.
    /// The raw tier is kept for its retention (15 days by default); older samples are gone.
    pub fn raw_samples(
        &self,
        id: u32,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(i64, f64)>, MetricsError> {
        if end_ms < start_ms {
            return Ok(Vec::new());
        }
        let end = end_ms.saturating_add(1);
        let mut out = Vec::new();
        for (block, sorted) in self.blocks(id, Tier::Raw, start_ms, end)? {
            let crate::block::BlockData::Raw { ts, vals } = &*block else {
                continue;
            };
            let rows = if sorted {
                block.range(start_ms, end)
            } else {
                0..ts.len()
            };
            out.extend(
                rows.filter(|&i| ts[i] >= start_ms && ts[i] < end)
                    .map(|i| (ts[i], vals[i])),
            );
        }
        out.sort_by_key(|s| s.0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str, dims: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(ns, name, dims.iter().copied())
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dimensions_become_labels_with_the_namespace_label() {
        let k = key(
            "ContainerInsights",
            "node_cpu_utilization",
            &[("NodeName", "ip-10-0-1-5"), ("ClusterName", "prod")],
        );
        assert_eq!(
            series_labels(&k),
            labels(&[
                ("ClusterName", "prod"),
                ("NodeName", "ip-10-0-1-5"),
                ("__name__", "node_cpu_utilization"),
                ("cloudwatch_namespace", "ContainerInsights"),
            ])
        );
        // The Kubernetes `Namespace` dimension and a lowercase `namespace` are their own.
        let k = key(
            "ContainerInsights",
            "pod_cpu_utilization",
            &[("Namespace", "default"), ("namespace", "x")],
        );
        assert_eq!(
            series_labels(&k),
            labels(&[
                ("Namespace", "default"),
                ("__name__", "pod_cpu_utilization"),
                ("cloudwatch_namespace", "ContainerInsights"),
                ("namespace", "x"),
            ])
        );
    }

    #[test]
    fn the_prometheus_namespace_has_no_namespace_label() {
        let k = key(
            "Prometheus",
            "http_requests_total",
            &[("job", "api"), ("cloudwatch_namespace", "kept")],
        );
        assert_eq!(
            series_labels(&k),
            labels(&[
                ("__name__", "http_requests_total"),
                ("cloudwatch_namespace", "kept"),
                ("job", "api"),
            ])
        );
    }

    #[test]
    fn invalid_names_are_sanitised_like_prometheus() {
        assert!(is_valid_label_name("_a1"));
        assert!(is_valid_label_name("ClusterName"));
        for bad in ["", "1a", "a-b", "a.b", "é", "a b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
        assert_eq!(sanitize_label_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(sanitize_label_name("1st"), "_st");
        assert_eq!(sanitize_label_name("café"), "caf_");
        assert_eq!(sanitize_label_name(""), "_");
        assert_eq!(sanitize_label_name("a1"), "a1");
        let k = key(
            "App",
            "latency.p99",
            &[("service.name", "api"), ("2xx", "y"), ("empty", "")],
        );
        assert_eq!(
            series_labels(&k),
            labels(&[
                ("__name__", "latency.p99"),
                ("_xx", "y"),
                ("cloudwatch_namespace", "App"),
                ("service_name", "api"),
            ])
        );
    }

    #[test]
    fn clashes_keep_the_first_label_in_the_documented_order() {
        let k = key(
            "App",
            "m",
            &[
                ("a-b", "sanitised"),
                ("a_b", "valid"),
                ("__name__", "dim"),
                ("cloudwatch-namespace", "dim2"),
                ("x.y", "first"),
                ("x:y", "second"),
            ],
        );
        assert_eq!(
            series_labels(&k),
            labels(&[
                ("__name__", "m"),
                ("a_b", "valid"),
                ("cloudwatch_namespace", "App"),
                ("x_y", "first"),
            ])
        );
    }
}
