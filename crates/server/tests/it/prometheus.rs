//! The Prometheus HTTP API (issue 17) through the router: EMF events ingested with
//! `POST /v1/ingest` become Prometheus series (`/api/v1/series`, `/labels`,
//! `/label/<name>/values`, `/metadata`), answered in Prometheus's envelope with its status
//! codes; parameter errors name the parameter; the native bearer token guards it.

use axum::Router;
use axum::http::StatusCode;
use kinsight_metrics::MetricStoreConfig;
use kinsight_model::catalogue::directives_for;
use kinsight_server::api::metrics::MetricsEngine;
use kinsight_server::{AppState, Auth, router};
use kinsight_store::{Store, StoreConfig};
use serde_json::{Value, json};

use crate::support::*;

const MIN: i64 = 60_000;

/// A server with a metric store fed by its ingest path.
async fn prom_app() -> MetricsApp {
    metrics_app(MetricStoreConfig::default()).await
}

fn node_event(ts: i64, node: &str, instance: &str, cpu: f64, mem: f64) -> Value {
    let mut ev = json!({
        "Type": "Node", "Version": "0", "Timestamp": ts.to_string(),
        "ClusterName": "prod", "NodeName": node, "InstanceId": instance,
        "node_cpu_utilization": cpu, "node_memory_utilization": mem,
    });
    ev["CloudWatchMetrics"] =
        serde_json::to_value(directives_for(ev.as_object().unwrap(), false)).unwrap();
    json!({"logGroupName": "/kinsight/prod/performance", "logStreamName": node,
           "timestamp": ts, "message": ev.to_string()})
}

fn emf_event(ts: i64, namespace: &str, dim: &str, dim_value: &str, metric: Value) -> Value {
    let name = metric["Name"].as_str().unwrap().to_string();
    let value = metric["Value"].clone();
    let mut directive = metric.clone();
    directive.as_object_mut().unwrap().remove("Value");
    let mut ev = json!({
        "_aws": {"Timestamp": ts, "CloudWatchMetrics": [
            {"Namespace": namespace, "Dimensions": [[dim]], "Metrics": [directive]}
        ]},
    });
    ev[dim] = json!(dim_value);
    ev[name] = value;
    json!({"logGroupName": "/app/metrics", "logStreamName": "s",
           "timestamp": ts, "message": ev.to_string()})
}

