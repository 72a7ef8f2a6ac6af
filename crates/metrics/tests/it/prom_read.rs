//! The Prometheus read path (issue 17): `series_matching` finds series by any predicate on
//! their identity, `raw_samples` gives every raw sample with its exact timestamp in an
//! inclusive range, merged from segments and the head, sorted by time — through flushes,
//! late data, compaction and a restart. Non-finite values never reach the store.

use kinsight_metrics::labels::series_labels;
use kinsight_metrics::{MetricStore, MetricStoreConfig};
use kinsight_model::emf::Datapoint;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;

fn point(ns: &str, name: &str, dims: &[(&str, &str)], ts: i64, values: &[f64]) -> Datapoint {
    Datapoint {
        namespace: ns.into(),
        name: name.into(),
        dimensions: dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp_ms: ts,
        values: values.to_vec(),
        unit: Some("Percent".into()),
        storage_resolution: 60,
    }
}

fn cpu(node: &str, ts: i64, values: &[f64]) -> Datapoint {
    point(
        "ContainerInsights",
        "node_cpu_utilization",
        &[("ClusterName", "prod"), ("NodeName", node)],
        ts,
        values,
    )
}

fn id_of(store: &MetricStore, node: &str) -> u32 {
    let found = store.series_matching(|s| {
        s.key.name == "node_cpu_utilization"
            && s.key.dimensions.get("NodeName").map(String::as_str) == Some(node)
    });
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].id
}

#[test]
fn raw_samples_are_exact_inclusive_and_merged_across_segments_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    // Seconds apart, odd milliseconds: the raw tier keeps them as they came.
    store.ingest(
        1,
        &[cpu("a", T0 + 1_001, &[10.0]), cpu("b", T0 + 1_001, &[1.0])],
    );
    store.ingest(2, &[cpu("a", T0 + 16_002, &[20.0, 21.0])]);
    assert_eq!(store.flush().unwrap(), Some(2));
    // Into the head: a newer sample, and a late one older than what was flushed.
    store.ingest(3, &[cpu("a", T0 + 31_003, &[30.0])]);
    store.ingest(4, &[cpu("a", T0 + 500, &[5.0])]);
    // The next day's partition.
    store.ingest(5, &[cpu("a", T0 + DAY + 7, &[40.0])]);
    let a = id_of(&store, "a");
    let all = vec![
        (T0 + 500, 5.0),
        (T0 + 1_001, 10.0),
        (T0 + 16_002, 20.0),
        (T0 + 16_002, 21.0),
        (T0 + 31_003, 30.0),
        (T0 + DAY + 7, 40.0),
    ];
    assert_eq!(store.raw_samples(a, T0, T0 + 2 * DAY).unwrap(), all);
    // Both ends are inclusive.
    assert_eq!(
        store.raw_samples(a, T0 + 1_001, T0 + 16_002).unwrap(),
        all[1..4].to_vec()
    );
    assert_eq!(
        store.raw_samples(a, T0 + 1_002, T0 + 16_001).unwrap(),
        vec![]
    );
    assert_eq!(
        store.raw_samples(a, T0 + 31_003, T0 + 31_003).unwrap(),
        vec![(T0 + 31_003, 30.0)]
    );
    assert_eq!(store.raw_samples(a, T0 + 10, T0).unwrap(), vec![]);
    let b = id_of(&store, "b");
    assert_eq!(
        store.raw_samples(b, i64::MIN, i64::MAX).unwrap(),
        vec![(T0 + 1_001, 1.0)]
    );
    // An id the store never gave out has no samples.
    assert_eq!(store.raw_samples(9_999, T0, T0 + DAY).unwrap(), vec![]);

    // Flushed, compacted (the partitions are long closed) and reopened: the same samples.
    assert_eq!(store.flush().unwrap(), Some(5));
    store.compact(T0 + 10 * DAY).unwrap();
    assert_eq!(store.raw_samples(a, T0, T0 + 2 * DAY).unwrap(), all);
    drop(store);
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(store.raw_samples(a, T0, T0 + 2 * DAY).unwrap(), all);
    assert_eq!(id_of(&store, "a"), a);
}

#[test]
fn series_matching_takes_any_predicate_and_labels_follow_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    store.ingest(
        1,
        &[
            cpu("a", T0, &[1.0]),
            cpu("b", T0, &[1.0]),
            point(
                "Prometheus",
                "up",
                &[("job", "api"), ("instance", "10.0.0.1:9100")],
                T0,
                &[1.0],
            ),
        ],
    );
    let all = store.series_matching(|_| true);
    assert_eq!(all.len(), 3);
    let labels: Vec<_> = all.iter().map(|s| series_labels(&s.key)).collect();
    assert!(labels.contains(&vec![
        ("__name__".to_string(), "up".to_string()),
        ("instance".to_string(), "10.0.0.1:9100".to_string()),
        ("job".to_string(), "api".to_string()),
    ]));
    let prod = store.series_matching(|s| {
        series_labels(&s.key)
            .iter()
            .any(|(k, v)| k == "cloudwatch_namespace" && v == "ContainerInsights")
    });
    assert_eq!(prod.len(), 2);
    assert!(store.series_matching(|s| s.key.name == "nope").is_empty());
}

