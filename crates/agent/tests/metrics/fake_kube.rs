//! A test server standing in for the kubelet (`GET /pods`) and the API server (lists, this
//! node's Node, Leases with resourceVersion conflicts, its own `/metrics`). It serves the
//! recorded documents in tests/fixtures/kube/ — the real kubelet and API server cannot run on
//! a test machine — over plain HTTP, or over real TLS (rustls) with a certificate the test made.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// Answers 200 with a body that is not a PodList.
    Garbage,
    /// Never answers within the client's timeout.
    Hang,
    /// 403, as a kubelet older than 1.33 answers without `nodes/proxy`.
    Forbidden,
}

pub struct KubeState {
    pub kubelet_pods: String,
    /// The kubelet's `/stats/summary`; `None`: 403, as a kubelet answers a caller without
    /// `get` on `nodes/stats`.
    pub kubelet_summary: Option<String>,
    /// The API server's Ingresses (an IngressList).
    pub ingresses: String,
    pub nodes: String,
    pub cluster_pods: String,
    pub endpoints: String,
    pub mode: Mode,
    /// (namespace, name) → (resourceVersion, lease object)
    pub leases: HashMap<(String, String), (u64, Value)>,
    pub lease_writes: u64,
    /// The `Authorization` header of every `/pods` request that reached the server.
    pub kubelet_auth: Vec<Option<String>>,
    /// TLS handshakes that failed (the client refused the certificate, for one).
    pub handshake_failures: u64,
    /// (namespace, name) → Secret object.
    pub secrets: HashMap<(String, String), Value>,
    /// Secret creates and patches that reached the server.
    pub secret_writes: u64,
    /// The API server's own `/metrics` (Prometheus text), and the status it is served with:
    /// 200, or 403 with the API server's Status for a caller without `get` on `/metrics`.
    pub apiserver_metrics: String,
    pub apiserver_metrics_status: u16,
    /// `/metrics` requests that reached the server.
    pub apiserver_metrics_requests: u64,
    /// Every request that reached the server: (method, path, query).
    pub requests: Vec<(String, String, String)>,
}

#[derive(Clone)]
pub struct FakeKube {
    pub url: String,
    pub state: Arc<Mutex<KubeState>>,
}

impl FakeKube {
    pub async fn start(kubelet_pods: String) -> FakeKube {
        let state = Self::state(kubelet_pods);
        let app = Self::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeKube { url, state }
    }

