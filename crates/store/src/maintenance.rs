//! Background work: converting unflushed rows to columns (indexer), flushing memory to
//! segments, compacting small segments, enforcing retention, writing checkpoints, truncating
//! the WAL and deleting unreferenced objects.
//!
//! Order of a flush, and why it is crash-safe:
//! 1. freeze the memtable at sequence `s` (readers still see it);
//! 2. write its segments (durably);
//! 3. under the state lock, put the segments in the manifest and drop the frozen memtable — one
//!    step, so readers never see a row twice or not at all;
//! 4. write the batch ids of the records up to `s` (dedup file), copy the current checkpoint
//!    to the previous slot, then write the checkpoint `(s, catalogue as of s, manifest)`;
//! 5. delete WAL files whose records are all `<=` the previous checkpoint's sequence number
//!    (and persisted by every observer).
//!
//! A crash before 4 completes leaves the old checkpoint: the WAL still holds the records and
//! the new segments are orphans, deleted at the next start. Should the newest checkpoint be
//! damaged anyway, the store starts from the previous one: the WAL still holds every record
//! after it (5), and the segments it lists are still there, because objects dropped from the
//! manifest are deleted only once two checkpoints without them are durable — the newest and
//! the previous — and after a grace period.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;

use crate::checkpoint::Checkpoint;
use crate::dedup;
use crate::error::{Result, StoreError};
use crate::memtable::{GroupMem, chunks_to_batch};
use crate::paths;
use crate::schema::{self, GroupFields, arrow_schema, merge_fields};
use crate::segment::{self, SegmentMeta};
use crate::state::{Frozen, PendingDelete};
use crate::store::Store;
use crate::wal;

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlushReport {
    pub rows: u64,
    pub segments: usize,
    pub bytes: u64,
    /// The sequence number the new checkpoint reflects.
    pub checkpoint_seq: u64,
}

/// A window counts as closed (no more events expected) this long after its end.
const CLOSED_AFTER_MS: i64 = 10 * 60_000;

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::io("background task", std::io::Error::other(e))
}

