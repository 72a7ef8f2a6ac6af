//! Alarms API (issue #6, docs/api.md "Alarms"): PutMetricAlarm, DescribeAlarms,
//! DescribeAlarmHistory, DeleteAlarms, SetAlarmState and the Kubernetes alarm pack, in
//! CloudWatch's JSON member names. Alarm names travel in query parameters (they may hold `/`).
//!
//! Routes: `PUT /v1/alarms`, `GET /v1/alarms`, `GET|DELETE /v1/alarm?name=`,
//! `GET /v1/alarm/history?name=`, `POST /v1/alarm/state`, `POST /v1/alarms/packs/kubernetes`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kinsight_alarms::wire::{
    DescribeAlarmHistoryResponse, DescribeAlarmsResponse, InstallPackRequest, InstallPackResponse,
    SetAlarmStateRequest,
};
use kinsight_alarms::{
    AlarmConfig, AlarmError, AlarmService, DescribeFilter, HistoryItemType, MetricAlarm, StateValue,
};
use serde::Deserialize;

use crate::auth::{Action, Caller, CanManage, CanRead, Require};
use crate::body::{JsonBody, QueryParams};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/alarms", put(put_alarm).get(describe_alarms))
        .route("/v1/alarm", get(describe_alarm).delete(delete_alarm))
        .route("/v1/alarm/history", get(history))
        .route("/v1/alarm/state", post(set_state))
        .route("/v1/alarms/packs/kubernetes", post(install_pack))
}

fn alarms_of(state: &AppState) -> ApiResult<Arc<AlarmService>> {
    state.alarms.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "alarms are not enabled on this server",
        )
    })
}

/// Webhook URLs are secrets: only admins see them whole; read-scoped callers see scheme,
/// host and port (issue 15, item 10).
fn sees_webhook_urls(caller: &Caller) -> bool {
    caller.scope.allows(Action::Manage)
}

fn shown(mut alarm: MetricAlarm, caller: &Caller) -> MetricAlarm {
    if !sees_webhook_urls(caller) {
        alarm.redact_actions();
    }
    alarm
}

fn alarm_error(e: AlarmError) -> ApiError {
    match e {
        AlarmError::Invalid { .. } => ApiError::bad_param(e.to_string()),
        AlarmError::NotFound(_) => ApiError::new(ErrorCode::ResourceNotFound, e.to_string()),
        AlarmError::Unavailable(_) | AlarmError::Conflict => {
            ApiError::new(ErrorCode::ServiceUnavailable, e.to_string())
        }
        other => ApiError::new(ErrorCode::InternalError, other.to_string()),
    }
}

/// Runs a service call off the async workers: it may write the state file, or (replicas) wait
/// for the service's lock while a change is written to the catalogue.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AlarmError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?
        .map_err(alarm_error)
}

async fn put_alarm(
    _: Require<CanManage>,
    State(state): State<AppState>,
    JsonBody(config): JsonBody<AlarmConfig>,
) -> ApiResult<Json<MetricAlarm>> {
    let svc = alarms_of(&state)?;
    Ok(Json(blocking(move || svc.put(config)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescribeParams {
    prefix: Option<String>,
    state: Option<String>,
    /// Comma-separated alarm names.
    names: Option<String>,
}

async fn describe_alarms(
    require: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<DescribeParams>,
) -> ApiResult<Json<DescribeAlarmsResponse>> {
    let svc = alarms_of(&state)?;
    let state_value = match p.state.as_deref() {
        Some(s) => Some(s.parse::<StateValue>().map_err(alarm_error)?),
        None => None,
    };
    let filter = DescribeFilter {
        alarm_names: p
            .names
            .map(|n| {
                n.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        alarm_name_prefix: p.prefix,
        state_value,
    };
    let found = blocking(move || Ok(svc.describe(&filter))).await?;
    Ok(Json(DescribeAlarmsResponse {
        metric_alarms: found.into_iter().map(|a| shown(a, &require.0)).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParam {
    name: String,
}

async fn describe_alarm(
    require: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<NameParam>,
) -> ApiResult<Json<MetricAlarm>> {
    let svc = alarms_of(&state)?;
    let name = p.name.clone();
    blocking(move || svc.get(&name).ok_or(AlarmError::NotFound(name)))
        .await
        .map(|a| Json(shown(a, &require.0)))
}

async fn delete_alarm(
    _: Require<CanManage>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<NameParam>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let svc = alarms_of(&state)?;
    let name = p.name.clone();
    blocking(move || svc.delete(&name)).await?;
    Ok((StatusCode::OK, Json(serde_json::json!({"Deleted": p.name}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    name: String,
    #[serde(rename = "type")]
    item_type: Option<String>,
    limit: Option<usize>,
}

async fn history(
    require: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<HistoryParams>,
) -> ApiResult<Json<DescribeAlarmHistoryResponse>> {
    let svc = alarms_of(&state)?;
    let item_type = match p.item_type.as_deref() {
        Some(t) => Some(t.parse::<HistoryItemType>().map_err(alarm_error)?),
        None => None,
    };
    let limit = match p.limit {
        Some(0) => return Err(ApiError::bad_param("limit must be at least 1")),
        Some(n) => n.min(10_000),
        None => 100,
    };
    let name = p.name.clone();
    let mut items = blocking(move || {
        let items = svc.history(Some(&name), item_type, limit);
        if items.is_empty() && svc.get(&name).is_none() {
            return Err(AlarmError::NotFound(name));
        }
        Ok(items)
    })
    .await?;
    if !sees_webhook_urls(&require.0) {
        // Configuration items carry the alarm's actions; older action items their URL.
        items.iter_mut().for_each(|i| i.redact_actions());
    }
    Ok(Json(DescribeAlarmHistoryResponse {
        alarm_history_items: items,
    }))
}

async fn set_state(
    _: Require<CanManage>,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<SetAlarmStateRequest>,
) -> ApiResult<Json<MetricAlarm>> {
    let svc = alarms_of(&state)?;
    let value: StateValue = req.state_value.parse().map_err(alarm_error)?;
    let name = req.alarm_name.clone();
    blocking(move || {
        svc.set_state(&req.alarm_name, value, &req.state_reason)?;
        svc.get(&name).ok_or(AlarmError::NotFound(name))
    })
    .await
    .map(Json)
}

async fn install_pack(
    _: Require<CanManage>,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<InstallPackRequest>,
) -> ApiResult<Json<InstallPackResponse>> {
    let svc = alarms_of(&state)?;
    let opts = req.options();
    let installed = blocking(move || svc.install_pack(&opts)).await?;
    Ok(Json(InstallPackResponse { installed }))
}
