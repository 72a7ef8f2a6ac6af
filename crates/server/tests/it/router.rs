//! The native API through the router (`oneshot`): authentication and scopes, ingest shapes and
//! encodings, the reference's limits and partial acceptance, every 4xx naming its problem,
//! catalogue calls and paged reads.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_open_everything_else_needs_a_token_with_the_right_scope() {
    let t = app().await;
    let (s, v) = call("GET", "/healthz").token(None).send(&t.app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));

    let (s, v) = call("GET", "/v1/groups").token(None).send(&t.app).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "Unauthenticated"));
    assert!(v["message"].as_str().unwrap().contains("Bearer"));
    let (s, v) = call("GET", "/v1/groups")
        .token(Some("wrong"))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "Unauthenticated"));

    // Scoped tokens, created by the admin.
    let (s, ing) = call("POST", "/v1/tokens")
        .json(&json!({"name": "agents", "scope": "ingest"}))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ing}");
    let ingest_token = ing["token"].as_str().unwrap().to_string();
    let (_, rd) = call("POST", "/v1/tokens")
        .json(&json!({"name": "console", "scope": "read"}))
        .send(&t.app)
        .await;
    let read_token = rd["token"].as_str().unwrap().to_string();
    let (s, v) = call("POST", "/v1/tokens")
        .json(&json!({"name": "x", "scope": "root"}))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "MalformedJson"));
    assert!(v["message"].as_str().unwrap().contains("root"), "{v}");

    let batch = json!([event("/g", "s", now_ms(), "hello")]);
    let (s, _) = call("POST", "/v1/ingest")
        .token(Some(&ingest_token))
        .json(&batch)
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call("GET", "/v1/events?group=/g")
        .token(Some(&ingest_token))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "Forbidden"));
    let (s, v) = call("GET", "/v1/events?group=/g")
        .token(Some(&read_token))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["events"][0]["message"], "hello");
    let (s, _) = call("POST", "/v1/ingest")
        .token(Some(&read_token))
        .json(&batch)
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Managing is for the admin only.
    let (s, _) = call("DELETE", "/v1/group?group=/g")
        .token(Some(&ingest_token))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Listing never shows secrets; revoking works at once.
    let (_, list) = call("GET", "/v1/tokens").send(&t.app).await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&ingest_token));
    assert!(list["tokens"][0].get("sha256").is_none());
    let id = ing["id"].as_str().unwrap();
    let (s, _) = call("DELETE", &format!("/v1/tokens/{id}"))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call("POST", "/v1/ingest")
        .token(Some(&ingest_token))
        .json(&batch)
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_takes_arrays_wrapped_batches_ndjson_zstd_and_gzip() {
    let t = app().await;
    let now = now_ms();
    let ev = |i: i64| {
        event(
            "/k/c/application",
            &format!("pod-{}", i % 2),
            now + i,
            &format!("{{\"n\":{i}}}"),
        )
    };
    // Array with the id in a header.
    let (s, v) = call("POST", "/v1/ingest")
        .header("x-kinsight-batch-id", "agent-a:1")
        .json(&json!([ev(0), ev(1)]))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicate"].as_bool()),
        (Some(2), Some(false))
    );
    // Wrapped, with the id in the body.
    let (_, v) = call("POST", "/v1/ingest")
        .json(&json!({"batchId": "agent-a:2", "events": [ev(2)]}))
        .send(&t.app)
        .await;
    assert_eq!(v["accepted"], 1);
    // NDJSON, zstd.
    let nd = format!("{}\n\n{}\n", ev(3), ev(4));
    let (s, v) = call("POST", "/v1/ingest")
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "zstd")
        .header("x-kinsight-batch-id", "agent-a:3")
        .raw(zstd::encode_all(nd.as_bytes(), 3).unwrap())
        .send(&t.app)
        .await;
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{v}"
    );
    // gzip.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, json!([ev(5)]).to_string().as_bytes()).unwrap();
    let (s, v) = call("POST", "/v1/ingest")
        .header("content-encoding", "gzip")
        .raw(gz.finish().unwrap())
        .send(&t.app)
        .await;
    assert_eq!((s, v["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    // A retry of batch 3 is stored once.
    let (_, v) = call("POST", "/v1/ingest")
        .header("content-type", "application/x-ndjson")
        .header("x-kinsight-batch-id", "agent-a:3")
        .raw(nd.clone())
        .send(&t.app)
        .await;
    assert_eq!(v["duplicate"], true);

    let (_, page) = call(
        "GET",
        "/v1/events?group=/k/c/application&direction=forward&limit=100",
    )
    .send(&t.app)
    .await;
    let msgs: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            "{\"n\":0}",
            "{\"n\":1}",
            "{\"n\":2}",
            "{\"n\":3}",
            "{\"n\":4}",
            "{\"n\":5}"
        ]
    );
    let (_, s) = call("GET", "/v1/streams?group=/k/c/application")
        .send(&t.app)
        .await;
    assert_eq!(s["streams"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let t = app().await;
    let now = now_ms();
    let post = |body: Vec<u8>| call("POST", "/v1/ingest").raw(body);

    let (s, v) = post(b"[{\"logGroupName\": \"/g\", ".to_vec())
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "MalformedJson"));
    assert!(
        v["message"].as_str().unwrap().contains("line 1 column"),
        "{v}"
    );

    let (s, v) = post(
        br#"[{"logGroupName":"/g","logStreamName":"s","timestamp":"soon","message":"x"}]"#.to_vec(),
    )
    .send(&t.app)
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "MalformedJson"));
    assert!(v["message"].as_str().unwrap().contains("soon"), "{v}");

    let nd = format!("{}\nnot json\n", event("/g", "s", now, "x"));
    let (s, v) = call("POST", "/v1/ingest")
        .header("content-type", "application/x-ndjson")
        .raw(nd)
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "MalformedJson"));
    assert!(v["message"].as_str().unwrap().starts_with("line 2"), "{v}");

    let (s, v) = post(
        json!([
            event("/g", "s", now, "ok"),
            event("/bad group!", "s", now, "x")
        ])
        .to_string()
        .into_bytes(),
    )
    .send(&t.app)
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidLogGroupName")
    );
    assert!(v["message"].as_str().unwrap().contains("event 1"), "{v}");
    let (s, v) = post(
        json!([event("/g", "a:b", now, "x")])
            .to_string()
            .into_bytes(),
    )
    .send(&t.app)
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidLogStreamName")
    );
    // Nothing of a refused batch was stored.
    assert!(t.state.store.group("/g").is_none());

    // Batch limits of the reference: 10,000 events, 1 MiB.
    let many: Vec<Value> = (0..10_001).map(|_| event("/g", "s", now, "")).collect();
    let (s, v) = post(serde_json::to_vec(&many).unwrap()).send(&t.app).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "BatchTooLarge")
    );
    let big: Vec<Value> = (0..5)
        .map(|_| event("/g", "s", now, &"x".repeat(250_000)))
        .collect();
    let (s, v) = post(serde_json::to_vec(&big).unwrap()).send(&t.app).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "BatchTooLarge")
    );
    assert!(v["message"].as_str().unwrap().contains("1048576"), "{v}");
    // Bodies beyond the wire limit, and zstd bombs.
    let (s, v) = post(vec![b' '; 17 * 1024 * 1024]).send(&t.app).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge")
    );
    let bomb = zstd::encode_all(&vec![b' '; 64 * 1024 * 1024][..], 19).unwrap();
    let (s, v) = post(bomb)
        .header("content-encoding", "zstd")
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge")
    );
    let (s, v) = post(b"garbage".to_vec())
        .header("content-encoding", "zstd")
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "BadEncoding"));
    let (s, v) = post(b"[]".to_vec())
        .header("content-encoding", "br")
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
    );
    let (s, v) = post(b"[]".to_vec())
        .header("x-kinsight-batch-id", "has space")
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "InvalidParameter"));

    // Unknown group when auto-create is off; unknown group and stream on reads.
    let (s, v) = call("POST", "/v1/ingest?autoCreate=false")
        .json(&json!([event("/absent", "s", now, "x")]))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "ResourceNotFound"));
    assert!(v["message"].as_str().unwrap().contains("/absent"));
    let (s, v) = call("GET", "/v1/events?group=/absent").send(&t.app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "ResourceNotFound"));
    let (s, v) = call("GET", "/v1/events").send(&t.app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "InvalidParameter"));
    assert!(v["message"].as_str().unwrap().contains("group"), "{v}");
    let (s, v) = call("GET", "/v1/events?group=/absent&next=zzz")
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "InvalidParameter"));

    // Retention values of the reference only.
    call("POST", "/v1/groups")
        .json(&json!({"name": "/r"}))
        .send(&t.app)
        .await;
    let (s, v) = call("PUT", "/v1/group/retention?group=/r")
        .json(&json!({"retentionDays": 2}))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "InvalidRetention"));
    let (s, v) = call("POST", "/v1/groups")
        .json(&json!({"name": "/r"}))
        .send(&t.app)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "ResourceAlreadyExists")
    );
    let (s, v) = call("POST", "/v1/groups")
        .json(&json!({"name": "/r", "extra": 1}))
        .send(&t.app)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "MalformedJson"));
    assert!(v["message"].as_str().unwrap().contains("extra"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_acceptance_reports_each_rejected_event() {
    let t = app().await;
    let now = now_ms();
    call("POST", "/v1/groups")
        .json(&json!({"name": "/short", "retentionDays": 1}))
        .send(&t.app)
        .await;
    let (s, v) = call("POST", "/v1/ingest")
        .json(&json!([
            event("/short", "s", now, "ok"),
            event("/short", "s", now + 3 * 3_600_000, "too new"),
            event("/short", "s", now - 15 * 86_400_000, "too old"),
            event("/short", "s", now - 2 * 86_400_000, "expired"),
            event("/short", "s", now, &"x".repeat(262_144)),
            event("/short", "s", now + 1, "ok too"),
        ]))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2);
    assert_eq!(
        v["rejected"],
        json!([
            {"index": 1, "reason": "tooNew"},
            {"index": 2, "reason": "tooOld"},
            {"index": 3, "reason": "expired"},
            {"index": 4, "reason": "tooLarge"}
        ])
    );
    let (_, page) = call("GET", "/v1/events?group=/short&stream=s")
        .send(&t.app)
        .await;
    let msgs: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].clone())
        .collect();
    assert_eq!(msgs, [json!("ok"), json!("ok too")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_streams_and_paged_events_through_the_api() {
    let t = app().await;
    let now = now_ms();
    let (s, g) = call("POST", "/v1/groups")
        .json(&json!({"name": "/k/c/host", "retentionDays": 7, "tags": {"team": "sre"}}))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (g["retentionDays"].as_u64(), g["tags"]["team"].as_str()),
        (Some(7), Some("sre"))
    );
    let (s, _) = call("POST", "/v1/streams?group=/k/c/host")
        .json(&json!({"name": "n1.host.dmesg"}))
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let events: Vec<Value> = (0..25)
        .map(|i| {
            event(
                "/k/c/host",
                "n1.host.dmesg",
                now - 1000 + i,
                &format!("m{i}"),
            )
        })
        .collect();
    call("POST", "/v1/ingest")
        .json(&Value::Array(events))
        .send(&t.app)
        .await;
    // Half flushed to a segment, the rest in memory: pagination is seamless.
    t.state.store.flush().await.unwrap();
    let events: Vec<Value> = (25..40)
        .map(|i| {
            event(
                "/k/c/host",
                "n1.host.dmesg",
                now - 1000 + i,
                &format!("m{i}"),
            )
        })
        .collect();
    call("POST", "/v1/ingest")
        .json(&Value::Array(events))
        .send(&t.app)
        .await;

    let mut got = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let uri = match &next {
            None => "/v1/events?group=/k/c/host&stream=n1.host.dmesg&direction=forward&limit=7"
                .to_string(),
            Some(n) => format!(
                "/v1/events?group=/k/c/host&stream=n1.host.dmesg&direction=forward&limit=7&next={n}"
            ),
        };
        let (s, page) = call("GET", &uri).send(&t.app).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let evs = page["events"].as_array().unwrap();
        let token = page["nextForwardToken"].as_str().map(str::to_string);
        if evs.is_empty() {
            // At the end the token comes back unchanged, as GetLogEvents does.
            assert_eq!(token, next);
            break;
        }
        got.extend(
            evs.iter()
                .map(|e| e["message"].as_str().unwrap().to_string()),
        );
        next = token;
    }
    assert_eq!(got, (0..40).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // The default is the newest events (backward).
    let (_, page) = call("GET", "/v1/events?group=/k/c/host&limit=3")
        .send(&t.app)
        .await;
    let msgs: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["m37", "m38", "m39"]);

    let (_, list) = call("GET", "/v1/groups?prefix=/k/").send(&t.app).await;
    let g = &list["groups"][0];
    assert_eq!(g["name"], "/k/c/host");
    assert!(g["storedBytes"].as_u64().unwrap() > 0);
    assert_eq!(g["lastEventMs"].as_i64(), Some(now - 1000 + 39));
    let (_, streams) = call(
        "GET",
        "/v1/streams?group=/k/c/host&orderBy=LastEventTime&descending=true",
    )
    .send(&t.app)
    .await;
    assert_eq!(streams["streams"][0]["name"], "n1.host.dmesg");

    let (s, g) = call("PUT", "/v1/group/retention?group=/k/c/host")
        .json(&json!({"retentionDays": null}))
        .send(&t.app)
        .await;
    assert_eq!(
        (s, g["retentionDays"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let (_, g) = call("POST", "/v1/group/untag?group=/k/c/host")
        .json(&json!({"keys": ["team"]}))
        .send(&t.app)
        .await;
    assert_eq!(g["tags"], json!({}));
    let (s, _) = call("DELETE", "/v1/streams?group=/k/c/host&stream=n1.host.dmesg")
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call("DELETE", "/v1/group?group=/k/c/host")
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call("GET", "/v1/group?group=/k/c/host").send(&t.app).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Issue 15 item 6: without a token, what a web page could send on its own is refused — a
/// foreign Host (DNS rebinding), a foreign Origin, a POST with a content type that needs no
/// CORS preflight — while the CLI's and the console's own requests still pass.
#[tokio::test]
async fn the_no_token_mode_refuses_what_a_web_page_could_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kinsight_store::StoreConfig::new(dir.path());
    cfg.background = false;
    let store = kinsight_store::Store::open(cfg, vec![]).await.unwrap();
    let open = kinsight_server::router(kinsight_server::AppState::new(
        store,
        kinsight_server::Auth::disabled(),
    ));
    let local = |method: &str, uri: &str| {
        call(method, uri)
            .token(None)
            .header("host", "127.0.0.1:8080")
    };
    let create =
        json!({"logGroupName": "/g", "logStreamName": "s", "timestamp": now_ms(), "message": "m"});

    // A rebound name: refused for reads too.
    let (s, v) = local("GET", "/v1/groups")
        .header("host", "attacker.example:8080")
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "Forbidden");
    assert!(
        v["message"].as_str().unwrap().contains("attacker.example"),
        "{v}"
    );
    let (s, _) = local("GET", "/healthz")
        .header("host", "attacker.example")
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A form or text/plain POST (no preflight).
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
    ] {
        let (s, v) = local("POST", "/v1/ingest")
            .header("content-type", ct)
            .json(&json!([create]))
            .send(&open)
            .await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}: {v}");
    }
    // The CloudWatch endpoint is covered too.
    let (s, _) = local("POST", "/")
        .header("content-type", "text/plain")
        .header("x-amz-target", "Logs_20140328.CreateLogGroup")
        .json(&json!({"logGroupName": "/cw"}))
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // JSON, but from a foreign page.
    let (s, v) = local("POST", "/v1/ingest")
        .header("origin", "https://attacker.example")
        .json(&json!([create]))
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = local("GET", "/v1/groups")
        .header("origin", "null")
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Nothing of the above was stored.
    let (_, v) = local("GET", "/v1/groups").send(&open).await;
    assert_eq!(v["groups"], json!([]), "{v}");

    // The CLI (no Origin) and the console (same-origin, loopback) get through.
    let (s, v) = local("POST", "/v1/ingest")
        .json(&json!([create]))
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = local("POST", "/v1/ingest")
        .header("host", "localhost:8080")
        .header("origin", "http://localhost:8080")
        .header("content-type", "application/x-ndjson")
        .raw(serde_json::to_vec(&create).unwrap())
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = local("GET", "/v1/groups")
        .header("host", "[::1]:8080")
        .send(&open)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = local("DELETE", "/v1/group?group=/g").send(&open).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // With a token these checks are off: a browser cannot attach the token by itself.
    let t = app().await;
    let (s, v) = call("GET", "/v1/groups")
        .header("host", "kinsight.example.com")
        .header("origin", "https://grafana.example.com")
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Issue 15 item 5: follow pages are bounded by bytes as well as events, the follow ring by
/// bytes as well as batches, and the ring keeps nothing while nobody follows or reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_pages_and_the_ring_are_bounded_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kinsight_store::StoreConfig::new(dir.path());
    cfg.background = false;
    let store = kinsight_store::Store::open(cfg, vec![]).await.unwrap();
    let mut limits = kinsight_server::state::Limits::default();
    limits.follow.ring_bytes = 3 * 1024 * 1024;
    let state = kinsight_server::AppState::with_limits(
        store,
        kinsight_server::Auth::open(ADMIN, dir.path()).unwrap(),
        limits,
    );
    let app = kinsight_server::router(state.clone());
    let now = now_ms();
    let (s, _) = call("POST", "/v1/ingest")
        .json(&json!([event("/g", "s", now, "first")]))
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Nobody has read or followed: the ring keeps nothing.
    assert_eq!(state.feed.ring_bytes(), 0);
    let (_, page) = call("GET", "/v1/events?group=/g").send(&app).await;
    let start = page["seq"].as_u64().unwrap();
    // Batches of three 200 KiB events (600 KiB): two do not fit in one 1 MiB page.
    let batch = |i: usize| {
        let e = |k: i64| {
            event(
                "/g",
                "s",
                now + 10 * i as i64 + k,
                &format!("{i}{}", "x".repeat(200 * 1024)),
            )
        };
        json!([e(0), e(1), e(2)])
    };
    for i in 0..3 {
        let (s, v) = call("POST", "/v1/ingest").json(&batch(i)).send(&app).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["rejectedCount"], 0, "{v}");
    }
    let mut after = start;
    let mut got = Vec::new();
    // (A follower that keeps up sees every batch.)
    for _ in 0..3 {
        // The long poll answers as soon as the ring has the next batch.
        let (s, v) = call(
            "GET",
            &format!("/v1/follow?group=/g&after={after}&waitMs=20000"),
        )
        .send(&app)
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["gap"], false);
        let events = v["events"].as_array().unwrap();
        assert_eq!(
            events.len(),
            3,
            "one 600 KiB batch per 1 MiB page: {}",
            v["seq"]
        );
        got.push(events[0]["message"].as_str().unwrap()[..1].to_string());
        after = v["seq"].as_u64().unwrap();
    }
    assert_eq!(got, ["0", "1", "2"]);
    // Six more: the 3 MiB ring drops the oldest, and a follower from the start is told.
    for i in 3..9 {
        call("POST", "/v1/ingest").json(&batch(i)).send(&app).await;
    }
    // Wait (polling, with a deadline) until the follow ring has taken all of them in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while state.feed.last_seq() < state.store.last_seq() {
        assert!(
            std::time::Instant::now() < deadline,
            "the follow ring never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        state.feed.ring_bytes() <= 3 * 1024 * 1024,
        "{}",
        state.feed.ring_bytes()
    );
    let (_, v) = call(
        "GET",
        &format!("/v1/follow?group=/g&after={start}&waitMs=0"),
    )
    .send(&app)
    .await;
    assert_eq!(v["gap"], true, "{}", v["seq"]);
    // Events pages are bounded the same way: 1 MiB holds five of these events.
    let (_, v) = call("GET", "/v1/events?group=/g&limit=100")
        .send(&app)
        .await;
    assert_eq!(v["events"].as_array().unwrap().len(), 5);
}
