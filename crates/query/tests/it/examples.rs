//! The example queries of reference §5.6 with equivalent SQL for DuckDB (views `perf`,
//! `app`, `dp` over the same Parquet data). Shared by the differential test, the golden
//! files and the benchmark (`benches/queries.rs` includes this file).

#![allow(dead_code)]

use crate::data::{APPLICATION, DATAPLANE, PERFORMANCE};

pub struct Case {
    pub group: &'static str,
    pub insights: &'static str,
    pub sql: &'static str,
    /// Rows are compared as multisets; for a sorting query, also the sequence of this
    /// column (the sort key; ties may come in any order).
    pub order_key: Option<usize>,
}

pub const fn case(
    group: &'static str,
    insights: &'static str,
    sql: &'static str,
    order_key: Option<usize>,
) -> Case {
    Case {
        group,
        insights,
        sql,
        order_key,
    }
}

/// Reference §5.6, the Logs Insights text verbatim. Timestamps in the SQL are formatted
/// like kinsight's results; bins are computed on integers and formatted after grouping.
/// Queries without a `limit` return at most 1,000 rows (reference §5.3), so their SQL has
/// `LIMIT 1000` where they can return more.
pub const REFERENCE_EXAMPLES: [Case; 12] = [
    // §5.6 example 1
    case(
        PERFORMANCE,
        "stats avg(node_cpu_utilization) as avg_node_cpu_utilization by NodeName | sort avg_node_cpu_utilization desc",
        r#"SELECT NodeName, avg(node_cpu_utilization) AS a FROM perf GROUP BY NodeName ORDER BY a DESC NULLS LAST"#,
        Some(1),
    ),
    // §5.6 example 2
    case(
        PERFORMANCE,
        "stats avg(number_of_container_restarts) as avg_number_of_container_restarts by PodName | sort avg_number_of_container_restarts desc",
        r#"SELECT PodName, avg(number_of_container_restarts) AS a FROM perf GROUP BY PodName"#,
        None,
    ),
    // §5.6 example 3
    case(
        PERFORMANCE,
        r#"fields @timestamp, @message | sort @timestamp desc | filter Type="Pod" | stats min(pod_number_of_containers) as requested, min(pod_number_of_running_containers) as running, ceil(avg(pod_number_of_containers-pod_number_of_running_containers)) as pods_missing by kubernetes.pod_name | sort pods_missing desc"#,
        r#"SELECT "kubernetes.pod_name", min(pod_number_of_containers), min(pod_number_of_running_containers),
                  ceil(avg(pod_number_of_containers - pod_number_of_running_containers)) AS m
           FROM perf WHERE Type = 'Pod' GROUP BY 1 ORDER BY m DESC LIMIT 1000"#,
        None,
    ),
    // §5.6 example 4
    case(
        PERFORMANCE,
        r#"stats avg(cluster_failed_node_count) as CountOfNodeFailures | filter Type="Cluster" | sort @timestamp desc"#,
        r#"SELECT avg(cluster_failed_node_count) FROM perf WHERE Type = 'Cluster'"#,
        Some(0),
    ),
    // §5.6 example 5 (application group)
    case(
        APPLICATION,
        r#"stats count() as countoferrors by kubernetes.container_name | filter stream="stderr" | sort countoferrors desc"#,
        r#"SELECT "kubernetes.container_name", count(*) AS n FROM app WHERE stream = 'stderr' GROUP BY 1 ORDER BY n DESC"#,
        Some(1),
    ),
    // §5.6 example 6
    case(
        PERFORMANCE,
        r#"stats floor(avg(container_filesystem_usage/1024)) as container_filesystem_usage_avg_kb by InstanceId, kubernetes.container_name, device | filter Type="ContainerFS" | sort container_filesystem_usage_avg_kb desc"#,
        r#"SELECT InstanceId, "kubernetes.container_name", device, floor(avg(container_filesystem_usage / 1024)) AS kb
           FROM perf WHERE Type = 'ContainerFS' GROUP BY 1, 2, 3"#,
        None,
    ),
    // §5.6 example 7: pct is the nearest-rank percentile, which for p50 is DuckDB's
    // quantile_disc (index floor((n - 1) / 2) = ceil(n / 2) - 1).
    case(
        PERFORMANCE,
        r#"stats pct(container_cpu_usage_total, 50) as CPUPercMedian by kubernetes.container_name | filter Type="Container""#,
        r#"SELECT "kubernetes.container_name", quantile_disc(container_cpu_usage_total, 0.5)
           FROM perf WHERE Type = 'Container' GROUP BY 1"#,
        None,
    ),
    // §5.6 example 8
    case(
        PERFORMANCE,
        r#"filter Type="Node" | stats max(node_memory_utilization) as mem by bin(5m), NodeName"#,
        r#"SELECT strftime(make_timestamp(b * 1000), '%Y-%m-%d %H:%M:%S.%g'), NodeName, m FROM
             (SELECT (epoch_ms("@timestamp") // 300000) * 300000 AS b, NodeName, max(node_memory_utilization) AS m
              FROM perf WHERE Type = 'Node' GROUP BY 1, 2 LIMIT 1000)"#,
        None,
    ),
    // §5.6 example 9
    case(
        PERFORMANCE,
        r#"filter Type="Pod" and ispresent(pod_cpu_utilization_over_pod_limit) | stats max(pod_cpu_utilization_over_pod_limit) as peak by Namespace, PodName | sort peak desc | limit 20"#,
        r#"SELECT Namespace, PodName, max(pod_cpu_utilization_over_pod_limit) AS peak FROM perf
           WHERE Type = 'Pod' AND pod_cpu_utilization_over_pod_limit IS NOT NULL
           GROUP BY 1, 2 ORDER BY peak DESC LIMIT 20"#,
        Some(2),
    ),
    // §5.6 example 10
    case(
        PERFORMANCE,
        r#"filter Type="Pod" and pod_container_status_waiting_reason_crash_loop_back_off > 0 | stats latest(pod_container_status_waiting_reason_crash_loop_back_off) as crashing by Namespace, PodName"#,
        r#"SELECT Namespace, PodName, arg_max(pod_container_status_waiting_reason_crash_loop_back_off, "@timestamp") FROM perf
           WHERE Type = 'Pod' AND pod_container_status_waiting_reason_crash_loop_back_off > 0 GROUP BY 1, 2"#,
        None,
    ),
    // §5.6 example 11 (application group)
    case(
        APPLICATION,
        r#"fields @timestamp, kubernetes.pod_name, log | filter kubernetes.namespace_name = "prod" and log like /(?i)error/ | sort @timestamp desc | limit 50"#,
        r#"SELECT "@timestamp", "kubernetes.pod_name", log FROM app
           WHERE "kubernetes.namespace_name" = 'prod' AND regexp_matches(log, '(?i)error')
           ORDER BY "@timestamp" DESC LIMIT 50"#,
        Some(0),
    ),
    // §5.6 example 12 (dataplane group)
    case(
        DATAPLANE,
        r#"filter systemd_unit = "kubelet.service" and message like /^E\d{4}/ | stats count() as errors by hostname, bin(10m)"#,
        r#"SELECT hostname, strftime(make_timestamp(b * 1000), '%Y-%m-%d %H:%M:%S.%g'), n FROM
             (SELECT hostname, (epoch_ms("@timestamp") // 600000) * 600000 AS b, count(*) AS n
              FROM dp WHERE systemd_unit = 'kubelet.service' AND regexp_matches(message, '^E\d{4}') GROUP BY 1, 2 LIMIT 1000)"#,
        None,
    ),
];
