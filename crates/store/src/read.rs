//! The read side.
//!
//! * [`Store::scan`] is for the query engine (issue #5): for a group and time range, the
//!   segments to read (object key, min/max time, rows, size), the group's schema (union of
//!   all fields, widened types) and the rows still in memory as arrow batches already
//!   conformed to that schema. Memory and segments never hold the same row.
//! * [`Store::read_events`] pages through the events of a group or one stream by time, forward
//!   or backward (GetLogEvents, `kinsight logs tail`).
//! * [`Store::follow`](crate::Store::follow) is the live feed for tailing.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::catalogue::GroupEntry;
use crate::error::{Result, StoreError};
use crate::memtable::{Chunk, chunks_to_batch};
use crate::record::seq_of_event_id;
use crate::schema::{self, GroupFields, arrow_schema, conform, filter_time, merge_fields};
use crate::segment::{self, SegmentMeta};
use crate::store::{GroupInfo, Store};

/// What the query engine reads for one group and time range.
#[derive(Debug, Clone)]
pub struct GroupScan {
    pub group: GroupInfo,
    /// System columns then every discovered field (sorted), with the group's widened types.
    /// Segment files may lack columns or hold narrower types: read them with this as the
    /// table schema (DataFusion's schema adapter fills nulls and casts).
    pub schema: SchemaRef,
    /// Segments whose `[min_ts, max_ts]` overlaps the range, oldest window first. Their
    /// objects stay readable for [`crate::StoreConfig::gc_grace_ms`] even if compaction or
    /// retention replaces them meanwhile.
    pub segments: Vec<SegmentMeta>,
    /// Unflushed rows in the time range, conformed to `schema`.
    pub memory: Vec<RecordBatch>,
    /// Every durable batch up to this sequence number is visible in this scan.
    pub visible_seq: u64,
    /// Deleted streams: a segment row of stream `s` whose `@id >> 14` is below
    /// `deleted_streams[s]` was deleted (memory rows are already filtered).
    pub deleted_streams: BTreeMap<String, u64>,
}

/// Paging direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Oldest first from the start of the range (GetLogEvents `startFromHead=true`).
    Forward,
    /// The newest events of the range (GetLogEvents' default).
    #[default]
    Backward,
}

/// A position between events: `(timestamp, id)` of the event next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    pub timestamp_ms: i64,
    pub id: i64,
}

impl Cursor {
    /// Text form for tokens: `<timestamp>.<id>`.
    pub fn to_token(&self) -> String {
        format!("{}.{}", self.timestamp_ms, self.id)
    }

    pub fn parse_token(s: &str) -> Option<Cursor> {
        let (t, i) = s.split_once('.')?;
        Some(Cursor {
            timestamp_ms: t.parse().ok()?,
            id: i.parse().ok()?,
        })
    }
}

/// A request for events.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub group: String,
    /// One stream, or every stream of the group.
    pub stream: Option<String>,
    /// Inclusive.
    pub start_ms: Option<i64>,
    /// Exclusive.
    pub end_ms: Option<i64>,
    pub direction: Direction,
    /// Forward: events strictly after the cursor; backward: strictly before.
    pub cursor: Option<Cursor>,
    pub limit: usize,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub timestamp: i64,
    pub ingestion_time: i64,
    pub log_stream_name: String,
    pub message: String,
    /// The `@id` of the event.
    pub id: i64,
}

impl StoredEvent {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            timestamp_ms: self.timestamp,
            id: self.id,
        }
    }
}

/// A page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Cursor to continue forward (after the last event); `None` if the page is empty.
    pub next_forward: Option<Cursor>,
    /// Cursor to continue backward (before the first event).
    pub next_backward: Option<Cursor>,
    /// Every durable batch up to this sequence number was visible to this read.
    pub visible_seq: u64,
}

/// Filter applied to each candidate event.
struct Filter<'a> {
    stream: Option<&'a str>,
    lo: Option<i64>,
    hi: Option<i64>,
    direction: Direction,
    cursor: Option<Cursor>,
    group: &'a GroupEntry,
}

impl Filter<'_> {
    fn keep(&self, ts: i64, id: i64, stream: &str) -> bool {
        if self.stream.is_some_and(|s| s != stream) {
            return false;
        }
        if self.lo.is_some_and(|lo| ts < lo) || self.hi.is_some_and(|hi| ts >= hi) {
            return false;
        }
        let c = Cursor {
            timestamp_ms: ts,
            id,
        };
        match (self.cursor, self.direction) {
            (Some(cur), Direction::Forward) if c <= cur => return false,
            (Some(cur), Direction::Backward) if c >= cur => return false,
            _ => {}
        }
        !self.group.is_deleted(stream, seq_of_event_id(id))
    }
}

