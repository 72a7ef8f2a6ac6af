//! Unit tests of each family of the evaluator over an in-memory Source.

mod support;

use std::time::Duration;

use kinsight_promql::{
    Labels, MatchOp, Matcher, Options, PromError, Sample, Series, Value, format_value,
    instant_query, range_query,
};
use support::{MemSource, labels, stale};

const S: i64 = 1000;

fn opts() -> Options {
    Options::default()
}

/// Instant query → sorted (labels as "k=v,…", value) pairs.
fn iq(src: &MemSource, q: &str, t: i64) -> Vec<(String, f64)> {
    match instant_query(src, q, t, &opts()).unwrap_or_else(|e| panic!("{q}: {e}")) {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|s| {
                    assert_eq!(s.t, t);
                    (fmt_labels(&s.labels), s.v)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Value::Scalar { v, .. } => vec![("scalar".into(), v)],
        other => panic!("{q}: {other:?}"),
    }
}

/// Instant query in the engine's own order.
fn iq_ordered(src: &MemSource, q: &str, t: i64) -> Vec<(String, f64)> {
    match instant_query(src, q, t, &opts()).unwrap() {
        Value::Vector(v) => v
            .into_iter()
            .map(|s| (fmt_labels(&s.labels), s.v))
            .collect(),
        other => panic!("{q}: {other:?}"),
    }
}

fn one(src: &MemSource, q: &str, t: i64) -> f64 {
    let r = iq(src, q, t);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0].1
}

fn fmt_labels(l: &Labels) -> String {
    l.0.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn err(src: &MemSource, q: &str, t: i64) -> PromError {
    match instant_query(src, q, t, &opts()) {
        Err(e) => e,
        Ok(v) => panic!("{q}: expected an error, got {v:?}"),
    }
}

fn approx(a: f64, b: f64) {
    assert!(
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        "{a} != {b}"
    );
}

/// A counter every 10 s from 0: 0, 10, 20, …
fn counter_src() -> MemSource {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "c"), ("job", "a")],
        (0..=60).map(|i| (i * 10 * S, (i * 10) as f64)).collect(),
    );
    s
}

#[test]
fn labels_and_matchers() {
    let l = Labels::new(vec![
        ("b".into(), "2".into()),
        ("a".into(), "1".into()),
        ("b".into(), "3".into()),
    ]);
    assert_eq!(l.0.len(), 2);
    assert_eq!(l.get("a"), Some("1"));
    assert_eq!(l.get("z"), None);
    let m = |op, v: &str| Matcher {
        name: "x".into(),
        op,
        value: v.into(),
    };
    assert!(m(MatchOp::Re, "ab|c").matches("ab"));
    assert!(!m(MatchOp::Re, "b").matches("abc")); // fully anchored
    assert!(m(MatchOp::NotRe, "b").matches("abc"));
    assert!(m(MatchOp::Re, "").matches("")); // absent label
    assert!(m(MatchOp::NotEqual, "a").matches(""));
    assert!(m(MatchOp::Equal, "").matches(""));
}

#[test]
fn float_formatting() {
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(0.1), "0.1");
    assert_eq!(format_value(1e21), "1000000000000000000000");
    assert_eq!(format_value(-2.5), "-2.5");
    assert_eq!(format_value(3.0), "3");
}

#[test]
fn instant_selector_lookback_and_staleness() {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "g"), ("k", "v")],
        vec![(0, 1.0), (60 * S, 2.0), (400 * S, stale()), (900 * S, 5.0)],
    );
    assert_eq!(one(&s, "g", 90 * S), 2.0);
    // The latest sample is a staleness marker: no value.
    assert!(iq(&s, "g", 410 * S).is_empty());
    assert!(iq(&s, "g", 400 * S).is_empty());
    // Lookback 5 m, inclusive at the left end (Prometheus 2.x).
    assert_eq!(one(&s, "g", 360 * S), 2.0);
    assert!(iq(&s, "g", 361 * S).is_empty());
    assert_eq!(one(&s, "g", 1000 * S), 5.0);
    assert_eq!(one(&s, "g offset 14m", 900 * S), 2.0);
    assert_eq!(one(&s, "g @ 60", 900 * S), 2.0);
    assert_eq!(one(&s, "g @ 0.000 offset -1m", 600 * S), 2.0);
    // Selected series keep their metric name.
    assert_eq!(iq(&s, "g", 900 * S)[0].0, "__name__=g,k=v");
    assert!(iq(&s, "g{k=~\"x|y\"}", 900 * S).is_empty());
    assert_eq!(iq(&s, "{__name__=~\"g\", k!=\"w\"}", 900 * S).len(), 1);
}

