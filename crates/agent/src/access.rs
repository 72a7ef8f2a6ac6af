//! Every request kinsight makes of Kubernetes, as the authorizer sees it: the agent's requests
//! to the API server and to its node's kubelet, and those of `kinsight tokens ensure-secret`
//! (the Helm chart's hook Jobs). [`API_ACCESS`] is the one list the RBAC of `deploy/` is
//! checked against (issue 18, "RBAC matches the code"): every request in it granted, every
//! grant in it, each rule's comment naming the features it serves.
//!
//! The clients cannot leave it: [`crate::apiserver::ApiServer`] makes each request through a
//! helper that takes the request's entry here (and checks, in debug builds, that the typed
//! resource is the entry's and the verb the helper's), and [`crate::kubelet::KubeletClient`]
//! takes the path it asks from the entry. The tests hold the rest:
//! - here: the kubelet paths map to the `nodes/*` subresources the kubelet asks about; no
//!   request-making call outside those helpers; every entry used by the code;
//!   `scripts/tests/deploy/api_access.json` is this table (`KINSIGHT_BLESS=1` rewrites it);
//! - `tests/metrics/access.rs`: the requests the agent and the tokens command really send to
//!   test servers, turned into authorization attributes, are exactly this table;
//! - `scripts/tests/deploy/deploy_check.py` reads the JSON and checks `deploy/kubernetes`,
//!   `deploy/kubernetes-ha` and every rendering of the Helm chart against it.
//!
//! Not here: what the agent reads on the node (cgroups, /proc, log files; the DaemonSet's host
//! paths, checked by deploy_check.py) and what it sends to the kinsight server (its tokens).

use std::fmt;

/// The verb the authorizer sees. For the API server: GET of one object `get`, of a collection
/// `list` (`watch` with `?watch=true`, which kinsight never asks), POST `create`, PUT `update`,
/// PATCH `patch`. The kubelet maps GET to `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Create,
    Update,
    Patch,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
        }
    }
}

/// Whose ServiceAccount makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The agent DaemonSet (`kinsight agent`).
    Agent,
    /// `kinsight tokens ensure-secret`: the Helm chart's hook Jobs that make the tokens Secret
    /// and the bundled PostgreSQL's password Secret.
    SecretJob,
}

impl Caller {
    pub fn as_str(self) -> &'static str {
        match self {
            Caller::Agent => "agent",
            Caller::SecretJob => "secret-job",
        }
    }
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A resource of the API server: its group (`""` for the core group) and plural name.
    Resource {
        group: &'static str,
        resource: &'static str,
    },
    /// A path of the API server outside its resources (an RBAC `nonResourceURLs` rule).
    NonResource { path: &'static str },
    /// A path of the node's own kubelet. The kubelet asks the API server whether the caller
    /// may `get` the subresource [`kubelet_subresource`] maps the path to, of its Node.
    Kubelet { path: &'static str },
}

/// Where the request reaches, which decides the kind of RBAC rule that can grant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every namespace, or a cluster-scoped object: a ClusterRole.
    Cluster,
    /// The caller's own namespace, no object named (a create request carries no name to the
    /// authorizer): a Role.
    Namespace,
    /// One object of the caller's own namespace: a Role narrowed by `resourceNames`. `None`:
    /// the name is given at run time (`--name` of `kinsight tokens ensure-secret`).
    Object(Option<&'static str>),
}

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// What the request is, in error messages (`API server request `list nodes` failed`);
    /// unique in [`API_ACCESS`].
    pub name: &'static str,
    pub caller: Caller,
    pub verb: Verb,
    pub target: Target,
    pub scope: Scope,
    /// The feature that needs it. The comment above the RBAC rule that grants it names it.
    pub feature: &'static str,
    /// Who asks, when, and what for: the justification the docs repeat.
    pub why: &'static str,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Access {
    /// The RBAC resource that grants it (`nodes/stats` for a kubelet path), `None` for a
    /// non-resource path.
    pub fn rbac_resource(&self) -> Option<(&'static str, String)> {
        match self.target {
            Target::Resource { group, resource } => Some((group, resource.to_string())),
            Target::Kubelet { path } => Some(("", format!("nodes/{}", kubelet_subresource(path)))),
            Target::NonResource { .. } => None,
        }
    }

    /// The kubelet path, for [`crate::kubelet::KubeletClient`].
    pub fn kubelet_path(&self) -> Option<&'static str> {
        match self.target {
            Target::Kubelet { path } => Some(path),
            _ => None,
        }
    }

    /// The API server path outside its resources.
    pub fn non_resource_path(&self) -> Option<&'static str> {
        match self.target {
            Target::NonResource { path } => Some(path),
            _ => None,
        }
    }

    /// Whether this entry is a request `verb` on the typed resource `K` (its group and plural).
    pub fn is<K: k8s_openapi::Resource>(&self, verb: Verb) -> bool {
        self.verb == verb
            && self.target
                == Target::Resource {
                    group: K::GROUP,
                    resource: K::URL_PATH_SEGMENT,
                }
    }
}

