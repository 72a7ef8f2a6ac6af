//! `pattern <expr>` (reference §5.3): the events' values of `expr` clustered into patterns,
//! one result row per pattern.
//!
//! How it is planned (by `planner::Planner::pattern`), all in DataFusion:
//!
//! 1. each value becomes its *shape* ([`shape`]): the tokens with numbers, hexadecimal ids,
//!    UUIDs, IP addresses and times masked, and its severity — the scalar function
//!    `pattern_key`; the event's `@timestamp` gives its bucket of the query's time range
//!    ([`Buckets`]);
//! 2. events are counted by (shape, bucket): an ordinary grouped aggregation, which spills to
//!    disk under memory pressure;
//! 3. one aggregate function (`pattern`, [`aggregate`]) takes those counts, sorts the
//!    distinct shapes and clusters them with Drain ([`drain`]) in that order — so the result
//!    depends on the data only, not on the order segments are read in — and returns the
//!    patterns as one list, unnested into rows sorted by `@sampleCount` descending, then
//!    `@pattern`.
//!
//! The result columns ([`kinsight_ql::pattern_fields`]), kinsight's definitions where the
//! reference is silent:
//!
//! - `@pattern`: the cluster's template, each variable part `<*>` (a masked value, or a
//!   token — or the part of a token between a shared prefix and suffix ending and starting
//!   with a punctuation mark — that differs between the pattern's events); tokens are
//!   separated by one space, or by nothing where the first event had no whitespace there;
//! - `@ratio`: `@sampleCount` over the number of events clustered (those where `expr` is not
//!   missing);
//! - `@sampleCount`: the number of events of the pattern;
//! - `@severityLabel`: the severity most of its events carry (`shape::severity`): `Fatal`,
//!   `Error`, `Warning`, `Info`, `Debug`, `Trace` or `Unknown` (ties: the more severe);
//! - `@patternId`: 32 hexadecimal digits, the FNV-1a 128-bit hash of `@pattern`: the same
//!   pattern has the same id in every query;
//! - `@tokens`: a JSON array, one object per `<*>` of `@pattern`, in order:
//!   `dynamicTokenPosition` (1, 2, …), `inferredTokenName` (`Number-1`, `IPAddress-2`,
//!   `UUID-3`, `Time-4`, `Hex-5`, `Text-6` for long blobs, `Token-7` when unknown),
//!   `tokenString` (the whole token it is part of, as shown in `@pattern`) and, for tokens
//!   that vary between events (not masked values, whose values are not kept),
//!   `enumerations`: up to [`ENUMERATED_VALUES`] values with their event counts, the most
//!   frequent;
//! - `@visualization`: a JSON object `{"startTime": ms, "periodMs": ms, "counts": [...]}`:
//!   the pattern's events per period from `startTime` over the query's time range, for a
//!   sparkline (about [`TARGET_BUCKETS`] periods of a round length).
//!
//! `diff` ([`previous_range`]): the planner reads the groups over both ranges, marks each
//! event with its range, and the events of the earlier range are counted in one extra bucket
//! past the current range's; the clustering sees the shapes of both, so a pattern is the same
//! in both ranges. Each row then also has `@previousSampleCount`, `@changeInCount` and
//! `@diff` (`new`, `gone`, `increased`, `decreased`, `unchanged`), and rows come largest change
//! first. The other columns are of the query's range (`@tokens` of a pattern that is gone:
//! of the earlier one); `@severityLabel` is of both.
//!
//! Bounds (hostile input costs at most these): a shape keeps [`shape::MAX_TOKENS`] tokens of
//! at most [`shape::MAX_TOKEN_BYTES`] bytes; at most [`MAX_SHAPES`] distinct shapes per query
//! (past that the query fails and says to narrow it); at most [`MAX_PATTERNS`] patterns
//! (past that, shapes that match no pattern join the closest pattern of their Drain leaf, or
//! the pattern `<*>`); the memory the function holds is counted in the query's memory pool.

