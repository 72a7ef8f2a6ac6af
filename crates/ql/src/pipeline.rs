//! The logical pipeline the planner consumes: a parsed query with CloudWatch's semantic rules
//! applied (reference §5.3, §5.6), so that planning is a straight walk.
//!
//! Shape: row-level stages over the input events ([`Pipeline::input`]), at most one
//! summary — an aggregation ([`Pipeline::aggregation`], from `stats`) or a clustering into
//! patterns ([`Pipeline::pattern`], from `pattern`) —, row-level stages over its result rows
//! ([`Pipeline::output`]), then the result columns and a row cap. Each rule below is applied in
//! [`Pipeline::from_query`] and commented where it is applied (what is said of `stats` holds
//! for `pattern`, whose result columns are [`pattern_fields::ALL`]):
//!
//! - a `filter` after `stats` that reads none of its result columns filters the input events
//!   (§5.6 examples 4–7); one that reads only result columns filters the aggregated rows;
//!   one that mixes both is an error;
//! - a `sort` after `stats` on fields it does not produce is ignored with a warning (§5.6
//!   example 4, `sort @timestamp desc`); a `sort` before `stats` is dropped unless a `limit`
//!   follows it before `stats` (order does not change aggregates; `earliest`/`latest` read
//!   `@timestamp` themselves);
//! - `fields` accumulate into the result columns unless a `display` exists; only the last
//!   `display` counts (§5.3); plain field names in `fields` compute nothing and become no
//!   stage;
//! - only `limit` may follow `dedup` (§5.3); one `stats` or `pattern` per query;
//! - without a `sort` before the first `limit`/`dedup`, events are sorted by
//!   `@timestamp desc` there (§5.3 default order), and a query without `stats` returns its
//!   rows in that order;
//! - the result is capped at [`DEFAULT_RESULT_ROWS`] unless the final stages hold an explicit
//!   `limit`, which may go up to [`MAX_RESULT_ROWS`].

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use crate::ast::*;
use crate::error::{ParseError, Position, Warning};
use crate::functions::Function;

