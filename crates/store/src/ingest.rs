//! What an ingest call takes and returns, and the per-event admission rules.
//!
//! A batch may mix log groups and streams (agents ship several sources at once). Names that
//! break the reference's rules and batches over its size limits fail the whole call; each
//! event on its own may be rejected for the reasons PutLogEvents reports in
//! `rejectedLogEventsInfo` (reference §6.2) — too new (> 2 h ahead), too old (> 14 days),
//! expired (older than the group's retention) — and for being too large (> 262,144 bytes with
//! the 26-byte overhead); the rest is accepted. An event that would create a group or stream
//! past the server's caps is rejected too (`crate::cardinality`).
//!
//! Deliberately not enforced here: chronological order and the 24-hour span of one batch.
//! They are constraints of PutLogEvents' single-stream requests; the CloudWatch-compatible
//! API checks them before calling the store.

use kinsight_model::LogEvent;
use kinsight_model::limits::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_AGE_MS, MAX_EVENT_BYTES,
    MAX_EVENT_FUTURE_MS,
};
use kinsight_model::names::{validate_log_group_name, validate_log_stream_name};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::record::MAX_BATCH_ID_BYTES;

/// A batch to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestRequest {
    /// Client-chosen id (1–128 bytes); a batch retried with the same id is stored once, also
    /// across restarts, for [`crate::StoreConfig::dedup_window_ms`].
    pub batch_id: Option<String>,
    pub events: Vec<LogEvent>,
    /// Create missing groups (true, like Fluent Bit's `auto_create_group`) or fail with
    /// [`StoreError::GroupNotFound`]. Streams are always created.
    pub auto_create_groups: bool,
}

/// Why one event was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RejectReason {
    /// More than 2 hours in the future.
    TooNew,
    /// More than 14 days old.
    TooOld,
    /// Older than the group's retention.
    Expired,
    /// Message + 26 bytes exceeds 262,144 bytes.
    TooLarge,
    /// Its log group does not exist and the server holds as many groups as it allows
    /// (`--max-log-groups`; issue 15, item 12).
    TooManyLogGroups,
    /// Its log stream does not exist and its group, or the server, holds as many streams as
    /// allowed (`--max-streams-per-group`, `--max-log-streams`).
    TooManyLogStreams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// Index of the event in the request.
    pub index: usize,
    pub reason: RejectReason,
}

/// The answer to an ingest call. Once returned with `seq: Some(_)`, the accepted events are
/// fsynced in the WAL and readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestOutcome {
    /// WAL sequence number of the stored batch; `None` when no event was accepted.
    pub seq: Option<u64>,
    pub accepted: usize,
    /// Rejected events (on a duplicate: empty, the count is in `rejected_count`).
    pub rejected: Vec<Rejection>,
    pub rejected_count: usize,
    /// The batch id had been stored before; nothing was stored again.
    pub duplicate: bool,
}

/// Checks the whole-batch rules: batch id, sizes, names.
pub fn validate_batch(req: &IngestRequest) -> Result<()> {
    if let Some(id) = &req.batch_id
        && (id.is_empty() || id.len() > MAX_BATCH_ID_BYTES)
    {
        return Err(StoreError::InvalidParameter(format!(
            "batch id must be 1 to {MAX_BATCH_ID_BYTES} bytes long, got {}",
            id.len()
        )));
    }
    let bytes: usize = req.events.iter().map(|e| e.billed_size_bytes()).sum();
    if req.events.len() > MAX_BATCH_EVENTS || bytes > MAX_BATCH_BYTES {
        return Err(StoreError::BatchTooLarge {
            events: req.events.len(),
            bytes,
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
        });
    }
    let mut last: Option<(&str, &str)> = None;
    for (index, e) in req.events.iter().enumerate() {
        // Batches usually repeat the same pair: check each distinct run once.
        if last == Some((&e.log_group_name, &e.log_stream_name)) {
            continue;
        }
        validate_log_group_name(&e.log_group_name)
            .map_err(|source| StoreError::InvalidGroupName { index, source })?;
        validate_log_stream_name(&e.log_stream_name)
            .map_err(|source| StoreError::InvalidStreamName { index, source })?;
        last = Some((&e.log_group_name, &e.log_stream_name));
    }
    Ok(())
}

/// The per-event verdict; `None` = accepted. Precedence: too large, too new, too old, expired.
pub fn classify(
    event: &LogEvent,
    now_ms: i64,
    retention_days: Option<u32>,
) -> Option<RejectReason> {
    if event.message.len() + EVENT_OVERHEAD_BYTES > MAX_EVENT_BYTES {
        return Some(RejectReason::TooLarge);
    }
    if event.timestamp > now_ms.saturating_add(MAX_EVENT_FUTURE_MS) {
        return Some(RejectReason::TooNew);
    }
    if event.timestamp < now_ms.saturating_sub(MAX_EVENT_AGE_MS) {
        return Some(RejectReason::TooOld);
    }
    if let Some(days) = retention_days
        && event.timestamp < now_ms.saturating_sub(i64::from(days) * 86_400_000)
    {
        return Some(RejectReason::Expired);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn classifies_by_the_reference_bounds() {
        let ev = |ts: i64, len: usize| LogEvent::new("/g", "s", ts, "x".repeat(len));
        assert_eq!(classify(&ev(NOW, 10), NOW, None), None);
        assert_eq!(
            classify(&ev(NOW + MAX_EVENT_FUTURE_MS + 1, 1), NOW, None),
            Some(RejectReason::TooNew)
        );
        assert_eq!(classify(&ev(NOW + MAX_EVENT_FUTURE_MS, 1), NOW, None), None);
        assert_eq!(
            classify(&ev(NOW - MAX_EVENT_AGE_MS - 1, 1), NOW, None),
            Some(RejectReason::TooOld)
        );
        assert_eq!(
            classify(&ev(NOW - 2 * 86_400_000, 1), NOW, Some(1)),
            Some(RejectReason::Expired)
        );
        assert_eq!(classify(&ev(NOW - 2 * 86_400_000, 1), NOW, Some(3)), None);
        assert_eq!(
            classify(
                &ev(NOW, MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES + 1),
                NOW,
                None
            ),
            Some(RejectReason::TooLarge)
        );
        assert_eq!(
            classify(&ev(NOW, MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES), NOW, None),
            None
        );
    }

    #[test]
    fn whole_batch_rules_name_the_problem() {
        let mut req = IngestRequest {
            events: vec![
                LogEvent::new("/ok", "s", NOW, "a"),
                LogEvent::new("/bad name", "s", NOW, "b"),
            ],
            ..Default::default()
        };
        match validate_batch(&req) {
            Err(StoreError::InvalidGroupName { index: 1, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
        req.events[1].log_group_name = "/ok".into();
        req.events[1].log_stream_name = "a:b".into();
        assert!(matches!(
            validate_batch(&req),
            Err(StoreError::InvalidStreamName { index: 1, .. })
        ));
        req.events = vec![LogEvent::new("/ok", "s", NOW, ""); MAX_BATCH_EVENTS + 1];
        assert!(matches!(
            validate_batch(&req),
            Err(StoreError::BatchTooLarge { .. })
        ));
        req.events.truncate(1);
        req.batch_id = Some(String::new());
        assert!(matches!(
            validate_batch(&req),
            Err(StoreError::InvalidParameter(_))
        ));
    }
}
