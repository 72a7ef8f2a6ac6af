//! OTLP/HTTP logs through the router (issue 17): protobuf (gzip) and JSON bodies, the group and
//! stream headers and their defaults, the record → JSON event mapping, partial success for
//! records the store refuses, and clear errors for bad bodies and for traces. The SDK client
//! test is scripts/tests/cwlogs/test_otlp.py (OpenTelemetry's own Python exporter).

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value as V,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{ADMIN, app, call, now_ms};

fn kv(k: &str, v: V) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn request(service: Option<&str>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: service
                    .map(|s| vec![kv("service.name", V::StringValue(s.into()))])
                    .unwrap_or_default(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "2.1".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn record(ts_ms: i64, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: ts_ms as u64 * 1_000_000,
        severity_number: 13,
        severity_text: "WARN".into(),
        body: Some(AnyValue {
            value: Some(V::StringValue(body.into())),
        }),
        attributes: vec![
            kv("http.status_code", V::IntValue(503)),
            kv("ratio", V::DoubleValue(0.25)),
            kv("ok", V::BoolValue(false)),
            kv("raw", V::BytesValue(vec![1, 2, 3])),
            kv(
                "tags",
                V::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(V::StringValue("a".into())),
                    }],
                }),
            ),
        ],
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        ..Default::default()
    }
}

/// POST /v1/logs; the raw answer.
async fn post(
    app: &axum::Router,
    content_type: &str,
    gzip: bool,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/logs")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if gzip {
        req = req.header("content-encoding", "gzip");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    } else {
        body
    };
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