#[test]
fn range_selector_is_closed_and_drops_stale() {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "g")],
        vec![(0, 1.0), (10 * S, 2.0), (20 * S, stale()), (30 * S, 4.0)],
    );
    match instant_query(&s, "g[30s]", 30 * S, &opts()).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].samples, vec![(0, 1.0), (10 * S, 2.0), (30 * S, 4.0)]);
            assert_eq!(m[0].labels, labels(&[("__name__", "g")]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(one(&s, "count_over_time(g[30s])", 30 * S), 3.0);
    assert_eq!(one(&s, "count_over_time(g[29s])", 30 * S), 2.0);
    assert_eq!(one(&s, "count_over_time(g[10s] offset 20s)", 30 * S), 2.0);
    assert_eq!(one(&s, "count_over_time(g[10s] @ 10)", 1000 * S), 2.0);
}

#[test]
fn rate_increase_delta_extrapolation() {
    let s = counter_src();
    // Samples cover the whole range: no extrapolation.
    approx(one(&s, "rate(c[1m])", 60 * S), 1.0);
    approx(one(&s, "increase(c[1m])", 60 * S), 60.0);
    // Metric name dropped.
    assert_eq!(iq(&s, "rate(c[1m])", 60 * S)[0].0, "job=a");

    let mut s = MemSource::default();
    s.add(
        &[("__name__", "c")],
        vec![
            (5 * S, 10.0),
            (15 * S, 20.0),
            (25 * S, 30.0),
            (35 * S, 40.0),
        ],
    );
    // 5 s missing at each end (< 1.1 × average interval): extrapolated to 40 s.
    approx(one(&s, "increase(c[40s])", 40 * S), 40.0);
    approx(one(&s, "rate(c[40s])", 40 * S), 1.0);
    approx(one(&s, "delta(c[40s])", 40 * S), 40.0);
    // Far from the range ends: half an interval is added at each end.
    approx(one(&s, "increase(c[100s])", 100 * S), 30.0 * 40.0 / 30.0);

    let mut s = MemSource::default();
    s.add(
        &[("__name__", "c")],
        vec![(5 * S, 1.0), (15 * S, 11.0), (25 * S, 21.0), (35 * S, 31.0)],
    );
    // A counter is not extrapolated below zero: the start is cut at 1 s before the first sample.
    approx(one(&s, "increase(c[40s])", 40 * S), 30.0 * 36.0 / 30.0);
    // delta is not a counter: no zero cut.
    approx(one(&s, "delta(c[40s])", 40 * S), 40.0);

    // Counter resets.
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "c")],
        vec![
            (0, 0.0),
            (10 * S, 10.0),
            (20 * S, 20.0),
            (30 * S, 5.0),
            (40 * S, 15.0),
        ],
    );
    approx(one(&s, "increase(c[40s])", 40 * S), 35.0);
    approx(one(&s, "delta(c[40s])", 40 * S), 15.0);
    assert_eq!(one(&s, "resets(c[40s])", 40 * S), 1.0);
    assert_eq!(one(&s, "changes(c[40s])", 40 * S), 4.0);
    // irate after a reset: the last value over the interval.
    approx(one(&s, "irate(c[40s])", 30 * S), 5.0 / 10.0);
    approx(one(&s, "irate(c[40s])", 40 * S), 1.0);
    approx(one(&s, "idelta(c[40s])", 30 * S), -15.0);
    // Fewer than two samples: no output.
    assert!(iq(&s, "rate(c[5s])", 40 * S).is_empty());
}