impl Store {
    pub(crate) fn spawn_background(&self) {
        let cfg = &self.inner.config;
        // Indexer + flusher.
        {
            let store = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            let period = Duration::from_millis(cfg.index_interval_ms.max(10));
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tick.tick() => {}
                        _ = store.inner.shared.flush_wanted.notified() => {}
                    }
                    if let Err(e) = store.index_pending().await {
                        tracing::warn!(error = %e, "converting unflushed rows failed");
                    }
                    if store.flush_due()
                        && let Err(e) = store.flush().await
                    {
                        tracing::error!(error = %e, "flush failed; data stays in the WAL and memory, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
            self.keep_background(task);
        }
        // Compaction + retention + object GC.
        {
            let store = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            let compaction = Duration::from_millis(cfg.compaction_interval_ms.max(100));
            let retention_every = cfg.retention_interval_ms.max(100);
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(compaction);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_retention: Option<tokio::time::Instant> = None;
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tick.tick() => {}
                    }
                    if last_retention
                        .is_none_or(|t| t.elapsed().as_millis() as u64 >= retention_every)
                    {
                        last_retention = Some(tokio::time::Instant::now());
                        if let Err(e) = store.enforce_retention().await {
                            tracing::warn!(error = %e, "retention failed");
                        }
                    }
                    if let Err(e) = store.compact().await {
                        tracing::warn!(error = %e, "compaction failed");
                    }
                    if let Err(e) = store.collect_garbage().await {
                        tracing::warn!(error = %e, "deleting unreferenced objects failed");
                    }
                }
            });
            self.keep_background(task);
        }
    }

    fn keep_background(&self, task: tokio::task::JoinHandle<()>) {
        self.inner
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    fn flush_due(&self) -> bool {
        let cfg = &self.inner.config;
        let now = self.now_ms();
        let st = self.inner.shared.lock();
        !st.frozen.is_empty()
            || st.memtable.raw_bytes >= cfg.flush_bytes
            || st.unflushed_bytes() >= cfg.max_unflushed_bytes
            || st
                .memtable
                .first_insert_ms
                .is_some_and(|t| now - t >= cfg.flush_interval_ms)
            || (st.applied_seq > st.saved_checkpoint_seq
                && now - st.saved_checkpoint_ms >= cfg.flush_interval_ms)
    }

    /// Converts pending rows of the active memtable into columnar batches (what the
    /// background indexer does every `index_interval_ms`).
    pub async fn index_pending(&self) -> Result<()> {
        let work: Vec<_> = {
            let st = self.inner.shared.lock();
            let generation = st.memtable.generation;
            st.memtable
                .groups
                .iter()
                .filter(|(_, g)| !g.pending.is_empty())
                .map(|(gid, g)| {
                    (
                        generation,
                        *gid,
                        g.pending.clone(),
                        st.manifest.fields.get(gid).cloned().unwrap_or_default(),
                    )
                })
                .collect()
        };
        for (generation, gid, pending, known) in work {
            let n = pending.len();
            let (batch, fields) =
                tokio::task::spawn_blocking(move || chunks_to_batch(&pending, &known))
                    .await
                    .map_err(join_err)??;
            let mut st = self.inner.shared.lock();
            if st.memtable.complete_conversion(generation, gid, n, batch) {
                merge_fields(st.manifest.fields.entry(gid).or_default(), &fields);
            }
        }
        Ok(())
    }

    /// Writes everything unflushed to segments and a checkpoint, then truncates the WAL.
    pub async fn flush(&self) -> Result<FlushReport> {
        let replicated = self.inner.config.shared.is_some();
        if replicated {
            // Replicas: only the maintenance leader flushes, from the newest checkpoint, and
            // freezes through the log so that every replica freezes the same rows.
            if !self.may_maintain() {
                return Ok(FlushReport::default());
            }
            self.require_current_checkpoint().await?;
            let needed = {
                let st = self.inner.shared.lock();
                st.memtable.rows > 0
                    || (st.frozen.is_empty() && st.applied_seq > st.saved_checkpoint_seq)
            };
            if needed {
                self.freeze_everywhere().await?;
            }
        }
        let _m = self.inner.maintenance.lock().await;
        let mut report = FlushReport::default();
        // Retry memtables whose earlier flush failed, then freeze the active one.
        let todo: Vec<Arc<Frozen>> = {
            let mut st = self.inner.shared.lock();
            let mut todo = st.frozen.clone();
            if !replicated && (st.memtable.rows > 0 || st.applied_seq > st.saved_checkpoint_seq) {
                let mem = st.memtable.freeze();
                let frozen = Arc::new(Frozen {
                    seq: st.applied_seq,
                    groups: mem.groups,
                    catalogue: Arc::new(st.catalogue.clone()),
                });
                st.frozen.push(frozen.clone());
                todo.push(frozen);
            }
            todo
        };
        if todo.is_empty() {
            return Ok(report);
        }
        for frozen in todo {
            let written = self.write_frozen(&frozen).await?;
            {
                let mut st = self.inner.shared.lock();
                st.frozen.retain(|f| !Arc::ptr_eq(f, &frozen));
                if replicated {
                    st.unpublished.push(frozen.clone());
                }
                for (gid, metas, fields) in written {
                    report.rows += metas.iter().map(|m| m.rows).sum::<u64>();
                    report.bytes += metas.iter().map(|m| m.size_bytes).sum::<u64>();
                    report.segments += metas.len();
                    if st.catalogue.group_by_id(gid).is_none() {
                        // Deleted while we wrote: the objects go (no checkpoint ever listed them).
                        let due = self.now_ms();
                        st.pending_deletes
                            .extend(metas.into_iter().map(|m| PendingDelete {
                                due_ms: due,
                                path: m.path,
                                checkpoints_without: PendingDelete::SAFE_AFTER_CHECKPOINTS,
                            }));
                        continue;
                    }
                    let list = st.manifest.segments.entry(gid).or_default();
                    list.extend(metas);
                    list.sort_by_key(|m| (m.window_start_ms, m.id));
                    merge_fields(st.manifest.fields.entry(gid).or_default(), &fields);
                }
                st.checkpoint_seq = frozen.seq;
                st.checkpoint_catalogue = frozen.catalogue.clone();
            }
            self.inner.shared.memory_freed.notify_waiters();
            report.checkpoint_seq = self.persist_checkpoint().await?;
        }
        Ok(report)
    }

    /// Writes the segments of a frozen memtable; returns them per group with their fields.
    async fn write_frozen(
        &self,
        frozen: &Frozen,
    ) -> Result<Vec<(u64, Vec<SegmentMeta>, GroupFields)>> {
        let mut out = Vec::new();
        for (&gid, gm) in &frozen.groups {
            if gm.rows == 0 {
                continue;
            }
            let known = {
                let st = self.inner.shared.lock();
                if st.catalogue.group_by_id(gid).is_none() {
                    continue;
                }
                st.manifest.fields.get(&gid).cloned().unwrap_or_default()
            };
            let batches = materialise(gm, &known).await?;
            let (metas, fields) = self
                .write_segments(gid, batches, self.inner.config.flush_zstd_level, 0)
                .await?;
            out.push((gid, metas, fields));
        }
        Ok(out)
    }

    /// Sorts rows, splits them by window and writes one segment per window.
    async fn write_segments(
        &self,
        gid: u64,
        batches: Vec<RecordBatch>,
        zstd_level: i32,
        level: u32,
    ) -> Result<(Vec<SegmentMeta>, GroupFields)> {
        let mut fields = GroupFields::new();
        for b in &batches {
            merge_fields(&mut fields, &schema::fields_of(&b.schema()));
        }
        let window_ms = self.inner.config.window_ms;
        let schema = arrow_schema(&fields);
        let (parts, cluster) = tokio::task::spawn_blocking(move || {
            let sorted = segment::concat_sorted(&schema, &batches)?;
            Ok::<_, StoreError>((
                segment::split_by_window(&sorted.batch, window_ms)?,
                sorted.cluster,
            ))
        })
        .await
        .map_err(join_err)??;
        let mut metas = Vec::with_capacity(parts.len());
        for (window_start_ms, part) in parts {
            let id = {
                let mut st = self.inner.shared.lock();
                st.manifest.next_segment_id += 1;
                st.manifest.next_segment_id
            };
            let path = paths::segment(gid, window_start_ms, id);
            let p = path.to_string();
            let (bytes, stats): (Bytes, _) = tokio::task::spawn_blocking(move || {
                // A window's rows may carry columns only other windows use: drop all-null ones.
                let part = drop_null_columns(&part)?;
                let stats = segment::batch_stats(&part)?;
                Ok::<_, StoreError>((segment::encode(&part, cluster, zstd_level, &p)?, stats))
            })
            .await
            .map_err(join_err)??;
            let size = bytes.len() as u64;
            self.inner.storage.put_durable(&path, bytes).await?;
            metas.push(SegmentMeta {
                id,
                group_id: gid,
                path: path.to_string(),
                window_start_ms,
                min_ts: stats.min_ts,
                max_ts: stats.max_ts,
                min_id: stats.min_id,
                max_id: stats.max_id,
                rows: stats.rows,
                size_bytes: size,
                raw_bytes: stats.raw_bytes,
                created_ms: self.now_ms(),
                level,
            });
        }
        Ok((metas, fields))
    }

    /// Writes the dedup file and the checkpoint for the manifest as it is now. A single server
    /// first keeps the checkpoint it replaces as the previous one and, on success, truncates
    /// the WAL through the previous checkpoint; a replica writes it under a key of its own and
    /// publishes it in the catalogue (fenced by the maintenance lease), which also truncates
    /// the shared log. Either way the checkpoint then counts for objects waiting to be deleted.
    async fn persist_checkpoint(&self) -> Result<u64> {
        let replicated = self.inner.config.shared.is_some();
        let now = self.now_ms();
        let (seq, ckpt, dedup_entries, covered, rotate) = {
            let mut st = self.inner.shared.lock();
            let seq = st.checkpoint_seq;
            let ckpt = Checkpoint::new(
                seq,
                now,
                (*st.checkpoint_catalogue).clone(),
                st.manifest.clone(),
            );
            (
                seq,
                ckpt,
                st.dedup.take_unsaved_through(seq),
                st.pending_deletes.len(),
                st.newest_checkpoint_valid
                    .then_some(st.saved_checkpoint_seq),
            )
        };
        let res = async {
            if !dedup_entries.is_empty() {
                self.inner
                    .storage
                    .put_durable(
                        &paths::dedup(seq),
                        Bytes::from(dedup::encode(&dedup_entries)),
                    )
                    .await?;
            }
            if replicated {
                let key = paths::shared_checkpoint(seq, &uuid::Uuid::new_v4().to_string());
                self.inner
                    .storage
                    .put_durable(&key, Bytes::from(ckpt.encode()))
                    .await?;
                return self.publish_checkpoint(seq, key.as_ref()).await;
            }
            // The checkpoint being replaced becomes the previous one: what a start falls back
            // to if the new one turns out damaged (issue 15, item 11).
            if let Some(prev_seq) = rotate {
                self.inner
                    .storage
                    .copy_durable(&paths::checkpoint(), &paths::previous_checkpoint())
                    .await?;
                self.inner.shared.lock().previous_checkpoint_seq = Some(prev_seq);
            }
            self.inner
                .storage
                .put_durable(&paths::checkpoint(), Bytes::from(ckpt.encode()))
                .await
        }
        .await;
        if let Err(e) = res {
            self.inner
                .shared
                .lock()
                .dedup
                .restore_unsaved(dedup_entries);
            return Err(e);
        }
        let previous = {
            let mut st = self.inner.shared.lock();
            st.unpublished.retain(|f| f.seq > seq);
            st.saved_checkpoint_seq = seq;
            st.saved_checkpoint_ms = now;
            st.newest_checkpoint_valid = true;
            for d in st.pending_deletes.iter_mut().take(covered) {
                d.checkpoints_without = d.checkpoints_without.saturating_add(1);
            }
            st.previous_checkpoint_seq
        };
        if replicated {
            return Ok(seq);
        }
        // Records after the previous checkpoint stay: falling back to it replays them.
        let through = self
            .inner
            .observers
            .iter()
            .map(|o| o.persisted_seq())
            .fold(previous.unwrap_or(0), u64::min);
        let dir = self.inner.config.wal_dir();
        tokio::task::spawn_blocking(move || wal::remove_files_through(&dir, through))
            .await
            .map_err(join_err)??;
        Ok(seq)
    }

    /// Merges small segments of the same group and window into one. Returns how many
    /// segments were replaced.
    pub async fn compact(&self) -> Result<usize> {
        if !self.may_maintain() {
            return Ok(0);
        }
        if self.inner.config.shared.is_some() {
            self.require_current_checkpoint().await?;
        }
        let _m = self.inner.maintenance.lock().await;
        let cfg = &self.inner.config;
        let now = self.now_ms();
        let plans: Vec<(u64, i64, Vec<SegmentMeta>)> = {
            let st = self.inner.shared.lock();
            let mut plans = Vec::new();
            for (&gid, segs) in &st.manifest.segments {
                let mut by_window: std::collections::BTreeMap<i64, Vec<&SegmentMeta>> =
                    Default::default();
                for s in segs
                    .iter()
                    .filter(|s| s.size_bytes < cfg.compaction_small_bytes)
                {
                    by_window.entry(s.window_start_ms).or_default().push(s);
                }
                for (w, mut small) in by_window {
                    small.sort_by_key(|s| s.id);
                    let mut pick = Vec::new();
                    let mut raw = 0u64;
                    for s in small {
                        if !pick.is_empty() && raw + s.raw_bytes > cfg.compaction_max_raw_bytes {
                            break;
                        }
                        raw += s.raw_bytes;
                        pick.push(s.clone());
                    }
                    // A window that still receives events is merged only once several small
                    // segments piled up, so that each row is rewritten a few times at most;
                    // a closed window merges whatever is left.
                    let closed = w + cfg.window_ms + CLOSED_AFTER_MS < now;
                    let needed = if closed {
                        2
                    } else {
                        cfg.compaction_min_open_segments.max(2)
                    };
                    if pick.len() >= needed {
                        plans.push((gid, w, pick));
                    }
                }
            }
            plans
        };
        let mut replaced = 0;
        for (gid, _window, inputs) in plans {
            let store = self.object_store();
            let mut batches = Vec::new();
            for s in &inputs {
                batches.extend(segment::read_all(&store, s).await?);
            }
            // Rows of deleted streams are dropped for good here.
            let deleted = {
                let st = self.inner.shared.lock();
                st.catalogue
                    .group_by_id(gid)
                    .map(|g| g.deleted_streams.clone())
            };
            let Some(deleted) = deleted else { continue };
            if !deleted.is_empty() {
                batches = batches
                    .iter()
                    .map(|b| {
                        crate::read::drop_deleted_rows(b, |stream, seq| {
                            deleted.get(stream).is_some_and(|&below| seq < below)
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            let level = inputs.iter().map(|s| s.level).max().unwrap_or(0) + 1;
            let (outputs, fields) = self
                .write_segments(gid, batches, cfg.compaction_zstd_level, level)
                .await?;
            let now = self.now_ms();
            let committed = {
                let mut st = self.inner.shared.lock();
                let current = st.manifest.segments.get(&gid);
                let all_present =
                    current.is_some_and(|c| inputs.iter().all(|i| c.iter().any(|s| s.id == i.id)));
                if all_present {
                    let list = st.manifest.segments.entry(gid).or_default();
                    list.retain(|s| !inputs.iter().any(|i| i.id == s.id));
                    list.extend(outputs.iter().cloned());
                    list.sort_by_key(|m| (m.window_start_ms, m.id));
                    merge_fields(st.manifest.fields.entry(gid).or_default(), &fields);
                    let due = now + cfg.gc_grace_ms;
                    st.pending_deletes
                        .extend(inputs.iter().map(|i| PendingDelete {
                            due_ms: due,
                            path: i.path.clone(),
                            checkpoints_without: 0,
                        }));
                } else {
                    // Retention or deletion removed an input meanwhile: drop our output.
                    st.pending_deletes
                        .extend(outputs.iter().map(|o| PendingDelete {
                            due_ms: now,
                            path: o.path.clone(),
                            checkpoints_without: PendingDelete::SAFE_AFTER_CHECKPOINTS,
                        }));
                }
                all_present
            };
            if committed {
                replaced += inputs.len();
            }
            self.persist_checkpoint().await?;
        }
        Ok(replaced)
    }

    /// Drops segments entirely older than their group's retention. Returns how many.
    pub async fn enforce_retention(&self) -> Result<usize> {
        if !self.may_maintain() {
            return Ok(0);
        }
        if self.inner.config.shared.is_some() {
            self.require_current_checkpoint().await?;
        }
        let _m = self.inner.maintenance.lock().await;
        let now = self.now_ms();
        let grace = self.inner.config.gc_grace_ms;
        let dropped = {
            let mut st = self.inner.shared.lock();
            let retention: Vec<(u64, i64)> = st
                .catalogue
                .groups
                .values()
                .filter_map(|g| {
                    g.retention_days
                        .map(|d| (g.id, now - i64::from(d) * 86_400_000))
                })
                .collect();
            let mut dropped = Vec::new();
            for (gid, cutoff) in retention {
                if let Some(list) = st.manifest.segments.get_mut(&gid) {
                    list.retain(|s| {
                        let expired = s.max_ts < cutoff;
                        if expired {
                            dropped.push(s.path.clone());
                        }
                        !expired
                    });
                }
            }
            st.pending_deletes
                .extend(dropped.iter().map(|p| PendingDelete {
                    due_ms: now + grace,
                    path: p.clone(),
                    checkpoints_without: 0,
                }));
            dropped.len()
        };
        if dropped > 0 {
            tracing::info!(segments = dropped, "retention dropped expired segments");
            self.persist_checkpoint().await?;
        }
        Ok(dropped)
    }

    /// Deletes objects dropped from a durable checkpoint whose grace period is over.
    pub async fn collect_garbage(&self) -> Result<usize> {
        if !self.may_maintain() {
            return Ok(0);
        }
        let _m = self.inner.maintenance.lock().await;
        let now = self.now_ms();
        let due: Vec<String> = {
            let st = self.inner.shared.lock();
            st.pending_deletes
                .iter()
                .filter(|d| d.is_safe() && d.due_ms <= now)
                .map(|d| d.path.clone())
                .collect()
        };
        for p in &due {
            self.inner
                .storage
                .delete(&object_store::path::Path::from(p.as_str()))
                .await?;
        }
        self.inner
            .shared
            .lock()
            .pending_deletes
            .retain(|d| !(d.is_safe() && d.due_ms <= now));
        Ok(due.len())
    }

    /// At start: deletes segment objects neither the checkpoint nor the previous one (the
    /// fallback) references — written by a flush or compaction that crashed before its
    /// checkpoint, or a write staged under a temporary name.
    pub(crate) async fn sweep_orphans(&self) -> Result<usize> {
        let known = {
            let st = self.inner.shared.lock();
            let mut known = st.manifest.paths();
            known.extend(st.pending_deletes.iter().map(|d| d.path.clone()));
            known
        };
        let mut n = 0;
        for obj in self.inner.storage.list(&paths::segments_root()).await? {
            if !known.contains(obj.location.as_ref()) {
                self.inner.storage.delete(&obj.location).await?;
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(
                objects = n,
                "deleted segments left by an interrupted flush or compaction"
            );
        }
        Ok(n)
    }
}

/// The rows of a group's memory as batches (converting what is still pending).
async fn materialise(gm: &GroupMem, known: &GroupFields) -> Result<Vec<RecordBatch>> {
    let mut batches = gm.batches.clone();
    if !gm.pending.is_empty() {
        let pending = gm.pending.clone();
        let known = known.clone();
        let (b, _) = tokio::task::spawn_blocking(move || chunks_to_batch(&pending, &known))
            .await
            .map_err(join_err)??;
        batches.push(b);
    }
    Ok(batches)
}

/// Removes field columns that are null in every row (system columns always stay).
fn drop_null_columns(b: &RecordBatch) -> Result<RecordBatch> {
    let keep: Vec<usize> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            schema::SYSTEM_COLUMNS.contains(&f.name().as_str())
                || b.column(*i).null_count() < b.num_rows()
        })
        .map(|(i, _)| i)
        .collect();
    if keep.len() == b.num_columns() {
        return Ok(b.clone());
    }
    b.project(&keep).map_err(|e| StoreError::Arrow {
        context: "drop empty columns".into(),
        source: e,
    })
}
