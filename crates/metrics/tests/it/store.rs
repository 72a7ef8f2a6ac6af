//! The store's persistence contract: replay-safety by sequence number, restarts, crash
//! leftovers, compaction, retention, the cardinality guard, listing and query validation.

use crate::events::{CLUSTER, pod_events};
use kinsight_metrics::{
    DimensionMatcher, MetricQuery, MetricStore, MetricStoreConfig, MetricsError, Retention,
    SeriesKey, SeriesSelector, SeriesUsage, Statistic, Tier,
};
use kinsight_model::LogEvent;
use kinsight_model::emf::Datapoint;
use std::collections::BTreeMap;
use std::fs;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;

fn cluster_query(
    metric: &str,
    stat: Statistic,
    period_s: u32,
    start: i64,
    end: i64,
) -> MetricQuery {
    MetricQuery {
        selector: SeriesSelector {
            namespace: Some("ContainerInsights".into()),
            metric_name: Some(metric.into()),
            dimensions: vec![DimensionMatcher::exact("ClusterName", CLUSTER)],
            exact_dimensions: true,
        },
        statistic: stat,
        period_s,
        start_ms: start,
        end_ms: end,
        max_series: 10,
    }
}

/// Total SampleCount of cluster-level pod CPU over [start, end) in one-hour periods.
fn total_samples(store: &MetricStore, start: i64, end: i64) -> f64 {
    let r = store
        .query(&cluster_query(
            "pod_cpu_utilization",
            Statistic::SampleCount,
            3600,
            start,
            end,
        ))
        .unwrap();
    r.series
        .first()
        .map_or(0.0, |s| s.values.iter().flatten().sum())
}

fn point(ns: &str, name: &str, dims: &[(&str, &str)], ts: i64, v: f64) -> Datapoint {
    Datapoint {
        namespace: ns.into(),
        name: name.into(),
        dimensions: dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp_ms: ts,
        values: vec![v],
        unit: Some("Percent".into()),
        storage_resolution: 60,
    }
}

#[test]
fn replay_after_restart_counts_every_batch_once() {
    let events = pod_events(1, T0, 3_600_000, 60_000, 5, 2);
    let batches: Vec<&[LogEvent]> = events.chunks(5).collect(); // 60 batches, one per minute
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
        for (i, b) in batches[..40].iter().enumerate() {
            store.ingest_events(i as u64 + 1, b);
        }
        assert_eq!(store.flush().unwrap(), Some(40));
        // Batches 41..50 reach memory only; dropping the store without a flush is a crash
        // as far as they are concerned.
        for (i, b) in batches[40..50].iter().enumerate() {
            store.ingest_events(i as u64 + 41, b);
        }
        assert_eq!(store.ingested_seq(), Some(50));
        assert_eq!(store.persisted_seq(), Some(40));
    }
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(store.persisted_seq(), Some(40));
    assert_eq!(total_samples(&store, T0, T0 + 3_600_000), 200.0);
    // The server replays its whole WAL: 1..40 are skipped, 41..60 applied.
    let mut skipped = 0;
    for (i, b) in batches.iter().enumerate() {
        if store.ingest_events(i as u64 + 1, b).skipped {
            skipped += 1;
        }
    }
    assert_eq!(skipped, 40);
    assert_eq!(
        total_samples(&store, T0, T0 + 3_600_000),
        events.len() as f64
    );
    // Replaying again (a second restart without flush) changes nothing either.
    for (i, b) in batches.iter().enumerate() {
        assert!(store.ingest_events(i as u64 + 1, b).skipped);
    }
    assert_eq!(
        total_samples(&store, T0, T0 + 3_600_000),
        events.len() as f64
    );
    store.flush().unwrap();
    drop(store);
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert_eq!(store.persisted_seq(), Some(60));
    assert_eq!(
        total_samples(&store, T0, T0 + 3_600_000),
        events.len() as f64
    );
}

#[test]
fn batches_without_metrics_still_advance_the_persisted_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    let plain = LogEvent::new("/kinsight/c/application", "s", T0, "GET /healthz 200");
    let out = store.ingest_events(7, &[plain]);
    assert_eq!((out.datapoints, out.skipped), (0, false));
    assert_eq!(store.flush().unwrap(), Some(7));
    let broken = LogEvent::new(
        "/kinsight/c/performance",
        "s",
        T0,
        r#"{"CloudWatchMetrics": 5}"#,
    );
    assert_eq!(store.ingest_events(8, &[broken]).emf_errors, 1);
    assert_eq!(store.stats().emf_errors, 1);
}

