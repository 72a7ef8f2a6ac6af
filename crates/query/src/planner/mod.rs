//! A Logs Insights [`Pipeline`] (from `kinsight_ql`) as a DataFusion logical plan: a straight
//! walk over the pipeline's stages, each becoming one or two plan nodes. DataFusion's
//! optimizer then pushes projections and filters into the scan, turns sort + limit into a
//! top-k, and so on; nothing is evaluated here.
//!
//! Shape of the plan:
//!
//! 1. the groups' scan ([`LogTable::source_plan`]), then one projection naming every stored
//!    field the query reads (`Pipeline::input_fields`) by its Logs Insights name. A field that
//!    no group has is a null column — Logs Insights semantics for unknown fields — unless a
//!    group has reached its field cap, in which case it is read from the JSON of `@message`;
//! 2. the input stages, in order: `fields` and `parse` add or replace columns, `filter` is a
//!    filter, `sort` a sort (nulls last), `limit` a limit, `dedup` a `row_number()` window
//!    over the current order, `unnest` DataFusion's unnest of a JSON list;
//! 3. the aggregation: group keys, the distinct aggregate calls (named by their text, e.g.
//!    `avg(x)`), then a projection of the stats expressions over them; or, for `pattern`,
//!    the clustering of [`crate::pattern`] (shape per event, counts by shape and period, one
//!    aggregate function clustering them, unnested into one row per pattern, sorted by
//!    `@sampleCount` descending then `@pattern`; later sorts of the patterns break ties the
//!    same way);
//! 4. the output stages, like the input ones;
//! 5. the result columns, plus `@ptr` for raw-event queries, and the row cap.
//!
//! Raw-event queries carry `@log`, `@timestamp` and `@id` through every stage to build
//! `@ptr` at the end, and break `@timestamp` ties by `@id` so results are deterministic.

pub(crate) mod expr;

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions::math::expr_fn::abs;
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, ScalarUDF, SortExpr, cast, ident, lit,
    when,
};
use kinsight_ql::{
    FieldRef, Function, Located, NamedExpr, ParsePattern, Pipeline, SortOrder, Stage,
    pattern_fields,
};

use crate::error::{QueryError, Result};
use crate::functions;
use crate::pattern;
use crate::table::{EVENT_ID, LOG, LogTable, MESSAGE, TIMESTAMP};
use expr::{Scope, null_text};

/// The result column that holds the pointer of each raw event (reference §5.2).
pub const PTR: &str = "@ptr";

/// Options of one Logs Insights plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Most rows returned (the pipeline's own cap, or the caller's `limit`).
    pub row_cap: u64,
    /// Query start, for `now()`.
    pub now_ms: i64,
}

fn df(e: datafusion::error::DataFusionError) -> QueryError {
    QueryError::Internal(crate::error::strip_datafusion_prefixes(&e.to_string()))
}

struct Planner<'a> {
    plan: LogicalPlan,
    table: &'a LogTable,
    /// Raw events: carry what `@ptr` needs.
    raw: bool,
    /// The order rows are in after the last sort, for `dedup`.
    order: Vec<SortExpr>,
    now_ms: i64,
    temp: usize,
    /// Position columns of `unnest`ed lists, oldest first: the default order keeps
    /// unnested rows in list order.
    positions: Vec<String>,
    /// See [`Scope::untyped`].
    untyped: HashSet<String>,
    /// The rows are `pattern`'s patterns.
    patterns: bool,
}

/// Plans `pipeline` over the table's groups.
pub fn plan_pipeline(
    pipeline: &Pipeline,
    table: &Arc<LogTable>,
    options: PlanOptions,
) -> Result<LogicalPlan> {
    plan_pipeline_compared(pipeline, table, None, options)
}

