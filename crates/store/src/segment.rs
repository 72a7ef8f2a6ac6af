//! Parquet segments: the rows of one log group within one time window, sorted by
//! (cluster column, `@logStream`, `@timestamp`, `@id`), zstd-compressed, with min/max
//! statistics per row group and page. The cluster column is the event's kind where the group
//! has one ([`CLUSTER_COLUMNS`]: a performance event's `Type`, a container line's `stream`, a
//! journal record's `systemd_unit`): each kind's rows sit in row groups of their own, so a
//! query that filters on it (`filter Type = "Node"`) skips the others by their statistics.
//! Sorting by stream next keeps one container's lines together: they compress far better and
//! a stream's rows fall in few row groups. Layout: `docs/formats/segments.md`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::arrow_reader::{ArrowPredicate, ArrowPredicateFn, RowFilter};
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::statistics::Statistics;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::ops::Range;

use kinsight_model::hash::FastBuildHasher;

use crate::error::{Result, StoreError};
use crate::schema::{self, EVENT_ID, LOG_STREAM, MESSAGE, TIMESTAMP, conform};

/// A segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentMeta {
    pub id: u64,
    pub group_id: u64,
    /// Object key relative to the store root (see [`crate::paths::segment`]).
    pub path: String,
    /// Start of the time window (UTC, multiple of the window length).
    pub window_start_ms: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub min_id: i64,
    pub max_id: i64,
    pub rows: u64,
    /// Size of the object.
    pub size_bytes: u64,
    /// Σ message bytes of its events (uncompressed).
    pub raw_bytes: u64,
    pub created_ms: i64,
    /// 0 for a flushed segment; one more than its inputs' highest for a compacted one.
    pub level: u32,
}

impl SegmentMeta {
    pub fn overlaps(&self, start_ms: Option<i64>, end_ms: Option<i64>) -> bool {
        start_ms.is_none_or(|s| self.max_ts >= s) && end_ms.is_none_or(|e| self.min_ts < e)
    }

    pub fn object_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(self.path.as_str())
    }
}

/// The columns a segment's rows are clustered by: the first of these that the rows have as a
/// text column with 2 to [`MAX_CLUSTER_VALUES`] distinct values. They are the discriminators of the
/// reference's log groups (§3, §5.6): `Type` of a performance event (every Container Insights
/// query filters on it), `stream` (stdout/stderr) of a container's log line, `systemd_unit`
/// of a dataplane journal record.
pub const CLUSTER_COLUMNS: [&str; 3] = ["Type", "stream", "systemd_unit"];

/// A candidate with more distinct values than this in a batch is no event kind (a journal's
/// transient `session-N.scope` units, free text): clustering by it would cut row groups of a
/// thousand rows and scatter each stream's lines, so the next candidate is tried.
pub(crate) const MAX_CLUSTER_VALUES: usize = 64;

/// Where the cluster column's value changes, a row group ends if it holds at least this many
/// rows or the next value has at least this many: each kind of event gets row groups of its
/// own, and neighbouring small kinds (the cluster-level events) share one rather than making
/// tiny row groups.
pub(crate) const MIN_CLUSTER_ROW_GROUP_ROWS: usize = 1024;

