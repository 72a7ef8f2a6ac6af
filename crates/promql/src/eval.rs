//! The evaluator: a pre-pass loads every selector's samples once, then the expression is
//! evaluated step by step (an instant query is one step).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::{MatchOp as PMatchOp, Matchers};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};

use crate::functions;
use crate::{Labels, MatchOp, Matcher, Options, PromError, STALE_NAN_BITS, Series, Source};

pub(crate) const METRIC_NAME: &str = "__name__";
/// Step of a subquery without an explicit one (`x[5m:]`): Prometheus's default global
/// evaluation interval.
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// One element of an instant vector during evaluation; `ts` is the timestamp of the raw
/// sample it came from (what `timestamp(selector)` reports), or the evaluation time.
#[derive(Debug, Clone)]
pub(crate) struct Smp {
    pub labels: Labels,
    pub v: f64,
    pub ts: i64,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Smp>),
    Matrix(Vec<Series>),
}

pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

pub(crate) fn exec(msg: impl Into<String>) -> PromError {
    PromError::Execution(msg.into())
}

pub(crate) fn bad(msg: impl Into<String>) -> PromError {
    PromError::BadData(msg.into())
}

pub(crate) fn dur_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => -dur_ms(d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => dur_ms(&d),
        Err(e) => -dur_ms(&e.duration()),
    }
}

pub(crate) fn without_name(l: &Labels) -> Labels {
    Labels(
        l.0.iter()
            .filter(|(n, _)| n != METRIC_NAME)
            .cloned()
            .collect(),
    )
}

pub(crate) fn set_label(l: &mut Labels, name: &str, value: &str) {
    match l.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) => {
            if value.is_empty() {
                l.0.remove(i);
            } else {
                l.0[i].1 = value.to_string();
            }
        }
        Err(i) => {
            if !value.is_empty() {
                l.0.insert(i, (name.to_string(), value.to_string()));
            }
        }
    }
}

pub(crate) fn labels_string(l: &Labels) -> String {
    let inner: Vec<String> = l.0.iter().map(|(n, v)| format!("{n}={:?}", v)).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Fails on two elements with the same label set (Prometheus: "vector cannot contain
/// metrics with the same labelset").
pub(crate) fn check_unique(v: &[Smp]) -> Result<(), PromError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}

fn node_id<T>(r: &T) -> usize {
    r as *const T as usize
}

pub(crate) struct Evaluator<'a> {
    src: &'a dyn Source,
    opts: &'a Options,
    /// Query start and end (`@ start()`, `@ end()`).
    start: i64,
    end: i64,
    deadline: Instant,
    samples: usize,
    /// Loaded series of each selector node (by address), sorted by labels.
    loaded: HashMap<usize, Vec<Series>>,
    /// Results of each subquery's inner expression by inner step time, so that the
    /// overlapping windows of consecutive steps evaluate each inner step once; entries
    /// older than the current window are dropped.
    subquery_cache: HashMap<usize, SubqueryCache>,
    /// Per range-vector function call: output label set → input label set, over the whole
    /// query (Prometheus 2.x refuses two inputs that become one output series anywhere in
    /// the range, not only at one step).
    range_outputs: HashMap<usize, HashMap<Labels, Labels>>,
}

/// Inner results of one subquery: label sets interned, points by inner step time.
#[derive(Default)]
struct SubqueryCache {
    labels: Vec<Labels>,
    index: HashMap<Labels, u32>,
    /// Per step: (label set id, value); a scalar inner expression uses the empty label set.
    steps: BTreeMap<i64, Vec<(u32, f64)>>,
}