/// Plans `pipeline` over the table's groups; a pipeline with `diff` also reads `previous`,
/// the same groups over the range it compares with ([`crate::pattern::previous_range`]).
pub fn plan_pipeline_compared(
    pipeline: &Pipeline,
    table: &Arc<LogTable>,
    previous: Option<&Arc<LogTable>>,
    options: PlanOptions,
) -> Result<LogicalPlan> {
    let raw = !pipeline.is_summary();
    let scan = table.source_plan("logs").map_err(df)?;
    let mut p = Planner {
        plan: scan,
        table,
        raw,
        order: Vec::new(),
        now_ms: options.now_ms,
        temp: 0,
        positions: Vec::new(),
        untyped: HashSet::new(),
        patterns: false,
    };
    p.project_inputs(pipeline)?;
    if pipeline.diff.is_some() {
        // Both ranges' events, each marked with its range, through the same stages.
        let Some(previous) = previous else {
            return Err(QueryError::Internal(
                "a diff query is planned without the range it compares with".into(),
            ));
        };
        let current = std::mem::take(&mut p.plan);
        p.plan = previous.source_plan("previous").map_err(df)?;
        p.project_inputs(pipeline)?;
        let earlier = std::mem::take(&mut p.plan);
        let mark = |plan: LogicalPlan, range: i64| -> Result<LogicalPlan> {
            let mut exprs: Vec<Expr> = plan
                .schema()
                .fields()
                .iter()
                .map(|f| ident(f.name().clone()))
                .collect();
            exprs.push(lit(range).alias(DIFF_RANGE));
            LogicalPlanBuilder::from(plan)
                .project(exprs)
                .and_then(|b| b.build())
                .map_err(df)
        };
        p.plan = LogicalPlanBuilder::from(mark(current, 0)?)
            .union(mark(earlier, 1)?)
            .and_then(|b| b.build())
            .map_err(df)?;
    }
    for stage in &pipeline.input {
        p.stage(stage)?;
    }
    if let Some(agg) = &pipeline.aggregation {
        p.aggregate(&agg.node)?;
    }
    if let Some(e) = &pipeline.pattern {
        p.pattern(&e.node, pipeline.diff.is_some())?;
    }
    if pipeline.is_summary() {
        for stage in &pipeline.output {
            p.stage(stage)?;
        }
    }
    p.project_result(&pipeline.columns)?;
    p.plan = LogicalPlanBuilder::from(p.plan)
        .limit(0, Some(options.row_cap as usize))
        .and_then(|b| b.build())
        .map_err(df)?;
    Ok(p.plan)
}

