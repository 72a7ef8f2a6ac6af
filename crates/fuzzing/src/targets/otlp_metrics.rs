//! `POST /v1/metrics` bodies (OTLP/HTTP metrics, `kinsight_server::api::otlp` decoding and the
//! expansion guard, `kinsight_metrics::otlp` translation): the first byte's bit 0 picks the
//! media type (OTLP/JSON or protobuf); the rest is the body.
//!
//! Invariants: no panic; a body is decoded or refused with a 4xx; a request the expansion guard
//! passes translates into at most its bound of samples; every translated series has a valid
//! metric name and valid, non-empty label names; the WAL encoding round-trips.

use kinsight_metrics::labels::is_valid_label_name;
use kinsight_metrics::remote_write::is_valid_metric_name;
use kinsight_server::api::otlp::{MAX_METRIC_SAMPLES, check_metrics_expansion, decode_metrics};

pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let content_type = if mode & 1 != 0 {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let request = match decode_metrics(Some(content_type), body) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.code.status().is_client_error(), "{e:?}");
            return;
        }
    };
    if let Err(e) = check_metrics_expansion(&request) {
        assert_eq!(e.code.status(), 413, "{e:?}");
        return;
    }
    let t = kinsight_metrics::otlp::translate(&request);
    let series: Vec<_> = t.absolute.iter().chain(&t.delta).cloned().collect();
    let samples: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
    assert!(samples <= MAX_METRIC_SAMPLES);
    for s in &series {
        assert!(is_valid_metric_name(&s.name), "{:?}", s.name);
        for k in s.labels.keys() {
            assert!(is_valid_label_name(k), "{k:?}");
        }
    }
    let back = kinsight_metrics::samples::decode(&kinsight_metrics::samples::encode(&series))
        .expect("own encoding decodes");
    assert_eq!(back.len(), series.len());
}
