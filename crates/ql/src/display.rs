//! Printing the syntax tree back to query text.
//!
//! The output parses back to the same tree (a property test checks it): parentheses are added
//! exactly where precedence needs them, names are backtick-quoted when they are not plain
//! words, strings are double-quoted with escapes. It is also how an unaliased expression gets
//! its column name (`count(*)`, `bin(5m)`).

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;
use crate::functions::Function;
use crate::lexer::{is_name_char, is_name_start};
use crate::pipeline::{Pipeline, Stage};

/// Binding strength, loosest first; a child printed where a stronger one is required gets
/// parentheses. Mirrors the parser's levels (see `parser/expr.rs`).
mod prec {
    pub const OR: u8 = 1;
    pub const AND: u8 = 2;
    pub const NOT: u8 = 3;
    pub const CMP: u8 = 4;
    pub const ADD: u8 = 5;
    pub const MUL: u8 = 6;
    pub const NEG: u8 = 7;
    pub const POW: u8 = 8;
    pub const ATOM: u8 = 9;
}

fn precedence(e: &Expr) -> u8 {
    use BinaryOp::*;
    match e {
        Expr::Binary { op, .. } => match op {
            Or => prec::OR,
            And => prec::AND,
            Eq | NotEq | Lt | LtEq | Gt | GtEq => prec::CMP,
            Add | Sub => prec::ADD,
            Mul | Div | Mod => prec::MUL,
            Pow => prec::POW,
        },
        Expr::Unary {
            op: UnaryOp::Not, ..
        } => prec::NOT,
        Expr::Unary {
            op: UnaryOp::Neg, ..
        } => prec::NEG,
        Expr::Match { .. } | Expr::InList { .. } => prec::CMP,
        Expr::Field(_) | Expr::Literal(_) | Expr::Index { .. } | Expr::Call { .. } => prec::ATOM,
    }
}

struct At<'a>(&'a Expr, u8);

impl Display for At<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if precedence(self.0) < self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn bare_segment(s: &str, first: bool) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        None => false,
        Some(c) if first && !is_name_start(c) => false,
        Some(c) if !is_name_char(c) => false,
        Some(_) => chars.all(is_name_char),
    }
}

fn quoted(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// A field path as query text: plain segments bare, others in backticks.
pub fn field_path_text(segments: &[String]) -> String {
    let single = segments.len() == 1;
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if bare_segment(s, i == 0) && !(single && is_reserved(s)) {
                s.clone()
            } else {
                quoted(s)
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A name introduced by `as` / `into` (a flat string) as query text: bare when it reads back
/// as the same flat name, else one backtick-quoted segment.
pub fn name_text(name: &str) -> String {
    let segments: Vec<&str> = name.split('.').collect();
    let bare = segments
        .iter()
        .enumerate()
        .all(|(i, s)| bare_segment(s, i == 0))
        && !(segments.len() == 1 && is_reserved(name));
    if bare { name.to_string() } else { quoted(name) }
}

/// A string literal, double-quoted with the escapes the lexer understands.
pub fn string_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&field_path_text(&self.path))
    }
}

impl Display for Regex {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.source)
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(n) => write!(f, "{n}"),
            // Debug keeps a `.0` or an exponent, so a float reads back as a float.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Str(s) => f.write_str(&string_text(s)),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Period(p) => write!(f, "{p}"),
        }
    }
}

impl Display for Pattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => f.write_str(&string_text(s)),
            Pattern::Regex(r) => write!(f, "{r}"),
        }
    }
}

fn list<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    mut each: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, item)?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(r) => write!(f, "{r}"),
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Unary {
                op: UnaryOp::Neg,
                expr,
            } => write!(f, "-{}", At(expr, prec::POW)),
            Expr::Unary {
                op: UnaryOp::Not,
                expr,
            } => write!(f, "not {}", At(expr, prec::NOT)),
            Expr::Binary { op, left, right } => {
                // Left-associative operators need parentheses on an equal-strength right
                // child; `^` is right-associative; comparisons do not chain.
                let p = precedence(self);
                let (lp, rp) = match op {
                    BinaryOp::Pow => (prec::ATOM, prec::NEG),
                    op if op.is_comparison() => (prec::ADD, prec::ADD),
                    _ => (p, p + 1),
                };
                write!(f, "{} {} {}", At(left, lp), op.symbol(), At(right, rp))
            }
            Expr::Match {
                expr,
                op,
                pattern,
                negated,
            } => {
                let op = match (op, negated) {
                    (MatchOp::Like, false) => "like",
                    (MatchOp::Like, true) => "not like",
                    (MatchOp::RegexEq, _) => "=~",
                };
                write!(f, "{} {op} {pattern}", At(expr, prec::ADD))
            }
            Expr::InList {
                expr,
                list: items,
                negated,
            } => {
                let op = if *negated { "not in" } else { "in" };
                write!(f, "{} {op} [", At(expr, prec::ADD))?;
                list(f, items, |f, e| write!(f, "{e}"))?;
                f.write_char(']')
            }
            Expr::Index { expr, index } => write!(f, "{}[{index}]", At(expr, prec::ATOM)),
            Expr::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                if *function == Function::Count && args.is_empty() {
                    f.write_char('*')?;
                }
                list(f, args, |f, e| write!(f, "{e}"))?;
                f.write_char(')')
            }
        }
    }
}

