//! Range-query benchmark of the PromQL engine alone (issue 17): the data and queries of the
//! `query_range` comparison with Prometheus 2.42 (crates/server/benches/prometheus.rs), over
//! a [`MemorySource`], so that only evaluation is timed — no HTTP, no store, no JSON.
//!
//! Data: 5,000 counters `bench_metric_total` and 5,000 gauges `bench_gauge`, labels
//! `instance="i-<k % 100>"`, `pod="p-<k>"`, `job="bench"`, 100 samples 15 s apart. Each query
//! runs over the whole range at step 60 s (25 steps) and 15 s (100 steps), `BENCH_RUNS` times
//! (default 15); printed: the median CPU time of the evaluating thread (what a busy machine
//! disturbs least), the median wall time, and the per-step cost derived from the CPU times of
//! the two steps (`(t15 - t60) / 75`).
//!
//! Run: `cargo bench -p kinsight-promql --bench range` (release profile). Results go to
//! docs/benchmarks.md, "Prometheus compatibility (issue 17)".

use std::time::Instant;

use kinsight_promql::{MemorySource, Options, Value, range_query};

const SERIES: usize = 10_000;
const SAMPLES: usize = 100;
const INTERVAL_MS: i64 = 15_000;
/// 2023-11-14T22:13:15Z, a multiple of the interval.
const END_MS: i64 = 1_699_999_995_000;

const QUERIES: &[&str] = &[
    "sum(rate(bench_metric_total[5m]))",
    "sum by (instance) (rate(bench_metric_total[5m]))",
    "avg by (instance) (bench_gauge)",
    "topk(5, bench_gauge)",
    "bench_gauge",
    "count(bench_gauge)",
    // Beyond the server benchmark: a ratio (one-to-one matching) and a subquery.
    "sum by (instance) (rate(bench_metric_total[5m])) / on (instance) count by (instance) (bench_gauge)",
    "max_over_time(rate(bench_metric_total[5m])[10m:1m])",
];

/// The data set of the server benchmark (values from a xorshift generator instead of
/// `rand`: counters start in [0, 1000) and grow by [0, 50) per sample, gauges in [0, 100)).
fn dataset() -> MemorySource {
    let start_ms = END_MS - (SAMPLES as i64 - 1) * INTERVAL_MS;
    let counters = SERIES / 2;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut src = MemorySource::default();
    for k in 0..SERIES {
        let samples: Vec<(i64, f64)> = if k < counters {
            let mut v = (next() % 1000) as f64;
            (0..SAMPLES)
                .map(|i| {
                    v += (next() % 50) as f64;
                    (start_ms + i as i64 * INTERVAL_MS, v)
                })
                .collect()
        } else {
            (0..SAMPLES)
                .map(|i| {
                    let v = (next() % 1_000_000) as f64 / 10_000.0;
                    (start_ms + i as i64 * INTERVAL_MS, v)
                })
                .collect()
        };
        let name = if k < counters {
            "bench_metric_total"
        } else {
            "bench_gauge"
        };
        let (instance, pod) = (format!("i-{}", k % 100), format!("p-{k}"));
        src.add(
            &[
                ("__name__", name),
                ("instance", &instance),
                ("job", "bench"),
                ("pod", &pod),
            ],
            samples,
        );
    }
    src
}

/// CPU time of the calling thread, in ms (Linux: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`,
/// declared here rather than adding the libc crate for one call).
fn thread_cpu_ms() -> f64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given (64-bit time_t and long).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter may follow.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let src = dataset();
    let start_ms = END_MS - (SAMPLES as i64 - 1) * INTERVAL_MS;
    let opts = Options::default();
    println!(
        "{SERIES} series x {SAMPLES} samples, range {} s, {runs} runs; median CPU ms (median wall ms)",
        (END_MS - start_ms) / 1000
    );
    println!(
        "{:<52} {:>8} {:>19} {:>19} {:>11}",
        "query", "points", "step 60 s", "step 15 s", "ms per step"
    );
    for q in QUERIES {
        if filter.as_ref().is_some_and(|f| !q.contains(f.as_str())) {
            continue;
        }
        let mut cells = Vec::new();
        let mut medians = Vec::new();
        let mut points = 0;
        for step_s in [60, 15] {
            let (mut cpu, mut wall) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
            for _ in 0..runs {
                let (t, c) = (Instant::now(), thread_cpu_ms());
                let r = range_query(&src, q, start_ms, END_MS, step_s * 1000, &opts)
                    .unwrap_or_else(|e| panic!("{q}: {e}"));
                cpu.push(thread_cpu_ms() - c);
                wall.push(t.elapsed().as_secs_f64() * 1000.0);
                let Value::Matrix(m) = r else {
                    panic!("{q}: not a matrix")
                };
                if step_s == 60 {
                    points = m.iter().map(|s| s.samples.len()).sum::<usize>();
                }
                std::hint::black_box(m);
            }
            let (c, w) = (median(cpu), median(wall));
            medians.push(c);
            cells.push(format!("{c:>8.2} ({w:>8.2})"));
        }
        // A long query on a line of its own.
        let name = if q.len() > 52 {
            println!("{q}");
            ""
        } else {
            q
        };
        println!(
            "{:<52} {:>8} {:>19} {:>19} {:>11.3}",
            name,
            points,
            cells[0],
            cells[1],
            (medians[1] - medians[0]) / 75.0
        );
    }
}
