//! Alarms shared by replicas (issue 16) through the real PostgreSQL catalogue: a change made
//! on one replica is seen on the others; only the holder of the maintenance lease evaluates
//! and notifies, its writes fenced by the lease epoch — so a replica that lost the lease but
//! does not know it yet can neither change a state nor send a notification, and a transition
//! is notified once across a takeover. Concurrent changes on two replicas all land. A replica
//! opened after the journal was folded into a snapshot has everything.
//!
//! The three "replicas" are three alarm services in this process, each with its own catalogue
//! journal; leadership is the real lease in PostgreSQL, handed over by the test. The
//! process-level test (killed replicas) is `crates/cli/tests/cli/replicas.rs`.

use std::sync::{Arc, Mutex};

use kinsight_alarms::{
    AlarmConfig, AlarmError, AlarmService, AlarmServiceConfig, Dimension, HistoryItemType,
    ManualClock, StateValue,
};
use kinsight_catalogue::Catalogue;
use kinsight_catalogue::testing::PgServer;
use kinsight_metrics::{MetricStore, MetricStoreConfig};
use kinsight_model::emf::Datapoint;
use kinsight_server::replicas::CatalogueJournal;

use crate::support::{received, receiver};

/// A minute boundary: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const LAG: i64 = 10_000;

fn cpu(ts: i64, v: f64) -> Datapoint {
    Datapoint {
        namespace: "ContainerInsights".into(),
        name: "node_cpu_utilization".into(),
        dimensions: [("ClusterName", "c1"), ("NodeName", "n1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp_ms: ts,
        values: vec![v],
        unit: Some("Percent".into()),
        storage_resolution: 60,
    }
}

fn alarm(name: &str, hooks: &str) -> AlarmConfig {
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
                name: "NodeName".into(),
                value: "n1".into(),
            },
        ],
        statistic: Some("Average".into()),
        period: 60,
        evaluation_periods: 3,
        threshold: 80.0,
        comparison_operator: "GreaterThanThreshold".into(),
        alarm_actions: vec![format!("{hooks}/alarm")],
        ok_actions: vec![format!("{hooks}/ok")],
        ..Default::default()
    }
}

/// The epoch under which a replica believes it leads (set by the test).
type Leads = Arc<Mutex<Option<i64>>>;

async fn replica(
    cat: &Catalogue,
    id: &str,
    clock: &Arc<ManualClock>,
) -> (Arc<AlarmService>, Leads) {
    let leads: Leads = Arc::default();
    let l = leads.clone();
    let journal = CatalogueJournal::new(
        cat.clone(),
        id,
        "maintenance",
        Arc::new(move || *l.lock().unwrap()),
    );
    let clock = clock.clone();
    let svc = blocking(move || {
        AlarmService::open_shared(
            Arc::new(journal),
            AlarmServiceConfig {
                evaluation_lag_ms: LAG,
                ..Default::default()
            },
            clock,
        )
    })
    .await
    .unwrap();
    (svc, leads)
}

