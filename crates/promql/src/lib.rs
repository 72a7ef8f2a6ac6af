//! kinsight-promql: a PromQL evaluator with Prometheus's float semantics, over any
//! [`Source`] of raw samples (the metric store implements it; the HTTP API calls
//! [`instant_query`] and [`range_query`]).
//!
//! Parsing is done by the `promql-parser` crate; evaluation is ours. The reference is
//! Prometheus 2.x as packaged by Debian (2.42, the oracle of the differential test in
//! `tests/`); where Prometheus 3 differs, we follow 2.x:
//!
//! * range selectors `x[5m]` take the samples in `[t - 5m, t]`, both ends inclusive
//!   (Prometheus 3 excludes the left end), and so do subqueries;
//! * an instant selector takes the latest sample in `[t - lookback, t]` (3.x: left-open);
//!   if that sample is a staleness marker ([`STALE_NAN_BITS`]) the series has no value;
//! * regular expressions are fully anchored and `.` does not match a newline (3.x: it does).
//!
//! Supported: number and string literals, instant and range selectors, `offset`, `@`
//! (including `start()` and `end()`), subqueries (default step one minute, Prometheus's
//! default evaluation interval), unary minus, arithmetic `+ - * / % ^ atan2`, comparisons
//! with and without `bool`, vector matching (`on`, `ignoring`, `group_left`, `group_right`,
//! with Prometheus's many-to-many and duplicate errors), `and`, `or`, `unless`; the
//! aggregations sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk, quantile,
//! count_values with `by`/`without`; the functions rate, increase, delta (Prometheus's
//! extrapolation), irate, idelta, resets, changes, deriv, predict_linear, avg/min/max/sum/
//! count/quantile/stddev/stdvar/last/present_over_time, absent, absent_over_time, abs, ceil,
//! floor, round, exp, ln, log2, log10, sqrt, sgn, the trigonometric functions, deg, rad, pi,
//! clamp, clamp_min, clamp_max, timestamp, time, vector, scalar, sort, sort_desc,
//! label_replace, label_join, histogram_quantile (classic `le` buckets), day_of_month,
//! day_of_week, day_of_year, days_in_month, hour, minute, month, year.
//!
//! Not supported (a `BadData` error naming it, never a silent wrong answer): native
//! histograms and the histogram_* functions other than histogram_quantile over classic
//! buckets (histogram_count, histogram_sum, histogram_fraction, histogram_avg, …),
//! limitk/limit_ratio, the experimental functions and syntax of newer Prometheus versions
//! that the parser knows (sort_by_label, sort_by_label_desc, mad_over_time,
//! first_over_time, ts_of_*_over_time, info, double_exponential_smoothing, integral,
//! max_of/min_of, start()/end()/step()/range() as functions, `fill` modifiers, `or` inside
//! label matchers), and extension nodes.
//!
//! Other differences: `@` is accepted on selectors and subqueries only (the parser refuses
//! it elsewhere, as Prometheus does); a subquery without a step uses one minute (Prometheus
//! uses its configured evaluation interval, one minute by default); the "vector cannot
//! contain metrics with the same labelset" check is made over a range-vector function's
//! whole output as in Prometheus 2.x, and per step elsewhere; Prometheus 3's left-open ranges are not
//! implemented (see above).
//!
//! Evaluation: a pre-pass loads every selector's samples once; then the expression is
//! evaluated step by step. A range query of a common shape (selectors, range functions over
//! range selectors and subqueries, aggregations, element-wise operations and functions, one-to-one
//! matching, histogram_quantile; see `plan.rs`) goes through the range path, which numbers
//! every series once per query and steps over them without rebuilding label sets; other
//! queries, and those whose evaluation would fail, go through the general evaluator. Both
//! compute the same answers, to the bit (a test compares them).
//!
//! Errors: [`PromError::BadData`] for what the query says (parse errors, bad arguments,
//! unsupported features; HTTP 400 `bad_data`), [`PromError::Execution`] for what the data
//! makes impossible (many-to-many matching, duplicate label sets; 422 `execution`),
//! [`PromError::Timeout`], [`PromError::TooManySamples`] and [`PromError::Source`] (the
//! source's own error).
//!
//! Limits: every sample loaded from the source and every point a range query or subquery
//! produces counts against [`Options::max_samples`], and every subquery inner step at least
//! one more (so that `x[30d:1ms]` over nothing stops at the limit); the timeout is checked
//! between steps, subquery inner steps included. Before parsing, [`check`] refuses
//! (`BadData`, naming the limit) text longer than [`MAX_QUERY_BYTES`], nested deeper than
//! [`MAX_NESTING_DEPTH`] brackets or with more than [`MAX_OPERATORS`] operators — the parser
//! and the evaluator recurse, and such a query would overflow a 2 MiB stack — and durations
//! written as numbers that are not finite or over [`MAX_DURATION_SECS`] (the parser panics on
//! `up[1e30]`); a panic of the parser is caught and refused as well. Evaluation times must
//! be within [`MAX_EVAL_TIME_MS`] of 1970; time arithmetic saturates or is done in i128.

