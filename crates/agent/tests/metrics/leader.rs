//! Lease-based leader election against the recorded-JSON API server: exactly one of two agents
//! leads; cluster-level events come from it alone; when it stops renewing, the other takes
//! over. (A real API server cannot run here.)

use super::fake_kube::FakeKube;
use super::fixtures::{docs, find, num};
use kinsight_agent::apiserver::{ApiServer, LEADER_LEASE_NAME};
use kinsight_agent::perf::{Collector, CollectorSettings, Inputs};
use kinsight_agent::run::now_ms;

#[tokio::test]
async fn exactly_one_leader_and_takeover_after_expiry() {
    let kube = FakeKube::start(String::new()).await;
    let api = ApiServer::connect(&kube.url, None, None).unwrap();
    let t = now_ms();
    let a = api
        .try_acquire_lease("kinsight", LEADER_LEASE_NAME, "node-a", t)
        .await
        .unwrap();
    let b = api
        .try_acquire_lease("kinsight", LEADER_LEASE_NAME, "node-b", t)
        .await
        .unwrap();
    assert!(a && !b, "first comer leads, the second does not");
    // Renewing keeps it; the other still cannot take it.
    assert!(
        api.try_acquire_lease("kinsight", LEADER_LEASE_NAME, "node-a", t + 5000)
            .await
            .unwrap()
    );
    assert!(
        !api.try_acquire_lease("kinsight", LEADER_LEASE_NAME, "node-b", t + 5000)
            .await
            .unwrap()
    );
    assert_eq!(kube.lease_holder().as_deref(), Some("node-a"));
    // node-a dies: its lease goes stale, node-b takes over.
    kube.expire_lease();
    assert!(
        api.try_acquire_lease("kinsight", LEADER_LEASE_NAME, "node-b", t + 70_000)
            .await
            .unwrap()
    );
    assert_eq!(kube.lease_holder().as_deref(), Some("node-b"));
    assert!(
        !api.try_acquire_lease("kinsight", LEADER_LEASE_NAME, "node-a", t + 70_000)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_contenders_elect_exactly_one() {
    let kube = FakeKube::start(String::new()).await;
    let t = now_ms();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let api = ApiServer::connect(&kube.url, None, None).unwrap();
        tasks.push(tokio::spawn(async move {
            api.try_acquire_lease("kinsight", LEADER_LEASE_NAME, &format!("node-{i}"), t)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as u32;
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn leader_emits_cluster_events_from_the_api_server() {
    let kube = FakeKube::start(String::new()).await;
    let api = ApiServer::connect(&kube.url, None, None).unwrap();
    let state = api.cluster_state(true).await.unwrap();
    let node = api.node("ip-10-0-1-23.ec2.internal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = CollectorSettings {
        cluster_name: "prod-eks".into(),
        node_name: "ip-10-0-1-23.ec2.internal".into(),
        enhanced: true,
        prefer_full_pod_name: true,
        disable_metric_extraction: false,
    };
    let mut c = Collector::new(settings, dir.path());
    let finished = c.collect(
        0,
        1_764_300_000_000,
        &Inputs {
            cluster: Some(&state),
            node: Some(&node),
            ..Default::default()
        },
    );
    let evs = docs(finished.clone());

    let cluster = find(&evs, "Cluster", |_| true);
    assert_eq!(num(cluster, "cluster_node_count"), 3.0);
    // MemoryPressure=True on one node, Unknown conditions on another; Ready is not considered.
    assert_eq!(num(cluster, "cluster_failed_node_count"), 2.0);
    assert_eq!(num(cluster, "cluster_number_of_running_pods"), 4.0);
    assert_eq!(
        cluster["NodeName"], "ip-10-0-1-23.ec2.internal",
        "cluster events land in the leader's stream"
    );
    let prod = find(&evs, "ClusterNamespace", |e| e["Namespace"] == "prod");
    assert_eq!(num(prod, "namespace_number_of_running_pods"), 3.0);
    assert!(
        !evs.iter()
            .any(|e| e["Type"] == "ClusterNamespace" && e["Namespace"] == "ops"),
        "no running pods, no event"
    );
    let svc = find(&evs, "ClusterService", |e| e["Service"] == "api");
    assert_eq!(
        num(svc, "service_number_of_running_pods"),
        2.0,
        "ready addresses only"
    );
    assert!(
        !evs.iter()
            .any(|e| e["Type"] == "ClusterService" && e["Service"] == "web")
    );
    assert!(
        !evs.iter()
            .any(|e| e["Type"] == "ClusterService" && e["Service"] == "kubernetes"),
        "addresses without a Pod targetRef"
    );
    let pending = find(&evs, "Pod", |e| e["pod_status"] == "Pending");
    assert!(
        pending.get("NodeName").is_none(),
        "pending pods go to the `pending` stream"
    );
    assert_eq!(pending["PodName"], "batch-runner");
    assert_eq!(num(pending, "pod_status_pending"), 1.0);
    // Node identity comes from the Node object, not from IMDS.
    let n = find(&evs, "Node", |_| true);
    assert_eq!(n["InstanceId"], "i-0abc1234def567890");
    assert_eq!(n["InstanceType"], "m5.large");
    assert_eq!(num(n, "node_status_condition_ready"), 1.0);
    assert_eq!(num(n, "node_status_capacity_pods"), 29.0);
    let d = find(&evs, "ClusterDeployment", |e| e["PodName"] == "api");
    assert_eq!(
        (
            num(d, "replicas_desired"),
            num(d, "replicas_ready"),
            num(d, "status_replicas_unavailable")
        ),
        (3.0, 2.0, 1.0)
    );
    let ds = find(&evs, "ClusterDaemonSet", |_| true);
    assert_eq!(
        num(ds, "replicas_ready"),
        3.0,
        "currentNumberScheduled, as upstream"
    );
    let log_events =
        kinsight_agent::perf::to_log_events(&finished, "/kinsight/prod-eks/performance", 0);
    assert!(log_events.iter().any(|e| e.log_stream_name == "pending"));
    assert!(
        log_events
            .iter()
            .filter(|e| e.log_stream_name != "pending")
            .all(|e| e.log_stream_name == "ip-10-0-1-23.ec2.internal")
    );
}