/// The alarm service blocks on the catalogue: off the async workers, as the server runs it.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_alarms_and_a_transition_is_notified_once_across_a_takeover() {
    let Some(pg) = PgServer::start() else { return };
    let cat = Catalogue::connect(&pg.url()).await.unwrap();
    let (hooks, inbox) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(MetricStore::open(dir.path(), MetricStoreConfig::default()).unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let (a, lead_a) = replica(&cat, "a", &clock).await;
    let (b, lead_b) = replica(&cat, "b", &clock).await;
    let lease = |holder: &'static str| {
        let cat = cat.clone();
        async move {
            cat.acquire_lease("maintenance", holder, std::time::Duration::from_secs(60))
                .await
                .unwrap()
                .expect("the lease is free")
                .epoch
        }
    };
    *lead_a.lock().unwrap() = Some(lease("a").await);

    // Defined on a follower, seen on the leader.
    let put = b.clone();
    let h = hooks.clone();
    blocking(move || put.put(alarm("cpu-high", &h)))
        .await
        .unwrap();
    let s = a.clone();
    blocking(move || s.sync()).await.unwrap();
    assert_eq!(
        a.get("cpu-high").expect("seen on a").state_value,
        StateValue::InsufficientData
    );

    // Three breaching minutes. A follower may not evaluate: its write is fenced.
    for m in 0..3 {
        metrics.ingest(m as u64 + 1, &[cpu(T0 + m * MIN + 30_000, 95.0)]);
    }
    clock.set(T0 + 3 * MIN + LAG);
    let now = T0 + 3 * MIN + LAG;
    let (s, src) = (b.clone(), metrics.clone());
    let refused = blocking(move || s.evaluate_at(now, &*src)).await;
    assert!(
        matches!(refused, Err(AlarmError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(
        b.get("cpu-high").unwrap().state_value,
        StateValue::InsufficientData,
        "a refused change is undone"
    );
    let (s, src) = (a.clone(), metrics.clone());
    let r = blocking(move || s.evaluate_at(now, &*src)).await.unwrap();
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    assert_eq!(a.deliver_due().await.unwrap(), 1);
    assert_eq!(received(&inbox, "alarm").len(), 1);

    // b has not seen the transition yet when it updates the alarm's definition: its append is
    // refused, it catches up and plans the update again on the new state — the update keeps
    // ALARM (a stale copy written back would reset it, and the next evaluation page again).
    let (s, h) = (b.clone(), hooks.clone());
    blocking(move || {
        let mut updated = alarm("cpu-high", &h);
        updated.alarm_description = Some("updated on b".into());
        s.put(updated)
    })
    .await
    .unwrap();
    for svc in [&a, &b] {
        let s = svc.clone();
        blocking(move || s.sync()).await.unwrap();
        let got = svc.get("cpu-high").unwrap();
        assert_eq!(got.state_value, StateValue::Alarm);
        assert_eq!(got.alarm_description.as_deref(), Some("updated on b"));
    }

    // Takeover: a's lease lapses (released here), b takes it with a higher epoch. b has
    // nothing left to send and, re-evaluating the same window, no transition to make.
    cat.release_lease("maintenance", "a").await.unwrap();
    *lead_b.lock().unwrap() = Some(lease("b").await);
    let s = b.clone();
    blocking(move || s.sync()).await.unwrap();
    assert_eq!(b.get("cpu-high").unwrap().state_value, StateValue::Alarm);
    assert_eq!(b.deliver_due().await.unwrap(), 0);
    let (s, src) = (b.clone(), metrics.clone());
    let r = blocking(move || s.evaluate_at(now, &*src)).await.unwrap();
    assert!(r.transitions.is_empty(), "{r:?}");

    // The metric recovers: b makes the OK transition. a still believes it leads (stale
    // epoch): it can neither evaluate nor claim the notification — b sends it, once.
    for m in 3..6 {
        metrics.ingest(m as u64 + 1, &[cpu(T0 + m * MIN + 30_000, 10.0)]);
    }
    let now = T0 + 6 * MIN + LAG;
    clock.set(now);
    let (s, src) = (b.clone(), metrics.clone());
    let r = blocking(move || s.evaluate_at(now, &*src)).await.unwrap();
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    let s = a.clone();
    blocking(move || s.sync()).await.unwrap();
    assert_eq!(a.get("cpu-high").unwrap().state_value, StateValue::Ok);
    let stale = a.deliver_due().await;
    assert!(
        matches!(stale, Err(AlarmError::Unavailable(_))),
        "{stale:?}"
    );
    let (s, src) = (a.clone(), metrics.clone());
    let stale = blocking(move || s.evaluate_at(now + 60 * MIN, &*src)).await;
    assert!(
        matches!(stale, Err(AlarmError::Unavailable(_))),
        "{stale:?}"
    );
    assert_eq!(b.deliver_due().await.unwrap(), 1);
    assert_eq!(received(&inbox, "ok").len(), 1);
    assert_eq!(received(&inbox, "alarm").len(), 1, "never a second page");
    let ids: std::collections::BTreeSet<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.notification_id.clone())
        .collect();
    assert_eq!(ids.len(), 2, "distinct notification ids: {ids:?}");
    assert!(ids.iter().all(|id| id.parse::<u64>().is_ok()), "{ids:?}");

    // Changes made at the same time on two replicas all land (each append is
    // compare-and-set; the loser catches up and plans again).
    let mut tasks = Vec::new();
    for (svc, tag) in [(a.clone(), "a"), (b.clone(), "b")] {
        let h = hooks.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            for i in 0..10 {
                svc.put(alarm(&format!("{tag}-{i}"), &h)).unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for svc in [&a, &b] {
        let s = svc.clone();
        blocking(move || s.sync()).await.unwrap();
        assert_eq!(svc.len(), 21);
    }

    // The leader folds the journal into a snapshot; a replica that joins now starts from it.
    let s = b.clone();
    blocking(move || s.compact_state()).await.unwrap();
    let head = cat.journal_read("alarms", 0, 10).await.unwrap();
    assert!(head.snapshot.is_some(), "folded: {:?}", head.last_seq);
    assert!(head.entries.is_empty());
    let (c, _) = replica(&cat, "c", &clock).await;
    assert_eq!(c.len(), 21);
    assert_eq!(c.get("cpu-high").unwrap().state_value, StateValue::Ok);
    let history = c.history(Some("cpu-high"), None, 100);
    let count = |t| history.iter().filter(|h| h.history_item_type == t).count();
    assert_eq!(count(HistoryItemType::StateUpdate), 2, "{history:?}");
    assert_eq!(count(HistoryItemType::Action), 2, "{history:?}");
    assert_eq!(
        count(HistoryItemType::ConfigurationUpdate),
        2,
        "{history:?}"
    );
}
