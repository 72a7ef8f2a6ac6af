//! The Kubernetes API server, through kube-rs: this node's Node object (identity, conditions,
//! capacity), and for the elected leader the cluster-wide lists (Nodes, Pods, Endpoints,
//! workloads, Ingresses) behind the Cluster, ClusterNamespace and ClusterService events; Endpoints for
//! the pod → Service map on every node (reference §2.1, §4.4).
//!
//! Leader election uses a coordination.k8s.io/v1 Lease (`kinsight-leader` in the agent's
//! namespace) with the reference's timings: 60 s lease, renewed every 5 s. Optimistic
//! concurrency (resourceVersion) makes exactly one agent win.
//!
//! For the control-plane events the leader also reads the API server's own `/metrics`
//! ([`ApiServer::metrics`]; RBAC: `nonResourceURLs: ["/metrics"]`, verb `get`).
//!
//! [`ApiServer::ensure_token_secret`] creates the Secret of the server's and agents' tokens
//! once, for the Helm chart's hook Job (`kinsight tokens ensure-secret`, issue 15, item 14).
//!
//! Every request names its entry in [`crate::access`] (the list the RBAC of `deploy/` is
//! checked against) and goes through one of the helpers at the end of this file.
//!
//! The API server cannot run on a test machine: tests serve recorded JSON from a test server.

use crate::access::{self, Access, Scope, Verb};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Name of the leader lease.
pub const LEADER_LEASE_NAME: &str = "kinsight-leader";
/// Lease duration (reference §4.4: LeaseDuration 60 s).
pub const LEASE_DURATION_S: i32 = 60;
/// How often the lease is renewed or retried (reference §4.4: RetryPeriod 5 s).
pub const LEASE_RETRY: Duration = Duration::from_secs(5);
/// The longest `/metrics` text read. A large cluster's API server writes tens of megabytes;
/// the text streams through the parser and is never held, so this bounds time, not memory.
pub const METRICS_MAX_BYTES: usize = 256 << 20;
/// The longest line of it (a label value longer than this is not one the API server writes).
pub const METRICS_MAX_LINE_BYTES: usize = 64 << 10;

#[derive(Debug, Error)]
pub enum ApiServerError {
    #[error("invalid API server URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("cannot build the API server client: {0}")]
    Client(String),
    #[error("API server request `{what}` failed: {message}")]
    Request { what: &'static str, message: String },
}

/// Cluster-wide state the leader needs for cluster-scoped events.
#[derive(Debug, Default, Clone)]
pub struct ClusterState {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub endpoints: Vec<Endpoints>,
    pub deployments: Vec<Deployment>,
    pub daemon_sets: Vec<DaemonSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub replica_sets: Vec<ReplicaSet>,
    /// Ingresses (`namespace_ingress_count`, enhanced mode); `None` when not listed or the
    /// list failed (the rest of the state is still used).
    pub ingresses: Option<Vec<Ingress>>,
}

/// What [`ApiServer::ensure_token_secret`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOutcome {
    /// The Secret did not exist: created with a new token under every key.
    Created,
    /// It existed without these keys: they were added, the others left as they were.
    Completed { added: Vec<String> },
    /// It existed with every key: nothing changed (but missing annotations).
    Kept,
}

/// Characters of a generated token: 48 letters and digits, about 285 bits.
pub const TOKEN_CHARS: usize = 48;

fn new_token() -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(TOKEN_CHARS)
        .map(char::from)
        .collect()
}

/// A client of the API server.
#[derive(Clone)]
pub struct ApiServer {
    client: kube::Client,
}

