//! PromQL functions.

use promql_parser::parser::{Call, Expr};

use crate::aggregate::{quantile, valid_label_name};
use crate::eval::{
    Evaluator, METRIC_NAME, Smp, Val, bad, call_arg, check_unique, exec, set_label, unparen,
    without_name,
};
use crate::{Labels, PromError, Series};

const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "resets",
    "changes",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
    "absent_over_time",
];

const MATH_FUNCTIONS: &[&str] = &[
    "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "acos", "acosh", "asin",
    "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad",
];

const DATE_FUNCTIONS: &[&str] = &[
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
];

const OTHER_FUNCTIONS: &[&str] = &[
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "timestamp",
    "time",
    "vector",
    "scalar",
    "sort",
    "sort_desc",
    "label_replace",
    "label_join",
    "histogram_quantile",
    "absent",
    "pi",
];

pub(crate) fn supported(name: &str) -> bool {
    RANGE_FUNCTIONS.contains(&name)
        || MATH_FUNCTIONS.contains(&name)
        || DATE_FUNCTIONS.contains(&name)
        || OTHER_FUNCTIONS.contains(&name)
}

fn arg(c: &Call, i: usize) -> Result<&Expr, PromError> {
    call_arg(c, i).ok_or_else(|| bad(format!("missing argument {} of {}", i + 1, c.func.name)))
}

