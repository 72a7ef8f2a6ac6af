//! The CloudWatch-compatible API through the router (`oneshot`): dispatch on X-Amz-Target,
//! SigV4 with scoped keys, AWS-shaped errors, and PutLogEvents' rejections against an
//! injected clock. The same API is tested with real boto3 and aws CLI clients against the
//! real binary in `scripts/tests/cwlogs/`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use kinsight_server::cwlogs::sigv4::{SignedRequest, authorization};
use kinsight_server::cwlogs::{AccessKeys, CONTENT_TYPE};
use kinsight_server::{AppState, Auth, Scope, router};
use kinsight_store::{ManualClock, Store, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::ADMIN;

const NOW: i64 = 1_800_000_000_000;
const INGEST: (&str, &str) = ("AKIAINGESTKEY00001", "ingest-secret-0123456789");
const READ: (&str, &str) = ("AKIAREADKEY0000001", "read-secret-0123456789ab");

struct Cw {
    app: Router,
    _dir: tempfile::TempDir,
}

/// `keys: false` = authentication off (no admin token, no keys): unsigned calls are admin.
async fn cw(keys: bool) -> Cw {
    cw_with(keys, keys).await
}

/// `auth`: an admin token is set (the native API authenticates); `keys`: AWS access keys exist.
async fn cw_with(auth: bool, keys: bool) -> Cw {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.background = false;
    cfg.clock = ManualClock::new(NOW);
    let store = Store::open(cfg, vec![]).await.unwrap();
    let auth = if auth {
        Auth::open(ADMIN, dir.path()).unwrap()
    } else {
        Auth::disabled()
    };
    let mut state = AppState::new(store, auth);
    if keys {
        let mut k = AccessKeys::none();
        k.add(INGEST.0, INGEST.1, Scope::Ingest).unwrap();
        k.add(READ.0, READ.1, Scope::Read).unwrap();
        state.aws_keys = Arc::new(k);
    }
    Cw {
        app: router(state),
        _dir: dir,
    }
}

/// Sends `Logs_20140328.<action>`, signed with `key` when given (as botocore signs).
async fn send(
    app: &Router,
    action: &str,
    body: &Value,
    key: Option<(&str, &str)>,
) -> (StatusCode, HeaderMap, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let h = headers(action, &bytes, key);
    let mut req = Request::builder().method("POST").uri("/");
    *req.headers_mut().unwrap() = h;
    answer(app, req.body(Body::from(bytes)).unwrap()).await
}

async fn answer(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, headers, v)
}

/// The headers botocore sends for `action` with `body`, signed with `key` when given.
fn headers(action: &str, bytes: &[u8], key: Option<(&str, &str)>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    h.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("Logs_20140328.{action}")).unwrap(),
    );
    if let Some((id, secret)) = key {
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        h.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
        let auth = authorization(
            &SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &h,
                body: bytes,
            },
            id,
            secret,
            &amz_date,
            "ap-south-1",
        );
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    }
    h
}

