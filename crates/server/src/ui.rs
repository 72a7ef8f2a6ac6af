//! The web console (issue #7): the production build of `ui/` (Vite, in `ui/dist`) served at
//! `/`, with client-side routes — any other `GET` outside the API answers `index.html`, so
//! `/logs?group=…` or `/alarms` can be reloaded and bookmarked.
//!
//! How the assets get in (after Quickwit's `ui_handler.rs`): `rust-embed` on `ui/dist`. A
//! release build embeds the files at compile time; a debug build reads them from `ui/dist` at
//! run time, so `npm run build` is enough while developing — once the binary has been built
//! with `ui/dist` present (without it, `allow_missing` compiles an empty set; `build.rs`
//! rebuilds the crate when the folder appears). `ui/dist` is not in git: when it
//! is missing at compile time the binary still builds (`allow_missing`) and `/` answers a page
//! that says how to build the console (`build.rs` makes a release build notice when it
//! appears).
//!
//! What it deliberately does not: authenticate. The assets are public (the console signs in
//! with a token it sends to the API, which checks it); `/v1/*` and `/healthz` never reach
//! this module, and only `GET`/`HEAD` do — `POST /` belongs to the CloudWatch-compatible API.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "../../ui/dist"]
#[allow_missing = true]
struct Assets;

/// Only what the console itself loads: its own scripts, styles, fonts and images, and calls to
/// this server. No CDN, no external fonts (issue #7: the console works offline). uPlot sizes
/// its elements with inline styles, hence `'unsafe-inline'` for styles only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Served at `/` when the binary was built without `ui/dist` and none is on disk.
const NOT_BUILT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kinsight — console not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}
code,pre{background:#f2f2f2;padding:.1rem .3rem;border-radius:4px}pre{padding:.8rem}</style></head>
<body><h1>The kinsight console is not built into this binary</h1>
<p>The server and its API (<code>/v1/…</code>) work; only the web console's files are missing.
Build them, then rebuild kinsight (a release build embeds <code>ui/dist</code>; a debug build
reads it from disk, so later console builds need no rebuild):</p>
<pre>cd ui
npm ci
npm run build
cd ..
cargo build --release --bin kinsight</pre>
<p>See <code>docs/console.md</code>.</p></body></html>
"#;

/// `GET /` (merged beside the API; `POST /` stays free for the CloudWatch protocol).
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index))
}

async fn index() -> Response {
    index_html()
}

/// The router's fallback: console assets and client-side routes for `GET`/`HEAD` outside the
/// API, the API's JSON `NotFound` for everything else.
pub async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    if !is_read || is_api_path(path) {
        return crate::api::not_found(req).await.into_response();
    }
    let file = path.trim_start_matches('/');
    if let Some(asset) = Assets::get(file) {
        return asset_response(file, asset);
    }
    // A missing file (a stale hashed bundle, a typo) is a 404, not the app: a browser would
    // otherwise try to run HTML as a script.
    if file.starts_with("assets/") || last_segment_has_extension(file) {
        return crate::api::not_found(req).await.into_response();
    }
    index_html()
}

fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path == "/healthz" || path == "/readyz"
}

fn last_segment_has_extension(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|s| s.contains('.'))
}

fn index_html() -> Response {
    let (body, built) = match Assets::get("index.html") {
        Some(f) => (Body::from(f.data.into_owned()), true),
        None => (Body::from(NOT_BUILT_PAGE), false),
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page names the current hashed bundles: always revalidate it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !built {
        h.insert("x-kinsight-ui", HeaderValue::from_static("not-built"));
    }
    res
}

fn asset_response(path: &str, asset: rust_embed::EmbeddedFile) -> Response {
    if path == "index.html" {
        return index_html();
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut res = (StatusCode::OK, Body::from(asset.data.into_owned())).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Vite puts a content hash in every file name under assets/: cache those for good.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_never_reach_the_console() {
        for p in ["/v1", "/v1/groups", "/v1/queries/abc", "/healthz"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/logs", "/dashboards/node", "/v1x", "/alarms/v1"] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn file_like_paths_are_not_client_routes() {
        assert!(last_segment_has_extension("assets/index-abc.js"));
        assert!(last_segment_has_extension("favicon.ico"));
        assert!(!last_segment_has_extension("dashboards/pod"));
        assert!(!last_segment_has_extension(""));
    }
}