pub(crate) mod aggregate;
pub(crate) mod drain;
pub(crate) mod shape;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use kinsight_ql::DiffPeriod;

use crate::functions::{all_scalar, rows_for, shape as shape_result, text_arg};
use crate::table::TimeRange;

/// Most distinct shapes one query may cluster.
pub const MAX_SHAPES: usize = 100_000;
/// Most patterns (Drain clusters) one query makes.
pub const MAX_PATTERNS: usize = 5_000;
/// Values listed per variable token in `@tokens`.
pub const ENUMERATED_VALUES: usize = 10;
/// Longest value listed in `@tokens`, in characters (longer ones are cut, with `…`).
pub const ENUMERATED_VALUE_CHARS: usize = 100;
/// About how many periods `@visualization` has.
pub const TARGET_BUCKETS: i64 = 30;

/// Drain's parameters: Drain3's defaults (depth 4: the token count, then the first token,
/// route a shape; at most 100 children a node), with the similarity threshold at one half.
pub(crate) const DRAIN: drain::Params = drain::Params {
    depth: 4,
    similarity: 0.5,
    max_children: 100,
    max_clusters: MAX_PATTERNS,
    max_leaf_clusters: 100,
};

/// The periods of `@visualization`: `count` periods of `period_ms` from `origin_ms` (a
/// multiple of the period) cover the query's time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Buckets {
    pub origin_ms: i64,
    pub period_ms: i64,
    pub count: usize,
}

/// Round period lengths, in milliseconds.
const ROUND_PERIODS_MS: &[i64] = &[
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
];

impl Buckets {
    /// The shortest round period giving at most about [`TARGET_BUCKETS`] periods.
    pub fn for_range(range: TimeRange) -> Buckets {
        let len = range.end_ms.saturating_sub(range.start_ms).max(1) as u64;
        let wanted = len.div_ceil(TARGET_BUCKETS as u64).max(1) as i64;
        let period_ms = ROUND_PERIODS_MS
            .iter()
            .copied()
            .find(|p| *p >= wanted)
            .unwrap_or(wanted);
        let origin_ms = range.start_ms.div_euclid(period_ms) * period_ms;
        let covered = range.end_ms.saturating_sub(origin_ms).max(1) as u64;
        let count = covered
            .div_ceil(period_ms as u64)
            .clamp(1, 2 * TARGET_BUCKETS as u64) as usize;
        Buckets {
            origin_ms,
            period_ms,
            count,
        }
    }

    /// The period of a bucket number computed by the plan, kept inside the range.
    pub fn index(&self, bucket: i64) -> usize {
        bucket.clamp(0, self.count as i64 - 1) as usize
    }
}

/// `pattern_key(value)`: the shape of a value as one string (`shape.rs`), null for null.
#[derive(Debug)]
pub(crate) struct PatternKey {
    masker: shape::Masker,
    signature: Signature,
}

impl PatternKey {
    pub(crate) fn new() -> Self {
        PatternKey {
            masker: shape::Masker::new(),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

// Every instance computes the same function.
impl PartialEq for PatternKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PatternKey {}

impl Hash for PatternKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ScalarUDFImpl for PatternKey {
    fn name(&self) -> &str {
        "pattern_key"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let input = text_arg(&args.args[0], rows)?;
        let mut out = StringBuilder::with_capacity(rows, input.value_data().len() + rows);
        for value in input.iter() {
            match value {
                Some(v) => out.append_value(self.masker.key(v)),
                None => out.append_null(),
            }
        }
        let out: ArrayRef = Arc::new(out.finish());
        shape_result(out, all_scalar(&args.args))
    }
}

pub(crate) fn key_function() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(PatternKey::new()))
}

/// The `pattern` aggregate; with `diff`, bucket `buckets.count` holds the compared range's
/// events.
pub(crate) fn aggregate_function(buckets: Buckets, diff: bool) -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(aggregate::Patterns::new(
        buckets, diff,
    )))
}

