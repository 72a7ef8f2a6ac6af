//! The range path: a range query of a common shape evaluated step by step over series
//! resolved once per query (issue 17).
//!
//! The general evaluator ([`crate::eval`]) rebuilds every element at every step: it clones
//! label sets, copies each window's points, hashes label sets for grouping, matching and the
//! duplicate checks. Here a query is first compiled into a small tree of [`Node`]s whose
//! elements are numbered once per query: a step produces `(element id, value)` pairs in the
//! order the general evaluator produces its elements, into buffers kept from step to step;
//! windows are found by cursors moving forward over each series' sorted points; the group of
//! each element of an aggregation, its matching signature in a binary operation, its bucket
//! of a histogram are computed once per query; label sets are built only for the final
//! series. Values are computed by the same code as in the general path
//! ([`RangeFunc::value`], [`Accumulator`], [`vector_scalar_elem`], [`elem_binop`],
//! [`value_function`], [`bucket_quantile`]) over the same points in the same order, so
//! answers are identical to the bit.
//!
//! Shapes handled: instant selectors; range functions but `absent_over_time` over a range
//! selector, or over a subquery of a handled shape without a subquery of its own (inner
//! steps evaluated once each, as in [`Evaluator::subquery`]); aggregations but
//! `count_values`; the element-wise math, date, `round` and `clamp*` functions;
//! `histogram_quantile`; unary minus; arithmetic and comparisons between a handled shape and
//! a number, or between two handled shapes with one-to-one matching (`on`, `ignoring`);
//! `and`, `unless`; parentheses; `sort` and `sort_desc` at the top — every parameter a
//! number. Anything else returns `None` and [`crate::range_query`] uses the general
//! evaluator; so does a query that could fail for a reason other than the sample limit or the
//! timeout: two elements of a node with the same label set, an invalid parameter (checked
//! before the first step), or a step where matching finds duplicates (the run stops there).
//! The general evaluator then gives the exact answer or error.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, SubqueryExpr, VectorMatchCardinality,
    VectorSelector,
};

use crate::aggregate::{Accumulator, AggOp, AggOut, group_labels};
use crate::eval::{
    DEFAULT_SUBQUERY_STEP_MS, Evaluator, METRIC_NAME, Val, dur_ms, elem_binop, is_arithmetic,
    is_comparison, is_stale, result_labels, signature, unparen, vector_scalar_elem, without_name,
};
use crate::functions::{RangeFunc, ValueFn, bucket_of, bucket_quantile, value_function};
use crate::{Labels, PromError, Series};

/// Evaluates `expr` at `start`, `start + step`, … ≤ `end` if it has a handled shape (after
/// [`Evaluator::prepare`]); the series sorted by labels, or `None` (use the general path).
pub(crate) fn range_series(
    ev: &Evaluator<'_>,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
) -> Option<Result<Vec<Series>, PromError>> {
    let mut root = Node::build(ev, without_sort(expr))?;
    if !root.unique() {
        return None;
    }
    match run(ev, &mut root, start, end, step) {
        Ok(series) => Some(Ok(series)),
        Err(Stop::Error(e)) => Some(Err(e)),
        Err(Stop::Bail) => None,
    }
}

/// The expression without a `sort` or `sort_desc` around it: the order of a step's elements
/// does not matter to a range query's answer (series sorted by labels), only to operators
/// over them.
fn without_sort(mut e: &Expr) -> &Expr {
    loop {
        match unparen(e) {
            Expr::Call(c) if matches!(c.func.name, "sort" | "sort_desc") => {
                match c.args.args.first() {
                    Some(a) => e = a,
                    None => return e,
                }
            }
            other => return other,
        }
    }
}

/// Why a run stopped early.
enum Stop {
    /// The sample limit or the timeout.
    Error(PromError),
    /// A step the general evaluator would fail on: it is left to give the exact error.
    Bail,
}

impl From<PromError> for Stop {
    fn from(e: PromError) -> Stop {
        Stop::Error(e)
    }
}

/// What a run counts and checks as it goes.
struct Ctx<'e, 's> {
    ev: &'e Evaluator<'s>,
    /// Points counted against the limit: loaded, produced, and of subquery steps.
    samples: usize,
    max_samples: usize,
}

impl Ctx<'_, '_> {
    fn count(&mut self, n: usize) -> Result<(), Stop> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.max_samples {
            return Err(PromError::TooManySamples.into());
        }
        Ok(())
    }
}