#[test]
fn over_time_functions() {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "g")],
        vec![(10 * S, 4.0), (20 * S, 2.0), (30 * S, 6.0), (40 * S, 8.0)],
    );
    let t = 40 * S;
    approx(one(&s, "avg_over_time(g[1m])", t), 5.0);
    assert_eq!(one(&s, "min_over_time(g[1m])", t), 2.0);
    assert_eq!(one(&s, "max_over_time(g[1m])", t), 8.0);
    assert_eq!(one(&s, "sum_over_time(g[1m])", t), 20.0);
    assert_eq!(one(&s, "count_over_time(g[1m])", t), 4.0);
    approx(one(&s, "quantile_over_time(0.5, g[1m])", t), 5.0);
    approx(one(&s, "stdvar_over_time(g[1m])", t), 5.0);
    approx(one(&s, "stddev_over_time(g[1m])", t), 5.0f64.sqrt());
    assert_eq!(one(&s, "present_over_time(g[1m])", t), 1.0);
    // last_over_time keeps the metric name.
    assert_eq!(
        iq(&s, "last_over_time(g[1m])", t),
        vec![("__name__=g".into(), 8.0)]
    );
    assert!(iq(&s, "absent_over_time(g[1m])", t).is_empty());
    assert_eq!(
        iq(&s, "absent_over_time(nope{a=\"b\", c=~\"d\"}[1m])", t),
        vec![("a=b".into(), 1.0)]
    );
}

#[test]
fn deriv_and_predict_linear() {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "g")],
        (0..=6)
            .map(|i| (i * 10 * S, 100.0 + 2.0 * i as f64))
            .collect(),
    );
    approx(one(&s, "deriv(g[1m])", 60 * S), 0.2);
    // At t = 60 s the fit gives 112; in 100 s: 132.
    approx(one(&s, "predict_linear(g[1m], 100)", 60 * S), 132.0);
}

#[test]
fn subqueries_align_to_the_step() {
    let s = counter_src();
    // Inner steps at multiples of 20 s in [t - 1m, t] = [70, 130] → 80, 100, 120.
    match instant_query(&s, "c[1m:20s]", 130 * S, &opts()).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(
                m[0].samples,
                vec![(80 * S, 80.0), (100 * S, 100.0), (120 * S, 120.0)]
            );
        }
        other => panic!("{other:?}"),
    }
    approx(one(&s, "max_over_time(rate(c[30s])[2m:30s])", 300 * S), 1.0);
    assert_eq!(
        one(&s, "count_over_time(c[1m:20s] offset 1m)", 130 * S),
        3.0
    );
    assert_eq!(one(&s, "count_over_time(c[1m:20s] @ 60)", 130 * S), 4.0);
}

#[test]
fn arithmetic_and_comparisons() {
    let mut s = MemSource::default();
    s.add(&[("__name__", "a"), ("i", "1")], vec![(0, 3.0)]);
    s.add(&[("__name__", "a"), ("i", "2")], vec![(0, 5.0)]);
    s.add(&[("__name__", "b"), ("i", "1")], vec![(0, 2.0)]);
    s.add(&[("__name__", "b"), ("i", "3")], vec![(0, 7.0)]);
    assert_eq!(one(&s, "1 + 2 * 3 ^ 2", 0), 19.0);
    assert_eq!(one(&s, "7 % 4 - -1", 0), 4.0);
    assert_eq!(one(&s, "2 > bool 1", 0), 1.0);
    assert_eq!(
        iq(&s, "a * 2", 0),
        vec![("i=1".into(), 6.0), ("i=2".into(), 10.0)]
    );
    assert_eq!(
        iq(&s, "-a", 0),
        vec![("i=1".into(), -3.0), ("i=2".into(), -5.0)]
    );
    // Comparisons filter and keep the name; with bool they give 0/1 and drop it.
    assert_eq!(iq(&s, "a > 4", 0), vec![("__name__=a,i=2".into(), 5.0)]);
    assert_eq!(iq(&s, "4 < a", 0), vec![("__name__=a,i=2".into(), 5.0)]);
    assert_eq!(
        iq(&s, "a > bool 4", 0),
        vec![("i=1".into(), 0.0), ("i=2".into(), 1.0)]
    );
    // One-to-one matching on all labels but the name.
    assert_eq!(iq(&s, "a - b", 0), vec![("i=1".into(), 1.0)]);
    assert_eq!(iq(&s, "a > b", 0), vec![("__name__=a,i=1".into(), 3.0)]);
    assert_eq!(iq(&s, "a / 0", 0)[0].1, f64::INFINITY);
    assert!(iq(&s, "a % 0", 0)[0].1.is_nan());
}

