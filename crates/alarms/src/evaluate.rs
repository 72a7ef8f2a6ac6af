//! The alarm evaluation state machine, pure: datapoints of the evaluation range in, next
//! state and reason out. No clock, no I/O — the caller fetches the datapoints for "now".
//!
//! Semantics of reference §6.1 and CloudWatch's "How alarm state is evaluated when data is
//! missing" (AlarmThatSendsEmail):
//! - The evaluation range holds more periods than N (here N + 2, the reference's example of 5
//!   for N = 3). With at least N real datapoints in it, the N most recent real ones decide and
//!   the missing-data setting is irrelevant: M or more breaching → ALARM, else OK.
//! - With fewer than N real datapoints, every real one is used and the rest of the N are
//!   filled per TreatMissingData, as few fills as possible: `breaching` fills count as
//!   breaching, `notBreaching` fills as not breaching.
//! - `missing` and `ignore` fill with nothing: M breaching real points still alarm, any
//!   non-breaching real point means OK. When the real points are all breaching but fewer
//!   than M, the premature-alarm guard decides: `missing` goes to ALARM only if the oldest
//!   breaching point is at least M periods old (everything after it missing — `- - X - -`
//!   with M = N = 3 alarms, `- - - - X` does not), else INSUFFICIENT_DATA; `ignore` keeps
//!   the current state.
//! - No real datapoint at all: `missing` → INSUFFICIENT_DATA, `ignore` → keep state,
//!   `breaching` → ALARM, `notBreaching` → OK.

use crate::model::{Alarm, ComparisonOperator, StateValue, TreatMissingData};
use serde::{Deserialize, Serialize};

/// What the state machine needs of an alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalParams {
    /// EvaluationPeriods.
    pub n: usize,
    /// DatapointsToAlarm.
    pub m: usize,
    pub comparison: ComparisonOperator,
    pub threshold: f64,
    pub treat_missing: TreatMissingData,
}

impl From<&Alarm> for EvalParams {
    fn from(a: &Alarm) -> Self {
        EvalParams {
            n: a.evaluation_periods as usize,
            m: a.datapoints_to_alarm as usize,
            comparison: a.comparison,
            threshold: a.threshold(),
            treat_missing: a.treat_missing_data,
        }
    }
}

/// One period of the evaluation range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the period.
    pub timestamp_ms: i64,
    /// The statistic's value; `None` = missing.
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: StateValue,
    /// `None` when the state is kept (`ignore`), so the previous reason stays.
    pub reason: Option<String>,
    /// The real datapoints that decided, newest first.
    pub evaluated: Vec<Point>,
    pub breaching: usize,
    /// Missing datapoints filled per TreatMissingData.
    pub filled: usize,
}

