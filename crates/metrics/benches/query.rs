//! Metric query benchmark (issue #6): 1,000 series over 24 h at a 1-minute period (target
//! < 200 ms), percentiles over the same, and a 30-day graph of 1,000 pods at 1 hour.
//!
//! Run: `cargo bench -p kinsight-metrics --bench query` (release profile). Results go to
//! docs/benchmarks.md.

use kinsight_metrics::{
    DimensionMatcher, MetricQuery, MetricStore, MetricStoreConfig, SeriesSelector, Statistic,
};
use kinsight_model::emf::Datapoint;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const PODS: usize = 1_000;
const DAY_MS: i64 = 86_400_000;
/// 2026-01-01T12:00:00Z: a day of data crosses midnight, as it usually does.
const START: i64 = 1_767_225_600_000 + DAY_MS / 2;

fn point(pod: usize, ts: i64, v: f64) -> Datapoint {
    let mut dims = BTreeMap::new();
    dims.insert("ClusterName".to_string(), "bench".to_string());
    dims.insert("Namespace".to_string(), format!("ns-{}", pod % 20));
    dims.insert("PodName".to_string(), format!("pod-{pod:04}"));
    Datapoint {
        namespace: "ContainerInsights".into(),
        name: "pod_cpu_utilization".into(),
        dimensions: dims,
        timestamp_ms: ts,
        values: vec![v],
        unit: Some("Percent".into()),
        storage_resolution: 60,
    }
}

/// Ingests `PODS` series sampled every `interval_ms` over `duration_ms`, one batch per
/// sampling step, flushing every `flush_every_ms` of data (as the server's maintenance
/// loop would every 30 s of wall time) and compacting as it goes.
fn build(dir: &Path, duration_ms: i64, interval_ms: i64, flush_every_ms: i64) -> (u64, f64) {
    let store = MetricStore::open(dir, MetricStoreConfig::default()).unwrap();
    let t = Instant::now();
    let mut seq = 0u64;
    let mut samples = 0u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_flush = START + flush_every_ms;
    let mut ts = START;
    let (mut t_ingest, mut t_flush, mut t_compact) = (0.0, 0.0, 0.0);
    while ts < START + duration_ms {
        seq += 1;
        let batch: Vec<Datapoint> = (0..PODS)
            .map(|p| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                point(p, ts + (p as i64 % 1000), (x % 10_000) as f64 / 100.0)
            })
            .collect();
        samples += batch.len() as u64;
        let t1 = Instant::now();
        store.ingest(seq, &batch);
        t_ingest += t1.elapsed().as_secs_f64();
        ts += interval_ms;
        if ts >= next_flush {
            let t2 = Instant::now();
            store.flush().unwrap();
            t_flush += t2.elapsed().as_secs_f64();
            let t3 = Instant::now();
            store.compact(ts).unwrap();
            t_compact += t3.elapsed().as_secs_f64();
            next_flush += flush_every_ms;
        }
    }
    store.flush().unwrap();
    store.compact(ts).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  time: ingest {t_ingest:.1} s, flush {t_flush:.1} s, compaction {t_compact:.1} s, generating datapoints the rest"
    );
    let stats = store.stats();
    println!(
        "  built: {samples} samples in {secs:.1} s ({:.2} M samples/s incl. flush+compaction), {} segments, {:.1} MB on disk ({:.2} bytes/sample, all tiers)",
        samples as f64 / secs / 1e6,
        stats.segments,
        stats.segment_bytes as f64 / 1e6,
        stats.segment_bytes as f64 / samples as f64
    );
    (samples, secs)
}

/// Process CPU time (user + system, all threads), seconds: steadier than wall time on a
/// machine shared with other work.
fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn query(stat: Statistic, period_s: u32, start: i64, end: i64) -> MetricQuery {
    MetricQuery {
        selector: SeriesSelector {
            namespace: Some("ContainerInsights".into()),
            metric_name: Some("pod_cpu_utilization".into()),
            dimensions: vec![
                DimensionMatcher::exact("ClusterName", "bench"),
                DimensionMatcher::any("Namespace"),
                DimensionMatcher::any("PodName"),
            ],
            exact_dimensions: true,
        },
        statistic: stat,
        period_s,
        start_ms: start,
        end_ms: end,
        max_series: 5_000,
    }
}