/// Writer settings: zstd, statistics down to the page, delta encoding for the sorted integer
/// columns, no dictionary for the (mostly unique) raw message. `cluster` is the index of the
/// column the rows were clustered by, if any (recorded as the first sorting column).
pub(crate) fn writer_properties(zstd_level: i32, cluster: Option<usize>) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut sorting: Vec<SortingColumn> = cluster
        .map(|c| SortingColumn {
            column_idx: c as i32,
            descending: false,
            nulls_first: false,
        })
        .into_iter()
        .collect();
    sorting.extend([sorted_by(2), sorted_by(0), sorted_by(4)]);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_column_dictionary_enabled(MESSAGE.into(), false)
        .set_column_dictionary_enabled(TIMESTAMP.into(), false)
        .set_column_encoding(TIMESTAMP.into(), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(EVENT_ID.into(), false)
        .set_column_encoding(EVENT_ID.into(), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(schema::INGESTION_TIME.into(), false)
        .set_column_encoding(schema::INGESTION_TIME.into(), Encoding::DELTA_BINARY_PACKED)
        .set_sorting_columns(Some(sorting))
        .set_created_by(format!("kinsight {}", env!("CARGO_PKG_VERSION")))
        .build()
}

fn sorted_by(column_idx: i32) -> SortingColumn {
    SortingColumn {
        column_idx,
        descending: false,
        nulls_first: false,
    }
}

/// Reads a segment through the object store; its size is known from the manifest, so the
/// footer is fetched with one ranged read and no HEAD request.
#[derive(Debug, Clone)]
pub(crate) struct SegmentReader {
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    size: u64,
}

fn os_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for SegmentReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(os_err)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(os_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let md = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(md))
        }
        .boxed()
    }
}

/// Concatenates batches (conforming them to `schema`) and sorts them (see [`sort_batch`]).
pub(crate) fn concat_sorted(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Sorted> {
    let conformed = batches
        .iter()
        .map(|b| conform(b, schema))
        .collect::<Result<Vec<_>>>()?;
    let all = concat_batches(schema, &conformed).map_err(|e| StoreError::Arrow {
        context: "concatenate batches".into(),
        source: e,
    })?;
    sort_batch(&all)
}

/// Rows sorted by [`sort_batch`], and the column they were clustered by (if any).
pub(crate) struct Sorted {
    pub batch: RecordBatch,
    pub cluster: Option<&'static str>,
}

/// The column a batch's rows are to be clustered by (see [`CLUSTER_COLUMNS`]): one with 2 to
/// [`MAX_CLUSTER_VALUES`] distinct values, with each row's rank in it.
fn cluster_column(batch: &RecordBatch) -> Option<(&'static str, UInt32Array)> {
    CLUSTER_COLUMNS.into_iter().find_map(|name| {
        let (ranks, distinct) = ranks_upto(text_column(batch, name)?, MAX_CLUSTER_VALUES)?;
        (distinct >= 2).then_some((name, ranks))
    })
}

fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch
        .column_by_name(name)?
        .as_any()
        .downcast_ref::<StringArray>()
}

/// Each row's rank among the distinct values of a text column (in byte order, as Parquet
/// compares them), null for a null: sorting by rank compares integers instead of long,
/// prefix-sharing strings for every pair of rows, and only the distinct values are sorted.
/// Also the number of distinct values; `None` as soon as there are more than `max`.
fn ranks_upto(values: &StringArray, max: usize) -> Option<(UInt32Array, usize)> {
    let mut rank: HashMap<&str, u32, FastBuildHasher> = HashMap::default();
    for v in values.iter().flatten() {
        let next = rank.len() as u32;
        rank.entry(v).or_insert(next);
        if rank.len() > max {
            return None;
        }
    }
    let mut distinct: Vec<&str> = rank.keys().copied().collect();
    distinct.sort_unstable();
    for (i, v) in distinct.iter().enumerate() {
        rank.insert(v, i as u32);
    }
    let ranks = values
        .iter()
        .map(|s| s.and_then(|s| rank.get(s).copied()))
        .collect();
    Some((ranks, distinct.len()))
}

