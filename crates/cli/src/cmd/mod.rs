//! One module per subcommand. Each exposes `XArgs` (clap) and `run(XArgs) -> Result<ExitCode>`.

pub mod agent;
pub mod alarms;
pub mod logs;
pub mod metrics;
pub mod query;
pub mod server;
pub mod simulate;
pub mod tokens;
pub mod up;

/// Logs go to stderr so that `--output -` keeps stdout for data. `RUST_LOG` overrides the
/// default level (info).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info,notify=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Writes a long-running command's start-up lines to stdout in one write and flushes them.
/// Errors are ignored: a caller that reads the first line and closes the pipe must not make
/// the server fail (`println!` panics on EPIPE).
pub fn announce(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Builds a multi-threaded tokio runtime for a subcommand.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The node agent's runtime: two worker threads whatever the node's core count (its work is a
/// collection per interval and a log pipeline, not parallel request handling), and at most two
/// malloc arenas unless `MALLOC_ARENA_MAX` says otherwise — glibc would otherwise create up to
/// 8 per core as threads come and go, memory a DaemonSet pays on every node.
pub fn agent_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts the allocator's tuning; called before the runtime
        // starts its threads.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Turns SIGINT/SIGTERM into a shutdown signal.
pub async fn shutdown_on_signal(tx: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    let _ = tx.send(true);
}

/// Serves `/metrics` (Prometheus text of the latest collection) and `/healthz` until shutdown.
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    text: std::sync::Arc<std::sync::RwLock<String>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use axum::{Router, routing::get};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = text.clone();
                async move {
                    let body = text.read().map(|t| t.clone()).unwrap_or_default();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tracing::info!("serving /metrics and /healthz on {addr}");
    // The limits of the server's own listener (issue 15 item 2): a scraper that never
    // finishes its request must not hold a connection on every node for ever.
    let limits = kinsight_server::TransportConfig {
        max_connections: 64,
        max_requests: 16,
        ..Default::default()
    };
    tokio::spawn(async move {
        let _ = kinsight_server::transport::serve_plain(listener, app, limits, async move {
            let _ = shutdown.changed().await;
        })
        .await;
    });
    Ok(())
}
