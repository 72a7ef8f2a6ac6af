//! The log groups of one query as a DataFusion table.
//!
//! [`GroupData`] is what [`kinsight_store::Store::scan`] gave for one group and the query's
//! time range: the Parquet segments that overlap it and the unflushed rows. [`LogTable`] is a
//! `TableProvider` over one or several groups:
//!
//! - its schema is the union of the groups' schemas (types widened as the store widens them,
//!   `kinsight_store::schema`), plus `@log`, the group name (reference §5.2);
//! - segments are read by DataFusion's Parquet reader straight from the store's
//!   `object_store`, with only the projected columns; `@log` is a partition value of each file,
//!   so nothing is stored for it; footers go through DataFusion's metadata cache (segments are
//!   immutable: a compaction writes new objects);
//! - the segments are spread over the session's partitions (newest first, balanced by size),
//!   so a scan runs on every query thread;
//! - filters are "inexact": DataFusion keeps them above the scan and also hands them to the
//!   Parquet reader, which skips row groups and pages by their min/max statistics;
//! - filters on `@log` alone prune whole groups before anything is read;
//! - unflushed rows are in-memory batches conformed to the same schema.
//!
//! The time range and deleted streams are applied by [`LogTable::source_plan`] as a logical
//! filter above the scan (only when a segment crosses the range), so that both the Logs
//! Insights planner and SQL see exactly the events of the range, and DataFusion prunes with it.

use std::ops::Not;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, ident, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use kinsight_store::schema::{self as store_schema, GroupFields, MAX_GROUP_FIELDS};
use kinsight_store::{GroupScan, SegmentMeta};

use crate::error::{QueryError, Result};

/// The `@log` column (reference §5.2). Its value is the log group name.
pub const LOG: &str = "@log";
/// The store's system columns, re-exported for the planner.
pub(crate) use kinsight_store::schema::{EVENT_ID, LOG_STREAM, MESSAGE, TIMESTAMP};

/// The object-store URL under which the store's objects are registered in DataFusion.
pub(crate) const STORE_URL: &str = "kinsight://store";

/// One group's part of a query.
#[derive(Debug)]
pub struct GroupData {
    pub name: String,
    pub scan: GroupScan,
}

impl GroupData {
    /// Whether the group has reached its column cap, so that fields may exist in `@message`
    /// only (reference §5.1: ~1,000 discovered fields per group).
    pub fn at_field_cap(&self) -> bool {
        store_schema::fields_of(&self.scan.schema).len() >= MAX_GROUP_FIELDS
    }

    pub fn segment_bytes(&self) -> u64 {
        self.scan.segments.iter().map(|s| s.size_bytes).sum()
    }

    pub fn memory_rows(&self) -> usize {
        self.scan.memory.iter().map(|b| b.num_rows()).sum()
    }

    /// Message bytes of the unflushed rows (what "bytes scanned" counts for memory).
    pub fn memory_bytes(&self) -> u64 {
        self.scan
            .memory
            .iter()
            .filter_map(|b| b.column_by_name(MESSAGE))
            .filter_map(|c| c.as_any().downcast_ref::<StringArray>())
            .map(|a| a.value_data().len() as u64)
            .sum()
    }
}

/// The time range of a query, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Unflushed rows (and their message bytes) handed to scans, for the query statistics: the
/// Parquet reader counts its own rows, memory batches have no reader.
#[derive(Debug, Default)]
pub struct ScanCounters {
    pub memory_rows: AtomicU64,
    pub memory_bytes: AtomicU64,
}

impl ScanCounters {
    pub fn rows(&self) -> u64 {
        self.memory_rows.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }
}

/// A table over one or several groups. See the module documentation.
#[derive(Debug)]
pub struct LogTable {
    groups: Vec<Arc<GroupData>>,
    range: TimeRange,
    /// Stored columns (union), without `@log`.
    file_schema: SchemaRef,
    /// `file_schema` + `@log`.
    schema: SchemaRef,
    /// Unflushed rows of every group, conformed to `schema` (with `@log`).
    memory: Vec<(usize, RecordBatch)>,
    counters: Arc<ScanCounters>,
}

fn ts_literal(ms: i64) -> Expr {
    lit(ScalarValue::TimestampMillisecond(
        Some(ms),
        Some("UTC".into()),
    ))
}

impl LogTable {
    /// The time range the table covers.
    pub fn range(&self) -> TimeRange {
        self.range
    }