impl Display for Projection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)?;
        if let Some(a) = &self.alias {
            write!(f, " as {}", name_text(a))?;
        }
        Ok(())
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())?;
        if let Command::Diff(period) = self {
            if let Some(m) = period.modifier() {
                write!(f, " {m}")?;
            }
            return Ok(());
        }
        f.write_char(' ')?;
        match self {
            Command::Fields(items) => list(f, items, |f, p| write!(f, "{p}")),
            Command::Display(fields) | Command::Dedup(fields) => {
                list(f, fields, |f, r| write!(f, "{r}"))
            }
            Command::Filter(e) => write!(f, "{e}"),
            Command::Stats(s) => {
                list(f, &s.aggregations, |f, p| write!(f, "{p}"))?;
                if !s.by.is_empty() {
                    f.write_str(" by ")?;
                    list(f, &s.by, |f, p| write!(f, "{p}"))?;
                }
                Ok(())
            }
            Command::Sort(keys) => list(f, keys, |f, k| {
                let order = match k.order {
                    SortOrder::Asc => "asc",
                    SortOrder::Desc => "desc",
                };
                write!(f, "{} {order}", k.expr)
            }),
            Command::Limit(l) => write!(f, "{}", l.rows),
            Command::Parse(p) => {
                write!(f, "{} ", p.source)?;
                match &p.pattern {
                    ParsePattern::Glob { glob, names } => {
                        write!(f, "{} as ", string_text(glob))?;
                        list(f, names, |f, n| f.write_str(&name_text(n)))
                    }
                    ParsePattern::Regex { regex, .. } => write!(f, "{regex}"),
                }
            }
            Command::Unnest(u) => write!(f, "{} into {}", u.expr, name_text(&u.into)),
            Command::Pattern(e) => write!(f, "{e}"),
            Command::Diff(_) => Ok(()),
        }
    }
}

impl Display for Query {
    /// One command per line, each after the first starting with `| `.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, c) in self.commands.iter().enumerate() {
            if i > 0 {
                f.write_str("\n| ")?;
            }
            write!(f, "{}", c.node)?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Fields(items) => {
                f.write_str("fields ")?;
                list(f, items, |f, n| {
                    write!(f, "{} as {}", n.expr, name_text(&n.name))
                })
            }
            Stage::Filter(e) => write!(f, "filter {e}"),
            Stage::Parse(p) => write!(f, "{}", Command::Parse(p.clone())),
            Stage::Unnest(u) => write!(f, "{}", Command::Unnest(u.clone())),
            Stage::Sort { keys, implicit } => {
                write!(f, "{}", Command::Sort(keys.clone()))?;
                if *implicit {
                    f.write_str(" (default order)")?;
                }
                Ok(())
            }
            Stage::Dedup(fields) => write!(f, "{}", Command::Dedup(fields.clone())),
            Stage::Limit(n) => write!(f, "limit {n}"),
        }
    }
}

/// A multi-line summary of the plan-ready pipeline, like an `EXPLAIN`: one stage per line with
/// its position, the aggregation's parts, result columns, input fields, row cap, warnings.
impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let stages = |f: &mut Formatter<'_>, title: &str, stages: &[Located<Stage>]| {
            writeln!(f, "{title}:")?;
            for s in stages {
                writeln!(f, "  [{}:{}] {}", s.pos.line, s.pos.column, s.node)?;
            }
            Ok(())
        };
        stages(f, "input", &self.input)?;
        if let Some(a) = &self.aggregation {
            writeln!(f, "aggregation [{}:{}]:", a.pos.line, a.pos.column)?;
            for g in &a.node.group_by {
                writeln!(f, "  group {} = {}", name_text(&g.name), g.expr)?;
            }
            for c in &a.node.aggregates {
                let call = Expr::Call {
                    function: c.function,
                    args: c.args.clone(),
                };
                writeln!(f, "  aggregate {call}")?;
            }
            for o in &a.node.outputs {
                writeln!(f, "  output {} = {}", name_text(&o.name), o.expr)?;
            }
            stages(f, "output", &self.output)?;
        }
        if let Some(p) = &self.pattern {
            writeln!(f, "pattern [{}:{}]: {}", p.pos.line, p.pos.column, p.node)?;
            if let Some(d) = &self.diff {
                writeln!(f, "diff [{}:{}]: {:?}", d.pos.line, d.pos.column, d.node)?;
            }
            stages(f, "output", &self.output)?;
        }
        writeln!(f, "columns: {}", self.columns.join(", "))?;
        let inputs: Vec<&str> = self.input_fields.iter().map(String::as_str).collect();
        writeln!(f, "input fields: {}", inputs.join(", "))?;
        writeln!(f, "row cap: {}", self.result_row_cap)?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_when_needed() {
        assert_eq!(name_text("a.b"), "a.b");
        assert_eq!(name_text("@user"), "@user");
        assert_eq!(name_text("foo-bar"), "`foo-bar`");
        assert_eq!(name_text("desc"), "`desc`");
        assert_eq!(name_text("0x"), "`0x`");
        assert_eq!(name_text("a`b"), "`a``b`");
        assert_eq!(
            field_path_text(&["kubernetes".into(), "odd.key".into()]),
            "kubernetes.`odd.key`"
        );
        assert_eq!(field_path_text(&["and".into(), "x".into()]), "and.x");
    }

    #[test]
    fn strings_escape_quotes_and_backslashes() {
        assert_eq!(string_text("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
