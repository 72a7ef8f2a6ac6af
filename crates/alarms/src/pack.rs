//! The default Kubernetes alarm pack (opt-in; issue #6): the alarms of reference §6.1's
//! "Container-Insights-typical alarms", ready to install for one cluster.
//!
//! CloudWatch alarms watch one metric with its full dimension set, so a per-node or per-pod
//! alarm would have to be created for every node and pod, and would miss the ones created
//! later. The pack therefore uses kinsight's multi-series alarms: the cluster is concrete,
//! the per-node/per-pod dimensions are `*`, and every series with exactly those dimension
//! names is evaluated on its own (docs/api.md, "Multi-series alarms"). Cluster-wide metrics
//! use the concrete `{ClusterName}` set, as in CloudWatch.
//!
//! Beyond the reference's: `oom-kills`, on the `RestartCount` samples of the agent's
//! ContainerRestart events (issue 18), per namespace with the concrete `Reason=OOMKilled`.

use crate::model::{AlarmConfig, Dimension, WILDCARD};
use kinsight_model::catalogue::{NAMESPACE, restart};

#[derive(Debug, Clone)]
pub struct PackOptions {
    pub cluster: String,
    /// Alarm names are `<prefix><cluster>-<what>`.
    pub prefix: String,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
}

impl PackOptions {
    pub fn new(cluster: impl Into<String>) -> Self {
        PackOptions {
            cluster: cluster.into(),
            prefix: "kinsight-".into(),
            alarm_actions: Vec::new(),
            ok_actions: Vec::new(),
        }
    }
}

/// One alarm of the pack before it is bound to a cluster.
struct Spec {
    what: &'static str,
    description: &'static str,
    metric: &'static str,
    /// Dimensions besides ClusterName; all `*`.
    per: &'static [&'static str],
    /// Dimensions besides ClusterName with a fixed value.
    fixed: &'static [(&'static str, &'static str)],
    statistic: &'static str,
    period: u64,
    evaluation_periods: u32,
    datapoints_to_alarm: u32,
    operator: &'static str,
    threshold: f64,
    treat_missing_data: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        what: "node-cpu-high",
        description: "Node CPU utilization above 80 % for 4 of the last 5 minutes",
        metric: "node_cpu_utilization",
        per: &["InstanceId", "NodeName"],
        fixed: &[],
        statistic: "Average",
        period: 60,
        evaluation_periods: 5,
        datapoints_to_alarm: 4,
        operator: "GreaterThanThreshold",
        threshold: 80.0,
        treat_missing_data: "missing",
    },
    Spec {
        what: "node-memory-high",
        description: "Node memory utilization above 85 % for 4 of the last 5 minutes",
        metric: "node_memory_utilization",
        per: &["InstanceId", "NodeName"],
        fixed: &[],
        statistic: "Average",
        period: 60,
        evaluation_periods: 5,
        datapoints_to_alarm: 4,
        operator: "GreaterThanThreshold",
        threshold: 85.0,
        treat_missing_data: "missing",
    },
    Spec {
        what: "pod-memory-near-limit",
        description: "A pod uses 90 % or more of its memory limit for 3 minutes (OOM kill ahead)",
        metric: "pod_memory_utilization_over_pod_limit",
        per: &["Namespace", "PodName"],
        fixed: &[],
        statistic: "Maximum",
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 3,
        operator: "GreaterThanOrEqualToThreshold",
        threshold: 90.0,
        treat_missing_data: "notBreaching",
    },
    Spec {
        what: "container-restarts",
        description: "Containers of a pod restarted in the last 5 minutes",
        metric: "pod_number_of_container_restarts",
        per: &["Namespace", "PodName"],
        fixed: &[],
        statistic: "Sum",
        period: 300,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        operator: "GreaterThanThreshold",
        threshold: 0.0,
        treat_missing_data: "notBreaching",
    },
    Spec {
        what: "failed-nodes",
        description: "At least one node of the cluster failed for 3 minutes",
        metric: "cluster_failed_node_count",
        per: &[],
        fixed: &[],
        statistic: "Maximum",
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 3,
        operator: "GreaterThanThreshold",
        threshold: 0.0,
        treat_missing_data: "missing",
    },
    Spec {
        what: "pod-crash-looping",
        description: "A container of a pod is in CrashLoopBackOff in 2 of the last 3 minutes (enhanced metrics)",
        metric: "pod_container_status_waiting_reason_crash_loop_back_off",
        per: &["Namespace", "PodName"],
        fixed: &[],
        statistic: "Maximum",
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        operator: "GreaterThanOrEqualToThreshold",
        threshold: 1.0,
        treat_missing_data: "notBreaching",
    },
    Spec {
        what: "oom-kills",
        description: "A container of the namespace was OOM-killed in the last 5 minutes (its ContainerRestart event has its last log lines and memory)",
        metric: restart::keys::RESTART_COUNT,
        per: &["Namespace"],
        fixed: &[(restart::keys::REASON, "OOMKilled")],
        // One sample per restart: their count is the number of OOM kills.
        statistic: "SampleCount",
        period: 300,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        operator: "GreaterThanOrEqualToThreshold",
        threshold: 1.0,
        treat_missing_data: "notBreaching",
    },
];

