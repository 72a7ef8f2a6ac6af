//! The alarm service with an injected clock over a real metric store on disk: evaluation
//! cadence, transitions, history, restarts, multi-series alarms, the Kubernetes pack, and
//! notification delivery (retries, give-up, persistence) to a real local HTTP server.

use crate::receiver::Receiver;
use kinsight_alarms::{
    AlarmConfig, AlarmService, AlarmServiceConfig, Clock, DescribeFilter, Dimension,
    HistoryItemType, ManualClock, NotifierConfig, PackOptions, StateValue, kubernetes_pack,
};
use kinsight_metrics::{MetricStore, MetricStoreConfig};
use kinsight_model::emf::Datapoint;
use std::path::Path;
use std::sync::Arc;

/// A minute boundary: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const LAG: i64 = 10_000;

pub fn cpu(ts: i64, node: &str, v: f64) -> Datapoint {
    Datapoint {
        namespace: "ContainerInsights".into(),
        name: "node_cpu_utilization".into(),
        dimensions: [
            ("ClusterName", "c1"),
            ("InstanceId", &*format!("i-{node}")),
            ("NodeName", node),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        timestamp_ms: ts,
        values: vec![v],
        unit: Some("Percent".into()),
        storage_resolution: 60,
    }
}

pub fn cpu_alarm(name: &str, node: &str) -> AlarmConfig {
    AlarmConfig {
        alarm_name: name.into(),
        namespace: "ContainerInsights".into(),
        metric_name: "node_cpu_utilization".into(),
        dimensions: vec![
            Dimension {
                name: "ClusterName".into(),
                value: "c1".into(),
            },
            Dimension {
                name: "InstanceId".into(),
                value: if node == "*" {
                    "*".into()
                } else {
                    format!("i-{node}")
                },
            },
            Dimension {
                name: "NodeName".into(),
                value: node.into(),
            },
        ],
        statistic: Some("Average".into()),
        period: 60,
        evaluation_periods: 3,
        threshold: 80.0,
        comparison_operator: "GreaterThanThreshold".into(),
        ..Default::default()
    }
}

fn config() -> AlarmServiceConfig {
    AlarmServiceConfig {
        evaluation_lag_ms: LAG,
        notifier: NotifierConfig {
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            max_attempts: 3,
            timeout_ms: 5_000,
            concurrency: 4,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> (Arc<MetricStore>, Arc<AlarmService>) {
    let store =
        Arc::new(MetricStore::open(dir.join("metrics"), MetricStoreConfig::default()).unwrap());
    let svc = AlarmService::open(dir.join("alarms"), config(), clock.clone()).unwrap();
    (store, svc)
}

fn state(svc: &AlarmService, name: &str) -> StateValue {
    svc.get(name).unwrap().state_value
}

#[test]
fn lifecycle_with_cadence_history_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (store, svc) = open(dir.path(), &clock);
    let mut alarm = cpu_alarm("node-a-cpu", "a");
    alarm.alarm_actions = vec!["http://127.0.0.1:9/alarm".into()];
    alarm.ok_actions = vec!["slack+http://127.0.0.1:9/ok".into()];
    let created = svc.put(alarm).unwrap();
    assert_eq!(created.state_value, StateValue::InsufficientData);
    assert_eq!(created.state_reason, "Unchecked: Initial alarm creation");
    assert_eq!(created.datapoints_to_alarm, 3);

    // Three breaching minutes.
    for (i, m) in [0, 1, 2].into_iter().enumerate() {
        store.ingest(
            i as u64 + 1,
            &[cpu(T0 + m * MIN + 30_000, "a", 90.0 + m as f64)],
        );
    }
    // Not yet due: the window ending at T0+3m is evaluated LAG after it.
    clock.set(T0 + 3 * MIN + LAG - 1);
    let r = svc.evaluate_at(clock.now_ms(), &*store).unwrap();
    assert_eq!(
        state(&svc, "node-a-cpu"),
        StateValue::InsufficientData,
        "{r:?}"
    );
    clock.set(T0 + 3 * MIN + LAG);
    let r = svc.evaluate_at(clock.now_ms(), &*store).unwrap();
    assert_eq!(r.evaluated, 1);
    assert_eq!(r.transitions.len(), 1);
    let a = svc.get("node-a-cpu").unwrap();
    assert_eq!(a.state_value, StateValue::Alarm);
    assert!(
        a.state_reason.starts_with(
            "Threshold Crossed: 3 out of the last 3 datapoints [92.0 (01/01/26 00:02:00), 91.0"
        ),
        "{}",
        a.state_reason
    );
    let data: serde_json::Value =
        serde_json::from_str(a.state_reason_data.as_deref().unwrap()).unwrap();
    assert_eq!(data["evaluatedDatapoints"].as_array().unwrap().len(), 3);
    // One notification queued for the ALARM action.
    let outbox = svc.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].action, "http://127.0.0.1:9/alarm");
    assert_eq!(outbox[0].message["NewStateValue"], "ALARM");
    assert_eq!(outbox[0].message["OldStateValue"], "INSUFFICIENT_DATA");
    assert_eq!(
        outbox[0].message["Trigger"]["MetricName"],
        "node_cpu_utilization"
    );
    assert_eq!(outbox[0].message["Values"].as_array().unwrap().len(), 3);

    // Same tick again: nothing due. Next minute, still breaching: no new transition.
    assert_eq!(
        svc.evaluate_at(clock.now_ms() + 5_000, &*store)
            .unwrap()
            .evaluated,
        0
    );
    store.ingest(4, &[cpu(T0 + 3 * MIN + 5_000, "a", 95.0)]);
    clock.set(T0 + 4 * MIN + LAG);
    let r = svc.evaluate_at(clock.now_ms(), &*store).unwrap();
    assert_eq!((r.evaluated, r.transitions.len()), (1, 0));

    // Restart of both (the store without a flush: its data comes back through replay).
    store.flush().unwrap();
    drop((store, svc));
    let (store, svc) = open(dir.path(), &clock);
    let a = svc.get("node-a-cpu").unwrap();
    assert_eq!(a.state_value, StateValue::Alarm);
    assert_eq!(
        svc.outbox().len(),
        1,
        "the undelivered notification survived"
    );
    // Re-evaluating the same tick after the restart changes nothing.
    let r = svc.evaluate_at(clock.now_ms(), &*store).unwrap();
    assert_eq!((r.evaluated, r.transitions.len()), (1, 0));

    // Two quiet minutes: 2 of the last 3 real datapoints are within the threshold → OK.
    store.ingest(5, &[cpu(T0 + 4 * MIN + 5_000, "a", 20.0)]);
    store.ingest(6, &[cpu(T0 + 5 * MIN + 5_000, "a", 20.0)]);
    clock.set(T0 + 6 * MIN + LAG);
    let r = svc.evaluate_at(clock.now_ms(), &*store).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Ok);
    assert!(
        r.transitions[0]
            .reason
            .contains("were not greater than the threshold (80.0)"),
        "{}",
        r.transitions[0].reason
    );
    assert_eq!(svc.outbox().len(), 2);

    // History, newest first: two state updates and the creation.
    let h = svc.history(Some("node-a-cpu"), None, 100);
    let kinds: Vec<HistoryItemType> = h.iter().map(|i| i.history_item_type).collect();
    assert_eq!(
        kinds,
        [
            HistoryItemType::StateUpdate,
            HistoryItemType::StateUpdate,
            HistoryItemType::ConfigurationUpdate
        ]
    );
    assert_eq!(h[0].history_summary, "Alarm updated from ALARM to OK");
    let hd: serde_json::Value = serde_json::from_str(&h[0].history_data).unwrap();
    assert_eq!(hd["oldState"]["stateValue"], "ALARM");

    // Delete: gone from DescribeAlarms, history kept 14 days, then pruned.
    svc.delete("node-a-cpu").unwrap();
    assert!(svc.get("node-a-cpu").is_none());
    assert!(
        svc.delete("node-a-cpu")
            .unwrap_err()
            .to_string()
            .contains("does not exist")
    );
    assert_eq!(svc.history(Some("node-a-cpu"), None, 100).len(), 4);
    clock.set(T0 + 15 * 86_400_000);
    assert!(svc.history(Some("node-a-cpu"), None, 100).is_empty());
    // A snapshot drops expired history from disk too.
    svc.put(cpu_alarm("other", "b")).unwrap();
    svc.compact_state().unwrap();
    drop((store, svc));
    let (_store, svc) = open(dir.path(), &clock);
    clock.set(T0 + 16 * 86_400_000 - 1);
    assert_eq!(
        svc.history(None, None, 100).len(),
        1,
        "only the creation of `other` is left"
    );
}

