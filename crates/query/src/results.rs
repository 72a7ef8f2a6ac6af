//! Result rows as JSON values: what the native API returns, what the CLI prints and what the
//! CloudWatch-compatible API turns into `{field, value}` lists (as text).
//!
//! Numbers stay numbers, booleans booleans, text text; timestamps are text in the console's
//! format, `2024-05-01 10:00:00.000` (UTC), which is also how Logs Insights returns
//! `@timestamp` and `bin()` values; a missing value is `null`. Floats that are whole print
//! without a fraction (`ceil(…)` gives `3`, as Logs Insights shows it).

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Number, Value};

use crate::error::{QueryError, Result};

/// One result row, in the order of the result columns.
pub type Row = Vec<Value>;

/// Roughly the bytes a row holds in memory (text, plus a fixed cost per value): what the
/// result budgets count.
pub fn row_bytes(row: &Row) -> usize {
    fn value(v: &Value) -> usize {
        24 + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(value).sum(),
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + value(v)).sum(),
            _ => 0,
        }
    }
    24 + row.iter().map(value).sum::<usize>()
}

/// Result rows shared between a running query and its snapshots: chunks appended as batches
/// arrive, so a poll holds references to them instead of a copy.
#[derive(Clone, Default)]
pub struct Rows {
    chunks: Vec<std::sync::Arc<[Row]>>,
    /// Rows of the first chunks left out (`rows_from`).
    skip: usize,
    len: usize,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, rows: Vec<Row>) {
        if !rows.is_empty() {
            self.len += rows.len();
            self.chunks.push(rows.into());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip(self.skip)
            .take(self.len)
    }

    /// The first rows whose [`row_bytes`] add up to at most `max_bytes` (at least one row),
    /// sharing the chunks, with the bytes they take.
    pub fn prefix_within(&self, max_bytes: usize) -> (Rows, usize) {
        let mut bytes = 0usize;
        let mut n = 0usize;
        for r in self.iter() {
            let b = row_bytes(r);
            if n > 0 && bytes + b > max_bytes {
                break;
            }
            bytes += b;
            n += 1;
        }
        let mut prefix = self.clone();
        prefix.len = n;
        (prefix, bytes)
    }

    /// [`row_bytes`] of all the rows.
    pub fn bytes(&self) -> usize {
        self.iter().map(row_bytes).sum()
    }

    /// The rows from `from` on (fewer when there are fewer), sharing the chunks.
    pub fn starting_at(&self, from: usize) -> Rows {
        let from = from.min(self.len);
        let mut skip = self.skip + from;
        let mut chunks = Vec::new();
        for c in &self.chunks {
            if skip >= c.len() && chunks.is_empty() {
                skip -= c.len();
                continue;
            }
            chunks.push(c.clone());
        }
        Rows {
            chunks,
            skip,
            len: self.len - from,
        }
    }

    pub fn to_vec(&self) -> Vec<Row> {
        self.iter().cloned().collect()
    }
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Rows {
    fn eq(&self, other: &Rows) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl PartialEq<Vec<Row>> for Rows {
    fn eq(&self, other: &Vec<Row>) -> bool {
        self.len == other.len() && self.iter().eq(other.iter())
    }
}

impl From<Vec<Row>> for Rows {
    fn from(rows: Vec<Row>) -> Rows {
        let mut r = Rows::default();
        r.push(rows);
        r
    }
}

impl serde::Serialize for Rows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Rows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Rows, D::Error> {
        Vec::<Row>::deserialize(d).map(Rows::from)
    }
}

/// Formats epoch milliseconds the way the Logs Insights console shows timestamps.
pub fn format_timestamp_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

fn float_value(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn column_values(array: &ArrayRef) -> Result<Vec<Value>> {
    use datafusion::arrow::datatypes::*;
    let n = array.len();
    let arrow = |e: datafusion::arrow::error::ArrowError| QueryError::Execution(e.to_string());
    let mut out = Vec::with_capacity(n);
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::from(a.value(i))
                });
            }
        }};
    }
    match array.data_type() {
        DataType::Null => out.resize(n, Value::Null),
        DataType::Boolean => {
            let a = array.as_boolean();
            out.extend((0..n).map(|i| {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Bool(a.value(i))
                }
            }));
        }
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(array, &DataType::Float64).map_err(arrow)?;
            let a = a.as_primitive::<Float64Type>();
            out.extend((0..n).map(|i| {
                if a.is_null(i) {
                    Value::Null
                } else {
                    float_value(a.value(i))
                }
            }));
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            out.extend(
                a.iter()
                    .map(|v| v.map_or(Value::Null, |s| Value::String(s.into()))),
            );
        }
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let a = cast(array, &DataType::Utf8).map_err(arrow)?;
            return column_values(&a);
        }
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            let a =
                cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None)).map_err(arrow)?;
            let a = a.as_primitive::<TimestampMillisecondType>();
            out.extend((0..n).map(|i| {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::String(format_timestamp_ms(a.value(i)))
                }
            }));
        }
        _ => {
            let options = FormatOptions::default();
            let f = ArrayFormatter::try_new(array.as_ref(), &options).map_err(arrow)?;
            out.extend((0..n).map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    Value::String(f.value(i).to_string())
                }
            }));
        }
    }
    Ok(out)
}

/// The rows of a batch.
pub fn batch_rows(batch: &RecordBatch) -> Result<Vec<Row>> {
    let columns: Vec<Vec<Value>> = batch
        .columns()
        .iter()
        .map(column_values)
        .collect::<Result<_>>()?;
    let mut rows: Vec<Row> = (0..batch.num_rows())
        .map(|_| Vec::with_capacity(columns.len()))
        .collect();
    for col in columns {
        for (row, v) in rows.iter_mut().zip(col) {
            row.push(v);
        }
    }
    Ok(rows)
}

/// A value as CloudWatch's GetQueryResults gives it: text, or nothing for a missing value.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    #[test]
    fn values_keep_their_kind_and_timestamps_read_like_the_console() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_714_557_600_123), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(Float64Array::from(vec![Some(3.0), Some(2.5)])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        let rows = batch_rows(&b).unwrap();
        assert_eq!(
            rows[0],
            vec![
                Value::from("2024-05-01 10:00:00.123"),
                Value::from(7),
                Value::from(3),
                Value::from("a")
            ]
        );
        assert_eq!(
            rows[1],
            vec![Value::Null, Value::Null, Value::from(2.5), Value::Null]
        );
        assert_eq!(value_text(&rows[1][2]), Some("2.5".into()));
        assert_eq!(value_text(&rows[1][3]), None);
    }
}