#[test]
fn crash_leftovers_are_removed_and_damage_is_reported_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
        store.ingest_events(1, &pod_events(2, T0, 600_000, 60_000, 2, 1));
        store.flush().unwrap();
    }
    // What an interrupted flush or compaction leaves: a temporary file and a finished
    // segment the manifest never listed.
    let stray = dir.path().join("segments/raw/000000009999.kms");
    let tmp = dir.path().join("segments/minute/000000009998.tmp");
    fs::write(&stray, b"half-written").unwrap();
    fs::write(&tmp, b"x").unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    assert!(!stray.exists() && !tmp.exists());
    assert_eq!(total_samples(&store, T0, T0 + 600_000), 20.0);
    drop(store);

    let manifest = dir.path().join("MANIFEST");
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, text.replace("\"version\": 1", "\"version\": 99")).unwrap();
    let err = MetricStore::open(dir.path(), MetricStoreConfig::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, MetricsError::UnsupportedVersion { version: 99, .. }),
        "{err}"
    );
    fs::write(&manifest, "{not json").unwrap();
    let err = MetricStore::open(dir.path(), MetricStoreConfig::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("MANIFEST"), "{err}");
}

#[test]
fn compaction_and_late_data_keep_every_number() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MetricStoreConfig::default();
    let store = MetricStore::open(dir.path(), cfg.clone()).unwrap();
    let events = pod_events(3, T0, 2 * 3_600_000, 60_000, 4, 2);
    // One flush per batch: many small segments.
    for (i, b) in events.chunks(16).enumerate() {
        store.ingest_events(i as u64 + 1, b);
        store.flush().unwrap();
    }
    // A late sample for the first minute, after its segment was written.
    let late = point(
        "ContainerInsights",
        "pod_cpu_utilization",
        &[("ClusterName", CLUSTER)],
        T0 + 5,
        1000.0,
    );
    store.ingest(1000, &[late]);
    let before: Vec<_> = [
        Statistic::Average,
        Statistic::Maximum,
        Statistic::SampleCount,
        Statistic::Percentile(90.0),
    ]
    .into_iter()
    .map(|s| {
        store
            .query(&cluster_query(
                "pod_cpu_utilization",
                s,
                60,
                T0,
                T0 + 2 * 3_600_000,
            ))
            .unwrap()
    })
    .collect();
    assert_eq!(
        before[1].series[0].values[0],
        Some(1000.0),
        "late sample counted"
    );
    let segments_before = store.stats().segments;
    // While the partition is current: size-tiered merges only.
    let merges = store.compact(T0 + 2 * 3_600_000).unwrap();
    assert!(merges > 0);
    store.flush().unwrap();
    let mid = store.stats().segments;
    assert!(mid < segments_before, "{mid} < {segments_before}");
    // Once the partitions are closed: one file per (tier, partition).
    store.compact(T0 + 40 * DAY).unwrap();
    assert_eq!(store.stats().segments, 3);
    for (i, s) in [
        Statistic::Average,
        Statistic::Maximum,
        Statistic::SampleCount,
        Statistic::Percentile(90.0),
    ]
    .into_iter()
    .enumerate()
    {
        let after = store
            .query(&cluster_query(
                "pod_cpu_utilization",
                s,
                60,
                T0,
                T0 + 2 * 3_600_000,
            ))
            .unwrap();
        assert_eq!(after.series, before[i].series, "{s}");
    }
    drop(store);
    let store = MetricStore::open(dir.path(), cfg).unwrap();
    let again = store
        .query(&cluster_query(
            "pod_cpu_utilization",
            Statistic::Average,
            60,
            T0,
            T0 + 2 * 3_600_000,
        ))
        .unwrap();
    assert_eq!(again.series, before[0].series);
}

