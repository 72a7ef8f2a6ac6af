//! The example queries of reference §5.6 (the 7 from the Container Insights docs exactly as
//! written, and the 5 more), plus AWS's Logs Insights sample queries: all parse and plan, and
//! their pipelines are snapshotted.

use kinsight_ql::{Pipeline, Stage, parse, plan};

/// Reference §5.6, verbatim.
pub const REFERENCE_EXAMPLES: [&str; 12] = [
    "stats avg(node_cpu_utilization) as avg_node_cpu_utilization by NodeName | sort avg_node_cpu_utilization desc",
    "stats avg(number_of_container_restarts) as avg_number_of_container_restarts by PodName | sort avg_number_of_container_restarts desc",
    "fields @timestamp, @message | sort @timestamp desc | filter Type=\"Pod\" | stats min(pod_number_of_containers) as requested, min(pod_number_of_running_containers) as running, ceil(avg(pod_number_of_containers-pod_number_of_running_containers)) as pods_missing by kubernetes.pod_name | sort pods_missing desc",
    "stats avg(cluster_failed_node_count) as CountOfNodeFailures | filter Type=\"Cluster\" | sort @timestamp desc",
    "stats count() as countoferrors by kubernetes.container_name | filter stream=\"stderr\" | sort countoferrors desc",
    "stats floor(avg(container_filesystem_usage/1024)) as container_filesystem_usage_avg_kb by InstanceId, kubernetes.container_name, device | filter Type=\"ContainerFS\" | sort container_filesystem_usage_avg_kb desc",
    "stats pct(container_cpu_usage_total, 50) as CPUPercMedian by kubernetes.container_name | filter Type=\"Container\"",
    "filter Type=\"Node\" | stats max(node_memory_utilization) as mem by bin(5m), NodeName",
    "filter Type=\"Pod\" and ispresent(pod_cpu_utilization_over_pod_limit) | stats max(pod_cpu_utilization_over_pod_limit) as peak by Namespace, PodName | sort peak desc | limit 20",
    "filter Type=\"Pod\" and pod_container_status_waiting_reason_crash_loop_back_off > 0 | stats latest(pod_container_status_waiting_reason_crash_loop_back_off) as crashing by Namespace, PodName",
    "fields @timestamp, kubernetes.pod_name, log | filter kubernetes.namespace_name = \"prod\" and log like /(?i)error/ | sort @timestamp desc | limit 50",
    "filter systemd_unit = \"kubelet.service\" and message like /^E\\d{4}/ | stats count() as errors by hostname, bin(10m)",
];

/// AWS's sample queries (CloudWatch Logs user guide, "Sample Queries"), verbatim.
const AWS_SAMPLES: &[&str] = &[
    "fields @timestamp, @message | sort @timestamp desc | limit 25",
    "filter @message like /Exception/ \n| stats count(*) as exceptionCount by bin(1h)\n| sort exceptionCount desc",
    "fields @message | filter @message not like /Exception/",
    "filter @type = \"REPORT\"\n| stats max(@memorySize / 1024 / 1024) as provisonedMemoryMB,\n    min(@maxMemoryUsed / 1024 / 1024) as smallestMemoryRequestMB,\n    avg(@maxMemoryUsed / 1024 / 1024) as avgMemoryUsedMB,\n    max(@maxMemoryUsed / 1024 / 1024) as maxMemoryUsedMB,\n    provisonedMemoryMB - maxMemoryUsedMB as overProvisionedMB",
    "filter type = \"REPORT\" |\nstats avg(@duration), max(@duration), min(@duration) by bin(5m)",
    "stats sum(packets) as packetsTransferred by srcAddr, dstAddr\n| sort packetsTransferred  desc\n| limit 15",
    "filter srcAddr= \"192.0.2.0/24\"\n| stats sum(bytes) as bytesTransferred by dstAddr\n| sort bytesTransferred  desc\n| limit 15",
    "filter protocol=17 | stats count(*) by srcAddr",
    "filter logStatus=\"SKIPDATA\"\n| stats count(*) by bin(1h) as t\n| sort t",
    "stats count(*) by queryType, bin(1h)",
    "filter (eventName=\"StartInstances\" or eventName=\"StopInstances\") and region=\"us-east-2\"",
    "filter eventName=\"CreateUser\"\n| fields awsRegion, requestParameters.userName, responseElements.user.arn",
    "filter eventName=\"UpdateTrail\" and ispresent(errorCode)\n| stats count(*) by errorCode, errorMessage",
    "parse @message \"user=*, method:*, latency := *\" as @user,\n    @method, @latency | stats avg(@latency) by @method,\n    @user",
    "fields f1, f2, f3 | filter f1 =~ /^(?i)Exception$/",
    "fields `foo-bar`, action, abs(f3-f4)",
    "stats avg (f1) by f2",
];

fn explain(src: &str) -> String {
    let p = plan(src).unwrap_or_else(|e| panic!("{src:?} should plan, got: {e}"));
    format!("{src}\n---\n{p}")
}

#[test]
fn reference_examples_parse_and_plan() {
    for (i, src) in REFERENCE_EXAMPLES.iter().enumerate() {
        insta::assert_snapshot!(format!("reference_example_{:02}", i + 1), explain(src));
    }
}

#[test]
fn aws_sample_queries_parse_and_plan() {
    let all: Vec<String> = AWS_SAMPLES.iter().map(|s| explain(s)).collect();
    insta::assert_snapshot!(all.join("\n========\n"));
}

fn filter_inputs(p: &Pipeline) -> Vec<String> {
    p.input
        .iter()
        .filter_map(|s| match &s.node {
            Stage::Filter(e) => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn official_examples_4_to_7_filter_the_input_events() {
    for (src, filter) in [
        (REFERENCE_EXAMPLES[3], "Type = \"Cluster\""),
        (REFERENCE_EXAMPLES[4], "stream = \"stderr\""),
        (REFERENCE_EXAMPLES[5], "Type = \"ContainerFS\""),
        (REFERENCE_EXAMPLES[6], "Type = \"Container\""),
    ] {
        let p = plan(src).unwrap();
        assert_eq!(filter_inputs(&p), [filter], "{src}");
        assert!(
            p.output.iter().all(|s| !matches!(s.node, Stage::Filter(_))),
            "{src}"
        );
    }
}

#[test]
fn official_example_3_reads_no_message() {
    // `fields @timestamp, @message` and the sort before stats do not shape a stats result,
    // so the wide @message column need not be read.
    let p = plan(REFERENCE_EXAMPLES[2]).unwrap();
    assert!(!p.needs_message());
    assert_eq!(
        p.columns,
        [
            "kubernetes.pod_name",
            "requested",
            "running",
            "pods_missing"
        ]
    );
}

#[test]
fn examples_print_back_to_the_same_tree() {
    for src in REFERENCE_EXAMPLES.iter().chain(AWS_SAMPLES) {
        let q = parse(src).unwrap();
        let again = parse(&q.to_string()).unwrap();
        let nodes = |q: &kinsight_ql::Query| {
            q.commands
                .iter()
                .map(|c| c.node.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(&q), nodes(&again), "{src}");
    }
}
