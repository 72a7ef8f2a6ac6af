//! Prometheus text exposition as the elected agent reads it from the API server's `/metrics`
//! (`kinsight_agent::prometheus::TextParser`), and the ControlPlane events made of the samples
//! it keeps (`kinsight_agent::perf::control_plane`) over two scrapes: the input, then the
//! same samples with every value doubled.
//!
//! Invariants: no panic; a text read whole reads the same with only the control-plane series
//! kept, giving exactly those of its samples, in order; every sample has a valid metric name
//! and valid, distinct label names; every ControlPlane event is a JSON object whose metric
//! fields are numbers (counter increases never negative) or statistic sets of a positive
//! count.

use kinsight_agent::perf::control_plane::wanted;
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs};
use kinsight_agent::prometheus::{Sample, parse_text};
use kinsight_model::catalogue::control_plane::{self, Kind};
use serde_json::Value;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(all) = parse_text(&text, |_| true) else {
        return;
    };
    for s in &all {
        check_sample(s);
    }
    let kept = parse_text(&text, wanted).expect("a text read whole reads with a filter");
    let expected: Vec<&Sample> = all.iter().filter(|s| wanted(&s.name)).collect();
    same_samples(&expected, &kept);
    if kept.is_empty() {
        return;
    }
    let mut c = Collector::new(
        CollectorSettings {
            cluster_name: "fuzz".into(),
            node_name: "node-1".into(),
            enhanced: true,
            prefer_full_pod_name: true,
            disable_metric_extraction: false,
        },
        std::path::Path::new("/nonexistent/kinsight-fuzz"),
    );
    let doubled: Vec<Sample> = kept
        .iter()
        .map(|s| Sample {
            value: s.value * 2.0,
            ..s.clone()
        })
        .collect();
    for scrape in [&kept, &doubled] {
        let events = c.collect(
            0,
            1_767_225_600_000,
            &Inputs {
                control_plane: Some(scrape),
                ..Default::default()
            },
        );
        for ev in events.iter().filter(|e| e.fields["Type"] == "ControlPlane") {
            let doc: Value = serde_json::from_str(&ev.to_json()).expect("an event is JSON");
            let doc = doc.as_object().expect("an event is an object");
            for (k, v) in doc {
                let Some(kind) = kind_of(k) else { continue };
                match kind {
                    Kind::Histogram => {
                        let count = v["Count"].as_f64().expect("a statistic set");
                        assert!(count > 0.0 && v["Sum"].is_number(), "{k}: {v}");
                    }
                    Kind::Counter => assert!(v.as_f64().is_some_and(|n| n >= 0.0), "{k}: {v}"),
                    Kind::Gauge => assert!(v.is_number(), "{k}: {v}"),
                }
            }
        }
    }
}

fn kind_of(field: &str) -> Option<Kind> {
    if field == control_plane::REQUEST_TOTAL_5XX {
        return Some(Kind::Counter);
    }
    control_plane::METRICS
        .iter()
        .find(|(m, _)| *m == field)
        .map(|(_, k)| *k)
}

/// The kept samples are the expected ones, values bit for bit (NaN compares unequal).
fn same_samples(expected: &[&Sample], kept: &[Sample]) {
    assert_eq!(
        expected.len(),
        kept.len(),
        "the filter keeps what it accepts"
    );
    for (e, k) in expected.iter().zip(kept) {
        assert_eq!((&e.name, &e.labels), (&k.name, &k.labels));
        assert_eq!(e.value.to_bits(), k.value.to_bits());
    }
}

fn check_sample(s: &Sample) {
    let name_ok = |n: &str, colon: bool| {
        let mut b = n.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || (colon && c == b':'))
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':'))
    };
    assert!(name_ok(&s.name, true), "{s:?}");
    for (i, (n, _)) in s.labels.iter().enumerate() {
        assert!(name_ok(n, false), "{s:?}");
        assert!(!s.labels[..i].iter().any(|(m, _)| m == n), "{s:?}");
    }
}
