//! PromQL evaluator (work in progress).

use std::time::Duration;

/// A label set, sorted by name, names unique; includes "__name__" for selected series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(pub Vec<(String, String)>);

impl Labels {
    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sorts by name and keeps the last value of a repeated name.
    pub fn new(mut v: Vec<(String, String)>) -> Labels {
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Labels(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Re,
    NotRe,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Re | MatchOp::NotRe => {
                let re = regex::Regex::new(&format!("^(?s:{})$", self.value));
                let m = re.map(|r| r.is_match(value)).unwrap_or(false);
                (self.op == MatchOp::Re) == m
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

pub const STALE_NAN_BITS: u64 = 0x7ff0000000000002;

pub trait Source: Send + Sync {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, String>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub lookback_ms: i64,
    pub max_samples: usize,
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
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    Execution(String),
    #[error("query timed out")]
    Timeout,
    #[error("query processing would load too many samples into memory")]
    TooManySamples,
    #[error("{0}")]
    Source(String),
}

pub fn instant_query(
    _src: &dyn Source,
    _query: &str,
    _t_ms: i64,
    _opts: &Options,
) -> Result<Value, PromError> {
    Err(PromError::Execution("not implemented yet".into()))
}

pub fn range_query(
    _src: &dyn Source,
    _query: &str,
    _start_ms: i64,
    _end_ms: i64,
    _step_ms: i64,
    _opts: &Options,
) -> Result<Value, PromError> {
    Err(PromError::Execution("not implemented yet".into()))
}

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
