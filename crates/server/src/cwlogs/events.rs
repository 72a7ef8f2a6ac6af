//! Events: PutLogEvents, GetLogEvents and FilterLogEvents.
//!
//! PutLogEvents checks what CloudWatch checks for a single-stream request (reference §6.2):
//! the group and stream exist, 1–10,000 events, each ≤ 262,144 bytes with its 26-byte overhead,
//! ≤ 1,048,576 bytes in all, in chronological order, the accepted ones spanning ≤ 24 hours;
//! then the store ingests it, rejecting single events too old / too new / expired, reported in
//! `rejectedLogEventsInfo` while the rest is stored (and their EMF metrics extracted by the
//! metric store's ingest observer). Sequence tokens are accepted and ignored.

use kinsight_model::LogEvent;
use kinsight_model::limits::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS, MAX_EVENT_BYTES,
};
use kinsight_store::ingest::classify;
use kinsight_store::{
    Cursor, Direction, EventQuery, IngestRequest, RejectReason, StoreError, StreamOrder,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::filter_pattern;
use super::groups::{check_group_name, check_stream_name, resolve_group, sequence_token};
use super::{Ctx, CwError, CwResult, limit};

/// Largest answer of GetLogEvents / FilterLogEvents (CloudWatch: 1 MB of events).
pub const MAX_RESPONSE_BYTES: usize = 1_048_576;
/// Events FilterLogEvents examines in one call before it answers with a `nextToken`.
pub const FILTER_SCAN_BUDGET: usize = 100_000;
/// Work ([`filter_pattern::FilterPattern::cost`], about bytes looked at) FilterLogEvents does
/// in one call before it answers with a `nextToken`: large messages, or a pattern with many
/// fields, end a call sooner than the event budget.
pub const FILTER_WORK_BUDGET: usize = 256 << 20;

#[derive(Deserialize)]
pub struct InputLogEvent {
    timestamp: i64,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEvents {
    log_group_name: String,
    log_stream_name: String,
    log_events: Vec<InputLogEvent>,
    // `sequenceToken` is ignored (CloudWatch ignores it since 2023, reference §6.2); unknown
    // members are skipped by serde.
}

/// Whether `stream` exists in `group` (`GroupNotFound` if the group does not).
pub fn stream_exists(ctx: &Ctx<'_>, group: &str, stream: &str) -> CwResult<bool> {
    let page = ctx.state.store.list_streams(
        group,
        Some(stream),
        StreamOrder::LogStreamName,
        false,
        None,
        1,
    )?;
    Ok(page.items.first().is_some_and(|s| s.name == stream))
}

pub async fn put_log_events(ctx: &Ctx<'_>, i: PutLogEvents) -> CwResult<Value> {
    check_group_name(&i.log_group_name, "logGroupName")?;
    check_stream_name(&i.log_stream_name, "logStreamName")?;
    let n = i.log_events.len();
    if n == 0 || n > MAX_BATCH_EVENTS {
        return Err(CwError::validation(
            &format!("{n} events"),
            "logEvents",
            &format!("Member must have length between 1 and {MAX_BATCH_EVENTS}"),
        ));
    }
    let mut batch_bytes = 0usize;
    for (idx, e) in i.log_events.iter().enumerate() {
        if e.message.is_empty() {
            return Err(CwError::validation(
                "",
                &format!("logEvents.{}.member.message", idx + 1),
                "Member must have length greater than or equal to 1",
            ));
        }
        let size = e.message.len() + EVENT_OVERHEAD_BYTES;
        if size > MAX_EVENT_BYTES {
            return Err(CwError::invalid(format!(
                "Log event too large: {size} bytes exceeds limit of {MAX_EVENT_BYTES} (event {idx})"
            )));
        }
        batch_bytes += size;
        if idx > 0 && e.timestamp < i.log_events[idx - 1].timestamp {
            return Err(CwError::invalid(format!(
                "Log events in a single PutLogEvents request must be in chronological order (event {idx} is older than event {})",
                idx - 1
            )));
        }
    }
    if batch_bytes > MAX_BATCH_BYTES {
        return Err(CwError::invalid(format!(
            "Upload too large: {batch_bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    let group = ctx
        .state
        .store
        .group(&i.log_group_name)
        .ok_or_else(CwError::group_not_found)?;
    if !stream_exists(ctx, &i.log_group_name, &i.log_stream_name)? {
        return Err(CwError::stream_not_found());
    }
    let events: Vec<LogEvent> = i
        .log_events
        .into_iter()
        .map(|e| {
            LogEvent::new(
                &i.log_group_name,
                &i.log_stream_name,
                e.timestamp,
                e.message,
            )
        })
        .collect();
    // The 24-hour span counts the events that will be accepted (the store applies the same
    // rules again when it ingests).
    let now = ctx.now_ms();
    let valid = events
        .iter()
        .filter(|e| classify(e, now, group.retention_days).is_none());
    let (lo, hi) = valid.fold((i64::MAX, i64::MIN), |(lo, hi), e| {
        (lo.min(e.timestamp), hi.max(e.timestamp))
    });
    if lo <= hi && hi - lo > MAX_BATCH_SPAN_MS {
        return Err(CwError::invalid(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
        ));
    }
    let outcome = ctx
        .state
        .store
        .ingest(IngestRequest {
            batch_id: None,
            events,
            auto_create_groups: false,
        })
        .await?;
    // Events are chronological, so each kind of rejection is a run at one end: too old and
    // expired at the start (end indexes are exclusive: the number of such events from the
    // start), too new at the end.
    let mut info = serde_json::Map::new();
    let end_of = |r: RejectReason| {
        outcome
            .rejected
            .iter()
            .filter(|x| x.reason == r)
            .map(|x| x.index + 1)
            .max()
    };
    if let Some(e) = end_of(RejectReason::TooOld) {
        info.insert("tooOldLogEventEndIndex".into(), json!(e));
    }
    if let Some(e) = end_of(RejectReason::Expired) {
        info.insert("expiredLogEventEndIndex".into(), json!(e));
    }
    if let Some(s) = outcome
        .rejected
        .iter()
        .filter(|x| x.reason == RejectReason::TooNew)
        .map(|x| x.index)
        .min()
    {
        info.insert("tooNewLogEventStartIndex".into(), json!(s));
    }
    let mut out = json!({
        "nextSequenceToken": sequence_token(outcome.seq.unwrap_or_else(|| ctx.state.store.last_seq())),
    });
    if !info.is_empty() {
        out["rejectedLogEventsInfo"] = Value::Object(info);
    }
    Ok(out)
}

/// GetLogEvents tokens: `f/<timestamp>.<id>` (forward: events after that position) and
/// `b/<timestamp>.<id>` (backward: events before it).
fn token(dir: Direction, c: Cursor) -> String {
    let p = if dir == Direction::Forward { 'f' } else { 'b' };
    format!("{p}/{}", c.to_token())
}

fn parse_token(t: &str) -> CwResult<(Direction, Cursor)> {
    let bad = || CwError::invalid(format!("The specified nextToken is invalid: {t:?}"));
    let (dir, rest) = match t.split_once('/') {
        Some(("f", r)) => (Direction::Forward, r),
        Some(("b", r)) => (Direction::Backward, r),
        _ => return Err(bad()),
    };
    Ok((dir, Cursor::parse_token(rest).ok_or_else(bad)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: String,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
}

pub async fn get_log_events(ctx: &Ctx<'_>, i: GetLogEvents) -> CwResult<Value> {
    let group = resolve_group(i.log_group_name, i.log_group_identifier)?;
    check_stream_name(&i.log_stream_name, "logStreamName")?;
    let limit = limit(i.limit, "limit", 10_000, 10_000)?;
    let given = i.next_token.as_deref().map(parse_token).transpose()?;
    let (direction, cursor) = match given {
        Some((d, c)) => (d, Some(c)),
        None if i.start_from_head.unwrap_or(false) => (Direction::Forward, None),
        None => (Direction::Backward, None),
    };
    let page = ctx
        .state
        .store
        .read_events(&EventQuery {
            group,
            stream: Some(i.log_stream_name),
            start_ms: i.start_time,
            end_ms: i.end_time,
            direction,
            cursor,
            limit,
            // At most 1 MB of events: the oldest ones going forward, the newest going backward.
            max_bytes: Some(MAX_RESPONSE_BYTES),
        })
        .await?;
    let events = page.events;
    // Where this page ends. At the end of the stream the token sent comes back unchanged
    // (CloudWatch's convention for "nothing more yet").
    let (forward, backward) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (
            token(Direction::Forward, last.cursor()),
            token(Direction::Backward, first.cursor()),
        ),
        _ => {
            let here = cursor.unwrap_or(match direction {
                Direction::Forward => Cursor {
                    timestamp_ms: i.start_time.unwrap_or(0),
                    id: -1,
                },
                Direction::Backward => Cursor {
                    timestamp_ms: i.end_time.unwrap_or(i64::MAX),
                    id: -1,
                },
            });
            (
                token(Direction::Forward, here),
                token(Direction::Backward, here),
            )
        }
    };
    Ok(json!({
        "events": events.iter().map(|e| json!({
            "timestamp": e.timestamp,
            "message": e.message,
            "ingestionTime": e.ingestion_time,
        })).collect::<Vec<_>>(),
        "nextForwardToken": forward,
        "nextBackwardToken": backward,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

pub async fn filter_log_events(ctx: &Ctx<'_>, i: FilterLogEvents) -> CwResult<Value> {
    let group = resolve_group(i.log_group_name, i.log_group_identifier)?;
    let limit = limit(i.limit, "limit", 10_000, 10_000)?;
    if i.log_stream_names.is_some() && i.log_stream_name_prefix.is_some() {
        return Err(CwError::invalid(
            "You cannot specify both LogStreamNames and LogStreamNamePrefix.",
        ));
    }
    let names = i.log_stream_names.unwrap_or_default();
    if names.len() > 100 {
        return Err(CwError::validation(
            &format!("{} names", names.len()),
            "logStreamNames",
            "Member must have length less than or equal to 100",
        ));
    }
    for n in &names {
        check_stream_name(n, "logStreamNames")?;
    }
    let pattern = filter_pattern::parse(i.filter_pattern.as_deref().unwrap_or(""))
        .map_err(|e| CwError::invalid(format!("Invalid filter pattern: {e}")))?;
    if ctx.state.store.group(&group).is_none() {
        return Err(StoreError::GroupNotFound(group).into());
    }
    let mut cursor = match &i.next_token {
        None => None,
        Some(t) => Some(Cursor::parse_token(t).ok_or_else(|| {
            CwError::invalid(format!("The specified nextToken is invalid: {t:?}"))
        })?),
    };
    // One named stream: let the store read just that stream.
    let one_stream = (names.len() == 1).then(|| names[0].clone());
    if let Some(s) = &one_stream
        && !stream_exists(ctx, &group, s)?
    {
        return Err(CwError::stream_not_found());
    }
    let prefix = i.log_stream_name_prefix.clone();
    let keep_stream = move |s: &str| {
        (names.is_empty() || names.iter().any(|n| n == s))
            && prefix.as_deref().is_none_or(|p| s.starts_with(p))
    };
    let judge = std::sync::Arc::new((pattern, keep_stream));
    // FilterLogEvents' endTime is inclusive.
    let end_ms = i.end_time.map(|e| e.saturating_add(1));
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut scanned = 0usize;
    let mut work = 0usize;
    let mut next: Option<Cursor> = None;
    'pages: loop {
        let page = ctx
            .state
            .store
            .read_events(&EventQuery {
                group: group.clone(),
                stream: one_stream.clone(),
                start_ms: i.start_time,
                end_ms,
                direction: Direction::Forward,
                cursor,
                limit: 10_000,
                max_bytes: None,
            })
            .await?;
        let n = page.events.len();
        // Matching runs off the async workers (a pattern of many fields over large messages
        // is real work), and stops when the call's work budget is spent.
        let (judge2, left) = (judge.clone(), FILTER_WORK_BUDGET.saturating_sub(work));
        let (judged, spent) = tokio::task::spawn_blocking(move || {
            let (pattern, keep_stream) = &*judge2;
            let mut spent = 0usize;
            let mut judged = Vec::with_capacity(page.events.len());
            for e in page.events {
                if spent >= left {
                    break;
                }
                let keep = keep_stream(&e.log_stream_name);
                if keep {
                    spent = spent.saturating_add(pattern.cost(&e.message));
                }
                let hit = keep && pattern.matches(&e.message);
                judged.push((e, hit));
            }
            (judged, spent)
        })
        .await
        .map_err(|e| CwError::new(CwError::INTERNAL_FAILURE, e.to_string()))?;
        work = work.saturating_add(spent);
        for (e, hit) in judged {
            scanned += 1;
            let c = e.cursor();
            if hit {
                bytes += kinsight_store::event_bytes(&e.message);
                out.push(e);
                if out.len() >= limit || bytes >= MAX_RESPONSE_BYTES {
                    next = Some(c);
                    break 'pages;
                }
            }
            cursor = Some(c);
        }
        // A page ends at 10,000 events or 1 MB (the store's page budget): only an empty one
        // says there is nothing more.
        if n == 0 {
            break;
        }
        if scanned >= FILTER_SCAN_BUDGET || work >= FILTER_WORK_BUDGET {
            // Long searches answer in parts (CloudWatch may also return an empty page with a
            // token); clients page on.
            next = cursor;
            break;
        }
    }
    let mut v = json!({
        "events": out.iter().map(|e| json!({
            "logStreamName": e.log_stream_name,
            "timestamp": e.timestamp,
            "message": e.message,
            "ingestionTime": e.ingestion_time,
            "eventId": e.id.to_string(),
        })).collect::<Vec<_>>(),
        "searchedLogStreams": [],
    });
    if let Some(c) = next {
        v["nextToken"] = json!(c.to_token());
    }
    Ok(v)
}
