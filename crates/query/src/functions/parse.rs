//! `parse field "glob" as a, b` / `parse field /(?<a>…)…/` (reference §5.3): one regex match
//! per row gives every capture at once, as a struct with one text field per name; the planner
//! then takes the struct apart with `get_field`. A row that does not match gets null for every
//! name.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::{all_scalar, rows_for, shape, text_arg};

/// One `parse` command, compiled.
#[derive(Debug)]
pub(crate) struct ParseFn {
    source: String,
    regex: Regex,
    names: Vec<String>,
    /// Glob captures are positional (group i + 1 is name i); a user regex names its groups.
    positional: bool,
    /// Capture group of each name.
    groups: Vec<Option<usize>>,
    signature: Signature,
}

impl ParseFn {
    pub(crate) fn new(source: &str, names: Vec<String>, positional: bool) -> Result<Self> {
        let regex = match Regex::new(source) {
            Ok(r) => r,
            Err(e) => return exec_err!("parse pattern does not compile: {e}"),
        };
        let groups = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if positional {
                    Some(i + 1)
                } else {
                    regex.capture_names().position(|n| n == Some(name.as_str()))
                }
            })
            .collect();
        Ok(ParseFn {
            source: source.to_string(),
            regex,
            names,
            positional,
            groups,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    fn fields(&self) -> Fields {
        self.names
            .iter()
            .map(|n| Field::new(n.as_str(), DataType::Utf8, true))
            .collect()
    }
}

impl PartialEq for ParseFn {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.names == other.names
            && self.positional == other.positional
    }
}

impl Eq for ParseFn {}

impl Hash for ParseFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.hash(state);
        self.names.hash(state);
        self.positional.hash(state);
    }
}

impl ScalarUDFImpl for ParseFn {
    fn name(&self) -> &str {
        "parse"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let input = text_arg(&args.args[0], rows)?;
        let mut builders: Vec<StringBuilder> = self
            .names
            .iter()
            .map(|_| StringBuilder::with_capacity(rows, rows * 8))
            .collect();
        let mut locs = self.regex.capture_locations();
        for row in 0..rows {
            let matched = input.is_valid(row)
                && self
                    .regex
                    .captures_read(&mut locs, input.value(row))
                    .is_some();
            for (i, b) in builders.iter_mut().enumerate() {
                if !matched {
                    b.append_null();
                    continue;
                }
                let text = input.value(row);
                match self.groups[i].and_then(|g| locs.get(g)) {
                    Some((start, end)) => b.append_value(&text[start..end]),
                    None => b.append_null(),
                }
            }
        }
        let arrays: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let out = StructArray::try_new(self.fields(), arrays, None)?;
        shape(Arc::new(out), all_scalar(&args.args))
    }
}
