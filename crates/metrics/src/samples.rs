//! Prometheus-model samples — what remote write and OTLP metrics bring in (issue 17) — and
//! their durable form: the server makes one encoded [`SampleSeries`] list durable as one WAL
//! record of kind "samples" before it answers, and the metric store ingests it from there
//! ([`crate::MetricStore::ingest_samples`]), live and on replay, like EMF datapoints.
//!
//! Samples are stored in the `Prometheus` namespace ([`crate::labels::PROMETHEUS_NAMESPACE`]):
//! the metric name is the series' `__name__`, every other label a dimension. Values are kept
//! bit for bit, NaN and Prometheus's staleness marker included (the PromQL engine honours
//! markers; CloudWatch-style statistics skip non-finite values).
//!
//! Encoding (little-endian): `u8` version (1), `u32` series count, then per series the name
//! (`u32` length + UTF-8), `u32` label count, each label as name and value (`u32` length +
//! UTF-8), `u32` sample count and per sample `i64` timestamp (ms) + `u64` value bits.

use std::collections::BTreeMap;

/// One series and its samples, in the order received.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSeries {
    /// The metric name (`__name__`).
    pub name: String,
    /// Every label but `__name__`.
    pub labels: BTreeMap<String, String>,
    /// (timestamp ms, value).
    pub samples: Vec<(i64, f64)>,
}

const VERSION: u8 = 1;

/// Encodes series for the WAL.
pub fn encode(series: &[SampleSeries]) -> Vec<u8> {
    let size: usize = series
        .iter()
        .map(|s| {
            8 + s.name.len()
                + s.labels
                    .iter()
                    .map(|(k, v)| 8 + k.len() + v.len())
                    .sum::<usize>()
                + 4
                + 16 * s.samples.len()
        })
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(VERSION);
    put_u32(&mut out, series.len());
    for s in series {
        put_str(&mut out, &s.name);
        put_u32(&mut out, s.labels.len());
        for (k, v) in &s.labels {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        put_u32(&mut out, s.samples.len());
        for &(t, v) in &s.samples {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    out
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Requests are capped far below 4 GiB before anything is encoded.
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("samples record truncated at byte {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u32()?;
        let at = self.pos;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| format!("samples record: invalid UTF-8 at byte {at}"))
    }
    /// A count of items of at least `min` bytes each: more than the rest could hold is garbage.
    fn count(&mut self, min: usize) -> Result<usize, String> {
        let n = self.u32()?;
        if n > (self.b.len() - self.pos) / min {
            return Err(format!("samples record: implausible count {n}"));
        }
        Ok(n)
    }
}

/// Decodes a WAL record written by [`encode`]; garbage yields an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Vec<SampleSeries>, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.take(1)?[0];
    if v != VERSION {
        return Err(format!("samples record version {v} is not supported"));
    }
    let n = r.count(12)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?;
        let nl = r.count(8)?;
        let mut labels = BTreeMap::new();
        for _ in 0..nl {
            let k = r.str()?;
            let v = r.str()?;
            labels.insert(k, v);
        }
        let ns = r.count(16)?;
        let mut samples = Vec::with_capacity(ns);
        for _ in 0..ns {
            let t = r.u64()? as i64;
            let v = f64::from_bits(r.u64()?);
            samples.push((t, v));
        }
        out.push(SampleSeries {
            name,
            labels,
            samples,
        });
    }
    if r.pos != bytes.len() {
        return Err(format!(
            "samples record: {} trailing bytes",
            bytes.len() - r.pos
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_bit_for_bit() {
        let s = vec![
            SampleSeries {
                name: "up".into(),
                labels: [("job".to_string(), "node".to_string())].into(),
                samples: vec![
                    (1, 1.0),
                    (2, f64::from_bits(0x7ff0000000000002)),
                    (3, f64::NAN),
                ],
            },
            SampleSeries {
                name: "x".into(),
                labels: BTreeMap::new(),
                samples: vec![],
            },
        ];
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].name, "up");
        assert_eq!(back[0].labels, s[0].labels);
        let bits: Vec<u64> = back[0].samples.iter().map(|p| p.1.to_bits()).collect();
        assert_eq!(
            bits,
            vec![1.0f64.to_bits(), 0x7ff0000000000002, f64::NAN.to_bits()]
        );
        assert!(back[1].samples.is_empty());
    }

    #[test]
    fn refuses_other_versions_and_trailing_bytes() {
        assert!(decode(&[2, 0, 0, 0, 0]).is_err());
        let mut b = encode(&[]);
        b.push(0);
        assert!(decode(&b).unwrap_err().contains("trailing"));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
