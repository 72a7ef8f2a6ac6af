//! End to end across the domain crates: EMF performance events (as the agent writes them)
//! go through the metric store's ingest hook, cross a threshold, the background evaluator
//! moves the alarm to ALARM, a real local HTTP receiver gets the webhook; the whole process
//! state is then dropped and reopened — the store replays the test's stand-in for the
//! server's WAL from its persisted sequence number — and nothing changes: no second ALARM
//! notification; the metric comes back down → OK, delivered to a Slack-style receiver.
//!
//! Time is a manual clock (alarm minutes pass in milliseconds); the background tasks and the
//! HTTP deliveries are real.

use crate::receiver::Receiver;
use crate::service::T0;
use kinsight_alarms::{
    AlarmConfig, AlarmService, AlarmServiceConfig, BackgroundTasks, Dimension, ManualClock,
    MetricSource, StateValue,
};
use kinsight_metrics::{MetricStore, MetricStoreConfig};
use kinsight_model::LogEvent;
use kinsight_model::catalogue::directives_for;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MIN: i64 = 60_000;

/// A Node performance event with its EMF directive, as the agent emits it (reference §1.5).
fn node_event(ts: i64, cpu: f64) -> LogEvent {
    let mut ev = json!({
        "Type": "Node", "Version": "0", "Timestamp": ts.to_string(),
        "ClusterName": "prod", "NodeName": "ip-10-0-1-5", "InstanceId": "i-0abc",
        "InstanceType": "m5.large", "AutoScalingGroupName": "ng-1",
        "Sources": ["cadvisor", "/proc", "pod", "calculated"],
        "node_cpu_utilization": cpu, "node_memory_utilization": 40.0,
    });
    let directives = directives_for(ev.as_object().unwrap(), false);
    ev["CloudWatchMetrics"] = serde_json::to_value(directives).unwrap();
    LogEvent::new(
        "/kinsight/prod/performance",
        "ip-10-0-1-5",
        ts,
        ev.to_string(),
    )
}

/// The test's stand-in for the server's WAL: every batch with its sequence number.
#[derive(Default)]
struct Wal(Vec<(u64, Vec<LogEvent>)>);

impl Wal {
    fn append(&mut self, store: &MetricStore, events: Vec<LogEvent>) {
        let seq = self.0.len() as u64 + 1;
        store.ingest_events(seq, &events);
        self.0.push((seq, events));
    }

    /// What the server does on start: redeliver every batch above the observer's
    /// persisted sequence number.
    fn replay(&self, store: &MetricStore) -> usize {
        let from = store.persisted_seq().unwrap_or(0);
        let mut n = 0;
        for (seq, events) in &self.0 {
            if *seq > from {
                assert!(!store.ingest_events(*seq, events).skipped);
                n += 1;
            }
        }
        n
    }
}

struct Process {
    store: Arc<MetricStore>,
    alarms: Arc<AlarmService>,
    tasks: BackgroundTasks,
}

fn start(dir: &Path, clock: &Arc<ManualClock>) -> Process {
    let store =
        Arc::new(MetricStore::open(dir.join("metrics"), MetricStoreConfig::default()).unwrap());
    let alarms = AlarmService::open(
        dir.join("alarms"),
        AlarmServiceConfig {
            poll_ms: 20,
            ..Default::default()
        },
        clock.clone(),
    )
    .unwrap();
    let source: Arc<dyn MetricSource> = store.clone();
    let tasks = alarms.spawn(source);
    Process {
        store,
        alarms,
        tasks,
    }
}