impl SubqueryCache {
    fn intern(&mut self, l: Labels) -> u32 {
        if let Some(&i) = self.index.get(&l) {
            return i;
        }
        let i = self.labels.len() as u32;
        self.labels.push(l.clone());
        self.index.insert(l, i);
        i
    }
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(src: &'a dyn Source, opts: &'a Options, start: i64, end: i64) -> Self {
        Evaluator {
            src,
            opts,
            start,
            end,
            deadline: Instant::now()
                .checked_add(opts.timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365)),
            samples: 0,
            loaded: HashMap::new(),
            subquery_cache: HashMap::new(),
            range_outputs: HashMap::new(),
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<(), PromError> {
        if Instant::now() > self.deadline {
            Err(PromError::Timeout)
        } else {
            Ok(())
        }
    }

    pub(crate) fn add_samples(&mut self, n: usize) -> Result<(), PromError> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.opts.max_samples {
            Err(PromError::TooManySamples)
        } else {
            Ok(())
        }
    }

    /// Points counted so far against [`Options::max_samples`], and the limit.
    pub(crate) fn samples_budget(&self) -> (usize, usize) {
        (self.samples, self.opts.max_samples)
    }

    pub(crate) fn lookback_ms(&self) -> i64 {
        self.opts.lookback_ms
    }

    /// Records that a range-vector function turned the series `input` into `output`;
    /// fails if another input series already became `output`.
    pub(crate) fn note_range_output(
        &mut self,
        c: &Call,
        output: &Labels,
        input: &Labels,
    ) -> Result<(), PromError> {
        let m = self.range_outputs.entry(node_id(c)).or_default();
        match m.get(output) {
            Some(prev) if prev != input => {
                Err(exec("vector cannot contain metrics with the same labelset"))
            }
            Some(_) => Ok(()),
            None => {
                m.insert(output.clone(), input.clone());
                Ok(())
            }
        }
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.start),
            Some(AtModifier::End) => Some(self.end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// The time a selector or subquery is evaluated at for the outer time `t`.
    pub(crate) fn eff_time(&self, at: &Option<AtModifier>, off: &Option<Offset>, t: i64) -> i64 {
        self.at_ms(at).unwrap_or(t).saturating_sub(offset_ms(off))
    }

    /// Checks what is supported and loads the samples of every selector for outer
    /// evaluation times in [s, e].
    pub(crate) fn prepare(&mut self, e: &Expr, s: i64, t: i64) -> Result<(), PromError> {
        self.check_deadline()?;
        match e {
            Expr::VectorSelector(vs) => {
                let (a, b) = (
                    self.eff_time(&vs.at, &vs.offset, s),
                    self.eff_time(&vs.at, &vs.offset, t),
                );
                self.load(vs, a.saturating_sub(self.opts.lookback_ms), b, false)
            }
            Expr::MatrixSelector(ms) => {
                let (a, b) = (
                    self.eff_time(&ms.vs.at, &ms.vs.offset, s),
                    self.eff_time(&ms.vs.at, &ms.vs.offset, t),
                );
                self.load(&ms.vs, a.saturating_sub(dur_ms(&ms.range)), b, true)
            }
            Expr::Subquery(sq) => {
                let (a, b) = (
                    self.eff_time(&sq.at, &sq.offset, s),
                    self.eff_time(&sq.at, &sq.offset, t),
                );
                if sq.step.as_ref().is_some_and(|d| dur_ms(d) <= 0) {
                    return Err(bad("zero or negative subquery step"));
                }
                self.prepare(&sq.expr, a.saturating_sub(dur_ms(&sq.range)), b)
            }
            Expr::Aggregate(a) => {
                let op = a.op.id();
                if op == token::T_LIMITK || op == token::T_LIMIT_RATIO {
                    return Err(bad(format!(
                        "aggregation {} is not supported",
                        token::TokenType::new(op)
                    )));
                }
                if let Some(p) = &a.param {
                    self.prepare(p, s, t)?;
                }
                self.prepare(&a.expr, s, t)
            }
            Expr::Unary(u) => self.prepare(&u.expr, s, t),
            Expr::Binary(b) => {
                if let Some(m) = &b.modifier {
                    if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                        return Err(bad("fill modifiers are not supported"));
                    }
                }
                self.prepare(&b.lhs, s, t)?;
                self.prepare(&b.rhs, s, t)
            }
            Expr::Paren(p) => self.prepare(&p.expr, s, t),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
            Expr::Call(c) => {
                if !functions::supported(c.func.name) {
                    return Err(bad(format!("function {:?} is not supported", c.func.name)));
                }
                for a in &c.args.args {
                    self.prepare(a, s, t)?;
                }
                Ok(())
            }
            Expr::Extension(_) => Err(bad("extension expressions are not supported")),
        }
    }