#[test]
fn high_resolution_alarms_run_every_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (store, svc) = open(dir.path(), &clock);
    svc.put(AlarmConfig {
        period: 10,
        evaluation_periods: 1,
        ..cpu_alarm("fast", "a")
    })
    .unwrap();
    svc.put(cpu_alarm("slow", "a")).unwrap();
    let mut evaluated = 0;
    for s in 0..6 {
        evaluated += svc
            .evaluate_at(T0 + LAG + s * 10_000, &*store)
            .unwrap()
            .evaluated;
    }
    // fast: 6 ticks; slow: once in the minute.
    assert_eq!(evaluated, 7);
    // A 10-s alarm reads 10-s periods from raw samples.
    store.ingest(1, &[cpu(T0 + 61_000, "a", 99.0)]);
    let r = svc.evaluate_at(T0 + 70_000 + LAG, &*store).unwrap();
    assert_eq!(
        r.transitions
            .iter()
            .map(|t| (&*t.alarm_name, t.to))
            .collect::<Vec<_>>(),
        [("fast", StateValue::Alarm)]
    );
}

#[test]
fn multi_series_alarm_tracks_each_node() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (store, svc) = open(dir.path(), &clock);
    svc.put(AlarmConfig {
        evaluation_periods: 2,
        ..cpu_alarm("all-nodes", "*")
    })
    .unwrap();
    let mut seq = 0;
    let mut feed = |m: i64, a: f64, b: f64| {
        seq += 1;
        store.ingest(
            seq,
            &[
                cpu(T0 + m * MIN + 1000, "a", a),
                cpu(T0 + m * MIN + 1000, "b", b),
            ],
        );
    };
    feed(0, 10.0, 95.0);
    feed(1, 10.0, 96.0);
    let r = svc.evaluate_at(T0 + 2 * MIN + LAG, &*store).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Alarm);
    let a = svc.get("all-nodes").unwrap();
    assert!(
        a.state_reason
            .starts_with("1 of 2 series in ALARM. InstanceId=i-b,NodeName=b: Threshold Crossed"),
        "{}",
        a.state_reason
    );
    assert_eq!(a.series_states["InstanceId=i-a,NodeName=a"], StateValue::Ok);
    assert_eq!(
        a.series_states["InstanceId=i-b,NodeName=b"],
        StateValue::Alarm
    );
    let msg = &svc.outbox();
    assert!(msg.is_empty(), "no actions configured");
    // Node b cools down: the alarm goes back to OK.
    feed(2, 10.0, 20.0);
    feed(3, 10.0, 20.0);
    let r = svc.evaluate_at(T0 + 4 * MIN + LAG, &*store).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::Ok);
    // Per-series states survive a restart.
    drop(svc);
    let svc = AlarmService::open(dir.path().join("alarms"), config(), clock.clone()).unwrap();
    assert_eq!(svc.get("all-nodes").unwrap().series_states.len(), 2);
}

