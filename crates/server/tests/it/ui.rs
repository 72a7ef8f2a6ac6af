//! The console's assets through the router (issue #7): `GET /` and client-side routes answer
//! the console's `index.html` (or, without `ui/dist`, the page saying how to build it), files
//! are served with their type, while `/v1/*` keeps its JSON errors and `POST /` never gets the
//! console. A debug build reads `ui/dist` at run time, so what `/` is depends on whether the
//! console has been built: the test reads the same folder.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::support::*;

fn built_index() -> Option<String> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist/index.html");
    std::fs::read_to_string(p).ok()
}

async fn get(
    app: &axum::Router,
    method: &str,
    uri: &str,
) -> (StatusCode, header::HeaderMap, String) {
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_on_get_json_errors_under_v1() {
    let t = app().await;
    let (s, h, body) = get(&t.app, "GET", "/").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    assert!(
        h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    match built_index() {
        Some(index) => {
            assert_eq!(body, index);
            assert_script_served(&t.app, &index).await;
        }
        None => {
            assert_eq!(h["x-kinsight-ui"], "not-built");
            assert!(body.contains("npm run build"), "{body}");
        }
    }
    // Client-side routes reload into the same page; no token needed for the assets.
    for route in ["/dashboards", "/alarms/edit?name=x", "/logs/deep/path"] {
        let (s, _, b) = get(&t.app, "GET", route).await;
        assert_eq!((s, &b), (StatusCode::OK, &body), "{route}");
    }
    let (s, _, b) = get(&t.app, "HEAD", "/insights").await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.is_empty());

    // Files that do not exist are 404s, not the page.
    for missing in ["/assets/index-gone.js", "/nothing.png"] {
        let (s, _, b) = get(&t.app, "GET", missing).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");
        assert!(b.contains("\"NotFound\""), "{b}");
    }
    // The API keeps its own answers, with or without a console.
    let (s, _, b) = get(&t.app, "GET", "/v1/no-such-endpoint").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("\"NotFound\""), "{b}");
    let (s, v) = call("GET", "/v1/no-such-endpoint").send(&t.app).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
    let (s, v) = call("GET", "/healthz").send(&t.app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    // POST / is the CloudWatch protocol's, never the console; other methods elsewhere are JSON.
    let (s, _, b) = get(&t.app, "POST", "/").await;
    assert_ne!(s, StatusCode::OK);
    assert!(!b.contains("<html"), "{b}");
    let (s, _, b) = get(&t.app, "DELETE", "/dashboards").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("\"NotFound\""), "{b}");
}

/// The script `index.html` names: its type, and cached for good (content-hashed name).
async fn assert_script_served(app: &axum::Router, index: &str) {
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html names its script");
    let (s, h, body) = get(app, "GET", script).await;
    assert_eq!(s, StatusCode::OK, "{script}");
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript"),
        "{:?}",
        h[header::CONTENT_TYPE]
    );
    assert_eq!(
        h[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(!body.is_empty());
}
