//! The columns of a log group: five system columns, then one typed column per JSON field
//! discovered in the events (dotted names, e.g. `kubernetes.pod_name`).
//!
//! Types are chosen deliberately and widen, never narrow: a field seen as integer and as float
//! becomes `Float64`; any other disagreement (number and string, boolean and number) makes it
//! `Utf8`, holding each value's JSON text. A group's schema is the union of what its segments
//! and memory hold; a segment keeps the types its own rows needed, and readers cast segment
//! columns to the group type ([`conform`]) — casts along the widening order always succeed.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, new_null_array};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Event timestamp (`InputLogEvent.timestamp`), milliseconds, UTC.
pub const TIMESTAMP: &str = "@timestamp";
/// When the server received the event.
pub const INGESTION_TIME: &str = "@ingestionTime";
/// The log stream.
pub const LOG_STREAM: &str = "@logStream";
/// The raw event text, always kept.
pub const MESSAGE: &str = "@message";
/// Stable event id `(wal seq << 14) | index` (see [`crate::record::event_id`]); the basis of
/// `@ptr` and of pagination tokens.
pub const EVENT_ID: &str = "@id";

/// The system columns, in schema order.
pub const SYSTEM_COLUMNS: [&str; 5] = [TIMESTAMP, INGESTION_TIME, LOG_STREAM, MESSAGE, EVENT_ID];

/// Most discovered fields a group keeps as columns (CloudWatch discovers up to 1,000 per log
/// group, reference §5.1); later new fields stay reachable through `@message` only.
pub const MAX_GROUP_FIELDS: usize = 1000;
/// Most fields extracted from one event (CloudWatch's per-event quota, raised from 100 to 200).
pub const MAX_EVENT_FIELDS: usize = 200;
/// Objects and arrays nested deeper than this are not flattened.
pub const MAX_FIELD_DEPTH: usize = 16;

/// The type of a discovered field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Boolean,
    Int64,
    Float64,
    Utf8,
}

impl FieldType {
    /// The type that holds values of both.
    pub fn unify(self, other: FieldType) -> FieldType {
        use FieldType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Int64, Float64) | (Float64, Int64) => Float64,
            _ => Utf8,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            FieldType::Boolean => DataType::Boolean,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Utf8 => DataType::Utf8,
        }
    }

    pub fn from_data_type(dt: &DataType) -> Option<FieldType> {
        match dt {
            DataType::Boolean => Some(FieldType::Boolean),
            DataType::Int64 => Some(FieldType::Int64),
            DataType::Float64 => Some(FieldType::Float64),
            DataType::Utf8 => Some(FieldType::Utf8),
            _ => None,
        }
    }
}

/// Discovered fields of a group, by name.
pub type GroupFields = BTreeMap<String, FieldType>;

/// Widens `into` with `more`; returns whether anything changed.
pub fn merge_fields(into: &mut GroupFields, more: &GroupFields) -> bool {
    let mut changed = false;
    for (name, ty) in more {
        match into.get_mut(name) {
            Some(t) => {
                let u = t.unify(*ty);
                if u != *t {
                    *t = u;
                    changed = true;
                }
            }
            None => {
                into.insert(name.clone(), *ty);
                changed = true;
            }
        }
    }
    changed
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The system columns as arrow fields.
pub fn system_fields() -> Vec<Field> {
    vec![
        Field::new(TIMESTAMP, timestamp_type(), false),
        Field::new(INGESTION_TIME, timestamp_type(), false),
        Field::new(LOG_STREAM, DataType::Utf8, false),
        Field::new(MESSAGE, DataType::Utf8, false),
        Field::new(EVENT_ID, DataType::Int64, false),
    ]
}

/// The arrow schema of a group: system columns, then fields by name.
pub fn arrow_schema(fields: &GroupFields) -> SchemaRef {
    let mut all = system_fields();
    all.extend(
        fields
            .iter()
            .map(|(n, t)| Field::new(n.as_str(), t.data_type(), true)),
    );
    Arc::new(Schema::new(all))
}

/// The discovered fields of a batch's schema (everything but the system columns).
pub fn fields_of(schema: &Schema) -> GroupFields {
    schema
        .fields()
        .iter()
        .filter(|f| !SYSTEM_COLUMNS.contains(&f.name().as_str()))
        .filter_map(|f| Some((f.name().clone(), FieldType::from_data_type(f.data_type())?)))
        .collect()
}

/// Reshapes `batch` to `schema`: columns in schema order, missing ones all-null, types cast
/// along the widening order.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let col = match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => cast(c, f.data_type()).map_err(|e| StoreError::Arrow {
                context: format!("cast column {} to {}", f.name(), f.data_type()),
                source: e,
            })?,
            None => new_null_array(f.data_type(), batch.num_rows()),
        };
        cols.push(col);
    }
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| StoreError::Arrow {
        context: "conform batch to group schema".into(),
        source: e,
    })
}

/// Keeps the rows of `batch` whose `@timestamp` lies in `[start_ms, end_ms)`.
pub fn filter_time(
    batch: &RecordBatch,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<RecordBatch> {
    if start_ms.is_none() && end_ms.is_none() {
        return Ok(batch.clone());
    }
    let ts = timestamps(batch)?;
    let mask: BooleanArray = ts
        .iter()
        .map(|t| {
            Some(t.is_some_and(|t| start_ms.is_none_or(|s| t >= s) && end_ms.is_none_or(|e| t < e)))
        })
        .collect();
    filter_record_batch(batch, &mask).map_err(|e| StoreError::Arrow {
        context: "filter by time".into(),
        source: e,
    })
}

/// The `@timestamp` column of a batch.
pub fn timestamps(
    batch: &RecordBatch,
) -> Result<&datafusion::arrow::array::TimestampMillisecondArray> {
    batch
        .column_by_name(TIMESTAMP)
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
        })
        .ok_or_else(|| StoreError::Format {
            path: "record batch".into(),
            reason: format!("missing or mistyped {TIMESTAMP} column"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Float64Array, Int64Array, StringArray};

    #[test]
    fn types_widen_deliberately() {
        use FieldType::*;
        assert_eq!(Int64.unify(Float64), Float64);
        assert_eq!(Int64.unify(Utf8), Utf8);
        assert_eq!(Boolean.unify(Int64), Utf8);
        assert_eq!(Boolean.unify(Boolean), Boolean);
    }

    #[test]
    fn conform_adds_nulls_and_casts() {
        let mut f1 = GroupFields::new();
        f1.insert("n".into(), FieldType::Int64);
        let s1 = arrow_schema(&f1);
        let b = RecordBatch::try_new(
            s1,
            vec![
                Arc::new(
                    datafusion::arrow::array::TimestampMillisecondArray::from(vec![1])
                        .with_timezone("UTC"),
                ),
                Arc::new(
                    datafusion::arrow::array::TimestampMillisecondArray::from(vec![2])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec!["s"])),
                Arc::new(StringArray::from(vec!["{\"n\":3}"])),
                Arc::new(Int64Array::from(vec![9])),
                Arc::new(Int64Array::from(vec![3])),
            ],
        )
        .unwrap();
        let mut f2 = GroupFields::new();
        f2.insert("n".into(), FieldType::Float64);
        f2.insert("a".into(), FieldType::Utf8);
        let s2 = arrow_schema(&f2);
        let c = conform(&b, &s2).unwrap();
        assert_eq!(c.schema(), s2);
        let n = c
            .column_by_name("n")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(n.value(0), 3.0);
        assert!(c.column_by_name("a").unwrap().is_null(0));
    }
}
