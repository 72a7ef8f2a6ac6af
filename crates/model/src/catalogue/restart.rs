//! Restart forensics (issue 18): the `ContainerRestart` event the agent writes once per ended
//! container instance — its field names, `Sources` and EMF declaration. kinsight's own event
//! type; no CloudWatch agent writes it.
//!
//! One field is a metric, `RestartCount`, in both modes: one sample per restart (the count the
//! container has once this instance is replaced), so `SampleCount` over a period is the number
//! of restarts in it and `Maximum` the highest count reached. Its dimension sets let an alarm
//! watch a container, or every container of a namespace or of the cluster by `Reason`
//! (`OOMKilled`). Everything else is log content (queried with Logs Insights): the exit code,
//! the times, the last log lines, and the readings of the instance before it ended — those are
//! already published as metrics by the Container events they are copied from, and the event is
//! given a directive built from [`DECLARATIONS`] alone ([`directive_builder`]), so the
//! enhanced-mode declaration of `container_memory_limit` never makes a second series of it.

use super::{Declaration, DirectiveBuilder};

/// The event's `Type`.
pub const TYPE: &str = "ContainerRestart";

/// Where its fields come from: the kubelet's pod status (`pod`), the instance's log file
/// (`log`), and the agent's own last Container event of the instance (`cadvisor`).
pub const SOURCES: &[&str] = &["pod", "log", "cadvisor"];

/// Field names of the event, beyond the envelope and the identity keys of
/// [`super::keys`].
pub mod keys {
    /// The runtime's id of the instance that ended (`lastState.terminated.containerID`
    /// without its `containerd://` scheme).
    pub const CONTAINER_ID: &str = "ContainerId";
    /// The container's restart count once this instance is replaced: the `N` of the ended
    /// instance's `N.log`, plus one.
    pub const RESTART_COUNT: &str = "RestartCount";
    /// `lastState.terminated.reason`: `OOMKilled`, `Error`, `Completed`, `ContainerCannotRun`…
    pub const REASON: &str = "Reason";
    pub const EXIT_CODE: &str = "ExitCode";
    /// `lastState.terminated.signal`, when the runtime reports one.
    pub const SIGNAL: &str = "Signal";
    /// `lastState.terminated.message`: the container's termination message, when it left one.
    pub const MESSAGE: &str = "Message";
    /// RFC 3339, as the kubelet reports them.
    pub const STARTED_AT: &str = "StartedAt";
    pub const FINISHED_AT: &str = "FinishedAt";
    /// The instance's own last log lines, oldest first.
    pub const LAST_LOG_LINES: &str = "LastLogLines";
    /// From the agent's last Container event of the instance: `container_memory_working_set`
    /// and `container_cpu_usage_total` (millicores).
    pub const MEMORY_WORKING_SET_BEFORE: &str = "container_memory_working_set_before";
    pub const CPU_USAGE_BEFORE: &str = "container_cpu_usage_before";
    /// The container's memory limit (bytes): the last Container event's, else the pod spec's.
    pub const MEMORY_LIMIT: &str = "container_memory_limit";
}

/// The metric of ContainerRestart events, in both modes.
pub const DECLARATIONS: &[Declaration] = &[Declaration {
    metrics: &[keys::RESTART_COUNT],
    dimensions: &[
        &["ClusterName", "Namespace", "PodName", "ContainerName"],
        &["ClusterName", "Namespace", "Reason"],
        &["ClusterName", "Reason"],
    ],
}];

/// A directive builder that knows [`DECLARATIONS`] and nothing else: what ContainerRestart
/// events are given, whatever the mode.
pub fn directive_builder() -> DirectiveBuilder {
    DirectiveBuilder {
        decls: DECLARATIONS.iter().collect(),
        matches: Default::default(),
        built: Default::default(),
        shape: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn only_restart_count_is_a_metric() {
        let ev = json!({
            "Type": TYPE, "ClusterName": "prod", "NodeName": "n", "Namespace": "shop",
            "PodName": "orders", "ContainerName": "app", "RestartCount": 3,
            "Reason": "OOMKilled", "ExitCode": 137,
            "container_memory_working_set_before": 250_000_000u64,
            "container_memory_limit": 268_435_456u64, "container_cpu_usage_before": 12.5
        });
        let d = directive_builder()
            .build_value(ev.as_object().unwrap())
            .unwrap();
        assert_eq!(
            d,
            json!([{"Namespace": "ContainerInsights",
                "Dimensions": [["ClusterName", "ContainerName", "Namespace", "PodName"],
                               ["ClusterName", "Namespace", "Reason"], ["ClusterName", "Reason"]],
                "Metrics": [{"Name": "RestartCount", "Unit": "Count"}]}])
        );
        // Without a reason, the sets that need one are left out.
        let mut ev = ev;
        ev.as_object_mut().unwrap().remove("Reason");
        let d = directive_builder()
            .build_value(ev.as_object().unwrap())
            .unwrap();
        assert_eq!(d[0]["Dimensions"].as_array().map(Vec::len), Some(1));
        assert_eq!(super::super::sources_of(TYPE), SOURCES);
        assert!(matches!(d, Value::Array(_)));
    }
}