fn measure(dir: &Path, label: &str, q: &MetricQuery, runs: usize) {
    // Cold: a freshly opened store (empty block cache; the OS page cache is warm, as on a
    // server that has been running).
    let store = MetricStore::open(dir, MetricStoreConfig::default()).unwrap();
    let (c0, t) = (cpu_seconds(), Instant::now());
    let r = store.query(q).unwrap();
    let cold = t.elapsed().as_secs_f64() * 1000.0;
    let cold_cpu = (cpu_seconds() - c0) * 1000.0;
    let points: usize = r
        .series
        .iter()
        .map(|s| s.values.iter().flatten().count())
        .sum();
    let c1 = cpu_seconds();
    let mut warm: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let r2 = store.query(q).unwrap();
            assert_eq!(r2.series.len(), r.series.len());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let warm_cpu = (cpu_seconds() - c1) * 1000.0 / runs as f64;
    warm.sort_by(f64::total_cmp);
    println!(
        "  {label}: {} series × {} periods ({points} values, tier {:?}): cold {cold:.1} ms ({cold_cpu:.0} ms CPU), warm median {:.1} ms (min {:.1}, max {:.1}; {warm_cpu:.0} ms CPU each)",
        r.series.len(),
        r.timestamps.len(),
        r.tier,
        warm[warm.len() / 2],
        warm[0],
        warm[warm.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without
    // it, and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    // KINSIGHT_BENCH_QUICK=1: the 24-h query on data sampled every 60 s (same rollups, a
    // sixth of the raw samples), for quick iterations.
    if std::env::var("KINSIGHT_BENCH_QUICK").is_ok() {
        // KINSIGHT_BENCH_QUICK_DIR keeps (or reuses) the data, e.g. to profile queries only.
        let day = std::env::var("KINSIGHT_BENCH_QUICK_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| base.path().join("quick"));
        if !day.join("MANIFEST").exists() {
            build(&day, DAY_MS, 60_000, 300_000);
        }
        let end = START + DAY_MS;
        let avg = query(Statistic::Average, 60, START, end);
        measure(
            &day,
            "Average, 60 s, 24 h (first query of the process)",
            &avg,
            9,
        );
        measure(&day, "Average, 60 s, 24 h", &avg, 9);
        measure(
            &day,
            "p99, 60 s, 24 h (raw samples)",
            &query(Statistic::Percentile(99.0), 60, START, end),
            5,
        );
        return;
    }

    println!("scenario 1: {PODS} pods, 24 h sampled every 10 s");
    let day = base.path().join("day");
    build(&day, DAY_MS, 10_000, 300_000);
    let end = START + DAY_MS;
    let avg = query(Statistic::Average, 60, START, end);
    // "cold" = a freshly opened store (empty block cache). The very first query of a process
    // also pays for growing the heap; it is reported on its own.
    measure(
        &day,
        "Average, 60 s, 24 h (first query of the process)",
        &avg,
        9,
    );
    measure(&day, "Average, 60 s, 24 h", &avg, 9);
    measure(
        &day,
        "Maximum, 300 s, 24 h",
        &query(Statistic::Maximum, 300, START, end),
        9,
    );
    measure(
        &day,
        "p99, 60 s, 24 h (raw samples)",
        &query(Statistic::Percentile(99.0), 60, START, end),
        5,
    );
    measure(
        &day,
        "Average, 60 s, last 3 h",
        &query(Statistic::Average, 60, end - 3 * 3_600_000, end),
        9,
    );

    println!("scenario 2: {PODS} pods, 30 days sampled every 60 s");
    let month = base.path().join("month");
    build(&month, 30 * DAY_MS, 60_000, 3_600_000);
    let end = START + 30 * DAY_MS;
    measure(
        &month,
        "Average, 1 h, 30 days",
        &query(Statistic::Average, 3600, START, end),
        9,
    );
    measure(
        &month,
        "Maximum, 1 h, 30 days",
        &query(Statistic::Maximum, 3600, START, end),
        9,
    );
    measure(
        &month,
        "Average, 60 s, last 24 h",
        &query(Statistic::Average, 60, end - DAY_MS, end),
        9,
    );
}
