//! A kubelet that hangs or answers garbage, and an API server that is absent: the collection
//! still completes with node metrics, and the failing item is only skipped.

use super::fake_kube::{FakeKube, Mode};
use super::fixtures::docs;
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use std::time::{Duration, Instant};

fn config(kubelet: &str, api: &str) -> AgentConfig {
    AgentConfig::from_json_with_env(
        &format!(r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "it"}}}}}}, "kinsight": {{"kubelet_url": "{kubelet}", "api_server_url": "{api}"}}}}"#),
        &|k| (k == "HOST_NAME").then(|| "node-x".to_string()),
    )
    .unwrap()
}

#[tokio::test]
async fn hanging_kubelet_times_out_and_node_metrics_continue() {
    let fake = FakeKube::start(super::fixtures::kube("pods.json", &[])).await;
    fake.set_mode(Mode::Hang);
    // Nothing listens on port 9 of loopback: the API server is absent.
    let mut ml = MetricsLoop::new(&config(&fake.url, "http://127.0.0.1:9"));
    let start = Instant::now();
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    assert!(
        start.elapsed() < Duration::from_secs(12),
        "bounded by the client timeouts, took {:?}",
        start.elapsed()
    );
    assert!(evs.iter().any(|e| e["Type"] == "Node"));
    assert!(evs.iter().any(|e| e["Type"] == "NodeFS"));
    assert!(!evs.iter().any(|e| e["Type"] == "Pod"));
    assert!(!evs.iter().any(|e| e["Type"] == "Cluster"));
}

#[tokio::test]
async fn garbage_from_the_kubelet_is_reported_not_fatal() {
    let fake = FakeKube::start(super::fixtures::kube("pods.json", &[])).await;
    fake.set_mode(Mode::Garbage);
    let client = kinsight_agent::kubelet::KubeletClient::new(&fake.url, None, None, true).unwrap();
    let err = client.pods().await.unwrap_err().to_string();
    assert!(err.contains("not a PodList"), "{err}");
    let mut ml = MetricsLoop::new(&config(&fake.url, "http://127.0.0.1:9"));
    let (events, _) = ml.tick().await;
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("\"Type\":\"Node\""))
    );
}

#[tokio::test]
async fn kubelet_refusing_pods_falls_back_to_the_api_server() {
    let fake = FakeKube::start(super::fixtures::kube(
        "pods.json",
        &[("NODE", "node-x"), ("API_APP_RESTARTS", "0")],
    ))
    .await;
    fake.set_mode(Mode::Forbidden);
    let mut ml = MetricsLoop::new(&config(&fake.url, &fake.url));
    let feed = ml.pod_feed();
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    let node = evs.iter().find(|e| e["Type"] == "Node").unwrap();
    assert_eq!(
        node["node_number_of_running_pods"], 3,
        "pods came from the API server"
    );
    assert_eq!(
        feed.borrow().len(),
        4,
        "the log pipeline gets the same pods"
    );
}
