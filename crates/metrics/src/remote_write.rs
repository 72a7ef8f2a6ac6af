//! Prometheus remote write 1.0 in (issue 17, docs/api.md "Remote write"): the request body
//! (snappy block format around a `prometheus.WriteRequest` protobuf), its conversion to
//! [`SampleSeries`], and the order rules Prometheus's TSDB applies to appended samples
//! ([`OrderGate`]).
//!
//! Conversion: `__name__` is required and names the metric; every other label must have a
//! valid Prometheus name and appear once; labels with empty values are dropped (Prometheus:
//! an empty value is no label). Exemplars and metadata are ignored; native histograms are
//! refused (this store keeps float samples). A refused series does not stop the others.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::labels::is_valid_label_name;
use crate::samples::SampleSeries;

/// The remote-write 1.0 messages (prometheus/prompb `remote.proto` and `types.proto`), the
/// fields this receiver reads.
pub mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Exemplars: ignored, kept as bytes so that their content is not parsed.
        #[prost(bytes = "vec", repeated, tag = "3")]
        pub exemplars: Vec<Vec<u8>>,
        /// Native histograms: refused, kept as bytes so that their content is not parsed.
        #[prost(bytes = "vec", repeated, tag = "4")]
        pub histograms: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    impl TimeSeries {
        /// A series of float samples: labels as (name, value), samples as (ms, value).
        pub fn new(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Self {
            TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            }
        }
    }

    impl WriteRequest {
        /// The snappy-compressed body a remote-write client sends.
        pub fn to_body(&self) -> Vec<u8> {
            let raw = prost::Message::encode_to_vec(self);
            // Compressing a buffer in memory cannot fail below snap's 4 GiB input limit.
            snap::raw::Encoder::new()
                .compress_vec(&raw)
                .unwrap_or_default()
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RemoteWriteError {
    #[error("the body is not snappy-compressed (block format): {0}")]
    Snappy(String),
    #[error("the body decompresses to {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("the body is not a remote-write WriteRequest protobuf: {0}")]
    Protobuf(String),
}

/// Decompresses and decodes a request body; the decompressed size is checked against `max`
/// before anything is allocated for it.
pub fn decode(body: &[u8], max: usize) -> Result<prompb::WriteRequest, RemoteWriteError> {
    let size =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if size > max {
        return Err(RemoteWriteError::TooLarge { size, max });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    prost::Message::decode(raw.as_slice()).map_err(|e| RemoteWriteError::Protobuf(e.to_string()))
}

/// What a request converts to: the series to store, and what was refused and why.
#[derive(Debug, Default, PartialEq)]
pub struct Converted {
    pub series: Vec<SampleSeries>,
    /// Samples (and native histogram samples) not kept.
    pub refused: u64,
    /// Up to [`MAX_REASONS`] distinct reasons.
    pub reasons: Vec<String>,
}

/// How many distinct refusal reasons an answer lists.
pub const MAX_REASONS: usize = 10;

impl Converted {
    pub fn refuse(&mut self, samples: u64, reason: String) {
        self.refused += samples;
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// Converts a decoded request (see the module documentation for the rules).
pub fn convert(req: prompb::WriteRequest) -> Converted {
    let mut out = Converted::default();
    for ts in req.timeseries {
        if !ts.histograms.is_empty() {
            out.refuse(
                ts.histograms.len() as u64,
                "native histogram samples are not supported (send classic histograms)".into(),
            );
        }
        if ts.samples.is_empty() {
            continue;
        }
        let n = ts.samples.len() as u64;
        let mut name = None;
        let mut labels = BTreeMap::new();
        let mut problem = None;
        for l in ts.labels {
            if l.name == "__name__" {
                if name.replace(l.value).is_some() {
                    problem = Some("label __name__ appears twice".to_string());
                }
                continue;
            }
            if !is_valid_label_name(&l.name) {
                problem = Some(format!("invalid label name {:?}", l.name));
                break;
            }
            if labels.contains_key(&l.name) {
                problem = Some(format!("label {} appears twice", l.name));
                break;
            }
            // An empty value is no label; a duplicate name with one is still a duplicate.
            labels.insert(l.name, l.value);
        }
        labels.retain(|_, v: &mut String| !v.is_empty());
        let name = match (problem, name) {
            (Some(p), _) => {
                out.refuse(n, format!("series refused: {p}"));
                continue;
            }
            (None, None) => {
                out.refuse(n, "series refused: no __name__ label".into());
                continue;
            }
            (None, Some(name)) if !is_valid_metric_name(&name) => {
                out.refuse(n, format!("series refused: invalid metric name {name:?}"));
                continue;
            }
            (None, Some(name)) => name,
        };
        out.series.push(SampleSeries {
            name,
            labels,
            samples: ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
        });
    }
    out
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus's order rule for appended samples: per series, a sample older than the newest
/// one is refused ("out of order"), one at the same timestamp is refused if its value differs
/// ("duplicate sample for timestamp") and kept if it is the same (a resend, which the metric
/// store stores once). It also turns OTLP delta points into cumulative values
/// ([`OrderGate::admit_delta`]).
///
/// The gate remembers the newest accepted sample of each series it saw; for a series it does
/// not remember it asks the store (`newest`), so a restart loses no rule. Memory is bounded:
/// past `capacity` series it forgets everything and asks the store again. On replicated
/// servers each replica has its own gate (replicas accept any batch); samples of one series
/// sent to two replicas at once are both kept.
pub struct OrderGate {
    newest: HashMap<u64, (i64, f64)>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

/// What the gate refused from one request.
#[derive(Debug, Default, PartialEq)]
pub struct GateRefusals {
    pub out_of_order: u64,
    pub duplicate_timestamp: u64,
}

impl GateRefusals {
    pub fn total(&self) -> u64 {
        self.out_of_order + self.duplicate_timestamp
    }
}

impl OrderGate {
    pub fn new(capacity: usize) -> Self {
        OrderGate {
            newest: HashMap::new(),
            capacity: capacity.max(1),
            hasher: Default::default(),
        }
    }

    fn key(&self, s: &SampleSeries) -> u64 {
        self.hasher.hash_one((&s.name, &s.labels))
    }

    fn newest_of(
        &mut self,
        key: u64,
        s: &SampleSeries,
        newest: &mut impl FnMut(&str, &BTreeMap<String, String>) -> Option<(i64, f64)>,
    ) -> Option<(i64, f64)> {
        if let Some(v) = self.newest.get(&key) {
            return Some(*v);
        }
        if self.newest.len() >= self.capacity {
            self.newest.clear();
        }
        newest(&s.name, &s.labels)
    }

    /// Drops the samples of `series` the order rule refuses (in place) and remembers the
    /// newest kept ones. Series left without samples are removed.
    pub fn admit(
        &mut self,
        series: &mut Vec<SampleSeries>,
        newest: impl FnMut(&str, &BTreeMap<String, String>) -> Option<(i64, f64)>,
    ) -> GateRefusals {
        self.each_sample(series, newest, |last, refused, (t, v)| match last {
            Some((lt, _)) if t < lt => {
                refused.out_of_order += 1;
                None
            }
            // The same sample again (a client's retry) is kept: it is appended with the
            // request that acknowledges it — the first copy may not be durable yet, or ever —
            // and the metric store drops it if it already holds it.
            Some((lt, lv)) if t == lt && lv.to_bits() == v.to_bits() => Some(v),
            Some((lt, _)) if t == lt => {
                refused.duplicate_timestamp += 1;
                None
            }
            _ => Some(v),
        })
    }

    /// Drops samples outside `[min_ms, max_ms]` (in place; series left without samples are
    /// removed) and returns how many: older than the store keeps raw samples, or too far ahead
    /// — a timestamp in the wrong unit, which would also hold its series' order rule hostage.
    pub fn bound(series: &mut Vec<SampleSeries>, min_ms: i64, max_ms: i64) -> u64 {
        let mut dropped = 0;
        for s in series.iter_mut() {
            let before = s.samples.len();
            s.samples.retain(|&(t, _)| (min_ms..=max_ms).contains(&t));
            dropped += (before - s.samples.len()) as u64;
        }
        series.retain(|s| !s.samples.is_empty());
        dropped
    }

    /// Forgets what the gate remembers of `series`: after their samples could not be made
    /// durable, a retry must be compared with the store, not with samples that were never
    /// stored.
    pub fn forget(&mut self, series: &[SampleSeries]) {
        for s in series {
            let key = self.key(s);
            self.newest.remove(&key);
        }
    }

    /// Like [`Self::admit`] for series whose values are increments (OTLP delta sums and
    /// histograms): each kept value becomes the newest value (0 when there is none, or it is
    /// not a number) plus the increment, so the series is a cumulative counter.
    pub fn admit_delta(
        &mut self,
        series: &mut Vec<SampleSeries>,
        newest: impl FnMut(&str, &BTreeMap<String, String>) -> Option<(i64, f64)>,
    ) -> GateRefusals {
        self.each_sample(series, newest, |last, refused, (t, d)| match last {
            Some((lt, _)) if t <= lt => {
                refused.out_of_order += 1;
                None
            }
            // A staleness marker (NaN) ends the series as it is; after it, or after any
            // non-number, counting starts again from zero.
            _ => {
                let base = last.map_or(0.0, |l| l.1);
                Some(if d.is_nan() || !base.is_finite() {
                    d
                } else {
                    base + d
                })
            }
        })
    }

    /// Runs `rule` over every sample with its series' newest (remembered or from the store):
    /// `Some(value)` keeps the sample with that value and makes it the newest, `None` drops
    /// it. Series left without samples are removed.
    fn each_sample(
        &mut self,
        series: &mut Vec<SampleSeries>,
        mut newest: impl FnMut(&str, &BTreeMap<String, String>) -> Option<(i64, f64)>,
        mut rule: impl FnMut(Option<(i64, f64)>, &mut GateRefusals, (i64, f64)) -> Option<f64>,
    ) -> GateRefusals {
        let mut refused = GateRefusals::default();
        for s in series.iter_mut() {
            let key = self.key(s);
            let mut last = self.newest_of(key, s, &mut newest);
            s.samples
                .retain_mut(|(t, v)| match rule(last, &mut refused, (*t, *v)) {
                    Some(kept) => {
                        *v = kept;
                        last = Some((*t, kept));
                        true
                    }
                    None => false,
                });
            if let Some(l) = last {
                self.newest.insert(key, l);
            }
        }
        series.retain(|s| !s.samples.is_empty());
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::prompb::*;
    use super::*;

    fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries::new(labels, samples)
    }

    #[test]
    fn body_round_trips_and_bad_bodies_say_why() {
        let req = WriteRequest {
            timeseries: vec![ts(&[("__name__", "up"), ("job", "a")], &[(1, 1.0)])],
            metadata: vec![],
        };
        assert_eq!(decode(&req.to_body(), 1 << 20).unwrap(), req);
        let plain = prost::Message::encode_to_vec(&req);
        assert!(matches!(
            decode(&plain, 1 << 20),
            Err(RemoteWriteError::Snappy(_)) | Err(RemoteWriteError::Protobuf(_))
        ));
        let garbage = snap::raw::Encoder::new()
            .compress_vec(&[0xff, 0xff, 0xff])
            .unwrap();
        assert!(matches!(
            decode(&garbage, 1 << 20),
            Err(RemoteWriteError::Protobuf(_))
        ));
        assert!(matches!(
            decode(&req.to_body(), 3),
            Err(RemoteWriteError::TooLarge { max: 3, .. })
        ));
    }

    #[test]
    fn conversion_keeps_good_series_and_says_why_others_were_refused() {
        let mut hist = ts(&[("__name__", "h")], &[]);
        hist.histograms = vec![vec![], vec![]];
        let req = WriteRequest {
            timeseries: vec![
                ts(
                    &[("__name__", "up"), ("job", "a"), ("empty", "")],
                    &[(1, 1.0), (2, 0.0)],
                ),
                ts(&[("job", "a")], &[(1, 1.0)]),
                ts(&[("__name__", "x"), ("bad-name", "v")], &[(1, 1.0)]),
                ts(&[("__name__", "x"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
                ts(&[("__name__", "9x")], &[(1, 1.0)]),
                hist,
            ],
            metadata: vec![],
        };
        let c = convert(req);
        assert_eq!(c.series.len(), 1);
        assert_eq!(c.series[0].name, "up");
        assert_eq!(
            c.series[0].labels,
            BTreeMap::from([("job".to_string(), "a".to_string())])
        );
        assert_eq!(c.series[0].samples, vec![(1, 1.0), (2, 0.0)]);
        assert_eq!(c.refused, 6);
        let all = c.reasons.join("\n");
        for want in [
            "no __name__",
            "invalid label name \"bad-name\"",
            "label a appears twice",
            "invalid metric name \"9x\"",
            "native histogram",
        ] {
            assert!(all.contains(want), "{want} missing in {all}");
        }
    }

    fn series(samples: &[(i64, f64)]) -> SampleSeries {
        SampleSeries {
            name: "c".into(),
            labels: BTreeMap::new(),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn gate_refuses_out_of_order_and_conflicting_duplicates_and_asks_the_store_once() {
        let mut gate = OrderGate::new(10);
        let asked = std::cell::Cell::new(0);
        let store = |_: &str, _: &BTreeMap<String, String>| {
            asked.set(asked.get() + 1);
            Some((100, 5.0))
        };
        let mut batch = vec![series(&[
            (90, 1.0),
            (100, 5.0),
            (100, 6.0),
            (110, 7.0),
            (105, 8.0),
            (120, 9.0),
        ])];
        let r = gate.admit(&mut batch, store);
        assert_eq!(
            r,
            GateRefusals {
                out_of_order: 2,
                duplicate_timestamp: 1
            }
        );
        // The resend of the newest sample is kept (the store keeps one copy).
        assert_eq!(batch[0].samples, vec![(100, 5.0), (110, 7.0), (120, 9.0)]);
        // Remembered: the store is not asked again, and 115 is now out of order.
        let mut batch = vec![series(&[(115, 1.0)])];
        assert_eq!(gate.admit(&mut batch, store).out_of_order, 1);
        assert!(batch.is_empty());
        assert_eq!(asked.get(), 1);
        // Forgotten (the write failed): the store is asked again, and 115 is kept.
        gate.forget(&[series(&[])]);
        let mut batch = vec![series(&[(115, 1.0)])];
        assert_eq!(gate.admit(&mut batch, store).total(), 0);
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn gate_forgets_past_its_capacity_and_asks_the_store_again() {
        let mut gate = OrderGate::new(1);
        let mut asked = 0;
        let mut store = |_: &str, _: &BTreeMap<String, String>| {
            asked += 1;
            None
        };
        for name in ["a", "b", "a"] {
            let mut s = vec![SampleSeries {
                name: name.into(),
                labels: BTreeMap::new(),
                samples: vec![(1, 1.0)],
            }];
            gate.admit(&mut s, &mut store);
        }
        assert_eq!(asked, 3);
        assert!(gate.newest.len() <= 1);
    }

    #[test]
    fn samples_out_of_bounds_are_dropped_and_counted() {
        let mut batch = vec![series(&[(5, 1.0), (10, 2.0), (20, 3.0), (i64::MIN, 0.0)])];
        assert_eq!(OrderGate::bound(&mut batch, 10, 15), 3);
        assert_eq!(batch[0].samples, vec![(10, 2.0)]);
        let mut batch = vec![series(&[(i64::MAX, 1.0)])];
        assert_eq!(OrderGate::bound(&mut batch, 0, 100), 1);
        assert!(batch.is_empty());
    }

    #[test]
    fn deltas_accumulate_onto_the_newest_value() {
        let mut gate = OrderGate::new(10);
        let mut batch = vec![series(&[(10, 2.0), (20, 3.0), (20, 1.0)])];
        let r = gate.admit_delta(&mut batch, |_, _| Some((5, 10.0)));
        assert_eq!(r.out_of_order, 1);
        assert_eq!(batch[0].samples, vec![(10, 12.0), (20, 15.0)]);
        // Starting from nothing, or from a staleness marker: from zero.
        let mut gate = OrderGate::new(10);
        let mut batch = vec![series(&[(10, 2.0)])];
        gate.admit_delta(&mut batch, |_, _| Some((5, f64::NAN)));
        assert_eq!(batch[0].samples, vec![(10, 2.0)]);
        // A staleness marker is kept as it is, and the next increment starts from zero.
        let stale = f64::from_bits(0x7ff0000000000002);
        let mut batch = vec![series(&[(20, stale), (30, 4.0)])];
        gate.admit_delta(&mut batch, |_, _| None);
        assert_eq!(batch[0].samples[0].1.to_bits(), stale.to_bits());
        assert_eq!(batch[0].samples[1], (30, 4.0));
    }
}
