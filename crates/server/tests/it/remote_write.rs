//! Prometheus remote write in (issue 17): `POST /api/v1/write` through the router. Samples
//! acknowledged with 204 are answered by PromQL (staleness markers honoured); bad bodies get
//! 400 with a message; refused samples (bad series, out of order, a conflicting duplicate,
//! native histograms) get 400 naming why while the rest of the request is kept.

use axum::Router;
use axum::http::StatusCode;
use kinsight_metrics::MetricStoreConfig;
use kinsight_metrics::remote_write::prompb::{TimeSeries, WriteRequest};
use serde_json::{Value, json};

use crate::support::*;

const STALE: u64 = 0x7ff0000000000002;

async fn rw_app() -> MetricsApp {
    metrics_app(MetricStoreConfig::default()).await
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries::new(labels, samples)
}

async fn write(app: &Router, ts: Vec<TimeSeries>) -> (StatusCode, Value) {
    let req = WriteRequest {
        timeseries: ts,
        metadata: vec![],
    };
    call("POST", "/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .raw(req.to_body())
        .send(app)
        .await
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The instant vector of `q` at `t_ms`, as (labels, value) pairs — waiting until `want`
/// holds: the metric store applies acknowledged samples right after the answer.
async fn query_until(
    app: &Router,
    q: &str,
    t_ms: i64,
    want: impl Fn(&[(Value, String)]) -> bool,
) -> Vec<(Value, String)> {
    let mut last = Vec::new();
    for _ in 0..400 {
        let (s, v) = call(
            "GET",
            &format!(
                "/api/v1/query?query={}&time={}.{:03}",
                enc(q),
                t_ms / 1000,
                t_ms % 1000
            ),
        )
        .send(app)
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        last = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if want(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{q} at {t_ms}: never as wanted; last answer {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_samples_are_queryable_and_staleness_markers_end_a_series() {
    let a = rw_app().await;
    let t0 = (now_ms() / 60_000) * 60_000 - 10 * 60_000;
    let (s, v) = write(
        &a.app,
        vec![
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "200"),
                ],
                &[(t0, 1.0), (t0 + 15_000, 4.0), (t0 + 30_000, 9.0)],
            ),
            series(
                &[("__name__", "queue_depth"), ("job", "worker")],
                &[(t0, 3.0), (t0 + 15_000, f64::from_bits(STALE))],
            ),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let got = query_until(&a.app, "http_requests_total", t0 + 30_000, |r| {
        !r.is_empty()
    })
    .await;
    assert_eq!(
        got,
        vec![(
            json!({"__name__": "http_requests_total", "code": "200", "job": "api"}),
            "9".to_string()
        )]
    );
    // Remote-write series carry their own labels only: no cloudwatch_namespace.
    let got = query_until(
        &a.app,
        "increase(http_requests_total[1m])",
        t0 + 30_000,
        |r| !r.is_empty(),
    )
    .await;
    // 8 over the 30 s of samples, extrapolated to the counter's zero 3.75 s before the first.
    assert_eq!(got[0].1, "9");
    // Before the marker the gauge answers; after it (within the 5-minute lookback) it does not.
    let got = query_until(&a.app, "queue_depth", t0 + 10_000, |r| !r.is_empty()).await;
    assert_eq!(got[0].1, "3");
    let got = query_until(&a.app, "queue_depth", t0 + 20_000, |r| r.is_empty()).await;
    assert!(got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_a_message() {
    let a = rw_app().await;
    let good = WriteRequest {
        timeseries: vec![series(&[("__name__", "up")], &[(now_ms(), 1.0)])],
        metadata: vec![],
    };
    // Protobuf without the snappy it claims.
    let (s, v) = call("POST", "/api/v1/write")
        .header("content-encoding", "snappy")
        .raw(prost::Message::encode_to_vec(&good))
        .send(&a.app)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("snappy"), "{v}");
    // No Content-Encoding: read as snappy, as Prometheus does.
    let (s, v) = call("POST", "/api/v1/write")
        .raw(b"definitely not snappy".to_vec())
        .send(&a.app)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("snappy"), "{v}");
    // Snappy around something that is not a WriteRequest.
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0x0a, 0xff, 0xff, 0xff, 0x0f])
        .unwrap();
    let (s, v) = call("POST", "/api/v1/write")
        .header("content-encoding", "snappy")
        .raw(garbage)
        .send(&a.app)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("WriteRequest"),
        "{v}"
    );
    // An encoding nobody speaks here.
    let (s, v) = call("POST", "/api/v1/write")
        .header("content-encoding", "br")
        .raw(good.to_body())
        .send(&a.app)
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    // Without a token.
    let (s, _) = call("POST", "/api/v1/write")
        .token(None)
        .header("content-encoding", "snappy")
        .raw(good.to_body())
        .send(&a.app)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The good one still goes in.
    let (s, v) = write(&a.app, good.timeseries.clone()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_samples_are_named_and_the_rest_is_kept() {
    let a = rw_app().await;
    let t0 = (now_ms() / 60_000) * 60_000 - 10 * 60_000;
    let temp = [("__name__", "temperature"), ("room", "a")];
    let (s, v) = write(&a.app, vec![series(&temp, &[(t0 + 60_000, 20.0)])]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let mut hist = series(&[("__name__", "latency")], &[]);
    hist.histograms = vec![vec![]];
    let (s, v) = write(
        &a.app,
        vec![
            // Older than the stored sample, the same time with another value, the same
            // sample again (a resend: no error, stored once), and a newer one that is kept.
            series(
                &temp,
                &[
                    (t0 + 30_000, 1.0),
                    (t0 + 60_000, 99.0),
                    (t0 + 60_000, 20.0),
                    (t0 + 90_000, 22.0),
                ],
            ),
            // A timestamp in microseconds (far ahead) and one older than raw retention.
            series(
                &[("__name__", "bounds"), ("job", "j")],
                &[(t0 * 1000, 1.0), (t0 - 16 * 86_400_000, 1.0), (t0, 3.0)],
            ),
            series(&[("job", "nameless")], &[(t0, 1.0)]),
            series(&[("__name__", "x"), ("bad.label", "v")], &[(t0, 1.0)]),
            hist,
            series(&[("__name__", "kept"), ("job", "j")], &[(t0 + 90_000, 5.0)]),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let m = v["message"].as_str().unwrap();
    for want in [
        "7 samples refused",
        "2 out of bounds",
        "1 out of order",
        "1 duplicate sample for timestamp",
        "no __name__",
        "invalid label name \"bad.label\"",
        "native histogram",
        "the other 4 were stored",
    ] {
        assert!(m.contains(want), "{want:?} not in {m}");
    }
    let got = query_until(&a.app, "temperature", t0 + 90_000, |r| {
        r.first().is_some_and(|x| x.1 == "22")
    })
    .await;
    assert_eq!(got.len(), 1);
    query_until(&a.app, "kept", t0 + 90_000, |r| r.len() == 1).await;
    // The resent sample is stored once; of `bounds` only the sample in range.
    let got = query_until(
        &a.app,
        "count_over_time(temperature[10m])",
        t0 + 90_000,
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(got[0].1, "2", "{got:?}");
    let got = query_until(&a.app, "count_over_time(bounds[1h])", t0 + 60_000, |r| {
        !r.is_empty()
    })
    .await;
    assert_eq!(got[0].1, "1", "{got:?}");
    // The refused older sample (t0+30 s) was not stored: at t0+45 s there is no sample.
    let got = query_until(&a.app, "temperature", t0 + 45_000, |_| true).await;
    assert!(got.is_empty(), "{got:?}");
}

// OTLP metrics (`POST /v1/metrics`) share the samples path; the SDK test is
// scripts/tests/cwlogs/test_otlp.py.

async fn otlp(app: &Router, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    call("POST", "/v1/metrics")
        .header("content-type", content_type)
        .raw(body)
        .send(app)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_metrics_are_stored_and_untranslatable_points_are_partial_success() {
    let a = rw_app().await;
    let t = (now_ms() / 1000) * 1000;
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "process.open_fds", "unit": "{fd}", "gauge": {"dataPoints": [
                {"timeUnixNano": ns(t - 1000), "asInt": "12"},
                // A number where OTLP/JSON writes a string: taken too.
                {"timeUnixNano": t * 1_000_000, "asDouble": 14.0}]}},
            {"name": "rpc.latency", "unit": "s", "exponentialHistogram": {
                "aggregationTemporality": 2,
                "dataPoints": [{"attributes": [], "startTimeUnixNano": "0",
                                "timeUnixNano": ns(t), "count": "1", "scale": 0,
                                "zeroCount": "0", "flags": 0, "exemplars": [],
                                "zeroThreshold": 0.0,
                                "positive": {"offset": 0, "bucketCounts": ["1"]}}]}}
        ]}]
    }]});
    let (s, v) = otlp(&a.app, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], 1, "{v}");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exponential histogram"),
        "{v}"
    );
    let got = query_until(&a.app, "process_open_fds", t, |r| !r.is_empty()).await;
    assert_eq!(got[0].1, "14");
    assert_eq!(got[0].0["job"], "api", "{got:?}");
    // Sent again: the newest sample is a no-op, the older one is out of order (as in
    // Prometheus's OTLP receiver).
    let (s, v) = otlp(&a.app, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], 2, "{v}");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("1 out of order"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_bad_and_exploding_bodies_are_refused() {
    let a = rw_app().await;
    let (s, v) = otlp(&a.app, "application/x-protobuf", vec![0x0a, 0xff, 0xff]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("ExportMetricsServiceRequest")
    );
    let (s, _) = otlp(&a.app, "text/plain", b"x".to_vec()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A 100 KiB resource attribute repeated in 3,000 series: 300 MB of labels from 200 KB.
    let big = "x".repeat(100 << 10);
    let points: Vec<Value> = (0..3_000)
        .map(|i| {
            json!({"timeUnixNano": "1", "asInt": "1",
                        "attributes": [{"key": "i", "value": {"intValue": i.to_string()}}]})
        })
        .collect();
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "blob", "value": {"stringValue": big}}]},
        "scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": points}}]}]
    }]});
    let (s, v) = otlp(&a.app, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("with their labels"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_of_series_past_the_cardinality_limit_are_refused_in_the_answer() {
    let a = metrics_app(MetricStoreConfig {
        max_series_per_namespace: 2,
        ..MetricStoreConfig::default()
    })
    .await;
    let app = a.app;
    let t = now_ms();
    let (s, v) = write(
        &app,
        vec![
            series(&[("__name__", "a")], &[(t, 1.0)]),
            series(&[("__name__", "b")], &[(t, 1.0)]),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    query_until(&app, "count({__name__=~\"a|b\"})", t, |r| {
        r.first().is_some_and(|x| x.1 == "2")
    })
    .await;
    let (s, v) = write(
        &app,
        vec![
            series(&[("__name__", "c")], &[(t, 1.0), (t + 1, 2.0)]),
            series(&[("__name__", "a")], &[(t + 1, 5.0)]),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains("2 of new series past the metric store's series limits"),
        "{m}"
    );
    assert!(m.contains("the other 1 were stored"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_scope_schema_urls_count_against_the_expansion_guard() {
    let a = rw_app().await;
    // A 1 MiB schema URL on the scope is a label of every one of 2,500 series.
    let points: Vec<Value> = (0..2_500)
        .map(|i| {
            json!({"timeUnixNano": "1", "asInt": "1",
                        "attributes": [{"key": "i", "value": {"intValue": i.to_string()}}]})
        })
        .collect();
    let body = json!({"resourceMetrics": [{"scopeMetrics": [{
        "scope": {"name": "s"}, "schemaUrl": "u".repeat(1 << 20),
        "metrics": [{"name": "g", "gauge": {"dataPoints": points}}]
    }]}]});
    let (s, v) = otlp(&a.app, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}