/// The subresource of `nodes` the kubelet authorizes a request for `path` as (Kubernetes
/// docs, "Kubelet authentication/authorization", with the `KubeletFineGrainedAuthz` gate,
/// beta and on by default from 1.33). `/pods` is `nodes/pods` only on such kubelets; older
/// ones ask for `nodes/proxy`, which kinsight does not grant (the agent then lists its node's
/// pods from the API server).
pub fn kubelet_subresource(path: &str) -> &'static str {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else if under("/checkpoint") {
        "checkpoint"
    } else if path == "/pods" || path == "/runningPods" || path == "/runningPods/" {
        "pods"
    } else if path == "/healthz" {
        "healthz"
    } else if path == "/configz" {
        "configz"
    } else {
        "proxy"
    }
}

const fn api(
    name: &'static str,
    verb: Verb,
    group: &'static str,
    resource: &'static str,
    feature: &'static str,
    why: &'static str,
) -> Access {
    Access {
        name,
        caller: Caller::Agent,
        verb,
        target: Target::Resource { group, resource },
        scope: Scope::Cluster,
        feature,
        why,
    }
}

// --- The agent, every node ---------------------------------------------------------------------

/// `GET /pods` of the kubelet.
pub const KUBELET_PODS: Access = Access {
    name: "get kubelet /pods",
    caller: Caller::Agent,
    verb: Verb::Get,
    target: Target::Kubelet { path: "/pods" },
    scope: Scope::Cluster,
    feature: "Pod and Container events",
    why: "every agent, every max(interval, 10 s): its node's pods (metadata, requests and limits, states, restart counts, owners) for the Pod and Container events and the log enrichment",
};
/// `GET /stats/summary` of the kubelet.
pub const KUBELET_STATS_SUMMARY: Access = Access {
    name: "get kubelet /stats/summary",
    caller: Caller::Agent,
    verb: Verb::Get,
    target: Target::Kubelet {
        path: "/stats/summary",
    },
    scope: Scope::Cluster,
    feature: "ContainerFS",
    why: "every agent, on the pods' cadence: the containers' writable layers and their filesystems for the ContainerFS events",
};
/// This node's Node object.
pub const GET_NODE: Access = api(
    "get node",
    Verb::Get,
    "",
    "nodes",
    "InstanceId",
    "every agent, every minute: its own Node, for InstanceId, InstanceType and the zone (spec.providerID, labels) and the enhanced node_status_* conditions",
);
/// This node's pods from the API server, when the kubelet refuses or cannot be trusted.
pub const LIST_NODE_PODS: Access = api(
    "list this node's pods",
    Verb::List,
    "",
    "pods",
    "fallback",
    "an agent whose kubelet refuses /pods (before Kubernetes 1.33 it needs nodes/proxy) or has an untrusted certificate: its node's pods (fieldSelector spec.nodeName) in their stead",
);
/// Endpoints of the cluster, for the pod → Service map.
pub const LIST_ENDPOINTS: Access = api(
    "list endpoints",
    Verb::List,
    "",
    "endpoints",
    "tag_service",
    "every agent, every 30 s, unless tag_service is false: the pod → Service map behind the Service dimension",
);

// --- The elected leader ------------------------------------------------------------------------

