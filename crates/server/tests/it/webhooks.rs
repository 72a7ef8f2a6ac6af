//! Issue 15, item 10, through the server's API: alarm webhook URLs are secrets — admins see
//! them whole, read-scoped tokens see scheme, host and port only (DescribeAlarms, one alarm,
//! the history) — and a webhook to the cloud metadata address is refused at PutMetricAlarm.

use std::sync::Arc;

use axum::http::StatusCode;
use kinsight_alarms::{AlarmService, AlarmServiceConfig, ManualClock};
use kinsight_server::router;
use serde_json::{Value, json};

use crate::support::*;

fn alarm(actions: Value, ok: Value) -> Value {
    json!({
        "AlarmName": "node-cpu", "Namespace": "ContainerInsights",
        "MetricName": "node_cpu_utilization",
        "Dimensions": [{"Name": "ClusterName", "Value": "prod"}],
        "Statistic": "Average", "Period": 60, "EvaluationPeriods": 3, "Threshold": 80,
        "ComparisonOperator": "GreaterThanThreshold",
        "AlarmActions": actions, "OKActions": ok,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_are_whole_for_admins_only_and_metadata_is_refused() {
    let t = app().await;
    let mut state = t.state.clone();
    state.alarms = Some(
        AlarmService::open(
            t._dir.path().join("alarms"),
            AlarmServiceConfig::default(),
            Arc::new(ManualClock::new(now_ms())),
        )
        .unwrap(),
    );
    let app = router(state);
    let slack = "https://hooks.slack.com/services/T0ABC/B0DEF/SECRETSLACKPATH";
    let pager = "http://10.0.0.5:9000/hook?token=SECRETQUERY";
    let (s, v) = call("PUT", "/v1/alarms")
        .json(&alarm(json!([slack]), json!([pager])))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["AlarmActions"],
        json!([slack]),
        "the admin who put it sees it"
    );
    let (_, rd) = call("POST", "/v1/tokens")
        .json(&json!({"name": "console", "scope": "read"}))
        .send(&app)
        .await;
    let read = rd["token"].as_str().unwrap().to_string();
    // A state change adds a history item besides the configuration one.
    let (s, _) = call("POST", "/v1/alarm/state")
        .json(&json!({"AlarmName": "node-cpu", "StateValue": "OK", "StateReason": "test"}))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK);

    for uri in [
        "/v1/alarms",
        "/v1/alarm?name=node-cpu",
        "/v1/alarm/history?name=node-cpu",
    ] {
        let (s, v) = call("GET", uri).token(Some(&read)).send(&app).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains("SECRET"),
            "{uri} shows a secret to a read token: {text}"
        );
        let (_, admin) = call("GET", uri).send(&app).await;
        assert!(
            admin.to_string().contains("SECRETSLACKPATH"),
            "{uri}: the admin sees the URL whole: {admin}"
        );
    }
    let (_, v) = call("GET", "/v1/alarm?name=node-cpu")
        .token(Some(&read))
        .send(&app)
        .await;
    assert_eq!(
        v["AlarmActions"],
        json!(["https://hooks.slack.com/<redacted>"])
    );
    assert_eq!(v["OKActions"], json!(["http://10.0.0.5:9000/<redacted>"]));

    // The metadata service, in any spelling, is refused with a 400 naming the member.
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/latest/meta-data/iam/",
        "http://2852039166/latest/meta-data/iam/",
    ] {
        let (s, v) = call("PUT", "/v1/alarms")
            .json(&alarm(json!([url]), json!([])))
            .send(&app)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {v}");
        assert_eq!(v["code"], "InvalidParameter");
        let m = v["message"].as_str().unwrap();
        assert!(
            m.contains("AlarmActions") && m.contains("--alarm-webhook-allow-cidr"),
            "{m}"
        );
        assert!(!m.contains("meta-data"), "{m}");
    }
    // The refused alarm did not replace the stored one.
    let (_, v) = call("GET", "/v1/alarm?name=node-cpu").send(&app).await;
    assert_eq!(v["AlarmActions"], json!([slack]));
}
