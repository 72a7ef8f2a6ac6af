//! kinsight-alarms: CloudWatch-style metric alarms over kinsight's metric store.
//!
//! What it does:
//! - The PutMetricAlarm / DescribeAlarms / DescribeAlarmHistory vocabulary with CloudWatch's
//!   member names and validation rules ([`model`], [`state`]; reference §6.1).
//! - The evaluation semantics as a pure state machine: M out of N, the four comparison
//!   operators, the four TreatMissingData modes with the evaluation-range rules and the
//!   premature-alarm guard ([`evaluate`]).
//! - An [`AlarmService`] that keeps alarms, their states, 14 days of history and a
//!   notification outbox in one crash-safe file, evaluates due alarms at an injected time
//!   against a [`MetricSource`] (the metric store), and runs actions on state transitions:
//!   JSON webhooks and Slack-compatible webhooks, retried with backoff ([`notify`]), only to
//!   addresses the [`egress`] policy allows (no link-local or cloud-metadata address, checked
//!   after DNS and at every redirect), their URLs redacted in logs and history.
//! - Multi-series alarms (a dimension value `*`, kinsight extension) and the default
//!   Kubernetes alarm pack built on them ([`pack`]).
//! - PromQL alarms (member `PromQL`, kinsight extension): each period's datapoint is the
//!   expression's value at the period's end, from [`MetricSource::promql_instant`] (the
//!   server implements it with kinsight-promql's engine; this crate only checks and parses
//!   the expression to validate it); several label sets make it a multi-series alarm.
//!
//! - Replicated servers share one alarm state through a [`SharedJournal`] (the PostgreSQL
//!   catalogue): every replica serves the API; one leader evaluates and notifies, its
//!   writes fenced, so one transition is notified once ([`AlarmService::open_shared`]).
//!
//! What it deliberately does not: serve HTTP (the server does), read metrics any other way
//! than through [`MetricSource`], evaluate PromQL itself, metric math, anomaly bands, composite alarms, or SNS/EC2
//! actions — an action is a URL.

pub mod clock;
pub mod egress;
pub mod evaluate;
mod journal;
pub mod model;
pub mod notify;
pub mod pack;
mod service;
pub mod shared;
pub mod source;
pub mod state;
pub mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use egress::EgressPolicy;
pub use model::{Alarm, AlarmConfig, ComparisonOperator, Dimension, StateValue, TreatMissingData};
pub use notify::{NotifierConfig, redact_url};
pub use pack::{PackOptions, kubernetes_pack};
pub use service::{
    AlarmService, AlarmServiceConfig, BackgroundTasks, DescribeFilter, EvalReport, Transition,
};
pub use shared::{Appended, SharedJournal, SharedRead};
pub use source::MetricSource;
pub use state::{AlarmHistoryItem, HistoryItemType, MetricAlarm};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// Bad input; `field` is the PutMetricAlarm member at fault.
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("alarm {0:?} does not exist")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt alarm state: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("HTTP client: {0}")]
    Http(String),
    /// Replicas: the shared alarm state cannot be read or written now (the catalogue is
    /// unreachable, or this replica lost the lead of background work).
    #[error("the shared alarm state is unavailable: {0}")]
    Unavailable(String),
    /// Replicas: another replica changed the alarms first; the service catches up and plans
    /// the change again (callers see it only as [`AlarmError::Unavailable`] after many tries).
    #[error("the alarms changed concurrently")]
    Conflict,
}

impl From<kinsight_model::durable::DurableError> for AlarmError {
    fn from(e: kinsight_model::durable::DurableError) -> Self {
        AlarmError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl AlarmError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AlarmError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AlarmError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