/// The range `diff` compares `range` with: the one just before it, or the same times a day, a
/// week or a calendar month earlier (a day of the month the earlier month lacks becomes its
/// last day, so that range may be a little shorter or longer).
pub fn previous_range(range: TimeRange, period: DiffPeriod) -> TimeRange {
    const DAY_MS: i64 = 86_400_000;
    let shift = |by: i64| TimeRange {
        start_ms: range.start_ms.saturating_sub(by),
        end_ms: range.end_ms.saturating_sub(by),
    };
    match period {
        DiffPeriod::PreviousPeriod => shift(range.end_ms.saturating_sub(range.start_ms)),
        DiffPeriod::PreviousDay => shift(DAY_MS),
        DiffPeriod::PreviousWeek => shift(7 * DAY_MS),
        DiffPeriod::PreviousMonth => {
            let month_earlier = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .and_then(|t| t.checked_sub_months(chrono::Months::new(1)))
                    .map_or(ms.saturating_sub(30 * DAY_MS), |t| t.timestamp_millis())
            };
            TimeRange {
                start_ms: month_earlier(range.start_ms),
                end_ms: month_earlier(range.end_ms),
            }
        }
    }
}

/// FNV-1a, 128 bits: a stable hash (the same on every machine and release) for `@patternId`.
pub(crate) fn pattern_id(pattern: &str) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for b in pattern.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    format!("{h:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_round_periods_and_cover_the_range() {
        let hour = 3_600_000;
        let b = Buckets::for_range(TimeRange {
            start_ms: 10 * hour + 123,
            end_ms: 11 * hour + 123,
        });
        assert_eq!(b.period_ms, 120_000);
        assert_eq!(b.origin_ms, 10 * hour);
        assert_eq!(b.count, 31);
        assert!(b.origin_ms + b.count as i64 * b.period_ms >= 11 * hour + 123);
        let b = Buckets::for_range(TimeRange {
            start_ms: 0,
            end_ms: 400 * 86_400_000,
        });
        assert!(b.count <= 2 * TARGET_BUCKETS as usize);
        assert_eq!(b.index(-5), 0);
        assert_eq!(b.index(1_000_000), b.count - 1);
        let b = Buckets::for_range(TimeRange {
            start_ms: 5,
            end_ms: 5,
        });
        assert_eq!(b.count, 1);
    }

    #[test]
    fn previous_ranges() {
        let day = 86_400_000;
        // 2026-03-31T10:00Z .. 2026-03-31T11:00Z
        let r = TimeRange {
            start_ms: 1_774_951_200_000,
            end_ms: 1_774_954_800_000,
        };
        let p = previous_range(r, DiffPeriod::PreviousPeriod);
        assert_eq!((p.start_ms, p.end_ms), (r.start_ms - 3_600_000, r.start_ms));
        let p = previous_range(r, DiffPeriod::PreviousDay);
        assert_eq!((p.start_ms, p.end_ms), (r.start_ms - day, r.end_ms - day));
        let p = previous_range(r, DiffPeriod::PreviousWeek);
        assert_eq!(p.start_ms, r.start_ms - 7 * day);
        // March 31st a month earlier is February 28th (2026 is no leap year).
        let p = previous_range(r, DiffPeriod::PreviousMonth);
        assert_eq!(p.start_ms, r.start_ms - 31 * day);
        assert_eq!(p.end_ms - p.start_ms, 3_600_000);
    }

    #[test]
    fn pattern_ids_are_stable() {
        // FNV-1a 128 of the empty string is its offset basis.
        assert_eq!(pattern_id(""), "6c62272e07bb014262b821756295c58d");
        assert_eq!(pattern_id("a <*>"), pattern_id("a <*>"));
        assert_ne!(pattern_id("a <*>"), pattern_id("b <*>"));
        assert_eq!(pattern_id("x").len(), 32);
    }
}