    pub fn new(groups: Vec<Arc<GroupData>>, range: TimeRange) -> Result<LogTable> {
        let mut fields = GroupFields::new();
        for g in &groups {
            store_schema::merge_fields(&mut fields, &store_schema::fields_of(&g.scan.schema));
        }
        // Text columns are read as string views: decoding dictionary pages then makes views
        // into the dictionary instead of copying every value, and comparisons and grouping
        // on short strings (pod names, types, namespaces) work on inline bytes.
        let file_schema = Arc::new(Schema::new(
            store_schema::arrow_schema(&fields)
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                    _ => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        let mut all: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        all.push(Field::new(LOG, DataType::Utf8, false));
        let schema = Arc::new(Schema::new(all));
        let mut memory = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            for b in &g.scan.memory {
                let conformed = store_schema::conform(b, &file_schema)?;
                let mut cols: Vec<ArrayRef> = conformed.columns().to_vec();
                cols.push(Arc::new(StringArray::from(vec![
                    g.name.as_str();
                    b.num_rows()
                ])));
                let batch = RecordBatch::try_new(schema.clone(), cols)
                    .map_err(|e| QueryError::Internal(format!("memory batch: {e}")))?;
                memory.push((gi, batch));
            }
        }
        Ok(LogTable {
            groups,
            range,
            file_schema,
            schema,
            memory,
            counters: Arc::default(),
        })
    }

    /// Counts the unflushed rows its scans read into `counters` (shared by a query's tables).
    pub fn with_counters(mut self, counters: Arc<ScanCounters>) -> Self {
        self.counters = counters;
        self
    }

    pub fn groups(&self) -> &[Arc<GroupData>] {
        &self.groups
    }

    pub fn table_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Whether some group has reached its column cap (see [`GroupData::at_field_cap`]).
    pub fn any_group_at_field_cap(&self) -> bool {
        self.groups.iter().any(|g| g.at_field_cap())
    }

    /// The predicate that keeps exactly the events of the query: inside the time range (only
    /// needed when a segment reaches outside it; memory rows are already cut) and not in a
    /// deleted stream (the store filters memory, not segments).
    pub fn row_predicate(&self) -> Option<Expr> {
        let TimeRange { start_ms, end_ms } = self.range;
        let crosses = self
            .groups
            .iter()
            .flat_map(|g| &g.scan.segments)
            .any(|s| s.min_ts < start_ms || s.max_ts >= end_ms);
        let mut preds = Vec::new();
        if crosses {
            preds.push(ident(TIMESTAMP).gt_eq(ts_literal(start_ms)));
            preds.push(ident(TIMESTAMP).lt(ts_literal(end_ms)));
        }
        for g in &self.groups {
            for (stream, seq) in &g.scan.deleted_streams {
                let first_live_id = i64::try_from(seq << 14).unwrap_or(i64::MAX);
                let deleted = ident(LOG)
                    .eq(lit(g.name.clone()))
                    .and(ident(LOG_STREAM).eq(lit(stream.clone())))
                    .and(ident(EVENT_ID).lt(lit(first_live_id)));
                preds.push(deleted.not());
            }
        }
        preds.into_iter().reduce(Expr::and)
    }

    /// A scan of this table named `name`, with [`Self::row_predicate`] applied.
    pub fn source_plan(self: &Arc<Self>, name: &str) -> DfResult<LogicalPlan> {
        let mut b = LogicalPlanBuilder::scan(name, provider_as_source(self.clone()), None)?;
        if let Some(p) = self.row_predicate() {
            b = b.filter(p)?;
        }
        b.build()
    }

    /// Groups that survive the filters that read only `@log`.
    fn groups_passing(&self, state: &dyn Session, filters: &[Expr]) -> DfResult<Vec<bool>> {
        let mut keep = vec![true; self.groups.len()];
        let log_only: Vec<&Expr> = filters
            .iter()
            .filter(|f| {
                let cols = f.column_refs();
                !cols.is_empty() && cols.iter().all(|c| c.name == LOG)
            })
            .collect();
        if log_only.is_empty() || self.groups.is_empty() {
            return Ok(keep);
        }
        let names_schema = Arc::new(Schema::new(vec![Field::new(LOG, DataType::Utf8, false)]));
        let names = RecordBatch::try_new(
            names_schema.clone(),
            vec![Arc::new(StringArray::from(
                self.groups
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>(),
            ))],
        )?;
        let df_schema = DFSchema::try_from(names_schema)?;
        for f in log_only {
            // Qualifiers differ (`logs.@log` vs `@log`): evaluate on the bare column.
            let bare = f.clone().transform_up_columns_unqualified()?;
            let phys = state.create_physical_expr(bare, &df_schema)?;
            let result = phys.evaluate(&names)?.into_array(names.num_rows())?;
            if let Some(mask) = result.as_any().downcast_ref::<BooleanArray>() {
                for (i, k) in keep.iter_mut().enumerate() {
                    *k &= mask.is_valid(i) && mask.value(i);
                }
            }
        }
        Ok(keep)
    }
}

/// Helper to strip qualifiers from the columns of an expression.
trait UnqualifyColumns: Sized {
    fn transform_up_columns_unqualified(self) -> DfResult<Self>;
}

impl UnqualifyColumns for Expr {
    fn transform_up_columns_unqualified(self) -> DfResult<Self> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        self.transform_up(|e| match e {
            Expr::Column(c) if c.relation.is_some() => {
                Ok(Transformed::yes(Expr::Column(c.name.as_str().into())))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }
}

/// Spreads files over `n` partitions: newest first, each to the partition with the fewest
/// bytes so far.
fn spread(files: Vec<(usize, &SegmentMeta)>, n: usize) -> Vec<Vec<(usize, &SegmentMeta)>> {
    let mut files = files;
    files.sort_by_key(|f| std::cmp::Reverse(f.1.max_ts));
    let n = n.max(1).min(files.len().max(1));
    let mut parts: Vec<(u64, Vec<(usize, &SegmentMeta)>)> = vec![(0, Vec::new()); n];
    for f in files {
        if let Some(p) = parts.iter_mut().min_by_key(|p| p.0) {
            p.0 += f.1.size_bytes.max(1);
            p.1.push(f);
        }
    }
    parts
        .into_iter()
        .map(|p| p.1)
        .filter(|p| !p.is_empty())
        .collect()
}

#[async_trait]
impl TableProvider for LogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: DataFusion still filters every row, and the Parquet reader uses the
        // predicate to skip row groups and pages.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let keep = self.groups_passing(state, filters)?;
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let mut parts: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        let files: Vec<(usize, &SegmentMeta)> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .flat_map(|(i, g)| g.scan.segments.iter().map(move |s| (i, s)))
            .collect();
        if !files.is_empty() {
            let url = ObjectStoreUrl::parse(STORE_URL)?;
            let store = state.runtime_env().object_store(&url)?;
            let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
            let table_schema = TableSchema::builder(self.file_schema.clone())
                .with_table_partition_cols(vec![Arc::new(Field::new(LOG, DataType::Utf8, false))])
                .build();
            let options = datafusion::config::TableParquetOptions {
                global: state.config_options().execution.parquet.clone(),
                ..Default::default()
            };
            let source = ParquetSource::new(table_schema)
                .with_table_parquet_options(options)
                .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                    store, cache,
                )));
            let groups: Vec<FileGroup> = spread(files, state.config().target_partitions())
                .into_iter()
                .map(|part| {
                    FileGroup::new(
                        part.into_iter()
                            .map(|(gi, s)| {
                                PartitionedFile::new(s.path.clone(), s.size_bytes)
                                    .with_partition_values(vec![ScalarValue::Utf8(Some(
                                        self.groups[gi].name.clone(),
                                    ))])
                            })
                            .collect(),
                    )
                })
                .collect();
            let config = FileScanConfigBuilder::new(url, Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            parts.push(DataSourceExec::from_data_source(config));
        }

