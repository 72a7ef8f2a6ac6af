//! Bounds on what scalar functions may allocate (issue 15 item 4).
//!
//! DataFusion's memory pool accounts for operators (hash tables, sorts, joins), not for the
//! arrays a scalar function returns: `repeat('x', 1e10)`, `lpad(x, 1e9)`, `range(1, 1e10)`,
//! `replace(@message, 'a', <10,000 characters>)` or a tower of `concat`s would allocate as
//! much as they are asked to. So every scalar function call of a query is wrapped before the
//! plan is optimised ([`guard_plan`]): before the function runs on a batch, an upper bound of
//! its output is computed from its arguments, and a call whose bound exceeds
//! [`QueryConfig::max_function_output_bytes`](crate::QueryConfig) per batch fails the query
//! with a clear error (`MemoryExceeded`), before anything is allocated.
//!
//! The bound of a function whose output can outgrow its input by more than a small factor is
//! computed from what drives it (a count, a width, a pattern); every other function's output
//! is bounded by four times its input plus 64 bytes a row ([`default_bound`]), which covers
//! case mapping, hex and base64 encoding, timestamps to text and the like. The string
//! concatenation operator `a || b` becomes a guarded function too (its output is the sum of
//! its inputs, and a nested tower of them doubles at each level).
//!
//! The wrapper keeps the wrapped function's name and schema names, so result columns are named
//! as before; constant folding at plan time goes through the wrapper as well.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNano, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Documentation, Expr, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// Bytes a function's output may hold for one batch by default (less when a query's memory is
/// small: see [`crate::QueryConfig::max_function_output_bytes`]).
pub const MAX_FUNCTION_OUTPUT_BYTES: usize = 256 * 1024 * 1024;

/// Widest value of a fixed-width type a cast may produce (every row takes it, nulls too).
pub const MAX_FIXED_WIDTH_BYTES: u128 = 64 * 1024;

/// Bytes one value of `t` takes whatever it holds (0 for variable-width types, which are
/// bounded by their content).
fn fixed_width(t: &DataType) -> u128 {
    use DataType::*;
    match t {
        FixedSizeBinary(w) => (*w).max(0) as u128,
        FixedSizeList(f, n) => (*n).max(0) as u128 * fixed_width(f.data_type()).max(1),
        Struct(fields) => fields.iter().map(|f| fixed_width(f.data_type())).sum(),
        other => other.primitive_width().unwrap_or(0) as u128,
    }
}

/// Wraps every scalar function call of `plan` (and its subqueries) in a guard, and turns the
/// string concatenation operator into a guarded function.
pub fn guard_plan(plan: LogicalPlan, max_output_bytes: usize) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|p| {
        p.map_expressions(|e| e.transform_up(|e| guard_expr(e, max_output_bytes)))
    })
    .map(|t| t.data)
}

fn guard_expr(e: Expr, max: usize) -> DfResult<Transformed<Expr>> {
    if let Expr::Cast(datafusion::logical_expr::Cast { field, .. })
    | Expr::TryCast(datafusion::logical_expr::TryCast { field, .. }) = &e
    {
        let data_type = field.data_type();
        // A cast to a fixed-width type fills every row to that width, even with nulls
        // (`arrow_cast(x, 'FixedSizeBinary(2147483647)')`).
        let width = fixed_width(data_type);
        if width > MAX_FIXED_WIDTH_BYTES {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "a cast to {data_type} takes {} a row; values of a fixed width over {} are refused",
                human_bytes(width),
                human_bytes(MAX_FIXED_WIDTH_BYTES)
            )));
        }
    }
    Ok(match e {
        Expr::ScalarFunction(ScalarFunction { func, args }) if !is_guarded(&func) => {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                func: Arc::new(guarded(func.as_ref().clone(), max)),
                args,
            }))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::StringConcat,
            right,
        }) => Transformed::yes(Expr::ScalarFunction(ScalarFunction {
            func: Arc::new(guarded(
                ScalarUDF::new_from_impl(ConcatOperator::new()),
                max,
            )),
            args: vec![*left, *right],
        })),
        other => Transformed::no(other),
    })
}

