//! Test support: an in-memory Source.

#![allow(dead_code)]

use kinsight_promql::{Labels, Matcher, STALE_NAN_BITS, Series, Source};

pub fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    )
}

#[derive(Default, Clone)]
pub struct MemSource {
    pub series: Vec<Series>,
}

impl MemSource {
    pub fn add(&mut self, pairs: &[(&str, &str)], samples: Vec<(i64, f64)>) {
        self.series.push(Series {
            labels: labels(pairs),
            samples,
        });
    }
}

impl Source for MemSource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, String> {
        Ok(self
            .series
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|s| Series {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= start_ms && t <= end_ms)
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }
}