/// What the store does with NaN (Prometheus stale markers, `0x7ff0000000000002`) and
/// infinities: ingest drops them (EMF's JSON numbers are always finite; a non-finite value
/// would poison the rollups' sums forever), so they never reach storage or the PromQL read.
/// The segment encoding itself is bit-exact (the block round-trip property test compares
/// NaN payloads), so a later ingest path that keeps stale markers in the raw tier only
/// needs to skip them in the rollups.
#[test]
fn non_finite_values_are_dropped_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let out = store.ingest(
        1,
        &[cpu(
            "a",
            T0,
            &[1.0, stale, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 2.0],
        )],
    );
    assert_eq!(out.samples, 2);
    let a = id_of(&store, "a");
    assert_eq!(
        store.raw_samples(a, T0, T0).unwrap(),
        vec![(T0, 1.0), (T0, 2.0)]
    );
    store.flush().unwrap();
    assert_eq!(
        store.raw_samples(a, T0, T0).unwrap(),
        vec![(T0, 1.0), (T0, 2.0)]
    );
}

#[test]
fn raw_overlapping_is_exact_in_the_head_and_by_segment_index_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    store.ingest(
        1,
        &[cpu("a", T0 + 1_000, &[1.0]), cpu("a", T0 + 9_000, &[1.0])],
    );
    store.ingest(2, &[cpu("b", T0 + DAY + 5_000, &[1.0])]);
    let (a, b) = (id_of(&store, "a"), id_of(&store, "b"));
    let ids = [a, b, 9_999];
    assert_eq!(
        store.raw_overlapping(&ids, T0, T0 + 1_000),
        vec![true, false, false]
    );
    assert_eq!(
        store.raw_overlapping(&ids, T0 + 1_001, T0 + 8_999),
        vec![false, false, false]
    );
    assert_eq!(
        store.raw_overlapping(&ids, T0 + 9_000, T0 + 2 * DAY),
        vec![true, true, false]
    );
    assert_eq!(store.raw_overlapping(&ids, T0 + 10, T0), vec![false; 3]);
    store.flush().unwrap();
    // From the segments' indexes: first and last sample of the series per partition.
    assert_eq!(
        store.raw_overlapping(&ids, T0 + 1_001, T0 + 8_999),
        vec![true, false, false]
    );
    assert_eq!(
        store.raw_overlapping(&ids, T0 + 9_001, T0 + DAY),
        vec![false, false, false]
    );
    assert_eq!(
        store.raw_overlapping(&ids, T0 + DAY + 5_000, T0 + DAY + 5_000),
        vec![false, true, false]
    );
}

/// Remote-write and OTLP samples (`ingest_samples`): the `Prometheus` namespace, every value
/// bit for bit in the raw tier (NaN and staleness markers too) through flush, compaction and
/// a restart, while CloudWatch statistics and rollups see only the finite ones.
#[test]
fn prometheus_samples_keep_nan_and_staleness_markers_for_promql_only() {
    use kinsight_metrics::samples::SampleSeries;
    use kinsight_metrics::{MetricQuery, SeriesKey, SeriesSelector, Statistic};
    const STALE: u64 = 0x7ff0000000000002;
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    let series = |samples: Vec<(i64, f64)>| SampleSeries {
        name: "queue_depth".into(),
        labels: [("job".to_string(), "worker".to_string())].into(),
        samples,
    };
    let out = store.ingest_samples(
        1,
        &[series(vec![
            (T0 + 1_000, 4.0),
            (T0 + 2_000, f64::NAN),
            (T0 + 3_000, 8.0),
            (T0 + 4_000, f64::from_bits(STALE)),
        ])],
    );
    assert_eq!((out.samples, out.rejected), (4, 0));
    // The same sequence number again (a replay) changes nothing.
    assert!(store.ingest_samples(1, &[series(vec![(T0, 1.0)])]).skipped);
    let found = store.series_matching(|s| s.key.name == "queue_depth");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key.namespace, "Prometheus");
    assert_eq!(
        series_labels(&found[0].key),
        vec![
            ("__name__".to_string(), "queue_depth".to_string()),
            ("job".to_string(), "worker".to_string())
        ]
    );
    let id = found[0].id;
    let bits = |store: &MetricStore| -> Vec<(i64, u64)> {
        store
            .raw_samples(id, T0, T0 + DAY)
            .unwrap()
            .into_iter()
            .map(|(t, v)| (t, v.to_bits()))
            .collect()
    };
    let want = vec![
        (T0 + 1_000, 4.0f64.to_bits()),
        (T0 + 2_000, f64::NAN.to_bits()),
        (T0 + 3_000, 8.0f64.to_bits()),
        (T0 + 4_000, STALE),
    ];
    let key = SeriesKey::new("Prometheus", "queue_depth", [("job", "worker")]);
    let stats = |store: &MetricStore, period_s: u32| -> Vec<Option<f64>> {
        let mut q = MetricQuery {
            selector: SeriesSelector::metric(&key),
            statistic: Statistic::Sum,
            period_s,
            start_ms: T0,
            end_ms: T0 + 60_000,
            max_series: 10,
        };
        let sum = store.query(&q).unwrap().series[0].values[0];
        q.statistic = Statistic::SampleCount;
        let count = store.query(&q).unwrap().series[0].values[0];
        q.statistic = Statistic::Percentile(50.0);
        let p50 = store.query(&q).unwrap().series[0].values[0];
        vec![sum, count, p50]
    };
    let finite_only = vec![Some(12.0), Some(2.0), Some(4.0)];
    assert_eq!(bits(&store), want);
    // A 60-s period (raw tier) and a 1-h period (the hour rollup).
    assert_eq!(stats(&store, 60), finite_only);
    assert_eq!(stats(&store, 3_600)[..2], finite_only[..2]);
    store.flush().unwrap();
    store.compact(T0 + 10 * DAY).unwrap();
    drop(store);
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(bits(&store), want);
    assert_eq!(stats(&store, 60), finite_only);
}
