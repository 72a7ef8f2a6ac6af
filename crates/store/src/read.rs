//! The read side.
//!
//! * [`Store::scan`] is for the query engine (issue #5): for a group and time range, the
//!   segments to read (object key, min/max time, rows, size), the group's schema (union of
//!   all fields, widened types) and the rows still in memory as arrow batches already
//!   conformed to that schema. Memory and segments never hold the same row.
//! * [`Store::read_events`] pages through the events of a group or one stream by time, forward
//!   or backward (GetLogEvents, `kinsight logs tail`).
//! * [`Store::follow`](crate::Store::follow) is the live feed for tailing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::TryStreamExt;

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
    /// Most bytes of events in the page (each event's message plus 26 bytes, as CloudWatch
    /// counts); `None`: [`MAX_PAGE_BYTES`]. A page holds at least one event whatever its size.
    pub max_bytes: Option<usize>,
}

/// The byte budget of a page of events by default: CloudWatch's GetLogEvents answers at most
/// 1 MB of events.
pub const MAX_PAGE_BYTES: usize = 1_048_576;

/// What an event counts against a page's byte budget.
pub fn event_bytes(message: &str) -> usize {
    message.len() + kinsight_model::limits::EVENT_OVERHEAD_BYTES
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
    /// first; `limit` is capped at 10,000 and the page at `max_bytes`.
    ///
    /// Memory stays bounded by the page, not by what the range holds: windows are visited in
    /// paging order, and in each one a first pass reads only the timestamps, ids and streams of
    /// the candidates and keeps the `limit` nearest ones; a second pass fetches the messages of
    /// those, nearest first, in rounds sized by the bytes still allowed, until the page is full.
    pub async fn read_events(&self, q: &EventQuery) -> Result<EventPage> {
        let limit = q.limit.clamp(1, 10_000);
        let max_bytes = q.max_bytes.unwrap_or(MAX_PAGE_BYTES).max(1);
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
        let memory = MemoryRows::new(&mem)?;

        let mut windows = std::collections::BTreeSet::new();
        memory.each(|ts, _, _, _| {
            windows.insert(window_of(ts));
        });
        let segments: Vec<SegmentMeta> = segments
            .into_iter()
            .filter(|s| s.overlaps(lo, hi))
            .collect();
        windows.extend(segments.iter().map(|s| s.window_start_ms));
        let windows: Vec<i64> = match q.direction {
            Direction::Forward => windows.into_iter().collect(),
            Direction::Backward => windows.into_iter().rev().collect(),
        };
        let store = self.object_store();
        let read = |messages: bool, ids: Option<Arc<HashSet<i64>>>| segment::RowRead {
            stream: q.stream.as_deref(),
            start_ms: lo,
            end_ms: hi,
            ids,
            messages,
            batch_rows: None,
        };
        let mut out: Vec<StoredEvent> = Vec::new();
        let mut bytes = 0usize;
        'windows: for w in windows {
            // First pass: the `limit - out.len()` nearest candidates of this window.
            let mut nearest = Nearest::new(limit - out.len(), q.direction);
            memory.each(|ts, id, stream, loc| {
                if window_of(ts) == w && filter.keep(ts, id, stream) {
                    nearest.push(
                        Cursor {
                            timestamp_ms: ts,
                            id,
                        },
                        loc,
                    );
                }
            });
            for (i, s) in segments.iter().enumerate() {
                if s.window_start_ms != w {
                    continue;
                }
                let mut batches = segment::read_rows(&store, s, &read(false, None)).await?;
                while let Some(b) = batches.try_next().await? {
                    let keys = KeyColumns::of(&b)?;
                    for r in 0..b.num_rows() {
                        let (ts, id, stream) = keys.row(r);
                        if filter.keep(ts, id, stream) {
                            nearest.push(
                                Cursor {
                                    timestamp_ms: ts,
                                    id,
                                },
                                Loc::Segment(i as u32),
                            );
                        }
                    }
                }
            }
            // Second pass: messages, nearest first, until the page is full.
            let chosen = nearest.into_paging_order();
            let mut next = 0;
            while next < chosen.len() {
                let round = if out.is_empty() {
                    256
                } else {
                    let average = (bytes / out.len()).max(1);
                    (max_bytes.saturating_sub(bytes) / average + 16).clamp(16, 4096)
                };
                let first = next;
                let part = &chosen[next..(next + round).min(chosen.len())];
                next += part.len();
                // What this round fetches, by rank (paging order), within the bytes the page
                // can still take plus one event: an event with that much nearer than it can
                // never be on this page, so it is let go as soon as it is known.
                let rank_of: HashMap<i64, usize> = part
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| (c.id, first + i))
                    .collect();
                let mut held = Held::new(max_bytes.saturating_sub(bytes));
                let mut by_segment: BTreeMap<u32, HashSet<i64>> = BTreeMap::new();
                for (i, (c, loc)) in part.iter().enumerate() {
                    match loc {
                        Loc::Segment(s) => {
                            by_segment.entry(*s).or_default().insert(c.id);
                        }
                        _ => {
                            if let Some(e) = memory.event(*loc) {
                                held.insert(first + i, e);
                            }
                        }
                    }
                }
                for (i, ids) in by_segment {
                    let s = &segments[i as usize];
                    let mut r = read(true, Some(Arc::new(ids)));
                    r.batch_rows = Some(PHASE_TWO_BATCH_ROWS);
                    let mut batches = segment::read_rows(&store, s, &r).await?;
                    while let Some(b) = batches.try_next().await? {
                        let mut events = Vec::new();
                        events_from_batch(&b, &filter, &mut events)?;
                        for e in events {
                            if let Some(&rank) = rank_of.get(&e.id) {
                                held.insert(rank, e);
                            }
                        }
                    }
                }
                // Every rank of this round is fetched now (an event gone between the passes —
                // a segment swapped by compaction, still readable meanwhile — is skipped).
                for event in held.into_events() {
                    let size = event_bytes(&event.message);
                    if !out.is_empty() && bytes + size > max_bytes {
                        break 'windows;
                    }
                    bytes += size;
                    out.push(event);
                }
            }
            if out.len() >= limit {
                break;
            }
        }
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

