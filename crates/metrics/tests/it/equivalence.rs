//! Metric query results equal what a Logs Insights `stats … by bin(period)` gives over the
//! same performance events (issue #6). The expected numbers are computed here, straight from
//! the events' JSON, with no code of the store: group the events a `filter` keeps by
//! `floor(@timestamp / period) * period`, then avg/sum/min/max/count/pct per group.

use crate::events::{CLUSTER, pod_events};
use kinsight_metrics::{
    DimensionMatcher, MetricQuery, MetricStore, MetricStoreConfig, SeriesSelector, Statistic,
};
use kinsight_model::LogEvent;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Start just before midnight UTC so the data crosses a day (a partition boundary).
const START_MS: i64 = 1_767_222_000_000 - 3_600_000; // 2025-12-31T22:00:00Z
const DURATION_MS: i64 = 3 * 3_600_000;

/// `filter <pred> | stats <agg>(field) by bin(period)[, by]` evaluated over the raw events.
fn insights_stats(
    events: &[(i64, Map<String, Value>)],
    pred: impl Fn(&Map<String, Value>) -> bool,
    field: &str,
    period_ms: i64,
    by: Option<&str>,
) -> BTreeMap<(String, i64), Vec<f64>> {
    let mut groups: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for (timestamp, doc) in events {
        if !pred(doc) {
            continue;
        }
        let Some(v) = doc.get(field).and_then(Value::as_f64) else {
            continue;
        };
        let bin = timestamp.div_euclid(period_ms) * period_ms;
        let key = by
            .map(|b| {
                doc.get(b)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default();
        groups.entry((key, bin)).or_default().push(v);
    }
    groups
}

fn expected(stat: &str, vals: &[f64]) -> f64 {
    match stat {
        "avg" => vals.iter().sum::<f64>() / vals.len() as f64,
        "sum" => vals.iter().sum(),
        "min" => vals.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "count" => vals.len() as f64,
        pct => {
            // pct(field, p): nearest rank, the sample of rank ceil(p/100 · n).
            let p: u64 = pct.trim_start_matches("pct").parse().unwrap();
            let mut s = vals.to_vec();
            s.sort_by(f64::total_cmp);
            let rank = (p as usize * s.len()).div_ceil(100).max(1);
            s[rank - 1]
        }
    }
}

fn statistic(stat: &str) -> Statistic {
    match stat {
        "avg" => Statistic::Average,
        "sum" => Statistic::Sum,
        "min" => Statistic::Minimum,
        "max" => Statistic::Maximum,
        "count" => Statistic::SampleCount,
        pct => format!("p{}", pct.trim_start_matches("pct"))
            .parse()
            .unwrap(),
    }
}

fn close(a: f64, b: f64) -> bool {
    // Sums are added in a different order (per bucket, then across rollup rows) than the
    // reference's event order; equal up to floating-point rounding.
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

struct Case {
    what: &'static str,
    pred: fn(&Map<String, Value>) -> bool,
    dims: Vec<DimensionMatcher>,
    by: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "cluster level: filter Type=\"Pod\"",
            pred: |d| d.get("Type").and_then(Value::as_str) == Some("Pod"),
            dims: vec![DimensionMatcher::exact("ClusterName", CLUSTER)],
            by: None,
        },
        Case {
            what: "one pod: filter PodName=\"pod-5\"",
            pred: |d| d.get("PodName").and_then(Value::as_str) == Some("pod-5"),
            dims: vec![
                DimensionMatcher::exact("ClusterName", CLUSTER),
                DimensionMatcher::exact("Namespace", "ns-2"),
                DimensionMatcher::exact("PodName", "pod-5"),
            ],
            by: None,
        },
        Case {
            what: "namespace level: filter Namespace=\"ns-1\"",
            pred: |d| d.get("Namespace").and_then(Value::as_str) == Some("ns-1"),
            dims: vec![
                DimensionMatcher::exact("ClusterName", CLUSTER),
                DimensionMatcher::exact("Namespace", "ns-1"),
            ],
            by: None,
        },
        Case {
            what: "search, every pod of a namespace: filter Namespace=\"ns-0\" | stats … by bin(p), PodName",
            pred: |d| d.get("Namespace").and_then(Value::as_str) == Some("ns-0"),
            dims: vec![
                DimensionMatcher::exact("ClusterName", CLUSTER),
                DimensionMatcher::exact("Namespace", "ns-0"),
                DimensionMatcher::any("PodName"),
            ],
            by: Some("PodName"),
        },
        Case {
            what: "service level: filter Service=\"svc-1\"",
            pred: |d| d.get("Service").and_then(Value::as_str) == Some("svc-1"),
            dims: vec![
                DimensionMatcher::exact("ClusterName", CLUSTER),
                DimensionMatcher::any("Namespace"),
                DimensionMatcher::exact("Service", "svc-1"),
            ],
            by: None,
        },
    ]
}

/// Checks every case × field × statistic × period against the store.
fn check_all(store: &MetricStore, events: &[LogEvent], state: &str) -> usize {
    // What Logs Insights sees: @timestamp and the event's JSON fields.
    let events: Vec<(i64, Map<String, Value>)> = events
        .iter()
        .map(|e| (e.timestamp, serde_json::from_str(&e.message).unwrap()))
        .collect();
    let mut compared = 0;
    for case in cases() {
        for field in ["pod_cpu_utilization", "pod_memory_utilization"] {
            for period_s in [1u32, 10, 60, 300, 3600] {
                let period_ms = i64::from(period_s) * 1000;
                let groups = insights_stats(&events, case.pred, field, period_ms, case.by);
                for stat in [
                    "avg", "sum", "min", "max", "count", "pct50", "pct90", "pct99",
                ] {
                    let q = MetricQuery {
                        selector: SeriesSelector {
                            namespace: Some("ContainerInsights".into()),
                            metric_name: Some(field.into()),
                            dimensions: case.dims.clone(),
                            exact_dimensions: true,
                        },
                        statistic: statistic(stat),
                        period_s,
                        start_ms: START_MS,
                        end_ms: START_MS + DURATION_MS + 1000, // jitter spills past the end
                        max_series: 100,
                    };
                    let res = store.query(&q).unwrap();
                    let ctx = format!("[{state}] {} / {field} / {stat} / {period_s}s", case.what);
                    assert!(!res.series.is_empty(), "{ctx}: no series");
                    if case.by.is_none() {
                        assert_eq!(res.series.len(), 1, "{ctx}");
                    }
                    let mut seen_groups = 0;
                    for s in &res.series {
                        let group_key = case
                            .by
                            .map(|b| s.key.dimensions[b].clone())
                            .unwrap_or_default();
                        for (i, ts) in res.timestamps.iter().enumerate() {
                            let want = groups
                                .get(&(group_key.clone(), *ts))
                                .map(|v| expected(stat, v));
                            let got = s.values[i];
                            match (want, got) {
                                (None, None) => {}
                                (Some(w), Some(g)) if close(w, g) => {
                                    seen_groups += 1;
                                    compared += 1;
                                }
                                _ => panic!(
                                    "{ctx}: series {} at {ts}: Logs Insights gives {want:?}, metrics give {got:?}",
                                    s.key.label()
                                ),
                            }
                        }
                    }
                    // Every non-empty bin of the reference appeared in the answer.
                    assert_eq!(seen_groups, groups.len(), "{ctx}: bins compared");
                }
            }
        }
    }
    compared
}

#[test]
fn metric_queries_equal_insights_stats_in_every_store_state() {
    let events = pod_events(42, START_MS, DURATION_MS, 60_000, 12, 3);
    let dir = tempfile::tempdir().unwrap();
    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    // Ingest in batches of ~a minute, with a flush in the middle so that the data sits
    // partly in segment files and partly in memory.
    let batches: Vec<&[LogEvent]> = events.chunks(12).collect();
    for (i, b) in batches.iter().enumerate() {
        let out = store.ingest_events(i as u64 + 1, b);
        assert_eq!(out.emf_errors, 0);
        assert!(out.datapoints > 0);
        if i == batches.len() / 2 {
            store.flush().unwrap();
        }
    }
    let n = check_all(&store, &events, "head + segments");
    assert!(n > 10_000, "compared {n} values");

    store.flush().unwrap();
    // Several more flushes of nothing do not change anything; compaction merges the two
    // flushes' segments of each closed partition.
    let merges = store.compact(START_MS + 10 * 86_400_000).unwrap();
    assert!(merges > 0);
    check_all(&store, &events, "compacted");
    drop(store);

    let store = MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap();
    check_all(&store, &events, "reopened");
}
