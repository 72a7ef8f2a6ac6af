//! Statistics over the samples of one period: the five classic ones and percentiles
//! (reference §6.1 "Statistic"), plus the partial aggregate they are computed from.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A statistic of CloudWatch's `Statistic` / `ExtendedStatistic` vocabulary that kinsight
/// computes. Percentiles are `pNN` or `pNN.NN` (0 < NN ≤ 100, at most two decimals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// Percentile in (0, 100].
    Percentile(f64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown statistic {0:?}: expected SampleCount, Average, Sum, Minimum, Maximum or a percentile pNN / pNN.NN"
)]
pub struct StatisticParseError(pub String);

impl Statistic {
    /// The five statistics CloudWatch calls "Statistic" (as opposed to "ExtendedStatistic").
    pub fn is_extended(&self) -> bool {
        matches!(self, Statistic::Percentile(_))
    }

    /// Computes the statistic over one period's summary; `None` when the period has no sample
    /// (CloudWatch returns no datapoint for such a period).
    pub fn compute(&self, s: &SlotSummary) -> Option<f64> {
        if s.count == 0 {
            return None;
        }
        Some(match self {
            Statistic::SampleCount => s.count as f64,
            Statistic::Average => s.sum / s.count as f64,
            Statistic::Sum => s.sum,
            Statistic::Minimum => s.min,
            Statistic::Maximum => s.max,
            Statistic::Percentile(p) => return nearest_rank(&s.values, *p),
        })
    }
}

/// The percentile by the nearest-rank definition: the smallest sample such that at least
/// `p` percent of the samples are less than or equal to it, i.e. the sample of rank
/// `ceil(p / 100 × n)` in ascending order. It is always one of the samples, `p100` is the
/// maximum. (CloudWatch documents percentiles as "p99: 99 % of the samples are lower"; the
/// exact interpolation of Logs Insights' `pct` is not documented — reference §10 — so
/// kinsight fixes this definition for both metric queries and `pct`.)
pub fn nearest_rank(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    nearest_rank_in_place(&mut values.to_vec(), p)
}

/// [`nearest_rank`] on a scratch slice it may reorder.
pub fn nearest_rank_in_place(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = values.len();
    // Rank computed in integer hundredths of a percent to avoid 0.1-style float surprises:
    // p has at most two decimals.
    let p_hundredths = (p * 100.0).round() as u64; // ≤ 10,000
    let rank = (p_hundredths * n as u64).div_ceil(10_000) as usize;
    let idx = rank.clamp(1, n) - 1;
    let (_, nth, _) = values.select_nth_unstable_by(idx, f64::total_cmp);
    Some(*nth)
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::SampleCount => f.write_str("SampleCount"),
            Statistic::Average => f.write_str("Average"),
            Statistic::Sum => f.write_str("Sum"),
            Statistic::Minimum => f.write_str("Minimum"),
            Statistic::Maximum => f.write_str("Maximum"),
            Statistic::Percentile(p) => {
                // Canonical form: p99, p99.9, p99.99 (no trailing zeros).
                let s = format!("{p:.2}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                write!(f, "p{s}")
            }
        }
    }
}

impl FromStr for Statistic {
    type Err = StatisticParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || StatisticParseError(s.to_string());
        Ok(match s {
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => {
                let rest = s
                    .strip_prefix('p')
                    .or_else(|| s.strip_prefix('P'))
                    .ok_or_else(err)?;
                // Digits, optionally '.' and one or two digits; no sign, no exponent.
                let (int, frac) = match rest.split_once('.') {
                    Some((i, f)) => (i, Some(f)),
                    None => (rest, None),
                };
                let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
                if !digits(int) || int.len() > 3 || frac.is_some_and(|f| !digits(f) || f.len() > 2)
                {
                    return Err(err());
                }
                let p: f64 = rest.parse().map_err(|_| err())?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(err());
                }
                Statistic::Percentile(p)
            }
        })
    }
}

impl Serialize for Statistic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Statistic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A partial aggregate: what the rollup tiers store per bucket. Merging two of them is exact
/// for count, sum, min and max, which is why rollups can answer every statistic but
/// percentiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Agg {
    pub fn of(v: f64) -> Agg {
        Agg {
            count: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    pub fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, o: &Agg) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// Everything known about one period of one series: the aggregate, and the samples
/// themselves when a percentile was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotSummary {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The samples, only filled when the query needs percentiles.
    pub values: Vec<f64>,
}

impl Default for SlotSummary {
    fn default() -> Self {
        SlotSummary {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            values: Vec::new(),
        }
    }
}

impl SlotSummary {
    pub(crate) fn add_value(&mut self, v: f64, keep: bool) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if keep {
            self.values.push(v);
        }
    }

    pub(crate) fn add_agg(&mut self, a: &Agg) {
        self.count += a.count;
        self.sum += a.sum;
        self.min = self.min.min(a.min);
        self.max = self.max.max(a.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_vocabulary() {
        for s in ["SampleCount", "Average", "Sum", "Minimum", "Maximum"] {
            assert_eq!(s.parse::<Statistic>().unwrap().to_string(), s);
        }
        assert_eq!(
            "p99".parse::<Statistic>().unwrap(),
            Statistic::Percentile(99.0)
        );
        assert_eq!("p99.9".parse::<Statistic>().unwrap().to_string(), "p99.9");
        assert_eq!("p99.99".parse::<Statistic>().unwrap().to_string(), "p99.99");
        assert_eq!("p100".parse::<Statistic>().unwrap().to_string(), "p100");
        assert_eq!("p50.50".parse::<Statistic>().unwrap().to_string(), "p50.5");
        for bad in [
            "p0", "p100.01", "p99.999", "p", "p-1", "pe1", "avg", "p1e2", "p.5", "",
        ] {
            assert!(
                bad.parse::<Statistic>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn nearest_rank_matches_its_definition() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(5.0));
        assert_eq!(nearest_rank(&v, 90.0), Some(9.0));
        assert_eq!(nearest_rank(&v, 90.01), Some(10.0));
        assert_eq!(nearest_rank(&v, 100.0), Some(10.0));
        assert_eq!(nearest_rank(&v, 0.01), Some(1.0));
        assert_eq!(nearest_rank(&[3.0], 99.0), Some(3.0));
        assert_eq!(nearest_rank(&[], 99.0), None);
        // 0.1-style decimals: 20 samples, p95 → rank 19 exactly.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 95.0), Some(19.0));
    }

    #[test]
    fn compute_on_an_empty_slot_is_none() {
        let s = SlotSummary::default();
        assert_eq!(Statistic::Average.compute(&s), None);
        let mut s = SlotSummary::default();
        s.add_value(2.0, true);
        s.add_value(4.0, true);
        assert_eq!(Statistic::Average.compute(&s), Some(3.0));
        assert_eq!(Statistic::SampleCount.compute(&s), Some(2.0));
        assert_eq!(Statistic::Percentile(50.0).compute(&s), Some(2.0));
    }
}