#[test]
fn vector_matching() {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "req"), ("inst", "x"), ("code", "200")],
        vec![(0, 10.0)],
    );
    s.add(
        &[("__name__", "req"), ("inst", "x"), ("code", "500")],
        vec![(0, 2.0)],
    );
    s.add(
        &[("__name__", "req"), ("inst", "y"), ("code", "200")],
        vec![(0, 4.0)],
    );
    s.add(
        &[("__name__", "info"), ("inst", "x"), ("os", "linux")],
        vec![(0, 1.0)],
    );
    s.add(
        &[("__name__", "info"), ("inst", "y"), ("os", "bsd")],
        vec![(0, 1.0)],
    );
    assert_eq!(
        iq(&s, "req * on (inst) group_left (os) info", 0),
        vec![
            ("code=200,inst=x,os=linux".into(), 10.0),
            ("code=200,inst=y,os=bsd".into(), 4.0),
            ("code=500,inst=x,os=linux".into(), 2.0),
        ]
    );
    assert_eq!(
        iq(&s, "info * on (inst) group_right (os) req", 0).len(),
        3,
        "group_right"
    );
    // on() keeps only the matching labels in one-to-one results.
    assert_eq!(
        iq(&s, "req{code=\"200\"} + on (inst) info", 0),
        vec![("inst=x".into(), 11.0), ("inst=y".into(), 5.0)]
    );
    assert_eq!(
        iq(
            &s,
            "req{code=\"500\"} / ignoring (code) req{code=\"200\"}",
            0
        ),
        vec![("inst=x".into(), 0.2)]
    );
    // Many matches on the "one" side: many-to-many is refused.
    let e = err(&s, "info * on (inst) group_left req", 0);
    assert!(matches!(e, PromError::Execution(_)), "{e}");
    assert!(e.to_string().contains("many-to-many"), "{e}");
    // Many on the left without group_left.
    let e = err(&s, "req + on (inst) info", 0);
    assert!(e.to_string().contains("group_left"), "{e}");
}

#[test]
fn set_operators() {
    let mut s = MemSource::default();
    s.add(&[("__name__", "a"), ("i", "1")], vec![(0, 1.0)]);
    s.add(&[("__name__", "a"), ("i", "2")], vec![(0, 2.0)]);
    s.add(&[("__name__", "b"), ("i", "2")], vec![(0, 20.0)]);
    s.add(&[("__name__", "b"), ("i", "3")], vec![(0, 30.0)]);
    assert_eq!(iq(&s, "a and b", 0), vec![("__name__=a,i=2".into(), 2.0)]);
    assert_eq!(
        iq(&s, "a unless b", 0),
        vec![("__name__=a,i=1".into(), 1.0)]
    );
    assert_eq!(
        iq(&s, "a or b", 0),
        vec![
            ("__name__=a,i=1".into(), 1.0),
            ("__name__=a,i=2".into(), 2.0),
            ("__name__=b,i=3".into(), 30.0)
        ]
    );
    assert_eq!(iq(&s, "a and on () b", 0).len(), 2);
    assert!(iq(&s, "a unless ignoring (i) b", 0).is_empty());
}