fn is_guarded(f: &ScalarUDF) -> bool {
    let any: &dyn Any = f.inner().as_ref();
    any.is::<Guarded>()
}

fn guarded(inner: ScalarUDF, max_output_bytes: usize) -> ScalarUDF {
    ScalarUDF::new_from_impl(Guarded {
        inner,
        max_output_bytes,
    })
}

/// A scalar function that checks the bound of its output before it runs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Guarded {
    inner: ScalarUDF,
    max_output_bytes: usize,
}

impl Guarded {
    fn check(&self, args: &ScalarFunctionArgs) -> DfResult<()> {
        if !variable_width(args.return_field.data_type()) {
            return Ok(());
        }
        // A call on constants only is folded into a literal at plan time (on one row), and
        // that literal is then copied into every row of every batch: count it for a whole
        // batch.
        let constant = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if constant {
            args.number_rows
                .max(usize::from(args.config_options.execution.batch_size))
        } else {
            args.number_rows
        };
        let bound = output_bound(self.inner.name(), args, rows)?;
        if bound > self.max_output_bytes as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}() could produce {} for one batch of {rows} rows; a function may produce at most {} per batch (narrow the arguments, or the rows it runs on)",
                self.inner.name(),
                human_bytes(bound),
                human_bytes(self.max_output_bytes as u128),
            )));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.inner().aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.inner().signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.inner().return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }
    fn with_updated_config(&self, config: &datafusion::config::ConfigOptions) -> Option<ScalarUDF> {
        self.inner
            .inner()
            .with_updated_config(config)
            .map(|f| guarded(f, self.max_output_bytes))
    }
    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.check(&args)?;
        self.inner.inner().invoke_with_args(args)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        // A simplification may build new calls (`concat` merges its literal arguments): they
        // are guarded too.
        Ok(match self.inner.inner().simplify(args, info)? {
            ExprSimplifyResult::Simplified(e) => ExprSimplifyResult::Simplified(
                e.transform_up(|e| guard_expr(e, self.max_output_bytes))?
                    .data,
            ),
            ExprSimplifyResult::Original(args) => ExprSimplifyResult::Original(args),
        })
    }
    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }
    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }
    fn evaluate_bounds(
        &self,
        input: &[&datafusion::logical_expr::interval_arithmetic::Interval],
    ) -> DfResult<datafusion::logical_expr::interval_arithmetic::Interval> {
        self.inner.inner().evaluate_bounds(input)
    }
    fn propagate_constraints(
        &self,
        interval: &datafusion::logical_expr::interval_arithmetic::Interval,
        inputs: &[&datafusion::logical_expr::interval_arithmetic::Interval],
    ) -> DfResult<Option<Vec<datafusion::logical_expr::interval_arithmetic::Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }
    fn output_ordering(&self, inputs: &[ExprProperties]) -> DfResult<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }
    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }
    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
}

/// Whether arrays of this type grow with their content (text, binary, lists, maps, …).
fn variable_width(t: &DataType) -> bool {
    use DataType::*;
    match t {
        Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView | FixedSizeBinary(_)
        | List(_) | LargeList(_) | ListView(_) | LargeListView(_) | FixedSizeList(..) | Map(..) => {
            true
        }
        Struct(fields) => fields.iter().any(|f| variable_width(f.data_type())),
        Dictionary(_, v) => variable_width(v),
        _ => false,
    }
}