#[test]
fn retention_drops_raw_first_and_rollups_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MetricStoreConfig {
        retention: Retention {
            raw_ms: 2 * DAY,
            minute_ms: 10 * DAY,
            hour_ms: 100 * DAY,
        },
        ..Default::default()
    };
    let store = MetricStore::open(dir.path(), cfg).unwrap();
    store.ingest_events(1, &pod_events(4, T0, 3_600_000, 60_000, 3, 1));
    store.flush().unwrap();
    let q = |stat, period| cluster_query("pod_cpu_utilization", stat, period, T0, T0 + 3_600_000);
    let avg_minute = store.query(&q(Statistic::Average, 60)).unwrap();
    assert_eq!(avg_minute.tier, Tier::Minute);
    let avg_hour = store.query(&q(Statistic::Average, 3600)).unwrap();
    assert_eq!(avg_hour.tier, Tier::Hour);

    // Five days later the raw samples are gone, the rollups are not.
    assert_eq!(store.apply_retention(T0 + 5 * DAY).unwrap(), 1);
    assert_eq!(
        store.query(&q(Statistic::Average, 60)).unwrap().series,
        avg_minute.series
    );
    let p = store.query(&q(Statistic::Percentile(50.0), 60)).unwrap();
    assert!(p.series[0].values.iter().all(Option::is_none));
    assert!(
        !p.messages.is_empty(),
        "the answer says why percentiles are empty"
    );
    // Sub-minute periods need raw samples too.
    assert!(
        store.query(&q(Statistic::Average, 10)).unwrap().series[0]
            .values
            .iter()
            .all(Option::is_none)
    );
    // Twenty days later only the hourly rollup is left.
    store.apply_retention(T0 + 20 * DAY).unwrap();
    assert!(
        store.query(&q(Statistic::Average, 60)).unwrap().series[0]
            .values
            .iter()
            .all(Option::is_none)
    );
    assert_eq!(
        store.query(&q(Statistic::Average, 3600)).unwrap().series,
        avg_hour.series
    );
    assert_eq!(store.stats().segments, 1);
}

#[test]
fn cardinality_guard_drops_new_series_counts_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MetricStoreConfig {
        max_series_per_namespace: 5,
        ..Default::default()
    };
    let store = MetricStore::open(dir.path(), cfg.clone()).unwrap();
    let points: Vec<Datapoint> = (0..8)
        .map(|i| {
            point(
                "App",
                "latency",
                &[("RequestId", &format!("r{i}"))],
                T0,
                1.0,
            )
        })
        .chain([point("Other", "latency", &[], T0, 1.0)])
        .collect();
    let out = store.ingest(1, &points);
    assert_eq!((out.datapoints, out.rejected), (6, 3));
    let card = store.cardinality();
    let app = card.iter().find(|c| c.namespace == "App").unwrap();
    assert_eq!((app.series, app.limit, app.rejected_datapoints), (5, 5, 3));
    // Known series keep flowing.
    let out = store.ingest(2, &points[..2]);
    assert_eq!(out.rejected, 0);
    store.flush().unwrap();
    drop(store);
    let store = MetricStore::open(dir.path(), cfg).unwrap();
    let out = store.ingest(3, &points);
    assert_eq!(out.rejected, 3, "the limit still holds after a restart");
    assert_eq!(
        store
            .list_metrics(
                &SeriesSelector {
                    namespace: Some("App".into()),
                    ..Default::default()
                },
                100
            )
            .len(),
        5
    );
}

/// Issue 15, item 12: the store-wide cap counts series of every namespace; past it new series
/// are dropped and counted while known series keep their datapoints, across a restart.
#[test]
fn the_store_wide_series_cap_spans_namespaces_and_spares_known_series() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MetricStoreConfig {
        max_series: 4,
        ..Default::default()
    };
    let store = MetricStore::open(dir.path(), cfg.clone()).unwrap();
    let series = |ns: &str, i: usize, ts: i64| point(ns, "m", &[("K", &format!("v{i}"))], ts, 1.0);
    let first: Vec<Datapoint> = (0..3)
        .map(|i| series("A", i, T0))
        .chain((0..2).map(|i| series("B", i, T0)))
        .collect();
    let out = store.ingest(1, &first);
    assert_eq!((out.datapoints, out.rejected), (4, 1));
    assert_eq!(
        store.series_usage(),
        SeriesUsage {
            count: 4,
            limit: 4,
            rejected: 1
        }
    );
    // Known series flow on; a new one in a third namespace is refused.
    let out = store.ingest(2, &[series("A", 0, T0 + 60_000), series("C", 0, T0)]);
    assert_eq!((out.datapoints, out.rejected), (1, 1));
    store.flush().unwrap();
    drop(store);
    let store = MetricStore::open(dir.path(), cfg).unwrap();
    assert_eq!(store.series_usage().count, 4);
    let out = store.ingest(3, &[series("B", 0, T0 + 60_000), series("B", 5, T0)]);
    assert_eq!(
        (out.datapoints, out.rejected),
        (1, 1),
        "the cap holds after a restart"
    );
    let q = MetricQuery {
        selector: SeriesSelector::metric(&SeriesKey::new("A", "m", [("K", "v0")])),
        statistic: Statistic::SampleCount,
        period_s: 60,
        start_ms: T0,
        end_ms: T0 + 120_000,
        max_series: 10,
    };
    let res = store.query(&q).unwrap();
    assert_eq!(res.series[0].values, vec![Some(1.0), Some(1.0)]);
}

