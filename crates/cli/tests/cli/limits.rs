//! Issue 15, items 10 and 12, against a real `kinsight server` process: the caps set by flags
//! and environment variables reject events per event and create calls with `LimitExceeded`,
//! the metric series cap drops new series, `/v1/admin/stats` shows how close each cap is, the
//! caps hold across a SIGKILL restart with nothing accepted lost; the webhook allow-list flag
//! lets its range through and nothing else.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{ServerProc, TOKEN, api};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    api(method, url, TOKEN, body).await
}

fn event(group: &str, stream: &str, message: String) -> Value {
    json!({"logGroupName": group, "logStreamName": stream, "timestamp": now_ms(), "message": message})
}

/// An EMF event for series `App/m{K=k}`.
fn emf(k: usize) -> String {
    json!({"_aws": {"Timestamp": now_ms(), "CloudWatchMetrics": [{"Namespace": "App",
        "Dimensions": [["K"]], "Metrics": [{"Name": "m"}]}]}, "K": format!("k{k}"), "m": 1})
    .to_string()
}

const FLAGS: &[&str] = &[
    "--max-streams-per-group",
    "2",
    "--alarm-webhook-allow-cidr",
    "169.254.170.0/24",
];

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("KINSIGHT_MAX_LOG_GROUPS", "1".into()),
        ("KINSIGHT_MAX_METRIC_SERIES", "3".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_and_the_webhook_allow_list_from_flags_and_environment() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProc::start(&data, FLAGS, &env());
    let url = server.url.clone();

    let batch: Vec<Value> = (0..5)
        .map(|k| event("/app", "s1", emf(k)))
        .chain([
            event("/app", "s2", "second stream".into()),
            event("/app", "s3", "a third: past --max-streams-per-group".into()),
            event(
                "/other",
                "x",
                "a second group: past KINSIGHT_MAX_LOG_GROUPS".into(),
            ),
        ])
        .collect();
    let (s, v) = call(Method::POST, format!("{url}/v1/ingest"), Some(json!(batch))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 6);
    assert_eq!(
        v["rejected"],
        json!([{"index": 6, "reason": "tooManyLogStreams"}, {"index": 7, "reason": "tooManyLogGroups"}])
    );
    let (s, v) = call(
        Method::POST,
        format!("{url}/v1/groups"),
        Some(json!({"name": "/new"})),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("LimitExceeded")), "{v}");

    // The metric store sees the batch on its own thread: wait for it, then read the usage.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let (_, v) = call(Method::GET, format!("{url}/v1/admin/stats"), None).await;
        if v["metricSeries"]["count"] == 3 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        stats["metricSeries"],
        json!({"count": 3, "limit": 3, "rejected": 2}),
        "{stats}"
    );
    assert_eq!(stats["cardinality"]["logGroups"]["limit"], 1);
    assert_eq!(stats["cardinality"]["streamsPerGroup"]["count"], 2);

    // Webhooks: the allowed link-local range passes, the metadata address does not.
    let alarm = |name: &str, action: &str| {
        json!({"AlarmName": name, "Namespace": "App", "MetricName": "m",
               "Dimensions": [{"Name": "K", "Value": "k0"}], "Statistic": "Sum", "Period": 60,
               "EvaluationPeriods": 1, "Threshold": 5, "ComparisonOperator": "GreaterThanThreshold",
               "AlarmActions": [action]})
    };
    let (s, v) = call(
        Method::PUT,
        format!("{url}/v1/alarms"),
        Some(alarm("sidecar", "http://169.254.170.2/hook")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        Method::PUT,
        format!("{url}/v1/alarms"),
        Some(alarm("imds", "http://169.254.169.254/latest/meta-data/")),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("InvalidParameter")),
        "{v}"
    );

    // SIGKILL: the accepted events are all there after the restart, and the caps hold.
    server.kill9();
    let server = ServerProc::start(&data, FLAGS, &env());
    let url = server.url.clone();
    let (_, v) = call(
        Method::GET,
        format!("{url}/v1/events?group=/app&limit=100"),
        None,
    )
    .await;
    assert_eq!(v["events"].as_array().map(Vec::len), Some(6), "{v}");
    let (_, v) = call(
        Method::POST,
        format!("{url}/v1/ingest"),
        Some(json!([
            event("/third", "x", "no".into()),
            event("/app", "s1", "yes".into())
        ])),
    )
    .await;
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["rejected"][0]["reason"], "tooManyLogGroups");
    drop(server);

    // A malformed allow-list entry stops the server with a message naming the flag.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--alarm-webhook-allow-cidr", "metadata"])
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--alarm-webhook-allow-cidr") && err.contains("CIDR"),
        "{err}"
    );
}
