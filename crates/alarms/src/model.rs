//! The alarm vocabulary of CloudWatch's PutMetricAlarm / DescribeAlarms (reference §6.1), as
//! JSON shapes with CloudWatch's member names, and the validated [`Alarm`].

use crate::AlarmError;
use kinsight_metrics::{DimensionMatcher, SeriesKey, SeriesSelector, Statistic};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// CloudWatch's cap on actions per state list.
pub const MAX_ACTIONS_PER_STATE: usize = 5;
/// `Period × EvaluationPeriods` may not exceed one day.
pub const MAX_EVALUATION_SPAN_S: u64 = 86_400;
/// The dimension value that turns an alarm into a kinsight multi-series alarm (extension).
pub const WILDCARD: &str = "*";
/// The longest PromQL expression an alarm takes, in characters.
pub const MAX_PROMQL_CHARS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateValue {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl StateValue {
    pub fn as_str(self) -> &'static str {
        match self {
            StateValue::Ok => "OK",
            StateValue::Alarm => "ALARM",
            StateValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl fmt::Display for StateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StateValue {
    type Err = AlarmError;
    fn from_str(s: &str) -> Result<Self, AlarmError> {
        match s {
            "OK" => Ok(StateValue::Ok),
            "ALARM" => Ok(StateValue::Alarm),
            "INSUFFICIENT_DATA" => Ok(StateValue::InsufficientData),
            _ => Err(AlarmError::invalid(
                "StateValue",
                format!("{s:?} is not one of OK, ALARM, INSUFFICIENT_DATA"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComparisonOperator {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    /// The statistic is the left operand (reference §6.1).
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => value >= threshold,
            ComparisonOperator::GreaterThanThreshold => value > threshold,
            ComparisonOperator::LessThanThreshold => value < threshold,
            ComparisonOperator::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// Words for state reasons ("greater than", …).
    pub fn phrase(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => "greater than or equal to",
            ComparisonOperator::GreaterThanThreshold => "greater than",
            ComparisonOperator::LessThanThreshold => "less than",
            ComparisonOperator::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

impl FromStr for ComparisonOperator {
    type Err = AlarmError;
    fn from_str(s: &str) -> Result<Self, AlarmError> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            AlarmError::invalid(
                "ComparisonOperator",
                format!(
                    "{s:?} is not supported: use GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold or LessThanOrEqualToThreshold (anomaly-band operators are not available)"
                ),
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TreatMissingData {
    #[default]
    Missing,
    NotBreaching,
    Breaching,
    Ignore,
}

impl TreatMissingData {
    pub fn as_str(self) -> &'static str {
        match self {
            TreatMissingData::Missing => "missing",
            TreatMissingData::NotBreaching => "notBreaching",
            TreatMissingData::Breaching => "breaching",
            TreatMissingData::Ignore => "ignore",
        }
    }
}

impl FromStr for TreatMissingData {
    type Err = AlarmError;
    fn from_str(s: &str) -> Result<Self, AlarmError> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            AlarmError::invalid(
                "TreatMissingData",
                format!("{s:?} is not one of missing, notBreaching, breaching, ignore"),
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LowSampleCountPercentile {
    #[default]
    Evaluate,
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dimension {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// PutMetricAlarm's input, as the API and the CLI send it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmConfig {
    pub alarm_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_description: Option<String>,
    /// Empty (and left out of the JSON) for a PromQL alarm.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metric_name: String,
    /// kinsight extension: a PromQL expression whose value at the end of each period is that
    /// period's datapoint; replaces Namespace, MetricName, Dimensions and (Extended)Statistic.
    #[serde(default, rename = "PromQL", skip_serializing_if = "Option::is_none")]
    pub promql: Option<String>,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_statistic: Option<String>,
    pub period: u64,
    pub evaluation_periods: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    pub comparison_operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treat_missing_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_low_sample_count_percentile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_enabled: Option<bool>,
    #[serde(default, rename = "AlarmActions")]
    pub alarm_actions: Vec<String>,
    #[serde(default, rename = "OKActions")]
    pub ok_actions: Vec<String>,
    #[serde(default)]
    pub insufficient_data_actions: Vec<String>,
}

/// A validated alarm definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub config: AlarmConfig,
    /// The metric's statistic (`Average`, unused, for a PromQL alarm).
    pub statistic: Statistic,
    pub period_s: u64,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub comparison: ComparisonOperator,
    pub treat_missing_data: TreatMissingData,
    pub low_sample: LowSampleCountPercentile,
    pub actions_enabled: bool,
}

impl Alarm {
    pub fn name(&self) -> &str {
        &self.config.alarm_name
    }

    pub fn threshold(&self) -> f64 {
        self.config.threshold
    }

    /// A dimension value of `*` makes the alarm watch every series with these dimension
    /// names that matches the other values (kinsight extension, see docs/api.md). A PromQL
    /// alarm may be: it keeps one state per label set when its expression gives several.
    pub fn is_multi_series(&self) -> bool {
        self.config.promql.is_some() || self.config.dimensions.iter().any(|d| d.value == WILDCARD)
    }

    /// The expression of a PromQL alarm (kinsight extension).
    pub fn promql(&self) -> Option<&str> {
        self.config.promql.as_deref()
    }

    /// The single series of a classic alarm.
    pub fn series_key(&self) -> SeriesKey {
        SeriesKey::new(
            self.config.namespace.clone(),
            self.config.metric_name.clone(),
            self.config
                .dimensions
                .iter()
                .map(|d| (d.name.clone(), d.value.clone())),
        )
    }

    /// The series a multi-series alarm watches: exactly its dimension names.
    pub fn selector(&self) -> SeriesSelector {
        SeriesSelector {
            namespace: Some(self.config.namespace.clone()),
            metric_name: Some(self.config.metric_name.clone()),
            dimensions: self
                .config
                .dimensions
                .iter()
                .map(|d| {
                    if d.value == WILDCARD {
                        DimensionMatcher::any(&d.name)
                    } else {
                        DimensionMatcher::exact(&d.name, &d.value)
                    }
                })
                .collect(),
            exact_dimensions: true,
        }
    }

    /// How often the alarm is evaluated: every 10 s for high-resolution periods, every
    /// minute otherwise (reference §6.1 "Period").
    pub fn cadence_ms(&self) -> i64 {
        if self.period_s < 60 { 10_000 } else { 60_000 }
    }

    /// Periods fetched per evaluation: N plus two, the evaluation range of the reference's
    /// example (N = 3 → 5 datapoints).
    pub fn evaluation_range(&self) -> usize {
        self.evaluation_periods as usize + 2
    }

    pub fn actions_for(&self, state: StateValue) -> &[String] {
        match state {
            StateValue::Ok => &self.config.ok_actions,
            StateValue::Alarm => &self.config.alarm_actions,
            StateValue::InsufficientData => &self.config.insufficient_data_actions,
        }
    }
}

/// Most evaluation periods of a PromQL alarm: each evaluation runs one instant query per
/// period of its range, so the cost of one alarm stays bounded.
pub const MAX_PROMQL_EVALUATION_PERIODS: u32 = 100;
/// Most label sets a PromQL alarm's expression may give: each is a series state kept and
/// journalled with the alarm; beyond it the alarm is not evaluated (an evaluation error).
pub const MAX_PROMQL_SERIES: usize = 1_000;

/// A PromQL alarm: no metric members, at most [`MAX_PROMQL_EVALUATION_PERIODS`] periods, and
/// an expression that parses to an instant vector or a scalar.
fn check_promql(config: &AlarmConfig, expr: &str) -> Result<(), AlarmError> {
    for (given, member) in [
        (!config.namespace.is_empty(), "Namespace"),
        (!config.metric_name.is_empty(), "MetricName"),
        (!config.dimensions.is_empty(), "Dimensions"),
        (config.statistic.is_some(), "Statistic"),
        (config.extended_statistic.is_some(), "ExtendedStatistic"),
        (
            config.evaluate_low_sample_count_percentile.is_some(),
            "EvaluateLowSampleCountPercentile",
        ),
    ] {
        if given {
            return Err(AlarmError::invalid(
                "PromQL",
                format!("give either PromQL or {member} (a metric alarm), not both"),
            ));
        }
    }
    check_len("PromQL", expr, MAX_PROMQL_CHARS)?;
    // Each evaluation runs one instant query per period of the range (N + 2).
    if config.evaluation_periods > MAX_PROMQL_EVALUATION_PERIODS {
        return Err(AlarmError::invalid(
            "EvaluationPeriods",
            format!(
                "a PromQL alarm evaluates at most {MAX_PROMQL_EVALUATION_PERIODS} periods (one query each), got {}",
                config.evaluation_periods
            ),
        ));
    }
    // The engine's own check first (nesting, operators, durations): the parser recurses and
    // may panic on what it refuses.
    kinsight_promql::check(expr).map_err(|e| AlarmError::invalid("PromQL", e.to_string()))?;
    let parsed = std::panic::catch_unwind(|| promql_parser::parser::parse(expr))
        .map_err(|_| AlarmError::invalid("PromQL", "the expression cannot be parsed"))?
        .map_err(|e| AlarmError::invalid("PromQL", format!("parse error: {e}")))?;
    use promql_parser::parser::value::ValueType;
    match parsed.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(()),
        other => Err(AlarmError::invalid(
            "PromQL",
            format!("the expression gives a {other}; an alarm needs an instant vector or a scalar"),
        )),
    }
}

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), AlarmError> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(AlarmError::invalid(
            field,
            format!("must be 1 to {max} characters, got {n}"),
        ));
    }
    Ok(())
}

impl TryFrom<AlarmConfig> for Alarm {
    type Error = AlarmError;

    fn try_from(config: AlarmConfig) -> Result<Alarm, AlarmError> {
        check_len("AlarmName", &config.alarm_name, 255)?;
        if config.alarm_name.chars().any(|c| c.is_ascii_control()) {
            return Err(AlarmError::invalid(
                "AlarmName",
                "must not contain ASCII control characters",
            ));
        }
        let statistic = if let Some(expr) = &config.promql {
            check_promql(&config, expr)?;
            Statistic::Average
        } else {
            check_len("Namespace", &config.namespace, 255)?;
            check_len("MetricName", &config.metric_name, 255)?;
            if config.dimensions.len() > 30 {
                return Err(AlarmError::invalid(
                    "Dimensions",
                    format!("{} dimensions; at most 30", config.dimensions.len()),
                ));
            }
            for d in &config.dimensions {
                check_len("Dimensions.Name", &d.name, 255)?;
                check_len("Dimensions.Value", &d.value, 1024)?;
            }
            let mut names: Vec<&str> = config.dimensions.iter().map(|d| d.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(AlarmError::invalid(
                    "Dimensions",
                    format!("dimension {:?} is given twice", w[0]),
                ));
            }
            match (&config.statistic, &config.extended_statistic) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(AlarmError::invalid(
                        "Statistic",
                        "give exactly one of Statistic and ExtendedStatistic",
                    ));
                }
                (Some(s), None) => {
                    let st: Statistic = s.parse().map_err(
                        |e: kinsight_metrics::statistic::StatisticParseError| {
                            AlarmError::invalid("Statistic", e.to_string())
                        },
                    )?;
                    if st.is_extended() {
                        return Err(AlarmError::invalid(
                            "Statistic",
                            format!("{s} is an extended statistic: pass it as ExtendedStatistic"),
                        ));
                    }
                    st
                }
                (None, Some(s)) => {
                    let st: Statistic = s.parse().map_err(|_| {
                        AlarmError::invalid(
                            "ExtendedStatistic",
                            format!(
                                "{s:?} is not supported: kinsight evaluates percentiles pNN and pNN.NN"
                            ),
                        )
                    })?;
                    if !st.is_extended() {
                        return Err(AlarmError::invalid(
                            "ExtendedStatistic",
                            format!("{s} is a plain statistic: pass it as Statistic"),
                        ));
                    }
                    st
                }
            }
        };
        let p = config.period;
        if !(p == 10 || p == 30 || (p >= 60 && p.is_multiple_of(60))) {
            return Err(AlarmError::invalid(
                "Period",
                format!("{p} s: must be 10, 30 or a multiple of 60"),
            ));
        }
        let n = config.evaluation_periods;
        if n == 0 {
            return Err(AlarmError::invalid(
                "EvaluationPeriods",
                "must be at least 1",
            ));
        }
        if p * u64::from(n) > MAX_EVALUATION_SPAN_S {
            return Err(AlarmError::invalid(
                "EvaluationPeriods",
                format!(
                    "Period × EvaluationPeriods = {} s exceeds one day (86,400 s)",
                    p * u64::from(n)
                ),
            ));
        }
        let m = config.datapoints_to_alarm.unwrap_or(n);
        if m == 0 || m > n {
            return Err(AlarmError::invalid(
                "DatapointsToAlarm",
                format!("{m}: must be between 1 and EvaluationPeriods ({n})"),
            ));
        }
        if !config.threshold.is_finite() {
            return Err(AlarmError::invalid("Threshold", "must be a finite number"));
        }
        let comparison: ComparisonOperator = config.comparison_operator.parse()?;
        let treat_missing_data = match &config.treat_missing_data {
            Some(s) => s.parse()?,
            None => TreatMissingData::Missing,
        };
        let low_sample = match config.evaluate_low_sample_count_percentile.as_deref() {
            None => LowSampleCountPercentile::Evaluate,
            Some(_) if !statistic.is_extended() => {
                return Err(AlarmError::invalid(
                    "EvaluateLowSampleCountPercentile",
                    "applies to percentile (ExtendedStatistic) alarms only",
                ));
            }
            Some("evaluate") => LowSampleCountPercentile::Evaluate,
            Some("ignore") => LowSampleCountPercentile::Ignore,
            Some(other) => {
                return Err(AlarmError::invalid(
                    "EvaluateLowSampleCountPercentile",
                    format!("{other:?} is not one of evaluate, ignore"),
                ));
            }
        };
        for (field, list) in [
            ("AlarmActions", &config.alarm_actions),
            ("OKActions", &config.ok_actions),
            ("InsufficientDataActions", &config.insufficient_data_actions),
        ] {
            if list.len() > MAX_ACTIONS_PER_STATE {
                return Err(AlarmError::invalid(
                    field,
                    format!("{} actions; at most {MAX_ACTIONS_PER_STATE}", list.len()),
                ));
            }
            for url in list {
                crate::notify::Target::parse(url).map_err(|m| AlarmError::invalid(field, m))?;
            }
        }
        Ok(Alarm {
            statistic,
            period_s: p,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            comparison,
            treat_missing_data,
            low_sample,
            actions_enabled: config.actions_enabled.unwrap_or(true),
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn base() -> AlarmConfig {
        AlarmConfig {
            alarm_name: "cpu-high".into(),
            namespace: "ContainerInsights".into(),
            metric_name: "node_cpu_utilization".into(),
            dimensions: vec![Dimension {
                name: "ClusterName".into(),
                value: "c1".into(),
            }],
            statistic: Some("Average".into()),
            period: 60,
            evaluation_periods: 3,
            threshold: 80.0,
            comparison_operator: "GreaterThanThreshold".into(),
            ..Default::default()
        }
    }

    fn err(c: AlarmConfig) -> String {
        Alarm::try_from(c).unwrap_err().to_string()
    }

    #[test]
    fn validation_names_the_problem() {
        let a = Alarm::try_from(base()).unwrap();
        assert_eq!(a.datapoints_to_alarm, 3);
        assert_eq!(a.treat_missing_data, TreatMissingData::Missing);
        assert!(
            err(AlarmConfig {
                period: 45,
                ..base()
            })
            .contains("Period")
        );
        assert!(
            err(AlarmConfig {
                period: 3600,
                evaluation_periods: 25,
                ..base()
            })
            .contains("exceeds one day")
        );
        assert!(
            Alarm::try_from(AlarmConfig {
                period: 3600,
                evaluation_periods: 24,
                ..base()
            })
            .is_ok()
        );
        assert!(
            err(AlarmConfig {
                datapoints_to_alarm: Some(4),
                ..base()
            })
            .contains("DatapointsToAlarm")
        );
        assert!(
            err(AlarmConfig {
                extended_statistic: Some("p99".into()),
                ..base()
            })
            .contains("exactly one")
        );
        assert!(
            err(AlarmConfig {
                statistic: None,
                extended_statistic: Some("tm99".into()),
                ..base()
            })
            .contains("ExtendedStatistic")
        );
        assert!(
            err(AlarmConfig {
                statistic: Some("p99".into()),
                ..base()
            })
            .contains("pass it as ExtendedStatistic")
        );
        assert!(
            err(AlarmConfig {
                comparison_operator: "GreaterThanUpperThreshold".into(),
                ..base()
            })
            .contains("ComparisonOperator")
        );
        assert!(
            err(AlarmConfig {
                treat_missing_data: Some("zero".into()),
                ..base()
            })
            .contains("TreatMissingData")
        );
        assert!(
            err(AlarmConfig {
                alarm_name: "a\u{7}b".into(),
                ..base()
            })
            .contains("control")
        );
        assert!(
            err(AlarmConfig {
                alarm_actions: vec!["ftp://x".into()],
                ..base()
            })
            .contains("AlarmActions")
        );
        assert!(
            err(AlarmConfig {
                ok_actions: vec!["http://h/".into(); 6],
                ..base()
            })
            .contains("at most 5")
        );
        assert!(
            err(AlarmConfig {
                threshold: f64::NAN,
                ..base()
            })
            .contains("Threshold")
        );
        let dup = vec![
            Dimension {
                name: "A".into(),
                value: "1".into(),
            },
            Dimension {
                name: "A".into(),
                value: "2".into(),
            },
        ];
        assert!(
            err(AlarmConfig {
                dimensions: dup,
                ..base()
            })
            .contains("twice")
        );
        let p = Alarm::try_from(AlarmConfig {
            statistic: None,
            extended_statistic: Some("p99.9".into()),
            evaluate_low_sample_count_percentile: Some("ignore".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(p.low_sample, LowSampleCountPercentile::Ignore);
        assert!(
            err(AlarmConfig {
                evaluate_low_sample_count_percentile: Some("ignore".into()),
                ..base()
            })
            .contains("percentile")
        );
    }

    #[test]
    fn json_uses_cloudwatch_member_names() {
        let v = serde_json::to_value(AlarmConfig {
            ok_actions: vec!["http://h/".into()],
            ..base()
        })
        .unwrap();
        assert_eq!(v["AlarmName"], "cpu-high");
        assert_eq!(v["OKActions"][0], "http://h/");
        assert_eq!(v["Dimensions"][0]["Name"], "ClusterName");
        assert_eq!(v["ComparisonOperator"], "GreaterThanThreshold");
        let back: AlarmConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back.ok_actions.len(), 1);
    }
}
