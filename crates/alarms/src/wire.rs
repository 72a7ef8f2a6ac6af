//! JSON shapes of the alarm API (docs/api.md, "Alarms") that are not alarm definitions
//! themselves, shared by the server and the CLI. CloudWatch member names.

use crate::pack::PackOptions;
use crate::state::{AlarmHistoryItem, MetricAlarm};
use serde::{Deserialize, Serialize};

/// DescribeAlarms' answer (also what `kinsight alarms list --output json` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAlarmsResponse {
    pub metric_alarms: Vec<MetricAlarm>,
}

/// DescribeAlarmHistory's answer, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAlarmHistoryResponse {
    pub alarm_history_items: Vec<AlarmHistoryItem>,
}

/// SetAlarmState.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetAlarmStateRequest {
    pub alarm_name: String,
    pub state_value: String,
    pub state_reason: String,
}

/// Installs the Kubernetes alarm pack for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InstallPackRequest {
    pub cluster_name: String,
    /// Alarm name prefix, default `kinsight-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default)]
    pub alarm_actions: Vec<String>,
    #[serde(default, rename = "OKActions")]
    pub ok_actions: Vec<String>,
}

impl InstallPackRequest {
    pub fn options(&self) -> PackOptions {
        let mut o = PackOptions::new(&self.cluster_name);
        if let Some(p) = &self.prefix {
            o.prefix = p.clone();
        }
        o.alarm_actions = self.alarm_actions.clone();
        o.ok_actions = self.ok_actions.clone();
        o
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstallPackResponse {
    pub installed: Vec<MetricAlarm>,
}
