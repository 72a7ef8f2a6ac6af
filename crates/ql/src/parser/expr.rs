//! Expressions (reference §5.4), loosest binding first:
//!
//! ```text
//! or      := and ('or' and)*
//! and     := not ('and' not)*
//! not     := 'not' not | cmp
//! cmp     := add [ cmpop add | ['not'] 'like' pattern | '=~' pattern | ['not'] 'in' list ]
//! add     := mul (('+' | '-') mul)*
//! mul     := unary (('*' | '/' | '%') unary)*
//! unary   := '-' unary | power
//! power   := postfix ['^' unary]            (right-associative: 2^3^2 = 2^9)
//! postfix := primary ('[' or ']')*
//! ```
//!
//! Comparisons do not chain (`a < b < c` is an error asking for parentheses). Unary minus
//! binds looser than `^`, so `-2 ^ 2` is `-(2 ^ 2)` as in mathematics.

use super::{AggContext, Parser};
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
        self.or()
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

    /// Like [`Parser::expr`] for the operand after an operator.
    fn operand<T>(&mut self, f: fn(&mut Self) -> Result<T, ParseError>) -> Result<T, ParseError> {
        if !self.starts_expr() {
            return Err(self.unexpected("an expression", &["an expression"]));
        }
        f(self)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat_word("or")? {
            let right = self.operand(Self::and)?;
            left = binary(BinaryOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat_word("and")? {
            let right = self.operand(Self::not)?;
            left = binary(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_word("not")? {
            let expr = self.operand(Self::not)?;
            return Ok(Expr::Unary {
                op: UnaryOp::Not,
                expr: Box::new(expr),
            });
        }
        self.cmp()
    }

    fn cmp_op(&self) -> Option<BinaryOp> {
        use TokenKind::*;
        Some(match self.tok.kind {
            Eq => BinaryOp::Eq,
            NotEq => BinaryOp::NotEq,
            Lt => BinaryOp::Lt,
            LtEq => BinaryOp::LtEq,
            Gt => BinaryOp::Gt,
            GtEq => BinaryOp::GtEq,
            _ => return None,
        })
    }

    fn at_cmp(&self) -> bool {
        self.cmp_op().is_some()
            || self.at(&TokenKind::Tilde)
            || ["like", "in", "not"].iter().any(|w| self.tok.is_word(w))
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let left = self.add()?;
        let result = if let Some(op) = self.cmp_op() {
            self.advance()?;
            let right = self.operand(Self::add)?;
            binary(op, left, right)
        } else if self.eat(&TokenKind::Tilde)? {
            self.matcher(left, MatchOp::RegexEq, false)?
        } else {
            let negated = self.eat_word("not")?;
            if self.eat_word("like")? {
                self.matcher(left, MatchOp::Like, negated)?
            } else if self.eat_word("in")? {
                self.in_list(left, negated)?
            } else if negated {
                return Err(self.unexpected("'like' or 'in' after 'not'", &["'like'", "'in'"]));
            } else {
                return Ok(left);
            }
        };
        if self.at_cmp() {
            return Err(ParseError::expected(
                self.tok.pos(),
                format!(
                    "comparisons cannot be chained: found {} after a comparison; add parentheses or use 'and'",
                    self.tok.describe()
                ),
                &["'and'", "'or'", "')'"],
            ));
        }
        Ok(result)
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

    fn add(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.mul()?;
        loop {
            let op = match self.tok.kind {
                TokenKind::Plus => BinaryOp::Add,
                TokenKind::Minus => BinaryOp::Sub,
                _ => return Ok(left),
            };
            self.advance()?;
            let right = self.operand(Self::mul)?;
            left = binary(op, left, right);
        }
    }

    fn mul(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.tok.kind {
                TokenKind::Star => BinaryOp::Mul,
                TokenKind::Slash => BinaryOp::Div,
                TokenKind::Percent => BinaryOp::Mod,
                _ => return Ok(left),
            };
            self.advance()?;
            let right = self.operand(Self::unary)?;
            left = binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&TokenKind::Minus)? {
            let expr = self.operand(Self::unary)?;
            return Ok(Expr::Unary {
                op: UnaryOp::Neg,
                expr: Box::new(expr),
            });
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.postfix()?;
        if self.eat(&TokenKind::Caret)? {
            let exp = self.operand(Self::unary)?;
            return Ok(binary(BinaryOp::Pow, base, exp));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.primary()?;
        while self.eat(&TokenKind::LBracket)? {
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
                    return Err(
                        self.unexpected(&format!("')' to close the '(' at {pos}"), &["')'"])
                    );
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