    /// The same server over TLS, presenting `chain` (leaf first) with `key`.
    pub async fn start_tls(
        kubelet_pods: String,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> FakeKube {
        let state = Self::state(kubelet_pods);
        let app = Self::router(state.clone());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            state: state.clone(),
        };
        let url = format!("https://{}", listener.tcp.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeKube { url, state }
    }

    fn state(kubelet_pods: String) -> Arc<Mutex<KubeState>> {
        Arc::new(Mutex::new(KubeState {
            kubelet_pods,
            kubelet_summary: None,
            ingresses: super::fixtures::kube("ingresses.json", &[]),
            nodes: super::fixtures::kube("nodes.json", &[]),
            cluster_pods: super::fixtures::kube("cluster-pods.json", &[]),
            endpoints: super::fixtures::kube("endpoints.json", &[]),
            mode: Mode::Ok,
            leases: HashMap::new(),
            lease_writes: 0,
            kubelet_auth: Vec::new(),
            handshake_failures: 0,
            secrets: HashMap::new(),
            secret_writes: 0,
            apiserver_metrics: super::fixtures::kube("apiserver-metrics-1.txt", &[]),
            apiserver_metrics_status: 200,
            apiserver_metrics_requests: 0,
            requests: Vec::new(),
        }))
    }

    fn router(state: Arc<Mutex<KubeState>>) -> Router {
        Router::new()
            .route("/pods", get(serve_kubelet_pods))
            .route("/metrics", get(serve_apiserver_metrics))
            .route(
                "/api/v1/nodes",
                get(|State(s): State<Arc<Mutex<KubeState>>>| async move {
                    json_body(s.lock().unwrap().nodes.clone())
                }),
            )
            .route("/api/v1/nodes/{name}", get(node))
            .route("/api/v1/pods", get(cluster_or_node_pods))
            .route("/stats/summary", get(serve_kubelet_summary))
            .route(
                "/apis/networking.k8s.io/v1/ingresses",
                get(|State(s): State<Arc<Mutex<KubeState>>>| async move {
                    json_body(s.lock().unwrap().ingresses.clone())
                }),
            )
            .route(
                "/apis/apps/v1/deployments",
                get(|| async { json_body(super::fixtures::kube("deployments.json", &[])) }),
            )
            .route(
                "/apis/apps/v1/daemonsets",
                get(|| async { json_body(super::fixtures::kube("daemonsets.json", &[])) }),
            )
            .route(
                "/apis/apps/v1/statefulsets",
                get(|| async { json_body(super::fixtures::kube("statefulsets.json", &[])) }),
            )
            .route(
                "/apis/apps/v1/replicasets",
                get(|| async { json_body(super::fixtures::kube("replicasets.json", &[])) }),
            )
            .route(
                "/api/v1/endpoints",
                get(|State(s): State<Arc<Mutex<KubeState>>>| async move {
                    json_body(s.lock().unwrap().endpoints.clone())
                }),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                axum::routing::post(create_lease),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                get(get_lease).put(put_lease),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets",
                axum::routing::post(create_secret),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                get(get_secret).patch(patch_secret),
            )
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn lease_holder(&self) -> Option<String> {
        let s = self.state.lock().unwrap();
        s.leases
            .values()
            .next()
            .and_then(|(_, l)| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    }

    /// Makes the current lease look stale, as if its holder had died a minute ago.
    pub fn expire_lease(&self) {
        let mut s = self.state.lock().unwrap();
        for (_, l) in s.leases.values_mut() {
            l["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
        }
    }
}

/// Notes every request in [`KubeState::requests`], whatever the answer.
async fn record(
    State(s): State<Arc<Mutex<KubeState>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri();
    let seen = (
        request.method().to_string(),
        uri.path().to_string(),
        uri.query().unwrap_or_default().to_string(),
    );
    s.lock().unwrap().requests.push(seen);
    next.run(request).await
}

fn json_body(body: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// Accepts TCP connections and completes their TLS handshake; a failed handshake is counted
/// and the connection dropped, as a server does.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<Mutex<KubeState>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => self.state.lock().unwrap().handshake_failures += 1,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn serve_kubelet_pods(
    State(s): State<Arc<Mutex<KubeState>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let (mode, body) = {
        let mut s = s.lock().unwrap();
        s.kubelet_auth.push(
            headers
                .get(axum::http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap_or("(not text)").to_string()),
        );
        (s.mode, s.kubelet_pods.clone())
    };
    match mode {
        Mode::Ok => json_body(body),
        Mode::Garbage => json_body("<html><body>502 Bad Gateway</body></html>".into()),
        Mode::Forbidden => (StatusCode::FORBIDDEN, "Forbidden (user=system:serviceaccount:kinsight:kinsight-agent, verb=get, resource=nodes, subresource=proxy)").into_response(),
        Mode::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            json_body(body)
        }
    }
}

async fn serve_apiserver_metrics(State(s): State<Arc<Mutex<KubeState>>>) -> Response {
    let mut s = s.lock().unwrap();
    s.apiserver_metrics_requests += 1;
    match s.apiserver_metrics_status {
        200 => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.apiserver_metrics.clone(),
        )
            .into_response(),
        403 => status(
            403,
            "Forbidden",
            r#"forbidden: User "system:serviceaccount:kinsight:kinsight-agent" cannot get path "/metrics""#.into(),
        ),
        code => status(code, "InternalError", "an error on the server".into()),
    }
}

async fn cluster_or_node_pods(
    State(s): State<Arc<Mutex<KubeState>>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let s = s.lock().unwrap();
    if q.unwrap_or_default()
        .contains("fieldSelector=spec.nodeName")
    {
        json_body(s.kubelet_pods.clone())
    } else {
        json_body(s.cluster_pods.clone())
    }
}

async fn serve_kubelet_summary(State(s): State<Arc<Mutex<KubeState>>>) -> Response {
    match s.lock().unwrap().kubelet_summary.clone() {
        Some(body) => json_body(body),
        None => (
            StatusCode::FORBIDDEN,
            "Forbidden (user=system:serviceaccount:kinsight:kinsight-agent, verb=get, resource=nodes, subresource=stats)",
        )
            .into_response(),
    }
}

async fn node(State(s): State<Arc<Mutex<KubeState>>>, Path(name): Path<String>) -> Response {
    let nodes: Value = serde_json::from_str(&s.lock().unwrap().nodes).unwrap();
    match nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["metadata"]["name"] == name.as_str())
    {
        Some(n) => axum::Json(n.clone()).into_response(),
        None => status(404, "NotFound", format!("nodes \"{name}\" not found")),
    }
}

async fn get_lease(
    State(s): State<Arc<Mutex<KubeState>>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match s.lock().unwrap().leases.get(&(ns, name.clone())) {
        Some((_, l)) => axum::Json(l.clone()).into_response(),
        None => status(
            404,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        ),
    }
}

async fn get_secret(
    State(s): State<Arc<Mutex<KubeState>>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match s.lock().unwrap().secrets.get(&(ns, name.clone())) {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => status(404, "NotFound", format!("secrets \"{name}\" not found")),
    }
}

async fn create_secret(
    State(s): State<Arc<Mutex<KubeState>>>,
    Path(ns): Path<String>,
    axum::Json(mut secret): axum::Json<Value>,
) -> Response {
    let mut s = s.lock().unwrap();
    let name = secret["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = (ns, name.clone());
    if s.secrets.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("secrets \"{name}\" already exists"),
        );
    }
    secret["apiVersion"] = json!("v1");
    secret["kind"] = json!("Secret");
    s.secrets.insert(key, secret.clone());
    s.secret_writes += 1;
    (StatusCode::CREATED, axum::Json(secret)).into_response()
}

