//! The range path against the general evaluator: the same range queries through both must
//! give the same series, timestamps and values to the bit, or the same error.

use crate::{MemorySource, Options, PromError, STALE_NAN_BITS, Value, range_query_with};

const MIN: i64 = 60_000;
/// Data from BASE to BASE + 60 min.
const BASE: i64 = 1_700_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Points every 10–20 s over an hour, with gaps; on a 5-second grid (so that points fall on
/// window and lookback bounds) unless `jitter`, then at any millisecond. `f` gives values.
fn points(
    rng: &mut Rng,
    jitter: bool,
    mut f: impl FnMut(&mut Rng, usize) -> f64,
) -> Vec<(i64, f64)> {
    let unit = if jitter { 1 } else { 5_000 };
    let mut out = Vec::new();
    let mut t = BASE + rng.below(15_000 / unit) as i64 * unit as i64;
    let mut i = 0;
    while t < BASE + 60 * MIN {
        // A gap of a few minutes now and then (longer than the lookback sometimes).
        if rng.below(40) == 0 {
            t += (2 + rng.below(5) as i64) * MIN;
        }
        out.push((t, f(rng, i)));
        t += 10_000 + rng.below(10_000 / unit + 1) as i64 * unit as i64;
        i += 1;
    }
    out
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

fn dataset() -> MemorySource {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut src = MemorySource::default();
    for k in 0..24 {
        let (job, inst) = (["a", "b", "c"][k % 3], format!("i-{}", k % 8));
        // Counters with resets and, for some, a staleness marker.
        let mut c = rng.below(1000) as f64;
        let p = points(&mut rng, k % 2 == 1, |r, i| {
            if k % 5 == 0 && i == 50 {
                return stale();
            }
            if r.below(60) == 0 {
                c = r.below(10) as f64;
            } else {
                c += r.below(50) as f64;
            }
            c
        });
        src.add(
            &[
                ("__name__", "c_total"),
                ("job", job),
                ("instance", &inst),
                ("k", &k.to_string()),
            ],
            p,
        );
        // Gauges with negative values, zeros of both signs, and for some infinities and NaN.
        let p = points(&mut rng, k % 3 == 1, |r, _| match r.below(100) {
            0 if k % 4 == 0 => f64::INFINITY,
            1 if k % 4 == 0 => f64::NEG_INFINITY,
            2 if k % 4 == 1 => f64::NAN,
            3 => -0.0,
            4 => 0.0,
            5 if k % 7 == 0 => stale(),
            _ => (r.below(20_000) as f64 - 5_000.0) / 100.0,
        });
        src.add(
            &[
                ("__name__", "g"),
                ("job", job),
                ("instance", &inst),
                ("k", &k.to_string()),
            ],
            p,
        );
    }
    // Classic histograms: cumulative bucket counters, one with an unparsable `le`.
    for job in ["a", "b"] {
        let mut counts = [0.0f64; 5];
        let p = points(&mut rng, false, |r, _| r.below(1000) as f64);
        let les = ["0.1", "0.5", "1", "+Inf", "x"];
        let mut per_bucket: Vec<Vec<(i64, f64)>> = vec![Vec::new(); les.len()];
        for &(t, _) in &p {
            let mut total = 0.0;
            for (b, c) in counts.iter_mut().enumerate() {
                total += rng.below(10) as f64;
                *c = c.max(total);
                per_bucket[b].push((t, *c));
            }
        }
        for (le, pts) in les.iter().zip(per_bucket) {
            src.add(&[("__name__", "h_bucket"), ("job", job), ("le", le)], pts);
        }
    }
    // Two series with the same labels, and two that differ only by an empty label.
    for extra in [("x", "1"), ("x", "1")] {
        let p = points(&mut rng, false, |r, _| r.below(100) as f64);
        src.add(&[("__name__", "dup"), extra], p);
    }
    for pairs in [
        &[("__name__", "empty"), ("a", "1")][..],
        &[("__name__", "empty"), ("a", "1"), ("b", "")][..],
    ] {
        let p = points(&mut rng, false, |r, _| r.below(100) as f64);
        src.add(pairs, p);
    }
    // Series that differ only by their name (range functions drop it), one of them short.
    for name in ["n1", "n2"] {
        let p = points(&mut rng, false, |r, _| r.below(100) as f64);
        src.add(&[("__name__", name), ("k", "1")], p);
    }
    src.add(
        &[("__name__", "n3"), ("k", "2")],
        vec![(BASE + 30 * MIN, 1.0), (BASE + 31 * MIN, 2.0)],
    );
    src.add(
        &[("__name__", "n4"), ("k", "2")],
        vec![(BASE + 45 * MIN, 1.0), (BASE + 46 * MIN, 2.0)],
    );
    src
}

const QUERIES: &[&str] = &[
    // Selectors.
    "g",
    "c_total",
    "g{job=\"a\"}",
    "g offset 3m",
    "g offset -2m",
    "g @ 1700001200",
    "c_total @ end()",
    "(g)",
    // Range functions.
    "rate(c_total[5m])",
    "rate(c_total[1m])",
    "increase(c_total[10m])",
    "delta(g[5m])",
    "irate(c_total[2m])",
    "idelta(g[3m])",
    "resets(c_total[15m])",
    "changes(g[10m])",
    "deriv(g[10m])",
    "predict_linear(g[10m], 600)",
    "predict_linear(g[10m] offset 5m, -60)",
    "avg_over_time(g[7m])",
    "min_over_time(g[7m])",
    "max_over_time(g[7m])",
    "sum_over_time(g[7m])",
    "count_over_time(g[7m])",
    "quantile_over_time(0.3, g[7m])",
    "quantile_over_time(2, g[7m])",
    "stddev_over_time(g[7m])",
    "stdvar_over_time(g[7m])",
    "last_over_time(g[7m])",
    "present_over_time(g[7m])",
    "rate(c_total[5m] offset 10m)",
    "rate(c_total[5m] @ 1700001800)",
    "rate((c_total[5m]))",
    "rate(c_total[0s])",
    "rate(c_total[90s])",
    "rate({__name__=~\"c_total|g\"}[5m])",
    "last_over_time({__name__=~\"c_total|g\"}[5m])",
    "rate({k=\"1\"}[5m])",
    "last_over_time({k=\"1\"}[5m])",
    "rate({k=\"2\"}[5m])",
    "rate({k=\"2\"}[20m])",
    // Aggregations.
    "sum(rate(c_total[5m]))",
    "sum by (instance) (rate(c_total[5m]))",
    "sum without (k) (rate(c_total[5m]))",
    "sum by (__name__) (rate(c_total[5m]))",
    "sum by (__name__, job) (g)",
    "sum without (job) (g)",
    "avg by (instance) (g)",
    "avg(g)",
    "min by (job) (g)",
    "max by (job) (g)",
    "count(g)",
    "count by (job) (c_total)",
    "group by (job) (g)",
    "stddev by (job) (g)",
    "stdvar(g)",
    "topk(5, g)",
    "topk by (job) (2, g)",
    "bottomk(3, rate(c_total[5m]))",
    "bottomk without (k, instance) (1, g)",
    "topk(0, g)",
    "topk(-1, g)",
    "topk(1e300, g)",
    "topk(2.7, g)",
    "quantile(0.75, g)",
    "quantile by (job) (0.1, rate(c_total[5m]))",
    "quantile(-1, g)",
    "count_values(\"v\", g)",
    "sum(avg by (job) (g))",
    "topk(2, sum by (instance) (rate(c_total[5m])))",
    "count(topk(3, g))",
    "max(bottomk by (job) (2, g))",
    "sum(dup)",
    "sum(empty)",
    "count({k=\"1\"})",
    "sum(rate({k=\"1\"}[5m]))",
    // Element-wise.
    "-g",
    "-rate(c_total[5m])",
    "g * 2",
    "2 * g",
    "g - 1",
    "1 - g",
    "g / 0",
    "0 / g",
    "g % 3",
    "g ^ 2",
    "2 ^ g",
    "g atan2 1",
    "g > 10",
    "10 < g",
    "g >= bool 0",
    "0 >= bool g",
    "g == 0",
    "g != bool 0",
    "sum(rate(c_total[5m])) * 60",
    "(g > 0) * 2",
    "sum by (job) (g > 0)",
    "-({k=\"1\"})",
    "{k=\"1\"} > 0",
    "{k=\"1\"} > bool 0",
    "-(sum by (__name__) ({k=\"1\"}))",
    // Element-wise functions.
    "abs(g)",
    "ceil(g) + floor(g)",
    "round(g, 0.5)",
    "round(g)",
    "clamp(g, -1, 21)",
    "clamp(g, 5, 1)",
    "clamp_min(g, 0)",
    "clamp_max(g, 19)",
    "sqrt(abs(g))",
    "ln(g)",
    "exp(g / 100)",
    "sgn(g)",
    "hour(g * 3600)",
    "day_of_week(c_total * 1000)",
    "abs({k=\"1\"})",
    "abs(last_over_time({k=\"1\"}[5m]))",
    // Histograms.
    "histogram_quantile(0.9, rate(h_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(h_bucket[5m])))",
    "histogram_quantile(0.5, h_bucket)",
    "histogram_quantile(2, h_bucket)",
    "histogram_quantile(0.9, g)",
    "sum(histogram_quantile(0.9, h_bucket))",
    // Vector ⊕ vector.
    "g + g",
    "c_total / g",
    "rate(c_total[5m]) / on (k) g",
    "g - ignoring (job) c_total",
    "g > on (job) g",
    "g > bool on (instance, job, k) c_total",
    "g == bool g",
    "sum by (job) (g) / on (job) count by (job) (g)",
    "sum(g) / count(g)",
    "sum by (job) (rate(c_total[5m])) / ignoring (x) sum by (job) (rate(c_total[10m]))",
    "g / on (instance) sum by (instance) (g)",
    "g and on (job) (c_total > 500)",
    "g and c_total",
    "g unless g > 0",
    "g unless on (job) nothing",
    "nothing and g",
    "-(g and g > 0) * 2",
    "{k=\"1\"} + {k=\"1\"}",
    "{k=\"1\"} > {k=\"1\"}",
    "{k=\"1\"} and {k=\"1\"}",
    "{k=\"2\"} / {k=\"2\"}",
    "g or c_total",
    "g * on (job) group_left (k) sum by (job) (c_total)",
    // Range functions over subqueries.
    "avg_over_time(g[5m:30s])",
    "rate(c_total[5m:45s] offset 2m)",
    "min_over_time(g[3m:] @ end())",
    "sum_over_time((g > 19)[10m:15s])",
    "predict_linear(c_total[10m:1m], 3600)",
    "deriv(rate(c_total[2m])[8m:20s])",
    "quantile_over_time(0.5, sum by (job) (g)[15m:1m])",
    "last_over_time(g[5m:1m])",
    "sum(max_over_time(rate(c_total[5m])[10m:1m]))",
    "present_over_time(nothing[5m:1m])",
    "rate(g[5m:1m] @ 1700001200)",
    "max_over_time(g[1h:7m])",
    "changes(g[30m:1m] offset -5m)",
    "count_over_time(g{job=\"a\"}[20m:1m])",
    "count_over_time({k=\"1\"}[10m:1m])",
    "last_over_time({k=\"1\"}[10m:1m])",
    "max_over_time(rate({k=\"2\"}[20m])[10m:1m])",
    "max_over_time(max_over_time(g[5m:1m])[10m:1m])",
    "absent_over_time(g[5m:1m])",
    "stddev_over_time(histogram_quantile(0.9, rate(h_bucket[5m]))[10m:30s])",
    // Sorting, which does not matter at the top.
    "sort_desc(sum by (job) (g))",
    "sort((sort(g)))",
    "topk(3, sort_desc(g))",
    // Errors and other shapes, through the general path.
    "dup",
    "empty",
    "rate(dup[5m])",
    "dup > 0",
    "absent(g)",
    "absent_over_time(nothing[5m])",
    "max_over_time(rate(c_total[2m])[10m:1m])",
    "1",
    "time()",
    "timestamp(g)",
    "nothing",
    "sum(nothing)",
];

/// (start, end, step) settings: aligned and not, one step, beyond the data at both ends.
fn settings() -> Vec<(i64, i64, i64)> {
    vec![
        (BASE, BASE + 60 * MIN, MIN),
        (BASE + 7_000, BASE + 59 * MIN, 15_000),
        (BASE - 10 * MIN, BASE + 75 * MIN, 7 * MIN + 1),
        (BASE + 20 * MIN, BASE + 20 * MIN, 1),
        (BASE + 5 * MIN, BASE + 50 * MIN, 3_333),
    ]
}

fn outcome(r: Result<Value, PromError>) -> String {
    match r {
        Ok(Value::Matrix(m)) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s
                    .samples
                    .iter()
                    .map(|(t, v)| format!("{t}:{:016x}", v.to_bits()))
                    .collect();
                format!("{:?} {}\n", s.labels.0, pts.join(" "))
            })
            .collect(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error {e:?}"),
    }
}

#[test]
fn range_path_matches_general_evaluator() {
    let src = dataset();
    let opts = Options::default();
    let mut failures = Vec::new();
    for q in QUERIES {
        for &(start, end, step) in &settings() {
            let planned = outcome(range_query_with(&src, q, start, end, step, &opts, true));
            let general = outcome(range_query_with(&src, q, start, end, step, &opts, false));
            if planned != general {
                failures.push(format!(
                    "{q} [{start}, {end}, {step}]\n range path:\n{planned}\n general:\n{general}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The range path answers the queries it is meant for (a shape it does not handle would
/// pass the comparison above without testing it).
#[test]
fn range_path_takes_the_common_shapes() {
    let src = dataset();
    let opts = Options::default();
    for q in [
        "g",
        "rate(c_total[5m])",
        "sum by (instance) (rate(c_total[5m]))",
        "topk(5, g)",
        "avg by (instance) (g) * 100",
        "-last_over_time(g[5m])",
        "quantile(0.5, predict_linear(g[10m], 60))",
        "sum by (job) (rate(c_total[5m])) / on (job) sum by (job) (rate(c_total[10m]))",
        "histogram_quantile(0.9, sum by (le, job) (rate(h_bucket[5m])))",
        "clamp(abs(g), 1, 5) and g > 0",
        "max_over_time(rate(c_total[2m])[10m:1m])",
        "sort_desc(sum by (job) (g))",
    ] {
        let expr = promql_parser::parser::parse(q).unwrap();
        let mut ev = crate::eval::Evaluator::new(&src, &opts, BASE, BASE + 60 * MIN);
        ev.prepare(&expr, BASE, BASE + 60 * MIN).unwrap();
        assert!(
            super::range_series(&ev, &expr, BASE, BASE + 60 * MIN, MIN).is_some(),
            "{q}"
        );
    }
    for q in [
        "rate(dup[5m])",
        "rate({k=\"1\"}[5m])",
        "g + on (job) g",
        "g or g",
        "topk(0, g)",
        "count_values(\"v\", g)",
        "max_over_time(max_over_time(g[5m:1m])[10m:1m])",
    ] {
        let expr = promql_parser::parser::parse(q).unwrap();
        let mut ev = crate::eval::Evaluator::new(&src, &opts, BASE, BASE + 60 * MIN);
        ev.prepare(&expr, BASE, BASE + 60 * MIN).unwrap();
        assert!(
            super::range_series(&ev, &expr, BASE, BASE + 60 * MIN, MIN).is_none(),
            "{q}"
        );
    }
}

/// Points produced count against the limit as in the general evaluator: both paths fail,
/// or both succeed, at every limit around what a query needs.
#[test]
fn range_path_counts_samples_like_the_general_evaluator() {
    let src = dataset();
    for q in [
        "g",
        "sum by (job) (rate(c_total[5m]))",
        "topk(3, g)",
        "g > 10",
        "max_over_time(rate(c_total[2m])[10m:1m])",
        "count_over_time(g{job=\"a\"}[20m:1m])",
        "sum_over_time(g[3m:] @ end())",
        "max_over_time(g[10m:1m] @ 1700000060)",
    ] {
        let (start, end, step) = (BASE, BASE + 60 * MIN, 15_000);
        // The limit at which the general path just succeeds.
        let mut lo = 0;
        let mut hi = 10_000_000;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let opts = Options {
                max_samples: mid,
                ..Options::default()
            };
            if range_query_with(&src, q, start, end, step, &opts, false).is_ok() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        for max_samples in [lo - 1, lo, lo + 1] {
            let opts = Options {
                max_samples,
                ..Options::default()
            };
            assert_eq!(
                outcome(range_query_with(&src, q, start, end, step, &opts, true)),
                outcome(range_query_with(&src, q, start, end, step, &opts, false)),
                "{q} with max_samples {max_samples}"
            );
        }
    }
}
