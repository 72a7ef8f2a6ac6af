//! Differential test against the real Prometheus (Debian's /usr/bin/prometheus): the same
//! samples are pushed to it by remote write and held by an in-memory Source, then the same
//! queries go to its HTTP API and to our engine, and the answers must be equal.
//!
//! Without /usr/bin/prometheus the test fails when `CI` is set and is skipped otherwise.
//! The Prometheus side (process, client, data set, queries, comparison) is
//! `support/prometheus.rs`, shared with the kinsight binary's tests.

mod support;

use std::time::{Duration, Instant};

use kinsight_promql::{Options, Value, instant_query, range_query};
use support::MemSource;
use support::prometheus::{
    At, Prometheus, Tally, dataset, dataset_base, dataset_end, describe, oracle, remote_write,
    secs, urlencode,
};

#[test]
fn oracle_matches_prometheus() {
    let Some(server) = Prometheus::start() else {
        return;
    };
    let base = dataset_base();
    let data = dataset(base);
    remote_write(server.port, None, &data);
    let src = MemSource {
        series: data.clone(),
    };
    let end = dataset_end(base);
    // Wait until Prometheus answers with every series (no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = format!(
            "/api/v1/query?query={}&time={}",
            urlencode("count(last_over_time({__name__=~\".+\"}[1h]))"),
            secs(end)
        );
        if let Ok(Value::Vector(v)) = oracle(server.port, None, &q) {
            if v.len() == 1 && v[0].v == data.len() as f64 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not take the samples"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let opts = Options::default();
    let tally = Tally::compare_all(
        base,
        |q, at| {
            match at {
                At::Instant(t) => instant_query(&src, q, t, &opts),
                At::Range(start, stop, step) => range_query(&src, q, start, stop, step, &opts),
            }
            .map_err(describe)
        },
        |q, at| oracle(server.port, None, &at.path(q)),
    );
    tally.check();
}
