//! Alarm state, history and the DescribeAlarms / DescribeAlarmHistory output shapes, and the
//! persisted document that holds them all (docs/formats/alarms.md).

use crate::AlarmError;
use crate::model::{Alarm, AlarmConfig, Dimension, StateValue};
use crate::notify::Notification;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

pub(crate) const FORMAT: &str = "kinsight-alarms";
pub(crate) const VERSION: u64 = 1;
/// Alarm history is kept two weeks (reference §6.1 "Misc").
pub const HISTORY_RETENTION_MS: i64 = 14 * 86_400_000;

/// The state of one alarm (or of one series of a multi-series alarm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmState {
    pub value: StateValue,
    pub reason: String,
    /// JSON object with the evaluated datapoints (DescribeAlarms' `StateReasonData`).
    #[serde(default)]
    pub reason_data: serde_json::Value,
    /// Last change of value or reason.
    pub updated_ms: i64,
    /// Last change of value.
    pub transitioned_ms: i64,
}

impl AlarmState {
    pub fn initial(now_ms: i64) -> Self {
        AlarmState {
            value: StateValue::InsufficientData,
            reason: "Unchecked: Initial alarm creation".into(),
            reason_data: serde_json::Value::Null,
            updated_ms: now_ms,
            transitioned_ms: now_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryItemType {
    ConfigurationUpdate,
    StateUpdate,
    Action,
}

impl std::str::FromStr for HistoryItemType {
    type Err = AlarmError;
    fn from_str(s: &str) -> Result<Self, AlarmError> {
        match s {
            "ConfigurationUpdate" => Ok(HistoryItemType::ConfigurationUpdate),
            "StateUpdate" => Ok(HistoryItemType::StateUpdate),
            "Action" => Ok(HistoryItemType::Action),
            _ => Err(AlarmError::invalid(
                "HistoryItemType",
                format!("{s:?} is not one of ConfigurationUpdate, StateUpdate, Action"),
            )),
        }
    }
}

/// One DescribeAlarmHistory item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmHistoryItem {
    pub alarm_name: String,
    pub alarm_type: String,
    /// ISO 8601.
    pub timestamp: String,
    pub history_item_type: HistoryItemType,
    pub history_summary: String,
    /// A JSON document, as a string (CloudWatch's shape).
    pub history_data: String,
    #[serde(skip)]
    pub(crate) timestamp_ms: i64,
}

/// One DescribeAlarms `MetricAlarms` element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricAlarm {
    pub alarm_name: String,
    pub alarm_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_description: Option<String>,
    pub alarm_configuration_updated_timestamp: String,
    pub actions_enabled: bool,
    #[serde(rename = "OKActions")]
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub state_value: StateValue,
    pub state_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason_data: Option<String>,
    pub state_updated_timestamp: String,
    pub state_transitioned_timestamp: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metric_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// kinsight extension: the expression of a PromQL alarm (instead of the metric).
    #[serde(default, rename = "PromQL", skip_serializing_if = "Option::is_none")]
    pub promql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_statistic: Option<String>,
    pub dimensions: Vec<Dimension>,
    pub period: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison_operator: String,
    pub treat_missing_data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_low_sample_count_percentile: Option<String>,
    /// kinsight extension: per-series states of a multi-series (`*`) alarm.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series_states: BTreeMap<String, StateValue>,
}

impl MetricAlarm {
    /// The alarm as a caller below admin scope sees it: action URLs reduced to scheme, host
    /// and port (issue 15, item 10).
    pub fn redact_actions(&mut self) {
        for list in [
            &mut self.ok_actions,
            &mut self.alarm_actions,
            &mut self.insufficient_data_actions,
        ] {
            for a in list.iter_mut() {
                *a = crate::notify::redact_url(a);
            }
        }
    }
}

impl AlarmHistoryItem {
    /// The item as a caller below admin scope sees it: URLs in the summary and in the data
    /// (an alarm configuration, an action) redacted.
    pub fn redact_actions(&mut self) {
        self.history_summary = crate::notify::redact_urls_in(&self.history_summary);
        self.history_data = crate::notify::redact_urls_in(&self.history_data);
    }
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

pub(crate) fn describe(
    alarm: &Alarm,
    state: &AlarmState,
    config_updated_ms: i64,
    series: &BTreeMap<String, AlarmState>,
) -> MetricAlarm {
    let c = &alarm.config;
    MetricAlarm {
        alarm_name: c.alarm_name.clone(),
        alarm_arn: format!("arn:kinsight:cloudwatch::alarm:{}", c.alarm_name),
        alarm_description: c.alarm_description.clone(),
        alarm_configuration_updated_timestamp: iso(config_updated_ms),
        actions_enabled: alarm.actions_enabled,
        ok_actions: c.ok_actions.clone(),
        alarm_actions: c.alarm_actions.clone(),
        insufficient_data_actions: c.insufficient_data_actions.clone(),
        state_value: state.value,
        state_reason: state.reason.clone(),
        state_reason_data: (!state.reason_data.is_null()).then(|| state.reason_data.to_string()),
        state_updated_timestamp: iso(state.updated_ms),
        state_transitioned_timestamp: iso(state.transitioned_ms),
        metric_name: c.metric_name.clone(),
        namespace: c.namespace.clone(),
        promql: c.promql.clone(),
        statistic: (c.promql.is_none() && !alarm.statistic.is_extended())
            .then(|| alarm.statistic.to_string()),
        extended_statistic: alarm
            .statistic
            .is_extended()
            .then(|| alarm.statistic.to_string()),
        dimensions: c.dimensions.clone(),
        period: alarm.period_s,
        unit: c.unit.clone(),
        evaluation_periods: alarm.evaluation_periods,
        datapoints_to_alarm: alarm.datapoints_to_alarm,
        threshold: c.threshold,
        comparison_operator: c.comparison_operator.clone(),
        treat_missing_data: alarm.treat_missing_data.as_str().to_string(),
        evaluate_low_sample_count_percentile: c.evaluate_low_sample_count_percentile.clone(),
        series_states: series.iter().map(|(k, s)| (k.clone(), s.value)).collect(),
    }
}

/// One alarm as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredAlarm {
    pub config: AlarmConfig,
    pub state: AlarmState,
    pub config_updated_ms: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series_states: BTreeMap<String, AlarmState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredHistoryItem {
    pub alarm_name: String,
    pub timestamp_ms: i64,
    pub item_type: HistoryItemType,
    pub summary: String,
    pub data: serde_json::Value,
}

impl StoredHistoryItem {
    pub fn to_api(&self) -> AlarmHistoryItem {
        AlarmHistoryItem {
            alarm_name: self.alarm_name.clone(),
            alarm_type: "MetricAlarm".into(),
            timestamp: iso(self.timestamp_ms),
            history_item_type: self.item_type,
            history_summary: self.summary.clone(),
            history_data: self.data.to_string(),
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// The whole persisted document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    pub format: String,
    pub version: u64,
    /// The journal generation that continues this snapshot (docs/formats/alarms.md).
    #[serde(default)]
    pub journal_generation: u64,
    pub alarms: Vec<StoredAlarm>,
    pub history: Vec<StoredHistoryItem>,
    pub outbox: Vec<Notification>,
    pub next_notification_id: u64,
}

pub(crate) fn load(path: &Path) -> Result<Option<Document>, AlarmError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AlarmError::io(path, e)),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| AlarmError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(AlarmError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a {FORMAT} file"),
        });
    }
    let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
    if version != VERSION {
        return Err(AlarmError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "format version {version} is not supported (this kinsight reads {VERSION})"
            ),
        });
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| AlarmError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Temporary file, fsync, rename, fsync of the directory ([`kinsight_model::durable`]).
pub(crate) fn save(path: &Path, doc: &Document) -> Result<(), AlarmError> {
    let bytes = serde_json::to_vec(doc).map_err(|e| AlarmError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    kinsight_model::durable::write_atomic(path, &bytes).map_err(AlarmError::from)
}