pub const LIST_NODES: Access = api(
    "list nodes",
    Verb::List,
    "",
    "nodes",
    "cluster_node_count",
    "the leader, every interval: cluster_node_count and cluster_failed_node_count (Cluster events)",
);
pub const LIST_PODS: Access = api(
    "list pods",
    Verb::List,
    "",
    "pods",
    "ClusterNamespace",
    "the leader, every interval: running pods per namespace (ClusterNamespace events) and, in enhanced mode, the Pending pods nobody's node reports",
);
pub const LIST_CLUSTER_ENDPOINTS: Access = api(
    "list endpoints of the cluster",
    Verb::List,
    "",
    "endpoints",
    "ClusterService",
    "the leader, every interval: running pods per Service (ClusterService events)",
);
pub const LIST_DEPLOYMENTS: Access = api(
    "list deployments",
    Verb::List,
    "apps",
    "deployments",
    "ClusterDeployment",
    "the leader, every interval, in enhanced mode: ClusterDeployment events",
);
pub const LIST_DAEMONSETS: Access = api(
    "list daemonsets",
    Verb::List,
    "apps",
    "daemonsets",
    "ClusterDaemonSet",
    "the leader, every interval, in enhanced mode: ClusterDaemonSet events",
);
pub const LIST_STATEFULSETS: Access = api(
    "list statefulsets",
    Verb::List,
    "apps",
    "statefulsets",
    "ClusterStatefulSet",
    "the leader, every interval, in enhanced mode: ClusterStatefulSet events",
);
pub const LIST_REPLICASETS: Access = api(
    "list replicasets",
    Verb::List,
    "apps",
    "replicasets",
    "ClusterReplicaSet",
    "the leader, every interval, in enhanced mode: ClusterReplicaSet events, and the ReplicaSet → Deployment owners that name a Deployment's pods after it",
);
pub const LIST_INGRESSES: Access = api(
    "list ingresses",
    Verb::List,
    "networking.k8s.io",
    "ingresses",
    "namespace_ingress_count",
    "the leader, every interval, in enhanced mode: Ingresses per namespace for namespace_ingress_count",
);
/// The API server's own metrics.
pub const GET_METRICS: Access = Access {
    name: "get /metrics",
    caller: Caller::Agent,
    verb: Verb::Get,
    target: Target::NonResource { path: "/metrics" },
    scope: Scope::Cluster,
    feature: "ControlPlane",
    why: "the leader, every interval, in enhanced mode or with enable_control_plane_metrics: the API server's Prometheus text for the ControlPlane events",
};

// --- Leader election: one Lease in the agent's namespace -----------------------------------------

pub const CREATE_LEASE: Access = Access {
    name: "create lease",
    caller: Caller::Agent,
    verb: Verb::Create,
    target: Target::Resource {
        group: "coordination.k8s.io",
        resource: "leases",
    },
    scope: Scope::Namespace,
    feature: "leader election",
    why: "the first agent, once: creates the Lease kinsight-leader (a create names no object to the authorizer)",
};
pub const GET_LEASE: Access = Access {
    name: "get lease",
    caller: Caller::Agent,
    verb: Verb::Get,
    target: Target::Resource {
        group: "coordination.k8s.io",
        resource: "leases",
    },
    scope: Scope::Object(Some(crate::apiserver::LEADER_LEASE_NAME)),
    feature: "leader election",
    why: "every agent, every 5 s: who holds the Lease, and until when",
};
pub const UPDATE_LEASE: Access = Access {
    name: "update lease",
    caller: Caller::Agent,
    verb: Verb::Update,
    target: Target::Resource {
        group: "coordination.k8s.io",
        resource: "leases",
    },
    scope: Scope::Object(Some(crate::apiserver::LEADER_LEASE_NAME)),
    feature: "leader election",
    why: "the leader every 5 s renews it; another agent takes it over once it expired",
};

// --- kinsight tokens ensure-secret ---------------------------------------------------------------

pub const GET_SECRET: Access = Access {
    name: "get secret",
    caller: Caller::SecretJob,
    verb: Verb::Get,
    target: Target::Resource {
        group: "",
        resource: "secrets",
    },
    scope: Scope::Object(None),
    feature: "ensure-secret",
    why: "the hook Job, at install and upgrade: whether the Secret exists, and with which keys",
};
pub const CREATE_SECRET: Access = Access {
    name: "create secret",
    caller: Caller::SecretJob,
    verb: Verb::Create,
    target: Target::Resource {
        group: "",
        resource: "secrets",
    },
    scope: Scope::Namespace,
    feature: "ensure-secret",
    why: "the hook Job, at install: creates the Secret with new random values",
};
pub const PATCH_SECRET: Access = Access {
    name: "patch secret",
    caller: Caller::SecretJob,
    verb: Verb::Patch,
    target: Target::Resource {
        group: "",
        resource: "secrets",
    },
    scope: Scope::Object(None),
    feature: "ensure-secret",
    why: "the hook Job, at upgrade: adds a key the Secret lacks and the keep annotation, never changing a value",
};