fn events_from_batch(b: &RecordBatch, f: &Filter<'_>, out: &mut Vec<StoredEvent>) -> Result<()> {
    let missing = |c: &str| StoreError::Format {
        path: "record batch".into(),
        reason: format!("missing or mistyped {c}"),
    };
    let ts = schema::timestamps(b)?;
    let ing = b
        .column_by_name(schema::INGESTION_TIME)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or_else(|| missing(schema::INGESTION_TIME))?;
    let streams = b
        .column_by_name(schema::LOG_STREAM)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| missing(schema::LOG_STREAM))?;
    let msgs = b
        .column_by_name(schema::MESSAGE)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| missing(schema::MESSAGE))?;
    let ids = b
        .column_by_name(schema::EVENT_ID)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| missing(schema::EVENT_ID))?;
    for i in 0..b.num_rows() {
        let (t, id, s) = (ts.value(i), ids.value(i), streams.value(i));
        if f.keep(t, id, s) {
            out.push(StoredEvent {
                timestamp: t,
                ingestion_time: ing.value(i),
                log_stream_name: s.to_string(),
                message: msgs.value(i).to_string(),
                id,
            });
        }
    }
    Ok(())
}

fn events_from_chunk(c: &Chunk, f: &Filter<'_>, out: &mut Vec<StoredEvent>) {
    for r in c.rows() {
        if f.keep(r.timestamp_ms, r.id, r.stream) {
            out.push(StoredEvent {
                timestamp: r.timestamp_ms,
                ingestion_time: r.ingestion_ms,
                log_stream_name: r.stream.to_string(),
                message: r.message.to_string(),
                id: r.id,
            });
        }
    }
}

/// Memory of one group gathered under the lock.
struct MemorySnapshot {
    batches: Vec<RecordBatch>,
    pending: Vec<Arc<Chunk>>,
}

impl Store {
    fn memory_snapshot(
        st: &crate::state::State,
        gid: u64,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
    ) -> MemorySnapshot {
        let mut snap = MemorySnapshot {
            batches: Vec::new(),
            pending: Vec::new(),
        };
        let mems = st
            .frozen
            .iter()
            .filter_map(|f| f.groups.get(&gid))
            .chain(st.memtable.groups.get(&gid))
            .filter(|m| m.overlaps(start_ms, end_ms));
        for m in mems {
            snap.batches.extend(m.batches.iter().cloned());
            snap.pending.extend(m.pending.iter().cloned());
        }
        snap
    }

