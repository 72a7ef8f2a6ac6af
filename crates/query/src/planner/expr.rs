//! Logs Insights expressions (reference §5.4, §5.5) as DataFusion expressions.
//!
//! Logs Insights is dynamically typed; DataFusion is not. The rules that bridge the two, all
//! decided here from the DataFusion type of each operand:
//!
//! - a number compared with text compares numerically (`status = "200"` on an integer field,
//!   `latency > 100` on a field the store widened to text): the text side is `TRY_CAST` to a
//!   float, so text that is not a number matches nothing;
//! - `@timestamp` compared with a number reads the number as epoch milliseconds;
//! - arithmetic is numeric; `/` always divides as floating point (`container_filesystem_usage
//!   / 1024` in §5.6 example 6 must not truncate), `^` is a power;
//! - `and`, `or`, `not` and `filter` take any value: a number is true when non-zero (so the
//!   0/1 functions `isempty`, `isblank`, `strcontains` filter as expected), text when
//!   non-empty, a missing value is false;
//! - `like "s"` is a case-sensitive substring test, `like /re/` and `=~` a regex search (Rust
//!   `regex` syntax, `(?i)` for case-insensitive), on the text of any value.
//!
//! A field that is neither a column of the current plan nor a member of one is missing: null.

use std::collections::HashSet;

use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::functions::expr_fn as f;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::expr::NullTreatment;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprFunctionExt, ExprSchemable, Operator, SortExpr, cast, ident, lit,
    try_cast, when,
};
use kinsight_ql::{
    AggregateCall, BinaryOp, FieldRef, Function, Literal, MatchOp, Pattern, UnaryOp,
};
use std::ops::Not;

use crate::error::{QueryError, Result};
use crate::functions::{self, ip::IpCheck};
use crate::table::{EVENT_ID, TIMESTAMP, timestamp_type};

/// Resolves names and types against one plan's schema.
pub(crate) struct Scope<'a> {
    pub schema: &'a DFSchema,
    /// Query start, for `now()`.
    pub now_ms: i64,
    /// Columns holding text extracted from text (`parse` captures, JSON members, unnested
    /// items): `min`, `max` and `sort` treat such values as numbers when they are numbers.
    pub untyped: &'a HashSet<String>,
}

pub(crate) fn null_text() -> Expr {
    lit(ScalarValue::Utf8(None))
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric()
}

fn is_timestamp(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..))
}

/// A period of `ms` milliseconds as an interval literal.
fn interval(ms: i64) -> Expr {
    lit(ScalarValue::IntervalMonthDayNano(Some(
        IntervalMonthDayNano::new(0, 0, ms.saturating_mul(1_000_000)),
    )))
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(e.to_string())
}

