//! `POST /api/v1/write` bodies (Prometheus remote write 1.0, `kinsight_metrics::remote_write`):
//! the first byte picks the layout — bit 0 set: the rest is a raw protobuf that the target
//! snappy-compresses first (so the fuzzer reaches the protobuf and conversion rules rather than
//! stopping at snappy's framing); clear: the rest is the body as sent.
//!
//! Invariants: no panic; a body decodes or is refused with an error naming snappy, the size
//! limit or the protobuf; decoding never allocates past the limit; every sample of the request
//! is either converted or counted as refused; converted series have valid metric and label
//! names and no empty label values; the WAL encoding of the series round-trips bit for bit;
//! after the order rule, each series' timestamps increase (a repeated one carries the same
//! value: a resend).

use kinsight_metrics::remote_write::{OrderGate, convert, decode, is_valid_metric_name};
use kinsight_metrics::samples;

const MAX: usize = 1 << 20;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode & 1 != 0 {
        match snap::raw::Encoder::new().compress_vec(rest) {
            Ok(b) => b,
            Err(_) => return,
        }
    } else {
        rest.to_vec()
    };
    let req = match decode(&body, MAX) {
        Ok(r) => r,
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("snappy") || m.contains("decompresses") || m.contains("protobuf"),
                "{m}"
            );
            return;
        }
    };
    let total: u64 = req
        .timeseries
        .iter()
        .map(|t| (t.samples.len() + t.histograms.len()) as u64)
        .sum();
    let mut c = convert(req);
    let kept: u64 = c.series.iter().map(|s| s.samples.len() as u64).sum();
    assert_eq!(kept + c.refused, total);
    for s in &c.series {
        assert!(is_valid_metric_name(&s.name), "{:?}", s.name);
        for (k, v) in &s.labels {
            assert!(kinsight_metrics::labels::is_valid_label_name(k), "{k:?}");
            assert!(!v.is_empty());
        }
    }
    let back = samples::decode(&samples::encode(&c.series)).expect("own encoding decodes");
    assert_eq!(back.len(), c.series.len());
    for (a, b) in back.iter().zip(&c.series) {
        assert_eq!((&a.name, &a.labels), (&b.name, &b.labels));
        let bits = |s: &[(i64, f64)]| s.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&a.samples), bits(&b.samples));
    }
    let mut gate = OrderGate::new(64);
    gate.admit(&mut c.series, |_, _| None);
    for s in &c.series {
        // Series of one request may repeat a label set: each is checked against the last.
        // A timestamp repeats only as a resend of the same value.
        assert!(s.samples.windows(2).all(|w| w[0].0 < w[1].0
            || (w[0].0 == w[1].0 && w[0].1.to_bits() == w[1].1.to_bits())));
    }
}