/// An upper bound of the bytes `name` returns for these arguments, in `u128` so that no bound
/// overflows.
fn output_bound(name: &str, args: &ScalarFunctionArgs, rows: usize) -> DfResult<u128> {
    let a = &args.args;
    let text = |i: usize| Lengths::of(a.get(i), rows);
    let int = |i: usize| Ints::of(a.get(i), rows);
    let per_row = |f: &dyn Fn(usize) -> u128| -> u128 { (0..rows).map(f).sum() };
    Ok(match name {
        "repeat" => {
            let (s, n) = (text(0), int(1)?);
            per_row(&|r| s.at(r) * n.at(r))
        }
        "lpad" | "rpad" => {
            // Up to 4 bytes a character of padding.
            let (s, n) = (text(0), int(1)?);
            per_row(&|r| s.at(r).max(4 * n.at(r)))
        }
        "replace" => {
            let (s, from, to) = (text(0), text(1), text(2));
            per_row(&|r| {
                let len = s.at(r);
                len + (len / from.at(r).max(1) + 1) * to.at(r)
            })
        }
        "regexp_replace" => {
            // Every position can match (an empty match), and each `$n` / `\n` in the
            // replacement can bring back the whole input.
            let (s, repl) = (text(0), a.get(2));
            let (repl_len, refs) = literal_text(repl)
                .map(|t| (t.len() as u128, t.matches(['$', '\\']).count() as u128))
                // Not a literal: as many `$n` as its length allows.
                .unwrap_or_else(|| {
                    let longest = text(2).max_at(rows);
                    (longest, longest / 2 + 1)
                });
            per_row(&|r| {
                let len = s.at(r);
                len + (len + 1) * (repl_len + refs * len)
            })
        }
        "regexp_match" | "regexp_matches" => {
            // One capture per group (and the whole match), each at most the input.
            // Not a literal: as many groups as the regex engine's nesting allows.
            let groups = literal_text(a.get(1))
                .map(|p| p.matches('(').count() as u128)
                .unwrap_or(250);
            let s = text(0);
            per_row(&|r| (groups + 1) * (s.at(r) + 16))
        }
        "parse" => {
            // kinsight's `parse`: one text column per capture, each at most the input.
            let captures = match args.return_field.data_type() {
                DataType::Struct(f) => f.len() as u128,
                _ => 1,
            };
            let s = text(0);
            per_row(&|r| captures * (s.at(r) + 16))
        }
        "to_char" | "date_format" => {
            // A two-character directive can print ~30 characters.
            let f = text(1);
            per_row(&|r| 16 * f.at(r) + 64)
        }
        "string_to_array" | "string_to_list" => {
            // Up to one element (with its offset) per byte.
            let s = text(0);
            per_row(&|r| 16 * (s.at(r) + 1))
        }
        "array_repeat" => {
            let element = element_bytes(a.first(), rows);
            let n = int(1)?;
            per_row(&|r| element * n.at(r) + 16)
        }
        "array_resize" => {
            let element = element_bytes(a.get(2), rows).max(16);
            let n = int(1)?;
            per_row(&|r| element * n.at(r) + 16)
        }
        "range" | "generate_series" => series_bound(a, rows)?,
        "array_to_string" | "array_join" | "list_join" | "list_to_string" => {
            // Every element (and every null) can bring the delimiter and the null text.
            let per_element = scalar_or_max_len(a.get(1), rows) + scalar_or_max_len(a.get(2), rows);
            default_bound(a, rows) + list_elements(a.first(), rows) * per_element
        }
        "array_replace" | "list_replace" | "array_replace_n" | "list_replace_n"
        | "array_replace_all" | "list_replace_all" => {
            // Every element can become `to`.
            let to = element_bytes(a.get(2), rows);
            default_bound(a, rows) + list_elements(a.first(), rows) * to
        }
        "array_positions" | "list_positions" => {
            // Eight bytes a match, whatever the elements took.
            default_bound(a, rows) + 8 * list_elements(a.first(), rows)
        }
        _ => default_bound(a, rows),
    })
}

/// Four times the input, plus 64 bytes a row.
fn default_bound(args: &[ColumnarValue], rows: usize) -> u128 {
    let input: u128 = args.iter().map(|v| value_bytes(v, rows)).sum();
    4 * input + 64 * rows as u128
}

/// Bytes an argument holds (a scalar counts once per row it stands for).
fn value_bytes(v: &ColumnarValue, rows: usize) -> u128 {
    match v {
        ColumnarValue::Array(a) => a.get_array_memory_size() as u128,
        ColumnarValue::Scalar(s) => s.size() as u128 * rows as u128,
    }
}

/// Bytes one element of an argument takes, on average (at least 8).
fn element_bytes(v: Option<&ColumnarValue>, rows: usize) -> u128 {
    match v {
        None => 8,
        Some(ColumnarValue::Scalar(s)) => (s.size() as u128).max(8),
        Some(ColumnarValue::Array(a)) => {
            (a.get_array_memory_size() as u128 / rows.max(1) as u128).max(8)
        }
    }
}

