//! Helpers shared by the test modules.

use kinsight_ql::{Command, Expr, ParseError, Pattern, Query, UnaryOp, parse};

/// Parses or fails the test with the error's text.
pub fn parse_ok(src: &str) -> Query {
    match parse(src) {
        Ok(q) => q,
        Err(e) => panic!("{src:?} should parse, got: {e}"),
    }
}

/// Parses `src`, expecting an error.
pub fn parse_err(src: &str) -> ParseError {
    match parse(src) {
        Ok(q) => panic!("{src:?} should not parse, got: {q}"),
        Err(e) => e,
    }
}

/// The expression of `filter <src>`.
pub fn filter_expr(src: &str) -> Expr {
    let q = parse_ok(&format!("filter {src}"));
    match &q.commands[0].node {
        Command::Filter(e) => e.clone(),
        other => panic!("expected a filter, got {other:?}"),
    }
}

/// A fully parenthesized prefix form of an expression, so tests can state the tree's shape
/// in one line: `a + b * c` is `(+ a (* b c))`.
pub fn sexpr(e: &Expr) -> String {
    match e {
        Expr::Field(f) => f.to_string(),
        Expr::Literal(l) => l.to_string(),
        Expr::Unary { op, expr } => {
            let op = match op {
                UnaryOp::Neg => "neg",
                UnaryOp::Not => "not",
            };
            format!("({op} {})", sexpr(expr))
        }
        Expr::Binary { op, left, right } => {
            format!("({} {} {})", op.symbol(), sexpr(left), sexpr(right))
        }
        Expr::Match {
            expr,
            op,
            pattern,
            negated,
        } => {
            let op = match (op, negated) {
                (kinsight_ql::MatchOp::Like, false) => "like",
                (kinsight_ql::MatchOp::Like, true) => "not-like",
                (kinsight_ql::MatchOp::RegexEq, _) => "=~",
            };
            let pat = match pattern {
                Pattern::Substring(s) => format!("{s:?}"),
                Pattern::Regex(r) => r.to_string(),
            };
            format!("({op} {} {pat})", sexpr(expr))
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let op = if *negated { "not-in" } else { "in" };
            let items: Vec<String> = list.iter().map(sexpr).collect();
            format!("({op} {} [{}])", sexpr(expr), items.join(" "))
        }
        Expr::Index { expr, index } => format!("(index {} {})", sexpr(expr), sexpr(index)),
        Expr::Call { function, args } => {
            let mut out = format!("({}", function.name());
            for a in args {
                out.push(' ');
                out.push_str(&sexpr(a));
            }
            out.push(')');
            out
        }
    }
}

/// `sexpr` of the expression of `filter <src>`.
pub fn shape(src: &str) -> String {
    sexpr(&filter_expr(src))
}
