//! Flushes write zstd Parquet segments per group and hour window, sorted, with statistics and
//! typed columns flattened from the JSON messages.

use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use kinsight_store::Store;
use kinsight_store::schema::{self, FieldType};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_writes_sorted_zstd_parquet_with_typed_columns_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let hour = now_ms().div_euclid(HOUR_MS) * HOUR_MS;
    // Two windows of /app (this hour and the previous), one of /host; streams interleaved.
    let mut events = Vec::new();
    for i in 0..400usize {
        let ts = hour - HOUR_MS + (i as i64) * 17_000 % (2 * HOUR_MS - 1);
        let ts = ts.min(now_ms());
        events.push(ev("/app", &format!("pod-{}", i % 3), ts, &k8s_line(i)));
    }
    events.push(ev("/host", "node-1", hour, "kernel: plain text line"));
    ingest(&store, None, events.clone()).await;
    let report = store.flush().await.unwrap();
    assert_eq!(report.rows, 401);
    assert!(report.checkpoint_seq > 0);

    let scan = store.scan("/app", None, None).await.unwrap();
    assert!(scan.memory.is_empty(), "everything flushed");
    let windows: Vec<i64> = scan.segments.iter().map(|s| s.window_start_ms).collect();
    assert_eq!(
        windows,
        vec![hour - HOUR_MS, hour],
        "one segment per window"
    );
    assert_eq!(scan.segments.iter().map(|s| s.rows).sum::<u64>(), 400);
    for s in &scan.segments {
        assert!(s.min_ts >= s.window_start_ms && s.max_ts < s.window_start_ms + HOUR_MS);
    }
    // Typed, dotted columns in the group schema.
    let ty = |n: &str| scan.schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("kubernetes.pod_name"), DataType::Utf8);
    assert_eq!(ty("log_processed.status"), DataType::Int64);
    assert_eq!(ty(schema::TIMESTAMP), schema::timestamp_type());
    assert_eq!(
        store.group_fields("/app").unwrap()["log_processed.latency_ms"],
        FieldType::Int64
    );

    // The files themselves: zstd, statistics, sorted by stream then time.
    let root = dir.path().join("objects");
    for s in &scan.segments {
        let file = std::fs::File::open(root.join(&s.path)).unwrap();
        assert_eq!(file.metadata().unwrap().len(), s.size_bytes);
        let reader = SerializedFileReader::new(file).unwrap();
        let md = reader.metadata();
        let rg = md.row_group(0);
        for c in rg.columns() {
            assert!(
                matches!(c.compression(), Compression::ZSTD(_)),
                "{:?}",
                c.column_path()
            );
        }
        let names: Vec<_> = rg
            .columns()
            .iter()
            .map(|c| c.column_path().string())
            .collect();
        let stream_col = names.iter().position(|n| n == schema::LOG_STREAM).unwrap();
        assert!(rg.column(stream_col).statistics().is_some());
    }
    let batches = {
        let b = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(root.join(&scan.segments[1].path)).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        b.collect::<Result<Vec<_>, _>>().unwrap()
    };
    assert!(
        row_keys(&batches, &[schema::LOG_STREAM]).is_sorted(),
        "rows sorted by stream, then time"
    );
    for b in &batches {
        let msgs = b.column_by_name(schema::MESSAGE).unwrap();
        assert_eq!(msgs.null_count(), 0, "raw message kept");
    }

    // A group of plain text has only system columns.
    let host = store.scan("/host", None, None).await.unwrap();
    assert_eq!(host.schema.fields().len(), schema::SYSTEM_COLUMNS.len());

    // Reopen: manifest and fields come back from the checkpoint.
    drop(store);
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let again = store.scan("/app", None, None).await.unwrap();
    assert_eq!(again.segments, scan.segments);
    assert_eq!(again.schema, scan.schema);
    assert_eq!(all_events(&store, "/app", None).await.len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_types_widen_across_segments_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let t = now_ms();
    ingest(
        &store,
        None,
        vec![ev("/g", "s", t, r#"{"code":200,"ratio":1}"#)],
    )
    .await;
    store.flush().await.unwrap();
    ingest(
        &store,
        None,
        vec![ev("/g", "s", t + 1, r#"{"code":"E42","ratio":0.5}"#)],
    )
    .await;
    let scan = store.scan("/g", None, None).await.unwrap();
    let ty = |n: &str| scan.schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("code"), DataType::Utf8, "number then string: text");
    assert_eq!(ty("ratio"), DataType::Float64, "int then float: float");
    // The in-memory row is conformed to the group schema.
    assert_eq!(scan.memory.len(), 1);
    let m = &scan.memory[0];
    assert_eq!(m.schema(), scan.schema);
    let code = m
        .column_by_name("code")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(code.value(0), "E42");
    // The segment keeps its narrower type; casting it reads "200".
    let seg = &scan.segments[0];
    let file = std::fs::File::open(dir.path().join("objects").join(&seg.path)).unwrap();
    let b =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
    let code = b.column_by_name("code").unwrap();
    assert_eq!(code.data_type(), &DataType::Int64);
    assert_eq!(
        code.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
        200
    );
    let conformed = schema::conform(&b, &scan.schema).unwrap();
    let code = conformed
        .column_by_name("code")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(code.value(0), "200");
}

/// Each row's values of the text columns `cols`, then its timestamp, in file order.
fn row_keys(
    batches: &[datafusion::arrow::array::RecordBatch],
    cols: &[&str],
) -> Vec<(Vec<String>, i64)> {
    let mut keys = Vec::new();
    for b in batches {
        let text: Vec<&StringArray> = cols
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
            })
            .collect();
        let ts = schema::timestamps(b).unwrap();
        for i in 0..b.num_rows() {
            let values = text.iter().map(|a| a.value(i).to_string()).collect();
            keys.push((values, ts.value(i)));
        }
    }
    keys
}

/// The index of a column in a Parquet file's schema.
fn column_index(md: &datafusion::parquet::file::metadata::ParquetMetaData, name: &str) -> usize {
    let descr = md.file_metadata().schema_descr();
    (0..descr.num_columns())
        .find(|&i| descr.column(i).name() == name)
        .unwrap()
}

/// The rows of one segment, read back in file order, and its Parquet metadata.
fn segment_file(
    dir: &std::path::Path,
    path: &str,
) -> (
    Vec<datafusion::arrow::array::RecordBatch>,
    std::sync::Arc<datafusion::parquet::file::metadata::ParquetMetaData>,
) {
    let file = std::fs::File::open(dir.join("objects").join(path)).unwrap();
    let b =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap();
    let md = b.metadata().clone();
    let batches = b.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (batches, md)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_clustered_by_event_type_with_a_row_group_per_large_type() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let hour = now_ms().div_euclid(HOUR_MS) * HOUR_MS;
    // Performance-like events of three nodes, types interleaved as an agent sends them:
    // two large kinds, one middling, two tiny cluster-level ones.
    let kinds = [
        ("Container", 3000),
        ("Pod", 2000),
        ("Node", 1500),
        ("ClusterService", 20),
        ("Cluster", 10),
    ];
    let mut events = Vec::new();
    for (kind, n) in kinds {
        for i in 0..n {
            let ts = (hour + (i as i64 * 997) % HOUR_MS).min(now_ms());
            let msg = format!(r#"{{"Type":"{kind}","NodeName":"node-{}","v":{i}}}"#, i % 3);
            events.push(ev("/perf", &format!("node-{}", i % 3), ts, &msg));
        }
    }
    // Shuffle deterministically so the input order says nothing.
    let len = events.len();
    for i in 0..len {
        events.swap(i, (i * 7919 + 13) % len);
    }
    ingest(&store, None, events).await;
    store.flush().await.unwrap();

    let scan = store.scan("/perf", None, None).await.unwrap();
    assert_eq!(scan.segments.len(), 1);
    let (batches, md) = segment_file(dir.path(), &scan.segments[0].path);
    // Sorted by (Type, stream, time).
    let keys = row_keys(&batches, &["Type", schema::LOG_STREAM]);
    assert!(keys.is_sorted(), "rows sorted by Type, stream, time");
    let rows = keys.len();
    assert_eq!(rows, 6530);
    // Row groups: the two tiny kinds together, then one per large kind; each recorded with
    // its Type range, so a filter on Type skips the others by statistics alone.
    let type_col = column_index(&md, "Type");
    let ranges: Vec<(String, String, i64)> = md
        .row_groups()
        .iter()
        .map(|rg| {
            let st = rg.column(type_col).statistics().unwrap();
            let s = |b: Option<&[u8]>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            (s(st.min_bytes_opt()), s(st.max_bytes_opt()), rg.num_rows())
        })
        .collect();
    let owned = |a: &str, b: &str, n: i64| (a.to_string(), b.to_string(), n);
    assert_eq!(
        ranges,
        vec![
            owned("Cluster", "ClusterService", 30),
            owned("Container", "Container", 3000),
            owned("Node", "Node", 1500),
            owned("Pod", "Pod", 2000),
        ]
    );
    let sorting = md.row_group(0).sorting_columns().unwrap();
    assert_eq!(
        sorting[0].column_idx as usize, type_col,
        "Type is the first sort key"
    );

    // A group whose Type has one value is not clustered by it: sorted by stream first.
    let mut events = Vec::new();
    for i in 0..50usize {
        let msg = r#"{"Type":"Node","v":1}"#;
        events.push(ev(
            "/one",
            &format!("s{}", i % 2),
            hour + (49 - i as i64),
            msg,
        ));
    }
    ingest(&store, None, events).await;
    store.flush().await.unwrap();
    let scan = store.scan("/one", None, None).await.unwrap();
    let (batches, md) = segment_file(dir.path(), &scan.segments[0].path);
    let streams = batches[0]
        .column_by_name(schema::LOG_STREAM)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(streams.value(0), "s0");
    assert_eq!(streams.value(49), "s1");
    assert_eq!(md.row_group(0).sorting_columns().unwrap()[0].column_idx, 2);
}

/// A flush spanning two windows decides the cluster column once, over all its rows: each
/// window's segment records the order its rows really have, even when the column has one value
/// there and another candidate column (`stream`) has two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_window_records_the_order_the_flush_sorted_by() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()), vec![]).await.unwrap();
    let hour = now_ms().div_euclid(HOUR_MS) * HOUR_MS;
    let mut events = Vec::new();
    for i in 0..40i64 {
        let (ts, kind) = if i % 2 == 0 {
            (hour - HOUR_MS + i, "A")
        } else {
            (hour + i.min(now_ms() - hour), "B")
        };
        let out = if i % 4 < 2 { "stdout" } else { "stderr" };
        let msg = format!(r#"{{"Type":"{kind}","stream":"{out}"}}"#);
        events.push(ev("/mixed", &format!("s{}", i % 3), ts, &msg));
    }
    ingest(&store, None, events).await;
    store.flush().await.unwrap();
    let scan = store.scan("/mixed", None, None).await.unwrap();
    assert_eq!(scan.segments.len(), 2);
    for s in &scan.segments {
        let (batches, md) = segment_file(dir.path(), &s.path);
        let type_col = column_index(&md, "Type");
        let sorting = md.row_group(0).sorting_columns().unwrap();
        let cols: Vec<usize> = sorting.iter().map(|c| c.column_idx as usize).collect();
        assert_eq!(cols, vec![type_col, 2, 0, 4], "Type, stream, time, id");
        assert!(
            row_keys(&batches, &[schema::LOG_STREAM]).is_sorted(),
            "in recorded order"
        );
    }
}