/// Elements of a list argument over all rows (a scalar list counts once per row).
fn list_elements(v: Option<&ColumnarValue>, rows: usize) -> u128 {
    fn of_array(a: &dyn Array) -> u128 {
        match a.data_type() {
            DataType::List(_) => a.as_list::<i32>().values().len() as u128,
            DataType::LargeList(_) => a.as_list::<i64>().values().len() as u128,
            DataType::FixedSizeList(..) => a.as_fixed_size_list().values().len() as u128,
            // Not a list: count its bytes, one element each at most.
            _ => a.get_array_memory_size() as u128,
        }
    }
    match v {
        None => 0,
        Some(ColumnarValue::Array(a)) => of_array(a.as_ref()),
        Some(ColumnarValue::Scalar(s)) => match s.to_array() {
            Ok(a) => of_array(a.as_ref()) * rows as u128,
            Err(_) => s.size() as u128 * rows as u128,
        },
    }
}

/// The longest text an argument holds in any row.
fn scalar_or_max_len(v: Option<&ColumnarValue>, rows: usize) -> u128 {
    Lengths::of(v, rows).max_at(rows.max(1))
}

fn literal_text(v: Option<&ColumnarValue>) -> Option<&str> {
    match v? {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Some(s.as_str()),
        _ => None,
    }
}

/// `range(start, stop[, step])` / `generate_series`: elements × 8 bytes (+ 16 a row). Integer
/// arguments count exactly; dates and timestamps are compared in nanoseconds (in 128 bits, so
/// no date overflows) with the step's smallest length (a month as 28 days). An argument that
/// cannot be read counts as unbounded.
fn series_bound(a: &[ColumnarValue], rows: usize) -> DfResult<u128> {
    let temporal = a.first().is_some_and(|v| {
        matches!(
            v.data_type(),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        )
    });
    let (start, stop) = if temporal {
        (Ints::nanos(a.first(), rows)?, Ints::nanos(a.get(1), rows)?)
    } else if a.len() == 1 {
        (Ints::Const(0), Ints::of(a.first(), rows)?)
    } else {
        (Ints::of(a.first(), rows)?, Ints::of(a.get(1), rows)?)
    };
    let step = match a.get(2) {
        None => Ints::Const(if temporal { 86_400_000_000_000 } else { 1 }),
        Some(v) if temporal => Ints::interval_nanos(v, rows)?,
        Some(v) => Ints::of(Some(v), rows)?,
    };
    let mut total = 0u128;
    for r in 0..rows {
        let (Some(start), Some(stop), Some(step)) = (start.get(r), stop.get(r), step.get(r)) else {
            // NULL gives an empty series in DataFusion; count nothing.
            total += 16;
            continue;
        };
        let span = (start - stop).unsigned_abs();
        let step = step.unsigned_abs().max(1);
        total = total.saturating_add(8 * (span / step + 1) + 16);
    }
    Ok(total)
}

/// Byte lengths of a text (or any) argument, row by row.
enum Lengths<'a> {
    Const(u128),
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    /// Another type: its average bytes a row.
    Average(u128),
}

impl<'a> Lengths<'a> {
    fn of(v: Option<&'a ColumnarValue>, rows: usize) -> Lengths<'a> {
        match v {
            None => Lengths::Const(0),
            Some(ColumnarValue::Scalar(s)) => Lengths::Const(match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_ref().map_or(0, |s| s.len() as u128)
                }
                other => other.size() as u128,
            }),
            Some(ColumnarValue::Array(a)) => match a.data_type() {
                DataType::Utf8 => Lengths::Utf8(a.as_string::<i32>()),
                DataType::LargeUtf8 => Lengths::Large(a.as_string::<i64>()),
                DataType::Utf8View => Lengths::View(a.as_string_view()),
                _ => Lengths::Average(a.get_array_memory_size() as u128 / rows.max(1) as u128),
            },
        }
    }

    fn at(&self, r: usize) -> u128 {
        let len = |valid: bool, n: usize| if valid { n as u128 } else { 0 };
        match self {
            Lengths::Const(n) | Lengths::Average(n) => *n,
            Lengths::Utf8(a) => len(a.is_valid(r), a.value_length(r) as usize),
            Lengths::Large(a) => len(a.is_valid(r), a.value_length(r) as usize),
            Lengths::View(a) => len(a.is_valid(r), a.value(r).len()),
        }
    }

    fn max_at(&self, rows: usize) -> u128 {
        (0..rows).map(|r| self.at(r)).max().unwrap_or(0)
    }
}

