//! The requests kinsight really sends to Kubernetes are exactly its table,
//! `kinsight_agent::access::API_ACCESS`, which the RBAC of `deploy/` is checked against (issue
//! 18, "RBAC matches the code"). The agent runs against test servers standing in for its
//! kubelet and the API server — as the elected leader in enhanced mode, with Service tagging
//! and the control-plane scrape, and a second agent whose kubelet refuses `/pods` — and
//! `kinsight tokens ensure-secret`'s code makes and completes a Secret; every request the
//! servers saw is turned into what an authorizer sees (verb, resource or path, namespace,
//! object name), as the API server's request info and the kubelet's authorizer derive it.
//! Each must be an entry of the table, and each entry must have been sent.

use super::fake_kube::{FakeKube, Mode};
use super::fixtures::kube;
use kinsight_agent::access::{API_ACCESS, Access, Caller, Scope, Target, kubelet_subresource};
use kinsight_agent::apiserver::ApiServer;
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const AGENT_NAMESPACE: &str = "kinsight";
const SECRET_NAMESPACE: &str = "obs";
const SECRET_NAME: &str = "kinsight-tokens";

/// What the authorizer sees of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    caller: Caller,
    verb: String,
    what: What,
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    /// API group and resource (`resource/subresource` for a subresource).
    Resource(String, String),
    NonResource(String),
    /// A kubelet path, authorized as `get` on `nodes/<subresource>` of its Node.
    Kubelet(String),
}

/// A request to the API server, as its request-info resolver reads it (Kubernetes
/// `staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`).
fn api_server_request(caller: Caller, method: &str, path: &str, query: &str) -> Seen {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => Some(("", rest)),
        ["apis", group, _version, rest @ ..] => Some((*group, rest)),
        _ => None,
    };
    let Some((group, mut rest)) = rest.filter(|(_, r)| !r.is_empty()) else {
        return Seen {
            caller,
            verb: method.to_lowercase(),
            what: What::NonResource(path.to_string()),
            namespace: None,
            name: None,
        };
    };
    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 2 {
        namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    let resource = match rest.get(2) {
        Some(sub) => format!("{}/{sub}", rest[0]),
        None => rest[0].to_string(),
    };
    let name = rest.get(1).map(|n| n.to_string());
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, &name) {
        ("GET", _) if watch => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        (m, _) => panic!("unexpected method {m} {path}"),
    };
    Seen {
        caller,
        verb: verb.into(),
        what: What::Resource(group.to_string(), resource),
        namespace,
        name,
    }
}

/// A request to a kubelet: its path; the verb from the method, as the kubelet maps it.
fn kubelet_request(method: &str, path: &str) -> Seen {
    let verb = match method {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        m => panic!("unexpected method {m} {path}"),
    };
    Seen {
        caller: Caller::Agent,
        verb: verb.into(),
        what: What::Kubelet(path.to_string()),
        namespace: None,
        name: None,
    }
}

fn namespace_of(caller: Caller) -> &'static str {
    match caller {
        Caller::Agent => AGENT_NAMESPACE,
        Caller::SecretJob => SECRET_NAMESPACE,
    }
}

/// Whether the table's entry `a` is the request `s`.
fn is(a: &Access, s: &Seen) -> bool {
    let what = match (a.target, &s.what) {
        (Target::Resource { group, resource }, What::Resource(g, r)) => group == g && resource == r,
        (Target::NonResource { path }, What::NonResource(p)) => path == p,
        (Target::Kubelet { path }, What::Kubelet(p)) => path == p,
        _ => false,
    };
    let own = Some(namespace_of(a.caller).to_string());
    let scope = match a.scope {
        Scope::Cluster => s.namespace.is_none(),
        Scope::Namespace => s.namespace == own && s.name.is_none(),
        Scope::Object(name) => {
            s.namespace == own && s.name.as_deref() == Some(name.unwrap_or(SECRET_NAME))
        }
    };
    a.caller == s.caller && a.verb.as_str() == s.verb && what && scope
}

fn config(kubelet: &str, api: &str, node: &str) -> AgentConfig {
    let node = node.to_string();
    AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "prod-eks",
                   "enhanced_container_insights": true}}}}}},
                "kinsight": {{"kubelet_url": "{kubelet}", "api_server_url": "{api}"}}}}"#
        ),
        &move |k| match k {
            "HOST_NAME" => Some(node.clone()),
            "K8S_NAMESPACE" => Some(AGENT_NAMESPACE.to_string()),
            _ => None,
        },
    )
    .unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pods(node: &str) -> String {
    kube("pods.json", &[("NODE", node), ("API_APP_RESTARTS", "0")])
}

