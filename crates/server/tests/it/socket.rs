//! Over a real socket: long-poll follow wakes up on new events (also of older timestamps),
//! server-sent events stream them, and the server refuses to run open off loopback.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kinsight_server::{Server, ServerConfig, ServerError};
use kinsight_store::StoreConfig;
use serde_json::{Value, json};

use crate::support::*;

type Running = (
    String,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
    tokio::task::JoinHandle<Result<(), ServerError>>,
);

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig::new(dir.path()),
        admin_token: Some(ADMIN.into()),
        transport: Default::default(),
        limits: Default::default(),
        query: Default::default(),
    };
    let server = Server::bind(config, vec![]).await.unwrap();
    let url = format!("http://{}", server.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    (url, tx, dir, handle)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_events(url: &str, events: Value) -> Value {
    client()
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(ADMIN)
        .json(&events)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_follow_returns_new_events_in_arrival_order() {
    let (url, _stop, _dir, _h) = start().await;
    let now = now_ms();
    post_events(&url, json!([event("/app", "a", now, "before")])).await;
    // Start following: `after` from the events API.
    let page: Value = client()
        .get(format!("{url}/v1/events?group=/app"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = page["seq"].as_u64().unwrap();

    let waiter = {
        let url = url.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let v: Value = client()
                .get(format!(
                    "{url}/v1/follow?group=/app&after={after}&waitMs=10000"
                ))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An event of another group does not wake it with anything; then an event with an older
    // timestamp than the one already seen (another stream shipped late) does.
    post_events(&url, json!([event("/other", "x", now, "elsewhere")])).await;
    post_events(&url, json!([event("/app", "b", now - 5000, "late")])).await;
    let (v, took) = waiter.await.unwrap();
    assert!(
        took < Duration::from_secs(5),
        "woke up on the event, took {took:?}"
    );
    let msgs: Vec<_> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["late"]);
    assert_eq!(v["gap"], false);

    // Nothing new: returns empty after waitMs with the same position.
    let seq = v["seq"].as_u64().unwrap();
    let v: Value = client()
        .get(format!("{url}/v1/follow?group=/app&after={seq}&waitMs=200"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["events"].as_array().unwrap().is_empty());
    assert!(v["seq"].as_u64().unwrap() >= seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_tail_streams_backlog_then_live_events() {
    let (url, stop, _dir, handle) = start().await;
    let now = now_ms();
    post_events(
        &url,
        json!([
            event("/app", "a", now, "old-1"),
            event("/app", "a", now + 1, "old-2")
        ]),
    )
    .await;
    let resp = client()
        .get(format!("{url}/v1/tail?group=/app&stream=a&backlog=1"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let poster = {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            post_events(
                &url,
                json!([
                    event("/app", "b", now, "other stream"),
                    event("/app", "a", now + 2, "live")
                ]),
            )
            .await;
        })
    };
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("live") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    poster.await.unwrap();
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let msgs: Vec<_> = data
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["old-2", "live"], "{text}");
    assert!(text.contains("event: log"));
    // A graceful shutdown does not wait for the open event stream: it ends it.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("shutdown completes with a tail open")
        .unwrap()
        .unwrap();
    drop(body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let open_wide = ServerConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        store: StoreConfig::new(dir.path()),
        admin_token: None,
        transport: Default::default(),
        limits: Default::default(),
        query: Default::default(),
    };
    assert!(matches!(
        Server::bind(open_wide, vec![]).await.err(),
        Some(ServerError::NoTokenOffLoopback(_))
    ));
    let local = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig::new(dir.path()),
        admin_token: None,
        transport: Default::default(),
        limits: Default::default(),
        query: Default::default(),
    };
    let server = Server::bind(local, vec![]).await.unwrap();
    let url = format!("http://{}", server.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    // No Authorization header needed on loopback without a token.
    let resp = client()
        .get(format!("{url}/v1/groups"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}
