//! JSON values (reference §5.5 "JSON / structure"): `jsonParse(s)` gives a MAP or LIST,
//! members are read with `m.attr` / `` m.`odd.key` `` and elements with `list[i]`, and `unnest`
//! explodes a LIST.
//!
//! Representation: a JSON value travels as its normalized JSON text (`Utf8`), so it fits in any
//! column and prints as JSON in results. Reading a member gives the member as Logs Insights
//! shows it: a string without quotes, a number or boolean as text, an object or array as JSON
//! text (which can be read further). Text that is not JSON reads as missing (null).
//!
//! The same member access reads fields from `@message` that are not stored as columns
//! (beyond the 1,000-field cap of a group, reference §5.1).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, Int64Array, Int64Builder, ListArray, StringArray, StringBuilder,
    StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use super::{all_scalar, rows_for, shape, text_arg};

/// Logs Insights' text of a JSON value: strings unquoted, containers as JSON.
pub(crate) fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => Some(v.to_string()),
    }
}

/// One step of a member path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(i64),
}

/// Follows `path` into `v`. A key that is a number also indexes an array (`a.0.b`, the
/// flattened spelling of reference §5.1).
pub(crate) fn follow<'a>(mut v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    for step in path {
        v = match (v, step) {
            (Value::Object(m), Step::Key(k)) => m.get(k)?,
            (Value::Array(a), Step::Index(i)) => a.get(usize::try_from(*i).ok()?)?,
            (Value::Array(a), Step::Key(k)) => a.get(k.parse::<usize>().ok()?)?,
            (Value::Object(m), Step::Index(i)) => m.get(&i.to_string())?,
            _ => return None,
        };
    }
    Some(v)
}

fn parse_json(s: &str) -> Option<Value> {
    let t = s.trim_start();
    // Only objects and arrays are worth parsing: a member of a scalar is always missing.
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str(t).ok()
}

/// `jsonParse(s)`: the normalized JSON text of an object or array; anything else is null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct JsonParse {
    signature: Signature,
}

