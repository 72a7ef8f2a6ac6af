//! Resolving `@ptr` back to the whole event (CloudWatch's GetLogRecord): every stored field
//! of the event that has a value, system fields first, `@log` included.

use std::sync::Arc;

use datafusion::logical_expr::{LogicalPlanBuilder, ident, lit};
use datafusion::physical_plan::collect;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{QueryError, Result};
use crate::functions::ptr::RecordPointer;
use crate::results::batch_rows;
use crate::service::QueryService;
use crate::table::{EVENT_ID, GroupData, LogTable, TimeRange};

/// One event with all its fields, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub fields: Vec<(String, Value)>,
}

impl LogRecord {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// As a JSON object `{field: value}`.
impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn not_found(ptr: &str) -> QueryError {
    QueryError::RecordNotFound(format!("no event for @ptr {ptr:?}"))
}

impl QueryService {
    /// The whole event a `@ptr` of a result row points at.
    pub async fn get_record(&self, ptr: &str) -> Result<LogRecord> {
        let p = RecordPointer::decode(ptr).ok_or_else(|| {
            QueryError::RecordNotFound(format!("{ptr:?} is not a @ptr of this server"))
        })?;
        let inner = self.inner.clone();
        let ptr_text = ptr.to_string();
        self.inner
            .handle
            .spawn(async move {
                let range = TimeRange {
                    start_ms: p.timestamp_ms,
                    end_ms: p.timestamp_ms.saturating_add(1),
                };
                let scan = inner
                    .store
                    .scan(&p.group, Some(range.start_ms), Some(range.end_ms))
                    .await
                    .map_err(|e| match e {
                        kinsight_store::StoreError::GroupNotFound(_) => not_found(&ptr_text),
                        other => QueryError::Store(other),
                    })?;
                let table = Arc::new(LogTable::new(
                    vec![Arc::new(GroupData {
                        name: p.group.clone(),
                        scan,
                    })],
                    range,
                )?);
                let ctx = QueryService::session(&inner)?;
                let internal =
                    |e: datafusion::error::DataFusionError| QueryError::Internal(e.to_string());
                let plan = LogicalPlanBuilder::from(table.source_plan("logs").map_err(internal)?)
                    .filter(ident(EVENT_ID).eq(lit(p.id)))
                    .and_then(|b| b.limit(0, Some(1)))
                    .and_then(|b| b.build())
                    .map_err(internal)?;
                let physical = ctx
                    .state()
                    .create_physical_plan(&plan)
                    .await
                    .map_err(internal)?;
                let batches = collect(physical, ctx.task_ctx())
                    .await
                    .map_err(|e| QueryError::from_datafusion(e, Default::default()))?;
                for b in &batches {
                    if let Some(row) = batch_rows(b)?.into_iter().next() {
                        let fields = b
                            .schema()
                            .fields()
                            .iter()
                            .zip(row)
                            .filter(|(f, v)| f.name() != EVENT_ID && !v.is_null())
                            .map(|(f, v)| (f.name().clone(), v))
                            .collect();
                        return Ok(LogRecord { fields });
                    }
                }
                Err(not_found(&ptr_text))
            })
            .await
            .map_err(|e| QueryError::Internal(format!("record task: {e}")))?
    }
}