/// Rows returned when the query has no `limit`: the console's default of 1,000 (reference
/// §5.3). API callers pass their own cap (StartQuery's `limit`), which the server applies on
/// top.
pub const DEFAULT_RESULT_ROWS: u64 = 1_000;
/// The most rows a query can return (reference §5.5 service limits: 10,000).
pub const MAX_RESULT_ROWS: u64 = crate::parser::MAX_LIMIT;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// Stages over the input events, in order. For a query without `stats`, all of them.
    pub input: Vec<Located<Stage>>,
    pub aggregation: Option<Located<Aggregation>>,
    /// `pattern <expr>`: the expression whose values are clustered into patterns. Never
    /// together with `aggregation`.
    pub pattern: Option<Located<Expr>>,
    /// `diff`: the patterns are compared with those of an earlier range (`pattern` is then
    /// set, to `@message` when the query has no `pattern`); its result columns add
    /// [`pattern_fields::DIFF_ALL`].
    pub diff: Option<Located<DiffPeriod>>,
    /// Stages over the aggregated rows (or the patterns), in order.
    pub output: Vec<Located<Stage>>,
    /// The result columns, in order.
    pub columns: Vec<String>,
    /// Fields the query reads from stored events (flattened names, e.g.
    /// `kubernetes.pod_name`), for column projection. Names the query defines itself
    /// (aliases, parse captures, unnest items) are not in it.
    pub input_fields: BTreeSet<String>,
    /// Cap applied to the final result.
    pub result_row_cap: u64,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Stage {
    /// Adds computed fields (from `fields … as x` or an unaliased expression); later stages
    /// can read them by name.
    Fields(Vec<NamedExpr>),
    Filter(Expr),
    Parse(Parse),
    Unnest(Unnest),
    /// `implicit`: the default `@timestamp desc` order, not written in the query.
    Sort {
        keys: Vec<SortKey>,
        implicit: bool,
    },
    /// Keep the first row per distinct combination, in the order of the rows so far; rows
    /// with a null key are all kept (§5.3).
    Dedup(Vec<FieldRef>),
    Limit(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedExpr {
    pub name: String,
    pub expr: Expr,
}

/// A `stats` command split the way a query engine plans it: group by `group_by`, compute
/// `aggregates`, then project `outputs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregation {
    /// Group keys, named by alias or text (`bin(5m)`).
    pub group_by: Vec<NamedExpr>,
    /// Distinct aggregate calls; `name` is the call's text (`avg(x)`), unique.
    pub aggregates: Vec<AggregateCall>,
    /// The stats expressions. Inside them every aggregate call is replaced by a one-segment
    /// field named by its [`AggregateCall::name`], and references to earlier aliases are
    /// inlined, so an output reads only aggregate results and group keys.
    pub outputs: Vec<NamedExpr>,
}

impl Aggregation {
    /// Result columns: group keys first, then the stats expressions.
    pub fn column_names(&self) -> Vec<String> {
        self.group_by
            .iter()
            .chain(&self.outputs)
            .map(|n| n.name.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateCall {
    pub name: String,
    pub function: Function,
    pub args: Vec<Expr>,
}

/// Parses and normalizes a query in one step.
pub fn plan(src: &str) -> Result<Pipeline, ParseError> {
    Pipeline::from_query(&crate::parser::parse(src)?)
}

impl Pipeline {
    pub fn from_query(query: &Query) -> Result<Pipeline, ParseError> {
        check_order(query)?;
        let commands = &query.commands;
        let mut p = match commands.iter().position(|c| {
            matches!(
                c.node,
                Command::Stats(_) | Command::Pattern(_) | Command::Diff(_)
            )
        }) {
            None => events_pipeline(commands),
            Some(i) => aggregation_pipeline(commands, i)?,
        };
        p.input_fields = input_fields(&p);
        Ok(p)
    }

    pub fn is_aggregation(&self) -> bool {
        self.aggregation.is_some()
    }

    /// Whether the result rows are summaries (`stats` groups or `pattern` patterns) rather
    /// than events.
    pub fn is_summary(&self) -> bool {
        self.aggregation.is_some() || self.pattern.is_some()
    }

    /// Whether the raw text of events must be read (the widest column; queries that only
    /// touch extracted fields should not read it).
    pub fn needs_message(&self) -> bool {
        self.input_fields.contains(system_fields::MESSAGE)
    }
}

/// §5.3: only `limit` may follow `dedup`; one `stats` (a second `stats` over the first one's
/// output is marked unverified in the reference and not supported), and no `stats` together
/// with `pattern`: each replaces the events by summary rows, and kinsight does one of them.
/// `diff` compares patterns: it follows `pattern` directly, or stands for `pattern @message`.
fn check_order(query: &Query) -> Result<(), ParseError> {
    let mut dedup: Option<Position> = None;
    let mut stats: Option<Position> = None;
    let mut pattern: Option<Position> = None;
    let mut diff: Option<Position> = None;
    for (i, c) in query.commands.iter().enumerate() {
        if let Some(d) = dedup
            && !matches!(c.node, Command::Limit(_))
        {
            return Err(ParseError::expected(
                c.pos,
                format!(
                    "only 'limit' may follow 'dedup' (the dedup is at {d}), found '{}'",
                    c.node.keyword()
                ),
                &["'limit'"],
            ));
        }
        match c.node {
            Command::Dedup(_) => dedup = Some(c.pos),
            Command::Stats(_) => {
                if let Some(s) = stats {
                    return Err(ParseError::new(
                        c.pos,
                        format!("a query can have only one 'stats' command; the first is at {s}"),
                    ));
                }
                if let Some((p, what)) = pattern
                    .map(|p| (p, "pattern"))
                    .or(diff.map(|d| (d, "diff")))
                {
                    return Err(ParseError::new(
                        c.pos,
                        format!(
                            "'stats' cannot be used with '{what}' (at {p}): a query summarizes its events once; \
                             filter, sort or limit the patterns instead"
                        ),
                    ));
                }
                stats = Some(c.pos);
            }
            Command::Pattern(_) if diff.is_some() => {
                return Err(ParseError::new(
                    c.pos,
                    format!(
                        "'pattern' must come before 'diff' (at {}), which compares its patterns",
                        diff.unwrap_or(Position::START)
                    ),
                ));
            }
            Command::Diff(_) => {
                if let Some(d) = diff {
                    return Err(ParseError::new(
                        c.pos,
                        format!("a query can have only one 'diff' command; the first is at {d}"),
                    ));
                }
                if let Some(s) = stats {
                    return Err(ParseError::new(
                        c.pos,
                        format!(
                            "'diff' cannot be used with 'stats' (at {s}): it compares patterns of events"
                        ),
                    ));
                }
                if let Some(p) = pattern
                    && !matches!(query.commands[i - 1].node, Command::Pattern(_))
                {
                    return Err(ParseError::new(
                        c.pos,
                        format!(
                            "'diff' must follow 'pattern' (at {p}) directly: it compares the patterns, \
                             and the commands after it work on the comparison"
                        ),
                    ));
                }
                diff = Some(c.pos);
            }
            Command::Pattern(_) => {
                if let Some(p) = pattern {
                    return Err(ParseError::new(
                        c.pos,
                        format!("a query can have only one 'pattern' command; the first is at {p}"),
                    ));
                }
                if let Some(s) = stats {
                    return Err(ParseError::new(
                        c.pos,
                        format!(
                            "'pattern' cannot be used with 'stats' (at {s}): a query summarizes its events once"
                        ),
                    ));
                }
                pattern = Some(c.pos);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `fields` item that only names an existing field computes nothing.
fn is_plain(p: &Projection) -> bool {
    matches!(&p.expr, Expr::Field(f) if p.alias.as_ref().is_none_or(|a| *a == f.name()))
}

fn computed(items: &[Projection]) -> Vec<NamedExpr> {
    items
        .iter()
        .filter(|p| !is_plain(p))
        .map(|p| NamedExpr {
            name: p.name(),
            expr: p.expr.clone(),
        })
        .collect()
}

fn push_unique(names: &mut Vec<String>, name: String) {
    if !names.contains(&name) {
        names.push(name);
    }
}

fn has_limit(stages: &[Located<Stage>]) -> bool {
    stages.iter().any(|s| matches!(s.node, Stage::Limit(_)))
}

fn row_cap(final_stages: &[Located<Stage>]) -> u64 {
    if has_limit(final_stages) {
        MAX_RESULT_ROWS
    } else {
        DEFAULT_RESULT_ROWS
    }
}

fn simple_stage(node: &Command) -> Option<Stage> {
    Some(match node {
        Command::Filter(e) => Stage::Filter(e.clone()),
        Command::Sort(keys) => Stage::Sort {
            keys: keys.clone(),
            implicit: false,
        },
        Command::Limit(l) => Stage::Limit(l.rows),
        Command::Parse(p) => Stage::Parse(p.clone()),
        Command::Dedup(f) => Stage::Dedup(f.clone()),
        Command::Unnest(u) => Stage::Unnest(u.clone()),
        Command::Fields(_)
        | Command::Display(_)
        | Command::Stats(_)
        | Command::Pattern(_)
        | Command::Diff(_) => {
            return None;
        }
    })
}

fn events_pipeline(commands: &[Located<Command>]) -> Pipeline {
    let mut stages = Vec::new();
    let mut fields = Vec::new();
    let mut display = None;
    for c in commands {
        match &c.node {
            Command::Fields(items) => {
                // §5.3: multiple `fields` accumulate.
                items
                    .iter()
                    .for_each(|p| push_unique(&mut fields, p.name()));
                let computed = computed(items);
                if !computed.is_empty() {
                    stages.push(Located {
                        pos: c.pos,
                        node: Stage::Fields(computed),
                    });
                }
            }
            // §5.3: only the last `display` counts.
            Command::Display(f) => display = Some(f.iter().map(FieldRef::name).collect()),
            node => stages.extend(simple_stage(node).map(|node| Located { pos: c.pos, node })),
        }
    }
    insert_default_sort(&mut stages, true);
    let columns = display.unwrap_or_else(|| {
        if fields.is_empty() {
            vec![
                system_fields::TIMESTAMP.to_string(),
                system_fields::MESSAGE.to_string(),
            ]
        } else {
            fields
        }
    });
    Pipeline {
        result_row_cap: row_cap(&stages),
        input: stages,
        aggregation: None,
        pattern: None,
        diff: None,
        output: Vec::new(),
        columns,
        input_fields: BTreeSet::new(),
        warnings: Vec::new(),
    }
}

/// Raw events come newest first (§5.3): unless a `sort` precedes the first `limit`/`dedup`,
/// insert `sort @timestamp desc` before it, so `limit 10` keeps the newest 10. With
/// `at_end`, also append it when there is no `limit`, `dedup` or `sort` at all (the order of
/// the result of a query without `stats`).
fn insert_default_sort(stages: &mut Vec<Located<Stage>>, at_end: bool) {
    let cut = stages
        .iter()
        .position(|s| matches!(s.node, Stage::Limit(_) | Stage::Dedup(_)));
    let is_sort = |s: &Located<Stage>| matches!(s.node, Stage::Sort { .. });
    let at = match cut {
        Some(i) if !stages[..i].iter().any(is_sort) => i,
        None if at_end && !stages.iter().any(is_sort) => stages.len(),
        _ => return,
    };
    // Point at the stage it precedes, or at the last stage when appended.
    let pos = stages
        .get(at)
        .or(stages.last())
        .map_or(Position::START, |s| s.pos);
    stages.insert(
        at,
        Located {
            pos,
            node: Stage::Sort {
                keys: vec![SortKey {
                    expr: Expr::Field(FieldRef::new(system_fields::TIMESTAMP)),
                    order: SortOrder::Desc,
                }],
                implicit: true,
            },
        },
    );
}

fn build_aggregation(stats: &Stats, pos: Position) -> Result<Aggregation, ParseError> {
    let group_by: Vec<NamedExpr> = stats
        .by
        .iter()
        .map(|p| NamedExpr {
            name: p.name(),
            expr: p.expr.clone(),
        })
        .collect();
    let mut aggregates: Vec<AggregateCall> = Vec::new();
    let mut outputs: Vec<NamedExpr> = Vec::new();
    for p in &stats.aggregations {
        let expr = p.expr.transform(&mut |e| match e {
            Expr::Call { function, args } if function.is_aggregate() => {
                let name = e.to_string();
                if !aggregates.iter().any(|a| a.name == name) {
                    aggregates.push(AggregateCall {
                        name: name.clone(),
                        function: *function,
                        args: args.clone(),
                    });
                }
                Some(Expr::Field(FieldRef::new(name)))
            }
            Expr::Field(f) => outputs
                .iter()
                .find(|o| o.name == f.name())
                .map(|o| o.expr.clone()),
            _ => None,
        });
        outputs.push(NamedExpr {
            name: p.name(),
            expr,
        });
    }
    let mut seen = HashSet::new();
    for n in group_by.iter().chain(&outputs) {
        if !seen.insert(n.name.as_str()) {
            return Err(ParseError::new(
                pos,
                format!(
                    "'{}' names two result columns of this 'stats'; give one of them another alias with 'as'",
                    n.name
                ),
            ));
        }
    }
    Ok(Aggregation {
        group_by,
        aggregates,
        outputs,
    })
}

fn resolves(f: &FieldRef, available: &[String]) -> bool {
    available.iter().any(|a| *a == f.name() || a == f.root())
}

fn names_text(names: &[String]) -> String {
    names.join(", ")
}

fn require_available(
    refs: &[&FieldRef],
    available: &[String],
    pos: Position,
    command: &str,
    summary: &str,
) -> Result<(), ParseError> {
    match refs.iter().find(|f| !resolves(f, available)) {
        None => Ok(()),
        Some(f) => Err(ParseError::new(
            pos,
            format!(
                "'{}' in '{command}' is not available after '{summary}': its result columns are {}",
                f.name(),
                names_text(available)
            ),
        )),
    }
}

/// The pipeline of a query with a summary at `at`: `stats` or `pattern`.
fn aggregation_pipeline(commands: &[Located<Command>], at: usize) -> Result<Pipeline, ParseError> {
    let stats_cmd = &commands[at];
    // `diff` right after `pattern` is part of the summary; `diff` alone is `pattern @message`
    // compared.
    let diff = commands.get(at + 1).and_then(|c| match c.node {
        Command::Diff(period) if matches!(stats_cmd.node, Command::Pattern(_)) => Some(Located {
            pos: c.pos,
            node: period,
        }),
        _ => None,
    });
    let (aggregation, pattern, diff) = match &stats_cmd.node {
        Command::Stats(stats) => (Some(build_aggregation(stats, stats_cmd.pos)?), None, None),
        Command::Pattern(e) => (None, Some(e.clone()), diff),
        Command::Diff(period) => (
            None,
            Some(Expr::Field(FieldRef::new(system_fields::MESSAGE))),
            Some(Located {
                pos: stats_cmd.pos,
                node: *period,
            }),
        ),
        _ => unreachable!("position() found a stats, pattern or diff command"),
    };
    let summary = if diff.is_some() {
        "diff"
    } else {
        stats_cmd.node.keyword()
    };
    let stats_columns: Vec<String> = match &aggregation {
        Some(a) => a.column_names(),
        None => pattern_fields::ALL
            .iter()
            .chain(if diff.is_some() {
                pattern_fields::DIFF_ALL
            } else {
                &[]
            })
            .map(|c| c.to_string())
            .collect(),
    };
    let skip = usize::from(diff.as_ref().is_some_and(|d| d.pos != stats_cmd.pos));
    let mut available = stats_columns.clone();
    let mut warnings = Vec::new();
    let mut moved = Vec::new();
    let mut output = Vec::new();
    let mut fields = Vec::new();
    let mut display: Option<(Position, Vec<FieldRef>)> = None;
    for c in &commands[at + 1 + skip..] {
        let stage = |node| Located { pos: c.pos, node };
        match &c.node {
            Command::Filter(e) => {
                let refs = e.field_refs();
                let (ours, theirs): (Vec<&FieldRef>, Vec<&FieldRef>) =
                    refs.iter().partition(|f| resolves(f, &available));
                if ours.is_empty() {
                    // §5.6 examples 4–7 write the event filter after stats and expect it to
                    // select the input events.
                    moved.push(stage(Stage::Filter(e.clone())));
                } else if theirs.is_empty() {
                    output.push(stage(Stage::Filter(e.clone())));
                } else {
                    return Err(ParseError::new(
                        c.pos,
                        format!(
                            "this filter after '{summary}' mixes its result columns ({}) with event fields ({}); \
                             put the condition on event fields in a filter before '{summary}'",
                            ours.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
                            theirs
                                .iter()
                                .map(|f| f.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            Command::Sort(keys) => {
                let mut kept = Vec::new();
                for k in keys {
                    let refs = k.expr.field_refs();
                    let resolved = refs.iter().filter(|f| resolves(f, &available)).count();
                    if refs.is_empty() || resolved == refs.len() {
                        kept.push(k.clone());
                    } else if resolved == 0 {
                        // §5.6 example 4 ends with `sort @timestamp desc` after a stats
                        // without @timestamp: harmless there, so ignored rather than refused.
                        warnings.push(Warning::new(
                            c.pos,
                            format!(
                                "sort key {} is ignored: after '{summary}' only its result columns can be sorted ({})",
                                k.expr,
                                names_text(&available)
                            ),
                        ));
                    } else {
                        require_available(&refs, &available, c.pos, "sort", summary)?;
                    }
                }
                if !kept.is_empty() {
                    output.push(stage(Stage::Sort {
                        keys: kept,
                        implicit: false,
                    }));
                }
            }
            Command::Fields(items) => {
                for p in items {
                    require_available(&p.expr.field_refs(), &available, c.pos, "fields", summary)?;
                    push_unique(&mut fields, p.name());
                    push_unique(&mut available, p.name());
                }
                let computed = computed(items);
                if !computed.is_empty() {
                    output.push(stage(Stage::Fields(computed)));
                }
            }
            Command::Display(f) => display = Some((c.pos, f.clone())),
            Command::Parse(p) => {
                require_available(&[&p.source], &available, c.pos, "parse", summary)?;
                p.pattern
                    .names()
                    .iter()
                    .for_each(|n| push_unique(&mut available, n.clone()));
                output.push(stage(Stage::Parse(p.clone())));
            }
            Command::Unnest(u) => {
                require_available(&u.expr.field_refs(), &available, c.pos, "unnest", summary)?;
                push_unique(&mut available, u.into.clone());
                output.push(stage(Stage::Unnest(u.clone())));
            }
            Command::Dedup(f) => {
                require_available(
                    &f.iter().collect::<Vec<_>>(),
                    &available,
                    c.pos,
                    "dedup",
                    summary,
                )?;
                output.push(stage(Stage::Dedup(f.clone())));
            }
            Command::Limit(l) => output.push(stage(Stage::Limit(l.rows))),
            Command::Stats(_) | Command::Pattern(_) | Command::Diff(_) => {
                unreachable!("check_order allows one stats or pattern (and diff right after it)")
            }
        }
    }

    let before = &commands[..at];
    let mut input = Vec::new();
    for (i, c) in before.iter().enumerate() {
        match &c.node {
            Command::Fields(items) => {
                let computed = computed(items);
                if !computed.is_empty() {
                    input.push(Located {
                        pos: c.pos,
                        node: Stage::Fields(computed),
                    });
                }
            }
            Command::Display(_) => warnings.push(Warning::new(
                c.pos,
                format!(
                    "'display' before '{summary}' has no effect: the result has the columns of '{summary}'"
                ),
            )),
            // Order does not change an aggregate; it matters only to a `limit` before stats.
            Command::Sort(_)
                if !before[i + 1..]
                    .iter()
                    .any(|c| matches!(c.node, Command::Limit(_))) => {}
            node => input.extend(simple_stage(node).map(|node| Located { pos: c.pos, node })),
        }
    }
    input.extend(moved);
    insert_default_sort(&mut input, false);
    // The two ranges' events go through the input stages together: a cut would take from
    // both at once.
    if let Some(d) = &diff
        && let Some(cut) = input
            .iter()
            .find(|s| matches!(s.node, Stage::Limit(_) | Stage::Dedup(_)))
    {
        let what = if matches!(cut.node, Stage::Limit(_)) {
            "limit"
        } else {
            "dedup"
        };
        return Err(ParseError::new(
            cut.pos,
            format!(
                "'{what}' cannot come before 'diff' (at {}): it would cut the events of both ranges together",
                d.pos
            ),
        ));
    }

    let columns = match display {
        Some((pos, f)) => {
            require_available(
                &f.iter().collect::<Vec<_>>(),
                &available,
                pos,
                "display",
                summary,
            )?;
            f.iter().map(FieldRef::name).collect()
        }
        None if !fields.is_empty() => fields,
        None => stats_columns,
    };
    let pos = stats_cmd.pos;
    Ok(Pipeline {
        input,
        aggregation: aggregation.map(|node| Located { pos, node }),
        pattern: pattern.map(|node| Located { pos, node }),
        diff,
        result_row_cap: row_cap(&output),
        output,
        columns,
        input_fields: BTreeSet::new(),
        warnings,
    })
}

/// Fields read from stored events: walks the input stages in order, so a name is an input
/// only if it is read before (or without) being defined by the query.
fn input_fields(p: &Pipeline) -> BTreeSet<String> {
    let mut defined: HashSet<String> = HashSet::new();
    let mut inputs = BTreeSet::new();
    let read = |e: &Expr, defined: &HashSet<String>, inputs: &mut BTreeSet<String>| {
        e.visit(&mut |e| match e {
            Expr::Field(f) if !defined.contains(&f.name()) && !defined.contains(f.root()) => {
                inputs.insert(f.name());
            }
            Expr::Call { function, .. } if function.spec().reads_timestamp => {
                inputs.insert(system_fields::TIMESTAMP.to_string());
            }
            _ => {}
        });
    };
    for s in &p.input {
        match &s.node {
            Stage::Fields(items) => {
                for n in items {
                    read(&n.expr, &defined, &mut inputs);
                    defined.insert(n.name.clone());
                }
            }
            Stage::Filter(e) => read(e, &defined, &mut inputs),
            Stage::Parse(parse) => {
                read(&Expr::Field(parse.source.clone()), &defined, &mut inputs);
                defined.extend(parse.pattern.names().iter().cloned());
            }
            Stage::Unnest(u) => {
                read(&u.expr, &defined, &mut inputs);
                defined.insert(u.into.clone());
            }
            Stage::Sort { keys, .. } => keys
                .iter()
                .for_each(|k| read(&k.expr, &defined, &mut inputs)),
            Stage::Dedup(f) => f
                .iter()
                .for_each(|f| read(&Expr::Field(f.clone()), &defined, &mut inputs)),
            Stage::Limit(_) => {}
        }
    }
    if let Some(e) = &p.pattern {
        read(&e.node, &defined, &mut inputs);
        // The patterns' counts over time (`@visualization`).
        inputs.insert(system_fields::TIMESTAMP.to_string());
        return inputs;
    }
    match &p.aggregation {
        Some(a) => {
            let a = &a.node;
            a.group_by
                .iter()
                .for_each(|g| read(&g.expr, &defined, &mut inputs));
            for call in &a.aggregates {
                if call.function.spec().reads_timestamp {
                    inputs.insert(system_fields::TIMESTAMP.to_string());
                }
                call.args
                    .iter()
                    .for_each(|e| read(e, &defined, &mut inputs));
            }
        }
        None => {
            for c in &p.columns {
                let root = c.split('.').next().unwrap_or(c);
                if !defined.contains(c) && !defined.contains(root) {
                    inputs.insert(c.clone());
                }
            }
        }
    }
    inputs
}
