//! Metrics and alarms through the real server (issue #6), on a real socket: EMF performance
//! events written through `POST /v1/ingest` become metrics (`/v1/metrics/query`), cross an
//! alarm's threshold → ALARM → a real local HTTP receiver gets the webhook; the server is
//! stopped and started again on the same data directory (the WAL replays into the metric
//! store) and nothing changes — same numbers, same state, no second page; the metric comes
//! back → OK, delivered to a Slack-style receiver.
//!
//! Alarm time is a manual clock set near the wall clock (ingest checks event ages); the
//! evaluator and notifier tasks and every HTTP exchange are real.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kinsight_alarms::{AlarmServiceConfig, ManualClock};
use kinsight_metrics::MetricStoreConfig;
use kinsight_model::catalogue::directives_for;
use kinsight_server::api::metrics::{EngineTasks, MetricsEngine};
use kinsight_server::{Server, ServerConfig};
use kinsight_store::StoreConfig;

use crate::support::{Inbox, receiver};
use serde_json::{Value, json};

const TOKEN: &str = "metrics-alarms-token-0123";
const MIN: i64 = 60_000;

/// The bodies the receiver got at `/<path>`.
fn received(inbox: &Inbox, path: &str) -> Vec<Value> {
    crate::support::received(inbox, path)
        .into_iter()
        .map(|h| h.body)
        .collect()
}

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    tasks: EngineTasks,
}

async fn start(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Running {
    let engine = MetricsEngine::open(dir, MetricStoreConfig::default()).unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig::new(dir),
        admin_token: Some(TOKEN.into()),
        transport: Default::default(),
        limits: Default::default(),
        query: Default::default(),
    };
    let mut server = Server::bind(config, vec![engine.observer()]).await.unwrap();
    let tasks = engine
        .attach(
            &mut server.state,
            AlarmServiceConfig {
                poll_ms: 20,
                ..Default::default()
            },
            clock.clone(),
        )
        .unwrap();
    let addr = server.addr;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        server
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        stop,
        served,
        tasks,
    }
}

