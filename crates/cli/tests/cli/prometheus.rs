//! kinsight's Prometheus side against the real Prometheus (Debian's /usr/bin/prometheus), as
//! real processes: after the same remote writes both HTTP APIs answer the same queries and
//! listings alike; a real Prometheus remote-writes to kinsight; samples acknowledged by
//! `POST /api/v1/write` survive `kill -9`, and the order rule survives the restart.
//!
//! Without /usr/bin/prometheus the tests that need it fail when `CI` is set and are skipped
//! otherwise. The Prometheus side (process, client, data set, queries, comparison) is
//! crates/promql/tests/support/prometheus.rs, shared with the engine's differential test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kinsight_metrics::remote_write::prompb;
use kinsight_promql::{Series, Value};

use crate::prom_oracle::{
    At, DATASET_METRICS, Prometheus, Tally, dataset, dataset_base, dataset_end, get_json,
    is_stale_marker, now_ms, oracle, port_of, prometheus_available, remote_write_request, secs,
    split_by_time, try_remote_write, urlencode, write_request,
};
use crate::server::{ServerProc, TOKEN, log_of};

/// Polls `f` every 100 ms until it gives `Ok`, for at most `within`; panics with `what`
/// and the last `Err` otherwise.
fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what} within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The one value of a one-sample vector answer.
fn single_value(v: &Result<Value, String>) -> Option<f64> {
    match v {
        Ok(Value::Vector(s)) if s.len() == 1 => Some(s[0].v),
        _ => None,
    }
}

/// A listing answer (`/api/v1/series`, `/api/v1/labels`, `/api/v1/label/…/values`) as a set
/// of JSON texts (series as sorted label maps).
fn listing(port: u16, token: Option<&str>, path: &str) -> Result<BTreeSet<String>, String> {
    let j = get_json(port, token, path);
    if j["status"] != "success" {
        return Err(format!("{}: {}", j["errorType"], j["error"]));
    }
    Ok(j["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: not a list: {j}"))
        .iter()
        .map(|item| match item {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, &serde_json::Value> = m.iter().collect();
                serde_json::to_string(&sorted).unwrap()
            }
            other => other.to_string(),
        })
        .collect())
}

/// Whether kinsight's metric store under `data_dir` has flushed a segment (its layout:
/// `metrics/segments/<tier>/<generation>.kms`).
fn metric_segment_written(data_dir: &Path) -> bool {
    let Ok(tiers) = std::fs::read_dir(data_dir.join("metrics").join("segments")) else {
        return false;
    };
    tiers.flatten().any(|tier| {
        std::fs::read_dir(tier.path()).is_ok_and(|files| {
            files
                .flatten()
                .any(|f| f.path().extension().is_some_and(|e| e == "kms"))
        })
    })
}

