//! Durable events that are not in a segment yet, per group.
//!
//! The WAL thread appends each durable batch as a [`Chunk`] per group (no copy: the chunk
//! shares the batch record). A background indexer converts pending chunks into arrow record
//! batches with the flattened JSON columns, so readers and the flusher find most rows already
//! in columnar form; readers convert the few still pending on the fly. Either way an event is
//! readable as soon as it is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use crate::error::Result;
use crate::flatten::{RowRef, build_batch};
use crate::record::{BatchRecord, event_id};
use crate::schema::GroupFields;

/// The events of one group from one durable batch.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub seq: u64,
    pub record: Arc<BatchRecord>,
    /// Indexes into `record.events`.
    pub indices: Vec<u32>,
}

impl Chunk {
    pub fn rows(&self) -> impl ExactSizeIterator<Item = RowRef<'_>> {
        self.indices.iter().map(move |&i| self.row_at(i))
    }

    /// The `k`-th row of the chunk.
    pub fn row(&self, k: usize) -> RowRef<'_> {
        self.row_at(self.indices[k])
    }

    fn row_at(&self, i: u32) -> RowRef<'_> {
        let e = &self.record.events[i as usize];
        RowRef {
            timestamp_ms: e.timestamp,
            ingestion_ms: self.record.ingestion_time_ms,
            stream: &e.log_stream_name,
            message: &e.message,
            id: event_id(self.seq, i as usize),
        }
    }
}

/// Converts chunks into one record batch (system columns plus flattened fields).
pub(crate) fn chunks_to_batch(
    chunks: &[Arc<Chunk>],
    known: &GroupFields,
) -> Result<(RecordBatch, GroupFields)> {
    let rows: Vec<RowRef<'_>> = chunks.iter().flat_map(|c| c.rows()).collect();
    build_batch(rows.into_iter(), known)
}

/// Memory of one group.
#[derive(Debug, Default, Clone)]
pub(crate) struct GroupMem {
    /// Converted rows; each batch has its own schema (the fields its rows have).
    pub batches: Vec<RecordBatch>,
    /// Rows not converted yet, in sequence order, after those of `batches`.
    pub pending: Vec<Arc<Chunk>>,
    pub rows: usize,
    /// Σ message bytes (what flush thresholds count).
    pub raw_bytes: usize,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
}

impl GroupMem {
    fn push(&mut self, chunk: Chunk) {
        for r in chunk.rows() {
            self.raw_bytes += r.message.len();
            self.min_ts = Some(
                self.min_ts
                    .map_or(r.timestamp_ms, |m| m.min(r.timestamp_ms)),
            );
            self.max_ts = Some(
                self.max_ts
                    .map_or(r.timestamp_ms, |m| m.max(r.timestamp_ms)),
            );
        }
        self.rows += chunk.indices.len();
        self.pending.push(Arc::new(chunk));
    }

    pub fn overlaps(&self, start_ms: Option<i64>, end_ms: Option<i64>) -> bool {
        match (self.min_ts, self.max_ts) {
            (Some(lo), Some(hi)) => {
                start_ms.is_none_or(|s| hi >= s) && end_ms.is_none_or(|e| lo < e)
            }
            _ => false,
        }
    }
}

/// The active memtable.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    pub groups: HashMap<u64, GroupMem>,
    pub raw_bytes: usize,
    pub rows: usize,
    /// When the oldest row still here arrived (wall clock, ms).
    pub first_insert_ms: Option<i64>,
    /// Bumped whenever the memtable is frozen, so a conversion that raced a freeze is dropped.
    pub generation: u64,
}

impl Memtable {
    pub fn insert(&mut self, group_id: u64, chunk: Chunk, now_ms: i64) {
        let g = self.groups.entry(group_id).or_default();
        let before = g.raw_bytes;
        let n = chunk.indices.len();
        g.push(chunk);
        self.raw_bytes += g.raw_bytes - before;
        self.rows += n;
        self.first_insert_ms.get_or_insert(now_ms);
    }

    /// Drops a deleted group's rows.
    pub fn remove_group(&mut self, group_id: u64) {
        if let Some(g) = self.groups.remove(&group_id) {
            self.raw_bytes -= g.raw_bytes;
            self.rows -= g.rows;
        }
    }

    /// Takes everything out, leaving an empty memtable of the next generation.
    pub fn freeze(&mut self) -> Memtable {
        let generation = self.generation + 1;
        let frozen = std::mem::take(self);
        self.generation = generation;
        frozen
    }

    /// Replaces the first `n` pending chunks of a group by their converted batch, unless the
    /// memtable was frozen since they were taken.
    pub fn complete_conversion(
        &mut self,
        generation: u64,
        group_id: u64,
        n: usize,
        batch: RecordBatch,
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        let Some(g) = self.groups.get_mut(&group_id) else {
            return false;
        };
        if g.pending.len() < n {
            return false;
        }
        g.pending.drain(..n);
        g.batches.push(batch);
        true
    }
}