/// An integer argument, row by row (negative counts count as 0 in [`Ints::at`]).
enum Ints {
    Const(i128),
    Array(Vec<Option<i128>>),
}

impl Ints {
    fn of(v: Option<&ColumnarValue>, _rows: usize) -> DfResult<Ints> {
        Ok(match v {
            None => Ints::Const(0),
            Some(ColumnarValue::Scalar(s)) => Ints::Const(scalar_i128(s)),
            Some(ColumnarValue::Array(a)) => Ints::Array(
                as_i64(a, &DataType::Int64)?
                    .iter()
                    .map(|v| v.map(i128::from))
                    .collect(),
            ),
        })
    }

    /// A date or timestamp argument in nanoseconds since the epoch, computed in 128 bits from
    /// the stored values (a cast to nanoseconds would overflow past the year 2262).
    fn nanos(v: Option<&ColumnarValue>, rows: usize) -> DfResult<Ints> {
        use datafusion::arrow::datatypes::{
            Date32Type, Date64Type, TimestampMicrosecondType, TimestampMillisecondType,
            TimestampNanosecondType, TimestampSecondType,
        };
        let Some(v) = v else {
            return Ok(Ints::Const(0));
        };
        let a = v.to_array(rows.max(1))?;
        let scaled = |f: i128, values: Vec<Option<i64>>| -> Vec<Option<i128>> {
            values
                .into_iter()
                .map(|x| x.map(|x| x as i128 * f))
                .collect()
        };
        let values = match a.data_type() {
            DataType::Date32 => a
                .as_primitive::<Date32Type>()
                .iter()
                .map(|d| d.map(|d| d as i128 * 86_400_000_000_000))
                .collect(),
            DataType::Date64 => scaled(1_000_000, a.as_primitive::<Date64Type>().iter().collect()),
            DataType::Timestamp(TimeUnit::Second, _) => scaled(
                1_000_000_000,
                a.as_primitive::<TimestampSecondType>().iter().collect(),
            ),
            DataType::Timestamp(TimeUnit::Millisecond, _) => scaled(
                1_000_000,
                a.as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .collect(),
            ),
            DataType::Timestamp(TimeUnit::Microsecond, _) => scaled(
                1_000,
                a.as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .collect(),
            ),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => scaled(
                1,
                a.as_primitive::<TimestampNanosecondType>().iter().collect(),
            ),
            other => {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "cannot bound a series over {other}"
                )));
            }
        };
        Ok(match v {
            ColumnarValue::Scalar(_) => match values.first() {
                Some(Some(n)) => Ints::Const(*n),
                _ => Ints::Array(vec![None; rows]),
            },
            ColumnarValue::Array(_) => Ints::Array(values),
        })
    }

    /// An interval step in nanoseconds, at its shortest (a month as 28 days).
    fn interval_nanos(v: &ColumnarValue, rows: usize) -> DfResult<Ints> {
        const DAY: i128 = 86_400_000_000_000;
        let target = DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano);
        let a = cast(&v.to_array(rows.max(1))?, &target)?;
        let a = a.as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>();
        let n = |i: IntervalMonthDayNano| {
            i.months as i128 * 28 * DAY + i.days as i128 * DAY + i.nanoseconds as i128
        };
        Ok(match v {
            ColumnarValue::Scalar(_) => Ints::Const(if a.is_valid(0) { n(a.value(0)) } else { 1 }),
            ColumnarValue::Array(_) => Ints::Array(a.iter().map(|x| x.map(n)).collect()),
        })
    }

    /// The value as a count (negative and null count as 0).
    fn at(&self, r: usize) -> u128 {
        self.get(r).unwrap_or(0).max(0) as u128
    }

    fn get(&self, r: usize) -> Option<i128> {
        match self {
            Ints::Const(n) => Some(*n),
            Ints::Array(a) => a.get(r).copied().flatten(),
        }
    }
}

