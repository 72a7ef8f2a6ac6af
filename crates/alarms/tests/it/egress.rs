//! Issue 15, item 10: where alarm webhooks may connect. A real local HTTP server redirects
//! deliveries to the cloud metadata address in several spellings and to names that resolve
//! there; a resolver table plays the DNS an attacker controls; the alarm service delivers
//! with its own client. Nothing reaches a refused address, refusals are final (not retried),
//! allowed redirects still work, and a name is checked at every connect.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use kinsight_alarms::egress::{EgressPolicy, Lookup, parse_cidr};
use kinsight_alarms::{
    AlarmConfig, AlarmError, AlarmService, AlarmServiceConfig, HistoryItemType, ManualClock,
    NotifierConfig, StateValue,
};

use crate::service::{T0, cpu_alarm};

/// Names as a DNS server under an attacker's control answers them; `flip.test` answers
/// 127.0.0.1 the first time and the metadata address after (DNS rebinding).
struct Dns {
    flips: AtomicUsize,
}

impl Lookup for Dns {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'static>> {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = match host {
            "good.test" => Ok(vec![ip("127.0.0.1")]),
            "evil.test" => Ok(vec![ip("169.254.169.254")]),
            "evil6.test" => Ok(vec![ip("127.0.0.1"), ip("fd00:ec2::254")]),
            "flip.test" => Ok(if self.flips.fetch_add(1, Ordering::SeqCst) == 0 {
                vec![ip("127.0.0.1")]
            } else {
                vec![ip("169.254.169.254")]
            }),
            _ => Err(std::io::Error::other(format!("{host}: no such name"))),
        };
        Box::pin(async move { r })
    }
}

type Hits = Arc<Mutex<Vec<String>>>;
/// Redirect number → (status, `Location`).
type Targets = Arc<HashMap<String, (u16, String)>>;

/// A receiver on 127.0.0.1: `/hook` answers 200; `/r/<n>` redirects to `targets[n]`.
async fn redirector(targets: Vec<(u16, String)>) -> (String, u16, Hits) {
    let hits: Hits = Arc::default();
    let targets: Targets = Arc::new(
        targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| (i.to_string(), t))
            .collect(),
    );
    async fn hook(State((hits, _)): State<(Hits, Targets)>) -> StatusCode {
        hits.lock().unwrap().push("hook".into());
        StatusCode::OK
    }
    async fn redirect(
        State((hits, targets)): State<(Hits, Targets)>,
        Path(n): Path<String>,
    ) -> (StatusCode, HeaderMap) {
        hits.lock().unwrap().push(format!("r/{n}"));
        let (status, to) = targets[&n].clone();
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, to.parse().unwrap());
        (StatusCode::from_u16(status).unwrap(), h)
    }
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/r/{n}", post(redirect))
        .with_state((hits.clone(), targets));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), port, hits)
}

