//! The query API through the router: start, poll, stop, list, check, `@ptr` records, errors
//! with line and column, and scopes.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const GROUP: &str = "/kinsight/test/application";

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

async fn with_events(t: &TestApp) -> i64 {
    let now = now_ms();
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let level = if i % 4 == 0 { "error" } else { "info" };
            event(
                GROUP,
                if i % 2 == 0 {
                    "node-1-app"
                } else {
                    "node-2-app"
                },
                now - 60_000 + i * 1000,
                &format!(
                    r#"{{"level":"{level}","latency_ms":{},"msg":"req {i}"}}"#,
                    i * 10
                ),
            )
        })
        .collect();
    let (s, v) = call("POST", "/v1/ingest")
        .json(&Value::Array(events))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    now
}

/// Polls until the query has finished.
async fn finished(t: &TestApp, id: &str) -> Value {
    for _ in 0..400 {
        let (s, v) = call("GET", &format!("/v1/queries/{id}")).send(&t.app).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if !matches!(v["status"].as_str(), Some("Scheduled" | "Running")) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("query {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_poll_and_read_results_with_statistics_and_ptr() {
    let t = app().await;
    let now = with_events(&t).await;
    let (s, v) = call("POST", "/v1/queries")
        .json(&json!({
            "groups": [GROUP], "start": now - 3_600_000, "end": now + 60_000,
            "query": "filter level = \"error\" | stats count() as n, avg(latency_ms) as lat by @logStream | sort @logStream"
        }))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["queryId"].as_str().unwrap().to_string();
    let r = finished(&t, &id).await;
    assert_eq!(r["status"], "Complete", "{r}");
    assert_eq!(r["columns"], json!(["@logStream", "n", "lat"]));
    // Errors are events 0, 4, 8, … (all on node-1, even i): 10 of them, latency 0..360.
    assert_eq!(r["rows"], json!([["node-1-app", 10, 180]]));
    assert_eq!(r["statistics"]["recordsScanned"], 40);
    assert_eq!(r["statistics"]["recordsMatched"], 10);
    assert!(r["statistics"]["bytesScanned"].as_u64().unwrap() > 0);

    // Raw events carry @ptr, which resolves to the whole event.
    let (_, v) = call("POST", "/v1/queries")
        .json(
            &json!({"group": GROUP, "start": now - 3_600_000, "end": now + 60_000,
                      "query": "fields @timestamp, msg | limit 2"}),
        )
        .send(&t.app)
        .await;
    let r = finished(&t, v["queryId"].as_str().unwrap()).await;
    assert_eq!(r["columns"], json!(["@timestamp", "msg", "@ptr"]));
    assert_eq!(r["rows"][0][1], "req 39", "newest first: {r}");
    let ptr = r["rows"][0][2].as_str().unwrap();
    let (s, rec) = call("GET", &format!("/v1/records?ptr={ptr}"))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK, "{rec}");
    assert_eq!(rec["msg"], "req 39");
    assert_eq!(rec["@log"], GROUP);
    assert_eq!(rec["@logStream"], "node-2-app");
    assert!(rec["@message"].as_str().unwrap().contains("\"req 39\""));
    let (s, v) = call("GET", "/v1/records?ptr=bm9wZQ").send(&t.app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "ResourceNotFound"));

    // Incremental polling and listing.
    let (_, part) = call("GET", &format!("/v1/queries/{id}?rowsFrom=1"))
        .send(&t.app)
        .await;
    assert_eq!(part["rows"], json!([]));
    assert_eq!(part["totalRows"], 1);
    let (_, list) = call("GET", "/v1/queries?status=Complete")
        .send(&t.app)
        .await;
    assert!(
        list["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["queryId"] == id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_runs_over_group_tables() {
    let t = app().await;
    let now = with_events(&t).await;
    let (s, v) = call("POST", "/v1/queries")
        .json(&json!({
            "groups": [GROUP], "start": now - 3_600_000, "end": now + 60_000, "language": "sql",
            "query": format!("SELECT level, count(*) AS n FROM \"{GROUP}\" GROUP BY level ORDER BY level")
        }))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let r = finished(&t, v["queryId"].as_str().unwrap()).await;
    assert_eq!(r["rows"], json!([["error", 10], ["info", 30]]), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_queries_get_line_column_and_what_was_expected() {
    let t = app().await;
    let now = with_events(&t).await;
    let start = |q: &str| {
        call("POST", "/v1/queries").json(&json!({
            "groups": [GROUP], "start": now - 3_600_000, "end": now, "query": q
        }))
    };
    let (s, v) = start("fields @message\n| stats count( by x")
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "MalformedQuery"),
        "{v}"
    );
    let m = v["message"].as_str().unwrap();
    assert!(m.starts_with("line 2, column"), "{m}");
    let (s, v) = start("stats avgg(x)").send(&t.app).await;
    assert_eq!(code(&v), "MalformedQuery");
    assert!(v["message"].as_str().unwrap().contains("avg"), "{v}");
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = call("POST", "/v1/queries")
        .json(&json!({"groups": ["/nope"], "start": 0, "end": 1, "query": "limit 1"}))
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "ResourceNotFound"),
        "{v}"
    );
    let (s, v) = call("POST", "/v1/queries")
        .json(&json!({"groups": [GROUP], "start": 5, "end": 1, "query": "limit 1"}))
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidParameter"),
        "{v}"
    );
    let (s, v) = call("POST", "/v1/queries")
        .json(&json!({"groups": [GROUP], "start": 0, "end": 1, "query": "DROP TABLE logs", "language": "sql"}))
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "MalformedQuery"),
        "{v}"
    );

    let (s, v) = call("POST", "/v1/queries/check")
        .json(&json!({"query": "filter x = | limit 3"}))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["valid"], false);
    assert_eq!(
        (v["line"].as_u64(), v["column"].as_u64()),
        (Some(1), Some(12)),
        "{v}"
    );
    assert!(!v["expected"].as_array().unwrap().is_empty(), "{v}");
    let (_, v) = call("POST", "/v1/queries/check")
        .json(&json!({"query": "stats count() by x | sort @timestamp desc"}))
        .send(&t.app)
        .await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(1), "{v}");

    // The 10,000-character limit of starting a query holds for checking it, with the same
    // error (issue 15, item 13), in both languages.
    for (language, text) in [
        ("insights", format!("filter x = \"{}\"", "y".repeat(10_000))),
        ("sql", format!("SELECT '{}'", "y".repeat(10_000))),
    ] {
        let (s1, started) = call("POST", "/v1/queries")
            .json(
                &json!({"groups": [GROUP], "start": now - 3_600_000, "end": now + 60_000,
                          "query": text, "language": language}),
            )
            .send(&t.app)
            .await;
        let (s2, checked) = call("POST", "/v1/queries/check")
            .json(&json!({"query": text, "language": language}))
            .send(&t.app)
            .await;
        assert_eq!(
            (s1, code(&started)),
            (StatusCode::BAD_REQUEST, "InvalidParameter")
        );
        assert_eq!((s2, &checked), (s1, &started), "{language}");
        assert_eq!(
            checked["message"], "the query is longer than 10000 characters",
            "{checked}"
        );
    }
    let at_limit = format!("SELECT '{}'", "y".repeat(10_000 - 9));
    assert_eq!(at_limit.chars().count(), 10_000);
    let (s, v) = call("POST", "/v1/queries/check")
        .json(&json!({"query": at_limit, "language": "sql"}))
        .send(&t.app)
        .await;
    assert_eq!((s, &v["valid"]), (StatusCode::OK, &json!(true)), "{v}");

    let (s, v) = call("GET", "/v1/queries/00000000-0000-0000-0000-000000000000")
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "ResourceNotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_scopes() {
    let t = app().await;
    let now = with_events(&t).await;
    let (_, v) = call("POST", "/v1/queries")
        .json(
            &json!({"groups": [GROUP], "start": now - 3_600_000, "end": now + 60_000,
                      "query": "stats count()"}),
        )
        .send(&t.app)
        .await;
    let id = v["queryId"].as_str().unwrap().to_string();
    let r = finished(&t, &id).await;
    assert_eq!(r["status"], "Complete");
    // Stopping a finished query changes nothing.
    let (s, v) = call("POST", &format!("/v1/queries/{id}/stop"))
        .send(&t.app)
        .await;
    assert_eq!((s, &v), (StatusCode::OK, &json!({"stopped": false})));

    let (_, tok) = call("POST", "/v1/tokens")
        .json(&json!({"name": "agents", "scope": "ingest"}))
        .send(&t.app)
        .await;
    let (s, v) = call("POST", "/v1/queries")
        .token(tok["token"].as_str())
        .json(&json!({"groups": [GROUP], "start": 0, "end": now, "query": "limit 1"}))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "Forbidden"));
}
