//! ControlPlane events from the API server's `/metrics` (issue 18). No API server can run on a
//! test machine, so the test server serves tests/fixtures/kube/apiserver-metrics-{1,2}.txt:
//! two scrapes of a kube-apiserver 1.30 a minute apart, modelled on real output — the
//! families, HELP and TYPE lines, label names and bucket bounds client_golang writes — with
//! numbers of our own (buckets, sums and counts consistent with one another and growing from
//! the first scrape to the second). Families outside the reference's allow-list are there too
//! (`apiserver_request_sli_duration_seconds`, `etcd_requests_total`, `go_goroutines`, …), and
//! must be ignored.

use super::fake_kube::FakeKube;
use super::fixtures::{docs, kube};
use kinsight_agent::apiserver::ApiServer;
use kinsight_agent::perf::control_plane::wanted;
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs, PerfEvent};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

const LEADER: &str = "ip-10-0-1-23.ec2.internal";
const TS: i64 = 1_764_300_060_000;

fn collector(enhanced: bool) -> (Collector, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = CollectorSettings {
        cluster_name: "prod-eks".into(),
        node_name: LEADER.into(),
        enhanced,
        prefer_full_pod_name: enhanced,
        disable_metric_extraction: false,
    };
    (Collector::new(settings, dir.path()), dir)
}

fn control_plane(events: Vec<PerfEvent>) -> Vec<Map<String, Value>> {
    docs(events)
        .into_iter()
        .filter(|e| e["Type"] == "ControlPlane")
        .collect()
}

fn without_directive(events: &[Map<String, Value>]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.shift_remove("CloudWatchMetrics");
            Value::Object(e)
        })
        .collect()
}

