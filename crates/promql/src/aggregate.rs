//! Aggregation operators (sum, avg, …, topk, quantile, count_values) at one step.

use std::collections::HashMap;

use promql_parser::parser::LabelModifier;
use promql_parser::parser::token::{self, TokenId};

use crate::eval::{METRIC_NAME, Smp, Val, bad, exec, set_label};
use crate::{Labels, PromError, format_value};

/// The grouping labels of a sample: `by` keeps the listed labels, `without` drops them and
/// the metric name, no clause keeps none.
pub(crate) fn group_labels(l: &Labels, modifier: Option<&LabelModifier>) -> Labels {
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

/// What an aggregation needs besides its input, checked once: the operator and its
/// parameter (`k` of topk/bottomk, `q` of quantile).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AggOp {
    pub op: TokenId,
    k: i64,
    q: f64,
}

impl AggOp {
    /// The operator with its evaluated parameter; `Ok(None)`: the result is empty whatever
    /// the input (topk/bottomk with k < 1). count_values is not handled here.
    pub(crate) fn new(op: TokenId, param: Option<&Val>) -> Result<Option<AggOp>, PromError> {
        let mut agg = AggOp { op, k: 0, q: 0.0 };
        match op {
            token::T_TOPK | token::T_BOTTOMK => {
                let Some(Val::Scalar(f)) = param else {
                    return Err(exec("topk/bottomk need a scalar parameter"));
                };
                let f = *f;
                if !(f.is_finite() && f.abs() < 9.2e18) {
                    return Err(exec(format!("Scalar value {f} overflows int64")));
                }
                agg.k = f as i64;
                if agg.k < 1 {
                    return Ok(None);
                }
            }
            token::T_QUANTILE => {
                let Some(Val::Scalar(f)) = param else {
                    return Err(exec("quantile needs a scalar parameter"));
                };
                agg.q = *f;
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
        Ok(Some(agg))
    }

    fn selects_members(&self) -> bool {
        matches!(self.op, token::T_TOPK | token::T_BOTTOMK)
    }
}

#[derive(Default)]
struct GroupState {
    value: f64,
    mean: f64,
    count: f64,
    values: Vec<f64>,
    /// topk/bottomk: (position in the input, member, value).
    members: Vec<(u32, u32, f64)>,
}

/// One step of an aggregation over groups numbered by the caller: values are added in input
/// order, each with its group and its member number (what topk/bottomk output). Buffers are
/// kept from one step to the next.
pub(crate) struct Accumulator {
    agg: AggOp,
    groups: Vec<GroupState>,
    /// Groups seen this step, in order of first appearance (the order of the output).
    order: Vec<u32>,
}

/// One output element of [`Accumulator::finish`].
pub(crate) enum AggOut {
    /// A group's value.
    Group(u32, f64),
    /// A member kept by topk/bottomk, with its value.
    Member(u32, f64),
}

impl Accumulator {
    pub(crate) fn new(agg: AggOp) -> Accumulator {
        Accumulator {
            agg,
            groups: Vec::new(),
            order: Vec::new(),
        }
    }

    // One arm per operator reads better than guards spread over the match.
    #[allow(clippy::collapsible_match)]
    pub(crate) fn add(&mut self, group: u32, member: u32, v: f64) {
        let gi = group as usize;
        if gi >= self.groups.len() {
            self.groups.resize_with(gi + 1, GroupState::default);
        }
        let g = &mut self.groups[gi];
        if g.count == 0.0 {
            self.order.push(group);
            g.value = v;
            g.mean = v;
        }
        g.count += 1.0;
        let first = g.count == 1.0;
        match self.agg.op {
            token::T_SUM => {
                if !first {
                    g.value += v;
                }
            }
            token::T_AVG => {
                if !first {
                    let skip = g.mean.is_infinite()
                        && ((v.is_infinite() && (g.mean > 0.0) == (v > 0.0))
                            || (!v.is_infinite() && !v.is_nan()));
                    if !skip {
                        g.mean += v / g.count - g.mean / g.count;
                    }
                }
            }
            token::T_MAX => {
                if g.value < v || g.value.is_nan() {
                    g.value = v;
                }
            }
            token::T_MIN => {
                if g.value > v || g.value.is_nan() {
                    g.value = v;
                }
            }
            token::T_STDDEV | token::T_STDVAR => {
                if first {
                    g.value = 0.0;
                } else {
                    let delta = v - g.mean;
                    g.mean += delta / g.count;
                    g.value += delta * (v - g.mean);
                }
            }
            token::T_QUANTILE => g.values.push(v),
            token::T_TOPK | token::T_BOTTOMK => {
                let pos = g.members.len() as u32;
                g.members.push((pos, member, v));
            }
            _ => {}
        }
    }

    /// Emits the step's result — groups in order of first appearance; for topk/bottomk
    /// each group's kept members, best first — and resets for the next step.
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(AggOut)) {
        let op = self.agg.op;
        for &gi in &self.order {
            let g = &mut self.groups[gi as usize];
            let v = match op {
                token::T_SUM | token::T_MAX | token::T_MIN => g.value,
                token::T_AVG => g.mean,
                token::T_COUNT => g.count,
                token::T_GROUP => 1.0,
                token::T_STDVAR => g.value / g.count,
                token::T_STDDEV => (g.value / g.count).sqrt(),
                token::T_QUANTILE => quantile(self.agg.q, std::mem::take(&mut g.values)),
                _ => f64::NAN,
            };
            if self.agg.selects_members() {
                let top = op == token::T_TOPK;
                // NaN sorts after every number (it is the first dropped by Prometheus's
                // heap); ties keep the input order (the members' positions), as a stable
                // sort would. The k best are selected, then sorted.
                let order = |a: &(u32, u32, f64), b: &(u32, u32, f64)| {
                    let by_value = match (a.2.is_nan(), b.2.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if top => b.2.total_cmp(&a.2),
                        _ => a.2.total_cmp(&b.2),
                    };
                    by_value.then(a.0.cmp(&b.0))
                };
                let m = &mut g.members;
                let k = usize::try_from(self.agg.k).unwrap_or(usize::MAX);
                if k < m.len() {
                    m.select_nth_unstable_by(k - 1, order);
                    m.truncate(k);
                }
                m.sort_unstable_by(order);
                for &(_, member, v) in m.iter() {
                    emit(AggOut::Member(member, v));
                }
                m.clear();
            } else {
                emit(AggOut::Group(gi, v));
            }
            g.count = 0.0;
            g.values.clear();
        }
        self.order.clear();
    }
}

/// The aggregation `op` of one step over `input`.
pub(crate) fn aggregate(
    op: TokenId,
    input: Vec<Smp>,
    param: Option<Val>,
    modifier: Option<&LabelModifier>,
) -> Result<Vec<Smp>, PromError> {
    if op == token::T_COUNT_VALUES {
        return count_values(input, param, modifier);
    }
    let Some(agg) = AggOp::new(op, param.as_ref())? else {
        return Ok(Vec::new());
    };
    let mut acc = Accumulator::new(agg);
    let mut index: HashMap<Labels, u32> = HashMap::new();
    let mut keys: Vec<Labels> = Vec::new();
    for (i, s) in input.iter().enumerate() {
        let key = group_labels(&s.labels, modifier);
        let gi = match index.get(&key) {
            Some(&g) => g,
            None => {
                let g = keys.len() as u32;
                index.insert(key.clone(), g);
                keys.push(key);
                g
            }
        };
        acc.add(gi, i as u32, s.v);
    }
    // topk/bottomk output members, which are moved out of the input.
    let mut input: Vec<Option<Smp>> = if agg.selects_members() {
        input.into_iter().map(Some).collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(keys.len());
    acc.finish(|o| match o {
        AggOut::Group(g, v) => out.push(Smp {
            labels: std::mem::take(&mut keys[g as usize]),
            v,
            ts: 0,
        }),
        AggOut::Member(m, v) => {
            if let Some(s) = input[m as usize].take() {
                debug_assert_eq!(s.v.to_bits(), v.to_bits());
                out.push(s);
            }
        }
    });
    Ok(out)
}

/// count_values: the number of elements per group of equal value, the value (as
/// Prometheus formats it) in the label named by the parameter.
fn count_values(
    input: Vec<Smp>,
    param: Option<Val>,
    modifier: Option<&LabelModifier>,
) -> Result<Vec<Smp>, PromError> {
    let Some(Val::Str(value_label)) = param else {
        return Err(exec("count_values needs a string parameter"));
    };
    if !valid_label_name(&value_label) {
        return Err(exec(format!("invalid label name {value_label:?}")));
    }
    // count_values groups by the value label too.
    let by_with_value: Option<LabelModifier>;
    let modifier = match modifier {
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
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Smp> = Vec::new();
    for mut s in input {
        set_label(&mut s.labels, &value_label, &format_value(s.v));
        let key = group_labels(&s.labels, modifier);
        match index.get(&key) {
            Some(&i) => out[i].v += 1.0,
            None => {
                index.insert(key.clone(), out.len());
                out.push(Smp {
                    labels: key,
                    v: 1.0,
                    ts: 0,
                });
            }
        }
    }
    Ok(out)
}