/// Waits until kinsight (`kin`) and Prometheus hold every sample of `data`, then compares
/// their answers: every query of the list through both query APIs, and the listings
/// restricted with match[] to the data set's names. `pass` names the comparison.
fn compare_apis(
    pass: &str,
    kin: u16,
    prom: &Prometheus,
    data_dir: &Path,
    base: i64,
    data: &[Series],
) {
    let end = dataset_end(base);
    // Both hold every sample (staleness markers are not counted by count_over_time); per
    // metric name: dup_a and dup_b give one label set once the name is dropped.
    let samples = data
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|p| !is_stale_marker(p.1))
        .count() as f64;
    let per_name: Vec<String> = DATASET_METRICS
        .iter()
        .map(|n| format!("sum(count_over_time({n}[1h]))"))
        .collect();
    let count = At::Instant(end + 60_000).path(&per_name.join(" + "));
    let all = format!("{{__name__=~\"{}\"}}", DATASET_METRICS.join("|"));
    let series = At::Instant(end + 60_000).path(&format!("count(last_over_time({all}[1h]))"));
    poll(
        &format!("{pass}: both servers hold the data set"),
        Duration::from_secs(60),
        || {
            let got = [
                single_value(&oracle(prom.port, None, &count)),
                single_value(&oracle(kin, Some(TOKEN), &count)),
                single_value(&oracle(prom.port, None, &series)),
                single_value(&oracle(kin, Some(TOKEN), &series)),
            ];
            let want = [
                Some(samples),
                Some(samples),
                Some(data.len() as f64),
                Some(data.len() as f64),
            ];
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "samples and series (Prometheus, kinsight): {got:?}, want {want:?}; log: {}",
                    log_of(data_dir)
                ))
            }
        },
    );

    // The queries through both query APIs ("ours": kinsight, "theirs": Prometheus).
    let tally = Tally::compare_all(
        base,
        |q, at| oracle(kin, Some(TOKEN), &at.path(q)),
        |q, at| oracle(prom.port, None, &at.path(q)),
    );
    eprintln!(
        "{pass}: query API: {} queries, {} comparisons, {} non-empty, {} refused by both, {} differences",
        tally.queries,
        tally.compared,
        tally.non_empty,
        tally.both_err.len(),
        tally.failures.len()
    );
    assert!(tally.queries >= 30 && tally.compared >= 30 * 7);

    // Listings restricted to the data set with match[] (kinsight may hold other series), with
    // a time range covering the data and without one.
    let selector_sets: Vec<Vec<String>> = vec![
        vec![all.clone()],
        vec![
            "http_requests_total{job=\"api\"}".into(),
            "machine_info".into(),
        ],
        vec!["{__name__=~\"temperature|dup_.*\", room!=\"y\"}".into()],
        vec![
            "req_duration_seconds_bucket{le=~\"0\\\\..*|\\\\+Inf\"}".into(),
            "{__name__=\"temperature\"}".into(),
            "{__name__=~\"dup_a|nonexistent\"}".into(),
        ],
    ];
    let ranges = [
        format!("&start={}&end={}", secs(base - 60_000), secs(end + 60_000)),
        String::new(),
    ];
    let mut listed = 0;
    let mut non_empty = 0;
    let mut listing_failures = Vec::new();
    for set in &selector_sets {
        let matches: String = set
            .iter()
            .map(|s| format!("match[]={}", urlencode(s)))
            .collect::<Vec<_>>()
            .join("&");
        for range in &ranges {
            for endpoint in [
                "/api/v1/series",
                "/api/v1/labels",
                "/api/v1/label/job/values",
                "/api/v1/label/__name__/values",
            ] {
                let path = format!("{endpoint}?{matches}{range}");
                let ours = listing(kin, Some(TOKEN), &path);
                let theirs = listing(prom.port, None, &path);
                listed += 1;
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) if a == b => non_empty += usize::from(!b.is_empty()),
                    _ => listing_failures.push(format!(
                        "{endpoint} match[] {set:?} {range}\n ours:   {ours:?}\n theirs: {theirs:?}"
                    )),
                }
            }
        }
    }
    eprintln!(
        "{pass}: listings: {listed} comparisons ({non_empty} non-empty answers), {} differences",
        listing_failures.len()
    );
    tally.check();
    assert!(
        listing_failures.is_empty(),
        "{pass}: {}",
        listing_failures.join("\n\n")
    );
    // Only the job values of the series without a job label (2 listings) are empty.
    assert_eq!(non_empty + 2, listed, "{pass}: empty listings");
}

#[test]
fn kinsight_and_prometheus_answer_alike_after_the_same_remote_writes() {
    let Some(prom) = Prometheus::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = ServerProc::start(&data_dir, &[], &[]);
    let base = dataset_base();
    let data = dataset(base);
    // The same requests to both, oldest first: 4 time slices, so 4 WAL records on kinsight.
    let parts = split_by_time(&data, 4);
    assert_eq!(parts.len(), 4);
    let send = |kin: u16, part: &[Series]| {
        let req = write_request(part);
        remote_write_request(prom.port, None, &req);
        remote_write_request(kin, Some(TOKEN), &req);
    };
    for part in &parts[..3] {
        send(port_of(&server.url), part);
    }
    // The first three in a flushed segment of kinsight's metric store (its head is flushed
    // once 30 s old), the last one in its head.
    poll(
        "kinsight's metric store flushes a segment",
        Duration::from_secs(120),
        || {
            if metric_segment_written(&data_dir) {
                Ok(())
            } else {
                Err(log_of(&data_dir))
            }
        },
    );
    send(port_of(&server.url), &parts[3]);
    compare_apis(
        "segments and head",
        port_of(&server.url),
        &prom,
        &data_dir,
        base,
        &data,
    );

    // Again after kill -9 and a restart: what was not flushed comes back from the WAL.
    server.kill9();
    let server = ServerProc::start(&data_dir, &[], &[]);
    compare_apis(
        "after kill -9",
        port_of(&server.url),
        &prom,
        &data_dir,
        base,
        &data,
    );
}