async fn wait_state(alarms: &AlarmService, want: StateValue) {
    for _ in 0..800 {
        if alarms.get("prod-node-cpu").unwrap().state_value == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "alarm did not reach {want}: {:?}",
        alarms.get("prod-node-cpu")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_events_to_alarm_to_webhook_and_back_across_a_restart() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let mut wal = Wal::default();

    let p = start(dir.path(), &clock);
    p.alarms
        .put(AlarmConfig {
            alarm_name: "prod-node-cpu".into(),
            namespace: "ContainerInsights".into(),
            metric_name: "node_cpu_utilization".into(),
            dimensions: vec![
                Dimension {
                    name: "ClusterName".into(),
                    value: "prod".into(),
                },
                Dimension {
                    name: "InstanceId".into(),
                    value: "i-0abc".into(),
                },
                Dimension {
                    name: "NodeName".into(),
                    value: "ip-10-0-1-5".into(),
                },
            ],
            statistic: Some("Average".into()),
            period: 60,
            evaluation_periods: 3,
            datapoints_to_alarm: Some(2),
            threshold: 80.0,
            comparison_operator: "GreaterThanThreshold".into(),
            alarm_actions: vec![rx.url("pager")],
            ok_actions: vec![format!("slack+{}", rx.url("chat"))],
            ..Default::default()
        })
        .unwrap();

    // Minutes 0..3: a quiet node, sampled every 10 s.
    for m in 0..3 {
        wal.append(
            &p.store,
            (0..6)
                .map(|s| node_event(T0 + m * MIN + s * 10_000, 35.0))
                .collect(),
        );
    }
    clock.set(T0 + 3 * MIN + 10_000);
    wait_state(&p.alarms, StateValue::Ok).await;
    // OK from INSUFFICIENT_DATA is a transition too: its OK action runs.
    rx.wait_for("chat", 1).await;

    // Minutes 3..5: the node runs hot.
    for m in 3..5 {
        wal.append(
            &p.store,
            (0..6)
                .map(|s| node_event(T0 + m * MIN + s * 10_000, 93.0 + s as f64))
                .collect(),
        );
    }
    clock.set(T0 + 5 * MIN + 10_000);
    wait_state(&p.alarms, StateValue::Alarm).await;
    let pager = rx.wait_for("pager", 1).await;
    assert_eq!(pager[0]["AlarmName"], "prod-node-cpu");
    assert_eq!(pager[0]["NewStateValue"], "ALARM");
    assert_eq!(pager[0]["OldStateValue"], "OK");
    assert_eq!(pager[0]["Trigger"]["MetricName"], "node_cpu_utilization");
    // Averages of the two hot minutes: 93..98 → 95.5.
    let values: Vec<f64> = pager[0]["Values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [95.5, 95.5, 35.0]);

    // Restart in the middle: the store flushed only part of what it ingested.
    p.store.flush().unwrap();
    wal.append(
        &p.store,
        (0..6)
            .map(|s| node_event(T0 + 5 * MIN + s * 10_000, 97.0))
            .collect(),
    );
    p.tasks.abort();
    drop(p);
    let p = start(dir.path(), &clock);
    assert_eq!(
        wal.replay(&p.store),
        1,
        "the unflushed batch comes back from the WAL"
    );
    assert_eq!(
        p.alarms.get("prod-node-cpu").unwrap().state_value,
        StateValue::Alarm
    );
    clock.set(T0 + 6 * MIN + 10_000);
    // Still breaching after the restart: evaluated, no transition, no second page.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        p.alarms.get("prod-node-cpu").unwrap().state_value,
        StateValue::Alarm
    );
    assert_eq!(rx.on("pager").len(), 1);

    // Minutes 6..8: back to normal → OK, to the Slack-style hook.
    for m in 6..8 {
        wal.append(
            &p.store,
            (0..6)
                .map(|s| node_event(T0 + m * MIN + s * 10_000, 30.0))
                .collect(),
        );
    }
    clock.set(T0 + 8 * MIN + 10_000);
    wait_state(&p.alarms, StateValue::Ok).await;
    let chat = rx.wait_for("chat", 2).await;
    let text = chat[1]["text"].as_str().unwrap();
    assert!(
        text.contains("*prod-node-cpu* is now *OK* (was ALARM)"),
        "{text}"
    );
    assert!(
        text.contains("ContainerInsights / node_cpu_utilization"),
        "{text}"
    );
    // Exactly one page and two chat messages in total; the history tells the story.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.on("pager").len(), 1);
    assert_eq!(rx.on("chat").len(), 2);
    let states: Vec<String> = p
        .alarms
        .history(
            Some("prod-node-cpu"),
            Some(kinsight_alarms::HistoryItemType::StateUpdate),
            10,
        )
        .iter()
        .map(|h| h.history_summary.clone())
        .collect();
    assert_eq!(
        states,
        [
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from INSUFFICIENT_DATA to OK"
        ]
    );
    p.tasks.abort();
}