impl Planner<'_> {
    fn schema(&self) -> &DFSchema {
        self.plan.schema()
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            schema: self.plan.schema(),
            now_ms: self.now_ms,
            untyped: &self.untyped,
        }
    }

    fn names(&self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn temp_name(&mut self, what: &str) -> String {
        self.temp += 1;
        format!("__{what}{}", self.temp)
    }

    fn project(&mut self, exprs: Vec<Expr>) -> Result<()> {
        let plan = std::mem::take(&mut self.plan);
        self.plan = LogicalPlanBuilder::from(plan)
            .project(exprs)
            .and_then(|b| b.build())
            .map_err(df)?;
        Ok(())
    }

    fn apply(
        &mut self,
        f: impl FnOnce(LogicalPlanBuilder) -> datafusion::error::Result<LogicalPlanBuilder>,
    ) -> Result<()> {
        let plan = std::mem::take(&mut self.plan);
        self.plan = f(LogicalPlanBuilder::from(plan))
            .and_then(|b| b.build())
            .map_err(df)?;
        Ok(())
    }

    /// Sets columns (replacing same-named ones in place, appending new ones) and drops the
    /// columns in `drop`.
    fn set_columns(&mut self, new: Vec<(String, Expr)>, drop: &[String]) -> Result<()> {
        let mut exprs = Vec::new();
        let mut pending = new;
        for name in self.names() {
            if drop.contains(&name) {
                continue;
            }
            match pending.iter().position(|(n, _)| *n == name) {
                Some(i) => {
                    let (n, e) = pending.remove(i);
                    exprs.push(e.alias(n));
                }
                None => exprs.push(ident(name)),
            }
        }
        exprs.extend(pending.into_iter().map(|(n, e)| e.alias(n)));
        self.project(exprs)
    }

    /// Step 1 of the module documentation.
    fn project_inputs(&mut self, pipeline: &Pipeline) -> Result<()> {
        let scan_schema = self.plan.schema().clone();
        let mut names: Vec<String> = pipeline.input_fields.iter().cloned().collect();
        if self.raw {
            for hidden in [TIMESTAMP, LOG, EVENT_ID] {
                if !names.iter().any(|n| n == hidden) {
                    names.push(hidden.to_string());
                }
            }
        } else if pipeline.aggregation.as_ref().is_some_and(|a| {
            a.node
                .aggregates
                .iter()
                .any(|c| matches!(c.function, Function::Earliest | Function::Latest))
        }) && !names.iter().any(|n| n == EVENT_ID)
        {
            // `earliest` / `latest` break ties of the same millisecond by `@id`.
            names.push(EVENT_ID.to_string());
        }
        let stored = |name: &str| -> Option<Expr> {
            scan_schema
                .qualified_field_with_unqualified_name(name)
                .ok()
                .map(|(q, f)| Expr::Column((q, f).into()))
        };
        let mut exprs = Vec::new();
        for name in names {
            let e = if let Some(c) = stored(&name) {
                c
            } else if name == PTR {
                match (stored(LOG), stored(TIMESTAMP), stored(EVENT_ID)) {
                    (Some(l), Some(t), Some(i)) => functions::ptr().call(vec![l, t, i]),
                    _ => null_text(),
                }
            } else if self.table.any_group_at_field_cap()
                && let Some(m) = stored(MESSAGE)
            {
                self.untyped.insert(name.clone());
                message_member(m, &name)
            } else {
                null_text()
            };
            exprs.push(e.alias(name));
        }
        self.project(exprs)
    }

    fn stage(&mut self, stage: &Located<Stage>) -> Result<()> {
        match &stage.node {
            Stage::Fields(items) => {
                for NamedExpr { name, expr } in items {
                    let scope = self.scope();
                    let e = scope.expr(expr)?;
                    let untyped = scope.is_untyped(expr);
                    self.set_columns(vec![(name.clone(), e)], &[])?;
                    if untyped {
                        self.untyped.insert(name.clone());
                    } else {
                        self.untyped.remove(name);
                    }
                }
                Ok(())
            }
            Stage::Filter(e) => {
                let scope = self.scope();
                let cond = scope.truth(scope.expr(e)?);
                self.apply(|b| b.filter(cond))
            }
            Stage::Parse(parse) => self.parse(&parse.source, &parse.pattern),
            Stage::Unnest(u) => {
                let scope = self.scope();
                let list = functions::json_list().call(vec![scope.text(scope.expr(&u.expr)?)]);
                let tmp = self.temp_name("unnest");
                let position = self.temp_name("position");
                self.set_columns(vec![(tmp.clone(), list)], &[])?;
                let col = tmp.clone();
                self.apply(|b| b.unnest_column(col.as_str()))?;
                self.set_columns(
                    vec![
                        (u.into.clone(), get_field(ident(tmp.clone()), "v")),
                        (position.clone(), get_field(ident(tmp.clone()), "i")),
                    ],
                    &[tmp],
                )?;
                self.positions.push(position);
                self.untyped.insert(u.into.clone());
                Ok(())
            }
            Stage::Sort { keys, implicit } => {
                let scope = self.scope();
                let mut sort = Vec::with_capacity(keys.len() + 1);
                for k in keys {
                    // Missing values go last in either direction.
                    sort.extend(scope.sort_keys(&k.expr, k.order == SortOrder::Asc)?);
                }
                // Deterministic raw results: ties on @timestamp broken by the event id.
                if *implicit && scope.has(EVENT_ID) {
                    sort.push(SortExpr::new(ident(EVENT_ID), false, false));
                }
                if *implicit {
                    for p in self.positions.iter().filter(|p| scope.has(p)) {
                        sort.push(SortExpr::new(ident(p.clone()), true, false));
                    }
                }
                // Deterministic patterns: ties broken by count, then pattern.
                if self.patterns {
                    sort.extend(pattern_order(&scope));
                }
                self.order = sort.clone();
                self.apply(|b| b.sort(sort))
            }
            Stage::Limit(n) => {
                let n = *n as usize;
                self.apply(|b| b.limit(0, Some(n)))
            }
            Stage::Dedup(keys) => self.dedup(keys),
        }
    }

    /// `parse`: one struct-valued call per row, then one column per capture.
    fn parse(&mut self, source: &FieldRef, pattern: &ParsePattern) -> Result<()> {
        let positional = matches!(pattern, ParsePattern::Glob { .. });
        let udf = functions::parse::ParseFn::new(
            &pattern.to_regex(),
            pattern.names().to_vec(),
            positional,
        )
        .map_err(df)?;
        let scope = self.scope();
        let value = scope.text(scope.field(source));
        let call = Arc::new(ScalarUDF::new_from_impl(udf)).call(vec![value]);
        let tmp = self.temp_name("parse");
        self.set_columns(vec![(tmp.clone(), call)], &[])?;
        let captures = pattern
            .names()
            .iter()
            .map(|n| (n.clone(), get_field(ident(tmp.clone()), n.as_str())))
            .collect();
        self.set_columns(captures, &[tmp])?;
        self.untyped.extend(pattern.names().iter().cloned());
        Ok(())
    }

    /// `dedup`: the first row per key in the current order; rows with a null key all stay
    /// (reference §5.3).
    fn dedup(&mut self, keys: &[FieldRef]) -> Result<()> {
        let scope = self.scope();
        let keys: Vec<Expr> = keys.iter().map(|k| scope.field(k)).collect();
        let rn = self.temp_name("rn");
        let window = row_number()
            .partition_by(keys.clone())
            .order_by(self.order.clone())
            .build()
            .map_err(df)?
            .alias(rn.clone());
        self.apply(|b| b.window(vec![window]))?;
        let keep = keys
            .into_iter()
            .fold(ident(rn.clone()).eq(lit(1u64)), |acc, k| {
                acc.or(k.is_null())
            });
        self.apply(|b| b.filter(keep))?;
        let cols: Vec<Expr> = self
            .names()
            .into_iter()
            .filter(|n| *n != rn)
            .map(ident)
            .collect();
        self.project(cols)?;
        if !self.order.is_empty() {
            let order = self.order.clone();
            self.apply(|b| b.sort(order))?;
        }
        Ok(())
    }

    fn aggregate(&mut self, agg: &kinsight_ql::Aggregation) -> Result<()> {
        let scope = self.scope();
        // Group keys that were extracted text stay so; aggregates are typed.
        let untyped_keys: HashSet<String> = agg
            .group_by
            .iter()
            .filter(|g| scope.is_untyped(&g.expr))
            .map(|g| g.name.clone())
            .collect();
        let mut groups = Vec::with_capacity(agg.group_by.len());
        for g in &agg.group_by {
            groups.push(scope.expr(&g.expr)?.alias(g.name.clone()));
        }
        let mut aggs = Vec::with_capacity(agg.aggregates.len());
        for call in &agg.aggregates {
            aggs.push(scope.aggregate(call)?);
        }
        self.apply(|b| b.aggregate(groups, aggs))?;
        let scope = self.scope();
        let mut outputs: Vec<Expr> = agg.group_by.iter().map(|g| ident(g.name.clone())).collect();
        for o in &agg.outputs {
            outputs.push(scope.expr(&o.expr)?.alias(o.name.clone()));
        }
        self.project(outputs)?;
        self.order.clear();
        self.untyped = untyped_keys;
        Ok(())
    }

    /// `pattern <expr>` (with `diff`: over both ranges): see [`crate::pattern`].
    fn pattern(&mut self, e: &kinsight_ql::Expr, diff: bool) -> Result<()> {
        const KEY: &str = "__pattern_key";
        const BUCKET: &str = "__pattern_bucket";
        const COUNT: &str = "__pattern_count";
        const LIST: &str = "__patterns";
        let scope = self.scope();
        let value = scope.text(scope.expr(e)?);
        let buckets = pattern::Buckets::for_range(self.table.range());
        let millis = scope.num(ident(TIMESTAMP));
        let mut bucket = (millis - lit(buckets.origin_ms)) / lit(buckets.period_ms);
        if diff {
            // The compared range's events count in one bucket past the current range's.
            bucket = when(ident(DIFF_RANGE).eq(lit(1i64)), lit(buckets.count as i64))
                .otherwise(bucket)
                .map_err(df)?;
        }
        self.project(vec![
            pattern::key_function().call(vec![value]).alias(KEY),
            cast(bucket, DataType::Int64).alias(BUCKET),
        ])?;
        self.apply(|b| b.filter(ident(KEY).is_not_null()))?;
        self.apply(|b| {
            b.aggregate(
                vec![ident(KEY), ident(BUCKET)],
                vec![count_all().alias(COUNT)],
            )
        })?;
        let call = pattern::aggregate_function(buckets, diff).call(vec![
            cast(ident(KEY), DataType::Utf8),
            ident(BUCKET),
            ident(COUNT),
        ]);
        self.apply(|b| b.aggregate(Vec::<Expr>::new(), vec![call.alias(LIST)]))?;
        self.apply(|b| b.unnest_column(LIST))?;
        let extra: &[&str] = if diff { pattern_fields::DIFF_ALL } else { &[] };
        let mut columns: Vec<Expr> = pattern_fields::ALL
            .iter()
            .chain(extra)
            .map(|f| get_field(ident(LIST), *f).alias(*f))
            .collect();
        if diff {
            // The size of the change, to sort by (dropped with the result columns).
            columns.push(
                abs(get_field(ident(LIST), pattern_fields::CHANGE_IN_COUNT)).alias(CHANGE_SIZE),
            );
        }
        self.project(columns)?;
        self.order = pattern_order(&self.scope());
        self.untyped.clear();
        self.patterns = true;
        let order = self.order.clone();
        self.apply(|b| b.sort(order))
    }

    /// Step 5: the result columns in order, `@ptr` last for raw events.
    fn project_result(&mut self, columns: &[String]) -> Result<()> {
        let scope = self.scope();
        let ptr = || {
            if scope.has(LOG) && scope.has(TIMESTAMP) && scope.has(EVENT_ID) {
                functions::ptr().call(vec![ident(LOG), ident(TIMESTAMP), ident(EVENT_ID)])
            } else {
                null_text()
            }
        };
        let mut exprs = Vec::with_capacity(columns.len() + 1);
        for c in columns {
            let e = if c == PTR && self.raw {
                ptr()
            } else {
                scope.field(&FieldRef {
                    path: c.split('.').map(str::to_string).collect(),
                })
            };
            let e = if scope.has(c) { ident(c.clone()) } else { e };
            exprs.push(e.alias(c.clone()));
        }
        if self.raw && !columns.iter().any(|c| c == PTR) {
            exprs.push(ptr().alias(PTR));
        }
        self.project(exprs)
    }
}

