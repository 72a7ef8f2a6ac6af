//! [`MemorySource`]: series held in memory — what tests, the fuzz target and small embedders
//! evaluate over.

use crate::{Labels, Matcher, Series, Source};

/// Series in memory. `select` returns every series whose labels satisfy all matchers (an
/// absent label reads as `""`), with its samples in `[start_ms, end_ms]`; series without a
/// sample there are left out.
#[derive(Debug, Default, Clone)]
pub struct MemorySource {
    pub series: Vec<Series>,
}

impl MemorySource {
    /// Adds a series with these label pairs and samples (ascending timestamps).
    pub fn add(&mut self, pairs: &[(&str, &str)], samples: Vec<(i64, f64)>) {
        self.series.push(Series {
            labels: Labels::new(
                pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            ),
            samples,
        });
    }
}

impl Source for MemorySource {
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