mod aggregate;
mod eval;
mod functions;
mod guard;
mod memory;
mod plan;

pub use guard::{MAX_DURATION_SECS, MAX_NESTING_DEPTH, MAX_OPERATORS, MAX_QUERY_BYTES, check};
pub use memory::MemorySource;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use std::time::Duration;

use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;

use crate::eval::{Evaluator, Val, bad};

/// A label set, sorted by name, names unique; includes "__name__" for selected series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(pub Vec<(String, String)>);

impl Labels {
    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        // A linear scan: label sets are small, and one built through the public field may
        // not be sorted.
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sorts by name and keeps the last value of a repeated name.
    pub fn new(mut v: Vec<(String, String)>) -> Labels {
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Labels(v)
    }
}

/// A label matcher's operator: `=`, `!=`, `=~`, `!~`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Re,
    NotRe,
}

/// One label matcher of a selector (`__name__` for the metric name).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Option<regex::Regex>>> =
        RefCell::new(HashMap::new());
}

/// The fully anchored regex of a matcher value, compiled once per thread (as the parser
/// compiles it, Go's `{` literal quirk included); `None` if it does not compile.
fn matcher_regex(value: &str) -> Option<regex::Regex> {
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(r) = c.get(value) {
            return r.clone();
        }
        if c.len() > 1024 {
            c.clear();
        }
        let r = promql_parser::label::Matcher::new_matcher(
            promql_parser::parser::token::T_EQL_REGEX,
            String::new(),
            value.to_string(),
        )
        .ok()
        .and_then(|m| match m.op {
            promql_parser::label::MatchOp::Re(r) => Some(r),
            _ => None,
        });
        c.insert(value.to_string(), r.clone());
        r
    })
}

impl Matcher {
    /// Whether a label value satisfies the matcher; an absent label is the value "".
    /// Regular expressions are fully anchored, as in Prometheus.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Re | MatchOp::NotRe => {
                let m = matcher_regex(&self.value).is_some_and(|r| r.is_match(value));
                (self.op == MatchOp::Re) == m
            }
        }
    }
}

/// Raw samples of one series: (timestamp ms, value), ascending; a Prometheus staleness
/// marker is the NaN with bits [`STALE_NAN_BITS`], kept in the data and honoured by the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The bits of Prometheus's staleness marker NaN.
pub const STALE_NAN_BITS: u64 = 0x7ff0000000000002;

/// Where samples come from (the metric store implements it). Returns every series whose
/// labels satisfy ALL matchers, with its samples in [start_ms, end_ms] (both inclusive).
/// Series without samples in the range may be left out.
pub trait Source: Send + Sync {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, String>;
}

/// One element of an instant vector result (`t`: the evaluation time).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// A query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// How far back an instant selector looks for a sample (default 300_000, 5 minutes).
    pub lookback_ms: i64,
    /// Total points loaded or produced (default 50_000_000); over → TooManySamples.
    pub max_samples: usize,
    /// Wall-clock limit of one query (default 2 minutes).
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lookback_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// Parse errors, bad arguments, unsupported features: HTTP 400, errorType bad_data.
    #[error("{0}")]
    BadData(String),
    /// Errors the data causes (many-to-many matching, …): errorType execution, 422.
    #[error("{0}")]
    Execution(String),
    /// Over [`Options::timeout`]: errorType timeout.
    #[error("query timed out")]
    Timeout,
    /// Over [`Options::max_samples`]: errorType execution, like Prometheus.
    #[error("query processing would load too many samples into memory")]
    TooManySamples,
    /// The [`Source`] failed (errorType internal).
    #[error("{0}")]
    Source(String),
}

/// Parses `query` after [`check`]; a panic of the parser (the last line of defence against
/// input the check does not foresee) becomes a `BadData` error.
fn parse(query: &str) -> Result<Expr, PromError> {
    check(query)?;
    match std::panic::catch_unwind(|| promql_parser::parser::parse(query)) {
        Ok(r) => r.map_err(|e| bad(format!("parse error: {e}"))),
        Err(_) => Err(bad(
            "parse error: the query could not be parsed (a number out of range?)",
        )),
    }
}

