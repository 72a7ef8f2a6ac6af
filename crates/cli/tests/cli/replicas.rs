//! Replicated servers (issue 16) as real `kinsight server` processes sharing a real SeaweedFS
//! bucket and a real PostgreSQL catalogue (Debian's package, started by the test as the
//! `postgres` user): a replica killed with SIGKILL and its disk deleted mid-ingest loses no
//! acknowledged event, its writers fail over, and what one replica did is seen on the others.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinsight_catalogue::testing::PgServer;
use reqwest::Method;
use serde_json::json;

use crate::seaweed::Seaweed;
use crate::server::{Ledger, ServerProc, TOKEN, all_messages, api, batch, send, writer};

fn replica(dir: &Path, name: &str, s3: &Seaweed, store: &str, catalogue: &str) -> ServerProc {
    let mut env = s3.env();
    env.push(("KINSIGHT_CATALOGUE", catalogue.to_string()));
    env.push(("KINSIGHT_REPLICA_ID", name.to_string()));
    ServerProc::start(&dir.join(name), &["--object-store", store], &env)
}

/// The (writer, batch) pairs stored, and whether any event is there twice.
async fn stored_batches(url: &str) -> (BTreeSet<(usize, usize)>, usize) {
    let events = all_messages(url, "/crash/application").await;
    let mut seen = BTreeSet::new();
    let mut twice = 0;
    for e in &events {
        let key = (
            e["w"].as_u64().unwrap() as usize,
            e["n"].as_u64().unwrap() as usize,
            e["i"].as_u64().unwrap(),
        );
        if !seen.insert(key) {
            twice += 1;
        }
    }
    (seen.into_iter().map(|(w, n, _)| (w, n)).collect(), twice)
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::get(format!("{url}/readyz")).await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_lose_nothing_acknowledged_when_one_is_killed_with_its_disk() {
    let Some(pg) = PgServer::start() else { return };
    let Some(s3) = Seaweed::start() else { return };
    let store = format!("s3://{}/ha", s3.bucket);
    let dir = tempfile::tempdir().unwrap();
    let r: Vec<ServerProc> = ["r0", "r1", "r2"]
        .iter()
        .map(|n| replica(dir.path(), n, &s3, &store, &pg.url()))
        .collect();
    for p in &r {
        wait_ready(&p.url).await;
    }

    // What one replica does is seen on the others: a group with retention, a token.
    let (st, body) = api(
        Method::POST,
        format!("{}/v1/groups", r[0].url),
        TOKEN,
        Some(json!({"name": "/made/on/r0", "retentionDays": 7})),
    )
    .await;
    assert!(
        st < 300,
        "{st} {body}\n{}",
        crate::server::log_of(&dir.path().join("r0"))
    );
    let (st, made) = api(
        Method::POST,
        format!("{}/v1/tokens", r[1].url),
        TOKEN,
        Some(json!({"name": "ci", "scope": "read"})),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let read_token = made["token"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (g, _) = api(
            Method::GET,
            format!("{}/v1/group?group=/made/on/r0", r[2].url),
            TOKEN,
            None,
        )
        .await;
        let (t, _) = api(
            Method::GET,
            format!("{}/v1/groups", r[2].url),
            &read_token,
            None,
        )
        .await;
        if g == 200 && t == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group {g} / token {t} not seen on r2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An alarm made on r1 is seen on r2.
    let (st, body) = api(
        Method::PUT,
        format!("{}/v1/alarms", r[1].url),
        TOKEN,
        Some(cpu_alarm("made-on-r1", "http://127.0.0.1:9")),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    wait_alarm_seen(&r[2].url, "made-on-r1").await;

    // Writers on all three replicas.
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for (i, p) in r.iter().enumerate() {
        // Writers 0-1 on r0, 10-11 on r1, 20-21 on r2 (ids stay distinct).
        for w in [i * 10, i * 10 + 1] {
            tasks.push(tokio::spawn(writer(
                p.url.clone(),
                w,
                0,
                stop.clone(),
                ledger.clone(),
            )));
        }
    }
    // Until r0 has acknowledged a fair amount, then kill it and delete its disk.
    wait_acked_by_r0_writers(&ledger, 20, "r0 acknowledged too little").await;
    let mut r = r.into_iter();
    let r0 = r.next().unwrap();
    let (r1, r2) = (r.next().unwrap(), r.next().unwrap());
    r0.kill9();
    std::fs::remove_dir_all(dir.path().join("r0")).unwrap();
    // r0's writers fail over to r1 and resend what they were sending (same batch ids).
    let unknown: Vec<(usize, usize)> = ledger.lock().unwrap().unknown.iter().copied().collect();
    for (w, n) in unknown {
        let v = send(&r1.url, &format!("w{w}-b{n}"), &batch(w, n, 200))
            .await
            .unwrap();
        assert_eq!(v["accepted"], 200, "{v}");
        ledger.lock().unwrap().acked.insert((w, n));
    }
    for w in [0, 1] {
        let next = ledger
            .lock()
            .unwrap()
            .acked
            .iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, n)| n + 1)
            .max()
            .unwrap_or(0);
        tasks.push(tokio::spawn(writer(
            r1.url.clone(),
            w,
            next,
            stop.clone(),
            ledger.clone(),
        )));
    }
    // The failed-over writers get acknowledgements from r1 too.
    let before = acked_by_r0_writers(&ledger);
    wait_acked_by_r0_writers(&ledger, before + 10, "failed-over writers made no progress").await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = ledger.lock().unwrap().acked.clone();
    assert!(acked.len() > 40, "{}", acked.len());

    // Every acknowledged batch is on both survivors, once, within 2 s of the last ack.
    let since = Instant::now();
    for p in [&r1, &r2] {
        loop {
            let (stored, twice) = stored_batches(&p.url).await;
            assert_eq!(twice, 0, "an event stored twice on {}", p.url);
            if acked.is_subset(&stored) {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(2),
                "{} misses {:?}",
                p.url,
                acked.difference(&stored).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A flush on whichever replica leads, then a new replica with an empty disk answers the
    // same.
    for p in [&r1, &r2] {
        let (st, _) = api(
            Method::POST,
            format!("{}/v1/admin/flush", p.url),
            TOKEN,
            None,
        )
        .await;
        assert_eq!(st, 200);
    }
    let r3 = replica(dir.path(), "r3", &s3, &store, &pg.url());
    wait_ready(&r3.url).await;
    let (stored, twice) = stored_batches(&r3.url).await;
    assert_eq!(twice, 0);
    assert!(
        acked.is_subset(&stored),
        "the new replica misses acknowledged batches"
    );
    assert_eq!(stored, stored_batches(&r1.url).await.0);
    let (g, body) = api(
        Method::GET,
        format!("{}/v1/group?group=/made/on/r0", r3.url),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(g, 200, "{body}");
    assert_eq!(body["retentionDays"], 7, "{body}");
    wait_alarm_seen(&r3.url, "made-on-r1").await;
}

/// A node CPU alarm (10-s period, one datapoint decides) with its ALARM and OK actions at
/// `hooks/alarm` and `hooks/ok`.
fn cpu_alarm(name: &str, hooks: &str) -> serde_json::Value {
    json!({
        "AlarmName": name,
        "Namespace": "ContainerInsights",
        "MetricName": "node_cpu_utilization",
        "Dimensions": [{"Name": "ClusterName", "Value": "ha"}],
        "Statistic": "Maximum",
        "Period": 10,
        "EvaluationPeriods": 1,
        "Threshold": 50,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "ignore",
        "AlarmActions": [format!("{hooks}/alarm")],
        "OKActions": [format!("{hooks}/ok")],
    })
}

/// Waits (bounded) until replica `url` describes alarm `name`.
async fn wait_alarm_seen(url: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (st, _) = api(
            Method::GET,
            format!("{url}/v1/alarm?name={name}"),
            TOKEN,
            None,
        )
        .await;
        if st == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "alarm {name} not seen on {url}: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Batches acknowledged for the writers that started on r0 (ids below 10), wherever they went.
fn acked_by_r0_writers(ledger: &Mutex<Ledger>) -> usize {
    ledger
        .lock()
        .unwrap()
        .acked
        .iter()
        .filter(|(w, _)| *w < 10)
        .count()
}

/// Waits (at most a minute) until r0's writers have `n` acknowledged batches.
async fn wait_acked_by_r0_writers(ledger: &Mutex<Ledger>, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_by_r0_writers(ledger) < n {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A writer that behaves like the agent: a batch that fails is sent again, same id, until it
/// is acknowledged; returns the batches acknowledged and how many attempts failed.
async fn retrying_writer(
    url: String,
    w: usize,
    stop: Arc<AtomicBool>,
    failed: Arc<std::sync::atomic::AtomicUsize>,
) -> (BTreeSet<(usize, usize)>, usize) {
    let mut acked = BTreeSet::new();
    let mut failures = 0;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        match send(&url, &format!("w{w}-b{n}"), &batch(w, n, 50)).await {
            Ok(v) => {
                assert_eq!(v["accepted"], 50, "{v}");
                acked.insert((w, n));
                n += 1;
            }
            Err(e) => {
                failures += 1;
                failed.fetch_add(1, Ordering::SeqCst);
                // 503 with a message naming what is down, never another error.
                assert!(e.starts_with("503"), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (acked, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_and_s3_restarted_mid_ingest_lose_nothing_acknowledged() {
    let Some(pg) = PgServer::start() else { return };
    let Some(mut s3) = Seaweed::start() else {
        return;
    };
    let store = format!("s3://{}/ha-outage", s3.bucket);
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &s3, &store, &pg.url());
    let b = replica(dir.path(), "b", &s3, &store, &pg.url());
    wait_ready(&a.url).await;
    wait_ready(&b.url).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = [(&a, 0), (&b, 1)]
        .into_iter()
        .map(|(p, w)| {
            tokio::spawn(retrying_writer(
                p.url.clone(),
                w,
                stop.clone(),
                failed.clone(),
            ))
        })
        .collect();
    // An outage lasts until both writers have been refused during it.
    let outage_seen = |since: usize| {
        let failed = failed.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while failed.load(Ordering::SeqCst) < since + 2 {
                assert!(Instant::now() < deadline, "no writer noticed the outage");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let progress = |n: usize| {
        let (a, b) = (a.url.clone(), b.url.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (sa, _) = stored_batches(&a).await;
                let (sb, _) = stored_batches(&b).await;
                if sa.len() >= n && sb.len() >= n {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "ingest made no progress ({} / {})",
                    sa.len(),
                    sb.len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    progress(10).await;
    // PostgreSQL crashes (no shutdown checkpoint) and comes back.
    let before = failed.load(Ordering::SeqCst);
    pg.crash();
    // Writes now fail with 503 after the bounded wait; reads of what is there keep working.
    let (st, _) = api(Method::GET, format!("{}/v1/groups", a.url), TOKEN, None).await;
    assert_eq!(st, 200);
    outage_seen(before).await;
    pg.resume();
    progress(30).await;
    // The object store goes away and comes back.
    let before = failed.load(Ordering::SeqCst);
    s3.stop();
    outage_seen(before).await;
    s3.resume();
    progress(50).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeSet::new();
    let mut failures = 0;
    for w in writers {
        let (a, f) = w.await.unwrap();
        acked.extend(a);
        failures += f;
    }
    assert!(failures > 0, "the outages were never seen by a writer");
    for p in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (stored, twice) = stored_batches(&p.url).await;
            assert_eq!(twice, 0, "an event stored twice on {}", p.url);
            if acked.is_subset(&stored) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} misses {:?}",
                p.url,
                acked.difference(&stored).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn logs(dir: &Path, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("--- {n}\n{}", crate::server::log_of(&dir.join(n))))
        .collect()
}

/// Requests a webhook receiver got, by path.
type Inbox = Arc<Mutex<Vec<String>>>;

async fn receiver() -> (String, Inbox) {
    use axum::extract::{Path as UrlPath, State};
    let inbox: Inbox = Arc::default();
    async fn hook(State(inbox): State<Inbox>, UrlPath(p): UrlPath<String>) -> &'static str {
        inbox.lock().unwrap().push(p);
        "ok"
    }
    let app = axum::Router::new()
        .route("/{p}", axum::routing::post(hook))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), inbox)
}

fn count(inbox: &Inbox, path: &str) -> usize {
    inbox.lock().unwrap().iter().filter(|p| *p == path).count()
}

/// Which of `urls` holds the maintenance lease (and so evaluates and notifies), waiting for
/// one to take it.
async fn leader(urls: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for url in urls {
            if let Ok(r) = reqwest::get(format!("{url}/readyz")).await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["maintenance"] == true
            {
                return url.to_string();
            }
        }
        assert!(Instant::now() < deadline, "no replica took the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The alarm's history items of type `Action` (one per recorded delivery), from `url`.
async fn actions(url: &str, name: &str) -> usize {
    let (st, body) = api(
        Method::GET,
        format!("{url}/v1/alarm/history?name={name}"),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["HistoryItemType"] == "Action")
        .count()
}

/// Until `stop`, sends one node performance event a second with CPU `cpu` (percent, read at
/// each send) to the first replica of `urls` that answers.
async fn feeder(urls: Vec<String>, cpu: Arc<std::sync::atomic::AtomicU64>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    while !stop.load(Ordering::SeqCst) {
        let ts = chrono::Utc::now().timestamp_millis();
        let mut ev = json!({"Type": "Node", "Version": "0", "Timestamp": ts.to_string(),
            "ClusterName": "ha", "NodeName": "n1", "InstanceId": "i-1",
            "node_cpu_utilization": cpu.load(Ordering::SeqCst) as f64});
        ev["CloudWatchMetrics"] = serde_json::to_value(kinsight_model::catalogue::directives_for(
            ev.as_object().unwrap(),
            false,
        ))
        .unwrap();
        let events = json!([{"logGroupName": "/kinsight/ha/performance", "logStreamName": "n1",
            "timestamp": ts, "message": ev.to_string()}]);
        for url in &urls {
            let sent = client
                .post(format!("{url}/v1/ingest"))
                .bearer_auth(TOKEN)
                .timeout(Duration::from_secs(5))
                .json(&events)
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alarm_transition_is_notified_once_while_replicas_are_killed() {
    let Some(pg) = PgServer::start() else { return };
    let Some(s3) = Seaweed::start() else { return };
    let store = format!("s3://{}/alarms", s3.bucket);
    let dir = tempfile::tempdir().unwrap();
    let mut live: Vec<ServerProc> = ["a0", "a1", "a2"]
        .iter()
        .map(|n| replica(dir.path(), n, &s3, &store, &pg.url()))
        .collect();
    for p in &live {
        wait_ready(&p.url).await;
    }
    let (hooks, inbox) = receiver().await;
    let urls = |live: &[ServerProc]| live.iter().map(|p| p.url.clone()).collect::<Vec<_>>();
    let kill_leader = |live: &mut Vec<ServerProc>, leader: &str| {
        let i = live.iter().position(|p| p.url == leader).unwrap();
        live.remove(i).kill9();
    };

    // The alarm is made on a replica that does not lead; then the leader is killed before
    // any data arrives: the transition to ALARM is the next leader's to make.
    let first = leader(&urls(&live).iter().map(String::as_str).collect::<Vec<_>>()).await;
    let other = urls(&live).into_iter().find(|u| *u != first).unwrap();
    let (st, body) = api(
        Method::PUT,
        format!("{other}/v1/alarms"),
        TOKEN,
        Some(cpu_alarm("cpu-ha", &hooks)),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    kill_leader(&mut live, &first);

    let cpu = Arc::new(std::sync::atomic::AtomicU64::new(95));
    let stop = Arc::new(AtomicBool::new(false));
    let feeding = tokio::spawn(feeder(urls(&live), cpu.clone(), stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&inbox, "alarm") == 0 {
        assert!(
            Instant::now() < deadline,
            "no ALARM notification\n{}",
            logs(dir.path(), &["a0", "a1", "a2"])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once the delivery is recorded, the replica that sent it is killed too; a fresh replica
    // joins. The survivor takes over: the metric recovers and it makes the OK transition.
    let second = leader(&urls(&live).iter().map(String::as_str).collect::<Vec<_>>()).await;
    let survivor = urls(&live).into_iter().find(|u| *u != second).unwrap();
    while actions(&survivor, "cpu-ha").await < 1 {
        assert!(Instant::now() < deadline, "the delivery was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill_leader(&mut live, &second);
    live.push(replica(dir.path(), "a3", &s3, &store, &pg.url()));
    wait_ready(&live[1].url).await;
    cpu.store(10, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&inbox, "ok") == 0 || actions(&survivor, "cpu-ha").await < 2 {
        assert!(
            Instant::now() < deadline,
            "no OK notification recorded: {:?}\n{}",
            inbox.lock().unwrap(),
            logs(dir.path(), &["a0", "a1", "a2", "a3"])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    feeding.await.unwrap();
    // One transition, one notification each — whichever replicas lived or died.
    assert_eq!(count(&inbox, "alarm"), 1, "{:?}", inbox.lock().unwrap());
    assert_eq!(count(&inbox, "ok"), 1, "{:?}", inbox.lock().unwrap());
    assert_eq!(actions(&survivor, "cpu-ha").await, 2);
    let (st, body) = api(
        Method::GET,
        format!("{}/v1/alarm?name=cpu-ha", live[1].url),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(
        (st, body["StateValue"].as_str()),
        (200, Some("OK")),
        "{body}"
    );
}

/// Node CPU samples (EMF) at `times`, through replica `url`.
async fn ingest_cpu(url: &str, times: &[i64], cpu: f64) {
    let events: Vec<serde_json::Value> = times
        .iter()
        .map(|ts| {
            let mut ev = json!({"Type": "Node", "Version": "0", "Timestamp": ts.to_string(),
                "ClusterName": "history", "NodeName": "n1", "InstanceId": "i-1",
                "node_cpu_utilization": cpu});
            ev["CloudWatchMetrics"] = serde_json::to_value(
                kinsight_model::catalogue::directives_for(ev.as_object().unwrap(), false),
            )
            .unwrap();
            json!({"logGroupName": "/kinsight/history/performance", "logStreamName": "n1",
                "timestamp": ts, "message": ev.to_string()})
        })
        .collect();
    let v = send(url, &format!("cpu-{}", times[0]), &events)
        .await
        .unwrap();
    assert_eq!(v["accepted"], times.len(), "{v}");
}

/// (sample count, sum) of the node CPU samples `url` answers for [from, to).
async fn cpu_totals(url: &str, from: i64, to: i64) -> (f64, f64) {
    let mut out = [0.0; 2];
    for (i, stat) in ["SampleCount", "Sum"].iter().enumerate() {
        let (st, v) = api(
            Method::POST,
            format!("{url}/v1/metrics/query"),
            TOKEN,
            Some(
                json!({"Namespace": "ContainerInsights", "MetricName": "node_cpu_utilization",
                "Dimensions": [{"Name": "ClusterName", "Value": "history"}], "Statistic": stat,
                "Period": 3600, "StartTime": from, "EndTime": to}),
            ),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        out[i] = v["Series"][0]["Values"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).sum())
            .unwrap_or(0.0);
    }
    (out[0], out[1])
}

/// Remote-writes `queue_depth{job="history"}` = 1, 2, … at `times` through replica `url`.
async fn remote_write_queue(url: &str, times: &[i64]) {
    use kinsight_metrics::remote_write::prompb::{TimeSeries, WriteRequest};
    let samples: Vec<(i64, f64)> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, (i + 1) as f64))
        .collect();
    let req = WriteRequest {
        timeseries: vec![TimeSeries::new(
            &[("__name__", "queue_depth"), ("job", "history")],
            &samples,
        )],
        metadata: vec![],
    };
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/write"))
        .bearer_auth(TOKEN)
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(req.to_body())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        204,
        "{}",
        resp.text().await.unwrap()
    );
}

/// `count_over_time(queue_depth[2h])` and `sum_over_time(…)` at `at_ms` from `url`'s PromQL API
/// (0, 0 when the series is unknown there).
async fn queue_totals(url: &str, at_ms: i64) -> (f64, f64) {
    let mut out = [0.0; 2];
    for (i, f) in ["count_over_time", "sum_over_time"].iter().enumerate() {
        let q = format!("{f}(queue_depth{{job=\"history\"}}[2h])");
        let t = format!("{:.3}", at_ms as f64 / 1000.0);
        let (st, v) = api(
            Method::GET,
            format!("{url}/api/v1/query?query={}&time={t}", url_escape(&q)),
            TOKEN,
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        out[i] = v["data"]["result"][0]["value"][1]
            .as_str()
            .map_or(0.0, |x| x.parse().unwrap());
    }
    (out[0], out[1])
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_joins_after_the_log_was_truncated_has_the_whole_metric_history() {
    let Some(pg) = PgServer::start() else { return };
    let Some(s3) = Seaweed::start() else { return };
    let store = format!("s3://{}/history", s3.bucket);
    let dir = tempfile::tempdir().unwrap();
    let r: Vec<ServerProc> = ["h0", "h1"]
        .iter()
        .map(|n| replica(dir.path(), n, &s3, &store, &pg.url()))
        .collect();
    for p in &r {
        wait_ready(&p.url).await;
    }
    let catalogue = kinsight_catalogue::Catalogue::connect(&pg.url())
        .await
        .unwrap();

    // Thirty samples in the last half hour, acknowledged by h0 and in its metric store.
    let now = chrono::Utc::now().timestamp_millis();
    let (from, to) = (now - 3_600_000, now + 60_000);
    let times: Vec<i64> = (0..30).map(|i| now - 1_800_000 + i * 60_000).collect();
    ingest_cpu(&r[0].url, &times, 40.0).await;
    // And thirty remote-write samples (issue 17): the other replica answers them at once.
    remote_write_queue(&r[0].url, &times).await;
    let data_seq = catalogue.last_seq().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue_totals(&r[1].url, now).await != (30.0, 465.0) {
        assert!(
            Instant::now() < deadline,
            "h1 never answered h0's remote-write samples"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while cpu_totals(&r[0].url, from, to).await != (30.0, 1200.0) {
        assert!(
            Instant::now() < deadline,
            "h0's metric store never had the samples"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Keep the log moving and the leader flushing until it has truncated the log past those
    // samples: from then on only the published metric snapshot holds them.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    loop {
        let first = catalogue.log_after(0, 1).await.unwrap();
        if first.first().is_none_or(|row| row.first_seq > data_seq)
            && catalogue.last_seq().await.unwrap() > data_seq
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log was never truncated past the samples ({first:?})\n{}",
            logs(dir.path(), &["h0", "h1"])
        );
        n += 1;
        let v = send(&r[1].url, &format!("filler-{n}"), &batch(99, n, 1))
            .await
            .unwrap();
        assert_eq!(v["accepted"], 1, "{v}");
        for p in &r {
            let (st, body) = api(
                Method::POST,
                format!("{}/v1/admin/flush", p.url),
                TOKEN,
                None,
            )
            .await;
            assert_eq!(st, 200, "{body}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A replica with an empty disk joins and answers the same.
    let h2 = replica(dir.path(), "h2", &s3, &store, &pg.url());
    wait_ready(&h2.url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = cpu_totals(&h2.url, from, to).await;
        if got == (30.0, 1200.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new replica answers {got:?}, not (30, 1200)\n{}",
            logs(dir.path(), &["h2"])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cpu_totals(&r[1].url, from, to).await,
        (30.0, 1200.0),
        "and so does the replica that was up all along"
    );
    assert_eq!(
        queue_totals(&h2.url, now).await,
        (30.0, 465.0),
        "the remote-write samples are in the published history too"
    );
}