fn run(
    ev: &Evaluator<'_>,
    root: &mut Node<'_>,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<Series>, Stop> {
    let (samples, max_samples) = ev.samples_budget();
    let mut cx = Ctx {
        ev,
        samples,
        max_samples,
    };
    let mut points: Vec<Vec<(i64, f64)>> = vec![Vec::new(); root.len()];
    let mut buf = Vec::new();
    let mut t = start;
    while t <= end {
        ev.check_deadline()?;
        buf.clear();
        root.step(&mut cx, t, &mut buf)?;
        cx.count(buf.len())?;
        for &(id, v) in &buf {
            points[id as usize].push((t, v));
        }
        t = match t.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    let mut out: Vec<Series> = points
        .into_iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .map(|(id, samples)| Series {
            labels: root.labels(id as u32).to_labels(),
            samples,
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// An element's label set as a node sees it: a set, less the metric name if `drop_name`.
#[derive(Clone, Copy)]
struct LabelsView<'l> {
    labels: &'l Labels,
    drop_name: bool,
}

impl LabelsView<'_> {
    fn to_labels(self) -> Labels {
        if self.drop_name {
            without_name(self.labels)
        } else {
            self.labels.clone()
        }
    }
}

/// Whether elements with these label views have pairwise different label sets; `sorted`:
/// the views' whole sets come in order (equal sets are neighbours).
fn views_unique<'l>(views: impl Iterator<Item = LabelsView<'l>> + Clone, sorted: bool) -> bool {
    let drop_name = views.clone().any(|v| v.drop_name);
    // Without the name: when every element has the same name (a selector with a metric
    // name, the usual case), the sets are different exactly when the whole sets are.
    let mut names = views.clone().map(|v| v.labels.get(METRIC_NAME));
    let first = names.next().flatten();
    if !drop_name || names.all(|n| n == first) {
        if sorted {
            let mut prev: Option<&Labels> = None;
            return views.into_iter().all(|v| {
                let ok = prev != Some(v.labels);
                prev = Some(v.labels);
                ok
            });
        }
        let mut seen = HashSet::new();
        return views.into_iter().all(|v| seen.insert(v.labels));
    }
    let mut seen = HashSet::new();
    views.into_iter().all(|v| seen.insert(v.to_labels()))
}

/// A number (the only parameters handled).
fn number(e: &Expr) -> Option<f64> {
    match unparen(e) {
        Expr::NumberLiteral(n) => Some(n.val),
        _ => None,
    }
}

/// Interns label sets as numbers.
#[derive(Default)]
struct Interner(HashMap<Labels, u32>);

impl Interner {
    fn id(&mut self, l: Labels) -> u32 {
        let n = self.0.len() as u32;
        *self.0.entry(l).or_insert(n)
    }

    /// The sets by number.
    fn into_sets(self) -> Vec<Labels> {
        let mut v: Vec<(Labels, u32)> = self.0.into_iter().collect();
        v.sort_by_key(|&(_, id)| id);
        v.into_iter().map(|(l, _)| l).collect()
    }
}

enum Node<'a> {
    Select(Select<'a>),
    Window(Window<'a>),
    SubWindow(Box<SubWindow<'a>>),
    Map(Box<Map<'a>>),
    Binary(Box<Binary<'a>>),
    Aggregate(Box<Aggregate<'a>>),
    Histogram(Box<Histogram<'a>>),
}

impl<'a> Node<'a> {
    fn build(ev: &'a Evaluator<'_>, e: &'a Expr) -> Option<Node<'a>> {
        match unparen(e) {
            Expr::VectorSelector(vs) => Some(Node::Select(Select::new(ev, vs)?)),
            Expr::Call(c) => Node::call(ev, c),
            Expr::Unary(u) => Some(Map::node(Node::build(ev, &u.expr)?, MapOp::Neg)),
            Expr::Binary(b) => {
                let op = b.op.id();
                let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
                let scalar = |inner, c, swap| {
                    if !(is_arithmetic(op) || is_comparison(op)) {
                        return None;
                    }
                    let op = MapOp::Scalar {
                        op,
                        c,
                        swap,
                        return_bool,
                    };
                    Some(Map::node(Node::build(ev, inner)?, op))
                };
                match (number(&b.lhs), number(&b.rhs)) {
                    (Some(_), Some(_)) => None,
                    (Some(c), None) => scalar(&b.rhs, c, true),
                    (None, Some(c)) => scalar(&b.lhs, c, false),
                    (None, None) => Some(Node::Binary(Box::new(Binary::new(ev, b)?))),
                }
            }
            Expr::Aggregate(a) => Some(Node::Aggregate(Box::new(Aggregate::new(ev, a)?))),
            _ => None,
        }
    }

    fn call(ev: &'a Evaluator<'_>, c: &'a Call) -> Option<Node<'a>> {
        let name = c.func.name;
        if let Some(f) = RangeFunc::from_name(name) {
            return match unparen(c.args.args.get(f.matrix_arg())?) {
                Expr::Subquery(_) => Some(Node::SubWindow(Box::new(SubWindow::new(ev, c)?))),
                _ => Some(Node::Window(Window::new(ev, c)?)),
            };
        }
        if name == "histogram_quantile" {
            return Some(Node::Histogram(Box::new(Histogram::new(ev, c)?)));
        }
        // Element-wise functions: a vector, then numbers.
        let (first, rest) = c.args.args.split_first()?;
        let scalars = rest
            .iter()
            .map(|a| number(a))
            .collect::<Option<Vec<f64>>>()?;
        let op = match value_function(name, &scalars)? {
            Some(f) => MapOp::Func(f),
            None => MapOp::Empty,
        };
        Some(Map::node(Node::build(ev, first)?, op))
    }

    /// How many element ids there are.
    fn len(&self) -> usize {
        match self {
            Node::Select(s) => s.series.len(),
            Node::Window(w) => w.series.len(),
            Node::SubWindow(w) => w.inner.len(),
            Node::Map(m) => m.inner.len(),
            Node::Binary(b) => b.lhs.len(),
            Node::Aggregate(a) => a.len(),
            Node::Histogram(h) => h.groups.len(),
        }
    }

    fn labels(&self, id: u32) -> LabelsView<'_> {
        match self {
            Node::Select(s) => LabelsView {
                labels: &s.series[id as usize].labels,
                drop_name: false,
            },
            Node::Window(w) => LabelsView {
                labels: &w.series[id as usize].labels,
                drop_name: !w.f.keeps_name(),
            },
            Node::SubWindow(w) => {
                let v = w.inner.labels(id);
                LabelsView {
                    labels: v.labels,
                    drop_name: v.drop_name || !w.f.keeps_name(),
                }
            }
            Node::Map(m) => {
                let v = m.inner.labels(id);
                LabelsView {
                    labels: v.labels,
                    drop_name: v.drop_name || m.op.drops_name(),
                }
            }
            Node::Binary(b) => match &b.op {
                BinOp::Values { labels, .. } => LabelsView {
                    labels: &labels[id as usize],
                    drop_name: false,
                },
                BinOp::And | BinOp::Unless => b.lhs.labels(id),
            },
            Node::Aggregate(a) => a.labels(id),
            Node::Histogram(h) => LabelsView {
                labels: &h.groups[id as usize],
                drop_name: false,
            },
        }
    }

    /// Whether the elements' label sets, and those of every node below, are pairwise
    /// different (then no step fails on duplicates, here or in the general evaluator).
    fn unique(&self) -> bool {
        let children = match self {
            Node::Select(_) | Node::Window(_) => true,
            Node::SubWindow(w) => w.inner.unique(),
            Node::Map(m) => m.inner.unique(),
            Node::Binary(b) => b.lhs.unique() && b.rhs.unique(),
            Node::Aggregate(a) => a.inner.unique(),
            Node::Histogram(h) => h.inner.unique(),
        };
        children
            && views_unique(
                (0..self.len() as u32).map(|id| self.labels(id)),
                self.sorted(),
            )
    }

    /// Whether a subquery is evaluated below.
    fn has_subquery(&self) -> bool {
        match self {
            Node::Select(_) | Node::Window(_) => false,
            Node::SubWindow(_) => true,
            Node::Map(m) => m.inner.has_subquery(),
            Node::Binary(b) => b.lhs.has_subquery() || b.rhs.has_subquery(),
            Node::Aggregate(a) => a.inner.has_subquery(),
            Node::Histogram(h) => h.inner.has_subquery(),
        }
    }

    /// Whether element ids are in the order of the whole label sets of their views
    /// (selected series are sorted by labels, and nodes that keep the ids of the series
    /// keep their order).
    fn sorted(&self) -> bool {
        match self {
            Node::Select(_) | Node::Window(_) => true,
            Node::SubWindow(_) => false,
            Node::Map(m) => m.inner.sorted(),
            Node::Binary(b) => matches!(b.op, BinOp::And | BinOp::Unless) && b.lhs.sorted(),
            Node::Aggregate(a) => a.selects_members && a.inner.sorted(),
            Node::Histogram(_) => false,
        }
    }

    /// Appends the elements at outer time `t`, in the general evaluator's order.
    fn step(
        &mut self,
        cx: &mut Ctx<'_, '_>,
        t: i64,
        out: &mut Vec<(u32, f64)>,
    ) -> Result<(), Stop> {
        match self {
            Node::Select(s) => s.step(cx, t, out),
            Node::Window(w) => w.step(cx, t, out),
            Node::SubWindow(w) => return w.step(cx, t, out),
            Node::Map(m) => return m.step(cx, t, out),
            Node::Binary(b) => return b.step(cx, t, out),
            Node::Aggregate(a) => return a.step(cx, t, out),
            Node::Histogram(h) => return h.step(cx, t, out),
        }
        Ok(())
    }
}

/// Per series, how many of its points are at or before a bound that only grows from one
/// step to the next (recomputed by binary search if it ever shrinks).
struct Cursors {
    pos: Vec<usize>,
    bound: i64,
}

impl Cursors {
    fn new(n: usize) -> Cursors {
        Cursors {
            pos: vec![0; n],
            bound: i64::MIN,
        }
    }

    fn set_bound<'p>(&mut self, bound: i64, points: impl Iterator<Item = &'p [(i64, f64)]>) {
        if bound < self.bound {
            for (pos, p) in self.pos.iter_mut().zip(points) {
                *pos = p.partition_point(|&(ts, _)| ts <= bound);
            }
        }
        self.bound = bound;
    }

    /// Points of series `i` at or before the bound.
    fn advance(&mut self, i: usize, p: &[(i64, f64)]) -> usize {
        let mut k = self.pos[i];
        while k < p.len() && p[k].0 <= self.bound {
            k += 1;
        }
        self.pos[i] = k;
        k
    }
}

/// The points of each series.
fn points_of(series: &[Series]) -> impl Iterator<Item = &[(i64, f64)]> {
    series.iter().map(|s| s.samples.as_slice())
}

/// An instant selector: per series the latest point in [T - lookback, T] unless stale.
struct Select<'a> {
    vs: &'a VectorSelector,
    series: &'a [Series],
    lookback: i64,
    upto: Cursors,
}

impl<'a> Select<'a> {
    fn new(ev: &'a Evaluator<'_>, vs: &'a VectorSelector) -> Option<Select<'a>> {
        let series = ev.loaded_series(vs).ok()?;
        Some(Select {
            vs,
            series,
            lookback: ev.lookback_ms(),
            upto: Cursors::new(series.len()),
        })
    }

    fn step(&mut self, cx: &mut Ctx<'_, '_>, t: i64, out: &mut Vec<(u32, f64)>) {
        let te = cx.ev.eff_time(&self.vs.at, &self.vs.offset, t);
        let lo = te.saturating_sub(self.lookback);
        self.upto.set_bound(te, points_of(self.series));
        for (i, s) in self.series.iter().enumerate() {
            let k = self.upto.advance(i, &s.samples);
            if k == 0 {
                continue;
            }
            let (ts, v) = s.samples[k - 1];
            if ts < lo || is_stale(v) {
                continue;
            }
            out.push((i as u32, v));
        }
    }
}

/// A range function over a range selector (whose loaded points have no staleness markers).
struct Window<'a> {
    f: RangeFunc,
    vs: &'a VectorSelector,
    range: i64,
    param: Option<f64>,
    series: &'a [Series],
    /// Points before the window (time < T - range) and up to its end (time <= T).
    before: Cursors,
    upto: Cursors,
}

impl<'a> Window<'a> {
    fn new(ev: &'a Evaluator<'_>, c: &'a Call) -> Option<Window<'a>> {
        let f = RangeFunc::from_name(c.func.name)?;
        let param = match f.param_arg() {
            None => None,
            Some(i) => Some(number(c.args.args.get(i)?)?),
        };
        let Expr::MatrixSelector(ms) = unparen(c.args.args.get(f.matrix_arg())?) else {
            return None;
        };
        let series = ev.loaded_series(&ms.vs).ok()?;
        Some(Window {
            f,
            vs: &ms.vs,
            range: dur_ms(&ms.range),
            param,
            series,
            before: Cursors::new(series.len()),
            upto: Cursors::new(series.len()),
        })
    }

    fn step(&mut self, cx: &mut Ctx<'_, '_>, t: i64, out: &mut Vec<(u32, f64)>) {
        let te = cx.ev.eff_time(&self.vs.at, &self.vs.offset, t);
        let lo = te.saturating_sub(self.range);
        // Points before the window are those at or before lo - 1 (times are integers).
        self.before
            .set_bound(lo.saturating_sub(1), points_of(self.series));
        self.upto.set_bound(te, points_of(self.series));
        for (i, s) in self.series.iter().enumerate() {
            let p = &s.samples;
            let a = if lo == i64::MIN {
                0
            } else {
                self.before.advance(i, p)
            };
            let b = self.upto.advance(i, p).max(a);
            if a == b {
                continue;
            }
            if let Some(v) = self.f.value(&p[a..b], self.range, te, t, self.param) {
                out.push((i as u32, v));
            }
        }
    }
}

/// A range function over a subquery, as [`Evaluator::subquery`] and the function's general
/// evaluation compute it: the inner expression at every multiple of the subquery's step in
/// the window, each step evaluated once while it stays in the window (a step without points
/// is not kept: it counts against the limit again each time a window includes it), then the
/// function over each element's points, elements in the order of their label sets.
/// Subqueries within subqueries are left to the general evaluator.
struct SubWindow<'a> {
    f: RangeFunc,
    param: Option<f64>,
    sq: &'a SubqueryExpr,
    range: i64,
    step: i64,
    inner: Node<'a>,
    /// Inner element ids in the order of their label sets.
    order: Vec<u32>,
    /// Per inner element, its points at the steps evaluated, oldest first (those before
    /// the window are dropped now and then).
    points: Vec<Vec<(i64, f64)>>,
    /// The steps evaluated that are still in the window: whether each had points.
    steps: BTreeMap<i64, bool>,
    /// The latest step evaluated (steps are evaluated in increasing order).
    last: Option<i64>,
    before: Cursors,
    upto: Cursors,
    buf: Vec<(u32, f64)>,
}

impl<'a> SubWindow<'a> {
    fn new(ev: &'a Evaluator<'_>, c: &'a Call) -> Option<SubWindow<'a>> {
        let f = RangeFunc::from_name(c.func.name)?;
        let param = match f.param_arg() {
            None => None,
            Some(i) => Some(number(c.args.args.get(i)?)?),
        };
        let Expr::Subquery(sq) = unparen(c.args.args.get(f.matrix_arg())?) else {
            return None;
        };
        let step = sq
            .step
            .as_ref()
            .map(dur_ms)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        if step <= 0 {
            return None;
        }
        let inner = Node::build(ev, &sq.expr)?;
        if inner.has_subquery() {
            return None;
        }
        let n = inner.len();
        let labels: Vec<Labels> = (0..n as u32)
            .map(|id| inner.labels(id).to_labels())
            .collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&a, &b| labels[a as usize].cmp(&labels[b as usize]));
        Some(SubWindow {
            f,
            param,
            sq,
            range: dur_ms(&sq.range),
            step,
            inner,
            order,
            points: vec![Vec::new(); n],
            steps: BTreeMap::new(),
            last: None,
            before: Cursors::new(n),
            upto: Cursors::new(n),
            buf: Vec::new(),
        })
    }

    fn step(
        &mut self,
        cx: &mut Ctx<'_, '_>,
        t: i64,
        out: &mut Vec<(u32, f64)>,
    ) -> Result<(), Stop> {
        let te = cx.ev.eff_time(&self.sq.at, &self.sq.offset, t);
        let lo = te.saturating_sub(self.range);
        // The first multiple of the step at or after `lo` (none past i64::MAX).
        let step = i128::from(self.step);
        let first = i128::from(lo).div_euclid(step) * step;
        let first = if first < i128::from(lo) {
            first + step
        } else {
            first
        };
        let Ok(first) = i64::try_from(first) else {
            return Ok(());
        };
        self.steps = self.steps.split_off(&first);
        let mut ts = first;
        while ts <= te {
            cx.ev.check_deadline()?;
            match self.steps.get(&ts) {
                Some(true) => {}
                Some(false) => cx.count(1)?,
                None => {
                    if self.last.is_some_and(|l| ts <= l) {
                        // Only a window moving back would come here.
                        return Err(Stop::Bail);
                    }
                    self.last = Some(ts);
                    self.buf.clear();
                    self.inner.step(cx, ts, &mut self.buf)?;
                    cx.count(self.buf.len().saturating_add(1))?;
                    for &(id, v) in &self.buf {
                        self.points[id as usize].push((ts, v));
                    }
                    self.steps.insert(ts, !self.buf.is_empty());
                }
            }
            ts = match ts.checked_add(self.step) {
                Some(n) => n,
                None => break,
            };
        }
        let points = || self.points.iter().map(|p| p.as_slice());
        self.before.set_bound(first.saturating_sub(1), points());
        self.upto.set_bound(te, points());
        for &id in &self.order {
            let i = id as usize;
            let p = &self.points[i];
            let a = if first == i64::MIN {
                0
            } else {
                self.before.advance(i, p)
            };
            let b = self.upto.advance(i, p).max(a);
            if a == b {
                continue;
            }
            if let Some(v) = self.f.value(&p[a..b], self.range, te, t, self.param) {
                out.push((id, v));
            }
        }
        // Points before the window are not needed again: drop them once they are half.
        for (i, p) in self.points.iter_mut().enumerate() {
            let dead = self.before.pos[i];
            if dead >= 64 && dead * 2 >= p.len() {
                p.drain(..dead);
                self.before.pos[i] = 0;
                self.upto.pos[i] -= dead;
            }
        }
        Ok(())
    }
}

enum MapOp {
    /// Unary minus.
    Neg,
    /// Vector ⊕ number (`swap`: number ⊕ vector), arithmetic or comparison.
    Scalar {
        op: TokenId,
        c: f64,
        swap: bool,
        return_bool: bool,
    },
    /// An element-wise function.
    Func(ValueFn),
    /// Nothing (clamp with max < min).
    Empty,
}

impl MapOp {
    fn drops_name(&self) -> bool {
        match *self {
            MapOp::Neg | MapOp::Func(_) | MapOp::Empty => true,
            MapOp::Scalar {
                op, return_bool, ..
            } => is_arithmetic(op) || return_bool,
        }
    }
}

/// An element-wise operation; element ids are those of the operand.
struct Map<'a> {
    inner: Node<'a>,
    op: MapOp,
    buf: Vec<(u32, f64)>,
}

impl<'a> Map<'a> {
    fn node(inner: Node<'a>, op: MapOp) -> Node<'a> {
        Node::Map(Box::new(Map {
            inner,
            op,
            buf: Vec::new(),
        }))
    }

    fn step(
        &mut self,
        cx: &mut Ctx<'_, '_>,
        t: i64,
        out: &mut Vec<(u32, f64)>,
    ) -> Result<(), Stop> {
        self.buf.clear();
        self.inner.step(cx, t, &mut self.buf)?;
        match &self.op {
            MapOp::Neg => out.extend(self.buf.iter().map(|&(id, v)| (id, -v))),
            &MapOp::Scalar {
                op,
                c,
                swap,
                return_bool,
            } => {
                for &(id, v) in &self.buf {
                    // Arithmetic and comparisons (checked when built) cannot fail.
                    if let Ok(Some(v)) = vector_scalar_elem(op, v, c, swap, return_bool) {
                        out.push((id, v));
                    }
                }
            }
            MapOp::Func(f) => out.extend(self.buf.iter().map(|&(id, v)| (id, f(v)))),
            MapOp::Empty => {}
        }
        Ok(())
    }
}

enum BinOp {
    /// Arithmetic or comparison, one-to-one; the result's label set of each left-hand
    /// element.
    Values {
        op: TokenId,
        return_bool: bool,
        labels: Vec<Labels>,
    },
    And,
    Unless,
}

/// Vector ⊕ vector; element ids are those of the left-hand side.
struct Binary<'a> {
    lhs: Node<'a>,
    rhs: Node<'a>,
    op: BinOp,
    /// Matching signature (a number) of each element of each side.
    lsig: Vec<u32>,
    rsig: Vec<u32>,
    /// Per signature: the step (`stamp`) it was last seen on the right and matched on the
    /// left, and its right-hand value.
    right_seen: Vec<u64>,
    matched: Vec<u64>,
    right_value: Vec<f64>,
    stamp: u64,
    lbuf: Vec<(u32, f64)>,
    rbuf: Vec<(u32, f64)>,
}

impl<'a> Binary<'a> {
    fn new(ev: &'a Evaluator<'_>, b: &'a BinaryExpr) -> Option<Binary<'a>> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
            Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
            None => (false, Vec::new()),
        };
        let one_to_one = b
            .modifier
            .as_ref()
            .is_none_or(|m| matches!(m.card, VectorMatchCardinality::OneToOne));
        let lhs = Node::build(ev, &b.lhs)?;
        let rhs = Node::build(ev, &b.rhs)?;
        let mut sigs = Interner::default();
        let lviews: Vec<Labels> = (0..lhs.len() as u32)
            .map(|id| lhs.labels(id).to_labels())
            .collect();
        let lsig = lviews
            .iter()
            .map(|l| sigs.id(signature(l, on, &names)))
            .collect();
        let rsig = (0..rhs.len() as u32)
            .map(|id| sigs.id(signature(&rhs.labels(id).to_labels(), on, &names)))
            .collect();
        let op = match op {
            token::T_LAND => BinOp::And,
            token::T_LUNLESS => BinOp::Unless,
            _ if (is_arithmetic(op) || is_comparison(op)) && one_to_one => BinOp::Values {
                op,
                return_bool,
                labels: lviews
                    .iter()
                    .map(|l| result_labels(l, op, on, &names, true, return_bool))
                    .collect(),
            },
            _ => return None,
        };
        let n = sigs.0.len();
        Some(Binary {
            lhs,
            rhs,
            op,
            lsig,
            rsig,
            right_seen: vec![0; n],
            matched: vec![0; n],
            right_value: vec![0.0; n],
            stamp: 0,
            lbuf: Vec::new(),
            rbuf: Vec::new(),
        })
    }

    fn step(
        &mut self,
        cx: &mut Ctx<'_, '_>,
        t: i64,
        out: &mut Vec<(u32, f64)>,
    ) -> Result<(), Stop> {
        self.lbuf.clear();
        self.rbuf.clear();
        self.lhs.step(cx, t, &mut self.lbuf)?;
        self.rhs.step(cx, t, &mut self.rbuf)?;
        if self.lbuf.is_empty() || self.rbuf.is_empty() {
            if matches!(self.op, BinOp::Unless) {
                out.extend_from_slice(&self.lbuf);
            }
            return Ok(());
        }
        self.stamp += 1;
        let stamp = self.stamp;
        for &(id, v) in &self.rbuf {
            let s = self.rsig[id as usize] as usize;
            if self.right_seen[s] == stamp && matches!(self.op, BinOp::Values { .. }) {
                // Many-to-many: the general evaluator's error.
                return Err(Stop::Bail);
            }
            self.right_seen[s] = stamp;
            self.right_value[s] = v;
        }
        match self.op {
            BinOp::And | BinOp::Unless => {
                let and = matches!(self.op, BinOp::And);
                out.extend(self.lbuf.iter().filter(|&&(id, _)| {
                    (self.right_seen[self.lsig[id as usize] as usize] == stamp) == and
                }));
            }
            BinOp::Values {
                op, return_bool, ..
            } => {
                for &(id, lv) in &self.lbuf {
                    let s = self.lsig[id as usize] as usize;
                    if self.right_seen[s] != stamp {
                        continue;
                    }
                    let Ok((mut value, keep)) = elem_binop(op, lv, self.right_value[s]) else {
                        return Err(Stop::Bail);
                    };
                    if return_bool {
                        value = if keep { 1.0 } else { 0.0 };
                    } else if !keep {
                        continue;
                    }
                    if self.matched[s] == stamp {
                        // Two left-hand elements for one match: the general evaluator's error.
                        return Err(Stop::Bail);
                    }
                    self.matched[s] = stamp;
                    out.push((id, value));
                }
            }
        }
        Ok(())
    }
}

/// An aggregation; its element ids are its groups' (numbered once per query), or for
/// topk/bottomk the operand's.
struct Aggregate<'a> {
    inner: Node<'a>,
    acc: Accumulator,
    selects_members: bool,
    /// Group of each operand element.
    group_of: Vec<u32>,
    groups: Vec<Labels>,
    buf: Vec<(u32, f64)>,
}

impl<'a> Aggregate<'a> {
    fn new(ev: &'a Evaluator<'_>, a: &'a AggregateExpr) -> Option<Aggregate<'a>> {
        let op: TokenId = a.op.id();
        if op == token::T_COUNT_VALUES {
            return None;
        }
        let param = match &a.param {
            None => None,
            Some(p) => Some(Val::Scalar(number(p)?)),
        };
        // An error, or topk/bottomk with k < 1 (nothing at any step): the general path.
        let agg = AggOp::new(op, param.as_ref()).ok()??;
        let inner = Node::build(ev, &a.expr)?;
        let mut groups = Interner::default();
        let group_of = (0..inner.len() as u32)
            .map(|id| {
                let view = inner.labels(id);
                let mut key = group_labels(view.labels, a.modifier.as_ref());
                if view.drop_name {
                    key.0.retain(|(n, _)| n != METRIC_NAME);
                }
                groups.id(key)
            })
            .collect();
        Some(Aggregate {
            inner,
            acc: Accumulator::new(agg),
            selects_members: matches!(op, token::T_TOPK | token::T_BOTTOMK),
            group_of,
            groups: groups.into_sets(),
            buf: Vec::new(),
        })
    }

    fn len(&self) -> usize {
        if self.selects_members {
            self.inner.len()
        } else {
            self.groups.len()
        }
    }

    fn labels(&self, id: u32) -> LabelsView<'_> {
        if self.selects_members {
            self.inner.labels(id)
        } else {
            LabelsView {
                labels: &self.groups[id as usize],
                drop_name: false,
            }
        }
    }

    fn step(
        &mut self,
        cx: &mut Ctx<'_, '_>,
        t: i64,
        out: &mut Vec<(u32, f64)>,
    ) -> Result<(), Stop> {
        self.buf.clear();
        self.inner.step(cx, t, &mut self.buf)?;
        for &(id, v) in &self.buf {
            self.acc.add(self.group_of[id as usize], id, v);
        }
        self.acc.finish(|o| match o {
            AggOut::Group(g, v) | AggOut::Member(g, v) => out.push((g, v)),
        });
        Ok(())
    }
}

/// histogram_quantile over classic buckets; element ids are the histograms' (numbered once
/// per query).
struct Histogram<'a> {
    inner: Node<'a>,
    q: f64,
    /// Histogram and upper bound of each operand element (`None`: no valid `le`).
    bucket_of: Vec<Option<(u32, f64)>>,
    groups: Vec<Labels>,
    /// Per histogram, this step's (upper bound, count) pairs; histograms in order of first
    /// appearance.
    buckets: Vec<Vec<(f64, f64)>>,
    order: Vec<u32>,
    buf: Vec<(u32, f64)>,
}

impl<'a> Histogram<'a> {
    fn new(ev: &'a Evaluator<'_>, c: &'a Call) -> Option<Histogram<'a>> {
        let q = number(c.args.args.first()?)?;
        let inner = Node::build(ev, c.args.args.get(1)?)?;
        let mut groups = Interner::default();
        let bucket_of = (0..inner.len() as u32)
            .map(|id| {
                // The name is not part of a histogram's labels: dropped or not, the same.
                let (ub, key) = bucket_of(inner.labels(id).labels)?;
                Some((groups.id(key), ub))
            })
            .collect();
        let groups = groups.into_sets();
        Some(Histogram {
            inner,
            q,
            bucket_of,
            buckets: vec![Vec::new(); groups.len()],
            groups,
            order: Vec::new(),
            buf: Vec::new(),
        })
    }

    fn step(
        &mut self,
        cx: &mut Ctx<'_, '_>,
        t: i64,
        out: &mut Vec<(u32, f64)>,
    ) -> Result<(), Stop> {
        self.buf.clear();
        self.inner.step(cx, t, &mut self.buf)?;
        for &(id, v) in &self.buf {
            if let Some((g, ub)) = self.bucket_of[id as usize] {
                let b = &mut self.buckets[g as usize];
                if b.is_empty() {
                    self.order.push(g);
                }
                b.push((ub, v));
            }
        }
        for &g in &self.order {
            let b = std::mem::take(&mut self.buckets[g as usize]);
            out.push((g, bucket_quantile(self.q, b)));
        }
        self.order.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