#[test]
fn kubernetes_pack_installs_and_evaluates_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (store, svc) = open(dir.path(), &clock);
    let mut opts = PackOptions::new("c1");
    opts.alarm_actions = vec!["https://hooks.slack.com/services/T/B/X".into()];
    for c in kubernetes_pack(&opts) {
        svc.put(c).unwrap();
    }
    // Installing twice replaces, never duplicates.
    for c in kubernetes_pack(&opts) {
        svc.put(c).unwrap();
    }
    assert_eq!(svc.len(), 7);
    let r = svc.evaluate_at(T0 + 5 * MIN + LAG, &*store).unwrap();
    assert_eq!(r.evaluated, 7);
    let by_state = |s| {
        svc.describe(&DescribeFilter {
            state_value: Some(s),
            ..Default::default()
        })
        .len()
    };
    // missing-data alarms wait for data; notBreaching ones are OK without any.
    assert_eq!(by_state(StateValue::InsufficientData), 3);
    assert_eq!(by_state(StateValue::Ok), 4);
    // A node running hot trips the node CPU alarm of the pack.
    for m in 0..5 {
        store.ingest(m as u64 + 1, &[cpu(T0 + (5 + m) * MIN + 1000, "a", 97.0)]);
    }
    let r = svc.evaluate_at(T0 + 10 * MIN + LAG, &*store).unwrap();
    assert!(
        r.transitions
            .iter()
            .any(|t| t.alarm_name == "kinsight-c1-node-cpu-high" && t.to == StateValue::Alarm),
        "{r:?}"
    );
    // An OOM kill in namespace shop (the RestartCount sample of its ContainerRestart event,
    // with the dimension sets the agent publishes) trips the OOM alarm for that namespace; a
    // restart for another reason does not.
    let restart = |ts: i64, ns: &str, reason: &str, count: f64| Datapoint {
        namespace: "ContainerInsights".into(),
        name: "RestartCount".into(),
        dimensions: [("ClusterName", "c1"), ("Namespace", ns), ("Reason", reason)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp_ms: ts,
        values: vec![count],
        unit: Some("Count".into()),
        storage_resolution: 60,
    };
    store.ingest(
        20,
        &[
            restart(T0 + 11 * MIN, "shop", "OOMKilled", 4.0),
            restart(T0 + 11 * MIN, "batch", "Error", 9.0),
        ],
    );
    let r = svc.evaluate_at(T0 + 15 * MIN + LAG, &*store).unwrap();
    let oom: Vec<_> = r
        .transitions
        .iter()
        .filter(|t| t.alarm_name == "kinsight-c1-oom-kills")
        .collect();
    assert_eq!(oom.len(), 1, "{r:?}");
    assert_eq!(oom[0].to, StateValue::Alarm);
    let prefixed = svc.describe(&DescribeFilter {
        alarm_name_prefix: Some("kinsight-c1-node".into()),
        ..Default::default()
    });
    assert_eq!(prefixed.len(), 2);
}