/// The ControlPlane event expected for one label set.
fn cp(labels: &[(&str, &str)], fields: Value) -> Value {
    let mut e = json!({
        "Type": "ControlPlane", "Version": "0", "Timestamp": TS.to_string(),
        "Sources": ["apiserver"], "ClusterName": "prod-eks", "NodeName": LEADER,
    });
    for (k, v) in labels {
        e[*k] = json!(v);
    }
    for (k, v) in fields.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// A histogram's statistic set: observations and their sum since the previous scrape.
fn stats(count: u64, sum: f64) -> Value {
    json!({"Count": count, "Sum": sum})
}

const PRIORITY_LEVELS: [(&str, u64); 8] = [
    ("catch-all", 13),
    ("exempt", 0),
    ("global-default", 49),
    ("leader-election", 25),
    ("node-high", 98),
    ("system", 74),
    ("workload-high", 98),
    ("workload-low", 245),
];

fn api(resource: &str, group: &str, scope: &str, verb: &str) -> Vec<(&'static str, String)> {
    let mut l = vec![("component", "apiserver".to_string())];
    if !group.is_empty() {
        l.push(("group", group.to_string()));
    }
    l.extend([
        ("resource", resource.to_string()),
        ("scope", scope.to_string()),
        ("verb", verb.to_string()),
        ("version", "v1".to_string()),
    ]);
    l
}

fn cp_owned(labels: &[(&'static str, String)], fields: Value) -> Value {
    let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cp(&l, fields)
}

fn with_code(code: &str, l: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut l = l;
    l.insert(0, ("code", code.to_string()));
    l
}

/// The gauges, as the first scrape reads them (the second differs where it says).
fn gauges(second: bool) -> Vec<Value> {
    let pick = |a: u64, b: u64| if second { b } else { a };
    let mut out = vec![
        cp(
            &[("request_kind", "mutating")],
            json!({"apiserver_current_inflight_requests": pick(1, 0), "apiserver_current_inqueue_requests": 0}),
        ),
        cp(
            &[("request_kind", "readOnly")],
            json!({"apiserver_current_inflight_requests": pick(3, 2), "apiserver_current_inqueue_requests": pick(1, 0)}),
        ),
    ];
    if second {
        out.push(cp(
            &[
                ("flow_schema", "service-accounts"),
                ("priority_level", "workload-low"),
                ("reason", "time-out"),
            ],
            json!({"apiserver_flowcontrol_rejected_requests_total": 2}),
        ));
    }
    for (level, seats) in PRIORITY_LEVELS {
        out.push(cp(
            &[("priority_level", level)],
            json!({"apiserver_flowcontrol_request_concurrency_limit": seats}),
        ));
    }
    for (group, resource, n) in [
        ("apps", "deployments", 3),
        ("", "nodes", 6),
        ("", "pods", pick(14, 15)),
    ] {
        let mut l = vec![("component", "apiserver")];
        if !group.is_empty() {
            l.push(("group", group));
        }
        l.extend([
            ("resource", resource),
            ("scope", "cluster"),
            ("verb", "WATCH"),
            ("version", "v1"),
        ]);
        out.push(cp(&l, json!({"apiserver_longrunning_requests": n})));
    }
    out
}

fn first_scrape_events() -> Vec<Value> {
    let mut out = gauges(false);
    out.push(cp(
        &[
            ("group", "flowcontrol.apiserver.k8s.io"),
            ("removed_release", "1.32"),
            ("resource", "flowschemas"),
            ("version", "v1beta3"),
        ],
        json!({"apiserver_requested_deprecated_apis": 1}),
    ));
    for (resource, n) in [
        ("deployments.apps", 12),
        ("events", 241),
        ("leases.coordination.k8s.io", 9),
        ("nodes", 3),
        ("pods", 38),
    ] {
        out.push(cp(
            &[("resource", resource)],
            json!({"apiserver_storage_objects": n}),
        ));
    }
    out.push(cp(
        &[("storage_cluster_id", "etcd-0")],
        json!({"apiserver_storage_size_bytes": 23_101_440}),
    ));
    out
}

/// Everything the second scrape gives, in the fixture's order (families sorted by name, as
/// client_golang writes them): gauges as read, counters' increases, histograms' observations
/// since the first scrape. Series new in the second scrape (LIST deployments
/// answered 503, and its duration) give nothing yet; histograms with no new observation
/// (POST leases, rest client POSTs, LISTs of events from storage) give nothing.
fn second_scrape_events() -> Vec<Value> {
    let adm = |name: &str, ty: &str| {
        let mut l = vec![];
        if !name.is_empty() {
            l.push(("name", name.to_string()));
        }
        l.push(("kubernetes_type", ty.to_string()));
        l.extend([
            ("operation", "CREATE".to_string()),
            ("rejected", "false".to_string()),
        ]);
        l.sort();
        l
    };
    let mut out = vec![
        cp_owned(
            &adm("NamespaceLifecycle", "validate"),
            json!({"apiserver_admission_controller_admission_duration_seconds": stats(18, 0.0359 - 0.0351)}),
        ),
        cp_owned(
            &adm("PodSecurity", "validate"),
            json!({"apiserver_admission_controller_admission_duration_seconds": stats(3, 0.0214 - 0.0203)}),
        ),
        cp_owned(
            &adm("", "admit"),
            json!({"apiserver_admission_step_admission_duration_seconds": stats(18, 0.5125 - 0.5003)}),
        ),
        cp_owned(
            &adm("", "validate"),
            json!({"apiserver_admission_step_admission_duration_seconds": stats(18, 0.0625 - 0.0611)}),
        ),
        cp_owned(
            &adm("mpod.vpc.k8s.aws", "admit"),
            json!({"apiserver_admission_webhook_admission_duration_seconds": stats(3, 0.2432 - 0.2318)}),
        ),
    ];
    out.extend(gauges(true));
    let dur = "apiserver_request_duration_seconds";
    out.extend([
        cp_owned(
            &api("leases", "coordination.k8s.io", "resource", "PUT"),
            json!({dur: stats(24, 169.0154 - 168.9273)}),
        ),
        cp_owned(
            &api("pods", "", "namespace", "LIST"),
            json!({dur: stats(21, 38.934 - 38.172)}),
        ),
        cp_owned(
            &api("pods", "", "resource", "GET"),
            json!({dur: stats(108, 21.6928 - 21.4478)}),
        ),
    ]);
    let total = "apiserver_request_total";
    out.extend([
        cp_owned(
            &with_code(
                "201",
                api("leases", "coordination.k8s.io", "resource", "POST"),
            ),
            json!({total: 0}),
        ),
        cp_owned(
            &with_code(
                "200",
                api("leases", "coordination.k8s.io", "resource", "PUT"),
            ),
            json!({total: 24}),
        ),
        cp_owned(
            &with_code("200", api("pods", "", "namespace", "LIST")),
            json!({total: 18}),
        ),
        cp_owned(
            &with_code("500", api("pods", "", "namespace", "LIST")),
            json!({total: 3, "apiserver_request_total_5xx": 3}),
        ),
        cp_owned(
            &with_code("200", api("pods", "", "resource", "GET")),
            json!({total: 108}),
        ),
    ]);
    out.push(cp(
        &[
            ("group", "flowcontrol.apiserver.k8s.io"),
            ("removed_release", "1.32"),
            ("resource", "flowschemas"),
            ("version", "v1beta3"),
        ],
        json!({"apiserver_requested_deprecated_apis": 1}),
    ));
    // Storage: LIST durations and object counts share the `resource` label set, so pods have
    // one event with both; events had no LIST in the interval, only their count.
    out.push(cp(
        &[("resource", "pods")],
        json!({"apiserver_storage_list_duration_seconds": stats(21, 12.3015 - 12.1176), "apiserver_storage_objects": 39}),
    ));
    for (resource, n) in [
        ("deployments.apps", 12),
        ("events", 246),
        ("leases.coordination.k8s.io", 9),
        ("nodes", 3),
    ] {
        out.push(cp(
            &[("resource", resource)],
            json!({"apiserver_storage_objects": n}),
        ));
    }
    out.push(cp(
        &[("storage_cluster_id", "etcd-0")],
        json!({"apiserver_storage_size_bytes": 23_105_536}),
    ));
    let etcd = "etcd_request_duration_seconds";
    for (ty, op, s) in [
        ("events", "create", stats(5, 1.6313 - 1.6128)),
        ("pods", "get", stats(35, 3.9104 - 3.8722)),
        ("pods", "listWithCount", stats(3, 1.7625 - 1.7501)),
        (
            "leases.coordination.k8s.io",
            "update",
            stats(24, 101.8819 - 101.8301),
        ),
    ] {
        out.push(cp(
            &[("kubernetes_type", ty), ("operation", op)],
            json!({etcd: s}),
        ));
    }
    let rest = "rest_client_request_duration_seconds";
    out.extend([
        cp(
            &[("host", "[::1]:443"), ("verb", "GET")],
            json!({rest: stats(118, 40.5811 - 40.3927)}),
        ),
        cp(
            &[("host", "[::1]:443"), ("verb", "PUT")],
            json!({rest: stats(8, 5.0716 - 5.0488)}),
        ),
    ]);
    for (code, method, n) in [("200", "GET", 118), ("200", "PUT", 8), ("201", "POST", 0)] {
        out.push(cp(
            &[("code", code), ("host", "[::1]:443"), ("method", method)],
            json!({"rest_client_requests_total": n}),
        ));
    }
    out
}

async fn scrape(api: &ApiServer) -> Vec<kinsight_agent::prometheus::Sample> {
    api.metrics(wanted).await.unwrap()
}

fn collect(c: &mut Collector, samples: &[kinsight_agent::prometheus::Sample]) -> Vec<PerfEvent> {
    c.collect(
        0,
        TS,
        &Inputs {
            control_plane: Some(samples),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn two_scrapes_give_the_reference_control_plane_events() {
    let fake = FakeKube::start(String::new()).await;
    let api = ApiServer::connect(&fake.url, None, None).unwrap();
    let (mut c, _dir) = collector(true);

    let first = scrape(&api).await;
    assert!(
        first.iter().all(|s| !s.name.ends_with("_bucket")),
        "buckets are not read"
    );
    let evs = control_plane(collect(&mut c, &first));
    assert_eq!(
        without_directive(&evs),
        first_scrape_events(),
        "the first scrape gives gauges only: counters and histograms need a previous scrape"
    );

    fake.state.lock().unwrap().apiserver_metrics = kube("apiserver-metrics-2.txt", &[]);
    let finished = collect(&mut c, &scrape(&api).await);
    let evs = control_plane(finished.clone());
    let got = without_directive(&evs);
    let want = second_scrape_events();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "event {i}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    // Fields in the order the exporter writes them: envelope, labels (sorted), metrics.
    let keys: Vec<&str> = evs[0].keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Type",
            "Version",
            "Timestamp",
            "Sources",
            "ClusterName",
            "NodeName",
            "kubernetes_type",
            "name",
            "operation",
            "rejected",
            "apiserver_admission_controller_admission_duration_seconds",
            "CloudWatchMetrics"
        ]
    );

    // The EMF directives: the reference's dimension sets where the event has their keys,
    // units forced by name, metrics sharing sets in one element.
    let directive = |pred: &dyn Fn(&Map<String, Value>) -> bool| -> Value {
        let e: Vec<_> = evs.iter().filter(|e| pred(e)).collect();
        assert_eq!(e.len(), 1);
        e[0]["CloudWatchMetrics"].clone()
    };
    assert_eq!(
        directive(&|e| e.get("code") == Some(&json!("500"))),
        json!([{"Namespace": "ContainerInsights", "Dimensions": [["ClusterName", "code", "verb"], ["ClusterName"]],
                "Metrics": [{"Name": "apiserver_request_total", "Unit": "Count"}, {"Name": "apiserver_request_total_5xx", "Unit": "Count"}]}])
    );
    assert_eq!(
        directive(&|e| e.get("resource") == Some(&json!("pods")) && e.len() == 10),
        json!([{"Namespace": "ContainerInsights", "Dimensions": [["ClusterName", "resource"], ["ClusterName"]],
                "Metrics": [{"Name": "apiserver_storage_list_duration_seconds", "Unit": "Seconds"}, {"Name": "apiserver_storage_objects", "Unit": "Count"}]}])
    );
    assert_eq!(
        directive(&|e| e.contains_key("storage_cluster_id")),
        json!([{"Namespace": "ContainerInsights", "Dimensions": [["ClusterName"]],
                "Metrics": [{"Name": "apiserver_storage_size_bytes", "Unit": "Bytes"}]}]),
        "no `endpoint` label on 1.30's storage size: only the cluster-wide set applies"
    );
    assert_eq!(
        directive(&|e| e.get("kubernetes_type") == Some(&json!("pods"))
            && e.get("operation") == Some(&json!("get"))),
        json!([{"Namespace": "ContainerInsights", "Dimensions": [["ClusterName", "operation"], ["ClusterName"]],
                "Metrics": [{"Name": "etcd_request_duration_seconds", "Unit": "Seconds"}]}])
    );

    // What the metric store gets from a histogram: the interval's average latency.
    let list = evs
        .iter()
        .find(|e| {
            e.get("verb") == Some(&json!("LIST"))
                && e.contains_key("apiserver_request_duration_seconds")
        })
        .unwrap();
    let points = kinsight_model::emf::extract(list, 0).unwrap().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(
        points[0].dimensions.get("verb").map(String::as_str),
        Some("LIST")
    );
    assert_eq!(points[0].values, vec![(38.934 - 38.172) / 21.0]);
    assert_eq!(points[0].unit.as_deref(), Some("Seconds"));
    assert_eq!(points[0].timestamp_ms, TS);

    // Cluster-scoped: into the leader's stream.
    let logs = kinsight_agent::perf::to_log_events(&finished, "/kinsight/prod-eks/performance", 0);
    assert!(logs.iter().all(|e| e.log_stream_name == LEADER));

    // A third scrape lower than the second (the API server restarted, or the Service sent the
    // scrape to another API server): counters and histograms count from zero again.
    fake.state.lock().unwrap().apiserver_metrics = kube("apiserver-metrics-1.txt", &[]);
    let evs = control_plane(collect(&mut c, &scrape(&api).await));
    let list_200 = evs
        .iter()
        .find(|e| e.get("code") == Some(&json!("200")) && e.get("verb") == Some(&json!("LIST")))
        .unwrap();
    assert_eq!(list_200["apiserver_request_total"], 1523);
    let list = evs
        .iter()
        .find(|e| {
            e.get("verb") == Some(&json!("LIST"))
                && e.contains_key("apiserver_request_duration_seconds")
        })
        .unwrap();
    assert_eq!(
        list["apiserver_request_duration_seconds"],
        stats(1525, 38.172)
    );
}

/// API servers before 1.28 report the storage size by etcd `endpoint` (etcd_db_total_size_in_bytes
/// up to 1.22, apiserver_storage_db_total_size_in_bytes from 1.23, both hidden by 1.30): the
/// per-endpoint dimension set applies to them. (Lines modelled on those versions' output.)
#[test]
fn older_api_servers_storage_size_by_endpoint() {
    let text = "# HELP etcd_db_total_size_in_bytes [ALPHA] Total size of the etcd database file physically allocated in bytes.\n\
        # TYPE etcd_db_total_size_in_bytes gauge\n\
        etcd_db_total_size_in_bytes{endpoint=\"https://10.0.1.5:2379\"} 1.0354688e+07\n\
        # HELP apiserver_storage_db_total_size_in_bytes [ALPHA] Total size of the storage database file physically allocated in bytes.\n\
        # TYPE apiserver_storage_db_total_size_in_bytes gauge\n\
        apiserver_storage_db_total_size_in_bytes{endpoint=\"https://10.0.1.5:2379\"} 1.0354688e+07\n";
    let samples = kinsight_agent::prometheus::parse_text(text, wanted).unwrap();
    let (mut c, _dir) = collector(false);
    let evs = control_plane(collect(&mut c, &samples));
    assert_eq!(
        without_directive(&evs),
        vec![cp(
            &[("endpoint", "https://10.0.1.5:2379")],
            json!({"etcd_db_total_size_in_bytes": 10_354_688, "apiserver_storage_db_total_size_in_bytes": 10_354_688})
        )]
    );
    assert_eq!(
        evs[0]["CloudWatchMetrics"],
        json!([{"Namespace": "ContainerInsights", "Dimensions": [["ClusterName", "endpoint"], ["ClusterName"]],
                "Metrics": [{"Name": "etcd_db_total_size_in_bytes", "Unit": "Bytes"}, {"Name": "apiserver_storage_db_total_size_in_bytes", "Unit": "Bytes"}]}]),
        "declared in standard mode too"
    );
}

fn config(url: &str, node: &str, k8s: &str) -> AgentConfig {
    let node = node.to_string();
    AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "prod-eks"{k8s}}}}}}},
                "kinsight": {{"kubelet_url": "{url}", "api_server_url": "{url}"}}}}"#
        ),
        &move |k| (k == "HOST_NAME").then(|| node.clone()),
    )
    .unwrap()
}