/// Rows of a segment's batch in the second pass: a batch holds at most this many events of up
/// to 256 KiB.
const PHASE_TWO_BATCH_ROWS: usize = 16;

/// Fetched events by rank, holding no more than what a page could still take of them plus one
/// event: once the nearer events held add up to the room left, a farther one is dropped.
struct Held {
    room: usize,
    events: BTreeMap<usize, StoredEvent>,
    bytes: usize,
}

impl Held {
    fn new(room: usize) -> Held {
        Held {
            room,
            events: BTreeMap::new(),
            bytes: 0,
        }
    }

    fn insert(&mut self, rank: usize, e: StoredEvent) {
        self.bytes += event_bytes(&e.message);
        self.events.insert(rank, e);
        while let Some((_, farthest)) = self.events.last_key_value() {
            let size = event_bytes(&farthest.message);
            if self.bytes - size < self.room || self.events.len() == 1 {
                break;
            }
            self.bytes -= size;
            self.events.pop_last();
        }
    }

    fn into_events(self) -> impl Iterator<Item = StoredEvent> {
        self.events.into_values()
    }
}

/// Where a candidate event is: row `r` of memory batch `b`, row `r` of pending chunk `c`, or
/// somewhere in segment `s` (found again by its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Loc {
    Batch(u32, u32),
    Chunk(u32, u32),
    Segment(u32),
}

/// The `keep` candidates nearest to the start of the page (smallest cursors going forward,
/// largest going backward), in memory proportional to `keep`.
struct Nearest {
    keep: usize,
    direction: Direction,
    /// Going forward: a max-heap, the farthest kept candidate on top.
    forward: std::collections::BinaryHeap<(Cursor, Loc)>,
    /// Going backward: a min-heap, the farthest (oldest) kept candidate on top.
    backward: std::collections::BinaryHeap<std::cmp::Reverse<(Cursor, Loc)>>,
}

impl Nearest {
    fn new(keep: usize, direction: Direction) -> Nearest {
        Nearest {
            keep,
            direction,
            forward: Default::default(),
            backward: Default::default(),
        }
    }

    fn push(&mut self, c: Cursor, loc: Loc) {
        if self.keep == 0 {
            return;
        }
        match self.direction {
            Direction::Forward => {
                if self.forward.len() < self.keep {
                    self.forward.push((c, loc));
                } else if self.forward.peek().is_some_and(|top| c < top.0) {
                    self.forward.pop();
                    self.forward.push((c, loc));
                }
            }
            Direction::Backward => {
                if self.backward.len() < self.keep {
                    self.backward.push(std::cmp::Reverse((c, loc)));
                } else if self.backward.peek().is_some_and(|top| c > top.0.0) {
                    self.backward.pop();
                    self.backward.push(std::cmp::Reverse((c, loc)));
                }
            }
        }
    }

    /// The kept candidates, nearest first.
    fn into_paging_order(self) -> Vec<(Cursor, Loc)> {
        match self.direction {
            Direction::Forward => self.forward.into_sorted_vec(),
            Direction::Backward => self
                .backward
                .into_sorted_vec()
                .into_iter()
                .map(|r| r.0)
                .collect(),
        }
    }
}