#[test]
fn aggregations() {
    let mut s = MemSource::default();
    for (j, i, v) in [
        ("a", "1", 1.0),
        ("a", "2", 3.0),
        ("b", "1", 10.0),
        ("b", "2", 10.0),
    ] {
        s.add(&[("__name__", "m"), ("job", j), ("inst", i)], vec![(0, v)]);
    }
    assert_eq!(iq(&s, "sum(m)", 0), vec![("".into(), 24.0)]);
    assert_eq!(
        iq(&s, "sum by (job) (m)", 0),
        vec![("job=a".into(), 4.0), ("job=b".into(), 20.0)]
    );
    assert_eq!(
        iq(&s, "sum without (job) (m)", 0),
        vec![("inst=1".into(), 11.0), ("inst=2".into(), 13.0)]
    );
    assert_eq!(
        iq(&s, "avg(m) by (job)", 0),
        vec![("job=a".into(), 2.0), ("job=b".into(), 10.0)]
    );
    assert_eq!(one(&s, "count(m)", 0), 4.0);
    assert_eq!(one(&s, "min(m)", 0), 1.0);
    assert_eq!(one(&s, "max(m)", 0), 10.0);
    assert_eq!(one(&s, "group(m)", 0), 1.0);
    approx(one(&s, "stdvar(m)", 0), 16.5);
    approx(one(&s, "stddev(m)", 0), 16.5f64.sqrt());
    approx(one(&s, "quantile(0.5, m)", 0), 6.5);
    assert_eq!(one(&s, "quantile(1.5, m)", 0), f64::INFINITY);
    assert_eq!(
        iq_ordered(&s, "topk(2, m{job=\"a\"} or m{job=\"b\",inst=\"1\"})", 0)[0],
        ("__name__=m,inst=1,job=b".into(), 10.0)
    );
    assert_eq!(
        iq_ordered(&s, "bottomk by (job) (1, m)", 0)
            .into_iter()
            .filter(|x| x.0.contains("job=a"))
            .collect::<Vec<_>>(),
        vec![("__name__=m,inst=1,job=a".into(), 1.0)]
    );
    assert!(iq(&s, "topk(0, m)", 0).is_empty());
    assert_eq!(
        iq(&s, "count_values(\"val\", m)", 0),
        vec![
            ("val=1".into(), 1.0),
            ("val=10".into(), 2.0),
            ("val=3".into(), 1.0)
        ]
    );
    assert_eq!(
        iq(&s, "count_values by (job) (\"val\", m)", 0),
        vec![
            ("job=a,val=1".into(), 1.0),
            ("job=a,val=3".into(), 1.0),
            ("job=b,val=10".into(), 2.0)
        ]
    );
    assert!(matches!(
        err(&s, "count_values(\"1x\", m)", 0),
        PromError::Execution(_)
    ));
}

#[test]
fn label_functions() {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "m"), ("host", "web-1:9100"), ("dc", "eu")],
        vec![(0, 1.0)],
    );
    assert_eq!(
        iq(
            &s,
            "label_replace(m, \"h\", \"$1\", \"host\", \"(.*):.*\")",
            0
        ),
        vec![("__name__=m,dc=eu,h=web-1,host=web-1:9100".into(), 1.0)]
    );
    // No match: unchanged; empty replacement: label removed.
    assert_eq!(
        iq(
            &s,
            "label_replace(m, \"h\", \"$1\", \"host\", \"nomatch\")",
            0
        )[0]
        .0,
        "__name__=m,dc=eu,host=web-1:9100"
    );
    assert_eq!(
        iq(&s, "label_replace(m, \"dc\", \"\", \"dc\", \".*\")", 0)[0].0,
        "__name__=m,host=web-1:9100"
    );
    assert_eq!(
        iq(&s, "label_join(m, \"x\", \"/\", \"dc\", \"host\")", 0)[0].0,
        "__name__=m,dc=eu,host=web-1:9100,x=eu/web-1:9100"
    );
    assert!(matches!(
        err(&s, "label_replace(m, \"1bad\", \"\", \"dc\", \".*\")", 0),
        PromError::BadData(_)
    ));
    assert!(matches!(
        err(&s, "label_replace(m, \"x\", \"\", \"dc\", \"(\")", 0),
        PromError::BadData(_)
    ));
}

#[test]
fn histogram_quantile_classic_buckets() {
    let mut s = MemSource::default();
    for (le, c) in [("0.1", 10.0), ("0.5", 30.0), ("1", 35.0), ("+Inf", 40.0)] {
        s.add(
            &[("__name__", "h_bucket"), ("job", "a"), ("le", le)],
            vec![(0, c)],
        );
    }
    // rank 20 in (0.1, 0.5]: 0.1 + 0.4 × 10/20.
    let r = iq(&s, "histogram_quantile(0.5, h_bucket)", 0);
    assert_eq!(r[0].0, "job=a");
    approx(r[0].1, 0.3);
    // Beyond the last finite bucket: its upper bound.
    assert_eq!(one(&s, "histogram_quantile(0.99, h_bucket)", 0), 1.0);
    assert!(one(&s, "histogram_quantile(0.5, h_bucket{le!=\"+Inf\"})", 0).is_nan());
    assert_eq!(
        one(&s, "histogram_quantile(-1, h_bucket)", 0),
        f64::NEG_INFINITY
    );
}

