//! The guards against hostile queries: nesting and length limits checked before parsing
//! (a query at the limits evaluates on a thread with a 2 MiB stack, one over is refused),
//! durations the parser would panic on, subquery step counting, extreme times.

mod support;

use std::time::Duration;

use kinsight_promql::{
    MAX_NESTING_DEPTH, MAX_OPERATORS, MAX_QUERY_BYTES, Options, PromError, Value, check,
    instant_query, parse_selector, range_query,
};
use support::MemSource;

const S: i64 = 1000;

fn src() -> MemSource {
    let mut s = MemSource::default();
    s.add(
        &[("__name__", "up"), ("job", "a")],
        (0..20).map(|i| (i * 15 * S, i as f64)).collect(),
    );
    s
}

/// Runs `f` on a thread with a 2 MiB stack (tokio's worker and blocking threads' size).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the query overflowed or panicked on a 2 MiB stack")
}

fn is_bad_data(r: Result<Value, PromError>, what: &str) -> String {
    match r {
        Err(PromError::BadData(m)) => m,
        other => panic!("{what}: expected BadData, got {other:?}"),
    }
}

/// Nested parentheses, `depth` levels.
fn parens(depth: usize) -> String {
    format!("{}up{}", "(".repeat(depth), ")".repeat(depth))
}

/// `1+1+…`, `ops` operators, left-deep.
fn sum_chain(ops: usize) -> String {
    let mut q = "1".to_string();
    for _ in 0..ops {
        q.push_str("+1");
    }
    q
}

/// `- - - … up`, right-deep unary minus.
fn minus_chain(ops: usize) -> String {
    format!(
        "{}up",
        "-".repeat(ops)
            .chars()
            .map(|c| format!("{c} "))
            .collect::<String>()
    )
}

/// `abs(sum(…(vector(1) ^ 1 ^ … )))`: the deepest tree within both limits, through the
/// evaluator's heaviest frames (function calls, aggregations, a subquery).
fn worst(depth: usize, ops: usize) -> String {
    let rounds = (depth - 3) / 2;
    let minuses = rounds / 2;
    let mut q = format!("vector(1){}", "^1".repeat(ops - minuses));
    q = format!("max_over_time(({q})[1m:])");
    // `max_over_time(`, `(` and `vector(`: 3 levels; each round adds 2.
    for i in 0..rounds {
        q = if i % 2 == 0 {
            format!("abs(sum({q}))")
        } else {
            format!("-abs(({q}))")
        };
    }
    if (depth - 3) % 2 == 1 {
        q = format!("abs({q})");
    }
    q
}

#[test]
fn queries_at_the_limits_evaluate_on_a_2_mib_stack() {
    on_small_stack(|| {
        let s = src();
        let o = Options::default();
        for q in [
            parens(MAX_NESTING_DEPTH),
            sum_chain(MAX_OPERATORS),
            minus_chain(MAX_OPERATORS),
            worst(MAX_NESTING_DEPTH, MAX_OPERATORS),
        ] {
            instant_query(&s, &q, 100 * S, &o).unwrap_or_else(|e| panic!("{e}"));
            range_query(&s, &q, 0, 100 * S, 10 * S, &o).unwrap_or_else(|e| panic!("{e}"));
        }
        let sel = format!("{}up{{job=\"a\"}}", "");
        parse_selector(&sel).unwrap();
    });
}

#[test]
fn queries_over_the_limits_are_refused() {
    let s = src();
    let o = Options::default();
    for (q, want) in [
        (parens(MAX_NESTING_DEPTH + 1), "too deeply nested"),
        (parens(30_000), "too deeply nested"),
        (sum_chain(MAX_OPERATORS + 1), "more than 256 operators"),
        (sum_chain(30_000), "operators"),
        (minus_chain(MAX_OPERATORS + 1), "operators"),
        (
            format!("up{{job=~\"{}\"}}", "a".repeat(MAX_QUERY_BYTES)),
            "query too long",
        ),
    ] {
        let m = on_small_stack({
            let (s, o, q) = (s.clone(), o.clone(), q.clone());
            move || is_bad_data(instant_query(&s, &q, 0, &o), "instant")
        });
        assert!(m.contains(want), "{m}");
        let m = is_bad_data(range_query(&s, &q, 0, 10 * S, S, &o), "range");
        assert!(m.contains(want), "{m}");
        assert!(matches!(parse_selector(&q), Err(PromError::BadData(_))));
    }
    // Brackets, operators and `#` inside strings and comments do not count; a comment does
    // not hide what follows its line.
    let quoted = format!("up{{job!=\"{}\"}}", "((((+".repeat(200));
    check(&quoted).unwrap();
    instant_query(&s, &quoted, 0, &o).unwrap();
    check(&format!("up # {}\n", "(".repeat(1000))).unwrap();
    assert!(check(&format!("up # \"\n{}", parens(1000))).is_err());
    assert!(check(&format!("`{}`", "\\".repeat(3))).is_ok());
}