#[test]
fn set_state_runs_actions_until_the_next_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (store, svc) = open(dir.path(), &clock);
    svc.put(AlarmConfig {
        alarm_actions: vec!["http://127.0.0.1:9/a".into()],
        insufficient_data_actions: vec!["http://127.0.0.1:9/i".into()],
        ..cpu_alarm("x", "a")
    })
    .unwrap();
    svc.set_state("x", StateValue::Alarm, "testing the pager")
        .unwrap();
    assert_eq!(svc.get("x").unwrap().state_reason, "testing the pager");
    assert_eq!(svc.outbox().len(), 1);
    let r = svc.evaluate_at(T0 + LAG, &*store).unwrap();
    assert_eq!(r.transitions[0].to, StateValue::InsufficientData);
    assert_eq!(
        svc.outbox()
            .iter()
            .filter(|n| n.action.ends_with("/i"))
            .count(),
        1
    );
    assert!(svc.set_state("nope", StateValue::Ok, "r").is_err());
}

#[test]
fn low_sample_percentiles_can_be_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (store, svc) = open(dir.path(), &clock);
    let p99 = |name: &str, mode: &str| AlarmConfig {
        statistic: None,
        extended_statistic: Some("p99".into()),
        evaluation_periods: 1,
        evaluate_low_sample_count_percentile: Some(mode.into()),
        ..cpu_alarm(name, "a")
    };
    svc.put(p99("p99-evaluate", "evaluate")).unwrap();
    svc.put(p99("p99-ignore", "ignore")).unwrap();
    // 5 samples, far below the 1,000 a p99 needs.
    let pts: Vec<_> = (0..5).map(|i| cpu(T0 + i * 1000, "a", 99.0)).collect();
    store.ingest(1, &pts);
    svc.evaluate_at(T0 + MIN + LAG, &*store).unwrap();
    assert_eq!(state(&svc, "p99-evaluate"), StateValue::Alarm);
    assert_eq!(state(&svc, "p99-ignore"), StateValue::InsufficientData);
}

