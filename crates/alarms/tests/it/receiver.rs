//! A real HTTP server on 127.0.0.1 that records what alarm actions send, and answers with a
//! scripted status per path (to exercise retries and failures).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    /// path → statuses to answer, in order; 200 once the script is used up.
    script: Arc<Mutex<HashMap<String, Vec<u16>>>>,
}

pub struct Receiver {
    pub base: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(s): State<Shared>, Path(path): Path<String>, body: Bytes) -> StatusCode {
    let status = {
        let mut script = s.script.lock().unwrap();
        match script.get_mut(&path) {
            Some(list) if !list.is_empty() => list.remove(0),
            _ => 200,
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.received.lock().unwrap().push(Received { path, body });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared::default();
        let app = Router::new()
            .route("/{path}", post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            base: format!("http://{addr}"),
            shared,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .insert(path.to_string(), statuses.to_vec());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn on(&self, path: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }

    /// Waits (real time, bounded) until `path` has received `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Value> {
        for _ in 0..600 {
            let got = self.on(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{path}: expected {n} requests within 30 s, got {:?}",
            self.on(path)
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
