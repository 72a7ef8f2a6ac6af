//! Administration: scoped tokens, maintenance triggers, store statistics (docs/api.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kinsight_store::{FlushReport, StoreStats};
use serde::{Deserialize, Serialize};

use crate::auth::{CanManage, CanRead, Require, Scope, TokenInfo};
use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/admin/flush", post(flush))
        .route("/v1/admin/compact", post(compact))
        .route("/v1/admin/retention", post(retention))
        .route("/v1/admin/stats", get(stats))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    scope: Scope,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// The secret; shown only in this answer.
    token: String,
}

async fn create_token(
    _: Require<CanManage>,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let now = chrono::Utc::now().timestamp_millis();
    let (mut info, token) = state.auth.create(&b.name, b.scope, now).await?;
    info.sha256.clear();
    Ok((StatusCode::CREATED, Json(CreatedToken { info, token })))
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenInfo>,
}

async fn list_tokens(_: Require<CanManage>, State(state): State<AppState>) -> Json<TokenList> {
    Json(TokenList {
        tokens: state.auth.list(),
    })
}

async fn revoke_token(
    _: Require<CanManage>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.auth.revoke(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn flush(
    _: Require<CanManage>,
    State(state): State<AppState>,
) -> ApiResult<Json<FlushReport>> {
    Ok(Json(state.store.flush().await?))
}

#[derive(Serialize)]
struct Count {
    segments: usize,
}

async fn compact(_: Require<CanManage>, State(state): State<AppState>) -> ApiResult<Json<Count>> {
    let segments = state.store.compact().await?;
    state.store.collect_garbage().await?;
    Ok(Json(Count { segments }))
}

async fn retention(_: Require<CanManage>, State(state): State<AppState>) -> ApiResult<Json<Count>> {
    let segments = state.store.enforce_retention().await?;
    state.store.collect_garbage().await?;
    Ok(Json(Count { segments }))
}

/// The store's counters, plus how close the metric series cap is (issue 15, item 12).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    #[serde(flatten)]
    store: StoreStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_series: Option<kinsight_metrics::SeriesUsage>,
}

async fn stats(_: Require<CanRead>, State(state): State<AppState>) -> Json<Stats> {
    Json(Stats {
        store: state.store.stats(),
        metric_series: state.metrics.as_ref().map(|m| m.series_usage()),
    })
}