impl Scope<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.schema.fields().iter().any(|f| f.name() == name)
    }

    pub fn ty(&self, e: &Expr) -> DataType {
        e.get_type(self.schema).unwrap_or(DataType::Null)
    }

    /// A field: a column of the plan by its full (dotted) name; else a member of a column
    /// named by its first segment (a `jsonParse` result, §5.5); else missing.
    pub fn field(&self, fr: &FieldRef) -> Expr {
        let name = fr.name();
        if self.has(&name) {
            return ident(name);
        }
        for split in (1..fr.path.len()).rev() {
            let head = fr.path[..split].join(".");
            if self.has(&head) {
                let mut args = vec![ident(head)];
                args.extend(fr.path[split..].iter().map(|s| lit(s.clone())));
                return functions::json_get().call(args);
            }
        }
        null_text()
    }

    /// Whether a field is text extracted from text (see [`Scope::untyped`]): a column marked
    /// so, or a member of a JSON value.
    pub fn is_untyped(&self, e: &kinsight_ql::Expr) -> bool {
        let kinsight_ql::Expr::Field(fr) = e else {
            return matches!(e, kinsight_ql::Expr::Index { .. });
        };
        let name = fr.name();
        if self.has(&name) {
            return self.untyped.contains(&name);
        }
        (1..fr.path.len()).any(|split| self.has(&fr.path[..split].join(".")))
    }

    /// Sort keys for one `sort` key: extracted text that holds numbers sorts numerically
    /// (then as text, so other text still has an order); anything else as it is.
    pub fn sort_keys(&self, e: &kinsight_ql::Expr, asc: bool) -> Result<Vec<SortExpr>> {
        let x = self.expr(e)?;
        Ok(if self.is_untyped(e) && is_text(&self.ty(&x)) {
            vec![
                SortExpr::new(try_cast(x.clone(), DataType::Float64), asc, false),
                SortExpr::new(x, asc, false),
            ]
        } else {
            vec![SortExpr::new(x, asc, false)]
        })
    }

    /// Any value as a number (text that is not a number becomes null).
    pub fn num(&self, e: Expr) -> Expr {
        let t = self.ty(&e);
        match t {
            _ if is_number(&t) => e,
            DataType::Boolean => cast(e, DataType::Int64),
            DataType::Timestamp(..) => cast(cast(e, timestamp_type()), DataType::Int64),
            _ => try_cast(e, DataType::Float64),
        }
    }

    pub fn float(&self, e: Expr) -> Expr {
        let e = self.num(e);
        match self.ty(&e) {
            DataType::Float64 => e,
            _ => cast(e, DataType::Float64),
        }
    }

    /// Any value as text.
    pub fn text(&self, e: Expr) -> Expr {
        match self.ty(&e) {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => e,
            _ => cast(e, DataType::Utf8),
        }
    }

    /// Any value as a condition: see the module documentation.
    pub fn truth(&self, e: Expr) -> Expr {
        let t = self.ty(&e);
        match t {
            DataType::Boolean => e,
            DataType::Null => lit(false),
            _ if is_number(&t) => e.not_eq(lit(0)),
            _ if is_text(&t) => e.clone().is_not_null().and(e.not_eq(lit(""))),
            _ => e.is_not_null(),
        }
    }

    /// A timestamp from a timestamp, epoch milliseconds or date text.
    fn timestamp(&self, e: Expr) -> Expr {
        let t = self.ty(&e);
        match t {
            _ if t == timestamp_type() => e,
            _ if is_number(&t) => cast(cast(e, DataType::Int64), timestamp_type()),
            _ => cast(e, timestamp_type()),
        }
    }

    pub fn expr(&self, e: &kinsight_ql::Expr) -> Result<Expr> {
        use kinsight_ql::Expr as Q;
        Ok(match e {
            Q::Field(fr) => self.field(fr),
            Q::Literal(l) => literal(l),
            Q::Unary { op, expr } => {
                let inner = self.expr(expr)?;
                match op {
                    UnaryOp::Neg => Expr::Negative(Box::new(self.num(inner))),
                    UnaryOp::Not => self.truth(inner).not(),
                }
            }
            Q::Binary { op, left, right } => self.binary(*op, self.expr(left)?, self.expr(right)?),
            Q::Match {
                expr,
                op,
                pattern,
                negated,
            } => {
                let s = self.text(self.expr(expr)?);
                let m = match (op, pattern) {
                    (_, Pattern::Regex(r)) => Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(s),
                        Operator::RegexMatch,
                        Box::new(lit(r.source.clone())),
                    )),
                    (MatchOp::Like | MatchOp::RegexEq, Pattern::Substring(p)) => {
                        f::contains(s, lit(p.clone()))
                    }
                };
                if *negated { m.not() } else { m }
            }
            Q::InList {
                expr,
                list,
                negated,
            } => self.in_list(self.expr(expr)?, list, *negated)?,
            Q::Index { expr, index } => {
                let base = self.text(self.expr(expr)?);
                let idx = cast(self.num(self.expr(index)?), DataType::Int64);
                functions::json_get().call(vec![base, idx])
            }
            Q::Call { function, args } => self.call(*function, args)?,
        })
    }

    fn binary(&self, op: BinaryOp, l: Expr, r: Expr) -> Expr {
        use BinaryOp::*;
        match op {
            And => self.truth(l).and(self.truth(r)),
            Or => self.truth(l).or(self.truth(r)),
            Eq | NotEq | Lt | LtEq | Gt | GtEq => {
                let (l, r) = self.comparable(l, r);
                let o = match op {
                    Eq => Operator::Eq,
                    NotEq => Operator::NotEq,
                    Lt => Operator::Lt,
                    LtEq => Operator::LtEq,
                    Gt => Operator::Gt,
                    _ => Operator::GtEq,
                };
                Expr::BinaryExpr(BinaryExpr::new(Box::new(l), o, Box::new(r)))
            }
            Div => Expr::BinaryExpr(BinaryExpr::new(
                Box::new(self.float(l)),
                Operator::Divide,
                Box::new(self.float(r)),
            )),
            Pow => f::power(self.float(l), self.float(r)),
            Add | Sub | Mul | Mod => {
                let o = match op {
                    Add => Operator::Plus,
                    Sub => Operator::Minus,
                    Mul => Operator::Multiply,
                    _ => Operator::Modulo,
                };
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(self.num(l)),
                    o,
                    Box::new(self.num(r)),
                ))
            }
        }
    }

    /// Brings two operands of a comparison to types DataFusion compares as Logs Insights
    /// does (module documentation).
    fn comparable(&self, l: Expr, r: Expr) -> (Expr, Expr) {
        let (tl, tr) = (self.ty(&l), self.ty(&r));
        let num_text = |t1: &DataType, t2: &DataType| is_number(t1) && is_text(t2);
        if num_text(&tl, &tr) {
            return (l, try_cast(r, DataType::Float64));
        }
        if num_text(&tr, &tl) {
            return (try_cast(l, DataType::Float64), r);
        }
        if is_timestamp(&tl) && !is_timestamp(&tr) && tr != DataType::Null {
            return (self.timestamp(l), self.timestamp(r));
        }
        if is_timestamp(&tr) && !is_timestamp(&tl) && tl != DataType::Null {
            return (self.timestamp(l), self.timestamp(r));
        }
        match (&tl, &tr) {
            (DataType::Boolean, t) if is_text(t) => (cast(l, DataType::Utf8), r),
            (t, DataType::Boolean) if is_text(t) => (l, cast(r, DataType::Utf8)),
            (DataType::Boolean, t) if is_number(t) => (cast(l, DataType::Int64), r),
            (t, DataType::Boolean) if is_number(t) => (l, cast(r, DataType::Int64)),
            _ => (l, r),
        }
    }

    fn in_list(&self, e: Expr, list: &[kinsight_ql::Expr], negated: bool) -> Result<Expr> {
        let t = self.ty(&e);
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let x = self.expr(item)?;
            let tx = self.ty(&x);
            let x = if is_text(&t) || t == DataType::Null {
                self.text(x)
            } else if is_number(&t) {
                match item {
                    kinsight_ql::Expr::Literal(Literal::Str(s)) => match s.trim().parse::<f64>() {
                        Ok(v) => lit(v),
                        // Text that is no number can never equal a number.
                        Err(_) => continue,
                    },
                    _ if is_number(&tx) => x,
                    _ => self.num(x),
                }
            } else if is_timestamp(&t) {
                self.timestamp(x)
            } else if t == DataType::Boolean && is_text(&tx) {
                try_cast(x, DataType::Boolean)
            } else {
                x
            };
            items.push(x);
        }
        let e = if t == DataType::Null { self.text(e) } else { e };
        if items.is_empty() {
            return Ok(lit(negated));
        }
        Ok(Expr::InList(InList::new(Box::new(e), items, negated)))
    }

    fn args(&self, args: &[kinsight_ql::Expr]) -> Result<Vec<Expr>> {
        args.iter().map(|a| self.expr(a)).collect()
    }

    fn text_args(&self, args: &[kinsight_ql::Expr]) -> Result<Vec<Expr>> {
        Ok(self.args(args)?.into_iter().map(|a| self.text(a)).collect())
    }

    fn period_ms(&self, e: &kinsight_ql::Expr) -> Result<i64> {
        match e {
            kinsight_ql::Expr::Literal(Literal::Period(p)) => p
                .millis()
                .ok_or_else(|| QueryError::InvalidParameter(format!("period {p} is too long"))),
            other => Err(internal(format!("expected a period literal, got {other}"))),
        }
    }

    fn call(&self, function: Function, args: &[kinsight_ql::Expr]) -> Result<Expr> {
        use Function as F;
        let one = |i: usize| -> Result<Expr> {
            args.get(i)
                .map(|a| self.expr(a))
                .unwrap_or_else(|| Err(internal(format!("{} lacks argument {i}", function.name()))))
        };
        let as_int = |e: Expr| cast(e, DataType::Int64);
        Ok(match function {
            F::Abs => f::abs(self.num(one(0)?)),
            F::Ceil => f::ceil(self.float(one(0)?)),
            F::Floor => f::floor(self.float(one(0)?)),
            F::Sqrt => f::sqrt(self.float(one(0)?)),
            F::Log => f::ln(self.float(one(0)?)),
            F::Greatest | F::Least => {
                let xs = self.args(args)?;
                let all_text = xs.iter().all(|x| is_text(&self.ty(x)));
                let xs: Vec<Expr> = if all_text {
                    xs
                } else {
                    xs.into_iter().map(|x| self.float(x)).collect()
                };
                if function == F::Greatest {
                    f::greatest(xs)
                } else {
                    f::least(xs)
                }
            }
            F::IsPresent => one(0)?.is_not_null(),
            F::Coalesce => {
                let xs = self.args(args)?;
                let first = xs.first().map(|x| self.ty(x)).unwrap_or(DataType::Null);
                let same = xs
                    .iter()
                    .all(|x| matches!(self.ty(x), t if t == first || t == DataType::Null));
                let all_numbers = xs
                    .iter()
                    .all(|x| matches!(self.ty(x), t if is_number(&t) || t == DataType::Null));
                let xs = if same {
                    xs
                } else if all_numbers {
                    xs.into_iter().map(|x| self.float(x)).collect()
                } else {
                    xs.into_iter().map(|x| self.text(x)).collect()
                };
                f::coalesce(xs)
            }
            F::IsEmpty => {
                let s = one(0)?;
                let t = self.text(s.clone());
                as_int(s.is_null().or(t.eq(lit(""))))
            }
            F::IsBlank => {
                let s = one(0)?;
                let t = f::btrim(vec![self.text(s.clone())]);
                as_int(s.is_null().or(t.eq(lit(""))))
            }
            F::Concat => f::concat(self.text_args(args)?),
            F::Ltrim => f::ltrim(self.text_args(args)?),
            F::Rtrim => f::rtrim(self.text_args(args)?),
            F::Trim => f::btrim(self.text_args(args)?),
            F::Strlen => f::character_length(self.text(one(0)?)),
            F::ToUpper => f::upper(self.text(one(0)?)),
            F::ToLower => f::lower(self.text(one(0)?)),
            F::Substr => {
                // §5.5: 0-based start; DataFusion's substr is 1-based.
                let s = self.text(one(0)?);
                let start = as_int(self.num(one(1)?)) + lit(1i64);
                match args.get(2) {
                    Some(_) => f::substring(s, start, as_int(self.num(one(2)?))),
                    None => f::substr(s, start),
                }
            }
            F::Replace => {
                let xs = self.text_args(args)?;
                let mut it = xs.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), Some(c)) => f::replace(a, b, c),
                    _ => return Err(internal("replace needs 3 arguments")),
                }
            }
            F::StrContains => {
                let s = self.text(one(0)?);
                let search = self.text(one(1)?);
                as_int(f::coalesce(vec![f::contains(s, search), lit(false)]))
            }
            F::Bin => {
                let ms = self.period_ms(&args[0])?;
                f::date_bin(interval(ms), self.timestamp(ident(TIMESTAMP)), epoch())
            }
            F::DateFloor => {
                let ms = self.period_ms(&args[1])?;
                f::date_bin(interval(ms), self.timestamp(one(0)?), epoch())
            }
            F::DateCeil => {
                let ms = self.period_ms(&args[1])?;
                let t = self.timestamp(one(0)?);
                let floor = f::date_bin(interval(ms), t.clone(), epoch());
                when(floor.clone().eq(t.clone()), t)
                    .otherwise(floor + interval(ms))
                    .map_err(internal)?
            }
            F::FromMillis => cast(as_int(self.num(one(0)?)), timestamp_type()),
            F::ToMillis => cast(self.timestamp(one(0)?), DataType::Int64),
            // Reference §5.5: epoch seconds at query start.
            F::Now => lit(self.now_ms.div_euclid(1000)),
            F::IsValidIp => functions::ip(IpCheck::Valid).call(self.args(args)?),
            F::IsValidIpV4 => functions::ip(IpCheck::ValidV4).call(self.args(args)?),
            F::IsValidIpV6 => functions::ip(IpCheck::ValidV6).call(self.args(args)?),
            F::IsIpInSubnet => functions::ip(IpCheck::InSubnet).call(self.args(args)?),
            F::IsIpv4InSubnet => functions::ip(IpCheck::V4InSubnet).call(self.args(args)?),
            F::IsIpv6InSubnet => functions::ip(IpCheck::V6InSubnet).call(self.args(args)?),
            F::JsonParse => functions::json_parse().call(self.args(args)?),
            F::JsonStringify => functions::json_stringify().call(self.args(args)?),
            _ => {
                return Err(QueryError::InvalidParameter(format!(
                    "{}() is an aggregation: it can only be used in 'stats'",
                    function.name()
                )));
            }
        })
    }

    /// One aggregation of `stats` (reference §5.5), named by its call text.
    pub fn aggregate(&self, call: &AggregateCall) -> Result<Expr> {
        use Function as F;
        let arg = |i: usize| -> Result<Expr> {
            call.args
                .get(i)
                .map(|a| self.expr(a))
                .unwrap_or_else(|| Err(internal(format!("{} lacks argument {i}", call.name))))
        };
        // Events of the same millisecond: the one ingested first (lower `@id`) is the earlier,
        // whatever order the segments keep their rows in.
        let by_time = || {
            let mut keys = vec![SortExpr::new(ident(TIMESTAMP), true, false)];
            if self.has(EVENT_ID) {
                keys.push(SortExpr::new(ident(EVENT_ID), true, false));
            }
            keys
        };
        let e = match call.function {
            F::Avg => agg::avg(self.num(arg(0)?)),
            F::Sum => agg::sum(self.num(arg(0)?)),
            F::Stddev => agg::stddev(self.float(arg(0)?)),
            // Extracted text compares as numbers (`max(latency)` after `parse`); stored text
            // and other values as they are (sortsFirst/sortsLast compare as text).
            F::Min | F::Max => {
                let x = arg(0)?;
                let x = if self.is_untyped(&call.args[0]) {
                    self.num(x)
                } else {
                    self.orderable(x)
                };
                if call.function == F::Min {
                    agg::min(x)
                } else {
                    agg::max(x)
                }
            }
            F::Count if call.args.is_empty() => datafusion::functions_aggregate::count::count_all(),
            F::Count => agg::count(arg(0)?),
            F::CountDistinct => agg::count_distinct(arg(0)?),
            F::Pct => {
                let p = match call.args.get(1) {
                    Some(kinsight_ql::Expr::Literal(Literal::Int(p))) => *p as f64,
                    Some(kinsight_ql::Expr::Literal(Literal::Float(p))) => *p,
                    _ => return Err(internal("pct needs a literal percentile")),
                };
                functions::pct().call(vec![self.float(arg(0)?), lit(p)])
            }
            // The value of the earliest / latest event that has one (§5.5).
            F::Earliest | F::Latest => {
                let udaf = if call.function == F::Earliest {
                    datafusion::functions_aggregate::first_last::first_value_udaf()
                } else {
                    datafusion::functions_aggregate::first_last::last_value_udaf()
                };
                udaf.call(vec![arg(0)?])
                    .order_by(by_time())
                    .null_treatment(NullTreatment::IgnoreNulls)
                    .build()
                    .map_err(internal)?
            }
            // Lexicographic extremes (§5.5): compared as text.
            F::SortsFirst => agg::min(self.text(arg(0)?)),
            F::SortsLast => agg::max(self.text(arg(0)?)),
            other => {
                return Err(internal(format!("{} is not an aggregation", other.name())));
            }
        };
        Ok(e.alias(call.name.clone()))
    }

    /// min/max take numbers, text and timestamps as they are; booleans as 0/1.
    fn orderable(&self, e: Expr) -> Expr {
        match self.ty(&e) {
            DataType::Boolean => cast(e, DataType::Int64),
            _ => e,
        }
    }
}

fn epoch() -> Expr {
    lit(ScalarValue::TimestampMillisecond(
        Some(0),
        Some("UTC".into()),
    ))
}

pub(crate) fn literal(l: &Literal) -> Expr {
    match l {
        Literal::Int(i) => lit(*i),
        Literal::Float(x) => lit(*x),
        Literal::Str(s) => lit(s.clone()),
        Literal::Bool(b) => lit(*b),
        Literal::Period(p) => lit(p.millis().unwrap_or(i64::MAX)),
    }
}
