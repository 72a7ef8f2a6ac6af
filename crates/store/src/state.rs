//! The in-memory state and how WAL records change it. One mutex guards it; the WAL thread
//! applies durable records under it in sequence order, readers take consistent snapshots
//! under it, and maintenance swaps memory for segments under it in one step, so a reader sees
//! every acknowledged event exactly once: in memory or in a segment, never both or neither.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cardinality::Reservations;
use crate::catalogue::Catalogue;
use crate::checkpoint::Manifest;
use crate::dedup::{DedupEntry, DedupIndex};
use crate::error::Result;
use crate::memtable::{Chunk, GroupMem, Memtable};
use crate::record::{BatchRecord, CatalogueOp, WalEntry};

/// A memtable taken out for flushing; readers still see it until its segments are in the
/// manifest.
#[derive(Debug)]
pub(crate) struct Frozen {
    /// Every record up to this sequence number is in it or in segments.
    pub seq: u64,
    pub groups: HashMap<u64, GroupMem>,
    /// The catalogue as of `seq`: what the checkpoint after this flush holds.
    pub catalogue: Arc<Catalogue>,
}

#[derive(Debug)]
pub(crate) struct State {
    /// Highest WAL sequence number applied.
    pub applied_seq: u64,
    pub catalogue: Catalogue,
    pub memtable: Memtable,
    pub frozen: Vec<Arc<Frozen>>,
    pub manifest: Manifest,
    pub dedup: DedupIndex,
    /// The sequence number the manifest reflects (every record up to it is in segments) and
    /// the catalogue as of that number: the content of the next checkpoint.
    pub checkpoint_seq: u64,
    pub checkpoint_catalogue: Arc<Catalogue>,
    /// Sequence number of the last checkpoint actually written.
    pub saved_checkpoint_seq: u64,
    pub saved_checkpoint_ms: i64,
    /// `v1/checkpoint.json` is the checkpoint at `saved_checkpoint_seq` (false after a start
    /// that found it damaged or missing): only then is it copied to the previous slot.
    pub newest_checkpoint_valid: bool,
    /// Sequence number of the checkpoint in the previous slot (`v1/checkpoint.prev.json`);
    /// the WAL keeps every record after it, so that falling back to it loses nothing.
    pub previous_checkpoint_seq: Option<u64>,
    /// Objects no longer referenced by the manifest.
    pub pending_deletes: Vec<PendingDelete>,
    /// Groups and streams that records on their way to the WAL will create.
    pub reservations: Reservations,
    /// Replicas: frozen memtables this replica flushed (their segments are in its manifest)
    /// whose checkpoint is not published yet. Should a checkpoint without them be adopted
    /// instead (the lease moved mid-flush), they become frozen again: their rows must not
    /// disappear before a published checkpoint covers them.
    pub unpublished: Vec<Arc<Frozen>>,
}

/// An object to delete once neither checkpoint (the newest and the previous one, the
/// fallback) references it and queries that might still read it have had time to finish.
#[derive(Debug, Clone)]
pub(crate) struct PendingDelete {
    pub due_ms: i64,
    pub path: String,
    /// Checkpoints written (durably) since the removal; at two, the previous checkpoint does
    /// not list the object either. Objects never listed by any checkpoint start at two.
    pub checkpoints_without: u8,
}

impl PendingDelete {
    pub const SAFE_AFTER_CHECKPOINTS: u8 = 2;

    pub fn is_safe(&self) -> bool {
        self.checkpoints_without >= Self::SAFE_AFTER_CHECKPOINTS
    }
}

impl State {
    /// Message bytes not yet in segments (active + frozen memory).
    pub fn unflushed_bytes(&self) -> usize {
        self.memtable.raw_bytes
            + self
                .frozen
                .iter()
                .flat_map(|f| f.groups.values())
                .map(|g| g.raw_bytes)
                .sum::<usize>()
    }

    /// Applies one durable record. Errors are the outcome of a catalogue operation that
    /// changes nothing (e.g. creating a group that exists); they go back to the caller that
    /// wrote it and are ignored on replay. `Some` for a batch whose id an earlier record
    /// already stored (replicas that both wrote a retried batch): it changes nothing, and the
    /// first outcome is returned.
    ///
    /// Everything here depends only on the state and the record (`now_ms` is the record's
    /// commit time on replicated servers), so replicas applying the same log agree.
    pub fn apply(
        &mut self,
        seq: u64,
        entry: &WalEntry,
        now_ms: i64,
        gc_grace_ms: i64,
    ) -> Result<Option<DedupEntry>> {
        debug_assert!(seq > self.applied_seq || self.applied_seq == 0);
        self.applied_seq = self.applied_seq.max(seq);
        match entry {
            WalEntry::Batch(rec) => Ok(self.apply_batch(seq, rec, now_ms)),
            // For the observers only: nothing of the log store's state changes.
            WalEntry::Samples(_) => Ok(None),
            WalEntry::Catalogue(CatalogueOp::Freeze) => {
                let mem = self.memtable.freeze();
                self.frozen.push(Arc::new(Frozen {
                    seq,
                    groups: mem.groups,
                    catalogue: Arc::new(self.catalogue.clone()),
                }));
                Ok(None)
            }
            WalEntry::Catalogue(op) => {
                let fx = self.catalogue.apply_op(seq, op)?;
                for gid in fx.deleted_groups {
                    self.memtable.remove_group(gid);
                    if let Some(segs) = self.manifest.segments.remove(&gid) {
                        for s in segs {
                            self.pending_deletes.push(PendingDelete {
                                due_ms: now_ms + gc_grace_ms,
                                path: s.path,
                                checkpoints_without: 0,
                            });
                        }
                    }
                    self.manifest.fields.remove(&gid);
                }
                Ok(None)
            }
        }
    }

    fn apply_batch(&mut self, seq: u64, rec: &Arc<BatchRecord>, now_ms: i64) -> Option<DedupEntry> {
        // An id known from a dedup file may be this very record, replayed after falling back
        // to an older checkpoint: only an earlier record makes it a duplicate.
        if let Some(first) = rec.batch_id.as_deref().and_then(|id| self.dedup.get(id))
            && first.seq < seq
        {
            return Some(first);
        }
        let placed = self
            .catalogue
            .apply_events(&rec.events, rec.ingestion_time_ms);
        // Split the record's events by group (usually one group per batch).
        let mut by_group: Vec<(u64, Vec<u32>)> = Vec::new();
        for (gid, i) in placed {
            match by_group.iter_mut().find(|(g, _)| *g == gid) {
                Some((_, v)) => v.push(i as u32),
                None => by_group.push((gid, vec![i as u32])),
            }
        }
        for (gid, indices) in by_group {
            self.memtable.insert(
                gid,
                Chunk {
                    seq,
                    record: rec.clone(),
                    indices,
                },
                now_ms,
            );
        }
        if let Some(id) = &rec.batch_id {
            self.dedup.insert(
                id,
                DedupEntry {
                    seq,
                    ingestion_ms: rec.ingestion_time_ms,
                    accepted: rec.events.len() as u32,
                    rejected: rec.rejected,
                },
                now_ms,
                true,
            );
        }
        None
    }
}