/// Go's math.Max (NaN wins, +Inf wins, +0 over -0).
fn go_max(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x > 0.0 || y.is_infinite() && y > 0.0 {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's math.Min (NaN wins, -Inf wins, -0 over +0).
fn go_min(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x < 0.0 || y.is_infinite() && y < 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn map_values(v: Vec<Smp>, f: impl Fn(f64) -> f64) -> Vec<Smp> {
    v.into_iter()
        .map(|s| Smp {
            labels: without_name(&s.labels),
            v: f(s.v),
            ts: s.ts,
        })
        .collect()
}

/// A function of one value.
pub(crate) type ValueFn = Box<dyn Fn(f64) -> f64>;

/// An element-wise function of a vector whose other arguments are numbers (`scalars`, in
/// argument order: round's `to`, clamp's min and max, clamp_min's and clamp_max's bound):
/// the function of a value, or `Some(None)` when the result is empty (clamp with max < min);
/// `None` for other functions. The output drops the metric name.
pub(crate) fn value_function(name: &str, scalars: &[f64]) -> Option<Option<ValueFn>> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |x| {
            if x < 0.0 {
                -1.0
            } else if x > 0.0 {
                1.0
            } else {
                x
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "round" => {
            let inv = 1.0 / scalars.first().copied().unwrap_or(1.0);
            return Some(Some(Box::new(move |x| (x * inv + 0.5).floor() / inv)));
        }
        "clamp" => {
            let (a, b) = (*scalars.first()?, *scalars.get(1)?);
            if b < a {
                return Some(None);
            }
            return Some(Some(Box::new(move |x| go_max(a, go_min(b, x)))));
        }
        "clamp_min" => {
            let a = *scalars.first()?;
            return Some(Some(Box::new(move |x| go_max(a, x))));
        }
        "clamp_max" => {
            let a = *scalars.first()?;
            return Some(Some(Box::new(move |x| go_min(a, x))));
        }
        _ if DATE_FUNCTIONS.contains(&name) => {
            let name = DATE_FUNCTIONS.iter().find(|&&n| n == name)?;
            return Some(Some(Box::new(move |x| date_part(name, x))));
        }
        _ => return None,
    };
    Some(Some(Box::new(f)))
}

/// [`value_function`] over a vector, duplicates refused.
fn map_function(name: &str, v: Vec<Smp>, scalars: &[f64]) -> Result<Vec<Smp>, PromError> {
    let Some(f) = value_function(name, scalars)
        .ok_or_else(|| bad(format!("function {name:?} is not supported")))?
    else {
        return Ok(Vec::new());
    };
    let out = map_values(v, f);
    check_unique(&out)?;
    Ok(out)
}

pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, PromError> {
    let name = c.func.name;
    if RANGE_FUNCTIONS.contains(&name) {
        return range_function(ev, c, t);
    }
    if MATH_FUNCTIONS.contains(&name) || DATE_FUNCTIONS.contains(&name) && call_arg(c, 0).is_some()
    {
        let v = ev.eval_vector(arg(c, 0)?, t)?;
        return Ok(Val::Vector(map_function(name, v, &[])?));
    }
    if DATE_FUNCTIONS.contains(&name) {
        let v = vec![Smp {
            labels: Labels::default(),
            v: t as f64 / 1000.0,
            ts: t,
        }];
        let out = map_values(v, |x| date_part(name, x));
        check_unique(&out)?;
        return Ok(Val::Vector(out));
    }
    match name {
        "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
        "pi" => Ok(Val::Scalar(std::f64::consts::PI)),
        "vector" => {
            let s = ev.eval_scalar(arg(c, 0)?, t)?;
            Ok(Val::Vector(vec![Smp {
                labels: Labels::default(),
                v: s,
                ts: t,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            Ok(Val::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "round" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let to = match call_arg(c, 1) {
                Some(e) => ev.eval_scalar(e, t)?,
                None => 1.0,
            };
            Ok(Val::Vector(map_function(name, v, &[to])?))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let mut scalars = vec![ev.eval_scalar(arg(c, 1)?, t)?];
            if name == "clamp" {
                scalars.push(ev.eval_scalar(arg(c, 2)?, t)?);
            }
            Ok(Val::Vector(map_function(name, v, &scalars)?))
        }
        "timestamp" => {
            let a = arg(c, 0)?;
            let direct = matches!(unparen(a), Expr::VectorSelector(_));
            let v = ev.eval_vector(a, t)?;
            let out: Vec<Smp> = v
                .into_iter()
                .map(|s| Smp {
                    labels: without_name(&s.labels),
                    v: if direct { s.ts } else { t } as f64 / 1000.0,
                    ts: t,
                })
                .collect();
            check_unique(&out)?;
            Ok(Val::Vector(out))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let desc = name == "sort_desc";
            // Prometheus puts NaN last in both orders.
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if desc => b.v.total_cmp(&a.v),
                _ => a.v.total_cmp(&b.v),
            });
            Ok(Val::Vector(v))
        }
        "absent" => {
            let a = arg(c, 0)?;
            let v = ev.eval_vector(a, t)?;
            if !v.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Smp {
                labels: absent_labels(a),
                v: 1.0,
                ts: t,
            }]))
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let dst = ev.eval_string(arg(c, 1)?, t)?;
            let repl = ev.eval_string(arg(c, 2)?, t)?;
            let src = ev.eval_string(arg(c, 3)?, t)?;
            let re = ev.eval_string(arg(c, 4)?, t)?;
            let re = regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| {
                bad(format!(
                    "invalid regular expression in label_replace(): {re}: {e}"
                ))
            })?;
            if !valid_label_name(&dst) {
                return Err(bad(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let sv = s.labels.get(&src).unwrap_or("").to_string();
                if let Some(caps) = re.captures(&sv) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    set_label(&mut s.labels, &dst, &res);
                }
                out.push(s);
            }
            check_unique(&out)?;
            Ok(Val::Vector(out))
        }
        "label_join" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let dst = ev.eval_string(arg(c, 1)?, t)?;
            let sep = ev.eval_string(arg(c, 2)?, t)?;
            let mut srcs = Vec::new();
            for i in 3..c.args.args.len() {
                let s = ev.eval_string(arg(c, i)?, t)?;
                if !valid_label_name(&s) {
                    return Err(bad(format!(
                        "invalid source label name in label_join(): {s}"
                    )));
                }
                srcs.push(s);
            }
            if !valid_label_name(&dst) {
                return Err(bad(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let joined: Vec<&str> =
                    srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
                let joined = joined.join(&sep);
                set_label(&mut s.labels, &dst, &joined);
                out.push(s);
            }
            check_unique(&out)?;
            Ok(Val::Vector(out))
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(c, 0)?, t)?;
            let v = ev.eval_vector(arg(c, 1)?, t)?;
            Ok(Val::Vector(histogram_quantile(q, v, t)))
        }
        _ => Err(bad(format!("function {name:?} is not supported"))),
    }
}

/// The labels of `absent(...)`'s output: the selector's equality matchers (a label matched
/// more than once is left out), the metric name never.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unparen(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut out = Labels::default();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) && !has.contains(&m.name) {
            set_label(&mut out, &m.name, &m.value);
            has.insert(m.name.clone());
        } else {
            set_label(&mut out, &m.name, "");
        }
    }
    out
}

