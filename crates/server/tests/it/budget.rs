//! Issue 15: what requests in progress hold in memory is bounded — request bodies (as sent and
//! decoded) and query-result answers share one budget; CloudWatch bodies whose signature is
//! not verified yet take from a smaller one; query results come in pages.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kinsight_server::state::Limits;
use kinsight_server::{AppState, Auth, router};
use kinsight_store::{Store, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

async fn app_with(limits: Limits) -> (axum::Router, AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.background = false;
    let store = Store::open(cfg, vec![]).await.unwrap();
    let mut state = AppState::with_limits(store, Auth::open(ADMIN, dir.path()).unwrap(), limits);
    state.budgets.wait = Duration::from_millis(300);
    (router(state.clone()), state, dir)
}

/// A request whose body is announced but never arrives.
fn stalled(uri: &str, declared: usize, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-length", declared.to_string());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    r.body(Body::from_stream(never)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_share_a_budget_and_unverified_ones_a_smaller_one() {
    let limits = Limits {
        request_memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let (app, state, _dir) = app_with(limits).await;
    let mut keys = kinsight_server::cwlogs::AccessKeys::none();
    keys.add(
        "AKIABUDGETTEST00001",
        "budget-secret-0123456789",
        kinsight_server::Scope::Admin,
    )
    .unwrap();
    let mut state = state;
    state.aws_keys = std::sync::Arc::new(keys);
    let app_keys = router(state.clone());

    // A 6 MiB body in progress holds 6 of the 8 MiB.
    let native = [
        ("authorization", &*format!("Bearer {ADMIN}")),
        ("content-type", "application/json"),
    ];
    let holder = tokio::spawn(app.clone().oneshot(stalled("/v1/ingest", 6 << 20, &native)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state.budgets.requests.used_bytes() < 6 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the body never took its room"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another 3 MiB body does not fit: 503 after the budget's wait, nothing read.
    let resp = app
        .clone()
        .oneshot(stalled("/v1/ingest", 3 << 20, &native))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A small one still fits.
    let (s, v) = call("POST", "/v1/ingest")
        .json(&json!([event("/g", "s", now_ms(), "small")]))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // CloudWatch bodies before their signature is checked: their own 4 MiB at most, refused
    // at once beyond it, whatever the request budget has left.
    let auth = "AWS4-HMAC-SHA256 Credential=AKIABUDGETTEST00001/20260101/us-east-1/logs/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let auth = auth.replace("20260101", &amz_date[..8]);
    let cw = [
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "Logs_20140328.PutLogEvents"),
        ("x-amz-date", &*amz_date),
        ("authorization", &*auth),
    ];
    holder.abort();
    let unverified = tokio::spawn(app_keys.clone().oneshot(stalled("/", 4 << 20, &cw)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state.budgets.unverified.used_bytes() < 4 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the CloudWatch body never took its room"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    let resp = app_keys
        .clone()
        .oneshot(stalled("/", 1 << 20, &cw))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused without waiting"
    );
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["__type"], "ServiceUnavailableException", "{v}");
    unverified.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_come_in_pages_of_bounded_bytes() {
    let limits = Limits {
        max_result_page_bytes: 16 << 10,
        ..Limits::default()
    };
    let (app, _state, _dir) = app_with(limits).await;
    let now = now_ms();
    let events: Vec<Value> = (0..40)
        .map(|i| {
            event(
                "/q",
                "s",
                now - 60_000 + i,
                &format!("{i:02} {}", "x".repeat(1000)),
            )
        })
        .collect();
    let (s, v) = call("POST", "/v1/ingest")
        .json(&Value::Array(events))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call("POST", "/v1/queries")
        .json(
            &json!({"groups": ["/q"], "start": now - 3_600_000, "end": now + 1,
                      "query": "fields @message | sort @timestamp asc | limit 40"}),
        )
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["queryId"].as_str().unwrap().to_string();
    let mut rows: Vec<Value> = Vec::new();
    let mut pages = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = call("GET", &format!("/v1/queries/{id}?rowsFrom={}", rows.len()))
            .send(&app)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page = v["rows"].as_array().unwrap().clone();
        let body = serde_json::to_vec(&page).unwrap();
        assert!(
            body.len() < 2 * (16 << 10),
            "a page of {} bytes",
            body.len()
        );
        if !page.is_empty() {
            pages += 1;
        }
        rows.extend(page);
        let done = !matches!(v["status"].as_str(), Some("Scheduled" | "Running"));
        if done && rows.len() as u64 == v["totalRows"].as_u64().unwrap() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rows.len(), 40);
    assert!(pages > 1, "40 rows of 1 KiB take several 16 KiB pages");
    let firsts: Vec<String> = rows
        .iter()
        .map(|r| r[0].as_str().unwrap()[..2].to_string())
        .collect();
    assert_eq!(
        firsts,
        (0..40).map(|i| format!("{i:02}")).collect::<Vec<_>>()
    );
}

/// Review of issue 15: answers waiting to be sent (a client reading slowly, or not at all)
/// hold their bytes in the request budget until sent; when answers fill it, the next large
/// one is refused with 503 instead of piling up, and room comes back as they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_hold_their_bytes_in_the_budget_until_sent() {
    let limits = Limits {
        request_memory_bytes: 2 << 20,
        ..Limits::default()
    };
    let (app, state, _dir) = app_with(limits).await;
    let big = "x".repeat(200 * 1024);
    let t = now_ms();
    let events: Vec<Value> = (0..4).map(|i| event("/a", "s", t - 10 + i, &big)).collect();
    let (s, v) = call("POST", "/v1/ingest")
        .json(&json!(events))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(state.budgets.requests.used_bytes(), 0);
    let page = || {
        Request::builder()
            .uri("/v1/events?group=/a&limit=4")
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .unwrap()
    };
    // Two answers of 800 KB each, not yet sent, hold 1.6 of the 2 MiB.
    let first = app.clone().oneshot(page()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = app.clone().oneshot(page()).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert!(
        state.budgets.requests.used_bytes() >= 1_600_000,
        "{} bytes held",
        state.budgets.requests.used_bytes()
    );
    // A third does not fit: 503 with Retry-After, and nothing more is held.
    let third = app.clone().oneshot(page()).await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.headers()["retry-after"], "1");
    let held = state.budgets.requests.used_bytes();
    drop(third);
    assert_eq!(state.budgets.requests.used_bytes(), held);
    // A write is answered even without room: its long list of rejections is sent unheld (a
    // 503 would make the client send the batch again).
    let old: Vec<Value> = (0..3000)
        .map(|i| event("/a", "s", t - 30 * 86_400_000 + i, "old"))
        .collect();
    let (s, v) = call("POST", "/v1/ingest")
        .json(&json!(old))
        .send(&app)
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "{}",
        v.to_string().chars().take(300).collect::<String>()
    );
    assert_eq!(v["accepted"], 0);
    assert!(v.to_string().len() as u64 >= kinsight_server::budget::HELD_ANSWER_MIN_BYTES);
    assert_eq!(state.budgets.requests.used_bytes(), held);
    // Once one is sent (here: read to its end and dropped), another fits.
    let body = axum::body::to_bytes(first.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(body.len() > 800_000);
    let again = app.clone().oneshot(page()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    drop((second, again));
    assert_eq!(state.budgets.requests.used_bytes(), 0);
    // Small answers never take from it.
    let (s, _) = call("GET", "/v1/groups").send(&app).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(state.budgets.requests.used_bytes(), 0);
}
