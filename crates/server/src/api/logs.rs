//! The native read and catalogue API for the CLI and the console (docs/api.md): log groups,
//! streams, events of a group or stream by time with pagination, and follow (long-poll and
//! server-sent events). Group and stream names travel in query parameters, because group names
//! contain `/`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::Stream;
use kinsight_store::{
    Cursor, Direction, EventQuery, GroupInfo, StoreError, StoredEvent, StreamInfo, StreamOrder,
};
use serde::{Deserialize, Serialize};

use crate::auth::{CanIngest, CanManage, CanRead, Require};
use crate::body::{JsonBody, QueryParams};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/groups", get(list_groups).post(create_group))
        .route("/v1/group", get(describe_group).delete(delete_group))
        .route("/v1/group/retention", put(put_retention))
        .route("/v1/group/tags", post(tag_group))
        .route("/v1/group/untag", post(untag_group))
        .route(
            "/v1/streams",
            get(list_streams).post(create_stream).delete(delete_stream),
        )
        .route("/v1/events", get(get_events))
        .route("/v1/follow", get(follow))
        .route("/v1/tail", get(tail))
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIST_LIMIT: usize = 1000;

fn limit(l: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
    match l {
        None => Ok(default),
        Some(0) => Err(ApiError::bad_param("limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::bad_param(format!("limit must be at most {max}"))),
        Some(n) => Ok(n),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListGroupsParams {
    prefix: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupList {
    groups: Vec<GroupInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

async fn list_groups(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<ListGroupsParams>,
) -> ApiResult<Json<GroupList>> {
    let page = state.store.list_groups(
        p.prefix.as_deref(),
        p.next.as_deref(),
        limit(p.limit, DEFAULT_LIMIT, MAX_LIST_LIMIT)?,
    );
    Ok(Json(GroupList {
        groups: page.items,
        next: page.next,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateGroup {
    name: String,
    retention_days: Option<u32>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

async fn create_group(
    _: Require<CanIngest>,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<CreateGroup>,
) -> ApiResult<(StatusCode, Json<GroupInfo>)> {
    state
        .store
        .create_group(&b.name, b.retention_days, b.tags)
        .await?;
    Ok((StatusCode::CREATED, Json(group_info(&state, &b.name)?)))
}

fn group_info(state: &AppState, name: &str) -> ApiResult<GroupInfo> {
    state
        .store
        .group(name)
        .ok_or_else(|| StoreError::GroupNotFound(name.to_string()).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupParam {
    group: String,
}

async fn describe_group(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<GroupParam>,
) -> ApiResult<Json<GroupInfo>> {
    Ok(Json(group_info(&state, &p.group)?))
}

async fn delete_group(
    _: Require<CanManage>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<GroupParam>,
) -> ApiResult<StatusCode> {
    state.store.delete_group(&p.group).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Retention {
    /// `null` removes the retention (never expire).
    retention_days: Option<u32>,
}

async fn put_retention(
    _: Require<CanManage>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<GroupParam>,
    JsonBody(b): JsonBody<Retention>,
) -> ApiResult<Json<GroupInfo>> {
    state
        .store
        .put_retention(&p.group, b.retention_days)
        .await?;
    Ok(Json(group_info(&state, &p.group)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tags {
    tags: BTreeMap<String, String>,
}

async fn tag_group(
    _: Require<CanManage>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<GroupParam>,
    JsonBody(b): JsonBody<Tags>,
) -> ApiResult<Json<GroupInfo>> {
    state.store.tag_group(&p.group, b.tags).await?;
    Ok(Json(group_info(&state, &p.group)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Untag {
    keys: Vec<String>,
}

async fn untag_group(
    _: Require<CanManage>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<GroupParam>,
    JsonBody(b): JsonBody<Untag>,
) -> ApiResult<Json<GroupInfo>> {
    state.store.untag_group(&p.group, b.keys).await?;
    Ok(Json(group_info(&state, &p.group)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListStreamsParams {
    group: String,
    prefix: Option<String>,
    order_by: Option<StreamOrder>,
    descending: Option<bool>,
    limit: Option<usize>,
    next: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamList {
    streams: Vec<StreamInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

async fn list_streams(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<ListStreamsParams>,
) -> ApiResult<Json<StreamList>> {
    let order = p.order_by.unwrap_or_default();
    if order == StreamOrder::LastEventTime && p.prefix.is_some() {
        // CloudWatch refuses this combination too (DescribeLogStreams).
        return Err(ApiError::bad_param(
            "prefix cannot be combined with orderBy=LastEventTime",
        ));
    }
    let page = state.store.list_streams(
        &p.group,
        p.prefix.as_deref(),
        order,
        p.descending.unwrap_or(false),
        p.next.as_deref(),
        limit(p.limit, DEFAULT_LIMIT, MAX_LIST_LIMIT)?,
    )?;
    Ok(Json(StreamList {
        streams: page.items,
        next: page.next,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStream {
    name: String,
}

async fn create_stream(
    _: Require<CanIngest>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<GroupParam>,
    JsonBody(b): JsonBody<CreateStream>,
) -> ApiResult<StatusCode> {
    state.store.create_stream(&p.group, &b.name).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamParam {
    group: String,
    stream: String,
}

async fn delete_stream(
    _: Require<CanManage>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StreamParam>,
) -> ApiResult<StatusCode> {
    state.store.delete_stream(&p.group, &p.stream).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventsParams {
    group: String,
    stream: Option<String>,
    /// Inclusive, ms since the epoch.
    start: Option<i64>,
    /// Exclusive.
    end: Option<i64>,
    limit: Option<usize>,
    direction: Option<Direction>,
    /// A token from `nextForwardToken` / `nextBackwardToken`.
    next: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventsPage {
    events: Vec<StoredEvent>,
    /// Pass as `next` with `direction=forward` for newer events; equal to the token sent when
    /// there is nothing newer yet.
    next_forward_token: Option<String>,
    /// Pass as `next` with `direction=backward` for older events.
    next_backward_token: Option<String>,
    /// Every batch up to this WAL sequence number was visible (use as `after` to follow).
    seq: u64,
}

async fn get_events(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<EventsParams>,
) -> ApiResult<Json<EventsPage>> {
    let cursor = match &p.next {
        None => None,
        Some(t) => Some(
            Cursor::parse_token(t)
                .ok_or_else(|| ApiError::bad_param(format!("invalid next token {t:?}")))?,
        ),
    };
    // A follow may start from this read's `seq`: keep what arrives from now on.
    state.feed.touch();
    let direction = p.direction.unwrap_or(if cursor.is_some() {
        Direction::Forward
    } else {
        Direction::Backward
    });
    let page = state
        .store
        .read_events(&EventQuery {
            group: p.group,
            stream: p.stream,
            start_ms: p.start,
            end_ms: p.end,
            direction,
            cursor,
            limit: limit(p.limit, 100, 10_000)?,
            max_bytes: Some(state.limits.max_page_bytes),
        })
        .await?;
    let keep = |c: Option<Cursor>, dir: Direction| {
        c.or(if direction == dir { cursor } else { None })
            .map(|c| c.to_token())
    };
    Ok(Json(EventsPage {
        next_forward_token: keep(page.next_forward, Direction::Forward),
        next_backward_token: keep(page.next_backward, Direction::Backward),
        events: page.events,
        seq: page.visible_seq,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FollowParams {
    group: String,
    stream: Option<String>,
    /// Return events of batches after this sequence number (from a previous answer's `seq`,
    /// or from `GET /v1/events`). Absent: start now.
    after: Option<u64>,
    /// How long to wait for new events (default 20 s, at most 60 s).
    wait_ms: Option<u64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FollowAnswer {
    events: Vec<StoredEvent>,
    /// Pass as `after` next time.
    seq: u64,
    /// Events after `after` were dropped from the follow buffer: fetch them with
    /// `GET /v1/events` if they matter.
    gap: bool,
}

/// Long-poll: returns as soon as events after `after` exist, or after `waitMs` with none.
async fn follow(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<FollowParams>,
) -> ApiResult<Json<FollowAnswer>> {
    state
        .store
        .group(&p.group)
        .ok_or_else(|| StoreError::GroupNotFound(p.group.clone()))?;
    let limit = limit(p.limit, 1000, 10_000)?;
    let wait = Duration::from_millis(p.wait_ms.unwrap_or(20_000).min(60_000));
    let Some(after) = p.after else {
        // The client follows from this `seq` next: keep what arrives from now on.
        state.feed.touch();
        return Ok(Json(FollowAnswer {
            events: Vec::new(),
            seq: state.feed.last_seq(),
            gap: false,
        }));
    };
    let deadline = tokio::time::Instant::now() + wait;
    let _following = state.feed.following();
    let max_bytes = state.limits.max_page_bytes;
    loop {
        let notified = state.feed.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let page = state
            .feed
            .after(after, &p.group, p.stream.as_deref(), limit, max_bytes);
        // A closing server answers at once (issue 15 item 2: shutdown ends long-polls).
        if !page.events.is_empty()
            || page.gap
            || state.feed.is_closed()
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(Json(FollowAnswer {
                events: page.events,
                seq: page.seq,
                gap: page.gap,
            }));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TailParams {
    group: String,
    stream: Option<String>,
    /// Send the newest `backlog` events first (default 0, at most 10,000 and 1 MiB).
    backlog: Option<usize>,
}

/// Server-sent events: `event: log` with a [`StoredEvent`] as data for each new event (after
/// an optional backlog), `event: gap` if the client fell too far behind.
async fn tail(
    _: Require<CanRead>,
    State(state): State<AppState>,
    QueryParams(p): QueryParams<TailParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    state
        .store
        .group(&p.group)
        .ok_or_else(|| StoreError::GroupNotFound(p.group.clone()))?;
    let backlog = p.backlog.unwrap_or(0).min(10_000);
    let following = state.feed.following();
    let max_bytes = state.limits.max_page_bytes;
    let mut after = state.feed.last_seq();
    let mut first = Vec::new();
    if backlog > 0 {
        let page = state
            .store
            .read_events(&EventQuery {
                group: p.group.clone(),
                stream: p.stream.clone(),
                direction: Direction::Backward,
                limit: backlog,
                max_bytes: Some(max_bytes),
                ..Default::default()
            })
            .await?;
        after = page.visible_seq;
        first = page.events;
    }
    let feed = state.feed.clone();
    let stream = async_stream(move |tx| async move {
        let _following = following;
        for e in first {
            if tx.send(log_event(&e)).await.is_err() {
                return;
            }
        }
        loop {
            let notified = feed.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let page = feed.after(after, &p.group, p.stream.as_deref(), 1000, max_bytes);
            if page.gap
                && tx
                    .send(Event::default().event("gap").data("{}"))
                    .await
                    .is_err()
            {
                return;
            }
            for e in &page.events {
                if tx.send(log_event(e)).await.is_err() {
                    return;
                }
            }
            after = page.seq;
            if feed.is_closed() {
                return;
            }
            if page.events.is_empty() {
                tokio::select! {
                    _ = notified => {}
                    _ = tx.closed() => return,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn log_event(e: &StoredEvent) -> Event {
    Event::default()
        .event("log")
        .id(e.id.to_string())
        .json_data(e)
        .unwrap_or_else(|_| Event::default().event("log").data("{}"))
}

/// A stream fed by a task through a small channel; the task stops when the client goes.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(f(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