    /// Loads the series of a selector for times in [mint, maxt], sorted by labels; a range
    /// selector's (`drop_stale`) without its staleness markers, which range selectors never
    /// return (they count against the limit all the same).
    fn load(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        drop_stale: bool,
    ) -> Result<(), PromError> {
        let matchers = selector_matchers(vs)?;
        let mut series = self
            .src
            .select(&matchers, mint, maxt)
            .map_err(PromError::Source)?;
        let mut n = 0;
        for s in &mut series {
            // Sorted and unique whatever the source did; empty values mean absent labels.
            s.labels = Labels::new(std::mem::take(&mut s.labels.0));
            s.labels.0.retain(|(_, v)| !v.is_empty());
            s.samples.retain(|&(t, _)| t >= mint && t <= maxt);
            if !s.samples.is_sorted_by_key(|&(t, _)| t) {
                s.samples.sort_by_key(|&(t, _)| t);
            }
            n += s.samples.len();
            if drop_stale {
                s.samples.retain(|&(_, v)| !is_stale(v));
            }
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.add_samples(n)?;
        self.loaded.insert(node_id(vs), series);
        Ok(())
    }

    pub(crate) fn eval(&mut self, e: &Expr, t: i64) -> Result<Val, PromError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(v) => Ok(Val::Vector(
                    v.into_iter()
                        .map(|s| Smp {
                            labels: without_name(&s.labels),
                            v: -s.v,
                            ts: s.ts,
                        })
                        .collect(),
                )),
                _ => Err(exec("unary minus on a non-numeric value")),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.select_instant(vs, t)?)),
            Expr::MatrixSelector(ms) => {
                let te = self.eff_time(&ms.vs.at, &ms.vs.offset, t);
                Ok(Val::Matrix(self.select_range(
                    &ms.vs,
                    te.saturating_sub(dur_ms(&ms.range)),
                    te,
                )?))
            }
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, t)?)),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Call(c) => functions::call(self, c, t),
            Expr::Extension(_) => Err(bad("extension expressions are not supported")),
        }
    }

    pub(crate) fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64, PromError> {
        match self.eval(e, t)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(exec("expected a scalar")),
        }
    }

    pub(crate) fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Smp>, PromError> {
        match self.eval(e, t)? {
            Val::Vector(v) => Ok(v),
            _ => Err(exec("expected an instant vector")),
        }
    }

    pub(crate) fn eval_string(&mut self, e: &Expr, t: i64) -> Result<String, PromError> {
        match self.eval(e, t)? {
            Val::Str(v) => Ok(v),
            _ => Err(exec("expected a string")),
        }
    }

    pub(crate) fn loaded_series(&self, vs: &VectorSelector) -> Result<&[Series], PromError> {
        self.loaded
            .get(&node_id(vs))
            .map(|v| v.as_slice())
            .ok_or_else(|| exec("internal error: selector not loaded"))
    }

    /// Instant vector selector: per series the latest sample in [T - lookback, T]
    /// (Prometheus 2.x: the left end is inclusive), none if it is a staleness marker.
    fn select_instant(&self, vs: &VectorSelector, t: i64) -> Result<Vec<Smp>, PromError> {
        let te = self.eff_time(&vs.at, &vs.offset, t);
        let lo = te.saturating_sub(self.opts.lookback_ms);
        let mut out = Vec::new();
        for s in self.loaded_series(vs)? {
            let i = s.samples.partition_point(|&(ts, _)| ts <= te);
            if i == 0 {
                continue;
            }
            let (ts, v) = s.samples[i - 1];
            if ts < lo || is_stale(v) {
                continue;
            }
            out.push(Smp {
                labels: s.labels.clone(),
                v,
                ts,
            });
        }
        Ok(out)
    }

    /// Range selector: samples in [lo, hi] (Prometheus 2.x: both ends inclusive; 3.x
    /// excludes `lo`), staleness markers dropped (at loading); series without samples left
    /// out.
    pub(crate) fn select_range(
        &self,
        vs: &VectorSelector,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<Series>, PromError> {
        let mut out = Vec::new();
        for s in self.loaded_series(vs)? {
            let w = window(&s.samples, lo, hi);
            if !w.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples: w.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// A subquery evaluated for outer time `t`: the inner expression at every multiple of
    /// the step in [T - range, T].
    pub(crate) fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<Vec<Series>, PromError> {
        let te = self.eff_time(&sq.at, &sq.offset, t);
        let step = sq
            .step
            .as_ref()
            .map(dur_ms)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        if step <= 0 {
            return Err(bad("zero or negative subquery step"));
        }
        let lo = te.saturating_sub(dur_ms(&sq.range));
        // The first multiple of the step at or after `lo`, computed without overflow (`lo`
        // may have saturated to i64::MIN); none if past i64::MAX.
        let first = i128::from(lo).div_euclid(i128::from(step)) * i128::from(step);
        let first = if first < i128::from(lo) {
            first + i128::from(step)
        } else {
            first
        };
        let Ok(mut ts) = i64::try_from(first) else {
            return Ok(Vec::new());
        };
        let id = node_id(sq);
        let mut cache = self.subquery_cache.remove(&id).unwrap_or_default();
        cache.steps = cache.steps.split_off(&ts);
        let mut acc: BTreeMap<u32, Vec<(i64, f64)>> = BTreeMap::new();
        while ts <= te {
            self.check_deadline()?;
            if !cache.steps.contains_key(&ts) {
                let pts: Vec<(u32, f64)> = match self.eval(&sq.expr, ts)? {
                    Val::Scalar(v) => vec![(cache.intern(Labels::default()), v)],
                    Val::Vector(v) => {
                        check_unique(&v)?;
                        v.into_iter()
                            .map(|s| (cache.intern(s.labels), s.v))
                            .collect()
                    }
                    _ => return Err(exec("subquery of a non-vector expression")),
                };
                // Every inner step evaluated counts, its points and one more for the
                // step itself (its cache entry, ~80 bytes, about what a sample costs the
                // engine): `x[30d:1ms]` over nothing stops at the limit, not after
                // billions of empty steps. Empty steps are not cached (they are cheap to
                // evaluate again, and count again).
                self.add_samples(pts.len().saturating_add(1))?;
                if !pts.is_empty() {
                    cache.steps.insert(ts, pts);
                }
            }
            if let Some(pts) = cache.steps.get(&ts) {
                for &(l, v) in pts {
                    acc.entry(l).or_default().push((ts, v));
                }
            }
            ts = match ts.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
        let mut out: Vec<Series> = acc
            .into_iter()
            .map(|(l, samples)| Series {
                labels: cache.labels[l as usize].clone(),
                samples,
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.subquery_cache.insert(id, cache);
        Ok(out)
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Val, PromError> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let l = self.eval(&b.lhs, t)?;
        let r = self.eval(&b.rhs, t)?;
        match (l, r) {
            (Val::Scalar(a), Val::Scalar(c)) => {
                let (v, keep) = elem_binop(op, a, c)?;
                if is_comparison(op) {
                    Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Val::Scalar(v))
                }
            }
            (Val::Vector(v), Val::Scalar(c)) => {
                Ok(Val::Vector(vector_scalar(op, v, c, false, return_bool)?))
            }
            (Val::Scalar(c), Val::Vector(v)) => {
                Ok(Val::Vector(vector_scalar(op, v, c, true, return_bool)?))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                    Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                    None => (false, Vec::new()),
                };
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                let out = match op {
                    token::T_LAND => set_and(l, r, on, &names),
                    token::T_LOR => set_or(l, r, on, &names),
                    token::T_LUNLESS => set_unless(l, r, on, &names),
                    _ => vector_vector(op, l, r, on, &names, &card, return_bool)?,
                };
                Ok(Val::Vector(out))
            }
            _ => Err(exec(format!(
                "binary operator {} on unsupported operand types",
                token::TokenType::new(op)
            ))),
        }
    }

    fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<Val, PromError> {
        let op = a.op.id();
        let input = self.eval_vector(&a.expr, t)?;
        let param = match &a.param {
            None => None,
            Some(p) => Some(self.eval(p, t)?),
        };
        crate::aggregate::aggregate(op, input, param, a.modifier.as_ref()).map(Val::Vector)
    }
}

/// The matchers of a selector for the Source, `__name__` included.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, PromError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(bad("\"or\" in label matchers is not supported"));
    }
    let mut out = Vec::new();
    if let Some(n) = &vs.name {
        out.push(Matcher {
            name: METRIC_NAME.into(),
            op: MatchOp::Equal,
            value: n.clone(),
        });
    }
    out.extend(convert_matchers(&vs.matchers));
    Ok(out)
}

pub(crate) fn convert_matchers(m: &Matchers) -> Vec<Matcher> {
    m.matchers
        .iter()
        .map(|m| Matcher {
            name: m.name.clone(),
            op: match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Re,
                PMatchOp::NotRe(_) => MatchOp::NotRe,
            },
            value: m.value.clone(),
        })
        .collect()
}