/// Sorts rows by (cluster column, stream, time, id); rows without a cluster value come last.
pub(crate) fn sort_batch(batch: &RecordBatch) -> Result<Sorted> {
    let arrow = |context: &str| {
        let context = context.to_string();
        move |e| StoreError::Arrow { context, source: e }
    };
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| StoreError::Format {
                path: "record batch".into(),
                reason: format!("missing column {name}"),
            })
    };
    let streams = col(LOG_STREAM)?;
    let streams = streams
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| StoreError::Format {
            path: "record batch".into(),
            reason: format!("{LOG_STREAM} is not a string column"),
        })?;
    let mut keys = Vec::with_capacity(4);
    let cluster = cluster_column(batch).map(|(name, ranks)| {
        keys.push(SortColumn {
            values: Arc::new(ranks),
            options: Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
        });
        name
    });
    // No cap on streams: `ranks_upto` always answers (the fallback is never taken).
    let stream_ranks = ranks_upto(streams, usize::MAX)
        .map_or_else(|| UInt32Array::new_null(batch.num_rows()), |r| r.0);
    keys.extend([
        SortColumn {
            values: Arc::new(stream_ranks),
            options: None,
        },
        SortColumn {
            values: col(TIMESTAMP)?,
            options: None,
        },
        SortColumn {
            values: col(EVENT_ID)?,
            options: None,
        },
    ]);
    let idx: UInt32Array = lexsort_to_indices(&keys, None).map_err(arrow("sort rows"))?;
    let batch = take_record_batch(batch, &idx).map_err(arrow("reorder rows"))?;
    Ok(Sorted { batch, cluster })
}

/// Splits a batch by time window; returns `(window start, rows)` in window order.
pub(crate) fn split_by_window(
    batch: &RecordBatch,
    window_ms: i64,
) -> Result<Vec<(i64, RecordBatch)>> {
    let ts = schema::timestamps(batch)?;
    let mut windows: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (i, t) in ts.iter().enumerate() {
        let t = t.unwrap_or_default();
        windows
            .entry(t.div_euclid(window_ms) * window_ms)
            .or_default()
            .push(i as u32);
    }
    if windows.len() == 1 {
        let (w, _) = windows.into_iter().next().unwrap_or_default();
        return Ok(vec![(w, batch.clone())]);
    }
    windows
        .into_iter()
        .map(|(w, rows)| {
            take_record_batch(batch, &UInt32Array::from(rows))
                .map(|b| (w, b))
                .map_err(|e| StoreError::Arrow {
                    context: "split rows by window".into(),
                    source: e,
                })
        })
        .collect()
}

/// Summary of a batch about to become a segment.
pub(crate) struct BatchStats {
    pub min_ts: i64,
    pub max_ts: i64,
    pub min_id: i64,
    pub max_id: i64,
    pub rows: u64,
    pub raw_bytes: u64,
}

pub(crate) fn batch_stats(batch: &RecordBatch) -> Result<BatchStats> {
    let ts = schema::timestamps(batch)?;
    let ids = batch
        .column_by_name(EVENT_ID)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| StoreError::Format {
            path: "record batch".into(),
            reason: "missing @id".into(),
        })?;
    let msgs = batch
        .column_by_name(MESSAGE)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| StoreError::Format {
            path: "record batch".into(),
            reason: "missing @message".into(),
        })?;
    let min_max = |it: &mut dyn Iterator<Item = i64>| {
        it.fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (min_ts, max_ts) = min_max(&mut ts.iter().flatten());
    let (min_id, max_id) = min_max(&mut ids.iter().flatten());
    let raw_bytes = msgs.value_data().len() as u64;
    Ok(BatchStats {
        min_ts,
        max_ts,
        min_id,
        max_id,
        rows: batch.num_rows() as u64,
        raw_bytes,
    })
}

