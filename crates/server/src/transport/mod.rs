//! The server's connections (issue 15 items 2 and 16): accepting them, TLS, HTTP/1.1 and
//! HTTP/2 through hyper, and the limits that keep clients that never finish from holding the
//! server's resources for ever. docs/security.md ("Connections and HTTP") lists each limit.
//!
//! - **Connections**: at most `max_connections` at once. One beyond the cap is accepted and
//!   closed at once (plain HTTP first gets a `503` with `Connection: close`), which a client
//!   sees as a refusal right away rather than a connection that hangs in the kernel's queue.
//! - **TLS handshake and request headers**: a handshake must finish, and a request's headers
//!   must be complete, within `header_read_timeout` of their first byte; otherwise the
//!   connection is closed.
//! - **Request bodies**: a body must have arrived within `body_read_timeout` of its headers
//!   ([`conn::TimedBody`]); one that trickles in is cut off and answered `408`.
//! - **Idle connections**: a connection with no request in progress for `idle_timeout` is
//!   closed. Long-poll `GET /v1/follow` and server-sent events `GET /v1/tail` are requests in
//!   progress, not idle: their responses are legitimately long, and these timeouts are about
//!   reading requests and idling, never about writing responses.
//! - **Requests in flight**: at most `max_requests` handlers run at once; beyond that a
//!   request is answered `503` with `Retry-After` at once (the CloudWatch API in its own error
//!   shape). A request counts until its response starts: a long-poll while it waits, a
//!   server-sent-events stream only until its headers are sent. `GET /healthz` is never
//!   refused, so a liveness probe does not restart a server that is merely busy.
//! - **Shutdown**: the listener closes, long-polls and event streams end
//!   (`FollowHub::close`, done by the caller's shutdown future), connections finish their
//!   requests and close; whatever still runs after `shutdown_timeout` is dropped.

pub mod conn;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::budget::HeldUntilSent;
use crate::error::ErrorCode;
pub use conn::BodyReadTimeout;
use conn::{Activity, Expiry, TimedBody, TrackedBody, Watched};
pub use tls::{TlsCerts, TlsConfig, TlsError};

/// The limits of the transport and, when set, its TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// A response being sent must make progress (the client reads it) within this time.
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub max_requests: usize,
    /// Long-polls (`GET /v1/follow`) and event streams (`GET /v1/tail`) in progress: they
    /// wait for events rather than work, so they have a cap of their own instead of holding
    /// places among `max_requests`.
    pub max_long_polls: usize,
    pub shutdown_timeout: Duration,
    pub tls: Option<TlsConfig>,
}

impl Default for TransportConfig {
    /// Sized for a server behind a Service with hundreds of agents: each agent keeps one or
    /// two connections and sends one batch at a time, so 2,048 connections and 512 requests
    /// in flight leave room for consoles and CLIs while bounding what a flood can hold.
    fn default() -> Self {
        TransportConfig {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_connections: 2048,
            max_requests: 512,
            max_long_polls: 256,
            shutdown_timeout: Duration::from_secs(25),
            tls: None,
        }
    }
}

/// One refused connection or request in this many is logged (a flood must not flood the log).
const REFUSAL_LOG_EVERY: u64 = 1000;

/// HTTP/2 streams per connection: each one is a request, so one connection cannot take all
/// of `max_requests`... but many can, which is what `max_requests` is for.
const MAX_H2_STREAMS: u32 = 100;

/// Serves a router other than the API's — the agent's `/metrics` listener — with the same
/// limits (plain HTTP).
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    config: TransportConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, app, config, None, shutdown).await
}