/// JSON merge patch (RFC 7386), what `kubectl patch --type merge` sends.
async fn patch_secret(
    State(s): State<Arc<Mutex<KubeState>>>,
    Path((ns, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct != "application/merge-patch+json" {
        return status(415, "UnsupportedMediaType", format!("content type {ct}"));
    }
    let patch: Value = serde_json::from_str(&body).unwrap();
    let mut s = s.lock().unwrap();
    let Some(secret) = s.secrets.get_mut(&(ns, name.clone())) else {
        return status(404, "NotFound", format!("secrets \"{name}\" not found"));
    };
    merge(secret, &patch);
    let out = secret.clone();
    s.secret_writes += 1;
    axum::Json(out).into_response()
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn create_lease(
    State(s): State<Arc<Mutex<KubeState>>>,
    Path(ns): Path<String>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut s = s.lock().unwrap();
    let name = lease["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = (ns, name.clone());
    if s.leases.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("leases.coordination.k8s.io \"{name}\" already exists"),
        );
    }
    lease["metadata"]["resourceVersion"] = json!("1");
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    s.leases.insert(key, (1, lease.clone()));
    s.lease_writes += 1;
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

async fn put_lease(
    State(s): State<Arc<Mutex<KubeState>>>,
    Path((ns, name)): Path<(String, String)>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut s = s.lock().unwrap();
    let key = (ns, name.clone());
    let Some((rv, _)) = s.leases.get(&key).cloned() else {
        return status(
            404,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        );
    };
    if lease["metadata"]["resourceVersion"].as_str() != Some(rv.to_string().as_str()) {
        return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again".into());
    }
    let rv = rv + 1;
    lease["metadata"]["resourceVersion"] = json!(rv.to_string());
    s.leases.insert(key, (rv, lease.clone()));
    s.lease_writes += 1;
    axum::Json(lease).into_response()
}