/// The column marking the range of each event of a `diff` query: 0 the query's, 1 the one it
/// compares with.
const DIFF_RANGE: &str = "__diff_range";

/// The absolute `@changeInCount` of a `diff` query's patterns.
const CHANGE_SIZE: &str = "__change_size";

/// The order of patterns: with `diff`, the largest change first; then the most frequent,
/// then by pattern (when those columns are still there).
fn pattern_order(scope: &Scope<'_>) -> Vec<SortExpr> {
    let mut out = Vec::new();
    if scope.has(CHANGE_SIZE) {
        out.push(SortExpr::new(ident(CHANGE_SIZE), false, false));
    }
    if scope.has(pattern_fields::SAMPLE_COUNT) {
        out.push(SortExpr::new(
            ident(pattern_fields::SAMPLE_COUNT),
            false,
            false,
        ));
    }
    if scope.has(pattern_fields::PATTERN) {
        out.push(SortExpr::new(ident(pattern_fields::PATTERN), true, false));
    }
    out
}

/// A field read from the JSON of `@message` (a group past its field cap, reference §5.1).
/// Flattened names double a leading `@` of a JSON key; undo that for the lookup.
fn message_member(message: Expr, name: &str) -> Expr {
    let mut args = vec![message];
    for (i, seg) in name.split('.').enumerate() {
        let seg = if i == 0 && seg.starts_with("@@") {
            &seg[1..]
        } else {
            seg
        };
        args.push(lit(seg.to_string()));
    }
    functions::json_get().call(args)
}