/// Two minutes of two nodes (A every 10 s from `t0` with CPU 10 + k, B 5 s later with CPU
/// 20 + 2k; memory 50 and 60), a counter `requests` in namespace `App` rising by 10 every
/// 10 s under a dimension whose name Prometheus cannot take, and `up` in the `Prometheus`
/// namespace — one batch, so the metric store applies it at once.
async fn ingest(app: &Router, t0: i64) {
    let mut events = Vec::new();
    for k in 0..12i64 {
        let t = t0 + k * 10_000;
        events.push(node_event(t, "ip-10-0-1-5", "i-a", 10.0 + k as f64, 50.0));
        events.push(node_event(
            t + 5_000,
            "ip-10-0-1-6",
            "i-b",
            20.0 + 2.0 * k as f64,
            60.0,
        ));
        events.push(emf_event(
            t,
            "App",
            "k8s.pod-name",
            "api-0",
            json!({"Name": "requests", "Unit": "Count", "Value": 10 * k}),
        ));
    }
    events.push(emf_event(
        t0,
        "Prometheus",
        "job",
        "api",
        json!({"Name": "up", "Value": 1}),
    ));
    events.sort_by_key(|e| e["timestamp"].as_i64());
    let (s, v) = call("POST", "/v1/ingest")
        .json(&Value::Array(events))
        .send(app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 37, "{v}");
    // The metric store's observer applies the batch right after the answer, on its own
    // thread; wait for it (the batch is applied in one step).
    for _ in 0..400 {
        let (s, v) = get(app, "/api/v1/series?match[]=up").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["data"].as_array().is_some_and(|a| !a.is_empty()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the metric store never saw the batch");
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    call("GET", uri).send(app).await
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Unix seconds as the API takes them.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn assert_error(s: StatusCode, v: &Value, status: StatusCode, kind: &str, needle: &str) {
    assert_eq!(s, status, "{v}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], kind, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains(needle),
        "{needle:?} not in {v}"
    );
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_labels_values_metadata_and_buildinfo_answer_like_prometheus() {
    let p = prom_app().await;
    let app = &p.app;
    let t0 = (now_ms() / MIN) * MIN - 20 * MIN;
    ingest(app, t0).await;

    let node = |name: &str, instance: &str| {
        json!({"ClusterName": "prod", "InstanceId": instance, "NodeName": name,
               "__name__": "node_cpu_utilization", "cloudwatch_namespace": "ContainerInsights"})
    };
    let (s, v) = get(app, "/api/v1/series?match[]=node_cpu_utilization").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "data": [
            node("ip-10-0-1-5", "i-a"),
            node("ip-10-0-1-6", "i-b"),
            {"ClusterName": "prod", "__name__": "node_cpu_utilization",
             "cloudwatch_namespace": "ContainerInsights"},
        ]})
    );
    // POST with a form body, as Grafana sends; several match[] are a union.
    let body = format!(
        "match[]={}&match[]=up&start={}&end={}",
        enc(r#"{cloudwatch_namespace="App"}"#),
        secs(t0),
        secs(t0 + 10 * MIN)
    );
    let (s, v) = call("POST", "/api/v1/series")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(body)
        .send(app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!([
            {"__name__": "requests", "cloudwatch_namespace": "App", "k8s_pod_name": "api-0"},
            {"__name__": "up", "job": "api"},
        ])
    );
    // A time range without samples; regular expressions; a limit.
    let (s, v) = get(
        app,
        &format!(
            "/api/v1/series?match[]=up&start={}&end={}",
            secs(t0 - 10 * MIN),
            secs(t0 - 1)
        ),
    )
    .await;
    assert_eq!((s, &v["data"]), (StatusCode::OK, &json!([])), "{v}");
    let (s, v) = get(
        app,
        &format!(
            "/api/v1/series?match[]={}&limit=1",
            enc(r#"{NodeName=~"ip-10-0-1-.*",__name__="node_memory_utilization"}"#)
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!([{"ClusterName": "prod", "InstanceId": "i-a", "NodeName": "ip-10-0-1-5",
                "__name__": "node_memory_utilization", "cloudwatch_namespace": "ContainerInsights"}])
    );
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));

    let (s, v) = get(app, "/api/v1/labels").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "data": ["ClusterName", "InstanceId", "NodeName", "__name__",
            "cloudwatch_namespace", "job", "k8s_pod_name"]})
    );
    let (_, v) = get(app, "/api/v1/labels?match[]=up").await;
    assert_eq!(v["data"], json!(["__name__", "job"]));
    let (s, v) = get(app, "/api/v1/label/ClusterName/values").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"status": "success", "data": ["prod"]})
        )
    );
    let (_, v) = get(app, "/api/v1/label/__name__/values").await;
    assert_eq!(
        v["data"],
        json!([
            "node_cpu_utilization",
            "node_memory_utilization",
            "requests",
            "up"
        ])
    );
    let (_, v) = get(
        app,
        &format!(
            "/api/v1/label/NodeName/values?match[]=node_memory_utilization&start={}&end={}",
            secs(t0),
            secs(t0 + 5_000)
        ),
    )
    .await;
    assert_eq!(v["data"], json!(["ip-10-0-1-5", "ip-10-0-1-6"]));
    let (_, v) = get(app, "/api/v1/label/NodeName/values?match[]=up").await;
    assert_eq!(v["data"], json!([]));

    let (s, v) = get(app, "/api/v1/metadata").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let gauge = |unit: &str| json!([{"type": "gauge", "help": "", "unit": unit}]);
    assert_eq!(
        v,
        json!({"status": "success", "data": {
            "node_cpu_utilization": gauge("Percent"),
            "node_memory_utilization": gauge("Percent"),
            "requests": gauge("Count"),
            "up": [{"type": "unknown", "help": "", "unit": ""}],
        }})
    );
    let (_, v) = get(app, "/api/v1/metadata?metric=requests").await;
    assert_eq!(v["data"], json!({"requests": gauge("Count")}));
    let (_, v) = get(app, "/api/v1/metadata?limit=1").await;
    assert_eq!(v["data"], json!({"node_cpu_utilization": gauge("Percent")}));

    let (s, v) = get(app, "/api/v1/status/buildinfo").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"status": "success", "data": {"version": env!("CARGO_PKG_VERSION"),
                "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""}})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_unknown_endpoints_and_missing_tokens() {
    let p = prom_app().await;
    let app = &p.app;
    let bad = StatusCode::BAD_REQUEST;

    let (s, v) = get(app, "/api/v1/series").await;
    assert_error(s, &v, bad, "bad_data", "no match[] parameter provided");
    let (s, v) = get(app, &format!("/api/v1/series?match[]={}", enc("sum(up)"))).await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "match[]""#);
    let (s, v) = get(app, &format!("/api/v1/labels?match[]={}", enc("{}"))).await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "match[]""#);
    let (s, v) = get(app, "/api/v1/series?match[]=up&start=yesterday").await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        r#"invalid parameter "start": cannot parse "yesterday" to a valid timestamp"#,
    );
    let (s, v) = get(app, "/api/v1/labels?start=20&end=10").await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        r#"invalid parameter "end": end timestamp must not be before start time"#,
    );
    let (s, v) = get(app, "/api/v1/labels?limit=x").await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "limit""#);
    let (s, v) = get(app, "/api/v1/label/not-a-label/values").await;
    assert_error(s, &v, bad, "bad_data", "invalid label name");

    let (s, v) = get(app, "/api/v1/query?query=up&time=noon").await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        r#"invalid parameter "time": cannot parse "noon" to a valid timestamp"#,
    );
    let (s, v) = get(app, "/api/v1/query?query=up&timeout=soon").await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "timeout""#);
    let (s, v) = get(app, "/api/v1/query_range?query=up&end=10&step=1").await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "start""#);
    let (s, v) = get(app, "/api/v1/query_range?query=up&start=10&end=5&step=1").await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "end""#);
    let (s, v) = get(app, "/api/v1/query_range?query=up&start=0&end=10&step=fast").await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        r#"invalid parameter "step": cannot parse "fast" to a valid duration"#,
    );
    let (s, v) = get(app, "/api/v1/query_range?query=up&start=0&end=10&step=0").await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        r#"invalid parameter "step": zero or negative query resolution step widths are not accepted"#,
    );
    // 11,000 points per series pass the check; one more does not.
    let (s, v) = get(
        app,
        "/api/v1/query_range?query=up&start=0&end=11001&step=1s",
    )
    .await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries",
    );
    let (s, v) = call("POST", "/api/v1/query_range")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw("query=up&start=0&end=1100.1&step=0.1")
        .send(app)
        .await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries",
    );

    let (s, v) = get(app, "/api/v1/nope").await;
    assert_error(
        s,
        &v,
        StatusCode::NOT_FOUND,
        "not_found",
        "no endpoint GET /api/v1/nope",
    );
    let (s, v) = call("PUT", "/api/v1/query").send(app).await;
    assert_error(s, &v, StatusCode::METHOD_NOT_ALLOWED, "bad_data", "PUT");
    // Authentication is the native API's: 401 in kinsight's shape.
    let (s, v) = call("GET", "/api/v1/labels").token(None).send(app).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Unauthenticated")),
        "{v}"
    );
    let (s, v) = call("GET", "/api/v1/query?query=up")
        .token(Some("wrong-token-0123456789"))
        .send(app)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // A server without a metric store.
    let plain = app_without_metrics().await;
    let (s, v) = get(&plain.app, "/api/v1/labels").await;
    assert_error(
        s,
        &v,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "metric store",
    );
}