#[test]
fn list_metrics_filters_like_listmetrics() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    store.ingest_events(1, &pod_events(5, T0, 120_000, 60_000, 6, 2));
    let sel = |name: Option<&str>, dims: Vec<DimensionMatcher>| SeriesSelector {
        namespace: Some("ContainerInsights".into()),
        metric_name: name.map(str::to_string),
        dimensions: dims,
        exact_dimensions: false,
    };
    let all = store.list_metrics(&sel(None, vec![]), 10_000);
    // 6 pods × 3 pod-level metrics + restarts per pod, plus service/namespace/cluster sets.
    assert!(all.len() > 30, "{}", all.len());
    let cpu_pods = store.list_metrics(
        &sel(
            Some("pod_cpu_utilization"),
            vec![DimensionMatcher::any("PodName")],
        ),
        100,
    );
    assert_eq!(cpu_pods.len(), 6);
    assert!(
        cpu_pods
            .iter()
            .all(|m| m.unit.as_deref() == Some("Percent"))
    );
    let ns0 = store.list_metrics(
        &sel(
            Some("pod_cpu_utilization"),
            vec![DimensionMatcher::exact("Namespace", "ns-0")],
        ),
        100,
    );
    // 3 pods, the namespace set and service sets of ns-0.
    assert!(ns0.iter().all(|m| m.key.dimensions["Namespace"] == "ns-0"));
    assert!(ns0.len() >= 4);
    assert_eq!(store.list_metrics(&sel(None, vec![]), 3).len(), 3);
    let key = SeriesKey::new(
        "ContainerInsights",
        "pod_cpu_utilization",
        [("ClusterName", CLUSTER)],
    );
    let slots = store.aggregate(&key, T0, 60_000, 2, false).unwrap();
    assert_eq!(slots.iter().map(|s| s.count).sum::<u64>(), 12);
    let unknown = SeriesKey::new(
        "ContainerInsights",
        "nope",
        BTreeMap::<String, String>::new(),
    );
    assert!(
        store
            .aggregate(&unknown, T0, 60_000, 2, false)
            .unwrap()
            .iter()
            .all(|s| s.count == 0)
    );
}

#[test]
fn invalid_queries_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    let base = cluster_query(
        "pod_cpu_utilization",
        Statistic::Average,
        60,
        T0,
        T0 + 3_600_000,
    );
    let err = |q: MetricQuery| store.query(&q).unwrap_err().to_string();
    assert!(
        err(MetricQuery {
            period_s: 0,
            ..base.clone()
        })
        .contains("period 0 s is out of range")
    );
    assert!(
        err(MetricQuery {
            period_s: 86_401,
            ..base.clone()
        })
        .contains("out of range")
    );
    assert!(
        err(MetricQuery {
            end_ms: T0,
            ..base.clone()
        })
        .contains("must be after")
    );
    assert!(
        err(MetricQuery {
            period_s: 1,
            end_ms: T0 + 2 * DAY,
            ..base.clone()
        })
        .contains("at most 100800")
    );
    let mut no_ns = base.clone();
    no_ns.selector.namespace = None;
    assert!(err(no_ns).contains("namespace"));
    // A start inside a period is floored to the period boundary, like bin().
    let r = store
        .query(&MetricQuery {
            start_ms: T0 + 17 * 60_000,
            period_s: 300,
            ..base
        })
        .unwrap();
    assert_eq!(r.timestamps[0], T0 + 15 * 60_000);
}
