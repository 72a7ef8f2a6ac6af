//! Aggregation operators (sum, avg, …, topk, quantile, count_values) at one step.

use std::collections::HashMap;

use promql_parser::parser::LabelModifier;
use promql_parser::parser::token::{self, TokenId};

use crate::eval::{METRIC_NAME, Smp, Val, bad, exec, set_label};
use crate::{Labels, PromError, format_value};

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: f64,
    values: Vec<f64>,
    members: Vec<Smp>,
}

/// The grouping labels of a sample: `by` keeps the listed labels, `without` drops them and
/// the metric name, no clause keeps none.
fn group_labels(l: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(ls)) => Labels(
            l.0.iter()
                .filter(|(n, _)| ls.labels.iter().any(|x| x == n))
                .cloned()
                .collect(),
        ),
        Some(LabelModifier::Exclude(ls)) => Labels(
            l.0.iter()
                .filter(|(n, _)| n != METRIC_NAME && !ls.labels.iter().any(|x| x == n))
                .cloned()
                .collect(),
        ),
        None => Labels::default(),
    }
}

pub(crate) fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_ascii_alphabetic() || f == '_' => {}
        _ => return false,
    }
    c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Prometheus's quantile over values (sorted here): linear interpolation between the
/// closest ranks.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    // Go sorts NaN first (sort.Float64s); total_cmp puts positive NaN last: do as Go.
    let nans: Vec<f64> = values.iter().copied().filter(|v| v.is_nan()).collect();
    values.retain(|v| !v.is_nan());
    let mut sorted = nans;
    sorted.extend(values);
    let n = sorted.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    sorted[lower as usize] * (1.0 - weight) + sorted[upper as usize] * weight
}

// One arm per operator reads better than guards spread over the match.
#[allow(clippy::collapsible_match)]
pub(crate) fn aggregate(
    op: TokenId,
    input: Vec<Smp>,
    param: Option<Val>,
    modifier: Option<&LabelModifier>,
) -> Result<Vec<Smp>, PromError> {
    let mut k: i64 = 0;
    let mut q: f64 = 0.0;
    let mut value_label = String::new();
    match op {
        token::T_TOPK | token::T_BOTTOMK => {
            let Some(Val::Scalar(f)) = param else {
                return Err(exec("topk/bottomk need a scalar parameter"));
            };
            if !(f.is_finite() && f.abs() < 9.2e18) {
                return Err(exec(format!("Scalar value {f} overflows int64")));
            }
            k = f as i64;
            if k < 1 {
                return Ok(Vec::new());
            }
        }
        token::T_QUANTILE => {
            let Some(Val::Scalar(f)) = param else {
                return Err(exec("quantile needs a scalar parameter"));
            };
            q = f;
        }
        token::T_COUNT_VALUES => {
            let Some(Val::Str(s)) = param else {
                return Err(exec("count_values needs a string parameter"));
            };
            if !valid_label_name(&s) {
                return Err(exec(format!("invalid label name {s:?}")));
            }
            value_label = s;
        }
        token::T_SUM
        | token::T_AVG
        | token::T_MIN
        | token::T_MAX
        | token::T_COUNT
        | token::T_GROUP
        | token::T_STDDEV
        | token::T_STDVAR => {}
        _ => {
            return Err(bad(format!(
                "aggregation {} is not supported",
                token::TokenType::new(op)
            )));
        }
    }
    // count_values groups by the value label too.
    let by_with_value: Option<LabelModifier>;
    let modifier = if op == token::T_COUNT_VALUES {
        match modifier {
            Some(LabelModifier::Exclude(_)) => modifier,
            Some(LabelModifier::Include(ls)) => {
                let mut ls = ls.clone();
                ls.labels.push(value_label.clone());
                by_with_value = Some(LabelModifier::Include(ls));
                by_with_value.as_ref()
            }
            None => {
                by_with_value = Some(LabelModifier::Include(promql_parser::label::Labels::new(
                    vec![value_label.as_str()],
                )));
                by_with_value.as_ref()
            }
        }
    } else {
        modifier
    };

    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for mut s in input {
        if op == token::T_COUNT_VALUES {
            set_label(&mut s.labels, &value_label, &format_value(s.v));
        }
        let key = group_labels(&s.labels, modifier);
        let gi = match index.get(&key) {
            Some(&i) => i,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    labels: key,
                    value: s.v,
                    mean: s.v,
                    count: 0.0,
                    values: Vec::new(),
                    members: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        g.count += 1.0;
        let first = g.count == 1.0;
        match op {
            token::T_SUM => {
                if !first {
                    g.value += s.v;
                }
            }
            token::T_AVG => {
                if !first {
                    let skip = g.mean.is_infinite()
                        && ((s.v.is_infinite() && (g.mean > 0.0) == (s.v > 0.0))
                            || (!s.v.is_infinite() && !s.v.is_nan()));
                    if !skip {
                        g.mean += s.v / g.count - g.mean / g.count;
                    }
                }
            }
            token::T_MAX => {
                if g.value < s.v || g.value.is_nan() {
                    g.value = s.v;
                }
            }
            token::T_MIN => {
                if g.value > s.v || g.value.is_nan() {
                    g.value = s.v;
                }
            }
            token::T_STDDEV | token::T_STDVAR => {
                if first {
                    g.value = 0.0;
                } else {
                    let delta = s.v - g.mean;
                    g.mean += delta / g.count;
                    g.value += delta * (s.v - g.mean);
                }
            }
            token::T_QUANTILE => g.values.push(s.v),
            token::T_TOPK | token::T_BOTTOMK => g.members.push(s),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let v = match op {
            token::T_SUM | token::T_MAX | token::T_MIN => g.value,
            token::T_AVG => g.mean,
            token::T_COUNT | token::T_COUNT_VALUES => g.count,
            token::T_GROUP => 1.0,
            token::T_STDVAR => g.value / g.count,
            token::T_STDDEV => (g.value / g.count).sqrt(),
            token::T_QUANTILE => quantile(q, g.values),
            token::T_TOPK | token::T_BOTTOMK => {
                let mut m = g.members;
                let top = op == token::T_TOPK;
                // NaN sorts after every number (it is the first dropped by Prometheus's heap).
                m.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if top => b.v.total_cmp(&a.v),
                    _ => a.v.total_cmp(&b.v),
                });
                m.truncate(usize::try_from(k).unwrap_or(usize::MAX));
                out.extend(m);
                continue;
            }
            _ => unreachable!("checked above"),
        };
        out.push(Smp {
            labels: g.labels,
            v,
            ts: 0,
        });
    }
    Ok(out)
}