async fn app_without_metrics() -> TestApp {
    app().await
}

/// A numeric JSON timestamp as Prometheus prints it.
fn ts(ms: i64) -> Value {
    serde_json::from_str(secs(ms).trim_end_matches(".000")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_and_range_queries_compute_from_the_ingested_samples() {
    let p = prom_app().await;
    let app = &p.app;
    let t0 = (now_ms() / MIN) * MIN - 20 * MIN;
    ingest(app, t0).await;
    let node_a = json!({"ClusterName": "prod", "InstanceId": "i-a", "NodeName": "ip-10-0-1-5",
        "__name__": "node_cpu_utilization", "cloudwatch_namespace": "ContainerInsights"});
    let query = |q: &str, t: i64| format!("/api/v1/query?query={}&time={}", enc(q), secs(t));

    // The latest sample within the lookback: node A's last (t0+110 s, CPU 10 + 11).
    let (s, v) = get(
        app,
        &query(
            r#"node_cpu_utilization{NodeName="ip-10-0-1-5"}"#,
            t0 + 120_000,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": node_a, "value": [ts(t0 + 120_000), "21"]}
        ]}})
    );
    // Milliseconds travel both ways: at t0+55.5 s node A's latest is t0+50 s (CPU 15).
    let (_, v) = get(
        app,
        &query(
            r#"node_cpu_utilization{NodeName="ip-10-0-1-5"}"#,
            t0 + 55_500,
        ),
    )
    .await;
    assert_eq!(
        v["data"]["result"][0]["value"],
        json!([ts(t0 + 55_500), "15"])
    );
    // Per node 21 (A at t0+110 s) and 42 (B at t0+115 s, 20 + 2·11); the cluster-level
    // series (both nodes' samples) is left out by NodeName!="".
    let (_, v) = get(
        app,
        &query(
            r#"sum by (ClusterName) (node_cpu_utilization{NodeName!=""})"#,
            t0 + 120_000,
        ),
    )
    .await;
    assert_eq!(
        v["data"],
        json!({"resultType": "vector", "result": [
            {"metric": {"ClusterName": "prod"}, "value": [ts(t0 + 120_000), "63"]}
        ]})
    );
    // The cluster-level series interleaves both nodes: its latest sample is node B's.
    let (_, v) = get(
        app,
        &query(
            r#"node_cpu_utilization{NodeName="",ClusterName="prod"}"#,
            t0 + 120_000,
        ),
    )
    .await;
    assert_eq!(v["data"]["result"][0]["value"][1], "42", "{v}");
    // `requests` rises by 10 every 10 s: [t0+50 s, t0+110 s] holds 50…110, rate 1/s.
    let (_, v) = get(app, &query("rate(requests[1m])", t0 + 110_000)).await;
    assert_eq!(
        v["data"],
        json!({"resultType": "vector", "result": [
            {"metric": {"cloudwatch_namespace": "App", "k8s_pod_name": "api-0"},
             "value": [ts(t0 + 110_000), "1"]}
        ]})
    );
    // A range selector: the raw samples with their own timestamps, [t0+100 s, t0+110 s].
    let (_, v) = get(app, &query("requests[10s]", t0 + 110_000)).await;
    assert_eq!(
        v["data"],
        json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "requests", "cloudwatch_namespace": "App",
                        "k8s_pod_name": "api-0"},
             "values": [[ts(t0 + 100_000), "100"], [ts(t0 + 110_000), "110"]]}
        ]})
    );
    let (_, v) = get(app, &query("1 + 1", t0)).await;
    assert_eq!(
        v["data"],
        json!({"resultType": "scalar", "result": [ts(t0), "2"]})
    );
    let (_, v) = get(app, &query(r#""hello""#, t0)).await;
    assert_eq!(
        v["data"],
        json!({"resultType": "string", "result": [ts(t0), "hello"]})
    );

    // Range queries, GET and POST.
    let (s, v) = get(
        app,
        &format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=30s",
            enc(r#"node_cpu_utilization{NodeName="ip-10-0-1-5"}"#),
            secs(t0),
            secs(t0 + 60_000)
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": node_a, "values": [
                [ts(t0), "10"], [ts(t0 + 30_000), "13"], [ts(t0 + 60_000), "16"]
            ]}
        ]}})
    );
    let (s, v) = call("POST", "/api/v1/query_range")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(format!(
            "query={}&start={}&end={}&step=50",
            enc("sum(rate(requests[1m]))"),
            secs(t0 + 60_000),
            secs(t0 + 110_000)
        ))
        .send(app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!({"resultType": "matrix", "result": [
            {"metric": {}, "values": [[ts(t0 + 60_000), "1"], [ts(t0 + 110_000), "1"]]}
        ]})
    );

    // Errors: the engine's parse errors are bad data about `query`, evaluation errors
    // are 422 `execution`.
    let (s, v) = get(app, &query("sum(", t0)).await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "query""#,
    );
    let (s, v) = get(app, "/api/v1/query").await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "query""#,
    );
    let (s, v) = get(
        app,
        &format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=10",
            enc("requests[1m]"),
            secs(t0),
            secs(t0 + 60_000)
        ),
    )
    .await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid expression type",
    );
    let (s, v) = get(
        app,
        &query(
            "node_cpu_utilization + on(ClusterName) node_memory_utilization",
            t0 + 120_000,
        ),
    )
    .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        "many-to-many matching not allowed",
    );
}