fn open(dir: &std::path::Path, allow: &[&str]) -> Arc<AlarmService> {
    let config = AlarmServiceConfig {
        notifier: NotifierConfig {
            max_attempts: 3,
            // Short: without the policy, a redirect to 169.254.169.254 would hang until then.
            timeout_ms: 2_000,
            egress: EgressPolicy {
                allow: allow.iter().map(|c| parse_cidr(c).unwrap()).collect(),
                lookup: Arc::new(Dns {
                    flips: AtomicUsize::new(0),
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    AlarmService::open(dir, config, Arc::new(ManualClock::new(T0))).unwrap()
}

fn action_summaries(svc: &AlarmService, name: &str) -> Vec<String> {
    svc.history(Some(name), Some(HistoryItemType::Action), 100)
        .into_iter()
        .map(|h| h.history_summary)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_to_allowed_addresses() {
    // The port of the receiver itself is only known once it runs: names redirect to a
    // second receiver whose port is fixed first.
    let (_, hook_port, hook_hits) = redirector(vec![]).await;
    let (base, _, hits) = redirector(vec![
        (
            302,
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/".into(),
        ),
        (307, "http://2852039166/latest/".into()),
        (307, "http://[::ffff:a9fe:a9fe]/latest/".into()),
        (307, format!("http://evil.test:{hook_port}/hook")),
        (307, format!("http://good.test:{hook_port}/hook")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), &[]);
    svc.put(AlarmConfig {
        alarm_actions: (0..5).map(|n| format!("{base}/r/{n}")).collect(),
        ..cpu_alarm("ssrf", "a")
    })
    .unwrap();
    svc.set_state("ssrf", StateValue::Alarm, "test").unwrap();
    assert_eq!(svc.deliver_due().await.unwrap(), 5);

    let mut got = hits.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["r/0", "r/1", "r/2", "r/3", "r/4"]);
    // Only the redirect to a name that resolves to an allowed address arrived — through the
    // address the guarded resolver checked (`good.test` exists nowhere else).
    assert_eq!(hook_hits.lock().unwrap().clone(), ["hook"]);
    assert!(svc.outbox().is_empty(), "refusals are final, not retried");
    let summaries = action_summaries(&svc, "ssrf");
    assert_eq!(summaries.len(), 5, "{summaries:?}");
    let refused: Vec<&String> = summaries.iter().filter(|s| s.contains("refused")).collect();
    assert_eq!(refused.len(), 4, "{summaries:?}");
    for s in &refused {
        assert!(s.contains("169.254.169.254"), "{s}");
        assert!(s.contains("link-local"), "{s}");
    }
    assert!(
        refused
            .iter()
            .any(|s| s.contains("evil.test resolves to 169.254.169.254"))
    );
    assert_eq!(
        summaries
            .iter()
            .filter(|s| s.starts_with("Successfully executed"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_checked_again_at_every_connect() {
    let (_, port, hits) = redirector(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), &[]);
    svc.put(AlarmConfig {
        alarm_actions: vec![
            format!("http://flip.test:{port}/hook"),
            format!("http://evil6.test:{port}/hook"),
        ],
        ..cpu_alarm("rebind", "a")
    })
    .unwrap();
    svc.set_state("rebind", StateValue::Alarm, "first").unwrap();
    svc.deliver_due().await.unwrap();
    // flip.test was 127.0.0.1; evil6.test has one metadata address among its answers.
    assert_eq!(hits.lock().unwrap().len(), 1);
    svc.set_state("rebind", StateValue::Ok, "calm").unwrap();
    svc.set_state("rebind", StateValue::Alarm, "second")
        .unwrap();
    svc.deliver_due().await.unwrap();
    // Now flip.test answers 169.254.169.254: refused, although it was fine before.
    assert_eq!(hits.lock().unwrap().len(), 1);
    let summaries = action_summaries(&svc, "rebind");
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("flip.test resolves to 169.254.169.254")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("evil6.test resolves to fd00:ec2::254")),
        "{summaries:?}"
    );
    assert!(svc.outbox().is_empty());
}

#[test]
fn put_refuses_forbidden_hosts_and_keeps_cluster_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), &[]);
    for url in [
        "http://169.254.169.254/latest/meta-data/secret-path",
        "http://2852039166/secret-path",
        "http://0251.0376.0251.0376/secret-path",
        "http://[::ffff:169.254.169.254]/secret-path",
        "http://[fd00:ec2::254]/secret-path",
        "http://0.0.0.0:9000/secret-path",
        "slack+http://[fe80::1]/secret-path",
    ] {
        let err = svc
            .put(AlarmConfig {
                ok_actions: vec![url.into()],
                ..cpu_alarm("bad", "a")
            })
            .unwrap_err();
        match &err {
            AlarmError::Invalid { field, message } => {
                assert_eq!(*field, "OKActions");
                assert!(message.contains("--alarm-webhook-allow-cidr"), "{message}");
                assert!(!message.contains("secret-path"), "{message}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(svc.get("bad").is_none(), "nothing stored");
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.96.0.10/hook",
        "http://alertmanager.monitoring.svc.cluster.local:9093/hook",
        "https://hooks.slack.com/services/T/B/X",
    ] {
        svc.put(AlarmConfig {
            ok_actions: vec![url.into()],
            ..cpu_alarm("good", "a")
        })
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    // An operator can allow a range (e.g. a receiver on a link-local sidecar address).
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), &["169.254.170.0/24"]);
    svc.put(AlarmConfig {
        ok_actions: vec!["http://169.254.170.2/hook".into()],
        ..cpu_alarm("allowed", "a")
    })
    .unwrap();
    assert!(
        svc.put(AlarmConfig {
            ok_actions: vec!["http://169.254.169.254/".into()],
            ..cpu_alarm("still-not", "a")
        })
        .is_err()
    );
}