#[test]
fn math_date_and_misc_functions() {
    let mut s = MemSource::default();
    s.add(&[("__name__", "g"), ("k", "a")], vec![(0, -2.5)]);
    s.add(&[("__name__", "g"), ("k", "b")], vec![(0, 4.0)]);
    assert_eq!(
        iq(&s, "abs(g)", 0),
        vec![("k=a".into(), 2.5), ("k=b".into(), 4.0)]
    );
    assert_eq!(iq(&s, "ceil(g)", 0)[0].1, -2.0);
    assert_eq!(iq(&s, "floor(g)", 0)[0].1, -3.0);
    assert_eq!(iq(&s, "round(g)", 0)[0].1, -2.0); // half rounds up
    assert_eq!(iq(&s, "round(g, 2)", 0)[1].1, 4.0);
    assert_eq!(iq(&s, "sqrt(g)", 0)[1].1, 2.0);
    assert!(iq(&s, "sqrt(g)", 0)[0].1.is_nan());
    assert_eq!(
        iq(&s, "sgn(g)", 0),
        vec![("k=a".into(), -1.0), ("k=b".into(), 1.0)]
    );
    assert_eq!(iq(&s, "log2(g)", 0)[1].1, 2.0);
    assert_eq!(
        iq(&s, "clamp(g, -1, 3)", 0),
        vec![("k=a".into(), -1.0), ("k=b".into(), 3.0)]
    );
    assert!(iq(&s, "clamp(g, 3, -1)", 0).is_empty());
    assert_eq!(iq(&s, "clamp_min(g, 0)", 0)[0].1, 0.0);
    assert_eq!(iq(&s, "clamp_max(g, 0)", 0)[1].1, 0.0);
    assert_eq!(iq_ordered(&s, "sort_desc(g)", 0)[0].1, 4.0);
    assert_eq!(iq_ordered(&s, "sort(g)", 0)[0].1, -2.5);
    // NaN last in both orders, as Prometheus sorts.
    let order = |q: &str| -> Vec<String> {
        iq_ordered(&s, q, 0)
            .into_iter()
            .map(|(_, v)| format_value(v))
            .collect()
    };
    let with_nan = "g or label_replace(vector(NaN), \"k\", \"n\", \"\", \"\")";
    assert_eq!(order(&format!("sort({with_nan})")), ["-2.5", "4", "NaN"]);
    assert_eq!(
        order(&format!("sort_desc({with_nan})")),
        ["4", "-2.5", "NaN"]
    );
    assert_eq!(one(&s, "scalar(g{k=\"b\"})", 0), 4.0);
    assert!(one(&s, "scalar(g)", 0).is_nan());
    assert_eq!(one(&s, "time()", 90 * S), 90.0);
    assert_eq!(iq(&s, "vector(7)", 0), vec![("".into(), 7.0)]);
    assert!(iq(&s, "absent(g)", 0).is_empty());
    assert_eq!(
        iq(&s, "absent(nope{x=\"1\"})", 0),
        vec![("x=1".into(), 1.0)]
    );
    // timestamp() of a selector: the sample's own time.
    assert_eq!(one(&s, "timestamp(g{k=\"a\"})", 30 * S), 0.0);
    assert_eq!(one(&s, "timestamp(-g{k=\"a\"})", 30 * S), 30.0);
    // 2024-02-29T13:45:00Z
    let t = 1_709_214_300 * S;
    assert_eq!(one(&s, "year()", t), 2024.0);
    assert_eq!(one(&s, "month()", t), 2.0);
    assert_eq!(one(&s, "day_of_month()", t), 29.0);
    assert_eq!(one(&s, "days_in_month()", t), 29.0);
    assert_eq!(one(&s, "day_of_week()", t), 4.0);
    assert_eq!(one(&s, "hour()", t), 13.0);
    assert_eq!(one(&s, "minute(vector(time()))", t), 45.0);
}