#[test]
fn a_real_prometheus_remote_writes_to_kinsight() {
    if !prometheus_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = ServerProc::start(&data_dir, &[], &[]);
    let kin = port_of(&server.url);
    let url = server.url.clone();
    let prom = Prometheus::start_with(|port| {
        format!(
            "global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prom
    scrape_interval: 1s
    static_configs:
      - targets: ['127.0.0.1:{port}']
remote_write:
  - url: {url}/api/v1/write
    authorization:
      credentials: {TOKEN}
    queue_config:
      batch_send_deadline: 1s
"
        )
    })
    .unwrap();

    // kinsight answers up == 1 and has prometheus_build_info.
    let up = format!("/api/v1/query?query={}", urlencode("up{job=\"prom\"}"));
    let build = format!(
        "/api/v1/query?query={}",
        urlencode("prometheus_build_info{job=\"prom\"}")
    );
    poll(
        "kinsight answers up{job=\"prom\"} 1 and has prometheus_build_info",
        Duration::from_secs(90),
        || {
            let u = oracle(kin, Some(TOKEN), &up);
            let b = oracle(kin, Some(TOKEN), &build);
            if single_value(&u) == Some(1.0) && single_value(&b) == Some(1.0) {
                Ok(())
            } else {
                Err(format!(
                    "up: {u:?}, build info: {b:?}\nkinsight log: {}\nprometheus log: {}",
                    log_of(&data_dir),
                    prom.log()
                ))
            }
        },
    );

    // The same series (names and labels) on both.
    let mut listed = 0;
    for path in [
        format!(
            "/api/v1/series?match[]={}&match[]={}",
            urlencode("up"),
            urlencode("prometheus_build_info")
        ),
        format!(
            "/api/v1/labels?match[]={}",
            urlencode("prometheus_build_info")
        ),
        format!(
            "/api/v1/label/instance/values?match[]={}",
            urlencode("up{job=\"prom\"}")
        ),
        format!(
            "/api/v1/label/__name__/values?match[]={}",
            urlencode("{__name__=~\"up|prometheus_build_info|scrape_.*\", job=\"prom\"}")
        ),
    ] {
        // Polled: the series of one scrape may reach kinsight in several requests.
        poll(&format!("{path} alike"), Duration::from_secs(30), || {
            let ours = listing(kin, Some(TOKEN), &path)?;
            let theirs = listing(prom.port, None, &path)?;
            if ours == theirs && !ours.is_empty() {
                Ok(())
            } else {
                Err(format!("ours: {ours:?}\ntheirs: {theirs:?}"))
            }
        });
        listed += 1;
    }

    // The raw samples of a few series up to the newest kinsight has of each: equal (remote
    // write keeps the order of a series' samples, so kinsight has every earlier one).
    let mut compared = 0;
    for name in [
        "up",
        "prometheus_build_info",
        "scrape_samples_scraped",
        "scrape_duration_seconds",
        "prometheus_tsdb_head_series",
    ] {
        let selector = format!("{name}{{job=\"prom\"}}");
        poll(
            &format!("equal raw samples of {selector}"),
            Duration::from_secs(60),
            || {
                let newest = At::Instant(now_ms()).path(&format!("{selector}[10m]"));
                let t = match oracle(kin, Some(TOKEN), &newest) {
                    Ok(Value::Matrix(m)) if m.len() == 1 && !m[0].samples.is_empty() => {
                        m[0].samples.last().unwrap().0
                    }
                    other => return Err(format!("kinsight's newest: {other:?}")),
                };
                let path = At::Instant(t).path(&format!("{selector}[10m]"));
                let ours = oracle(kin, Some(TOKEN), &path)?;
                let theirs = oracle(prom.port, None, &path)?;
                match (&ours, &theirs) {
                    (Value::Matrix(a), Value::Matrix(b)) if a == b && a[0].samples.len() >= 2 => {
                        Ok(())
                    }
                    _ => Err(format!("ours: {ours:?}\ntheirs: {theirs:?}")),
                }
            },
        );
        compared += 1;
    }
    eprintln!("{listed} listings and {compared} series' raw samples equal");
}

/// Requests of the kill test: request `r` holds 3 samples (timestamps `base + (3r + k) s`)
/// of each of `SERIES` series, values `(3r + k) * 100 + s`.
const SERIES: usize = 50;

fn kill_request(base: i64, r: usize) -> prompb::WriteRequest {
    let series: Vec<Series> = (0..SERIES)
        .map(|s| Series {
            labels: kinsight_promql::Labels::new(vec![
                ("__name__".into(), "kill9_samples".into()),
                ("job".into(), "kill9".into()),
                ("s".into(), format!("{s:02}")),
            ]),
            samples: (0..3)
                .map(|k| {
                    let i = (3 * r + k) as i64;
                    (base + i * 1_000, (i * 100 + s as i64) as f64)
                })
                .collect(),
        })
        .collect();
    write_request(&series)
}

