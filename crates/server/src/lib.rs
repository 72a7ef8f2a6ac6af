//! kinsight-server: the HTTP face of kinsight, on axum.
//!
//! What it does: serves `GET /healthz` and the native JSON API (`/v1/...`, docs/api.md) —
//! ingest of log-event batches (zstd/gzip, idempotent batch ids, per-event partial
//! acceptance), log groups and streams, events by time with pagination, follow (long-poll and
//! server-sent events), scoped tokens and maintenance — behind bearer-token authentication.
//! Every error is one [`error::ErrorCode`] mapped to its HTTP status in one place and
//! answered as `{code, message}`; a full disk is 507, never silent loss.
//!
//! What it deliberately does not: hold domain logic. Storage, validation rules and durability
//! live in `kinsight-store`; queries, metrics and alarms in their crates. Handlers parse,
//! call one domain function and shape the answer. The router is assembled from one module per
//! API area ([`api`]) and an [`AppState`] that grows a field per engine, so the query, metrics,
//! alarms, CloudWatch and UI modules plug in without touching the existing ones.

pub mod api;
pub mod auth;
pub mod body;
pub mod browser;
pub mod budget;
pub mod cwlogs;
pub mod error;
pub mod feed;
pub mod replicas;
pub mod state;
pub mod transport;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::router;
pub use auth::{Action, Auth, Caller, Scope};
pub use error::{ApiError, ErrorCode};
pub use state::AppState;
pub use transport::{TlsConfig, TransportConfig};

use kinsight_store::{IngestObserver, Store, StoreConfig, StoreError};

/// What `kinsight server` is started with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    /// The admin bearer token (`KINSIGHT_TOKEN`); `None` = no authentication, which is only
    /// allowed on a loopback address.
    pub admin_token: Option<String>,
    /// Timeouts, connection and request caps, TLS (`transport`).
    pub transport: TransportConfig,
    /// Request, page and follow-buffer sizes.
    pub limits: state::Limits,
    /// The query service's threads, memory, results and spill settings.
    pub query: kinsight_query::QueryConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "refusing to listen on {0} without a token: set KINSIGHT_TOKEN, or listen on a loopback address (127.0.0.1 / ::1)"
    )]
    NoTokenOffLoopback(SocketAddr),
    #[error("KINSIGHT_TOKEN must be at least 16 characters long")]
    WeakToken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] transport::TlsError),
    #[error("serve: {0}")]
    Serve(std::io::Error),
}

impl ServerConfig {
    /// Checks the authentication rule of issue #4: no token → loopback only.
    pub fn validate(&self) -> Result<(), ServerError> {
        match &self.admin_token {
            None if !self.listen.ip().is_loopback() => {
                Err(ServerError::NoTokenOffLoopback(self.listen))
            }
            Some(t) if t.len() < 16 => Err(ServerError::WeakToken),
            _ => Ok(()),
        }
    }
}

/// A running server: its bound address and state.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    listener: tokio::net::TcpListener,
    transport: TransportConfig,
    /// The certificate served when TLS is on; `reload` reads its files again.
    pub tls: Option<Arc<transport::TlsCerts>>,
}

impl Server {
    /// Validates the config, opens the store (replaying the WAL; `observers` see every
    /// durable batch — the metric store registers here) and binds the listener.
    pub async fn bind(
        config: ServerConfig,
        observers: Vec<Arc<dyn IngestObserver>>,
    ) -> Result<Server, ServerError> {
        config.validate()?;
        let auth = match (&config.admin_token, &config.store.shared) {
            (Some(t), Some(shared)) => Auth::open_shared(t, shared.catalogue.clone()).await?,
            (Some(t), None) => Auth::open(t, &config.store.data_dir)?,
            (None, _) => {
                tracing::warn!(listen = %config.listen, "no KINSIGHT_TOKEN: authentication is off (loopback only)");
                Auth::disabled()
            }
        };
        // The certificate first: a bad pair fails the start before the store is opened.
        let tls = match &config.transport.tls {
            Some(t) => Some(transport::TlsCerts::load(t.clone())?),
            None => None,
        };
        let store = Store::open(config.store.clone(), observers).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let state = AppState::with_config(store, auth, config.limits, config.query);
        if config.store.shared.is_some() {
            // Tokens made or revoked on another replica count here within a second.
            let auth = Arc::downgrade(&state.auth);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let Some(auth) = auth.upgrade() else { break };
                    if let Err(e) = auth.refresh().await {
                        tracing::warn!(error = %e.message, "reading the shared tokens failed");
                    }
                }
            });
        }
        Ok(Server {
            addr,
            state,
            listener,
            transport: config.transport,
            tls,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        transport::scheme(self.tls.is_some())
    }

    /// The base URL of the bound address (`https://127.0.0.1:8443`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    /// Serves until `shutdown` completes, then stops the store cleanly.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let store = self.state.store.clone();
        let feed = self.state.feed.clone();
        let app = router(self.state);
        tracing::info!(addr = %self.addr, tls = self.tls.is_some(), "kinsight server listening");
        let shutdown = async move {
            shutdown.await;
            // Long-polls and event streams end now, or the graceful shutdown would wait for
            // clients that never hang up.
            feed.close();
        };
        let res = transport::serve(self.listener, app, self.transport, self.tls, shutdown)
            .await
            .map_err(ServerError::Serve);
        store.shutdown().await;
        res
    }
}