/// Encodes rows sorted by [`sort_batch`] (or a part of them) as a Parquet file in memory.
/// When they were clustered by a column, row groups end where its value changes (see
/// [`MIN_CLUSTER_ROW_GROUP_ROWS`]).
pub(crate) fn encode(
    batch: &RecordBatch,
    cluster: Option<&str>,
    zstd_level: i32,
    path: &str,
) -> Result<Bytes> {
    let perr = |e| StoreError::Parquet {
        path: path.to_string(),
        source: e,
    };
    // The part may have lost the column (all null in its window, dropped).
    let cluster = cluster.and_then(|c| {
        let values = text_column(batch, c)?;
        Some((batch.schema().index_of(c).ok()?, values))
    });
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut w = ArrowWriter::try_new(
        &mut buf,
        batch.schema(),
        Some(writer_properties(zstd_level, cluster.map(|c| c.0))),
    )
    .map_err(perr)?;
    match cluster {
        None => w.write(batch).map_err(perr)?,
        Some((_, values)) => {
            for (start, len) in runs(values) {
                let open = w.in_progress_rows();
                if open > 0
                    && (open >= MIN_CLUSTER_ROW_GROUP_ROWS || len >= MIN_CLUSTER_ROW_GROUP_ROWS)
                {
                    w.flush().map_err(perr)?;
                }
                w.write(&batch.slice(start, len)).map_err(perr)?;
                // The tail of a large kind (past the last full row group) is not shared
                // with the small kind after it.
                if len >= MIN_CLUSTER_ROW_GROUP_ROWS && w.in_progress_rows() > 0 {
                    w.flush().map_err(perr)?;
                }
            }
        }
    }
    w.close().map_err(perr)?;
    Ok(Bytes::from(buf))
}

/// The runs of equal values of a column: `(start, length)` in row order.
fn runs(values: &StringArray) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut prev: Option<Option<&str>> = None;
    for (i, v) in values.iter().enumerate() {
        match out.last_mut() {
            Some(run) if prev == Some(v) => run.1 += 1,
            _ => out.push((i, 1)),
        }
        prev = Some(v);
    }
    out
}

/// Opens a segment for reading (fetches its footer, and the page index if `options` ask).
pub(crate) async fn open(
    store: &Arc<dyn ObjectStore>,
    meta: &SegmentMeta,
    options: ArrowReaderOptions,
) -> Result<(SegmentReader, ArrowReaderMetadata)> {
    let mut reader = SegmentReader {
        store: store.clone(),
        path: meta.object_path(),
        size: meta.size_bytes,
    };
    let md = ArrowReaderMetadata::load_async(&mut reader, options)
        .await
        .map_err(|e| StoreError::Parquet {
            path: meta.path.clone(),
            source: e,
        })?;
    Ok((reader, md))
}

/// Reads a whole segment (all columns) into one batch, conformed to its own file schema.
pub(crate) async fn read_all(
    store: &Arc<dyn ObjectStore>,
    meta: &SegmentMeta,
) -> Result<Vec<RecordBatch>> {
    let (reader, md) = open(store, meta, ArrowReaderOptions::new()).await?;
    let perr = |e| StoreError::Parquet {
        path: meta.path.clone(),
        source: e,
    };
    ParquetRecordBatchStreamBuilder::new_with_metadata(reader, md)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(perr)?
        .try_collect()
        .await
        .map_err(perr)
}

/// Which rows and columns of a segment [`read_rows`] reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowRead<'a> {
    pub stream: Option<&'a str>,
    /// Inclusive.
    pub start_ms: Option<i64>,
    /// Exclusive.
    pub end_ms: Option<i64>,
    /// Only the rows with these `@id`s.
    pub ids: Option<Arc<std::collections::HashSet<i64>>>,
    /// Every system column; `false`: only `@timestamp`, `@id` and `@logStream` (no message
    /// page is fetched or decoded).
    pub messages: bool,
    /// Rows per batch (default 8,192).
    pub batch_rows: Option<usize>,
}

