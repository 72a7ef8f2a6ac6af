//! A server state on a temporary directory, a small request helper, and a webhook receiver.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kinsight_server::{AppState, Auth, router};
use kinsight_store::{Store, StoreConfig};
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-token-0123456789";

pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub _dir: tempfile::TempDir,
}

pub async fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.background = false;
    let store = Store::open(cfg, vec![]).await.unwrap();
    let auth = Auth::open(ADMIN, dir.path()).unwrap();
    let state = AppState::new(store, auth);
    TestApp {
        app: router(state.clone()),
        state,
        _dir: dir,
    }
}

/// A server whose metric store is fed by its ingest path (EMF events, remote write, OTLP).
pub struct MetricsApp {
    pub app: Router,
    pub _dir: tempfile::TempDir,
}

pub async fn metrics_app(config: kinsight_metrics::MetricStoreConfig) -> MetricsApp {
    let dir = tempfile::tempdir().unwrap();
    let engine = kinsight_server::api::metrics::MetricsEngine::open(dir.path(), config).unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.background = false;
    let store = Store::open(cfg, vec![engine.observer()]).await.unwrap();
    let mut state = AppState::new(store, Auth::open(ADMIN, dir.path()).unwrap());
    state.metrics = Some(engine.metrics.clone());
    MetricsApp {
        app: router(state),
        _dir: dir,
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A request builder with the admin token and JSON content type preset.
pub struct Call {
    pub req: axum::http::request::Builder,
    pub body: Vec<u8>,
}

pub fn call(method: &str, uri: &str) -> Call {
    Call {
        req: Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json"),
        body: Vec::new(),
    }
}

impl Call {
    /// Sets a header, replacing a preset one.
    pub fn header(mut self, k: &'static str, v: &str) -> Self {
        self.req
            .headers_mut()
            .unwrap()
            .insert(k, v.parse().unwrap());
        self
    }
    pub fn token(mut self, t: Option<&str>) -> Self {
        let headers = self.req.headers_mut().unwrap();
        headers.remove("authorization");
        if let Some(t) = t {
            headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        self
    }
    pub fn json(mut self, v: &Value) -> Self {
        self.body = serde_json::to_vec(v).unwrap();
        self
    }
    pub fn raw(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    pub async fn send(self, app: &Router) -> (StatusCode, Value) {
        let resp = app
            .clone()
            .oneshot(self.req.body(Body::from(self.body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }
}

pub fn event(group: &str, stream: &str, ts: i64, msg: &str) -> Value {
    serde_json::json!({"logGroupName": group, "logStreamName": stream, "timestamp": ts, "message": msg})
}

/// One request a [`receiver`] got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    /// The `x-kinsight-notification-id` header.
    pub notification_id: String,
    pub body: Value,
}

pub type Inbox = std::sync::Arc<std::sync::Mutex<Vec<Hook>>>;

/// A webhook receiver on 127.0.0.1 that records every request (`POST /<path>`).
pub async fn receiver() -> (String, Inbox) {
    use axum::extract::{Path, State};
    let inbox: Inbox = Default::default();
    async fn hook(
        State(inbox): State<Inbox>,
        Path(path): Path<String>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> &'static str {
        let notification_id = headers
            .get("x-kinsight-notification-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        inbox.lock().unwrap().push(Hook {
            path,
            notification_id,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        "ok"
    }
    let app = Router::new()
        .route("/{p}", axum::routing::post(hook))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), inbox)
}

/// What the receiver got at `/<path>`, in order.
pub fn received(inbox: &Inbox, path: &str) -> Vec<Hook> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.path == path)
        .cloned()
        .collect()
}