fn as_i64(a: &ArrayRef, t: &DataType) -> DfResult<Int64Array> {
    Ok(cast(a, t)?
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .clone())
}

fn scalar_i128(s: &ScalarValue) -> i128 {
    match s.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(n))) => n as i128,
        // Unsigned 64-bit values above i64::MAX, or anything else: as large as it gets.
        _ => match s {
            ScalarValue::UInt64(Some(n)) => *n as i128,
            _ => 0,
        },
    }
}

pub(crate) fn human_bytes(n: u128) -> String {
    kinsight_model::size::format_size(n)
}

/// `a || b` on text: null when either side is null (SQL's operator, unlike `concat`), as a
/// function so that it can be guarded. Its schema name stays `a || b`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOperator {
    signature: Signature,
}

impl ConcatOperator {
    fn new() -> Self {
        ConcatOperator {
            signature: Signature::new(TypeSignature::UserDefined, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ConcatOperator {
    fn name(&self) -> &str {
        "kinsight_string_concat"
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        match args {
            [l, r] => Ok(format!("{} || {}", l.schema_name(), r.schema_name())),
            _ => Ok("||".to_string()),
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 2 {
            return Err(DataFusionError::Plan("|| takes two operands".to_string()));
        }
        Ok(vec![DataType::Utf8; 2])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let left = args.args[0].to_array(rows)?;
        let right = args.args[1].to_array(rows)?;
        let left = cast(&left, &DataType::Utf8)?;
        let right = cast(&right, &DataType::Utf8)?;
        let out = datafusion::arrow::compute::kernels::concat_elements::concat_elements_utf8(
            left.as_string::<i32>(),
            right.as_string::<i32>(),
        )?;
        let out: ArrayRef = Arc::new(out);
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    fn call(name: &str, args: Vec<ColumnarValue>, rows: usize, out: DataType) -> u128 {
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        output_bound(
            name,
            &ScalarFunctionArgs {
                args,
                arg_fields,
                number_rows: rows,
                return_field: Arc::new(Field::new("out", out, true)),
                config_options: Arc::default(),
            },
            rows,
        )
        .unwrap()
    }

    fn text(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_string())))
    }

    fn int(n: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))
    }

    #[test]
    fn bounds_follow_what_drives_each_function() {
        assert_eq!(
            call("repeat", vec![text("ab"), int(1_000)], 1, DataType::Utf8),
            2_000
        );
        assert_eq!(
            call("repeat", vec![text("ab"), int(-5)], 3, DataType::Utf8),
            0
        );
        assert_eq!(
            call("lpad", vec![text("ab"), int(10)], 2, DataType::Utf8),
            80
        );
        // `a` → 3 bytes: at most 5 matches of 3 bytes plus the input.
        assert_eq!(
            call(
                "replace",
                vec![text("aaaa"), text("a"), text("xyz")],
                1,
                DataType::Utf8
            ),
            4 + 5 * 3
        );
        let series = call(
            "range",
            vec![int(0), int(1_000_000_000)],
            1,
            DataType::Int64,
        );
        assert!(series > 8_000_000_000, "{series}");
        let days = call(
            "range",
            vec![
                ColumnarValue::Scalar(ScalarValue::Date32(Some(0))),
                ColumnarValue::Scalar(ScalarValue::Date32(Some(365))),
                ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(
                    IntervalMonthDayNano::new(0, 1, 0),
                ))),
            ],
            1,
            DataType::Int64,
        );
        assert_eq!(days, 8 * 366 + 16);
        // Anything else: four times the input plus 64 bytes a row.
        let upper = call("upper", vec![text("abc")], 10, DataType::Utf8);
        assert_eq!(
            upper,
            4 * ScalarValue::Utf8(Some("abc".into())).size() as u128 * 10 + 640
        );
    }

    #[test]
    fn variable_width_types() {
        assert!(variable_width(&DataType::Utf8View));
        assert!(variable_width(&DataType::new_list(DataType::Int64, true)));
        assert!(!variable_width(&DataType::Int64));
        assert!(!variable_width(&DataType::Timestamp(
            TimeUnit::Millisecond,
            None
        )));
    }
}