pub(crate) fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

pub(crate) fn is_arithmetic(op: TokenId) -> bool {
    matches!(
        op,
        token::T_ADD
            | token::T_SUB
            | token::T_MUL
            | token::T_DIV
            | token::T_MOD
            | token::T_POW
            | token::T_ATAN2
    )
}

/// Prometheus's vectorElemBinop: the value and, for comparisons, whether to keep it.
pub(crate) fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), PromError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (l.powf(r), true),
        token::T_MOD => (l % r, true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => {
            return Err(bad(format!(
                "operator {} is not supported here",
                token::TokenType::new(op)
            )));
        }
    })
}

fn vector_scalar(
    op: TokenId,
    v: Vec<Smp>,
    c: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Smp>, PromError> {
    if matches!(op, token::T_LAND | token::T_LOR | token::T_LUNLESS) {
        return Err(exec("set operator between a vector and a scalar"));
    }
    let drop_name = is_arithmetic(op) || return_bool;
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        if let Some(value) = vector_scalar_elem(op, s.v, c, swap, return_bool)? {
            s.v = value;
            if drop_name {
                s.labels = without_name(&s.labels);
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// One element `v` of vector ⊕ scalar `c` (`swap`: scalar ⊕ vector): its value, or `None`
/// when a comparison drops it. Arithmetic and `bool` drop the metric name (the caller's job).
pub(crate) fn vector_scalar_elem(
    op: TokenId,
    v: f64,
    c: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Option<f64>, PromError> {
    let (lv, rv) = if swap { (c, v) } else { (v, c) };
    let (mut value, mut keep) = elem_binop(op, lv, rv)?;
    if is_comparison(op) && swap {
        value = rv;
    }
    if return_bool {
        value = if keep { 1.0 } else { 0.0 };
        keep = true;
    }
    Ok(keep.then_some(value))
}

/// The matching key of a label set: with `on`, only the listed labels; otherwise all but
/// the listed ones and the metric name.
pub(crate) fn signature(l: &Labels, on: bool, names: &[String]) -> Labels {
    if on {
        Labels(
            l.0.iter()
                .filter(|(n, _)| names.iter().any(|x| x == n))
                .cloned()
                .collect(),
        )
    } else {
        Labels(
            l.0.iter()
                .filter(|(n, _)| n != METRIC_NAME && !names.iter().any(|x| x == n))
                .cloned()
                .collect(),
        )
    }
}

/// The labels of a vector ⊕ vector result from the left-hand element's (Prometheus's
/// resultMetric), before `group_left`/`group_right` copies labels from the other side.
pub(crate) fn result_labels(
    l: &Labels,
    op: TokenId,
    on: bool,
    names: &[String],
    one_to_one: bool,
    return_bool: bool,
) -> Labels {
    let mut metric = if is_arithmetic(op) || return_bool {
        without_name(l)
    } else {
        l.clone()
    };
    if one_to_one {
        metric.0.retain(|(n, _)| names.iter().any(|x| x == n) == on);
    }
    metric
}

fn set_and(l: Vec<Smp>, r: Vec<Smp>, on: bool, names: &[String]) -> Vec<Smp> {
    if l.is_empty() || r.is_empty() {
        return Vec::new();
    }
    let rs: HashSet<Labels> = r.iter().map(|s| signature(&s.labels, on, names)).collect();
    l.into_iter()
        .filter(|s| rs.contains(&signature(&s.labels, on, names)))
        .collect()
}

fn set_or(l: Vec<Smp>, r: Vec<Smp>, on: bool, names: &[String]) -> Vec<Smp> {
    let ls: HashSet<Labels> = l.iter().map(|s| signature(&s.labels, on, names)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|s| !ls.contains(&signature(&s.labels, on, names))),
    );
    out
}

fn set_unless(l: Vec<Smp>, r: Vec<Smp>, on: bool, names: &[String]) -> Vec<Smp> {
    if l.is_empty() || r.is_empty() {
        return l;
    }
    let rs: HashSet<Labels> = r.iter().map(|s| signature(&s.labels, on, names)).collect();
    l.into_iter()
        .filter(|s| !rs.contains(&signature(&s.labels, on, names)))
        .collect()
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Smp>,
    rhs: Vec<Smp>,
    on: bool,
    names: &[String],
    card: &VectorMatchCardinality,
    return_bool: bool,
) -> Result<Vec<Smp>, PromError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let include: Option<&Vec<String>> = match card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
            Some(&l.labels)
        }
        _ => None,
    };
    let mut right: HashMap<Labels, &Smp> = HashMap::with_capacity(rhs.len());
    for rs in &rhs {
        let sig = signature(&rs.labels, on, names);
        if let Some(prev) = right.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(exec(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                labels_string(&sig),
                labels_string(&rs.labels),
                labels_string(&prev.labels)
            )));
        }
        right.insert(sig, rs);
    }
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ls in &lhs {
        let sig = signature(&ls.labels, on, names);
        let Some(rs) = right.get(&sig) else { continue };
        let (vl, vr) = if one_to_many {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = result_labels(&ls.labels, op, on, names, one_to_one, return_bool);
        if let Some(inc) = include {
            for ln in inc {
                let v = rs.labels.get(ln).unwrap_or("").to_string();
                set_label(&mut metric, ln, &v);
            }
            if return_bool {
                metric = without_name(&metric);
            }
        }
        let set = matched.entry(sig).or_default();
        if one_to_one {
            if !set.is_empty() {
                return Err(exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            set.insert(Labels::default());
        } else if !set.insert(metric.clone()) {
            return Err(exec(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        out.push(Smp {
            labels: metric,
            v: value,
            ts: ls.ts,
        });
    }
    Ok(out)
}

/// The points of `p` (sorted by time) in [lo, hi].
pub(crate) fn window(p: &[(i64, f64)], lo: i64, hi: i64) -> &[(i64, f64)] {
    let a = p.partition_point(|&(ts, _)| ts < lo);
    let b = a + p[a..].partition_point(|&(ts, _)| ts <= hi);
    &p[a..b]
}

/// Unwraps parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

pub(crate) fn call_arg(c: &Call, i: usize) -> Option<&Expr> {
    c.args.args.get(i).map(|b| b.as_ref())
}