/// Every request kinsight makes of Kubernetes.
pub const API_ACCESS: &[Access] = &[
    KUBELET_PODS,
    KUBELET_STATS_SUMMARY,
    GET_NODE,
    LIST_NODE_PODS,
    LIST_ENDPOINTS,
    LIST_NODES,
    LIST_PODS,
    LIST_CLUSTER_ENDPOINTS,
    LIST_DEPLOYMENTS,
    LIST_DAEMONSETS,
    LIST_STATEFULSETS,
    LIST_REPLICASETS,
    LIST_INGRESSES,
    GET_METRICS,
    CREATE_LEASE,
    GET_LEASE,
    UPDATE_LEASE,
    GET_SECRET,
    CREATE_SECRET,
    PATCH_SECRET,
];

/// The table as `scripts/tests/deploy/api_access.json` holds it: one object per entry, with
/// the RBAC resource a kubelet path is granted by.
pub fn to_json() -> serde_json::Value {
    let entries: Vec<serde_json::Value> = API_ACCESS
        .iter()
        .map(|a| {
            let (group, resource) = match a.rbac_resource() {
                Some((g, r)) => (Some(g), Some(r)),
                None => (None, None),
            };
            let (via, path) = match a.target {
                Target::Resource { .. } => ("api-server", None),
                Target::NonResource { path } => ("api-server", Some(path)),
                Target::Kubelet { path } => ("kubelet", Some(path)),
            };
            let (scope, object) = match a.scope {
                Scope::Cluster => ("cluster", None),
                Scope::Namespace => ("namespace", None),
                Scope::Object(name) => ("object", Some(name.unwrap_or("$NAME"))),
            };
            serde_json::json!({
                "name": a.name,
                "caller": a.caller.as_str(),
                "via": via,
                "verb": a.verb.as_str(),
                "api_group": group,
                "resource": resource,
                "path": path,
                "scope": scope,
                "object": object,
                "feature": a.feature,
                "why": a.why,
            })
        })
        .collect();
    serde_json::json!({
        "comment": "kinsight's requests to Kubernetes: crates/agent/src/access.rs, API_ACCESS. Written by `KINSIGHT_BLESS=1 cargo test -p kinsight-agent --lib access`; read by deploy_check.py. object $NAME: the name given to `kinsight tokens ensure-secret --name`.",
        "access": entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn names_are_unique_and_features_given() {
        let mut names = HashSet::new();
        for a in API_ACCESS {
            assert!(names.insert(a.name), "two entries named {:?}", a.name);
            assert!(!a.feature.is_empty() && !a.why.is_empty(), "{a}");
        }
    }

    #[test]
    fn the_kubelet_authorizes_paths_as_its_docs_say() {
        for (path, sub) in [
            ("/stats/summary", "stats"),
            ("/stats", "stats"),
            ("/statsfoo", "proxy"),
            ("/metrics/cadvisor", "metrics"),
            ("/metrics/resource", "metrics"),
            ("/logs/syslog", "log"),
            ("/spec/", "spec"),
            ("/checkpoint/ns/pod/c", "checkpoint"),
            ("/pods", "pods"),
            ("/runningPods/", "pods"),
            ("/healthz", "healthz"),
            ("/configz", "configz"),
            ("/exec/ns/pod/c", "proxy"),
            ("/run/ns/pod/c", "proxy"),
            ("/attach/ns/pod/c", "proxy"),
            ("/containerLogs/ns/pod/c", "proxy"),
        ] {
            assert_eq!(kubelet_subresource(path), sub, "{path}");
        }
        // What the agent asks: never nodes/proxy (it opens exec, run and attach).
        for a in API_ACCESS {
            if let Some(p) = a.kubelet_path() {
                assert_ne!(kubelet_subresource(p), "proxy", "{a}");
            }
        }
    }

    #[test]
    fn scopes_fit_the_callers() {
        for a in API_ACCESS {
            match (a.caller, a.scope, a.verb) {
                // Only create can be asked of a whole namespace.
                (_, Scope::Namespace, v) => assert_eq!(v, Verb::Create, "{a}"),
                (_, Scope::Object(_), v) => assert_ne!(v, Verb::Create, "{a}"),
                // The tokens command touches its own namespace only; the agent writes nothing
                // cluster-wide.
                (Caller::SecretJob, Scope::Cluster, _) => panic!("{a}: cluster-wide"),
                (Caller::Agent, Scope::Cluster, v) => {
                    assert!(matches!(v, Verb::Get | Verb::List), "{a}: writes")
                }
            }
        }
    }

    /// `scripts/tests/deploy/api_access.json` is the table, for deploy_check.py.
    #[test]
    fn the_deploy_checks_copy_is_current() {
        let path = repo().join("scripts/tests/deploy/api_access.json");
        let want = serde_json::to_string_pretty(&to_json()).unwrap() + "\n";
        if std::env::var_os("KINSIGHT_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not API_ACCESS: rewrite it with `KINSIGHT_BLESS=1 cargo test -p kinsight-agent --lib access`",
            path.display()
        );
    }

    /// The Rust source files of `dir`, recursively.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The functions of a file: (name, body), by indentation — `fn` at the start of a line
    /// (after spaces and qualifiers), its body up to the `}` at the same indentation.
    fn functions(text: &str) -> Vec<(String, String)> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let Some(pos) = trimmed.find("fn ") else {
                continue;
            };
            let head = &trimmed[..pos];
            if !head
                .split_whitespace()
                .all(|w| matches!(w, "pub" | "pub(crate)" | "async" | "const"))
            {
                continue;
            }
            let name: String = trimmed[pos + 3..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let close = format!("{}}}", " ".repeat(indent));
            let end = lines[i..]
                .iter()
                .position(|l| *l == close || l.starts_with(&format!("{close} ")))
                .map_or(lines.len(), |n| i + n);
            out.push((name, lines[i..=end.min(lines.len() - 1)].join("\n")));
        }
        out
    }

    /// What sends a request to the API server (kube-rs), anywhere in the agent and the CLI.
    const API_CALLS: &[&str] = &[
        "Api::<",
        "Api::all",
        "Api::namespaced",
        "Api::default_namespaced",
        ".request_stream(",
        ".request_text(",
        ".request::<",
        "kube::runtime",
    ];
    /// What sends a request to the kubelet, in its client (the only holder of that client).
    const KUBELET_CALLS: &[&str] = &[".http.get(", ".http.post(", ".http.request("];

    /// Every request goes through a helper that names its entry: the API server's
    /// `ApiServer::{get, list, get_opt, create, replace, patch, non_resource}` and the
    /// kubelet's `KubeletClient::get`, each taking an `&'static Access`. Nothing else in the
    /// agent or the CLI makes one.
    #[test]
    fn requests_are_made_only_through_an_entry() {
        let helpers: &[(&str, &[&str])] = &[
            (
                "apiserver.rs",
                &[
                    "list",
                    "get",
                    "get_opt",
                    "create",
                    "replace",
                    "patch",
                    "non_resource",
                ],
            ),
            ("kubelet.rs", &["get"]),
        ];
        let mut files = Vec::new();
        sources(&repo().join("crates/agent/src"), &mut files);
        sources(&repo().join("crates/cli/src"), &mut files);
        let mut problems = Vec::new();
        for file in &files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name == "access.rs" {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let allowed = helpers
                .iter()
                .find(|(f, _)| file.ends_with(Path::new("crates/agent/src").join(f)))
                .map(|(_, h)| *h);
            for (func, body) in functions(&text) {
                let kubelet: &[&str] = if file.ends_with("crates/agent/src/kubelet.rs") {
                    KUBELET_CALLS
                } else {
                    &[]
                };
                let calls: Vec<&&str> = API_CALLS
                    .iter()
                    .chain(kubelet)
                    .filter(|c| body.contains(**c))
                    .collect();
                if calls.is_empty() {
                    continue;
                }
                match allowed {
                    Some(h) if h.contains(&func.as_str()) => {
                        if !body.contains("access: &'static Access") {
                            problems.push(format!(
                                "{name}: helper {func} takes no `access: &'static Access`"
                            ));
                        }
                    }
                    _ => problems.push(format!(
                        "{}: fn {func} calls {calls:?} directly: make the request through a helper with its entry in access.rs",
                        file.strip_prefix(repo()).unwrap_or(file).display()
                    )),
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// Every entry is named by the code that makes its request (no grant for nothing).
    #[test]
    fn every_entry_is_used() {
        let src = repo().join("crates/agent/src");
        let access = std::fs::read_to_string(src.join("access.rs")).unwrap();
        let code = ["apiserver.rs", "kubelet.rs"]
            .iter()
            .map(|f| std::fs::read_to_string(src.join(f)).unwrap())
            .collect::<String>();
        let consts: Vec<&str> = access
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split_once(": Access"))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(consts.len(), API_ACCESS.len(), "{consts:?}");
        for c in consts {
            assert!(
                code.contains(&format!("access::{c}")),
                "access::{c} is in API_ACCESS but no request names it: remove it (and its RBAC grant) or use it"
            );
        }
    }
}