/// The rows of a segment that match a [`RowRead`], as a stream of batches of system columns:
/// row groups whose statistics rule them out are skipped, and within the others the stream,
/// time and ids are checked first, so only the pages of the other columns (the messages) that
/// hold matching rows are fetched and decoded (the page index says where they are). A stream's
/// rows lie in a few runs of each kind's row groups (rows are clustered by kind first).
pub(crate) async fn read_rows(
    store: &Arc<dyn ObjectStore>,
    meta: &SegmentMeta,
    r: &RowRead<'_>,
) -> Result<impl futures::Stream<Item = Result<RecordBatch>> + Send + use<>> {
    let (stream, start_ms, end_ms) = (r.stream, r.start_ms, r.end_ms);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let (reader, md) = open(store, meta, options).await?;
    let path = meta.path.clone();
    let perr = move |e| StoreError::Parquet {
        path: path.clone(),
        source: e,
    };
    let pq = md.metadata().clone();
    let schema_descr = pq.file_metadata().schema_descr();
    let col_idx = |name: &str| {
        (0..schema_descr.num_columns()).find(|&i| schema_descr.column(i).name() == name)
    };
    let stream_col = col_idx(LOG_STREAM);
    let ts_col = col_idx(TIMESTAMP);
    let id_col = col_idx(EVENT_ID);
    let id_range = r
        .ids
        .as_ref()
        .map(|ids| (ids.iter().min().copied(), ids.iter().max().copied()));
    let mut row_groups = Vec::new();
    for (i, rg) in pq.row_groups().iter().enumerate() {
        let keep_stream = match (stream, stream_col) {
            (Some(s), Some(c)) => match rg.column(c).statistics() {
                Some(Statistics::ByteArray(st)) => match (st.min_opt(), st.max_opt()) {
                    (Some(lo), Some(hi)) => lo.data() <= s.as_bytes() && s.as_bytes() <= hi.data(),
                    _ => true,
                },
                _ => true,
            },
            _ => true,
        };
        let keep_time = match ts_col {
            Some(c) => match rg.column(c).statistics() {
                Some(Statistics::Int64(st)) => match (st.min_opt(), st.max_opt()) {
                    (Some(lo), Some(hi)) => {
                        start_ms.is_none_or(|s| *hi >= s) && end_ms.is_none_or(|e| *lo < e)
                    }
                    _ => true,
                },
                _ => true,
            },
            None => true,
        };
        let keep_ids = match (id_range, id_col) {
            (Some((None, _) | (_, None)), _) => false,
            (Some((Some(want_lo), Some(want_hi))), Some(c)) => match rg.column(c).statistics() {
                Some(Statistics::Int64(st)) => match (st.min_opt(), st.max_opt()) {
                    (Some(lo), Some(hi)) => *hi >= want_lo && *lo <= want_hi,
                    _ => true,
                },
                _ => true,
            },
            _ => true,
        };
        if keep_stream && keep_time && keep_ids {
            row_groups.push(i);
        }
    }
    let names: &[&str] = if r.messages {
        &schema::SYSTEM_COLUMNS
    } else {
        &[TIMESTAMP, EVENT_ID, LOG_STREAM]
    };
    let roots: Vec<usize> = names.iter().filter_map(|n| col_idx(n)).collect();
    let mask = ProjectionMask::roots(schema_descr, roots);
    let mut predicates: Vec<Box<dyn ArrowPredicate>> = Vec::new();
    if let (Some(s), Some(c)) = (stream, stream_col) {
        let wanted = StringArray::new_scalar(s);
        predicates.push(Box::new(ArrowPredicateFn::new(
            ProjectionMask::roots(schema_descr, [c]),
            move |b: RecordBatch| eq(b.column(0), &wanted),
        )));
    }
    if let (true, Some(c)) = (start_ms.is_some() || end_ms.is_some(), ts_col) {
        predicates.push(Box::new(ArrowPredicateFn::new(
            ProjectionMask::roots(schema_descr, [c]),
            move |b: RecordBatch| {
                let ts = b.column(0).as_primitive::<TimestampMillisecondType>();
                Ok(ts
                    .iter()
                    .map(|t| {
                        t.map(|t| start_ms.is_none_or(|s| t >= s) && end_ms.is_none_or(|e| t < e))
                    })
                    .collect())
            },
        )));
    }
    if let (Some(ids), Some(c)) = (r.ids.clone(), id_col) {
        predicates.push(Box::new(ArrowPredicateFn::new(
            ProjectionMask::roots(schema_descr, [c]),
            move |b: RecordBatch| {
                let col = b
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                Ok(col.iter().map(|v| v.map(|v| ids.contains(&v))).collect())
            },
        )));
    }
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, md)
        .with_row_groups(row_groups)
        .with_projection(mask)
        .with_batch_size(r.batch_rows.unwrap_or(8 * 1024).max(1));
    if !predicates.is_empty() {
        builder = builder.with_row_filter(RowFilter::new(predicates));
    }
    let stream = builder.build().map_err(perr.clone())?;
    Ok(stream.map_err(perr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FieldType, GroupFields, arrow_schema};
    use datafusion::arrow::array::{ArrayRef, TimestampMillisecondArray};

    /// A batch of the system columns plus text columns `Type` and `stream`.
    fn batch(types: &[&str], streams: &[&str]) -> RecordBatch {
        let n = types.len();
        let mut fields = GroupFields::new();
        fields.insert("Type".into(), FieldType::Utf8);
        fields.insert("stream".into(), FieldType::Utf8);
        let schema = arrow_schema(&fields);
        let ts = || {
            Arc::new(TimestampMillisecondArray::from_iter_values(0..n as i64).with_timezone("UTC"))
                as ArrayRef
        };
        let text = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                TIMESTAMP | schema::INGESTION_TIME => ts(),
                LOG_STREAM => text((0..n).map(|i| format!("s{}", i % 3)).collect()),
                MESSAGE => text(vec!["{}".to_string(); n]),
                EVENT_ID => Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
                "Type" => text(types.iter().map(|t| t.to_string()).collect()),
                _ => text(streams.iter().map(|t| t.to_string()).collect()),
            })
            .collect();
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn row_group_types(bytes: Bytes) -> Vec<(String, String, i64)> {
        let md = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        let descr = md.file_metadata().schema_descr();
        let col = (0..descr.num_columns())
            .find(|&i| descr.column(i).name() == "Type")
            .unwrap();
        md.row_groups()
            .iter()
            .map(|rg| {
                let st = rg.column(col).statistics().unwrap();
                let s = |b: Option<&[u8]>| String::from_utf8(b.unwrap().to_vec()).unwrap();
                (s(st.min_bytes_opt()), s(st.max_bytes_opt()), rg.num_rows())
            })
            .collect()
    }

    #[test]
    fn a_large_kinds_tail_does_not_share_a_row_group_with_the_next_kind() {
        let big = 128 * 1024 + 100;
        let mut types = vec!["A"; big];
        types.extend(["B"; 10]);
        types.extend(["C"; 2000]);
        let streams = vec!["stdout"; types.len()];
        let sorted = sort_batch(&batch(&types, &streams)).unwrap();
        assert_eq!(sorted.cluster, Some("Type"));
        let bytes = encode(&sorted.batch, sorted.cluster, 1, "test").unwrap();
        let owned = |a: &str, b: &str, n: i64| (a.to_string(), b.to_string(), n);
        assert_eq!(
            row_group_types(bytes),
            vec![
                owned("A", "A", 128 * 1024),
                owned("A", "A", 100),
                owned("B", "B", 10),
                owned("C", "C", 2000),
            ]
        );
    }

    #[test]
    fn a_column_with_too_many_values_is_no_cluster_column() {
        // 65 kinds of `Type`: not an event kind; `stream` (2 values) is used instead.
        let types: Vec<String> = (0..650).map(|i| format!("t{}", i % 65)).collect();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let streams: Vec<&str> = (0..650)
            .map(|i| if i % 2 == 0 { "stdout" } else { "stderr" })
            .collect();
        let sorted = sort_batch(&batch(&types, &streams)).unwrap();
        assert_eq!(sorted.cluster, Some("stream"));
        // 64 kinds still cluster.
        let types: Vec<String> = (0..640).map(|i| format!("t{}", i % 64)).collect();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let sorted = sort_batch(&batch(&types, &streams[..640])).unwrap();
        assert_eq!(sorted.cluster, Some("Type"));
        // One value: no clustering by it.
        let sorted = sort_batch(&batch(&["x"; 10], &["stdout"; 10])).unwrap();
        assert_eq!(sorted.cluster, None);
    }
}