        let memory: Vec<RecordBatch> = self
            .memory
            .iter()
            .filter(|(gi, _)| keep[*gi])
            .map(|(_, b)| b.clone())
            .collect();
        for (_, g) in self.groups.iter().enumerate().filter(|(i, _)| keep[*i]) {
            self.counters
                .memory_rows
                .fetch_add(g.memory_rows() as u64, Ordering::Relaxed);
            self.counters
                .memory_bytes
                .fetch_add(g.memory_bytes(), Ordering::Relaxed);
        }
        if !memory.is_empty() {
            let n = state.config().target_partitions().max(1).min(memory.len());
            let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
            for (i, b) in memory.into_iter().enumerate() {
                partitions[i % n].push(b);
            }
            let mut mem =
                MemorySourceConfig::try_new(&partitions, self.schema.clone(), projection.cloned())?;
            mem = mem.with_limit(limit);
            parts.push(DataSourceExec::from_data_source(mem));
        }

        Ok(match parts.len() {
            0 => Arc::new(EmptyExec::new(projected)),
            1 => parts.remove(0),
            _ => UnionExec::try_new(parts)?,
        })
    }
}

/// Registers the store's object store in a DataFusion runtime under [`STORE_URL`].
pub(crate) fn register_store(
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    store: Arc<dyn object_store::ObjectStore>,
) -> Result<()> {
    let url = ObjectStoreUrl::parse(STORE_URL)
        .map_err(|e| QueryError::Internal(format!("store url: {e}")))?;
    runtime.register_object_store(url.as_ref(), store);
    Ok(())
}

/// The data type of `@timestamp` and `@ingestionTime`.
pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