/// Evaluates `range` (oldest first; normally N + 2 periods ending now) given the current
/// state.
pub fn evaluate(p: &EvalParams, range: &[Point], current: StateValue) -> Evaluation {
    let breaches = |v: f64| p.comparison.breaches(v, p.threshold);
    let real: Vec<(usize, Point)> = range
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, pt)| pt.value.is_some())
        .collect();
    let value = |pt: &Point| pt.value.unwrap_or(f64::NAN);
    let newest_first =
        |pts: &[(usize, Point)]| pts.iter().rev().map(|(_, pt)| *pt).collect::<Vec<Point>>();

    if real.len() >= p.n {
        let used = &real[real.len() - p.n..];
        let b = used.iter().filter(|(_, pt)| breaches(value(pt))).count();
        let state = if b >= p.m {
            StateValue::Alarm
        } else {
            StateValue::Ok
        };
        let evaluated = newest_first(used);
        let reason = crossed_reason(p, state, &evaluated, b, 0, None);
        return Evaluation {
            state,
            reason: Some(reason),
            evaluated,
            breaching: b,
            filled: 0,
        };
    }

    let fills = p.n - real.len();
    let b_real = real.iter().filter(|(_, pt)| breaches(value(pt))).count();
    let g_real = real.len() - b_real;
    let evaluated = newest_first(&real);
    let keep = |ev: Vec<Point>, b: usize| Evaluation {
        state: current,
        reason: None,
        evaluated: ev,
        breaching: b,
        filled: 0,
    };

    if real.is_empty() {
        return match p.treat_missing {
            TreatMissingData::Missing => Evaluation {
                state: StateValue::InsufficientData,
                reason: Some(format!(
                    "Insufficient Data: no datapoints were received for the last {} periods.",
                    range.len()
                )),
                evaluated,
                breaching: 0,
                filled: 0,
            },
            TreatMissingData::Ignore => keep(evaluated, 0),
            TreatMissingData::Breaching | TreatMissingData::NotBreaching => {
                let breaching = p.treat_missing == TreatMissingData::Breaching;
                let state = if breaching {
                    StateValue::Alarm
                } else {
                    StateValue::Ok
                };
                Evaluation {
                    state,
                    reason: Some(format!(
                        "Threshold Crossed: no datapoints were received for {} periods and {} missing datapoints were treated as [{}].",
                        p.n,
                        p.n,
                        if breaching {
                            "Breaching"
                        } else {
                            "NonBreaching"
                        }
                    )),
                    evaluated,
                    breaching: if breaching { p.n } else { 0 },
                    filled: p.n,
                }
            }
        };
    }

    match p.treat_missing {
        TreatMissingData::Breaching | TreatMissingData::NotBreaching => {
            let fill_breaches = p.treat_missing == TreatMissingData::Breaching;
            let b = b_real + if fill_breaches { fills } else { 0 };
            let state = if b >= p.m {
                StateValue::Alarm
            } else {
                StateValue::Ok
            };
            let reason = crossed_reason(p, state, &evaluated, b, fills, Some(fill_breaches));
            Evaluation {
                state,
                reason: Some(reason),
                evaluated,
                breaching: b,
                filled: fills,
            }
        }
        TreatMissingData::Missing | TreatMissingData::Ignore => {
            if b_real >= p.m || g_real > 0 {
                let state = if b_real >= p.m {
                    StateValue::Alarm
                } else {
                    StateValue::Ok
                };
                let reason = crossed_reason(p, state, &evaluated, b_real, 0, None);
                return Evaluation {
                    state,
                    reason: Some(reason),
                    evaluated,
                    breaching: b_real,
                    filled: 0,
                };
            }
            // Only breaching real points, fewer than M: the premature-alarm guard.
            if p.treat_missing == TreatMissingData::Ignore {
                return keep(evaluated, b_real);
            }
            let oldest = real[0].0;
            let age_periods = range.len() - oldest;
            if age_periods >= p.m {
                Evaluation {
                    state: StateValue::Alarm,
                    reason: Some(format!(
                        "Threshold Crossed: {} [{}] {} {} the threshold ({}) and no datapoint since {} periods ago was within it (minimum {} for OK -> ALARM transition; missing datapoints treated as missing).",
                        plural(b_real, "datapoint", "datapoints"),
                        list(&evaluated),
                        if b_real == 1 { "was" } else { "were" },
                        p.comparison.phrase(),
                        num(p.threshold),
                        age_periods,
                        plural(p.m, "datapoint", "datapoints"),
                    )),
                    evaluated,
                    breaching: b_real,
                    filled: 0,
                }
            } else {
                Evaluation {
                    state: StateValue::InsufficientData,
                    reason: Some(format!(
                        "Insufficient Data: {} [{}] {} {} the threshold ({}) but {} old; {} needed before missing datapoints stop counting as unknown.",
                        plural(b_real, "datapoint", "datapoints"),
                        list(&evaluated),
                        if b_real == 1 { "was" } else { "were" },
                        p.comparison.phrase(),
                        num(p.threshold),
                        if age_periods == 1 {
                            "only 1 period".to_string()
                        } else {
                            format!("only {age_periods} periods")
                        },
                        plural(p.m, "period", "periods"),
                    )),
                    evaluated,
                    breaching: b_real,
                    filled: 0,
                }
            }
        }
    }
}

/// CloudWatch's wording: "Threshold Crossed: 3 out of the last 3 datapoints [95.0
/// (28/11/26 07:03:00), …] were greater than the threshold (80.0) (minimum 3 datapoints for
/// OK -> ALARM transition)."
fn crossed_reason(
    p: &EvalParams,
    state: StateValue,
    evaluated: &[Point],
    breaching: usize,
    fills: usize,
    fill_breaches: Option<bool>,
) -> String {
    let (count, not, minimum, transition) = match state {
        StateValue::Alarm => (breaching, "", p.m, "OK -> ALARM"),
        _ => (p.n - breaching, "not ", p.n - p.m + 1, "ALARM -> OK"),
    };
    let filled = match fill_breaches {
        Some(b) if fills > 0 => format!(
            " and {} treated as [{}]",
            plural(fills, "missing datapoint", "missing datapoints"),
            if b { "Breaching" } else { "NonBreaching" }
        ),
        _ => String::new(),
    };
    format!(
        "Threshold Crossed: {count} out of the last {} datapoints [{}]{filled} {} {not}{} the threshold ({}) (minimum {} for {transition} transition).",
        evaluated.len() + fills,
        list(evaluated),
        if count == 1 { "was" } else { "were" },
        p.comparison.phrase(),
        num(p.threshold),
        plural(minimum, "datapoint", "datapoints"),
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Numbers as CloudWatch prints them: always with a decimal point.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn list(points: &[Point]) -> String {
    points
        .iter()
        .map(|pt| {
            let when = chrono::DateTime::from_timestamp_millis(pt.timestamp_ms)
                .map(|t| t.format("%d/%m/%y %H:%M:%S").to_string())
                .unwrap_or_default();
            format!("{} ({when})", pt.value.map(num).unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
