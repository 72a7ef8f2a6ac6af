//! Embedded Metric Format: the directive that turns a log event into metric datapoints
//! (reference §1.2). Both layouts are accepted: Container Insights' version 0 (root
//! `CloudWatchMetrics`, root string `Timestamp`) and the public `_aws` layout.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// EMF limit: metrics per directive.
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
/// EMF limit: keys per dimension set (and dimensions per metric).
pub const MAX_DIMENSIONS: usize = 30;
/// Metric identity limit: dimension value length.
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;
/// Metric identity limit: namespace, metric and dimension name length.
pub const MAX_NAME_CHARS: usize = 255;

/// One element of `CloudWatchMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDirective {
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Dimensions")]
    pub dimensions: Vec<Vec<String>>,
    #[serde(rename = "Metrics")]
    pub metrics: Vec<MetricDefinition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDefinition {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Unit", default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(
        rename = "StorageResolution",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_resolution: Option<u32>,
}

/// One extracted datapoint: a metric identity (namespace, name, dimensions) at a time, with
/// one or more sample values (an EMF value may be an array of numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub namespace: String,
    pub name: String,
    /// Dimension name → value, ordered by name.
    pub dimensions: BTreeMap<String, String>,
    pub timestamp_ms: i64,
    pub values: Vec<f64>,
    pub unit: Option<String>,
    /// 1 (high resolution) or 60.
    pub storage_resolution: u32,
}

#[derive(Debug, Error, PartialEq)]
pub enum EmfError {
    #[error("CloudWatchMetrics must be an array of directives")]
    NotAnArray,
    #[error("directive {index}: {message}")]
    Directive { index: usize, message: String },
    #[error("EMF timestamp is not a number of milliseconds: {0}")]
    Timestamp(String),
}

/// Finds the EMF directive of a log message, if any. Returns `Ok(None)` for messages that are
/// not JSON objects or carry no directive — those are plain logs.
pub fn extract_from_message(
    message: &str,
    fallback_ts_ms: i64,
) -> Result<Option<Vec<Datapoint>>, EmfError> {
    // Cheap pre-check: most application logs are not EMF.
    if !message.contains("CloudWatchMetrics") {
        return Ok(None);
    }
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(message) else {
        return Ok(None);
    };
    extract(&doc, fallback_ts_ms)
}

/// Extracts datapoints from a parsed event. See [`extract_from_message`].
///
/// Per the EMF rules: for every directive, every metric, every dimension set → one datapoint
/// whose dimensions are the set's keys with the event's values. A set naming a key that is
/// absent or not a string is skipped (the agent's exporter never emits such sets); a metric
/// whose value is not a number, an array of numbers or a statistic set ([`statistic_set`],
/// one sample: its average) is skipped.
pub fn extract(
    doc: &Map<String, Value>,
    fallback_ts_ms: i64,
) -> Result<Option<Vec<Datapoint>>, EmfError> {
    let (directives, ts) = if let Some(aws) = doc.get("_aws").and_then(Value::as_object) {
        match aws.get("CloudWatchMetrics") {
            Some(d) => (d, aws.get("Timestamp")),
            None => return Ok(None),
        }
    } else {
        match doc.get("CloudWatchMetrics") {
            Some(d) => (d, doc.get("Timestamp")),
            None => return Ok(None),
        }
    };
    let timestamp_ms = match ts {
        None | Some(Value::Null) => fallback_ts_ms,
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| EmfError::Timestamp(n.to_string()))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| EmfError::Timestamp(s.clone()))?,
        Some(other) => return Err(EmfError::Timestamp(other.to_string())),
    };
    let directives: Vec<MetricDirective> = match directives {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let d: MetricDirective =
                    serde_json::from_value(item.clone()).map_err(|e| EmfError::Directive {
                        index,
                        message: e.to_string(),
                    })?;
                validate_directive(&d).map_err(|message| EmfError::Directive { index, message })?;
                out.push(d);
            }
            out
        }
        _ => return Err(EmfError::NotAnArray),
    };
    let mut points = Vec::new();
    for d in &directives {
        for m in &d.metrics {
            let Some(values) = doc.get(&m.name).and_then(numeric_values) else {
                continue;
            };
            if values.is_empty() {
                continue;
            }
            let sets: Vec<&Vec<String>> = if d.dimensions.is_empty() {
                Vec::new()
            } else {
                d.dimensions.iter().collect()
            };
            let mut emit = |dims: BTreeMap<String, String>| {
                points.push(Datapoint {
                    namespace: d.namespace.clone(),
                    name: m.name.clone(),
                    dimensions: dims,
                    timestamp_ms,
                    values: values.clone(),
                    unit: m.unit.clone().filter(|u| u != "None"),
                    storage_resolution: m.storage_resolution.unwrap_or(60),
                })
            };
            if sets.is_empty() {
                emit(BTreeMap::new());
                continue;
            }
            'sets: for set in sets {
                let mut dims = BTreeMap::new();
                for key in set {
                    match doc.get(key).and_then(Value::as_str) {
                        Some(v)
                            if !v.is_empty() && v.chars().count() <= MAX_DIMENSION_VALUE_CHARS =>
                        {
                            dims.insert(key.clone(), v.to_string());
                        }
                        _ => continue 'sets,
                    }
                }
                emit(dims);
            }
        }
    }
    Ok(Some(points))
}