#[tokio::test]
async fn notifications_are_delivered_retried_and_given_up() {
    let rx = Receiver::start().await;
    rx.script("flaky", &[500, 503]);
    rx.script("gone", &[404]);
    rx.script("down", &[500, 500, 500, 500]);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (_store, svc) = open(dir.path(), &clock);
    svc.put(AlarmConfig {
        alarm_description: Some("CPU of node a".into()),
        alarm_actions: vec![
            rx.url("hook"),
            format!("slack+{}", rx.url("slack")),
            rx.url("flaky"),
            rx.url("gone"),
            rx.url("down"),
        ],
        ..cpu_alarm("n", "a")
    })
    .unwrap();
    svc.set_state("n", StateValue::Alarm, "manual").unwrap();
    assert_eq!(svc.deliver_due().await.unwrap(), 5);
    let hook = rx.on("hook");
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0]["AlarmName"], "n");
    assert_eq!(hook[0]["AlarmDescription"], "CPU of node a");
    assert_eq!(hook[0]["NewStateValue"], "ALARM");
    assert_eq!(hook[0]["OldStateValue"], "INSUFFICIENT_DATA");
    assert_eq!(hook[0]["NewStateReason"], "manual");
    assert_eq!(hook[0]["Trigger"]["Namespace"], "ContainerInsights");
    assert_eq!(hook[0]["Trigger"]["Dimensions"][2]["value"], "a");
    let slack = rx.on("slack");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(text.contains("*n* is now *ALARM*"), "{text}");
    assert_eq!(
        slack[0].as_object().unwrap().len(),
        1,
        "Slack gets only text"
    );
    // flaky and down failed once and wait for their backoff; gone gave up at once (404).
    assert_eq!(svc.outbox().len(), 2);
    assert_eq!(
        svc.deliver_due().await.unwrap(),
        0,
        "nothing due before the backoff"
    );
    clock.advance(2_000);
    assert_eq!(svc.deliver_due().await.unwrap(), 2);
    clock.advance(4_000);
    assert_eq!(svc.deliver_due().await.unwrap(), 2);
    assert_eq!(rx.on("flaky").len(), 3, "500, 503, then delivered");
    assert!(svc.outbox().is_empty(), "down gave up after 3 attempts");
    let actions = svc.history(Some("n"), Some(HistoryItemType::Action), 10);
    let summaries: Vec<&str> = actions.iter().map(|h| h.history_summary.as_str()).collect();
    assert_eq!(
        summaries
            .iter()
            .filter(|s| s.starts_with("Successfully executed action"))
            .count(),
        3
    );
    assert!(
        summaries.iter().any(|s| s.contains("HTTP 404")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("giving up after 3 attempts")),
        "{summaries:?}"
    );
    // The history names the receiver, never the URL's path (a webhook's secret part).
    let host = rx.base.trim_start_matches("http://").to_string();
    for h in &actions {
        assert!(
            h.history_summary
                .contains(&format!("http://{host}/<redacted>")),
            "{h:?}"
        );
        for secret in ["/hook", "/gone", "/down", "/flaky", "/slack"] {
            assert!(!h.history_summary.contains(secret), "{h:?}");
            assert!(!h.history_data.contains(secret), "{h:?}");
        }
    }
}

#[tokio::test]
async fn a_pending_notification_survives_a_restart() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    {
        let (_store, svc) = open(dir.path(), &clock);
        svc.put(AlarmConfig {
            alarm_actions: vec![rx.url("hook")],
            ..cpu_alarm("n", "a")
        })
        .unwrap();
        svc.set_state("n", StateValue::Alarm, "before the crash")
            .unwrap();
        // Dropped before the notifier ran.
    }
    let (_store, svc) = open(dir.path(), &clock);
    assert_eq!(svc.deliver_due().await.unwrap(), 1);
    let got = rx.on("hook");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["NewStateReason"], "before the crash");
    assert!(svc.outbox().is_empty());
}

#[test]
fn journal_survives_torn_writes_and_snapshots_do_not_replay_twice() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let adir = dir.path().join("alarms");
    {
        let svc = AlarmService::open(&adir, config(), clock.clone()).unwrap();
        svc.put(cpu_alarm("a", "a")).unwrap();
        svc.put(cpu_alarm("b", "b")).unwrap();
    }
    // A crash in the middle of an append leaves a torn last line: it was never acknowledged.
    let journal = adir.join("alarms.journal.0");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(br#"{"ops":[{"delete":"a"}"#);
    std::fs::write(&journal, &bytes).unwrap();
    {
        let svc = AlarmService::open(&adir, config(), clock.clone()).unwrap();
        assert_eq!(svc.len(), 2);
        // Appends continue on a clean line boundary.
        svc.put(cpu_alarm("c", "c")).unwrap();
        // Snapshot: alarms.json takes everything, journal generation 1 starts.
        svc.compact_state().unwrap();
        svc.delete("b").unwrap();
    }
    assert!(adir.join("alarms.json").exists());
    assert!(!journal.exists());
    // A crash between writing the snapshot and removing the old journal leaves generation 0
    // behind: it must not be replayed on top of the snapshot (that would duplicate history).
    std::fs::write(&journal, &bytes).unwrap();
    let svc = AlarmService::open(&adir, config(), clock.clone()).unwrap();
    let names: Vec<String> = svc
        .describe(&DescribeFilter::default())
        .into_iter()
        .map(|a| a.alarm_name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        svc.history(None, None, 100).len(),
        4,
        "3 creations and 1 deletion, once each"
    );
    assert!(!journal.exists());
    drop(svc);
    // Damage before the last line is an error naming the file, not silent loss.
    let j1 = adir.join("alarms.journal.1");
    let mut text = std::fs::read_to_string(&j1).unwrap();
    text.insert_str(0, "garbage\n");
    std::fs::write(&j1, text).unwrap();
    let err = AlarmService::open(&adir, config(), clock.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("alarms.journal.1") && err.contains("line 1"),
        "{err}"
    );
}
