//! `@ptr` (reference §5.2): an opaque pointer to one event, returned with raw-event results
//! and resolved back to the whole event ([`crate::QueryService::get_record`], CloudWatch's
//! GetLogRecord).
//!
//! It encodes the log group, the event's `@timestamp` (so that resolving reads one time
//! window, not the whole group) and its `@id`, which the store keeps stable across flushes and
//! compactions: `base64url("1:<timestamp ms>:<id>:<group>")`, no padding.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use datafusion::arrow::array::{Array, Int64Array, StringBuilder, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{all_scalar, rows_for, shape, text_arg};

/// What a `@ptr` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPointer {
    pub group: String,
    pub timestamp_ms: i64,
    pub id: i64,
}

impl RecordPointer {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "1:{}:{}:{}",
            self.timestamp_ms, self.id, self.group
        ))
    }

    pub fn decode(ptr: &str) -> Option<RecordPointer> {
        let bytes = URL_SAFE_NO_PAD.decode(ptr.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(4, ':');
        if parts.next()? != "1" {
            return None;
        }
        let timestamp_ms = parts.next()?.parse().ok()?;
        let id = parts.next()?.parse().ok()?;
        let group = parts.next()?.to_string();
        (!group.is_empty()).then_some(RecordPointer {
            group,
            timestamp_ms,
            id,
        })
    }
}

/// `ptr(@log, @timestamp, @id)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PtrFn {
    signature: Signature,
}

impl PtrFn {
    pub(crate) fn new() -> Self {
        PtrFn {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PtrFn {
    fn name(&self) -> &str {
        "ptr"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let groups = text_arg(&args.args[0], rows)?;
        let ts = cast(
            &args.args[1].to_array(rows)?,
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?;
        let ts = ts
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .cloned()
            .unwrap_or_else(|| TimestampMillisecondArray::new_null(rows));
        let ids = cast(&args.args[2].to_array(rows)?, &DataType::Int64)?;
        let ids = ids
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::new_null(rows));
        let mut out = StringBuilder::with_capacity(rows, rows * 48);
        for row in 0..rows {
            if groups.is_null(row) || ts.is_null(row) || ids.is_null(row) {
                out.append_null();
                continue;
            }
            out.append_value(
                RecordPointer {
                    group: groups.value(row).to_string(),
                    timestamp_ms: ts.value(row),
                    id: ids.value(row),
                }
                .encode(),
            );
        }
        shape(Arc::new(out.finish()), all_scalar(&args.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_round_trip_and_reject_garbage() {
        let p = RecordPointer {
            group: "/kinsight/c1/application".into(),
            timestamp_ms: 1_700_000_000_123,
            id: (42 << 14) | 7,
        };
        assert_eq!(RecordPointer::decode(&p.encode()), Some(p));
        assert_eq!(RecordPointer::decode("not a pointer"), None);
        assert_eq!(
            RecordPointer::decode(&URL_SAFE_NO_PAD.encode("2:1:2:g")),
            None
        );
        assert_eq!(
            RecordPointer::decode(&URL_SAFE_NO_PAD.encode("1:x:2:g")),
            None
        );
    }
}