fn numeric_values(v: &Value) -> Option<Vec<f64>> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| vec![f]),
        Value::Array(items) => items.iter().map(Value::as_f64).collect(),
        // The metric store keeps samples, not statistic sets: a set becomes one sample, its
        // average — what CloudWatch's Average shows for one series and one set. Sum and
        // SampleCount of several sets are not CloudWatch's (they count sets, not
        // observations). A set of no observation has no average and gives no sample.
        Value::Object(_) => {
            let (count, sum) = statistic_set(v)?;
            let avg = sum / count;
            Some(if count > 0.0 && avg.is_finite() {
                vec![avg]
            } else {
                Vec::new()
            })
        }
        _ => None,
    }
}

/// A statistic set — `{"Count": n, "Sum": s}`, with `Min` and `Max` when the writer knows
/// them — as a metric value: its count and sum. CloudWatch accepts them in EMF; the agent
/// writes the control plane's histograms so (reference §1.2).
pub fn statistic_set(v: &Value) -> Option<(f64, f64)> {
    let o = v.as_object()?;
    let count = o.get("Count")?.as_f64()?;
    let sum = o.get("Sum")?.as_f64()?;
    (count >= 0.0).then_some((count, sum))
}

fn validate_directive(d: &MetricDirective) -> Result<(), String> {
    let n = d.namespace.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(format!(
            "namespace must be 1 to {MAX_NAME_CHARS} characters"
        ));
    }
    if d.metrics.len() > MAX_METRICS_PER_DIRECTIVE {
        return Err(format!(
            "{} metrics exceed the limit of {MAX_METRICS_PER_DIRECTIVE} per directive",
            d.metrics.len()
        ));
    }
    for set in &d.dimensions {
        if set.len() > MAX_DIMENSIONS {
            return Err(format!(
                "a dimension set has {} keys, the limit is {MAX_DIMENSIONS}",
                set.len()
            ));
        }
        if let Some(k) = set
            .iter()
            .find(|k| k.is_empty() || k.chars().count() > MAX_NAME_CHARS)
        {
            return Err(format!(
                "dimension name {k:?} must be 1 to {MAX_NAME_CHARS} characters"
            ));
        }
    }
    if let Some(m) = d
        .metrics
        .iter()
        .find(|m| m.name.is_empty() || m.name.chars().count() > MAX_NAME_CHARS)
    {
        return Err(format!(
            "metric name {:?} must be 1 to {MAX_NAME_CHARS} characters",
            m.name
        ));
    }
    if let Some(r) = d
        .metrics
        .iter()
        .filter_map(|m| m.storage_resolution)
        .find(|r| *r != 1 && *r != 60)
    {
        return Err(format!("StorageResolution must be 1 or 60, got {r}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_0_container_insights_shape() {
        let msg = json!({
            "Type": "Node", "Version": "0", "Timestamp": "1700000000000", "ClusterName": "c1",
            "NodeName": "n1", "InstanceId": "i-1",
            "CloudWatchMetrics": [{"Namespace": "ContainerInsights",
                "Dimensions": [["ClusterName", "InstanceId", "NodeName"], ["ClusterName"]],
                "Metrics": [{"Name": "node_cpu_utilization", "Unit": "Percent"}]}],
            "node_cpu_utilization": 12.5
        })
        .to_string();
        let pts = extract_from_message(&msg, 0).unwrap().unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(pts[0].dimensions.len(), 3);
        assert_eq!(
            pts[1].dimensions.get("ClusterName").map(String::as_str),
            Some("c1")
        );
        assert_eq!(pts[0].values, vec![12.5]);
        assert_eq!(pts[0].unit.as_deref(), Some("Percent"));
    }

    #[test]
    fn aws_shape_with_arrays_and_no_dimensions() {
        let msg = json!({
            "_aws": {"Timestamp": 1700000000001i64, "CloudWatchMetrics": [
                {"Namespace": "App", "Dimensions": [[]], "Metrics": [{"Name": "latency", "Unit": "Milliseconds", "StorageResolution": 1}]},
                {"Namespace": "App", "Dimensions": [], "Metrics": [{"Name": "hits"}]}
            ]},
            "latency": [1, 2, 3], "hits": 4
        })
        .to_string();
        let pts = extract_from_message(&msg, 0).unwrap().unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].values, vec![1.0, 2.0, 3.0]);
        assert!(pts[0].dimensions.is_empty());
        assert_eq!(pts[0].storage_resolution, 1);
        assert_eq!(pts[1].timestamp_ms, 1_700_000_000_001);
    }

    #[test]
    fn plain_logs_and_broken_directives() {
        assert_eq!(extract_from_message("hello", 5).unwrap(), None);
        assert_eq!(extract_from_message(r#"{"a":1}"#, 5).unwrap(), None);
        assert_eq!(
            extract_from_message(r#"{"CloudWatchMetrics": 3}"#, 5).unwrap_err(),
            EmfError::NotAnArray
        );
        let too_many: Vec<Value> = (0..101).map(|i| json!({"Name": format!("m{i}")})).collect();
        let msg = json!({"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [], "Metrics": too_many}]}).to_string();
        assert!(matches!(
            extract_from_message(&msg, 5),
            Err(EmfError::Directive { index: 0, .. })
        ));
    }

    #[test]
    fn a_statistic_set_is_one_sample_its_average() {
        let msg = json!({
            "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["A"]],
                "Metrics": [{"Name": "lat", "Unit": "Seconds"}, {"Name": "idle"}, {"Name": "odd"}]}],
            "A": "a", "Timestamp": "17",
            "lat": {"Count": 4, "Sum": 1.0}, "idle": {"Count": 0, "Sum": 0.0}, "odd": {"Sum": 1.0}
        })
        .to_string();
        let pts = extract_from_message(&msg, 0).unwrap().unwrap();
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!(
            (pts[0].name.as_str(), pts[0].values.as_slice()),
            ("lat", &[0.25][..])
        );
        assert_eq!(
            statistic_set(&json!({"Count": 2, "Sum": 3.5, "Min": 1, "Max": 2.5})),
            Some((2.0, 3.5))
        );
        assert_eq!(statistic_set(&json!({"Count": -1, "Sum": 3.5})), None);
        assert_eq!(statistic_set(&json!(3)), None);
    }

    #[test]
    fn missing_dimension_or_value_is_skipped() {
        let msg = json!({
            "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["A"], ["B"]], "Metrics": [{"Name": "m"}, {"Name": "absent"}]}],
            "A": "a", "m": 1.5, "Timestamp": "17"
        })
        .to_string();
        let pts = extract_from_message(&msg, 0).unwrap().unwrap();
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].timestamp_ms, 17);
    }
}
