//! Alarm evaluation benchmark (issue #6): 10,000 alarms at a 60 s period against a real
//! metric store on disk, measured in CPU seconds per minute of alarm time.
//!
//! Run: `cargo bench -p kinsight-alarms --bench evaluate` (release profile). Results go to
//! docs/benchmarks.md.

use kinsight_alarms::{AlarmConfig, AlarmService, AlarmServiceConfig, Dimension, ManualClock};
use kinsight_metrics::{MetricStore, MetricStoreConfig};
use kinsight_model::emf::Datapoint;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

const ALARMS: usize = 10_000;
const MIN: i64 = 60_000;
const T0: i64 = 1_767_225_600_000;
const LAG: i64 = 10_000;

/// Process CPU time (user + system), seconds.
fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn dims(i: usize) -> BTreeMap<String, String> {
    [
        ("ClusterName".to_string(), "bench".to_string()),
        ("Namespace".to_string(), format!("ns-{}", i % 50)),
        ("PodName".to_string(), format!("pod-{i:05}")),
    ]
    .into_iter()
    .collect()
}

/// One minute of data for every series: 6 samples (10 s sampling); pods ≡ 0 mod 100 run hot
/// from minute 100 on.
fn minute(m: i64) -> Vec<Datapoint> {
    let mut out = Vec::with_capacity(ALARMS * 6);
    for i in 0..ALARMS {
        for s in 0..6 {
            let hot = i % 100 == 0 && m >= 100;
            out.push(Datapoint {
                namespace: "ContainerInsights".into(),
                name: "pod_cpu_utilization".into(),
                dimensions: dims(i),
                timestamp_ms: T0 + m * MIN + s * 10_000,
                values: vec![if hot {
                    95.0
                } else {
                    20.0 + (i % 40) as f64 + s as f64
                }],
                unit: Some("Percent".into()),
                storage_resolution: 60,
            });
        }
    }
    out
}

fn alarm(i: usize) -> AlarmConfig {
    let d = dims(i);
    AlarmConfig {
        alarm_name: format!("pod-{i:05}-cpu"),
        namespace: "ContainerInsights".into(),
        metric_name: "pod_cpu_utilization".into(),
        dimensions: d
            .into_iter()
            .map(|(name, value)| Dimension { name, value })
            .collect(),
        statistic: Some("Average".into()),
        period: 60,
        evaluation_periods: 5,
        datapoints_to_alarm: Some(3),
        threshold: 80.0,
        comparison_operator: "GreaterThanThreshold".into(),
        alarm_actions: vec!["http://127.0.0.1:9/pager".into()],
        ..Default::default()
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without
    // it, and must not spend minutes on a debug-build benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        MetricStore::open(dir.path().join("metrics"), MetricStoreConfig::default()).unwrap(),
    );
    let clock = Arc::new(ManualClock::new(T0));
    let alarms = AlarmService::open(
        dir.path().join("alarms"),
        AlarmServiceConfig::default(),
        clock.clone(),
    )
    .unwrap();

    // Two hours of history, flushed every 30 s of data as the server's maintenance would.
    let t = Instant::now();
    let mut seq = 0;
    for m in 0..90 {
        let pts = minute(m);
        for half in pts.chunks(pts.len() / 2) {
            seq += 1;
            store.ingest(seq, half);
            store.flush().unwrap();
        }
        store.compact(T0 + (m + 1) * MIN).unwrap();
    }
    println!(
        "history: 90 min × {ALARMS} series × 6 samples in {:.1} s; {} segments",
        t.elapsed().as_secs_f64(),
        store.stats().segments
    );

    let t = Instant::now();
    for i in 0..ALARMS {
        alarms.put(alarm(i)).unwrap();
    }
    let put_s = t.elapsed().as_secs_f64();
    let size = |f: &str| {
        std::fs::metadata(dir.path().join("alarms").join(f)).map_or(0, |m| m.len()) as f64 / 1e6
    };
    println!(
        "put {ALARMS} alarms one by one: {put_s:.2} s ({:.2} ms each: one fsynced journal append); snapshot {:.1} MB, journal {:.1} MB",
        put_s * 1000.0 / ALARMS as f64,
        size("alarms.json"),
        std::fs::read_dir(dir.path().join("alarms"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with("alarms.journal"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum::<u64>() as f64
            / 1e6
    );

    let mut per_minute = Vec::new();
    for m in 90..110 {
        // The minute's data arrives in 2 batches, 30 s apart, each followed by a flush.
        let pts = minute(m);
        for half in pts.chunks(pts.len() / 2) {
            seq += 1;
            store.ingest(seq, half);
            store.flush().unwrap();
        }
        store.compact(T0 + (m + 1) * MIN).unwrap();
        let now = T0 + (m + 1) * MIN + LAG;
        clock.set(now);
        let (c0, w0) = (cpu_seconds(), Instant::now());
        let r = alarms.evaluate_at(now, &*store).unwrap();
        let (cpu, wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
        assert_eq!(r.evaluated, ALARMS);
        assert!(r.errors.is_empty());
        println!(
            "  minute {m}: {} alarms evaluated, {} transitions: {cpu:.3} CPU-s, {wall:.3} s wall",
            r.evaluated,
            r.transitions.len()
        );
        per_minute.push((cpu, wall, r.transitions.len()));
    }
    let steady: Vec<f64> = per_minute
        .iter()
        .filter(|p| p.2 == 0)
        .map(|p| p.0)
        .collect();
    let mean = steady.iter().sum::<f64>() / steady.len().max(1) as f64;
    let max = steady.iter().copied().fold(0.0, f64::max);
    println!(
        "steady state (no transitions): {mean:.3} CPU-s per minute for {ALARMS} alarms (max {max:.3}) over {} minutes",
        steady.len()
    );
    for (i, p) in per_minute.iter().enumerate().filter(|(_, p)| p.2 > 0) {
        println!(
            "minute {} with {} transitions (history, outbox and one journal line): {:.3} CPU-s",
            90 + i,
            p.2,
            p.0
        );
    }
}