async fn messages(app: &axum::Router, group: &str, stream: &str) -> Vec<(i64, Value)> {
    let (s, v) = call(
        "GET",
        &format!("/v1/events?group={group}&stream={stream}&direction=forward&limit=100"),
    )
    .send(app)
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_i64().unwrap(),
                serde_json::from_str(e["message"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn protobuf_records_become_json_events_in_the_named_group_and_stream() {
    let t = app().await;
    let now = now_ms();
    let req = request(
        Some("checkout"),
        vec![record(now, "slow"), record(now + 1, "slower")],
    );
    let (s, body) = post(
        &t.app,
        "application/x-protobuf",
        true,
        req.encode_to_vec(),
        &[
            ("x-aws-log-group", "/otel/app"),
            ("x-aws-log-stream", "pod-1"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer = ExportLogsServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success, None);
    let got = messages(&t.app, "/otel/app", "pod-1").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, now);
    assert_eq!(
        got[0].1,
        json!({
            "resource": {"attributes": {"service.name": "checkout"}},
            "scope": {"name": "lib", "version": "2.1"},
            "timeUnixNano": now as u64 * 1_000_000,
            "severityNumber": 13,
            "severityText": "WARN",
            "body": "slow",
            "attributes": {"http.status_code": 503, "ratio": 0.25, "ok": false, "raw": "AQID", "tags": ["a"]},
            "traceId": "0102030405060708090a0b0c0d0e0f10",
            "spanId": "0102030405060708",
        })
    );
    assert_eq!(got[1].1["body"], "slower");
}

#[tokio::test]
async fn json_bodies_defaults_and_partial_success() {
    let t = app().await;
    let now = now_ms();
    // No headers: the default group, the resource's service.name as the stream (else "otlp").
    let mut req = request(Some("billing"), vec![record(now, "ok")]);
    req.resource_logs.push(
        request(None, vec![record(now, "anonymous")])
            .resource_logs
            .remove(0),
    );
    // A record older than 14 days is refused; the others are kept.
    req.resource_logs[0].scope_logs[0]
        .log_records
        .push(record(now - 15 * 86_400_000, "too old"));
    let body = serde_json::to_vec(&req).unwrap();
    let (s, answer) = post(&t.app, "application/json", false, body, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], 1,
        "{answer}"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("tooOldLogEventCount"),
        "{answer}"
    );
    assert_eq!(messages(&t.app, "/kinsight/otlp", "billing").await.len(), 1);
    let anon = messages(&t.app, "/kinsight/otlp", "otlp").await;
    assert_eq!(anon.len(), 1);
    assert_eq!(anon[0].1["body"], "anonymous");
    assert!(anon[0].1.get("resource").is_none());

    // A record without any time gets the time it arrived.
    let mut bare = record(0, "no time");
    bare.time_unix_nano = 0;
    let (s, _) = post(
        &t.app,
        "application/x-protobuf",
        false,
        request(None, vec![bare]).encode_to_vec(),
        &[("x-aws-log-group", "/otel/bare")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let got = messages(&t.app, "/otel/bare", "otlp").await;
    assert!((got[0].0 - now).abs() < 60_000);
}

#[tokio::test]
async fn bad_bodies_and_traces_get_clear_errors() {
    let t = app().await;
    let (s, body) = post(
        &t.app,
        "application/x-protobuf",
        false,
        vec![0x0a, 0xff, 0xff],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("ExportLogsServiceRequest"));
    let (s, body) = post(
        &t.app,
        "application/json",
        false,
        b"{\"resourceLogs\": 3}".to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("OTLP/JSON"));
    let (s, body) = post(&t.app, "text/plain", false, b"x".to_vec(), &[]).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&body).contains("application/x-protobuf"));
    // gzip announced, not gzip sent.
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/logs")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip");
    req = req.header("x-aws-log-group", "/otel/never");
    let resp = t
        .app
        .clone()
        .oneshot(req.body(Body::from(vec![1u8, 2, 3])).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Nothing was stored for the refused requests; no token → 401.
    let (s, _) = call("GET", "/v1/group?group=/otel/never")
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call("POST", "/v1/logs")
        .token(None)
        .header("content-type", "application/x-protobuf")
        .raw(request(None, vec![]).encode_to_vec())
        .send(&t.app)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call("POST", "/v1/traces").send(&t.app).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("traces"), "{v}");
}

#[tokio::test]
async fn big_batches_are_stored_whole_and_repeated_resources_cannot_blow_up() {
    let t = app().await;
    let now = now_ms();
    // A collector-sized batch: 3,000 records each repeating a ~600-byte resource, about 2.5 MB
    // of events — more than one store batch (1 MiB): stored whole, in several ingests. The
    // SDKs' default service name holds a ':' that stream names may not: it becomes '_'.
    let mut req = request(
        Some("unknown_service:python"),
        (0..3_000).map(|i| record(now, &format!("r{i}"))).collect(),
    );
    req.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("padding", V::StringValue("x".repeat(600))));
    let (s, body) = post(
        &t.app,
        "application/x-protobuf",
        true,
        req.encode_to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        ExportLogsServiceResponse::decode(&body[..])
            .unwrap()
            .partial_success,
        None
    );
    // Forward pages until a page comes back empty (the token then stays put).
    let mut bodies: Vec<String> = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut uri = "/v1/events?group=/kinsight/otlp&stream=unknown_service_python&direction=forward&limit=10000".to_string();
        if let Some(n) = &next {
            uri.push_str(&format!("&next={}", urlencode(n)));
        }
        let (s, v) = call("GET", &uri).send(&t.app).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page = v["events"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            let m: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
            bodies.push(m["body"].as_str().unwrap().to_string());
        }
        next = v["nextForwardToken"].as_str().map(str::to_string);
        assert!(next.is_some(), "{v}");
    }
    assert_eq!(
        bodies,
        (0..3_000).map(|i| format!("r{i}")).collect::<Vec<_>>(),
        "every record once, in order"
    );

    // A resource too large for any event: every record refused as too large, nothing built.
    let mut req = request(Some("big"), (0..10).map(|_| record(now, "x")).collect());
    req.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("blob", V::StringValue("y".repeat(300_000))));
    let (s, body) = post(
        &t.app,
        "application/x-protobuf",
        false,
        req.encode_to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let partial = ExportLogsServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_log_records, 10);
    assert!(partial.error_message.contains("tooLargeLogEventCount"));

    // A 200 KB resource shared by 10,000 empty records would expand to 2 GB of events: refused
    // (413) as soon as the expansion passes its cap, without building it.
    let mut req = request(
        Some("huge"),
        (0..10_000).map(|_| LogRecord::default()).collect(),
    );
    req.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("blob", V::StringValue("z".repeat(200_000))));
    let (s, body) = post(
        &t.app,
        "application/x-protobuf",
        true,
        req.encode_to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8_lossy(&body).contains("expand"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