#[tokio::test]
async fn the_requests_sent_are_the_table_and_the_table_is_sent() {
    let kubelet_a = FakeKube::start(pods("node-a")).await;
    kubelet_a.state.lock().unwrap().kubelet_summary =
        Some(kube("stats-summary.json", &[("NODE", "node-a")]));
    let kubelet_b = FakeKube::start(pods("node-b")).await;
    kubelet_b.set_mode(Mode::Forbidden);
    let api = FakeKube::start(pods("node-b")).await;

    // Agent a: the elected leader, in enhanced mode (workload lists, Ingresses, the API
    // server's /metrics), with Service tagging (on by default).
    let mut a = MetricsLoop::new(&config(&kubelet_a.url, &api.url, "node-a"));
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    a.spawn_leader_election(shutdown.clone());
    until("agent a elected", || a.is_leader()).await;
    a.tick().await;
    // The Lease renewed (every 5 s).
    until("the Lease renewed", || {
        api.state.lock().unwrap().lease_writes >= 2
    })
    .await;
    // Agent b, not the leader: its kubelet refuses /pods, as kubelets before 1.33 do, and its
    // pods come from the API server.
    let mut b = MetricsLoop::new(&config(&kubelet_b.url, &api.url, "node-b"));
    let (_, evs) = b.tick().await;
    assert!(!evs.is_empty());

    // `kinsight tokens ensure-secret`: made, then completed with a key it lacks.
    let job = FakeKube::start(String::new()).await;
    let client = ApiServer::connect(&job.url, None, None).unwrap();
    let mut keys = vec!["admin-token".to_string(), "ingest-token".to_string()];
    for _ in 0..2 {
        client
            .ensure_token_secret(
                SECRET_NAMESPACE,
                SECRET_NAME,
                &keys,
                &BTreeMap::new(),
                &BTreeMap::from([("helm.sh/resource-policy".into(), "keep".into())]),
            )
            .await
            .unwrap();
        keys.push("extra-token".into());
    }

    let mut seen: Vec<Seen> = Vec::new();
    for kubelet in [&kubelet_a, &kubelet_b] {
        for (m, p, _) in kubelet.state.lock().unwrap().requests.iter() {
            seen.push(kubelet_request(m, p));
        }
    }
    for (server, caller) in [(&api, Caller::Agent), (&job, Caller::SecretJob)] {
        for (m, p, q) in server.state.lock().unwrap().requests.iter() {
            seen.push(api_server_request(caller, m, p, q));
        }
    }

    let unlisted: Vec<&Seen> = seen
        .iter()
        .filter(|s| !API_ACCESS.iter().any(|a| is(a, s)))
        .collect();
    assert!(
        unlisted.is_empty(),
        "requests sent that crates/agent/src/access.rs does not list (and the RBAC may not grant): {unlisted:#?}"
    );
    let unsent: Vec<&str> = API_ACCESS
        .iter()
        .filter(|a| !seen.iter().any(|s| is(a, s)))
        .map(|a| a.name)
        .collect();
    assert!(
        unsent.is_empty(),
        "entries of API_ACCESS no request of this test made (a grant for nothing, or a path this test misses): {unsent:?}"
    );
    // The kubelet paths are the fine-grained subresources, never nodes/proxy.
    for s in &seen {
        if let What::Kubelet(p) = &s.what {
            assert_ne!(kubelet_subresource(p), "proxy", "{p}");
        }
    }
    // Nothing is watched: a list every interval is what the agent does.
    assert!(seen.iter().all(|s| s.verb != "watch"));
}

#[test]
fn request_info_reads_paths_as_the_api_server_does() {
    let s = api_server_request(
        Caller::Agent,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kinsight/leases/kinsight-leader",
        "",
    );
    assert_eq!(
        (
            s.verb.as_str(),
            s.what,
            s.namespace.as_deref(),
            s.name.as_deref()
        ),
        (
            "get",
            What::Resource("coordination.k8s.io".into(), "leases".into()),
            Some("kinsight"),
            Some("kinsight-leader")
        )
    );
    let s = api_server_request(
        Caller::Agent,
        "GET",
        "/api/v1/pods",
        "watch=true&resourceVersion=0",
    );
    assert_eq!(s.verb, "watch");
    let s = api_server_request(Caller::Agent, "GET", "/api/v1/nodes/n1/proxy", "");
    assert_eq!(s.what, What::Resource("".into(), "nodes/proxy".into()));
    let s = api_server_request(Caller::Agent, "GET", "/api/v1/namespaces/kube-system", "");
    assert_eq!(
        (s.what, s.name.as_deref()),
        (
            What::Resource("".into(), "namespaces".into()),
            Some("kube-system")
        )
    );
    let s = api_server_request(Caller::Agent, "GET", "/metrics", "");
    assert_eq!(s.what, What::NonResource("/metrics".into()));
    // Verb `get` on `/api` alone (discovery) is a non-resource request too.
    let s = api_server_request(Caller::Agent, "GET", "/apis/apps/v1", "");
    assert_eq!(s.what, What::NonResource("/apis/apps/v1".into()));
    assert!(is(
        &kinsight_agent::access::LIST_PODS,
        &api_server_request(Caller::Agent, "GET", "/api/v1/pods", "")
    ));
    assert!(!is(
        &kinsight_agent::access::LIST_PODS,
        &api_server_request(Caller::Agent, "GET", "/api/v1/namespaces/x/pods", "")
    ));
    assert!(!is(
        &kinsight_agent::access::GET_LEASE,
        &api_server_request(
            Caller::Agent,
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kinsight/leases/other",
            ""
        )
    ));
}