impl JsonParse {
    pub(crate) fn new() -> Self {
        JsonParse {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonParse {
    fn name(&self) -> &str {
        "jsonParse"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let input = text_arg(&args.args[0], rows)?;
        let out: StringArray = input
            .iter()
            .map(|s| s.and_then(parse_json).map(|v| v.to_string()))
            .collect();
        shape(Arc::new(out), all_scalar(&args.args))
    }
}

/// `json_get(json, step, …)`: the member at the path; steps are text keys or integer
/// indexes (`m.attr`, `list[0]`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct JsonGet {
    signature: Signature,
}

impl JsonGet {
    pub(crate) fn new() -> Self {
        JsonGet {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

enum StepColumn {
    Key(StringArray),
    Index(Int64Array),
}

impl StepColumn {
    fn get(&self, row: usize) -> Option<Step> {
        match self {
            StepColumn::Key(a) => (!a.is_null(row)).then(|| Step::Key(a.value(row).to_string())),
            StepColumn::Index(a) => (!a.is_null(row)).then(|| Step::Index(a.value(row))),
        }
    }
}

fn step_column(arg: &ColumnarValue, rows: usize) -> Result<StepColumn> {
    let array: ArrayRef = arg.to_array(rows)?;
    if array.data_type().is_integer() {
        let a = cast(&array, &DataType::Int64)?;
        let a = a
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::new_null(rows));
        Ok(StepColumn::Index(a))
    } else {
        Ok(StepColumn::Key(text_arg(
            &ColumnarValue::Array(array),
            rows,
        )?))
    }
}

impl ScalarUDFImpl for JsonGet {
    fn name(&self) -> &str {
        "json_get"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        if args.args.is_empty() {
            return shape(Arc::new(StringArray::new_null(rows)), true);
        }
        let input = text_arg(&args.args[0], rows)?;
        // The path is almost always literal: resolve it once.
        let constant: Option<Vec<Step>> = if all_scalar(&args.args[1..]) {
            let mut steps = Vec::new();
            for a in &args.args[1..] {
                match step_column(a, 1)?.get(0) {
                    Some(s) => steps.push(s),
                    None => return shape(Arc::new(StringArray::new_null(rows)), false),
                }
            }
            Some(steps)
        } else {
            None
        };
        let columns = match constant {
            Some(_) => Vec::new(),
            None => args.args[1..]
                .iter()
                .map(|a| step_column(a, rows))
                .collect::<Result<Vec<_>>>()?,
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for row in 0..rows {
            let value = input.is_valid(row).then(|| input.value(row));
            let path = match &constant {
                Some(p) => Some(p.clone()),
                None => columns.iter().map(|c| c.get(row)).collect(),
            };
            let text = match (value.and_then(parse_json), path) {
                (Some(v), Some(p)) => follow(&v, &p).and_then(value_text),
                _ => None,
            };
            out.append_option(text);
        }
        shape(Arc::new(out.finish()), all_scalar(&args.args))
    }
}

/// The elements of a LIST for `unnest` (reference §5.3: "non-lists act as a 1-element
/// list"); a missing value has no elements, so its row disappears. Each element comes with
/// its position (`{i, v}`), so that unnested rows can keep the list's order.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct JsonList {
    signature: Signature,
}

impl JsonList {
    pub(crate) fn new() -> Self {
        JsonList {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonList {
    fn name(&self) -> &str {
        "json_list"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(element_fields()),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let input = text_arg(&args.args[0], rows)?;
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        let mut positions = Int64Builder::new();
        let mut values = StringBuilder::new();
        for s in input.iter() {
            let mut push = |i: usize, v: Option<String>| {
                positions.append_value(i as i64);
                values.append_option(v);
            };
            match s.map(|s| (s, parse_json(s))) {
                None => {}
                Some((_, Some(Value::Array(items)))) => {
                    for (i, item) in items.iter().enumerate() {
                        push(i, value_text(item));
                    }
                }
                Some((s, _)) => push(0, Some(s.to_string())),
            }
            offsets.push(positions.len() as i32);
        }
        let elements = StructArray::try_new(
            element_fields(),
            vec![
                Arc::new(positions.finish()) as ArrayRef,
                Arc::new(values.finish()) as ArrayRef,
            ],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(
                DataType::Struct(element_fields()),
                true,
            )),
            OffsetBuffer::new(offsets.into()),
            Arc::new(elements),
            None,
        )?;
        shape(Arc::new(list), all_scalar(&args.args))
    }
}

/// The fields of one unnested element: its position and its text.
fn element_fields() -> Fields {
    Fields::from(vec![
        Field::new("i", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ])
}

/// `jsonStringify(x)`: JSON text of a value. Objects and arrays (from `jsonParse`) are already
/// JSON; numbers and booleans stay as they are; any other text becomes a JSON string.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct JsonStringify {
    signature: Signature,
}

impl JsonStringify {
    pub(crate) fn new() -> Self {
        JsonStringify {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonStringify {
    fn name(&self) -> &str {
        "jsonStringify"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let numeric = {
            let dt = args.args[0].data_type();
            dt.is_numeric() || dt == DataType::Boolean
        };
        let input = text_arg(&args.args[0], rows)?;
        let out: StringArray = input
            .iter()
            .map(|s| {
                s.map(|s| match parse_json(s) {
                    Some(v) => v.to_string(),
                    None if numeric => s.to_string(),
                    None => Value::String(s.to_string()).to_string(),
                })
            })
            .collect();
        shape(Arc::new(out), all_scalar(&args.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_reads_members_and_elements() {
        let v: Value = serde_json::from_str(r#"{"a":{"b":[1,{"c":"x"}]},"odd.key":true}"#).unwrap();
        let key = |s: &str| Step::Key(s.to_string());
        assert_eq!(
            follow(&v, &[key("a"), key("b"), Step::Index(1), key("c")]).and_then(value_text),
            Some("x".to_string())
        );
        assert_eq!(
            follow(&v, &[key("a"), key("b"), key("0")]).and_then(value_text),
            Some("1".to_string())
        );
        assert_eq!(
            follow(&v, &[key("odd.key")]).and_then(value_text),
            Some("true".to_string())
        );
        assert_eq!(follow(&v, &[key("missing")]), None);
        assert_eq!(
            follow(&v, &[key("a")]).and_then(value_text),
            Some(r#"{"b":[1,{"c":"x"}]}"#.to_string())
        );
    }
}