/// The samples of series `s` of requests `0..requests`.
fn kill_samples(base: i64, s: usize, requests: usize) -> Vec<(i64, f64)> {
    (0..3 * requests as i64)
        .map(|i| (base + i * 1_000, (i * 100 + s as i64) as f64))
        .collect()
}

#[test]
fn acknowledged_remote_write_samples_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // Flushes every second: the kill also lands around flushes.
    let flags = ["--flush-interval-secs", "1"];
    let server = ServerProc::start(&data_dir, &flags, &[]);
    let port = port_of(&server.url);
    let base = (now_ms() - 30 * 60_000) / 1_000 * 1_000;
    const FIRST: usize = 200;
    const MOST: usize = 400;
    for r in 0..FIRST {
        let (status, body) = try_remote_write(port, Some(TOKEN), &kill_request(base, r)).unwrap();
        assert_eq!(status, 204, "request {r}: {body}");
    }
    // More requests while the server is killed: those acknowledged must survive too.
    let acked = Arc::new(AtomicUsize::new(FIRST));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for r in FIRST..MOST {
                match try_remote_write(port, Some(TOKEN), &kill_request(base, r)) {
                    Ok((204, _)) => acked.store(r + 1, Ordering::SeqCst),
                    Ok((status, body)) => panic!("request {r}: {status} {body}"),
                    Err(_) => return,
                }
            }
        })
    };
    poll(
        "20 more requests acknowledged",
        Duration::from_secs(60),
        || {
            if acked.load(Ordering::SeqCst) >= FIRST + 20 {
                Ok(())
            } else {
                Err(format!("{} acknowledged", acked.load(Ordering::SeqCst)))
            }
        },
    );
    server.kill9();
    writer.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);

    let server = ServerProc::start(&data_dir, &flags, &[]);
    let port = port_of(&server.url);
    let last = base + (3 * MOST as i64 - 1) * 1_000;
    let path = At::Instant(last).path("kill9_samples{job=\"kill9\"}[1h]");
    // Every acknowledged sample, and of the request unanswered at the kill all or nothing.
    let got = poll(
        "every acknowledged sample answered after the restart",
        Duration::from_secs(60),
        || match oracle(port, Some(TOKEN), &path) {
            Ok(Value::Matrix(m))
                if m.len() == SERIES && m.iter().all(|s| s.samples.len() >= 3 * acked) =>
            {
                Ok(m)
            }
            other => Err(format!(
                "{acked} requests acknowledged; answer: {}",
                match other {
                    Ok(Value::Matrix(m)) => format!(
                        "{} series, sample counts {:?}",
                        m.len(),
                        m.iter().map(|s| s.samples.len()).collect::<Vec<_>>()
                    ),
                    o => format!("{o:?}"),
                }
            )),
        },
    );
    let mut got = got;
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    let stored = got[0].samples.len() / 3;
    assert!(
        stored == acked || stored == acked + 1,
        "{acked} requests acknowledged, {stored} stored"
    );
    for (s, series) in got.iter().enumerate() {
        assert_eq!(
            series.labels.get("s"),
            Some(format!("{s:02}").as_str()),
            "{:?}",
            series.labels
        );
        assert_eq!(
            series.samples,
            kill_samples(base, s, stored),
            "series {s}: {acked} requests acknowledged"
        );
    }
    eprintln!(
        "{acked} requests acknowledged ({} samples), {stored} stored after kill -9",
        acked * 3 * SERIES
    );

    // The order rule survives the restart: older than series 0's newest is refused (400
    // naming it), the newer sample of series 1 in the same request is kept.
    let newest = got[0].samples.last().unwrap().0;
    let req = write_request(&[
        Series {
            labels: got[0].labels.clone(),
            samples: vec![(newest - 500, -1.0)],
        },
        Series {
            labels: got[1].labels.clone(),
            samples: vec![(newest + 1_000, -2.0)],
        },
    ]);
    let (status, body) = try_remote_write(port, Some(TOKEN), &req).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("out of order"), "{body}");
    let check = At::Instant(newest + 1_000).path("kill9_samples{job=\"kill9\", s=~\"00|01\"}[5s]");
    let answer = poll(
        "the kept sample answered",
        Duration::from_secs(30),
        || match oracle(port, Some(TOKEN), &check) {
            Ok(Value::Matrix(m))
                if m.len() == 2 && m[1].samples.last() == Some(&(newest + 1_000, -2.0)) =>
            {
                Ok(m)
            }
            other => Err(format!("{other:?}")),
        },
    );
    assert!(
        answer[0].samples.iter().all(|p| p.1 >= 0.0),
        "the refused sample was stored: {:?}",
        answer[0].samples
    );
}
