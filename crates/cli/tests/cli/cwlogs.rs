//! The CloudWatch Logs endpoint of a real `kinsight server` under hostile filter patterns
//! (issue 15, item 3): a pattern nested far deeper than any parser's stack used to abort the
//! server; now it is a 400 `InvalidParameterException` and the server keeps answering.

use serde_json::{Value, json};

use crate::server::ServerProc;

/// Sends one CloudWatch Logs action, unsigned (the server runs without a token, on loopback).
async fn cw(url: &str, action: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Logs_20140328.{action}"))
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{action}: the server did not answer: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn healthz(url: &str) -> u16 {
    reqwest::get(format!("{url}/healthz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("/healthz did not answer: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_filter_pattern_is_refused_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    // No token: loopback only, unsigned CloudWatch calls are the admin's.
    let server = ServerProc::start(
        &dir.path().join("data"),
        &[],
        &[("KINSIGHT_TOKEN", String::new())],
    );
    let url = server.url.clone();
    let group = json!({"logGroupName": "/hostile/patterns"});
    assert_eq!(cw(&url, "CreateLogGroup", &group).await.0, 200);

    // 200,000 nested parentheses: ~400 KB of pattern, far past any stack.
    let deep = format!(
        "{{ {}$.a = 1{} }}",
        "(".repeat(200_000),
        ")".repeat(200_000)
    );
    let (status, body) = cw(
        &url,
        "FilterLogEvents",
        &json!({"logGroupName": "/hostile/patterns", "filterPattern": deep}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "InvalidParameterException", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the maximum is 1024"),
        "{}",
        &message[..message.len().min(300)]
    );

    // Within the length limit, nesting is capped on its own.
    let nested = format!("{{ {}$.a = 1{} }}", "(".repeat(100), ")".repeat(100));
    let (status, body) = cw(
        &url,
        "FilterLogEvents",
        &json!({"logGroupName": "/hostile/patterns", "filterPattern": nested}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested too deeply")),
        "{body}"
    );

    // Still serving: health, and the same call with a sane pattern.
    assert_eq!(healthz(&url).await, 200);
    let (status, body) = cw(
        &url,
        "FilterLogEvents",
        &json!({"logGroupName": "/hostile/patterns", "filterPattern": "{ (($.a = 1)) }"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], json!([]));
}
