//! The HTTP surface, one module per API area. Each module exposes `routes()`; [`router`]
//! assembles them. The native API (`/v1/...`) sits behind bearer authentication; `/healthz`
//! does not. Later modules plug in here:
//! `query` (issue #5) and `metrics`/`alarms` (#6) join the native router; `cwlogs` (#8, AWS
//! JSON 1.1 on `POST /` with its own SigV4 auth) and `ui` (#7, static assets) are merged
//! beside it with their own authentication. `prometheus` (issue 17) is the Prometheus HTTP
//! API under `/api/v1/...`, behind the same bearer authentication.

pub mod admin;
pub mod alarms;
pub mod ingest;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod prometheus;
pub mod query;
pub mod remote_write;

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::{Json, extract::Request};
use serde::Serialize;

use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let native = Router::new()
        .merge(ingest::routes())
        .merge(logs::routes())
        .merge(admin::routes())
        .merge(metrics::routes())
        .merge(alarms::routes())
        .merge(query::routes())
        .merge(prometheus::routes())
        .merge(otlp::routes())
        .merge(remote_write::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(native)
        .merge(crate::cwlogs::routes())
        .merge(crate::ui::routes())
        .fallback(crate::ui::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::budget::hold_answers,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::browser::guard_open_mode,
        ))
        .with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness: no authentication, no details beyond the version. 503 only when the store
/// cannot go on (a replica that fell behind the shared log's truncation): restarting it is
/// the remedy.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let healthy = state.store.is_healthy();
    (
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if healthy { "ok" } else { "restart needed" },
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// Readiness: no authentication. A replica is ready once it has joined the catalogue and
/// applies the shared log; a single server once it is serving.
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let ready = state.store.is_ready();
    let replica = state.store.replica();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "starting" },
        "replica": replica.as_ref().map(|(id, _)| id),
        "maintenance": replica.as_ref().map(|(_, leader)| leader),
        "appliedSeq": state.store.last_seq(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no endpoint {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(method: Method, req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not take {method}", req.uri().path()),
    )
}
