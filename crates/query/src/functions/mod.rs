//! DataFusion functions for what Logs Insights has and DataFusion does not (reference §5.5):
//! JSON values (`jsonParse`, member access, `unnest`), the IP predicates, `parse` patterns,
//! `pct` with the nearest-rank definition, and `@ptr`.
//!
//! Every other §5.5 function is planned onto DataFusion's own functions in
//! [`crate::planner`]. These take any argument type and cast to text themselves, so the
//! planner does not have to coerce, and a value of an unexpected type gives null rather than a
//! failed query — Logs Insights is dynamically typed.

pub(crate) mod ip;
pub(crate) mod json;
pub(crate) mod parse;
pub(crate) mod pct;
pub(crate) mod ptr;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, ScalarUDF};

/// An argument as a text array of `rows` rows (numbers, booleans and timestamps as text).
pub(crate) fn text_arg(arg: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let array: ArrayRef = arg.to_array(rows)?;
    let array = if array.data_type() == &DataType::Utf8 {
        array
    } else {
        cast(&array, &DataType::Utf8)?
    };
    Ok(array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .unwrap_or_else(|| StringArray::new_null(rows)))
}

/// Whether every argument is a scalar: the result is then one value, returned as a scalar.
pub(crate) fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// Turns a one-row result back into a scalar when all inputs were scalars.
pub(crate) fn shape(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar && out.len() == 1 {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&out, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// Rows to evaluate: one when every argument is a scalar.
pub(crate) fn rows_for(args: &[ColumnarValue], number_rows: usize) -> usize {
    if all_scalar(args) { 1 } else { number_rows }
}

pub(crate) fn json_parse() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(json::JsonParse::new()))
}

pub(crate) fn json_get() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(json::JsonGet::new()))
}

pub(crate) fn json_list() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(json::JsonList::new()))
}

pub(crate) fn json_stringify() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(json::JsonStringify::new()))
}

pub(crate) fn ip(kind: ip::IpCheck) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(ip::IpFn::new(kind)))
}

pub(crate) fn ptr() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(ptr::PtrFn::new()))
}

pub(crate) fn pct() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(pct::Pct::new()))
}

/// The functions also offered to SQL queries, so that SQL users have the same JSON and IP
/// semantics as Logs Insights. DataFusion's SQL folds function names to lower case, hence
/// the lower-case aliases (`isIpInSubnet` is found as `isipinsubnet`).
pub(crate) fn sql_scalar_functions() -> Vec<ScalarUDF> {
    let mut out = vec![
        ScalarUDF::new_from_impl(json::JsonParse::new()).with_aliases(["json_parse", "jsonparse"]),
        ScalarUDF::new_from_impl(json::JsonGet::new()),
        ScalarUDF::new_from_impl(json::JsonStringify::new())
            .with_aliases(["json_stringify", "jsonstringify"]),
    ];
    for kind in ip::IpCheck::ALL {
        out.push(ScalarUDF::new_from_impl(ip::IpFn::new(kind)).with_aliases([kind.lower_name()]));
    }
    out
}