#[test]
fn durations_the_parser_would_panic_on_are_refused() {
    let s = src();
    let o = Options::default();
    for q in [
        "up[1e30]",
        "up[1E+30]",
        "up[NaN]",
        "up[Inf]",
        "up[0x7fffffffffffffff]",
        "up offset 1e20",
        "up offset -1e20",
        "up offset -Inf",
        "up[5m:1e30]",
        "max_over_time(up[1e300:])",
        "rate(up [ 1e30 ])",
    ] {
        let m = on_small_stack({
            let (s, o) = (s.clone(), o.clone());
            move || is_bad_data(instant_query(&s, q, 100 * S, &o), q)
        });
        assert!(m.contains("out of range"), "{q}: {m}");
    }
    // Bare numbers that fit are durations in seconds.
    instant_query(&s, "count_over_time(up[60])", 100 * S, &o).unwrap();
    instant_query(&s, "up offset 1e9", 100 * S, &o).unwrap();
}

#[test]
fn every_subquery_step_counts_against_max_samples() {
    let s = src();
    let o = Options {
        max_samples: 100_000,
        timeout: Duration::from_secs(20),
        ..Options::default()
    };
    let started = std::time::Instant::now();
    for q in [
        "max_over_time(nonexistent[30d:1ms])",
        "count_over_time((nonexistent > 1)[30d:1ms])",
        "max_over_time(vector(1)[30d:1ms])",
    ] {
        let r = instant_query(&s, q, 100 * S, &o);
        assert!(matches!(r, Err(PromError::TooManySamples)), "{q}: {r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // Within the limit, empty steps cost one each.
    let o = Options {
        max_samples: 200,
        ..Options::default()
    };
    let r = instant_query(&s, "max_over_time(nonexistent[100s:1s])", 100 * S, &o).unwrap();
    assert_eq!(r, Value::Vector(Vec::new()));
    let r = instant_query(&s, "max_over_time(nonexistent[300s:1s])", 100 * S, &o);
    assert!(matches!(r, Err(PromError::TooManySamples)), "{r:?}");
}

#[test]
fn extreme_times_are_refused_or_computed_without_overflow() {
    let mut s = src();
    let far = kinsight_promql::MAX_EVAL_TIME_MS;
    s.add(
        &[("__name__", "far")],
        vec![(far - 60_000, 1.0), (far - 30_000, 2.0), (far, 4.0)],
    );
    let o = Options {
        timeout: Duration::from_secs(5),
        ..Options::default()
    };
    // Outside the evaluation range: refused.
    for t in [-9_223_372_036_854_774_000, i64::MIN, far + 1, -far - 1] {
        let r = instant_query(&s, "max_over_time(vector(1)[1h:])", t, &o);
        assert!(matches!(r, Err(PromError::BadData(ref m)) if m.contains("out of range")));
        let r = range_query(&s, "vector(1)", t.min(0), t.max(0), i64::MAX / 2, &o);
        assert!(matches!(r, Err(PromError::BadData(ref m)) if m.contains("out of range")));
    }
    // At its edges, with offsets, ranges and `@` pushing times further: no overflow (a
    // panic in debug builds).
    let nested = "max_over_time((max_over_time(vector(1)[100000000y:100000000y] offset 100000000y))[100000000y:100000000y] offset 100000000y)";
    for q in [
        "max_over_time(vector(1)[1h:])",
        nested,
        "predict_linear(far[1h] @ 2305843009213693, 0)",
        "deriv(far[1h] @ 2305843009213693)",
        "rate(far[1h] @ 2305843009213693)",
        "irate(far[1h] @ 2305843009213693)",
        "max_over_time(predict_linear(far[1h] @ 2305843009213693, 0)[100000000y:100000000y] offset 100000000y)",
    ] {
        for t in [-far, far, 0] {
            let r = instant_query(&s, q, t, &o);
            assert!(
                !matches!(r, Err(PromError::BadData(_))),
                "{q} at {t}: {r:?}"
            );
        }
    }
    let r = instant_query(
        &s,
        "max_over_time(predict_linear(far[1h] @ 2305843009213693, 0)[100000000y:100000000y] offset 100000000y)",
        -far,
        &o,
    );
    assert!(r.is_ok(), "{r:?}");
}
