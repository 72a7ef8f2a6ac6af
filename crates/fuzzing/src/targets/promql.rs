//! PromQL text (`/api/v1/query`, `query_range`; `kinsight_promql`), with the Prometheus API's
//! time and duration parameters (`kinsight_server::api::prometheus::{parse_time,
//! parse_duration}`). The first byte picks instant (even) or range (odd) evaluation; the rest
//! is the query, evaluated over three small in-memory series with tight limits. The same text
//! is also given to the time and duration parsers.
//!
//! Invariants: no panic, no overflow; evaluation ends within its timeout with a value or one of
//! the engine's errors; a range query answers a matrix whose points lie on the step grid inside
//! [start, end]; the value formatter prints every float of the answer.

use std::time::Duration;

use kinsight_promql::{
    Labels, MemorySource, Options, PromError, Series, Value, format_value, instant_query,
    range_query,
};
use kinsight_server::api::prometheus::{parse_duration, parse_time};

const T0: i64 = 1_767_225_600_000;

fn fixture() -> MemorySource {
    let series = |name: &str, job: &str, f: fn(i64) -> f64| Series {
        labels: Labels::new(vec![
            ("__name__".into(), name.into()),
            ("job".into(), job.into()),
        ]),
        samples: (0..40).map(|i| (T0 + i * 15_000, f(i))).collect(),
    };
    MemorySource {
        series: vec![
        series("requests_total", "api", |i| (i % 17) as f64 * 3.0),
        series("requests_total", "web", |i| i as f64),
        series("temperature", "api", |i| (i as f64).sin() * 10.0),
        ],
    }
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = parse_time(text);
    let _ = parse_duration(text);
    let opts = Options {
        lookback_ms: 300_000,
        max_samples: 200_000,
        timeout: Duration::from_secs(2),
    };
    let src = fixture();
    let (start, end, step) = (T0, T0 + 600_000, 30_000);
    let answer = if mode % 2 == 0 {
        instant_query(&src, text, end, &opts)
    } else {
        range_query(&src, text, start, end, step, &opts)
    };
    match answer {
        Ok(v) => check(&v, mode % 2 == 1, (start, end, step)),
        Err(
            PromError::BadData(_)
            | PromError::Execution(_)
            | PromError::Timeout
            | PromError::TooManySamples,
        ) => {}
        Err(PromError::Source(e)) => panic!("the fixture source never fails: {e}"),
    }
}

fn check(v: &Value, range: bool, (start, end, step): (i64, i64, i64)) {
    match v {
        Value::Scalar { v, .. } => {
            format_value(*v);
        }
        Value::String { .. } => {}
        Value::Vector(samples) => {
            assert!(!range, "a range query answers a matrix");
            for s in samples {
                format_value(s.v);
            }
        }
        Value::Matrix(series) => {
            for s in series {
                for (t, v) in &s.samples {
                    if range {
                        assert!((start..=end).contains(t) && (t - start) % step == 0, "{t}");
                    }
                    format_value(*v);
                }
            }
        }
    }
}