/// Sends a request whose body never arrives (a client that announced 16 MiB and stalls), with
/// the headers of `action` signed over `signed_body`: the answer must come from the headers
/// alone. Before issue 15 item 1 the server waited for the body, and this timed out.
async fn send_stalled(
    app: &Router,
    action: &str,
    signed_body: &[u8],
    key: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut h = headers(action, signed_body, key);
    h.insert("content-length", HeaderValue::from_static("16777216"));
    let mut req = Request::builder().method("POST").uri("/");
    *req.headers_mut().unwrap() = h;
    let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let req = req.body(Body::from_stream(never)).unwrap();
    let (s, _, v) = tokio::time::timeout(std::time::Duration::from_secs(20), answer(app, req))
        .await
        .expect("answered without reading the body");
    (s, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_be_authentic_are_refused_before_their_body() {
    let body = serde_json::to_vec(&json!({"logGroupName": "/g"})).unwrap();
    // Authentication on, no access keys configured: nobody can sign.
    let t = cw_with(true, false).await;
    let (s, v) = send_stalled(&t.app, "CreateLogGroup", &body, Some(INGEST)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["__type"], "UnrecognizedClientException", "{v}");

    let t = cw(true).await;
    // Unsigned.
    let (_, v) = send_stalled(&t.app, "CreateLogGroup", &body, None).await;
    assert_eq!(v["__type"], "MissingAuthenticationTokenException", "{v}");
    // A key id the server does not know.
    let (_, v) = send_stalled(
        &t.app,
        "CreateLogGroup",
        &body,
        Some(("AKIANOSUCHKEY00000", "whatever-secret-0123")),
    )
    .await;
    assert_eq!(v["__type"], "UnrecognizedClientException", "{v}");
    // A known key whose scope does not allow the action.
    let (_, v) = send_stalled(&t.app, "PutLogEvents", &body, Some(READ)).await;
    assert_eq!(v["__type"], "AccessDeniedException", "{v}");
    // A valid key, but a body larger than the protocol allows (announced).
    let (_, v) = send_stalled(&t.app, "CreateLogGroup", &body, Some(INGEST)).await;
    assert_eq!(v["__type"], "InvalidParameterException", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("Upload too large"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_protocol_limit_is_refused_while_it_streams() {
    let t = cw(true).await;
    let limit = t_limits().max_cloudwatch_body_bytes;
    // No Content-Length (chunked): the limit applies as the body arrives.
    let big = vec![b' '; limit + 1];
    let h = headers("CreateLogGroup", &big, Some(INGEST));
    let mut req = Request::builder().method("POST").uri("/");
    *req.headers_mut().unwrap() = h;
    let chunks = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let (s, _, v) = answer(&t.app, req.body(Body::from_stream(chunks)).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["__type"], "InvalidParameterException", "{v}");
    // A request within the limit still works.
    let (s, _, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/g"}),
        Some(INGEST),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn t_limits() -> kinsight_server::state::Limits {
    kinsight_server::state::Limits::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_log_events_reports_rejections_by_index_against_the_clock() {
    let t = cw(false).await;
    let (s, h, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/g"}),
        None,
    )
    .await;
    assert_eq!((s, &v), (StatusCode::OK, &Value::Null));
    assert_eq!(h["content-type"], CONTENT_TYPE);
    assert!(h.contains_key("x-amzn-requestid"));
    send(
        &t.app,
        "CreateLogStream",
        &json!({"logGroupName": "/g", "logStreamName": "s"}),
        None,
    )
    .await;
    let day = 86_400_000;
    let events = json!([
        {"timestamp": NOW - 15 * day, "message": "old"},
        {"timestamp": NOW - 1, "message": "ok"},
        {"timestamp": NOW + 2 * 3_600_000 + 1, "message": "new 1"},
        {"timestamp": NOW + 3 * 3_600_000, "message": "new 2"},
    ]);
    let (s, _, v) = send(
        &t.app,
        "PutLogEvents",
        &json!({"logGroupName": "/g", "logStreamName": "s", "logEvents": events}),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["rejectedLogEventsInfo"],
        json!({"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 2})
    );
    let (_, _, v) = send(
        &t.app,
        "GetLogEvents",
        &json!({"logGroupName": "/g", "logStreamName": "s", "startFromHead": true}),
        None,
    )
    .await;
    let msgs: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["ok"]);
    // The region of an unsigned request's ARNs is the default one.
    let (_, _, v) = send(&t.app, "DescribeLogGroups", &json!({}), None).await;
    assert_eq!(
        v["logGroups"][0]["logGroupArn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:/g"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_scopes_and_aws_shaped_errors() {
    let t = cw(true).await;
    let (s, h, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/g"}),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["__type"], "MissingAuthenticationTokenException");
    assert_eq!(h["x-amzn-errortype"], "MissingAuthenticationTokenException");

    let (s, _, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/g"}),
        Some(INGEST),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, _, v) = send(&t.app, "DescribeLogGroups", &json!({}), Some(INGEST)).await;
    assert_eq!(
        v["logGroups"][0]["arn"], "arn:aws:logs:ap-south-1:000000000000:log-group:/g:*",
        "ARNs carry the region the request was signed for"
    );
    let (_, _, v) = send(
        &t.app,
        "DeleteLogGroup",
        &json!({"logGroupName": "/g"}),
        Some(INGEST),
    )
    .await;
    assert_eq!(v["__type"], "AccessDeniedException");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("logs:DeleteLogGroup")
    );
    let (_, _, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/h"}),
        Some(READ),
    )
    .await;
    assert_eq!(v["__type"], "AccessDeniedException");
    let (_, _, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/h"}),
        Some((INGEST.0, READ.1)),
    )
    .await;
    assert_eq!(v["__type"], "InvalidSignatureException");
    let (_, _, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/h"}),
        Some(("AKIANOSUCHKEY00001", INGEST.1)),
    )
    .await;
    assert_eq!(v["__type"], "UnrecognizedClientException");

    let (_, _, v) = send(
        &t.app,
        "CreateLogGroup",
        &json!({"logGroupName": "/g"}),
        Some(INGEST),
    )
    .await;
    assert_eq!(v["__type"], "ResourceAlreadyExistsException");
    let (_, _, v) = send(&t.app, "CreateLogGroup", &json!({"nope": 1}), Some(INGEST)).await;
    assert_eq!(v["__type"], "InvalidParameterException");
    assert!(v["message"].as_str().unwrap().contains("logGroupName"));
    let (_, _, v) = send(
        &t.app,
        "DescribeLogStreams",
        &json!({"logGroupName": "/g", "limit": 51}),
        Some(READ),
    )
    .await;
    assert_eq!(v["__type"], "InvalidParameterException");
    let (_, _, v) = send(&t.app, "PutSubscriptionFilter", &json!({}), Some(INGEST)).await;
    assert_eq!(v["__type"], "UnknownOperationException");
    let (_, _, v) = send(
        &t.app,
        "StartQuery",
        &json!({"logGroupName": "/g", "startTime": 0, "endTime": 10, "queryString": "stats count( by"}),
        Some(READ),
    )
    .await;
    assert_eq!(v["__type"], "MalformedQueryException");
    assert!(
        v["queryCompileError"]["location"]["startCharOffset"]
            .as_u64()
            .is_some()
    );
}

/// Review of issue 15: FilterLogEvents bounds the work of one call, not only the events it
/// looks at: between small matching events lie large ones a pattern of many terms must read
/// (and that do not match), and a call answers with a `nextToken` once its work budget
/// (`FILTER_WORK_BUDGET`) is spent; paging on finds every match once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_log_events_answers_in_parts_when_its_work_budget_is_spent() {
    use kinsight_server::cwlogs::events::FILTER_WORK_BUDGET;
    let t = cw(false).await;
    for (action, body) in [
        ("CreateLogGroup", json!({"logGroupName": "/w"})),
        (
            "CreateLogStream",
            json!({"logGroupName": "/w", "logStreamName": "s"}),
        ),
    ] {
        let (s, _, v) = send(&t.app, action, &body, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let terms: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let pattern = terms.join(" ");
    // A large message holding every term but the last (no match), a small one holding all.
    let large_bytes = 240 * 1024;
    let large = {
        let m = terms[..99].join(" ");
        format!("{m} {}", "x".repeat(large_bytes - m.len() - 1))
    };
    let total = 30;
    for n in 0..total {
        let events = json!([
            {"timestamp": NOW - 1000 + 2 * n as i64, "message": large},
            {"timestamp": NOW - 999 + 2 * n as i64, "message": format!("{pattern} n{n:03}")},
        ]);
        let (s, _, v) = send(
            &t.app,
            "PutLogEvents",
            &json!({"logGroupName": "/w", "logStreamName": "s", "logEvents": events}),
            None,
        )
        .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{}",
            v.to_string().chars().take(300).collect::<String>()
        );
    }
    // Each large message costs a pass per term: a call's budget covers this many of them.
    let per_call = FILTER_WORK_BUDGET.div_ceil(large_bytes * terms.len());
    assert!(per_call < total, "the test must need several calls");
    let mut found = Vec::new();
    let mut token: Option<Value> = None;
    let mut calls = 0;
    loop {
        let mut body = json!({"logGroupName": "/w", "filterPattern": pattern, "limit": 10_000});
        if let Some(t) = &token {
            body["nextToken"] = t.clone();
        }
        let (s, _, v) = send(&t.app, "FilterLogEvents", &body, None).await;
        assert_eq!(s, StatusCode::OK);
        calls += 1;
        let events = v["events"].as_array().unwrap();
        assert!(
            events.len() <= per_call + 1,
            "{} matches in one call",
            events.len()
        );
        for e in events {
            let m = e["message"].as_str().unwrap();
            found.push(m[pattern.len() + 1..].to_string());
        }
        match v.get("nextToken") {
            Some(t) => token = Some(t.clone()),
            None => break,
        }
        assert!(calls <= 2 * total, "paging never ends");
    }
    let expected: Vec<String> = (0..total).map(|n| format!("n{n:03}")).collect();
    assert_eq!(found, expected);
    assert!(calls >= total.div_ceil(per_call), "{calls} calls");
}