async fn post(app: &Router, path: &str, body: String) -> (StatusCode, Value) {
    call("POST", path)
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(body)
        .send(app)
        .await
}

/// Queries and selectors built to crash the server (deep nesting overflowing a worker's
/// stack, durations the parser panics on) are refused with 400 `bad_data`; the server still
/// answers afterwards. They are sent as POST bodies of more than 64 KiB, which are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_and_selectors_are_refused() {
    let p = prom_app().await;
    let app = &p.app;
    let bad = StatusCode::BAD_REQUEST;
    let deep = format!("{}1{}", "(".repeat(30_000), ")".repeat(30_000));
    let chain = format!("1{}", "+1".repeat(30_000));
    let deep_selector = format!("{}up{}", "(".repeat(30_000), ")".repeat(30_000));
    for q in [&deep, &chain] {
        let body = format!("query={}&time=100", enc(q));
        assert!(body.len() > 65_535);
        let (s, v) = post(app, "/api/v1/query", body).await;
        assert_error(s, &v, bad, "bad_data", "too");
        let body = format!("query={}&start=0&end=100&step=10", enc(q));
        let (s, v) = post(app, "/api/v1/query_range", body).await;
        assert_error(s, &v, bad, "bad_data", "too");
    }
    for path in ["/api/v1/series", "/api/v1/labels"] {
        let (s, v) = post(app, path, format!("match[]={}", enc(&deep_selector))).await;
        assert_error(s, &v, bad, "bad_data", "too deeply nested");
    }
    let uri = format!(
        "/api/v1/label/job/values?match[]={}",
        enc(&"(".repeat(5_000))
    );
    let (s, v) = get(app, &uri).await;
    assert_error(s, &v, bad, "bad_data", "too deeply nested");
    for q in ["up[1e30]", "up[NaN]", "up offset 1e20", "rate(up[1e+30])"] {
        let (s, v) = get(app, &format!("/api/v1/query?query={}&time=100", enc(q))).await;
        assert_error(s, &v, bad, "bad_data", "out of range");
    }
    // A long POST body is parsed whole: a query padded with a 100 KB comment.
    let body = format!(
        "query={}&time=100",
        enc(&format!("1+1 # {}\n", "x".repeat(100_000)))
    );
    let (s, v) = post(app, "/api/v1/query", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"][1], "2");
    let (s, v) = get(app, "/api/v1/query?query=1%2B1&time=100").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"][1], "2");
}