impl ApiServer {
    /// `token_file` and `ca_file` are used when they exist (a service account's mount).
    pub fn connect(
        url: &str,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    ) -> Result<ApiServer, ApiServerError> {
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| ApiServerError::Url {
                    url: url.to_string(),
                    message: e.to_string(),
                })?;
        let mut config = kube::Config::new(uri);
        config.connect_timeout = Some(Duration::from_secs(3));
        config.read_timeout = Some(Duration::from_secs(15));
        if let Some(t) = token_file.filter(|p| p.exists()) {
            config.auth_info.token_file = Some(t.to_string_lossy().into_owned());
        }
        if let Some(ca) = ca_file.filter(|p| p.exists()) {
            config.root_cert_file = Some(ca);
        }
        let client =
            kube::Client::try_from(config).map_err(|e| ApiServerError::Client(e.to_string()))?;
        Ok(ApiServer { client })
    }

    fn err(access: &'static Access) -> impl Fn(kube::Error) -> ApiServerError {
        move |e| ApiServerError::Request {
            what: access.name,
            message: crate::kubelet::error_chain(&e),
        }
    }

    /// This node's Node object.
    pub async fn node(&self, name: &str) -> Result<Node, ApiServerError> {
        self.get(&access::GET_NODE, name).await
    }

    /// This node's pods, for kubelets that refuse `/pods` to the agent (before Kubernetes
    /// 1.33 `/pods` needs `nodes/proxy`, which kinsight's RBAC deliberately does not grant).
    pub async fn node_pods(&self, node: &str) -> Result<Vec<Pod>, ApiServerError> {
        let lp = ListParams::default()
            .fields(&format!("spec.nodeName={node}"))
            .match_any();
        self.list(&access::LIST_NODE_PODS, &lp).await
    }

    /// Every Endpoints object, for the pod → Service map (`tag_service`).
    pub async fn endpoints(&self) -> Result<Vec<Endpoints>, ApiServerError> {
        // resourceVersion=0: served from the API server's watch cache, cheap for big clusters.
        let lp = ListParams::default().match_any();
        self.list(&access::LIST_ENDPOINTS, &lp).await
    }

    /// The API server's own metrics (`GET /metrics`, Prometheus text 0.0.4): the samples whose
    /// series name `keep` accepts, parsed as the body streams in (at most
    /// [`METRICS_MAX_BYTES`], lines of at most [`METRICS_MAX_LINE_BYTES`]).
    pub async fn metrics(
        &self,
        keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<crate::prometheus::Sample>, ApiServerError> {
        use futures::AsyncBufReadExt;
        const METRICS: &Access = &access::GET_METRICS;
        let body = self
            .non_resource(METRICS, "text/plain;version=0.0.4")
            .await?;
        let mut body = Box::pin(body);
        let mut parser = crate::prometheus::TextParser::new(keep);
        let bad = |message: String| ApiServerError::Request {
            what: METRICS.name,
            message,
        };
        let mut line: Vec<u8> = Vec::new();
        let mut total = 0usize;
        let feed = |line: &[u8], parser: &mut crate::prometheus::TextParser<_>| {
            parser
                .line(&String::from_utf8_lossy(line))
                .map_err(|e| bad(e.to_string()))
        };
        loop {
            let buf = body
                .fill_buf()
                .await
                .map_err(|e| bad(format!("reading the body: {e}")))?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            total += n;
            if total > METRICS_MAX_BYTES {
                return Err(bad(format!(
                    "longer than {METRICS_MAX_BYTES} bytes, not read further"
                )));
            }
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', buf) {
                if line.is_empty() {
                    feed(&buf[start..nl], &mut parser)?;
                } else {
                    line.extend_from_slice(&buf[start..nl]);
                    feed(&line, &mut parser)?;
                    line.clear();
                }
                start = nl + 1;
            }
            line.extend_from_slice(&buf[start..]);
            if line.len() > METRICS_MAX_LINE_BYTES {
                return Err(bad(format!(
                    "a line longer than {METRICS_MAX_LINE_BYTES} bytes"
                )));
            }
            body.consume_unpin(n);
        }
        if !line.is_empty() {
            feed(&line, &mut parser)?;
        }
        Ok(parser.finish())
    }

    /// Everything cluster-scoped events need. Workloads are listed only in enhanced mode.
    pub async fn cluster_state(&self, enhanced: bool) -> Result<ClusterState, ApiServerError> {
        let lp = ListParams::default().match_any();
        let mut s = ClusterState {
            nodes: self.list(&access::LIST_NODES, &lp).await?,
            pods: self.list(&access::LIST_PODS, &lp).await?,
            endpoints: self.list(&access::LIST_CLUSTER_ENDPOINTS, &lp).await?,
            ..Default::default()
        };
        if enhanced {
            s.deployments = self.list(&access::LIST_DEPLOYMENTS, &lp).await?;
            s.daemon_sets = self.list(&access::LIST_DAEMONSETS, &lp).await?;
            s.stateful_sets = self.list(&access::LIST_STATEFULSETS, &lp).await?;
            s.replica_sets = self.list(&access::LIST_REPLICASETS, &lp).await?;
        }
        Ok(s)
    }

    /// Every Ingress (networking.k8s.io/v1) of the cluster, for the leader's
    /// `namespace_ingress_count` (RBAC: `list` on `ingresses`).
    pub async fn ingresses(&self) -> Result<Vec<Ingress>, ApiServerError> {
        let lp = ListParams::default().match_any();
        self.list(&access::LIST_INGRESSES, &lp).await
    }

    /// Makes sure Secret `namespace/name` holds a token under each of `keys`: creates it with
    /// new random tokens if it does not exist, adds only the keys it lacks if it does, and
    /// never changes a value already there — so the tokens stay what the server and agents
    /// hold across upgrades, re-renders and re-runs. `annotations` are set on it if missing.
    /// Needs `create` on secrets and `get` and `patch` on this one.
    pub async fn ensure_token_secret(
        &self,
        namespace: &str,
        name: &str,
        keys: &[String],
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<SecretOutcome, ApiServerError> {
        let existing = match self
            .get_opt::<Secret>(&access::GET_SECRET, namespace, name)
            .await?
        {
            Some(s) => s,
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some(namespace.to_string()),
                        labels: Some(labels.clone()),
                        annotations: Some(annotations.clone()),
                        ..Default::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(
                        keys.iter()
                            .map(|k| (k.clone(), ByteString(new_token().into_bytes())))
                            .collect(),
                    ),
                    ..Default::default()
                };
                match self
                    .create(&access::CREATE_SECRET, namespace, &secret)
                    .await
                {
                    Ok(_) => return Ok(SecretOutcome::Created),
                    // Created meanwhile by someone else: complete that one instead.
                    Err(kube::Error::Api(s)) if s.code == 409 => self
                        .get_opt(&access::GET_SECRET, namespace, name)
                        .await?
                        .ok_or_else(|| ApiServerError::Request {
                            what: access::GET_SECRET.name,
                            message: format!(
                                "creating secret {namespace}/{name} conflicted (409), but it is not there"
                            ),
                        })?,
                    Err(e) => return Err(Self::err(&access::CREATE_SECRET)(e)),
                }
            }
        };
        let have = existing.data.clone().unwrap_or_default();
        let have_string = existing.string_data.clone().unwrap_or_default();
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| {
                have.get(*k).is_none_or(|v| v.0.is_empty())
                    && have_string.get(*k).is_none_or(|v| v.is_empty())
            })
            .cloned()
            .collect();
        let current = existing.metadata.annotations.clone().unwrap_or_default();
        let add_annotations: BTreeMap<&String, &String> = annotations
            .iter()
            .filter(|(k, _)| !current.contains_key(*k))
            .collect();
        if missing.is_empty() && add_annotations.is_empty() {
            return Ok(SecretOutcome::Kept);
        }
        let data: BTreeMap<&String, ByteString> = missing
            .iter()
            .map(|k| (k, ByteString(new_token().into_bytes())))
            .collect();
        let patch = serde_json::json!({
            "metadata": {"annotations": add_annotations},
            "data": data,
        });
        self.patch::<Secret, _>(
            &access::PATCH_SECRET,
            namespace,
            name,
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(if missing.is_empty() {
            SecretOutcome::Kept
        } else {
            SecretOutcome::Completed { added: missing }
        })
    }

    /// One round of leader election: take the lease if it is free or expired, renew it if we
    /// hold it. Returns whether `identity` holds the lease afterwards. A lost update race
    /// (HTTP 409) simply means someone else won this round.
    pub async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        identity: &str,
        now_ms: i64,
    ) -> Result<bool, ApiServerError> {
        let now = k8s_openapi::jiff::Timestamp::from_millisecond(now_ms)
            .map_err(|e| ApiServerError::Client(e.to_string()))?;
        let current = self
            .get_opt::<Lease>(&access::GET_LEASE, namespace, name)
            .await?;
        let mine = LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_S),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        };
        match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some(namespace.to_string()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        acquire_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..mine
                    }),
                };
                match self.create(&access::CREATE_LEASE, namespace, &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Self::err(&access::CREATE_LEASE)(e)),
                }
            }
            Some(lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let held_by_me = holder == identity;
                let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
                    (Some(MicroTime(t)), Some(d)) => t.as_millisecond() + d as i64 * 1000 < now_ms,
                    _ => true,
                };
                if !held_by_me && !holder.is_empty() && !expired {
                    return Ok(false);
                }
                let transitions =
                    spec.lease_transitions.unwrap_or(0) + if held_by_me { 0 } else { 1 };
                let acquire = if held_by_me {
                    spec.acquire_time.clone()
                } else {
                    Some(MicroTime(now))
                };
                let updated = Lease {
                    metadata: lease.metadata.clone(),
                    spec: Some(LeaseSpec {
                        acquire_time: acquire,
                        lease_transitions: Some(transitions),
                        ..mine
                    }),
                };
                match self
                    .replace(&access::UPDATE_LEASE, namespace, name, &updated)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Self::err(&access::UPDATE_LEASE)(e)),
                }
            }
        }
    }

    // --- The only requests: each names its entry in crate::access ---------------------------
    // (access.rs's tests fail on a request made anywhere else.) In debug builds, and so in
    // every test, each checks that the entry is this verb on this typed resource, in this
    // scope.

    /// `get` of a cluster-scoped object.
    async fn get<K>(&self, access: &'static Access, name: &str) -> Result<K, ApiServerError>
    where
        K: kube::Resource<DynamicType = ()> + k8s_openapi::Resource,
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        expect::<K>(access, Verb::Get, None);
        Api::<K>::all(self.client.clone())
            .get(name)
            .await
            .map_err(Self::err(access))
    }

    /// `list` across the cluster.
    async fn list<K>(
        &self,
        access: &'static Access,
        lp: &ListParams,
    ) -> Result<Vec<K>, ApiServerError>
    where
        K: kube::Resource<DynamicType = ()> + k8s_openapi::Resource,
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        expect::<K>(access, Verb::List, None);
        Ok(Api::<K>::all(self.client.clone())
            .list(lp)
            .await
            .map_err(Self::err(access))?
            .items)
    }

    /// `get` of one object of `namespace`; `None` if there is none.
    async fn get_opt<K>(
        &self,
        access: &'static Access,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>, ApiServerError>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: k8s_openapi::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        expect::<K>(access, Verb::Get, Some(name));
        Api::<K>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(Self::err(access))
    }

    /// `create` in `namespace`. The error is kube's: a conflict (409) is an answer here.
    async fn create<K>(
        &self,
        access: &'static Access,
        namespace: &str,
        object: &K,
    ) -> Result<K, kube::Error>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: k8s_openapi::Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        expect::<K>(access, Verb::Create, None);
        Api::<K>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), object)
            .await
    }

    /// `update` of one object of `namespace`. The error is kube's: a conflict (409) is an
    /// answer here.
    async fn replace<K>(
        &self,
        access: &'static Access,
        namespace: &str,
        name: &str,
        object: &K,
    ) -> Result<K, kube::Error>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: k8s_openapi::Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        expect::<K>(access, Verb::Update, Some(name));
        Api::<K>::namespaced(self.client.clone(), namespace)
            .replace(name, &PostParams::default(), object)
            .await
    }

    /// `patch` of one object of `namespace`.
    async fn patch<K, P>(
        &self,
        access: &'static Access,
        namespace: &str,
        name: &str,
        patch: &Patch<P>,
    ) -> Result<K, ApiServerError>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: k8s_openapi::Resource + Clone + DeserializeOwned + std::fmt::Debug,
        P: Serialize + std::fmt::Debug,
    {
        expect::<K>(access, Verb::Patch, Some(name));
        Api::<K>::namespaced(self.client.clone(), namespace)
            .patch(name, &PatchParams::default(), patch)
            .await
            .map_err(Self::err(access))
    }

    /// `GET` of a path outside the resources; the body as it streams in.
    async fn non_resource(
        &self,
        access: &'static Access,
        accept: &str,
    ) -> Result<impl futures::AsyncBufRead + use<>, ApiServerError> {
        let path = access.non_resource_path();
        debug_assert!(path.is_some() && access.verb == Verb::Get, "{access}");
        let request = http::Request::get(path.unwrap_or_default())
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())
            .map_err(|e| ApiServerError::Client(e.to_string()))?;
        self.client.request_stream(request).await.map_err(|e| {
            let hint = match &e {
                kube::Error::Api(s) if s.code == 403 => format!(
                    " (the agent's ClusterRole needs nonResourceURLs [\"{}\"], verb get)",
                    path.unwrap_or_default()
                ),
                _ => String::new(),
            };
            ApiServerError::Request {
                what: access.name,
                message: format!("{}{hint}", crate::kubelet::error_chain(&e)),
            }
        })
    }
}

/// Checks (debug builds) that `access` is `verb` on `K`, cluster-wide or (`name`: one object,
/// `None` with create: any object) in a namespace, as the helper asking it does.
fn expect<K: k8s_openapi::Resource>(access: &Access, verb: Verb, name: Option<&str>) {
    debug_assert!(
        access.is::<K>(verb),
        "{access}: the request is {} on {}/{}",
        verb.as_str(),
        K::GROUP,
        K::URL_PATH_SEGMENT
    );
    let scope_fits = match (access.scope, name) {
        (Scope::Cluster, None) => true,
        (Scope::Namespace, None) => verb == Verb::Create,
        (Scope::Object(want), Some(name)) => want.is_none_or(|w| w == name),
        _ => false,
    };
    debug_assert!(
        scope_fits,
        "{access}: scope {:?}, object {name:?}",
        access.scope
    );
}