impl Running {
    async fn stop(self) {
        self.tasks.abort();
        let _ = self.stop.send(());
        self.served.await.unwrap();
        // Aborted tasks are dropped when the runtime gets to them: wait, so that nothing
        // still holds the store when the test restarts on the same directory.
        let EngineTasks {
            alarms,
            maintenance,
        } = self.tasks;
        if let Some(alarms) = alarms {
            let _ = alarms.evaluator.await;
            let _ = alarms.notifier.await;
        }
        let _ = maintenance.await;
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn state(&self) -> String {
        let (s, v) = self
            .call(reqwest::Method::GET, "/v1/alarm?name=node-cpu", None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["StateValue"].as_str().unwrap().to_string()
    }

    async fn wait_state(&self, want: &str) {
        for _ in 0..400 {
            if self.state().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("alarm never reached {want}");
    }

    /// One minute of Node events (every 10 s) with CPU `cpu`, through the ingest API.
    async fn ingest_minute(&self, t: i64, cpu: f64) {
        let events: Vec<Value> = (0..6)
            .map(|s| {
                let ts = t + s * 10_000;
                let mut ev = json!({
                    "Type": "Node", "Version": "0", "Timestamp": ts.to_string(),
                    "ClusterName": "prod", "NodeName": "ip-10-0-1-5", "InstanceId": "i-0abc",
                    "node_cpu_utilization": cpu, "node_memory_utilization": 40.0,
                });
                ev["CloudWatchMetrics"] =
                    serde_json::to_value(directives_for(ev.as_object().unwrap(), false)).unwrap();
                json!({"logGroupName": "/kinsight/prod/performance", "logStreamName": "ip-10-0-1-5",
                       "timestamp": ts, "message": ev.to_string()})
            })
            .collect();
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/v1/ingest",
                Some(Value::Array(events)),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    /// The ingest answer comes once events are durable; the metric store's observer applies
    /// them right after, on its own thread. Wait for that before moving alarm time, as the
    /// evaluator's 10-s lag does in production.
    async fn wait_samples(&self, from: i64, to: i64, want: f64) {
        for _ in 0..400 {
            let (_, v) = self
                .call(
                    reqwest::Method::POST,
                    "/v1/metrics/query",
                    Some(json!({"Namespace": "ContainerInsights", "MetricName": "node_cpu_utilization",
                        "Dimensions": [{"Name": "ClusterName", "Value": "prod"}], "Statistic": "SampleCount",
                        "Period": 3600, "StartTime": from, "EndTime": to})),
                )
                .await;
            let got: f64 = v["Series"][0]["Values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).sum())
                .unwrap_or(0.0);
            if got >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the metric store never saw {want} samples");
    }

    async fn averages(&self, from: i64, to: i64) -> Vec<Value> {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/v1/metrics/query",
                Some(json!({"Namespace": "ContainerInsights", "MetricName": "node_cpu_utilization",
                    "Dimensions": [{"Name": "ClusterName", "Value": "prod"}], "Statistic": "Average",
                    "Period": 60, "StartTime": from, "EndTime": to})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["Series"][0]["Values"].as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_through_the_api_to_alarm_webhook_restart_and_back_to_ok() {
    let (hooks, inbox) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    // Twenty minutes ago, on a minute boundary: events stay well within the accepted ages.
    let t0 = (chrono::Utc::now().timestamp_millis() / MIN) * MIN - 20 * MIN;
    let clock = Arc::new(ManualClock::new(t0));
    let srv = start(dir.path(), &clock).await;

    let (s, v) = srv
        .call(
            reqwest::Method::PUT,
            "/v1/alarms",
            Some(json!({
                "AlarmName": "node-cpu", "Namespace": "ContainerInsights", "MetricName": "node_cpu_utilization",
                "Dimensions": [{"Name": "ClusterName", "Value": "prod"}, {"Name": "InstanceId", "Value": "i-0abc"},
                               {"Name": "NodeName", "Value": "ip-10-0-1-5"}],
                "Statistic": "Average", "Period": 60, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
                "Threshold": 80, "ComparisonOperator": "GreaterThanThreshold",
                "AlarmActions": [format!("{hooks}/pager")], "OKActions": [format!("slack+{hooks}/chat")]
            })),
        )
        .await;
    assert_eq!(
        (s, v["StateValue"].as_str()),
        (200, Some("INSUFFICIENT_DATA")),
        "{v}"
    );
    // Bad input names the member at fault.
    let (s, v) = srv
        .call(
            reqwest::Method::PUT,
            "/v1/alarms",
            Some(
                json!({"AlarmName": "x", "Namespace": "n", "MetricName": "m",
            "Statistic": "Average", "Period": 45, "EvaluationPeriods": 1, "Threshold": 1,
            "ComparisonOperator": "GreaterThanThreshold"}),
            ),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("InvalidParameter")));
    assert!(v["message"].as_str().unwrap().contains("Period"), "{v}");

    for m in 0..3 {
        srv.ingest_minute(t0 + m * MIN, 35.0).await;
    }
    srv.wait_samples(t0, t0 + 3 * MIN, 18.0).await;
    clock.set(t0 + 3 * MIN + 10_000);
    srv.wait_state("OK").await;
    for m in 3..5 {
        srv.ingest_minute(t0 + m * MIN, 95.0).await;
    }
    srv.wait_samples(t0, t0 + 5 * MIN, 30.0).await;
    clock.set(t0 + 5 * MIN + 10_000);
    srv.wait_state("ALARM").await;
    for _ in 0..200 {
        if !received(&inbox, "pager").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pager = received(&inbox, "pager");
    assert_eq!(pager.len(), 1);
    assert_eq!(pager[0]["NewStateValue"], "ALARM");
    assert_eq!(pager[0]["OldStateValue"], "OK");
    let before = srv.averages(t0, t0 + 5 * MIN).await;
    assert_eq!(
        before,
        vec![
            json!(35.0),
            json!(35.0),
            json!(35.0),
            json!(95.0),
            json!(95.0)
        ]
    );

    // Restart on the same data directory.
    srv.stop().await;
    let srv = start(dir.path(), &clock).await;
    assert_eq!(
        srv.averages(t0, t0 + 5 * MIN).await,
        before,
        "replay must not double count"
    );
    assert_eq!(srv.state().await, "ALARM");
    srv.ingest_minute(t0 + 5 * MIN, 97.0).await;
    srv.wait_samples(t0, t0 + 6 * MIN, 36.0).await;
    clock.set(t0 + 6 * MIN + 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.state().await, "ALARM");
    assert_eq!(
        received(&inbox, "pager").len(),
        1,
        "no second page after the restart"
    );

    for m in 6..8 {
        srv.ingest_minute(t0 + m * MIN, 30.0).await;
    }
    srv.wait_samples(t0, t0 + 8 * MIN, 48.0).await;
    clock.set(t0 + 8 * MIN + 10_000);
    srv.wait_state("OK").await;
    for _ in 0..200 {
        if received(&inbox, "chat").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let chat = received(&inbox, "chat");
    assert_eq!(
        chat.len(),
        2,
        "OK on creation's first evaluation, OK after the ALARM"
    );
    assert!(
        chat[1]["text"]
            .as_str()
            .unwrap()
            .contains("*node-cpu* is now *OK* (was ALARM)")
    );

    let (s, v) = srv
        .call(
            reqwest::Method::GET,
            "/v1/alarm/history?name=node-cpu&type=StateUpdate",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let summaries: Vec<&str> = v["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["HistorySummary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from INSUFFICIENT_DATA to OK"
        ]
    );
    let (s, v) = srv
        .call(reqwest::Method::GET, "/v1/alarms?state=OK", None)
        .await;
    assert_eq!(
        (s, v["MetricAlarms"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (s, v) = srv
        .call(
            reqwest::Method::POST,
            "/v1/metrics/list",
            Some(json!({"MetricName": "node_cpu_utilization"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["Metrics"].as_array().unwrap().len(),
        2,
        "{{ClusterName}} and {{ClusterName, InstanceId, NodeName}}"
    );
    let (s, _) = srv
        .call(reqwest::Method::DELETE, "/v1/alarm?name=node-cpu", None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = srv
        .call(reqwest::Method::GET, "/v1/alarm?name=node-cpu", None)
        .await;
    assert_eq!((s, v["code"].as_str()), (404, Some("ResourceNotFound")));
    srv.stop().await;
}

/// A PromQL alarm (kinsight extension) through the real server: EMF events ingested through
/// the API, the expression evaluated by the server's PromQL engine at each period's end,
/// ALARM after two of three breaching minutes, the webhook naming the expression, and
/// DescribeAlarms returning it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_alarm_from_emf_to_webhook() {
    let (hooks, inbox) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let t0 = (chrono::Utc::now().timestamp_millis() / MIN) * MIN - 20 * MIN;
    let clock = Arc::new(ManualClock::new(t0));
    let srv = start(dir.path(), &clock).await;
    let expr = r#"avg(node_cpu_utilization{ClusterName="prod"})"#;

    let (s, v) = srv
        .call(
            reqwest::Method::PUT,
            "/v1/alarms",
            Some(json!({
                "AlarmName": "prod-cpu", "PromQL": expr,
                "Period": 60, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
                "Threshold": 80, "ComparisonOperator": "GreaterThanThreshold",
                "AlarmActions": [format!("{hooks}/pager")]
            })),
        )
        .await;
    assert_eq!(
        (s, v["StateValue"].as_str()),
        (200, Some("INSUFFICIENT_DATA")),
        "{v}"
    );
    assert_eq!(v["PromQL"], expr);
    // Both ways, or an expression that does not parse: 400 naming PromQL.
    for bad in [
        json!({"AlarmName": "x", "PromQL": expr, "Namespace": "ContainerInsights",
               "Period": 60, "EvaluationPeriods": 1, "Threshold": 1,
               "ComparisonOperator": "GreaterThanThreshold"}),
        json!({"AlarmName": "x", "PromQL": "avg(", "Period": 60, "EvaluationPeriods": 1,
               "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold"}),
    ] {
        let (s, v) = srv
            .call(reqwest::Method::PUT, "/v1/alarms", Some(bad))
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("InvalidParameter")),
            "{v}"
        );
        assert!(v["message"].as_str().unwrap().contains("PromQL"), "{v}");
    }

    let state = async |want: &str| {
        for _ in 0..400 {
            let (s, v) = srv
                .call(reqwest::Method::GET, "/v1/alarm?name=prod-cpu", None)
                .await;
            assert_eq!(s, 200, "{v}");
            if v["StateValue"] == want {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the PromQL alarm never reached {want}");
    };
    for m in 0..3 {
        srv.ingest_minute(t0 + m * MIN, 35.0).await;
    }
    srv.wait_samples(t0, t0 + 3 * MIN, 18.0).await;
    clock.set(t0 + 3 * MIN + 10_000);
    state("OK").await;
    for m in 3..5 {
        srv.ingest_minute(t0 + m * MIN, 95.0).await;
    }
    srv.wait_samples(t0, t0 + 5 * MIN, 30.0).await;
    clock.set(t0 + 5 * MIN + 10_000);
    let v = state("ALARM").await;
    assert!(v.get("MetricName").is_none(), "{v}");
    for _ in 0..200 {
        if !received(&inbox, "pager").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pager = received(&inbox, "pager");
    assert_eq!(pager.len(), 1);
    assert_eq!(pager[0]["NewStateValue"], "ALARM");
    assert_eq!(pager[0]["Trigger"]["PromQL"], expr);
    assert!(pager[0]["Trigger"].get("MetricName").is_none());
    let values: Vec<f64> = pager[0]["Values"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["Value"].as_f64())
        .collect();
    // Newest first. An instant query at a period's end sees a sample at exactly that end:
    // the minute t0+2m..t0+3m ends on the first 95 sample (at t0+3m).
    assert_eq!(values, vec![95.0, 95.0, 95.0], "{}", pager[0]);
    assert_eq!(
        pager[0]["Values"][2]["Timestamp"],
        kinsight_alarms::state::iso(t0 + 2 * MIN)
    );

    let (s, v) = srv.call(reqwest::Method::GET, "/v1/alarms", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["MetricAlarms"][0]["PromQL"], expr, "{v}");
    srv.stop().await;
}