/// Serves `app` on `listener` until `shutdown` completes, then shuts down as described in the
/// module documentation.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: TransportConfig,
    tls: Option<Arc<TlsCerts>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let acceptor = match &tls {
        Some(certs) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            certs
                .server_config()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        ))),
        None => None,
    };
    let reloader = tls.map(|certs| tokio::spawn(certs.watch()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The connection's own watchdog enforces the header timeout (also for the TLS handshake
    // and HTTP/2), so hyper's HTTP/1 timer stays off.
    builder.http1().header_read_timeout(None).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(64 * 1024)
        // Pings find peers that vanished during a long response (a tail over HTTP/2).
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let requests = Arc::new(InFlight {
        permits: Arc::new(Semaphore::new(config.max_requests.max(1))),
        long_polls: Arc::new(Semaphore::new(config.max_long_polls.max(1))),
        refused: AtomicU64::new(0),
        max: config.max_requests,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            if refused.is_multiple_of(REFUSAL_LOG_EVERY) {
                tracing::warn!(
                    %peer,
                    max_connections = config.max_connections,
                    refused_so_far = refused + 1,
                    "connection refused: the server holds --max-connections connections"
                );
            }
            refused += 1;
            refuse(stream, acceptor.is_none());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            config: config.clone(),
            builder: builder.clone(),
            requests: requests.clone(),
            stop: stop_rx.clone(),
            _permit: permit,
        };
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            match acceptor {
                None => conn.run(stream).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        conn.config.header_read_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => conn.run(tls_stream).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if let Some(r) = reloader {
        r.abort();
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the shutdown timeout; closing them"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Closes a connection beyond the cap; plain HTTP first gets a short answer (one
/// non-blocking write: a client that does not read it loses nothing but the text).
fn refuse(stream: TcpStream, plain: bool) {
    if plain {
        const BODY: &str = r#"{"code":"ServiceUnavailable","message":"too many connections (--max-connections); retry later"}"#;
        let text = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let _ = stream.try_write(text.as_bytes());
    }
    drop(stream);
}

/// One accepted connection: what its requests share.
struct Connection {
    app: Router,
    config: Arc<TransportConfig>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    requests: Arc<InFlight>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection until the client closes it, a limit closes it or the server
    /// shuts down.
    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let service = {
            let app = self.app.clone();
            let requests = self.requests.clone();
            let activity = activity.clone();
            let body_timeout = self.config.body_read_timeout;
            hyper::service::service_fn(move |req: Request<Incoming>| {
                handle(
                    app.clone(),
                    requests.clone(),
                    activity.clone(),
                    body_timeout,
                    req,
                )
            })
        };
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let mut stopping = false;
        let (header, idle, write) = (
            self.config.header_read_timeout,
            self.config.idle_timeout,
            self.config.write_timeout,
        );
        loop {
            let wake = activity
                .deadline(header, idle, write)
                .map(|(at, _)| at)
                .unwrap_or_else(|| tokio::time::Instant::now() + idle);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!("connection ended: {e}");
                    }
                    return;
                }
                // A request started: its header deadline may come before the idle one.
                _ = activity.pending_started.notified() => {}
                _ = tokio::time::sleep_until(wake) => {
                    if let Some((at, why)) = activity.deadline(header, idle, write) {
                        if tokio::time::Instant::now() >= at {
                            match why {
                                Expiry::Headers => tracing::debug!(
                                    "closing a connection whose request headers did not arrive within {header:?}"
                                ),
                                Expiry::Idle => tracing::trace!("closing an idle connection"),
                                Expiry::Stalled => tracing::debug!(
                                    "closing a connection whose client read nothing of its response for {write:?}"
                                ),
                            }
                            // Dropping the connection closes it (and whatever it was sending
                            // to a client that does not read).
                            return;
                        }
                    }
                }
                _ = async { drop(stop.wait_for(|s| *s).await) }, if !stopping => {
                    // Finish what is in progress (long-polls have been ended), then close; the
                    // timeouts still apply meanwhile, and the server drops the task at its
                    // shutdown timeout.
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The cap on requests in flight, shared by all connections.
struct InFlight {
    permits: Arc<Semaphore>,
    long_polls: Arc<Semaphore>,
    refused: AtomicU64,
    max: usize,
}

/// One request: the in-flight cap, the body deadline, the router.
async fn handle(
    app: Router,
    requests: Arc<InFlight>,
    activity: Arc<Activity>,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<TrackedBody<Body>>, Infallible> {
    let guard = activity.begin();
    let path = req.uri().path();
    let exempt = path == "/healthz" || path == "/readyz";
    let long = req.method() == axum::http::Method::GET && matches!(path, "/v1/follow" | "/v1/tail");
    let pool = if long {
        &requests.long_polls
    } else {
        &requests.permits
    };
    let permit = if exempt {
        None
    } else {
        match pool.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let n = requests.refused.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(REFUSAL_LOG_EVERY) {
                    tracing::warn!(
                        max_requests = requests.max,
                        refused_so_far = n + 1,
                        "request refused with 503: --max-requests requests are in flight"
                    );
                }
                return Ok(overloaded(&req).map(|b| TrackedBody::new(b, guard, None)));
            }
        }
    };
    let req = req.map(|b| Body::new(TimedBody::new(b, body_timeout)));
    let mut res = match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    drop(permit);
    let held = res.extensions_mut().remove::<HeldUntilSent>();
    Ok(res.map(|b| TrackedBody::new(b, guard, held)))
}

/// `503` with `Retry-After` in the shape of the API the request was for (built here rather
/// than through `ApiError`, which logs every 5xx: a flood must not flood the log).
fn overloaded(req: &Request<Incoming>) -> Response<Body> {
    unavailable(
        is_cloudwatch(req.uri().path(), req.headers()),
        "too many requests in flight (--max-requests); retry later",
    )
}

/// Whether a request is for the CloudWatch Logs API (its errors have their own shape).
pub(crate) fn is_cloudwatch(path: &str, headers: &axum::http::HeaderMap) -> bool {
    path == "/" && headers.contains_key("x-amz-target")
}

/// `503` with `Retry-After: 1` and `message`, shaped for the native or the CloudWatch API.
pub(crate) fn unavailable(cloudwatch: bool, message: &str) -> Response<Body> {
    let (content_type, body) = if cloudwatch {
        (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": "ServiceUnavailableException", "message": message}),
        )
    } else {
        (
            "application/json",
            serde_json::json!({"code": ErrorCode::ServiceUnavailable.as_str(), "message": message}),
        )
    };
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if cloudwatch {
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ServiceUnavailableException"),
        );
    }
    res
}

/// `http` or `https`, for the listen line and URLs.
pub fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}