/// The pack's alarms for one cluster.
pub fn kubernetes_pack(opts: &PackOptions) -> Vec<AlarmConfig> {
    SPECS
        .iter()
        .map(|s| {
            let mut dimensions = vec![Dimension {
                name: "ClusterName".into(),
                value: opts.cluster.clone(),
            }];
            dimensions.extend(s.per.iter().map(|d| Dimension {
                name: d.to_string(),
                value: WILDCARD.into(),
            }));
            dimensions.extend(s.fixed.iter().map(|(d, v)| Dimension {
                name: d.to_string(),
                value: v.to_string(),
            }));
            AlarmConfig {
                alarm_name: format!("{}{}-{}", opts.prefix, opts.cluster, s.what),
                alarm_description: Some(format!("{} (kinsight Kubernetes pack)", s.description)),
                namespace: NAMESPACE.into(),
                metric_name: s.metric.into(),
                dimensions,
                statistic: Some(s.statistic.into()),
                period: s.period,
                evaluation_periods: s.evaluation_periods,
                datapoints_to_alarm: Some(s.datapoints_to_alarm),
                threshold: s.threshold,
                comparison_operator: s.operator.into(),
                treat_missing_data: Some(s.treat_missing_data.into()),
                alarm_actions: opts.alarm_actions.clone(),
                ok_actions: opts.ok_actions.clone(),
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Alarm;
    use kinsight_model::catalogue::{ENHANCED, STANDARD, restart};

    #[test]
    fn every_pack_alarm_is_valid_and_uses_a_published_metric_and_dimension_set() {
        let pack = kubernetes_pack(&PackOptions::new("prod"));
        assert_eq!(pack.len(), 7);
        for c in pack {
            let alarm = Alarm::try_from(c.clone()).unwrap();
            // The dimension names must be a set the agent publishes for this metric
            // (reference §2.4), or the alarm would never see data.
            let mut names: Vec<&str> = c.dimensions.iter().map(|d| d.name.as_str()).collect();
            names.sort_unstable();
            let published = STANDARD
                .iter()
                .chain(ENHANCED)
                .chain(restart::DECLARATIONS)
                .any(|decl| {
                    decl.metrics.contains(&c.metric_name.as_str())
                        && decl.dimensions.iter().any(|set| {
                            let mut s: Vec<&str> = set.to_vec();
                            s.sort_unstable();
                            s == names
                        })
                });
            assert!(published, "{} on {:?}", c.metric_name, names);
            assert!(c.alarm_name.starts_with("kinsight-prod-"));
            assert_eq!(alarm.is_multi_series(), c.dimensions.len() > 1);
        }
    }
}
