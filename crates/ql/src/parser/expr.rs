//! Expressions (reference §5.4) by precedence climbing. Binding strength, loosest first:
//!
//! | level | operators | associativity |
//! |---|---|---|
//! | 1 | `or` | left |
//! | 2 | `and` | left |
//! | 3 | prefix `not` | — |
//! | 4 | `= != < <= > >=`, `[not] like`, `=~`, `[not] in` | none: `a < b < c` is an error |
//! | 5 | `+ -` | left |
//! | 6 | `* / %` | left |
//! | 7 | prefix `-` | — |
//! | 8 | `^` | right: `2 ^ 3 ^ 2` is `2 ^ 9` |
//! | 9 | postfix `x[i]` | left |
//!
//! Unary minus binds looser than `^`, so `-2 ^ 2` is `-(2 ^ 2)` as in mathematics; `not`
//! binds looser than comparisons, so `not a = 1` is `not (a = 1)`. The levels are those of
//! the printer in `display.rs`. One loop handles all binary levels, so a parenthesis costs
//! five stack frames whatever the number of levels.

use super::{AggContext, MAX_DEPTH, MAX_NESTING, Parser};
use crate::ast::*;
use crate::error::{ParseError, suggest};
use crate::functions::{ArgKind, FUNCTIONS, Function};
use crate::lexer::TokenKind;