/// The timestamp, id and stream columns of a batch.
struct KeyColumns<'a> {
    ts: &'a TimestampMillisecondArray,
    ids: &'a Int64Array,
    streams: &'a StringArray,
}

impl<'a> KeyColumns<'a> {
    fn of(b: &'a RecordBatch) -> Result<KeyColumns<'a>> {
        let missing = |c: &str| StoreError::Format {
            path: "record batch".into(),
            reason: format!("missing or mistyped {c}"),
        };
        Ok(KeyColumns {
            ts: schema::timestamps(b)?,
            ids: b
                .column_by_name(schema::EVENT_ID)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| missing(schema::EVENT_ID))?,
            streams: b
                .column_by_name(schema::LOG_STREAM)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| missing(schema::LOG_STREAM))?,
        })
    }

    fn row(&self, r: usize) -> (i64, i64, &'a str) {
        (self.ts.value(r), self.ids.value(r), self.streams.value(r))
    }
}

/// The unflushed rows of a read, addressable by [`Loc`].
struct MemoryRows<'a> {
    batches: Vec<(KeyColumns<'a>, &'a RecordBatch)>,
    chunks: &'a [Arc<Chunk>],
}

impl<'a> MemoryRows<'a> {
    fn new(mem: &'a MemorySnapshot) -> Result<MemoryRows<'a>> {
        Ok(MemoryRows {
            batches: mem
                .batches
                .iter()
                .map(|b| Ok((KeyColumns::of(b)?, b)))
                .collect::<Result<_>>()?,
            chunks: &mem.pending,
        })
    }

    /// Calls `f(timestamp, id, stream, loc)` for every row.
    fn each(&self, mut f: impl FnMut(i64, i64, &str, Loc)) {
        for (bi, (keys, b)) in self.batches.iter().enumerate() {
            for r in 0..b.num_rows() {
                let (ts, id, stream) = keys.row(r);
                f(ts, id, stream, Loc::Batch(bi as u32, r as u32));
            }
        }
        for (ci, c) in self.chunks.iter().enumerate() {
            for (r, row) in c.rows().enumerate() {
                f(
                    row.timestamp_ms,
                    row.id,
                    row.stream,
                    Loc::Chunk(ci as u32, r as u32),
                );
            }
        }
    }

    /// The event at a memory location (`None` for a segment location).
    fn event(&self, loc: Loc) -> Option<StoredEvent> {
        Some(match loc {
            Loc::Batch(b, r) => {
                let (keys, batch) = &self.batches[b as usize];
                let (ts, id, stream) = keys.row(r as usize);
                let column = |name: &str| batch.column_by_name(name);
                let ingestion_time = column(schema::INGESTION_TIME)
                    .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
                    .map_or(0, |a| a.value(r as usize));
                let message = column(schema::MESSAGE)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .map_or(String::new(), |a| a.value(r as usize).to_string());
                StoredEvent {
                    timestamp: ts,
                    ingestion_time,
                    log_stream_name: stream.to_string(),
                    message,
                    id,
                }
            }
            Loc::Chunk(c, r) => {
                let row = self.chunks[c as usize].row(r as usize);
                StoredEvent {
                    timestamp: row.timestamp_ms,
                    ingestion_time: row.ingestion_ms,
                    log_stream_name: row.stream.to_string(),
                    message: row.message.to_string(),
                    id: row.id,
                }
            }
            Loc::Segment(_) => return None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, size: usize) -> StoredEvent {
        StoredEvent {
            timestamp: id,
            ingestion_time: id,
            log_stream_name: "s".into(),
            message: "m".repeat(size),
            id,
        }
    }

    /// Issue 15 (review): a round of the second pass holds no more than the page's room plus
    /// one event, whatever order the events arrive in and however large the far ones are —
    /// and what it keeps is exactly the nearest events that can still be on the page.
    #[test]
    fn held_events_never_exceed_the_room_plus_one_event() {
        let room = 1 << 20;
        let big = 256 * 1024 - 26;
        let mut held = Held::new(room);
        let mut most = 0;
        // 256 small events near the start, then 4,096 large ones, arriving farthest first.
        for rank in (0..4352).rev() {
            let size = if rank < 256 { 100 } else { big };
            held.insert(rank, event(rank as i64, size));
            most = most.max(held.bytes);
            assert!(held.bytes <= room + 256 * 1024, "{} held", held.bytes);
        }
        assert!(most <= room + 256 * 1024);
        let kept: Vec<i64> = held.into_events().map(|e| e.id).collect();
        // All 256 small ones, then as many large ones as reach the room.
        assert_eq!(kept[..256], (0..256).collect::<Vec<i64>>()[..]);
        let small = 256 * (100 + 26);
        let large_needed = (room - small).div_ceil(big + 26);
        assert_eq!(kept.len(), 256 + large_needed);
    }
}