#[test]
fn range_query_points_and_shapes() {
    let s = counter_src();
    match range_query(&s, "c", 0, 100 * S, 30 * S, &opts()).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(
                m[0].samples,
                vec![(0, 0.0), (30 * S, 30.0), (60 * S, 60.0), (90 * S, 90.0)]
            );
        }
        other => panic!("{other:?}"),
    }
    match range_query(&s, "time()", 0, 20 * S, 10 * S, &opts()).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m[0].labels, Labels::default());
            assert_eq!(m[0].samples, vec![(0, 0.0), (10 * S, 10.0), (20 * S, 20.0)]);
        }
        other => panic!("{other:?}"),
    }
    // @ start() / end() refer to the range query's ends.
    match range_query(&s, "c @ end()", 0, 20 * S, 10 * S, &opts()).unwrap() {
        Value::Matrix(m) => assert!(m[0].samples.iter().all(|p| p.1 == 20.0)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        range_query(&s, "c[1m]", 0, 20 * S, 10 * S, &opts()),
        Err(PromError::BadData(_))
    ));
    assert!(matches!(
        range_query(&s, "c", 0, 20 * S, 0, &opts()),
        Err(PromError::BadData(_))
    ));
    let v = instant_query(&s, "\"x\"", 5 * S, &opts()).unwrap();
    assert_eq!(
        v,
        Value::String {
            t: 5 * S,
            v: "x".into()
        }
    );
    let v = instant_query(&s, "c", 5 * S, &opts()).unwrap();
    assert_eq!(
        v,
        Value::Vector(vec![Sample {
            labels: labels(&[("__name__", "c"), ("job", "a")]),
            t: 5 * S,
            v: 0.0
        }])
    );
}

#[test]
fn limits_and_errors() {
    let s = counter_src();
    let small = Options {
        max_samples: 10,
        ..Options::default()
    };
    assert!(matches!(
        instant_query(&s, "c[10m]", 600 * S, &small),
        Err(PromError::TooManySamples)
    ));
    assert!(matches!(
        range_query(&s, "vector(1)", 0, 100 * S, S, &small),
        Err(PromError::TooManySamples)
    ));
    let no_time = Options {
        timeout: Duration::ZERO,
        ..Options::default()
    };
    std::thread::sleep(Duration::from_millis(2));
    assert!(matches!(
        range_query(&s, "c", 0, 100 * S, S, &no_time),
        Err(PromError::Timeout)
    ));
    assert!(matches!(err(&s, "sum(", 0), PromError::BadData(_)));
    // Unsupported features are named, never answered wrongly.
    for q in [
        "limitk(1, c)",
        "sort_by_label(c, \"job\")",
        "mad_over_time(c[1m])",
        "histogram_count(c)",
    ] {
        match instant_query(&s, q, 0, &opts()) {
            Err(PromError::BadData(m)) => assert!(m.contains("not supported"), "{q}: {m}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    struct Failing;
    impl kinsight_promql::Source for Failing {
        fn select(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Series>, String> {
            Err("disk on fire".into())
        }
    }
    assert!(matches!(
        instant_query(&Failing, "c", 0, &opts()),
        Err(PromError::Source(m)) if m == "disk on fire"
    ));
}

#[test]
fn duplicate_label_sets_are_refused() {
    let mut s = MemSource::default();
    s.add(&[("__name__", "a"), ("i", "1")], vec![(0, 1.0)]);
    s.add(&[("__name__", "b"), ("i", "1")], vec![(0, 2.0)]);
    let e = err(&s, "abs({i=\"1\"})", 0);
    assert!(e.to_string().contains("same labelset"), "{e}");
}

#[test]
fn extreme_queries_do_not_panic() {
    let s = counter_src();
    let quick = Options {
        timeout: Duration::from_millis(300),
        max_samples: 1_000_000,
        ..Options::default()
    };
    for q in [
        "c offset 100000000y",
        "c offset -100000000y",
        "c @ 1e15",
        "c @ -1e15",
        "rate(c[100000000y])",
        "rate(c[1ms])",
        "c[1d:1ms]",
        "max_over_time(vector(1)[1d:1ms])",
        "c[100000000y:100000000y]",
        "topk(1e300, c)",
        "topk(NaN, c)",
        "quantile(NaN, c)",
        "histogram_quantile(0.5, c)",
        "round(c, 0)",
        "label_replace(c, \"a\", \"$99\", \"job\", \"(.*)\")",
        "day_of_week(vector(1e300))",
        "year(vector(NaN))",
    ] {
        let _ = instant_query(&s, q, 600 * S, &quick);
        let _ = range_query(&s, q, 0, 600 * S, 60 * S, &quick);
    }
}