    /// What a query over `group` and `[start_ms, end_ms)` must read. See [`GroupScan`].
    pub async fn scan(
        &self,
        group: &str,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
    ) -> Result<GroupScan> {
        let (info, entry, mut fields, segments, mem, visible_seq) = {
            let st = self.inner.shared.lock();
            let g = st
                .catalogue
                .group(group)
                .ok_or_else(|| StoreError::GroupNotFound(group.to_string()))?;
            let info = Store::group_info(&st, g);
            let fields = st.manifest.fields.get(&g.id).cloned().unwrap_or_default();
            let segments: Vec<SegmentMeta> = st
                .manifest
                .segments
                .get(&g.id)
                .map(|s| {
                    s.iter()
                        .filter(|m| m.overlaps(start_ms, end_ms))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mem = Self::memory_snapshot(&st, g.id, start_ms, end_ms);
            (info, g.clone(), fields, segments, mem, st.applied_seq)
        };
        let mut batches = mem.batches;
        if !mem.pending.is_empty() {
            let known = fields.clone();
            let pending = mem.pending;
            let (b, f) = tokio::task::spawn_blocking(move || chunks_to_batch(&pending, &known))
                .await
                .map_err(|e| StoreError::io("convert task", std::io::Error::other(e)))??;
            merge_fields(&mut fields, &f);
            batches.push(b);
        }
        for b in &batches {
            merge_fields(&mut fields, &schema::fields_of(&b.schema()));
        }
        let schema = arrow_schema(&fields);
        let mut memory = Vec::with_capacity(batches.len());
        for b in &batches {
            let b = filter_time(b, start_ms, end_ms)?;
            let b = if entry.deleted_streams.is_empty() {
                b
            } else {
                drop_deleted_rows(&b, |stream, seq| entry.is_deleted(stream, seq))?
            };
            if b.num_rows() > 0 {
                memory.push(conform(&b, &schema)?);
            }
        }
        Ok(GroupScan {
            group: info,
            schema,
            segments,
            memory,
            visible_seq,
            deleted_streams: entry.deleted_streams.clone(),
        })
    }

    /// The group's current field types (union over segments and memory converted so far).
    pub fn group_fields(&self, group: &str) -> Result<GroupFields> {
        let st = self.inner.shared.lock();
        let g = st
            .catalogue
            .group(group)
            .ok_or_else(|| StoreError::GroupNotFound(group.to_string()))?;
        Ok(st.manifest.fields.get(&g.id).cloned().unwrap_or_default())
    }

    /// A page of events of a group (or one stream) in a time range. Events come back oldest
    /// first; `limit` is capped at 10,000.
    pub async fn read_events(&self, q: &EventQuery) -> Result<EventPage> {
        let limit = q.limit.clamp(1, 10_000);
        let (entry, segments, mem, visible_seq) = {
            let st = self.inner.shared.lock();
            let g = st
                .catalogue
                .group(&q.group)
                .ok_or_else(|| StoreError::GroupNotFound(q.group.clone()))?;
            if let Some(s) = &q.stream
                && !g.streams.contains_key(s)
            {
                return Err(StoreError::StreamNotFound {
                    group: q.group.clone(),
                    stream: s.clone(),
                });
            }
            let segs: Vec<SegmentMeta> =
                st.manifest.segments.get(&g.id).cloned().unwrap_or_default();
            (
                g.clone(),
                segs,
                Self::memory_snapshot(&st, g.id, q.start_ms, q.end_ms),
                st.applied_seq,
            )
        };
        // Narrow the time range by the cursor so that whole windows can be skipped.
        let (mut lo, mut hi) = (q.start_ms, q.end_ms);
        if let Some(c) = q.cursor {
            match q.direction {
                Direction::Forward => {
                    lo = Some(lo.map_or(c.timestamp_ms, |l| l.max(c.timestamp_ms)))
                }
                Direction::Backward => {
                    let h = c.timestamp_ms.saturating_add(1);
                    hi = Some(hi.map_or(h, |x| x.min(h)));
                }
            }
        }
        let filter = Filter {
            stream: q.stream.as_deref(),
            lo,
            hi,
            direction: q.direction,
            cursor: q.cursor,
            group: &entry,
        };
        let window_ms = self.inner.config.window_ms;
        let window_of = |t: i64| t.div_euclid(window_ms) * window_ms;

        // Memory candidates, bucketed by window.
        let mut mem_events = Vec::new();
        for b in &mem.batches {
            events_from_batch(b, &filter, &mut mem_events)?;
        }
        for c in &mem.pending {
            events_from_chunk(c, &filter, &mut mem_events);
        }
        let mut buckets: BTreeMap<i64, (Vec<StoredEvent>, Vec<SegmentMeta>)> = BTreeMap::new();
        for e in mem_events {
            buckets.entry(window_of(e.timestamp)).or_default().0.push(e);
        }
        for s in segments.into_iter().filter(|s| s.overlaps(lo, hi)) {
            buckets.entry(s.window_start_ms).or_default().1.push(s);
        }
        let windows: Vec<i64> = match q.direction {
            Direction::Forward => buckets.keys().copied().collect(),
            Direction::Backward => buckets.keys().rev().copied().collect(),
        };
        let store = self.object_store();
        let mut out: Vec<StoredEvent> = Vec::new();
        for w in windows {
            let Some((mut events, segs)) = buckets.remove(&w) else {
                continue;
            };
            for s in &segs {
                for b in
                    segment::read_system_columns(&store, s, q.stream.as_deref(), lo, hi).await?
                {
                    events_from_batch(&b, &filter, &mut events)?;
                }
            }
            events.sort_by_key(|e| e.cursor());
            if q.direction == Direction::Backward {
                events.reverse();
            }
            out.extend(events);
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        if q.direction == Direction::Backward {
            out.reverse();
        }
        Ok(EventPage {
            next_forward: out.last().map(|e| e.cursor()),
            next_backward: out.first().map(|e| e.cursor()),
            events: out,
            visible_seq,
        })
    }
}

/// Removes rows of deleted streams from a batch: `is_deleted(stream, seq)` says which
/// (reads ask the group's catalogue entry; compaction a snapshot of its deleted streams).
pub(crate) fn drop_deleted_rows(
    b: &RecordBatch,
    is_deleted: impl Fn(&str, u64) -> bool,
) -> Result<RecordBatch> {
    let streams = b
        .column_by_name(schema::LOG_STREAM)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let ids = b
        .column_by_name(schema::EVENT_ID)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
    let (Some(streams), Some(ids)) = (streams, ids) else {
        return Ok(b.clone());
    };
    let mask: datafusion::arrow::array::BooleanArray = (0..b.num_rows())
        .map(|i| Some(!is_deleted(streams.value(i), seq_of_event_id(ids.value(i)))))
        .collect();
    datafusion::arrow::compute::filter_record_batch(b, &mask).map_err(|e| StoreError::Arrow {
        context: "drop deleted streams".into(),
        source: e,
    })
}