async fn until_leader(loops: &[&MetricsLoop]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loops.iter().any(|l| l.is_leader()) {
        assert!(Instant::now() < deadline, "nobody became leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn types(events: &[PerfEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.fields["Type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn only_the_leader_scrapes_and_emits_them() {
    let fake = FakeKube::start(kube(
        "pods.json",
        &[("NODE", "node-a"), ("API_APP_RESTARTS", "0")],
    ))
    .await;
    let enhanced = r#", "enhanced_container_insights": true"#;
    let mut a = MetricsLoop::new(&config(&fake.url, "node-a", enhanced));
    let mut b = MetricsLoop::new(&config(&fake.url, "node-b", enhanced));
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    a.spawn_leader_election(shutdown.clone());
    until_leader(&[&a]).await;
    b.spawn_leader_election(shutdown);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.is_leader() && !b.is_leader());

    for _ in 0..2 {
        let (_, evs_b) = b.tick().await;
        assert!(
            !types(&evs_b)
                .iter()
                .any(|t| t == "ControlPlane" || t == "Cluster")
        );
    }
    assert_eq!(
        fake.state.lock().unwrap().apiserver_metrics_requests,
        0,
        "an agent that is not the leader never asks"
    );
    let (_, first) = a.tick().await;
    fake.state.lock().unwrap().apiserver_metrics = kube("apiserver-metrics-2.txt", &[]);
    let (logs, second) = a.tick().await;
    assert_eq!(fake.state.lock().unwrap().apiserver_metrics_requests, 2);
    let count = |evs: &[PerfEvent]| types(evs).iter().filter(|t| *t == "ControlPlane").count();
    assert_eq!(count(&first), first_scrape_events().len());
    assert_eq!(count(&second), second_scrape_events().len());
    let second = control_plane(second);
    let list_500 = second
        .iter()
        .find(|e| e.get("code") == Some(&json!("500")))
        .unwrap();
    assert_eq!(
        (
            list_500["apiserver_request_total"].clone(),
            list_500["NodeName"].clone()
        ),
        (json!(3), json!("node-a"))
    );
    assert!(second.iter().all(|e| e.contains_key("CloudWatchMetrics")));
    assert!(
        logs.iter()
            .filter(|e| e.message.contains("\"Type\":\"ControlPlane\""))
            .all(|e| e.log_stream_name == "node-a")
    );
}

#[tokio::test]
async fn off_in_standard_mode_unless_asked_for() {
    for (k8s, on) in [
        ("", false),
        (
            r#", "enhanced_container_insights": true, "enable_control_plane_metrics": false"#,
            false,
        ),
        (r#", "enable_control_plane_metrics": true"#, true),
    ] {
        let fake = FakeKube::start(String::new()).await;
        let mut l = MetricsLoop::new(&config(&fake.url, "node-a", k8s));
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        l.spawn_leader_election(shutdown);
        until_leader(&[&l]).await;
        l.tick().await;
        fake.state.lock().unwrap().apiserver_metrics = kube("apiserver-metrics-2.txt", &[]);
        let (_, evs) = l.tick().await;
        assert!(
            types(&evs).iter().any(|t| t == "Cluster"),
            "{k8s}: the leader still works"
        );
        let cp = control_plane(evs);
        assert_eq!(!cp.is_empty(), on, "{k8s}");
        assert_eq!(
            fake.state.lock().unwrap().apiserver_metrics_requests,
            if on { 2 } else { 0 },
            "{k8s}"
        );
        if on {
            // Standard mode with the flag: the events carry the control-plane directives.
            assert_eq!(cp.len(), second_scrape_events().len());
            assert!(cp.iter().all(|e| e.contains_key("CloudWatchMetrics")));
        }
    }
}

/// A `tracing` writer into a buffer the test reads.
#[tokio::test]
async fn a_failed_scrape_is_logged_skipped_and_retried() {
    // The process-wide log (see `crate::accelerator::captured_log`).
    let log = crate::accelerator::captured_log();

    let fake = FakeKube::start(kube(
        "pods.json",
        &[("NODE", "node-a"), ("API_APP_RESTARTS", "0")],
    ))
    .await;
    let mut l = MetricsLoop::new(&config(
        &fake.url,
        "node-a",
        r#", "enhanced_container_insights": true"#,
    ));
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    l.spawn_leader_election(shutdown);
    until_leader(&[&l]).await;
    let (_, first) = l.tick().await;
    assert!(!control_plane(first).is_empty());

    // The ClusterRole lacks /metrics: the API server answers 403.
    fake.state.lock().unwrap().apiserver_metrics_status = 403;
    let (_, failed) = l.tick().await;
    let t = types(&failed);
    assert!(!t.iter().any(|t| t == "ControlPlane"));
    for other in ["Node", "Cluster", "ClusterNamespace", "ClusterService"] {
        assert!(
            t.iter().any(|t| t == other),
            "{other} still collected: {t:?}"
        );
    }
    let text = log.text();
    assert!(
        text.contains(r#"cannot get path \"/metrics\""#)
            || text.contains(r#"cannot get path "/metrics""#),
        "{text}"
    );
    assert!(
        text.contains(r#"needs nonResourceURLs ["/metrics"], verb get"#),
        "{text}"
    );
    assert!(
        text.contains("control-plane metrics (skipped this interval)"),
        "{text}"
    );

    // Next interval: asked again; the increase covers both intervals (nothing lost).
    {
        let mut s = fake.state.lock().unwrap();
        s.apiserver_metrics_status = 200;
        s.apiserver_metrics = kube("apiserver-metrics-2.txt", &[]);
    }
    let (_, again) = l.tick().await;
    assert_eq!(fake.state.lock().unwrap().apiserver_metrics_requests, 3);
    let again = control_plane(again);
    assert_eq!(again.len(), second_scrape_events().len());
    let get = again
        .iter()
        .find(|e| e.get("code") == Some(&json!("200")) && e.get("verb") == Some(&json!("GET")))
        .unwrap();
    assert_eq!(get["apiserver_request_total"], 108);
    assert!(log.text().contains("apiserver-metrics: collecting again"));
}