impl Parser<'_> {
    /// A whole expression; `what` names it in the error if none starts here.
    pub(super) fn expr(&mut self, what: &str) -> Result<Expr, ParseError> {
        if !self.starts_expr() {
            return Err(self.unexpected(what, &["an expression"]));
        }
        self.nest()?;
        self.enter()?;
        let e = self.expr_bp(OR);
        self.depth -= 1;
        self.nesting -= 1;
        e
    }

    /// Counts one level of tree depth. Parentheses, calls, unary operators and every link of
    /// an operator chain deepen the tree; capping it keeps whoever walks the tree recursively
    /// (printer, planner, drop) within the stack.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                self.tok.pos(),
                format!(
                    "the expression is too deep: more than {MAX_DEPTH} nested or chained \
                     operators; use 'in [...]' for long lists of alternatives"
                ),
            ));
        }
        Ok(())
    }

    /// Counts one level of the parser's own recursion (parentheses, calls, lists, indexes,
    /// prefix operators), which costs far more stack per level than walking the tree.
    fn nest(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(ParseError::new(
                self.tok.pos(),
                format!(
                    "the expression is nested too deeply: more than {MAX_NESTING} levels of \
                     parentheses, function calls or prefix operators"
                ),
            ));
        }
        Ok(())
    }

    fn starts_expr(&self) -> bool {
        use TokenKind::*;
        match &self.tok.kind {
            // Reserved words start nothing but `not`/`true`/`false`; they are still let
            // through so that the field path reports them with a hint to quote them.
            Name { .. } => !self.tok.is_word("by"),
            Int(_) | Float(_) | Str(_) | Period(_) | LParen | Minus | Slash => true,
            _ => false,
        }
    }

    /// Parses an expression whose operators all bind at least as tightly as `min`.
    fn expr_bp(&mut self, min: u8) -> Result<Expr, ParseError> {
        let base = self.depth;
        let mut left = self.prefix(min)?;
        let mut after_cmp = false;
        while let Some((op, level)) = self.infix() {
            if level < min {
                break;
            }
            if level == CMP && after_cmp {
                return Err(ParseError::expected(
                    self.tok.pos(),
                    format!(
                        "comparisons cannot be chained: found {} after a comparison; add parentheses or use 'and'",
                        self.tok.describe()
                    ),
                    &["'and'", "'or'", "')'"],
                ));
            }
            after_cmp = level == CMP;
            // Every link of a chain deepens the (left-leaning) tree.
            self.enter()?;
            self.advance()?;
            left = match op {
                Infix::Binary(op) => {
                    // Left-associative levels parse their right side one level tighter;
                    // `^` parses it at the level of unary minus so `2 ^ -1` works.
                    let right_min = match op {
                        BinaryOp::Pow => NEG,
                        _ => level + 1,
                    };
                    let right = self.operand(right_min)?;
                    binary(op, left, right)
                }
                Infix::Match(op) => self.matcher(left, op, false)?,
                Infix::Not => {
                    if self.eat_word("like")? {
                        self.matcher(left, MatchOp::Like, true)?
                    } else if self.eat_word("in")? {
                        self.in_list(left, true)?
                    } else {
                        return Err(self.unexpected("'like' or 'in'", &["'like'", "'in'"]));
                    }
                }
                Infix::In => self.in_list(left, false)?,
            };
        }
        self.depth = base;
        Ok(left)
    }

    /// The operand after an operator, or an error naming the operator.
    fn operand(&mut self, min: u8) -> Result<Expr, ParseError> {
        if !self.starts_expr() {
            return Err(self.unexpected("an expression", &["an expression"]));
        }
        self.expr_bp(min)
    }

    /// The operator at the current token, if any, and its level.
    fn infix(&self) -> Option<(Infix, u8)> {
        use TokenKind::*;
        let op = |op| Some((Infix::Binary(op), level_of(op)));
        match &self.tok.kind {
            Plus => op(BinaryOp::Add),
            Minus => op(BinaryOp::Sub),
            Star => op(BinaryOp::Mul),
            Slash => op(BinaryOp::Div),
            Percent => op(BinaryOp::Mod),
            Caret => op(BinaryOp::Pow),
            Eq => op(BinaryOp::Eq),
            NotEq => op(BinaryOp::NotEq),
            Lt => op(BinaryOp::Lt),
            LtEq => op(BinaryOp::LtEq),
            Gt => op(BinaryOp::Gt),
            GtEq => op(BinaryOp::GtEq),
            Tilde => Some((Infix::Match(MatchOp::RegexEq), CMP)),
            Name { .. } => match self.tok.word()?.as_str() {
                "or" => op(BinaryOp::Or),
                "and" => op(BinaryOp::And),
                "like" => Some((Infix::Match(MatchOp::Like), CMP)),
                "in" => Some((Infix::In, CMP)),
                "not" => Some((Infix::Not, CMP)),
                _ => None,
            },
            _ => None,
        }
    }

    /// A prefix operator with its operand, or a postfix expression.
    fn prefix(&mut self, min: u8) -> Result<Expr, ParseError> {
        let op = if self.tok.is_word("not") {
            // `a + not b` would read as `a + (not b)`, surprising next to `not a + b`:
            // below the level of `not`, ask for parentheses.
            if min > NOT {
                return Err(ParseError::new(
                    self.tok.pos(),
                    format!(
                        "'not' cannot follow {} directly; put the negated part in parentheses: (not ...)",
                        self.prev.as_deref().unwrap_or("this operator")
                    ),
                ));
            }
            UnaryOp::Not
        } else if self.at(&TokenKind::Minus) {
            UnaryOp::Neg
        } else {
            return self.postfix();
        };
        self.advance()?;
        self.nest()?;
        self.enter()?;
        let expr = self.operand(if op == UnaryOp::Not { NOT } else { POW })?;
        self.depth -= 1;
        self.nesting -= 1;
        Ok(Expr::Unary {
            op,
            expr: Box::new(expr),
        })
    }

    fn matcher(&mut self, expr: Expr, op: MatchOp, negated: bool) -> Result<Expr, ParseError> {
        let pattern = match &self.tok.kind {
            TokenKind::Str(s) => {
                let s = s.clone();
                self.advance()?;
                Pattern::Substring(s)
            }
            TokenKind::Slash => Pattern::Regex(self.regex()?),
            _ => {
                return Err(self.unexpected("a \"string\" or a /regex/", &["a string", "a regex"]));
            }
        };
        Ok(Expr::Match {
            expr: Box::new(expr),
            op,
            pattern,
            negated,
        })
    }

    fn in_list(&mut self, expr: Expr, negated: bool) -> Result<Expr, ParseError> {
        if !self.at(&TokenKind::LBracket) {
            return Err(self.unexpected("a list such as [1, \"a\"]", &["'['"]));
        }
        self.advance()?;
        let mut list = Vec::new();
        loop {
            list.push(self.expr("a list element")?);
            if !self.eat(&TokenKind::Comma)? {
                break;
            }
        }
        if !self.at(&TokenKind::RBracket) {
            return Err(self.unexpected("',' or ']'", &["','", "']'"]));
        }
        self.advance()?;
        Ok(Expr::InList {
            expr: Box::new(expr),
            list,
            negated,
        })
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let base = self.depth;
        let mut expr = self.primary()?;
        while self.eat(&TokenKind::LBracket)? {
            self.enter()?;
            // The index is its own expression: its fields are read like any other.
            let index = self.expr("an index")?;
            if !self.at(&TokenKind::RBracket) {
                return Err(self.unexpected("']'", &["']'"]));
            }
            self.advance()?;
            expr = Expr::Index {
                expr: Box::new(expr),
                index: Box::new(index),
            };
        }
        self.depth = base;
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let pos = self.tok.pos();
        let literal = match &self.tok.kind {
            TokenKind::Int(n) => Some(Literal::Int(*n)),
            TokenKind::Float(x) => Some(Literal::Float(*x)),
            TokenKind::Str(s) => Some(Literal::Str(s.clone())),
            TokenKind::Period(p) => Some(Literal::Period(*p)),
            _ if self.tok.is_word("true") => Some(Literal::Bool(true)),
            _ if self.tok.is_word("false") => Some(Literal::Bool(false)),
            _ => None,
        };
        if let Some(l) = literal {
            self.advance()?;
            return Ok(Expr::Literal(l));
        }
        match &self.tok.kind {
            TokenKind::LParen => {
                self.advance()?;
                let inner = self.expr("an expression")?;
                if !self.at(&TokenKind::RParen) {
                    return Err(ParseError::expected(
                        self.tok.pos(),
                        format!(
                            "expected ')' to close the '(' at {pos}, found {}",
                            self.tok.describe()
                        ),
                        &["')'"],
                    ));
                }
                self.advance()?;
                Ok(inner)
            }
            TokenKind::Slash => Err(ParseError::new(
                pos,
                "a /regex/ can only follow 'like', 'not like', '=~' or the field of 'parse'",
            )),
            TokenKind::Name { .. } => {
                let field = match self.field_ref_token("an expression")? {
                    Some(f) => f,
                    None => return Err(self.unexpected("an expression", &["an expression"])),
                };
                if self.at(&TokenKind::LParen) {
                    return self.call(field, pos);
                }
                if self.ctx == AggContext::StatsItem {
                    self.stats_refs.push((field.name(), pos));
                }
                Ok(Expr::Field(field))
            }
            _ => Err(self.unexpected("an expression", &["an expression"])),
        }
    }

    fn call(&mut self, name: FieldRef, pos: crate::error::Position) -> Result<Expr, ParseError> {
        let text = name.name();
        let Some(function) = Function::lookup(&text) else {
            let hint = match suggest(&text, FUNCTIONS.iter().map(|s| s.name)) {
                Some(s) => format!("; did you mean {s}()?"),
                None => String::new(),
            };
            let extra = if text.eq_ignore_ascii_case("percentile") {
                "; percentiles are pct(field, p)"
            } else {
                ""
            };
            return Err(ParseError::expected(
                pos,
                format!("unknown function '{text}'{hint}{extra}"),
                &["a function name"],
            ));
        };
        let spec = function.spec();
        let outer = self.ctx;
        if function.is_aggregate() {
            match outer {
                AggContext::Forbidden(place) => {
                    return Err(ParseError::new(
                        pos,
                        format!(
                            "the aggregation function {}() is only allowed in 'stats', not {place}; \
                             compute it in stats with an alias (stats {}(...) as n) and use n afterwards",
                            spec.name, spec.name
                        ),
                    ));
                }
                AggContext::Inside(parent) => {
                    return Err(ParseError::new(
                        pos,
                        format!(
                            "aggregation functions cannot be nested: {}() inside {}()",
                            spec.name,
                            parent.name()
                        ),
                    ));
                }
                AggContext::StatsItem => {
                    self.stats_has_agg = true;
                    self.ctx = AggContext::Inside(function);
                }
            }
        }
        let args = self.call_args(function);
        self.ctx = outer;
        let args = args?;
        let n = args.len();
        let within = n >= spec.min_args && spec.max_args.is_none_or(|max| n <= max);
        if !within {
            return Err(ParseError::new(
                pos,
                format!("{}() takes {}, found {n}", spec.name, spec.arity_text()),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for (i, (arg, arg_pos)) in args.into_iter().enumerate() {
            check_arg(function, i, &arg, arg_pos)?;
            out.push(arg);
        }
        Ok(Expr::Call {
            function,
            args: out,
        })
    }

    fn call_args(
        &mut self,
        function: Function,
    ) -> Result<Vec<(Expr, crate::error::Position)>, ParseError> {
        self.expect(TokenKind::LParen)?;
        let mut args = Vec::new();
        if self.eat(&TokenKind::RParen)? {
            return Ok(args);
        }
        // count(*) counts all rows, like count() (§5.5).
        if self.at(&TokenKind::Star) {
            let pos = self.tok.pos();
            if function != Function::Count {
                return Err(ParseError::new(
                    pos,
                    format!(
                        "'*' is only allowed in count(*), not in {}()",
                        function.name()
                    ),
                ));
            }
            self.advance()?;
            if !self.at(&TokenKind::RParen) {
                return Err(self.unexpected("')' after count(*", &["')'"]));
            }
            self.advance()?;
            return Ok(args);
        }
        loop {
            let pos = self.tok.pos();
            let arg = self.expr("a function argument")?;
            args.push((arg, pos));
            if self.eat(&TokenKind::Comma)? {
                continue;
            }
            if self.at(&TokenKind::RParen) {
                self.advance()?;
                return Ok(args);
            }
            return Err(self.unexpected(
                &format!("',' or ')' in the arguments of {}()", function.name()),
                &["','", "')'"],
            ));
        }
    }
}

const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const NEG: u8 = 7;
const POW: u8 = 8;

enum Infix {
    Binary(BinaryOp),
    Match(MatchOp),
    In,
    /// `not like` / `not in`
    Not,
}

fn level_of(op: BinaryOp) -> u8 {
    use BinaryOp::*;
    match op {
        Or => OR,
        And => AND,
        Eq | NotEq | Lt | LtEq | Gt | GtEq => CMP,
        Add | Sub => ADD,
        Mul | Div | Mod => MUL,
        Pow => POW,
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

fn ordinal(i: usize) -> &'static str {
    ["first", "second", "third"]
        .get(i)
        .copied()
        .unwrap_or("next")
}

fn check_arg(
    function: Function,
    i: usize,
    arg: &Expr,
    pos: crate::error::Position,
) -> Result<(), ParseError> {
    let spec = function.spec();
    let fail = |what: &str| {
        Err(ParseError::new(
            pos,
            format!(
                "{}() expects {what} as its {} argument, found {arg}",
                spec.name,
                ordinal(i)
            ),
        ))
    };
    match spec.arg_kind(i) {
        ArgKind::Any => Ok(()),
        ArgKind::Field => match arg {
            Expr::Field(_) | Expr::Index { .. } => Ok(()),
            _ => fail("a field name"),
        },
        ArgKind::Period => match arg {
            Expr::Literal(Literal::Period(_)) => Ok(()),
            _ => fail("a time period such as 5m or 1h"),
        },
        ArgKind::Percentile => {
            let p = match arg {
                Expr::Literal(Literal::Int(n)) => Some(*n as f64),
                Expr::Literal(Literal::Float(x)) => Some(*x),
                _ => None,
            };
            match p {
                Some(p) if (0.0..=100.0).contains(&p) => Ok(()),
                _ => fail("a number from 0 to 100"),
            }
        }
    }
}
