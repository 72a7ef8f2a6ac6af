//! Resolution tiers: every sample is kept raw, and rolled up at ingest into 1-minute and
//! 1-hour buckets of (count, sum, min, max). A query picks the coarsest tier whose bucket
//! divides its period, so a 30-day graph reads 720 hourly rows per series instead of
//! hundreds of thousands of samples. Percentiles need the samples and always read `Raw`.

use serde::{Deserialize, Serialize};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Raw,
    Minute,
    Hour,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Raw, Tier::Minute, Tier::Hour];

    /// Bucket width; raw samples keep their millisecond timestamps.
    pub fn resolution_ms(self) -> i64 {
        match self {
            Tier::Raw => 1,
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
        }
    }

    /// Files are partitioned by time so that retention drops whole files and a query opens
    /// only the partitions it overlaps.
    pub fn partition_ms(self) -> i64 {
        match self {
            Tier::Raw | Tier::Minute => DAY_MS,
            Tier::Hour => 30 * DAY_MS,
        }
    }

    pub fn partition_of(self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.partition_ms()) * self.partition_ms()
    }

    pub fn bucket_of(self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.resolution_ms()) * self.resolution_ms()
    }

    pub fn code(self) -> u8 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => 1,
            Tier::Hour => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.code() == c)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::Minute => "minute",
            Tier::Hour => "hour",
        }
    }
}

/// How long each tier is kept. Defaults follow CloudWatch's retention schedule for 1-minute
/// and 1-hour data (15 and 455 days), with the minute rollups kept 63 days — the span of
/// CloudWatch's 5-minute data, so that month-long graphs at minute-multiples stay possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_ms: i64,
    pub hour_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_ms: 15 * DAY_MS,
            minute_ms: 63 * DAY_MS,
            hour_ms: 455 * DAY_MS,
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Raw => self.raw_ms,
            Tier::Minute => self.minute_ms,
            Tier::Hour => self.hour_ms,
        }
    }
}

/// The coarsest tier that can answer a period starting at `start_ms`: its buckets must tile
/// the period exactly (period and start both multiples of the bucket).
pub fn tier_for(period_ms: i64, start_ms: i64, needs_samples: bool) -> Tier {
    if needs_samples {
        return Tier::Raw;
    }
    for t in [Tier::Hour, Tier::Minute] {
        let r = t.resolution_ms();
        if period_ms % r == 0 && start_ms.rem_euclid(r) == 0 {
            return t;
        }
    }
    Tier::Raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_choice() {
        assert_eq!(tier_for(HOUR_MS, 0, false), Tier::Hour);
        assert_eq!(tier_for(DAY_MS, 0, false), Tier::Hour);
        assert_eq!(tier_for(5 * MINUTE_MS, 0, false), Tier::Minute);
        assert_eq!(tier_for(HOUR_MS, MINUTE_MS, false), Tier::Minute);
        assert_eq!(tier_for(HOUR_MS, 1, false), Tier::Raw);
        assert_eq!(tier_for(10_000, 0, false), Tier::Raw);
        assert_eq!(tier_for(HOUR_MS, 0, true), Tier::Raw);
        assert_eq!(Tier::Minute.partition_of(-1), -DAY_MS);
        assert_eq!(Tier::Minute.bucket_of(61_000), 60_000);
    }
}