/// Times whose arithmetic would overflow are refused with 400 naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_query_times_are_refused() {
    let p = prom_app().await;
    let app = &p.app;
    let bad = StatusCode::BAD_REQUEST;
    let (s, v) = get(
        app,
        "/api/v1/query_range?query=up&start=-9e15&end=9e15&step=1",
    )
    .await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "start""#);
    let uri = format!(
        "/api/v1/query?query={}&time=-9223372036854774",
        enc("max_over_time(vector(1)[1h:])")
    );
    let (s, v) = get(app, &uri).await;
    assert_error(
        s,
        &v,
        bad,
        "bad_data",
        r#"invalid parameter "time": time out of range"#,
    );
    let (s, v) = get(app, "/api/v1/query_range?query=up&start=0&end=9e15&step=1").await;
    assert_error(s, &v, bad, "bad_data", r#"invalid parameter "end""#);
    let (s, v) = get(
        app,
        "/api/v1/query_range?query=up&start=-2e15&end=2e15&step=1",
    )
    .await;
    assert_error(s, &v, bad, "bad_data", "exceeded maximum resolution");
}

/// A query's answer is rendered within the request memory budget: with no room for it the
/// client gets 503 instead of the server building it regardless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_answers_are_rendered_within_the_request_budget() {
    let dir = tempfile::tempdir().unwrap();
    let engine = MetricsEngine::open(dir.path(), MetricStoreConfig::default()).unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.background = false;
    let store = Store::open(cfg, vec![engine.observer()]).await.unwrap();
    let mut state = AppState::new(store, Auth::open(ADMIN, dir.path()).unwrap());
    state.metrics = Some(engine.metrics.clone());
    state.budgets = kinsight_server::budget::Budgets::new(512 << 10);
    state.budgets.wait = std::time::Duration::from_millis(100);
    let budget = state.budgets.requests.clone();
    let app = router(state);
    // Another request holds the whole budget: no room to render even a small answer.
    let held = budget.try_reserve(512 << 10).unwrap();
    for uri in [
        "/api/v1/query?query=vector(1)&time=100",
        "/api/v1/query_range?query=vector(1)&start=0&end=999&step=1",
    ] {
        let (s, v) = get(&app, uri).await;
        assert_error(
            s,
            &v,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "memory budget",
        );
    }
    drop(held);
    let (s, v) = get(
        &app,
        "/api/v1/query_range?query=vector(1)&start=0&end=999&step=1",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        1000
    );
    assert_eq!(budget.used_bytes(), 0);
}