fn histogram_quantile(q: f64, v: Vec<Smp>, t: i64) -> Vec<Smp> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    for s in v {
        let Some((ub, key)) = bucket_of(&s.labels) else {
            continue;
        };
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((ub, s.v));
    }
    groups
        .into_iter()
        .map(|(labels, b)| Smp {
            labels,
            v: bucket_quantile(q, b),
            ts: t,
        })
        .collect()
}

/// A histogram bucket's upper bound (its `le` label) and the labels of its histogram (all
/// but `le` and the name); `None` without a valid `le`.
pub(crate) fn bucket_of(l: &Labels) -> Option<(f64, Labels)> {
    let ub = parse_go_float(l.get("le")?)?;
    let key = Labels(
        l.0.iter()
            .filter(|(n, _)| n != METRIC_NAME && n != "le")
            .cloned()
            .collect(),
    );
    Some((ub, key))
}

fn parse_go_float(s: &str) -> Option<f64> {
    s.trim_start_matches('+').parse::<f64>().ok().or_else(|| {
        match s.to_ascii_lowercase().as_str() {
            "+inf" | "inf" | "+infinity" | "infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            "nan" => Some(f64::NAN),
            _ => None,
        }
    })
}

/// Prometheus's bucketQuantile over (upper bound, cumulative count) pairs.
pub(crate) fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    match b.last() {
        Some(&(ub, _)) if ub == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce equal upper bounds.
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (ub, n) in b {
        match c.last_mut() {
            Some(last) if last.0 == ub => last.1 += n,
            _ => c.push((ub, n)),
        }
    }
    // Ensure monotonic counts.
    let mut max = f64::NEG_INFINITY;
    for x in &mut c {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = c.len() - 1;
    let idx = c[..n].partition_point(|x| x.1 < rank);
    if idx == n {
        return c[n - 1].0;
    }
    if idx == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let mut start = 0.0;
    let end = c[idx].0;
    let mut count = c[idx].1;
    if idx > 0 {
        start = c[idx - 1].0;
        count -= c[idx - 1].1;
        rank -= c[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Date parts in UTC of a Unix time in seconds (Go: time.Unix(int64(v), 0).UTC()).
fn date_part(name: &str, v: f64) -> f64 {
    let secs = v as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "hour" => (sod / 3600) as f64,
        "minute" => (sod % 3600 / 60) as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => (days - days_from_civil(y, 1, 1) + 1) as f64,
        "days_in_month" => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        }
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The range-vector argument of a function: its series, range and evaluation time.
fn range_arg(
    ev: &mut Evaluator<'_>,
    e: &Expr,
    t: i64,
) -> Result<(Vec<Series>, i64, i64), PromError> {
    match unparen(e) {
        Expr::MatrixSelector(ms) => {
            let te = ev.eff_time(&ms.vs.at, &ms.vs.offset, t);
            let range = i64::try_from(ms.range.as_millis()).unwrap_or(i64::MAX / 4);
            Ok((
                ev.select_range(&ms.vs, te.saturating_sub(range), te)?,
                range,
                te,
            ))
        }
        Expr::Subquery(sq) => {
            let te = ev.eff_time(&sq.at, &sq.offset, t);
            let range = i64::try_from(sq.range.as_millis()).unwrap_or(i64::MAX / 4);
            Ok((ev.subquery(sq, t)?, range, te))
        }
        _ => Err(exec("expected a range vector argument")),
    }
}

/// A range-vector function other than `absent_over_time`, resolved once per call (the
/// general path and the range path of [`crate::range`] compute values with [`Self::value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFunc {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Resets,
    Changes,
    Deriv,
    PredictLinear,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
    LastOverTime,
    PresentOverTime,
}

impl RangeFunc {
    pub(crate) fn from_name(name: &str) -> Option<RangeFunc> {
        use RangeFunc::*;
        Some(match name {
            "rate" => Rate,
            "increase" => Increase,
            "delta" => Delta,
            "irate" => Irate,
            "idelta" => Idelta,
            "resets" => Resets,
            "changes" => Changes,
            "deriv" => Deriv,
            "predict_linear" => PredictLinear,
            "avg_over_time" => AvgOverTime,
            "min_over_time" => MinOverTime,
            "max_over_time" => MaxOverTime,
            "sum_over_time" => SumOverTime,
            "count_over_time" => CountOverTime,
            "quantile_over_time" => QuantileOverTime,
            "stddev_over_time" => StddevOverTime,
            "stdvar_over_time" => StdvarOverTime,
            "last_over_time" => LastOverTime,
            "present_over_time" => PresentOverTime,
            _ => return None,
        })
    }

    /// Index of the range-vector argument: the scalar parameter comes first in
    /// quantile_over_time, second in predict_linear.
    pub(crate) fn matrix_arg(self) -> usize {
        if self == RangeFunc::QuantileOverTime {
            1
        } else {
            0
        }
    }

    /// Index of the scalar parameter, if the function has one.
    pub(crate) fn param_arg(self) -> Option<usize> {
        match self {
            RangeFunc::QuantileOverTime => Some(0),
            RangeFunc::PredictLinear => Some(1),
            _ => None,
        }
    }

    /// Whether the output keeps the metric name (only last_over_time does).
    pub(crate) fn keeps_name(self) -> bool {
        self == RangeFunc::LastOverTime
    }

    /// The value over the points `p` (not empty, staleness markers removed) of a window
    /// `range` long ending at `te`, for the outer evaluation time `t`; `None`: no output.
    pub(crate) fn value(
        self,
        p: &[(i64, f64)],
        range: i64,
        te: i64,
        t: i64,
        param: Option<f64>,
    ) -> Option<f64> {
        use RangeFunc::*;
        match self {
            Rate => extrapolated_rate(p, te.saturating_sub(range), te, range, true, true),
            Increase => extrapolated_rate(p, te.saturating_sub(range), te, range, true, false),
            Delta => extrapolated_rate(p, te.saturating_sub(range), te, range, false, false),
            Irate => instant_value(p, true),
            Idelta => instant_value(p, false),
            Resets => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
            Changes => Some(
                p.windows(2)
                    .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                    .count() as f64,
            ),
            Deriv => {
                if p.len() < 2 {
                    None
                } else {
                    Some(linear_regression(p, p[0].0).0)
                }
            }
            PredictLinear => {
                if p.len() < 2 {
                    None
                } else {
                    let (slope, intercept) = linear_regression(p, t);
                    Some(slope * param.unwrap_or(0.0) + intercept)
                }
            }
            AvgOverTime => Some(avg_over_time(p)),
            MinOverTime => Some(
                p.iter()
                    .fold(p[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m }),
            ),
            MaxOverTime => Some(
                p.iter()
                    .fold(p[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m }),
            ),
            SumOverTime => {
                let (s, c) = p
                    .iter()
                    .fold((0.0, 0.0), |(s, c), &(_, v)| kahan_inc(v, s, c));
                Some(s + c)
            }
            CountOverTime => Some(p.len() as f64),
            QuantileOverTime => Some(quantile(
                param.unwrap_or(f64::NAN),
                p.iter().map(|&(_, v)| v).collect(),
            )),
            StddevOverTime => Some(stdvar_over_time(p).sqrt()),
            StdvarOverTime => Some(stdvar_over_time(p)),
            LastOverTime => p.last().map(|&(_, v)| v),
            PresentOverTime => Some(1.0),
        }
    }
}

fn range_function(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, PromError> {
    let name = c.func.name;
    if name == "absent_over_time" {
        let mat_expr = arg(c, 0)?;
        let (series, _, _) = range_arg(ev, mat_expr, t)?;
        if !series.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        return Ok(Val::Vector(vec![Smp {
            labels: absent_labels(mat_expr),
            v: 1.0,
            ts: t,
        }]));
    }
    let f = RangeFunc::from_name(name)
        .ok_or_else(|| bad(format!("function {name:?} is not supported")))?;
    let param = match f.param_arg() {
        Some(i) => Some(ev.eval_scalar(arg(c, i)?, t)?),
        None => None,
    };
    let (series, range, te) = range_arg(ev, arg(c, f.matrix_arg())?, t)?;
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        if let Some(v) = f.value(&s.samples, range, te, t, param) {
            let labels = if f.keeps_name() {
                s.labels
            } else {
                let dropped = without_name(&s.labels);
                ev.note_range_output(c, &dropped, &s.labels)?;
                dropped
            };
            out.push(Smp { labels, v, ts: t });
        }
    }
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

/// `a - b` in seconds, without overflow whatever the two times (an `@` far from the
/// evaluation time, samples at extreme timestamps).
fn secs_between(a: i64, b: i64) -> f64 {
    (i128::from(a) - i128::from(b)) as f64 / 1000.0
}

/// Prometheus's extrapolatedRate (rate, increase, delta) over the samples in
/// [range_start, range_end].
fn extrapolated_rate(
    p: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut prev = first_v;
        for &(_, v) in &p[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut duration_to_start = secs_between(first_t, range_start);
    let duration_to_end = secs_between(range_end, last_t);
    let sampled = secs_between(last_t, first_t);
    let avg_between = sampled / (p.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg_between / 2.0
    };
    interval += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg_between / 2.0
    };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// irate / idelta: the last two samples.
fn instant_value(p: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (lt, lv) = p[p.len() - 1];
    let (pt, pv) = p[p.len() - 2];
    let mut result = if is_rate && lv < pv { lv } else { lv - pv };
    if lt == pt {
        return None;
    }
    if is_rate {
        result /= secs_between(lt, pt);
    }
    Some(result)
}

/// Least squares fit of value over time (seconds relative to `intercept_time`).
fn linear_regression(p: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(ts, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = secs_between(ts, intercept_time);
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn avg_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

fn stdvar_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        let delta = v - (mean + cm);
        (mean, cm) = kahan_inc(delta / count, mean, cm);
        (aux, ca) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
    }
    (aux + ca) / count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("day_of_week", t), 4.0); // Thursday
        assert_eq!(date_part("day_of_year", t), 60.0);
    }

    #[test]
    fn bucket_quantile_interpolates() {
        let b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        // rank 20 lies in (0.1, 0.5]: 0.1 + 0.4 * (10/20)
        assert!((bucket_quantile(0.5, b.clone()) - 0.3).abs() < 1e-12);
        // rank above the last finite bucket: its upper bound
        assert_eq!(bucket_quantile(0.99, b.clone()), 0.5);
        assert!(bucket_quantile(0.5, vec![(1.0, 3.0)]).is_nan());
    }

    #[test]
    fn go_min_max() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
    }
}