/// Parses a series selector (the `match[]` parameter of the series and label APIs) into
/// alternatives (OR, from `{a="1" or b="2"}`) of matcher sets (AND), the metric name as a
/// `__name__` matcher; anything but a plain selector is `BadData`. Guarded as queries are.
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, PromError> {
    let expr = parse(s)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(bad(format!("{s:?} is not a series selector")));
    };
    let convert = |ms: &promql_parser::label::Matchers| -> Vec<Matcher> {
        let mut out = eval::convert_matchers(ms);
        if let Some(name) = &vs.name {
            out.push(Matcher {
                name: eval::METRIC_NAME.into(),
                op: MatchOp::Equal,
                value: name.clone(),
            });
        }
        out
    };
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![convert(&vs.matchers)]);
    }
    Ok(vs
        .matchers
        .or_matchers
        .iter()
        .map(|m| {
            convert(&promql_parser::label::Matchers {
                matchers: m.clone(),
                or_matchers: Vec::new(),
            })
        })
        .collect())
}

/// Latest (and, negated, earliest) evaluation time accepted, in ms: i64::MAX / 4, about
/// 73 million years from 1970, so that time arithmetic with offsets, `@` and ranges (each
/// clamped to the same bound) stays far from overflowing.
pub const MAX_EVAL_TIME_MS: i64 = i64::MAX / 4;

fn check_time(t_ms: i64) -> Result<(), PromError> {
    if t_ms.unsigned_abs() > MAX_EVAL_TIME_MS as u64 {
        return Err(bad(format!(
            "evaluation time {t_ms} ms out of range: at most {MAX_EVAL_TIME_MS} ms from 1970"
        )));
    }
    Ok(())
}

/// Evaluates `query` at `t_ms`.
pub fn instant_query(
    src: &dyn Source,
    query: &str,
    t_ms: i64,
    opts: &Options,
) -> Result<Value, PromError> {
    check_time(t_ms)?;
    let expr = parse(query)?;
    let mut ev = Evaluator::new(src, opts, t_ms, t_ms);
    ev.prepare(&expr, t_ms, t_ms)?;
    Ok(match ev.eval(&expr, t_ms)? {
        Val::Scalar(v) => Value::Scalar { t: t_ms, v },
        Val::Str(v) => Value::String { t: t_ms, v },
        Val::Vector(v) => {
            eval::check_unique(&v)?;
            Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: s.labels,
                        t: t_ms,
                        v: s.v,
                    })
                    .collect(),
            )
        }
        Val::Matrix(m) => Value::Matrix(m),
    })
}

/// Evaluates `query` at start, start+step, … <= end. Result is a Value::Matrix (series
/// sorted by labels), or an error, like Prometheus.
pub fn range_query(
    src: &dyn Source,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &Options,
) -> Result<Value, PromError> {
    range_query_with(src, query, start_ms, end_ms, step_ms, opts, true)
}

/// [`range_query`]; `use_plan`: through the range path of [`plan`] when the query's shape
/// allows (always, but for the tests that compare both paths).
fn range_query_with(
    src: &dyn Source,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &Options,
    use_plan: bool,
) -> Result<Value, PromError> {
    if step_ms <= 0 {
        return Err(bad(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if end_ms < start_ms {
        return Err(bad("end timestamp must not be before start time"));
    }
    check_time(start_ms)?;
    check_time(end_ms)?;
    let expr = parse(query)?;
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        other => {
            let name = match other {
                ValueType::Matrix => "range vector".to_string(),
                o => o.to_string(),
            };
            return Err(bad(format!(
                "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
            )));
        }
    }
    let mut ev = Evaluator::new(src, opts, start_ms, end_ms);
    ev.prepare(&expr, start_ms, end_ms)?;
    if use_plan {
        if let Some(r) = plan::range_series(&ev, &expr, start_ms, end_ms, step_ms) {
            return r.map(Value::Matrix);
        }
    }
    let mut acc: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = start_ms;
    while t <= end_ms {
        ev.check_deadline()?;
        match ev.eval(&expr, t)? {
            Val::Scalar(v) => {
                ev.add_samples(1)?;
                acc.entry(Labels::default()).or_default().push((t, v));
            }
            Val::Vector(v) => {
                eval::check_unique(&v)?;
                ev.add_samples(v.len())?;
                for s in v {
                    acc.entry(s.labels).or_default().push((t, s.v));
                }
            }
            _ => return Err(bad("range query of a non-instant expression")),
        }
        t = match t.checked_add(step_ms) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(Value::Matrix(
        acc.into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect(),
    ))
}

/// Prometheus's float formatting for the API ("+Inf", "-Inf", "NaN", otherwise the
/// shortest decimal that round-trips, never an exponent, like Go's `FormatFloat(v, 'f', -1, 64)`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
