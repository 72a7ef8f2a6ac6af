//! The metric store: an in-memory head fed by ingest, flushed into immutable per-tier,
//! per-partition segment files, compacted size-tiered, pruned by retention.
//!
//! Durability is delegated to the server's write-ahead log: every ingest call carries the
//! WAL sequence number of its batch, the manifest records the highest sequence number whose
//! datapoints are in segment files (`persisted_seq`), and the WAL must not drop batches above
//! it. After a crash the server replays its WAL through [`MetricStore::ingest`] again; batches
//! at or below the high-water mark are skipped, so replay never counts a sample twice.

use crate::MetricsError;
use crate::block::BlockData;
use crate::cache::BlockCache;
use crate::labels::PROMETHEUS_NAMESPACE;
use crate::manifest::{self, Manifest, SegmentMeta, SeriesFileMeta};
use crate::query::{MetricQuery, QueryResult, SeriesValues};
use crate::samples::SampleSeries;
use crate::segment::{Segment, SegmentWriter};
use crate::series::{
    CardinalityStats, Registry, Resolve, SeriesInfo, SeriesKey, SeriesSelector, SeriesUsage,
};
use crate::snapshot::{self, MetricSnapshot, SharedPins};
use crate::statistic::{SlotSummary, Statistic};
use crate::tier::{Retention, Tier, tier_for};
use kinsight_model::LogEvent;
use kinsight_model::durable;
use kinsight_model::emf::{self, Datapoint};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct MetricStoreConfig {
    /// Cardinality guards: distinct series per namespace, and in all (issue 15, item 12).
    pub max_series_per_namespace: usize,
    pub max_series: usize,
    pub retention: Retention,
    /// Decoded-block cache budget.
    pub block_cache_bytes: usize,
    /// [`MetricStore::maintain`] flushes the head when it is this old…
    pub flush_interval_ms: u64,
    /// …or this large.
    pub flush_head_bytes: usize,
    /// Size-tiered compaction merges this many similar-sized segments of one partition.
    pub compaction_fan_in: usize,
    /// Most periods × series in one query answer.
    pub max_query_datapoints: usize,
}

impl Default for MetricStoreConfig {
    fn default() -> Self {
        MetricStoreConfig {
            max_series_per_namespace: 100_000,
            max_series: 150_000,
            retention: Retention::default(),
            block_cache_bytes: 256 << 20,
            flush_interval_ms: 30_000,
            flush_head_bytes: 64 << 20,
            compaction_fan_in: 4,
            max_query_datapoints: 10_000_000,
        }
    }
}

/// What one ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// The batch's sequence number was at or below the high-water mark: nothing was done.
    pub skipped: bool,
    pub datapoints: u64,
    pub samples: u64,
    /// Datapoints refused by the cardinality guard.
    pub rejected: u64,
    /// Events whose EMF directive was malformed (only for [`MetricStore::ingest_events`]).
    pub emf_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub series: usize,
    pub head_samples: usize,
    pub segments: usize,
    pub segment_bytes: u64,
    pub persisted_seq: Option<u64>,
    pub ingested_seq: Option<u64>,
    pub cache_bytes: usize,
    pub samples_ingested: u64,
    pub emf_errors: u64,
    pub cardinality: Vec<CardinalityStats>,
    pub series_usage: SeriesUsage,
}

/// What [`MetricStore::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    pub flushed: bool,
    pub compactions: usize,
    pub segments_expired: usize,
}

struct Head {
    tiers: [HashMap<u32, BlockData>; 3],
    bytes: usize,
    samples: usize,
    max_seq: Option<u64>,
    created: Instant,
}

impl Head {
    fn new() -> Head {
        Head {
            tiers: [HashMap::new(), HashMap::new(), HashMap::new()],
            bytes: 0,
            samples: 0,
            max_seq: None,
            created: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.samples == 0
    }

    fn tier(&self, t: Tier) -> &HashMap<u32, BlockData> {
        &self.tiers[t.code() as usize]
    }

    /// One sample into the raw tier and its minute and hour rollups.
    fn push(&mut self, id: u32, t: i64, v: f64) {
        let [raw, min, hr] = &mut self.tiers;
        raw.entry(id)
            .or_insert_with(|| BlockData::empty(Tier::Raw))
            .push_raw(t, v);
        let mut new_rows = 0;
        for (tier, blocks) in [(Tier::Minute, min), (Tier::Hour, hr)] {
            let b = blocks.entry(id).or_insert_with(|| BlockData::empty(tier));
            let before = b.rows();
            b.add_to_bucket(tier.bucket_of(t), v);
            new_rows += b.rows() - before;
        }
        self.bytes += 16 + 40 * new_rows;
        self.samples += 1;
    }

    /// The newest raw sample of series `id` in this head, as (timestamp, value bits).
    fn last_raw(&self, id: u32) -> Option<(i64, u64)> {
        match self.tier(Tier::Raw).get(&id)? {
            BlockData::Raw { ts, vals } => Some((*ts.last()?, vals.last()?.to_bits())),
            BlockData::Agg { .. } => None,
        }
    }

    /// A value the rollups must not see (NaN, a staleness marker): raw tier only.
    fn push_raw_only(&mut self, id: u32, t: i64, v: f64) {
        self.tiers[Tier::Raw.code() as usize]
            .entry(id)
            .or_insert_with(|| BlockData::empty(Tier::Raw))
            .push_raw(t, v);
        self.bytes += 16;
        self.samples += 1;
    }
}

/// The series id of a key, `None` when the cardinality guard refuses a new series.
fn resolve(
    registry: &mut Registry,
    namespace: &str,
    name: &str,
    dims: &BTreeMap<String, String>,
    unit: Option<&str>,
) -> Option<u32> {
    match registry.resolve(namespace, name, dims, unit) {
        Resolve::Known(id) | Resolve::Created(id) => Some(id),
        Resolve::Rejected => None,
    }
}

struct State {
    registry: Registry,
    head: Head,
    /// The head being written by a flush; still visible to queries until its segments are.
    frozen: Option<Arc<Head>>,
    segments: Vec<Arc<Segment>>,
    manifest: Manifest,
    /// Highest sequence number applied to memory (≥ persisted).
    high_seq: Option<u64>,
    /// Series ids below this are in series files.
    series_persisted: u32,
}

pub struct MetricStore {
    dir: PathBuf,
    config: MetricStoreConfig,
    state: RwLock<State>,
    /// Serialises flush, compaction and retention: the only writers of the manifest.
    maintenance: Mutex<()>,
    cache: BlockCache,
    samples_ingested: AtomicU64,
    emf_errors: AtomicU64,
    /// Files held by live [`MetricSnapshot`]s: compaction and retention defer their deletion.
    pins: SharedPins,
}

impl MetricStore {
    /// Opens (or creates) the store in `dir`: reads the manifest, the series files and every
    /// listed segment's index, and deletes files a crash left behind (temporary files,
    /// segments not in the manifest).
    pub fn open(
        dir: impl AsRef<Path>,
        config: MetricStoreConfig,
    ) -> Result<MetricStore, MetricsError> {
        let dir = dir.as_ref().to_path_buf();
        for sub in [
            dir.clone(),
            dir.join("series"),
            dir.join("segments").join("raw"),
            dir.join("segments").join("minute"),
            dir.join("segments").join("hour"),
        ] {
            durable::create_dir_all(&sub).map_err(manifest::durable_error)?;
        }
        let manifest = Manifest::load(&dir)?.unwrap_or_default();
        let mut registry = Registry::new(config.max_series_per_namespace, config.max_series);
        let segments = load_committed(&dir, &manifest, &mut registry)?;
        remove_orphans(&dir, &manifest)?;
        let series_persisted = registry.len() as u32;
        let high_seq = manifest.persisted_seq;
        Ok(MetricStore {
            cache: BlockCache::new(config.block_cache_bytes),
            dir,
            config,
            state: RwLock::new(State {
                registry,
                head: Head::new(),
                frozen: None,
                segments,
                manifest,
                high_seq,
                series_persisted,
            }),
            maintenance: Mutex::new(()),
            samples_ingested: AtomicU64::new(0),
            emf_errors: AtomicU64::new(0),
            pins: SharedPins::default(),
        })
    }

    /// The committed state as of the current manifest, for another server to restore with
    /// [`restore_snapshot`](crate::restore_snapshot): the manifest's bytes, its
    /// `persisted_seq`, and every file it lists (series files and segments). Data ingested
    /// but not yet flushed is not in it. `None` when nothing was ever flushed.
    ///
    /// The listed files stay on disk while the returned value lives: compaction and retention
    /// still drop them from the manifest, but defer deleting them until the last snapshot
    /// holding them is dropped (then the drop deletes them; a crash before leaves them
    /// unlisted, and the next open deletes them). Cheap: no I/O, one short read lock.
    pub fn snapshot(&self) -> Result<Option<MetricSnapshot>, MetricsError> {
        // Pinned under the state lock: a compaction or retention that removes these files
        // from the manifest updates the state under the write lock before deleting, so it
        // either ran before (and this manifest no longer lists them) or sees the pins.
        let st = self.read();
        MetricSnapshot::new(&self.dir, &st.manifest, &self.pins)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Highest WAL sequence number whose datapoints are durable in the store's own files.
    /// The WAL may drop batches up to it.
    pub fn persisted_seq(&self) -> Option<u64> {
        self.read().manifest.persisted_seq
    }

    /// Highest sequence number applied (in memory or on disk).
    pub fn ingested_seq(&self) -> Option<u64> {
        self.read().high_seq
    }

    /// Adds the datapoints of the batch with WAL sequence number `seq`. Idempotent: a batch
    /// at or below the high-water mark is skipped, so calls must come in increasing `seq`
    /// order — as live ingest and WAL replay both do.
    pub fn ingest(&self, seq: u64, points: &[Datapoint]) -> IngestOutcome {
        self.ingest_record(seq, |registry, head, out| {
            for dp in points {
                let unit = dp.unit.as_deref();
                let Some(id) = resolve(registry, &dp.namespace, &dp.name, &dp.dimensions, unit)
                else {
                    out.rejected += 1;
                    continue;
                };
                out.datapoints += 1;
                for &v in &dp.values {
                    // JSON numbers are finite; anything else would poison sums forever.
                    if v.is_finite() {
                        head.push(id, dp.timestamp_ms, v);
                        out.samples += 1;
                    }
                }
            }
        })
    }

    /// Adds the Prometheus-model samples of the WAL record `seq` (remote write, OTLP —
    /// [`crate::samples`]) to the `Prometheus` namespace, under the same idempotence rule as
    /// [`Self::ingest`]. Values are kept bit for bit in the raw tier — NaN and staleness
    /// markers included, for PromQL — and only finite ones enter the rollups.
    pub fn ingest_samples(&self, seq: u64, series: &[SampleSeries]) -> IngestOutcome {
        self.ingest_record(seq, |registry, head, out| {
            for s in series {
                let n = s.samples.len() as u64;
                let Some(id) = resolve(registry, PROMETHEUS_NAMESPACE, &s.name, &s.labels, None)
                else {
                    out.rejected += n;
                    continue;
                };
                out.datapoints += n;
                for &(t, v) in &s.samples {
                    // A client's resend of the newest sample (the order gate lets it through
                    // so that it is durable with the request that acknowledges it).
                    if head.last_raw(id) == Some((t, v.to_bits())) {
                        continue;
                    }
                    out.samples += 1;
                    if v.is_finite() {
                        head.push(id, t, v);
                    } else {
                        head.push_raw_only(id, t, v);
                    }
                }
            }
        })
    }

    /// The frame of every ingest: skip a record at or below the high-water mark, else let
    /// `add` fill the head under the write lock, then advance the mark.
    fn ingest_record(
        &self,
        seq: u64,
        add: impl FnOnce(&mut Registry, &mut Head, &mut IngestOutcome),
    ) -> IngestOutcome {
        let mut st = self.write();
        let mut out = IngestOutcome::default();
        if st.high_seq.is_some_and(|h| seq <= h) {
            out.skipped = true;
            return out;
        }
        let State { registry, head, .. } = &mut *st;
        add(registry, head, &mut out);
        head.max_seq = Some(seq);
        st.high_seq = Some(seq);
        self.samples_ingested
            .fetch_add(out.samples, Ordering::Relaxed);
        out
    }

    /// Extracts the EMF datapoints of a batch of log events (both EMF layouts, reference §1.2)
    /// and ingests them. Events without a directive are ignored; malformed directives are
    /// counted, never fatal — the event itself is already stored as a log.
    pub fn ingest_events(&self, seq: u64, events: &[LogEvent]) -> IngestOutcome {
        let mut points = Vec::new();
        let mut errors = 0;
        for e in events {
            match emf::extract_from_message(&e.message, e.timestamp) {
                Ok(Some(p)) => points.extend(p),
                Ok(None) => {}
                Err(err) => {
                    errors += 1;
                    tracing::debug!(group = %e.log_group_name, stream = %e.log_stream_name, "EMF directive ignored: {err}");
                }
            }
        }
        self.emf_errors.fetch_add(errors, Ordering::Relaxed);
        let mut out = self.ingest(seq, &points);
        out.emf_errors = errors;
        out
    }

    /// Writes everything ingested so far into segment files and advances `persisted_seq`.
    /// Ingest and queries continue meanwhile. Returns the new `persisted_seq`.
    pub fn flush(&self) -> Result<Option<u64>, MetricsError> {
        let _m = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let (frozen, new_series, first_new_id, mut next_gen, mut manifest) = {
            let mut st = self.write();
            if st.head.is_empty() && st.head.max_seq.is_none() {
                return Ok(st.manifest.persisted_seq);
            }
            let head = std::mem::replace(&mut st.head, Head::new());
            let frozen = Arc::new(head);
            st.frozen = Some(frozen.clone());
            let first = st.series_persisted;
            let new_series: Vec<SeriesInfo> = st.registry.all()[first as usize..].to_vec();
            (
                frozen,
                new_series,
                first,
                st.manifest.next_gen,
                st.manifest.clone(),
            )
        };
        let result = self.write_flush(
            &frozen,
            &new_series,
            first_new_id,
            &mut next_gen,
            &mut manifest,
        );
        let mut st = self.write();
        st.frozen = None;
        match result {
            Ok(new_segments) => {
                st.segments.extend(new_segments);
                st.series_persisted = first_new_id + new_series.len() as u32;
                st.manifest = manifest;
                Ok(st.manifest.persisted_seq)
            }
            Err(e) => {
                // Put the data back so that nothing ingested is lost and the next flush
                // retries; the head that grew meanwhile is merged into it.
                let frozen = Arc::try_unwrap(frozen).unwrap_or_else(|a| clone_head(&a));
                let newer = std::mem::replace(&mut st.head, frozen);
                merge_head(&mut st.head, newer);
                st.manifest.next_gen = next_gen.max(st.manifest.next_gen);
                Err(e)
            }
        }
    }

    fn write_flush(
        &self,
        frozen: &Head,
        new_series: &[SeriesInfo],
        first_new_id: u32,
        next_gen: &mut u64,
        manifest: &mut Manifest,
    ) -> Result<Vec<Arc<Segment>>, MetricsError> {
        if !new_series.is_empty() {
            let generation = *next_gen;
            *next_gen += 1;
            manifest::write_series_file(&self.dir, generation, new_series)?;
            manifest.series_files.push(SeriesFileMeta {
                generation,
                first_id: first_new_id,
                count: new_series.len() as u32,
            });
        }
        let mut out = Vec::new();
        for tier in Tier::ALL {
            // partition → series → block, ordered so segment indexes come out sorted.
            let mut parts: BTreeMap<i64, BTreeMap<u32, BlockData>> = BTreeMap::new();
            for (id, block) in frozen.tier(tier) {
                for (p, mut b) in block.split_by_partition(tier) {
                    b.normalize();
                    parts.entry(p).or_default().insert(*id, b);
                }
            }
            for (p, blocks) in parts {
                let generation = *next_gen;
                *next_gen += 1;
                let mut w = SegmentWriter::create(
                    &manifest::segment_path(&self.dir, tier, generation),
                    tier,
                    p,
                )?;
                for (id, b) in &blocks {
                    w.add(*id, b)?;
                }
                let seg = w.finish(generation)?;
                manifest.segments.push(SegmentMeta {
                    generation,
                    tier,
                    partition_start_ms: p,
                });
                out.push(Arc::new(seg));
            }
        }
        for tier in Tier::ALL {
            manifest::sync_dir(&self.dir.join("segments").join(tier.as_str()))?;
        }
        manifest.next_gen = *next_gen;
        if frozen.max_seq > manifest.persisted_seq {
            manifest.persisted_seq = frozen.max_seq;
        }
        manifest.store(&self.dir)?;
        Ok(out)
    }

    /// Flushes when the head is old or large enough, compacts, applies retention. The
    /// server calls this every few seconds from a blocking task.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, MetricsError> {
        let mut report = MaintenanceReport::default();
        let due = {
            let st = self.read();
            let h = &st.head;
            (!h.is_empty() || h.max_seq > st.manifest.persisted_seq)
                && (h.bytes >= self.config.flush_head_bytes
                    || h.created.elapsed().as_millis() as u64 >= self.config.flush_interval_ms)
        };
        if due {
            self.flush()?;
            report.flushed = true;
        }
        report.compactions = self.compact(now_ms)?;
        report.segments_expired = self.apply_retention(now_ms)?;
        Ok(report)
    }

    /// Size-tiered compaction per (tier, partition): segments of similar size are merged in
    /// groups of `compaction_fan_in`; a partition that ended more than an hour ago is merged
    /// into one file. Returns the number of merges.
    pub fn compact(&self, now_ms: i64) -> Result<usize, MetricsError> {
        let _m = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let mut merges = 0;
        loop {
            let segments = self.read().segments.clone();
            let Some(group) =
                pick_compaction(&segments, now_ms, self.config.compaction_fan_in.max(2))
            else {
                break;
            };
            self.merge(group)?;
            merges += 1;
        }
        Ok(merges)
    }

    fn merge(&self, inputs: Vec<Arc<Segment>>) -> Result<(), MetricsError> {
        let tier = inputs[0].tier;
        let partition = inputs[0].partition_start;
        let mut manifest = self.read().manifest.clone();
        let generation = manifest.next_gen;
        manifest.next_gen += 1;
        let ids: BTreeSet<u32> = inputs
            .iter()
            .flat_map(|s| s.entries().iter().map(|e| e.series))
            .collect();
        let mut w = SegmentWriter::create(
            &manifest::segment_path(&self.dir, tier, generation),
            tier,
            partition,
        )?;
        for id in ids {
            let mut merged = BlockData::empty(tier);
            // Inputs are in generation order, so raw samples keep their arrival order.
            for s in &inputs {
                if let Some(e) = s.entry(id) {
                    merged.extend(&s.read_block(e)?);
                }
            }
            merged.normalize();
            w.add(id, &merged)?;
        }
        let seg = Arc::new(w.finish(generation)?);
        manifest::sync_dir(&self.dir.join("segments").join(tier.as_str()))?;
        let gone: Vec<u64> = inputs.iter().map(|s| s.generation).collect();
        manifest.segments.retain(|m| !gone.contains(&m.generation));
        manifest.segments.push(SegmentMeta {
            generation,
            tier,
            partition_start_ms: partition,
        });
        manifest.store(&self.dir)?;
        {
            let mut st = self.write();
            st.segments.retain(|s| !gone.contains(&s.generation));
            st.segments.push(seg);
            st.manifest.segments = manifest.segments;
            st.manifest.next_gen = manifest.next_gen;
        }
        self.cache.forget_generations(&gone);
        // The manifest no longer lists them; a snapshot may still be uploading them.
        snapshot::remove_or_defer(&self.pins, inputs.iter().map(|s| s.path.as_path()));
        Ok(())
    }

    /// Deletes segments whose whole partition is older than the tier's retention.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, MetricsError> {
        let _m = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<Arc<Segment>> = self
            .read()
            .segments
            .iter()
            .filter(|s| {
                s.partition_start + s.tier.partition_ms()
                    <= now_ms - self.config.retention.of(s.tier)
            })
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let gone: Vec<u64> = expired.iter().map(|s| s.generation).collect();
        let mut manifest = self.read().manifest.clone();
        manifest.segments.retain(|m| !gone.contains(&m.generation));
        manifest.store(&self.dir)?;
        {
            let mut st = self.write();
            st.segments.retain(|s| !gone.contains(&s.generation));
            st.manifest.segments = manifest.segments;
        }
        self.cache.forget_generations(&gone);
        snapshot::remove_or_defer(&self.pins, expired.iter().map(|s| s.path.as_path()));
        Ok(expired.len())
    }

    /// Metrics matching a selector (ListMetrics), in key order, at most `limit`.
    pub fn list_metrics(&self, selector: &SeriesSelector, limit: usize) -> Vec<SeriesInfo> {
        let st = self.read();
        st.registry
            .select(selector)
            .into_iter()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Series matching a selector, without limit.
    pub fn find_series(&self, selector: &SeriesSelector) -> Vec<SeriesInfo> {
        self.list_metrics(selector, usize::MAX)
    }

    /// Runs a metric query: one statistic per aligned period for every matching series.
    pub fn query(&self, q: &MetricQuery) -> Result<QueryResult, MetricsError> {
        let (start, period_ms, n) = q.plan().map_err(MetricsError::InvalidQuery)?;
        let (selected, truncated) = {
            let st = self.read();
            let all = st.registry.select(&q.selector);
            let truncated = all.len() > q.max_series;
            let v: Vec<SeriesInfo> = all.into_iter().take(q.max_series).cloned().collect();
            (v, truncated)
        };
        if selected.len().saturating_mul(n) > self.config.max_query_datapoints {
            return Err(MetricsError::InvalidQuery(format!(
                "{} series × {n} periods exceeds the limit of {} datapoints per query — narrow the dimensions, shorten the range or use a longer period",
                selected.len(),
                self.config.max_query_datapoints
            )));
        }
        let needs_samples = q.statistic.is_extended();
        let tier = tier_for(period_ms, start, needs_samples);
        // Series are independent: decode and aggregate them on every core. A first query
        // after a restart decodes every block it touches, so this is most of its time.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
            .min(selected.len().div_ceil(64))
            .max(1);
        let chunk = selected.len().div_ceil(threads).max(1);
        let one = |info: &SeriesInfo| -> Result<SeriesValues, MetricsError> {
            let values = match q.statistic {
                Statistic::Percentile(p) => self.percentile_id(info.id, start, period_ms, n, p)?,
                stat => self.statistic_id(info.id, start, period_ms, n, stat)?,
            };
            Ok(SeriesValues {
                values,
                key: info.key.clone(),
                unit: info.unit.clone(),
            })
        };
        let parts: Vec<Result<Vec<SeriesValues>, MetricsError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = selected
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(one).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(MetricsError::InvalidQuery("a query worker panicked".into()))
                    })
                })
                .collect()
        });
        let mut series = Vec::with_capacity(selected.len());
        for p in parts {
            series.extend(p?);
        }
        let mut messages = Vec::new();
        let raw_horizon = now_ms() - self.config.retention.raw_ms;
        if needs_samples && start < raw_horizon {
            messages.push(format!(
                "percentiles are computed from raw samples, which are kept {} days; earlier periods have no value",
                self.config.retention.raw_ms / crate::tier::DAY_MS
            ));
        }
        Ok(QueryResult {
            statistic: q.statistic,
            period_s: q.period_s,
            timestamps: (0..n as i64).map(|i| start + i * period_ms).collect(),
            series,
            tier,
            truncated,
            messages,
        })
    }

    /// Per-period summaries of one series over `n` periods of `period_ms` starting at
    /// `start_ms` (any alignment: alarms slide their window by the minute). Keeps the samples
    /// when `keep_samples` (percentiles). An unknown series gives empty periods — an alarm
    /// may be created before its metric exists (reference §6.1).
    pub fn aggregate(
        &self,
        key: &SeriesKey,
        start_ms: i64,
        period_ms: i64,
        n: usize,
        keep_samples: bool,
    ) -> Result<Vec<SlotSummary>, MetricsError> {
        let id = self
            .read()
            .registry
            .lookup(&key.namespace, &key.name, &key.dimensions);
        match id {
            Some(id) => self.aggregate_id(id, start_ms, period_ms, n, keep_samples),
            None => Ok(vec![SlotSummary::default(); n]),
        }
    }

    /// Every registered series, under the state's read lock (the PromQL read path,
    /// [`crate::labels`]).
    pub(crate) fn with_series<R>(&self, f: impl FnOnce(&[SeriesInfo]) -> R) -> R {
        f(self.read().registry.all())
    }

    /// Whether a datapoint of this series would be stored now rather than refused by the
    /// cardinality guard (remote write and OTLP refuse such samples in their answer).
    pub fn admits_series(
        &self,
        namespace: &str,
        name: &str,
        dims: &BTreeMap<String, String>,
    ) -> bool {
        self.read().registry.admits(namespace, name, dims)
    }

    /// How long raw samples are kept (`MetricStoreConfig::retention`).
    pub fn raw_retention_ms(&self) -> i64 {
        self.config.retention.raw_ms
    }

    /// The newest raw sample of a series (the last stored of its newest timestamp), if the
    /// raw tier still holds any: what remote write's order rule compares with
    /// ([`crate::remote_write::OrderGate`]).
    pub fn newest_raw_sample(
        &self,
        namespace: &str,
        name: &str,
        dims: &BTreeMap<String, String>,
    ) -> Result<Option<(i64, f64)>, MetricsError> {
        let (id, newest) = {
            let st = self.read();
            let Some(id) = st.registry.lookup(namespace, name, dims) else {
                return Ok(None);
            };
            let in_head = |h: &Head| {
                h.tier(Tier::Raw)
                    .get(&id)
                    .and_then(|b| b.ts().iter().copied().max())
            };
            let newest = [in_head(&st.head), st.frozen.as_deref().and_then(in_head)]
                .into_iter()
                .flatten()
                .chain(
                    st.segments
                        .iter()
                        .filter(|s| s.tier == Tier::Raw)
                        .filter_map(|s| s.entry(id).map(|e| e.max_ts)),
                )
                .max();
            (id, newest)
        };
        let Some(t) = newest else { return Ok(None) };
        Ok(self.raw_samples(id, t, t)?.last().copied())
    }

    /// For each of `ids`, whether it may have raw samples in `[start, end)`: rows of the
    /// heads (exact), or a raw segment whose index gives the series rows from before `end`
    /// to at or after `start` (a day partition's min and max, not its gaps). One read lock.
    pub(crate) fn raw_overlapping_impl(&self, ids: &[u32], start: i64, end: i64) -> Vec<bool> {
        let st = self.read();
        let segments: Vec<&Arc<Segment>> = st
            .segments
            .iter()
            .filter(|s| s.tier == Tier::Raw && s.min_ts < end && s.max_ts >= start)
            .collect();
        let in_head = |h: &Head, id: u32| {
            h.tier(Tier::Raw)
                .get(&id)
                .is_some_and(|b| b.ts().iter().any(|t| *t >= start && *t < end))
        };
        ids.iter()
            .map(|&id| {
                in_head(&st.head, id)
                    || st.frozen.as_ref().is_some_and(|f| in_head(f, id))
                    || segments.iter().any(|s| {
                        s.entry(id)
                            .is_some_and(|e| e.min_ts < end && e.max_ts >= start)
                    })
            })
            .collect()
    }

    /// The blocks holding rows of series `id` in `tier` within `[start, end)`: segment blocks
    /// (decoded through the cache, sorted) and the frozen and live heads (unsorted). Taken as
    /// one consistent snapshot — under one read lock — so a concurrent flush can neither hide
    /// nor double rows.
    pub(crate) fn blocks(
        &self,
        id: u32,
        tier: Tier,
        start: i64,
        end: i64,
    ) -> Result<Vec<(Arc<BlockData>, bool)>, MetricsError> {
        let (head_block, frozen_block, segments) = {
            let st = self.read();
            let head_block = st.head.tier(tier).get(&id).cloned();
            let frozen_block = st
                .frozen
                .as_ref()
                .and_then(|f| f.tier(tier).get(&id).cloned());
            let segments: Vec<Arc<Segment>> = st
                .segments
                .iter()
                .filter(|s| {
                    s.tier == tier
                        && s.min_ts < end
                        && s.max_ts >= start
                        && s.partition_start < end
                        && s.partition_start + tier.partition_ms() > start
                        && s.entry(id)
                            .is_some_and(|e| e.min_ts < end && e.max_ts >= start)
                })
                .cloned()
                .collect();
            (head_block, frozen_block, segments)
        };
        let mut out = Vec::with_capacity(segments.len() + 2);
        for seg in &segments {
            let Some(e) = seg.entry(id) else { continue };
            let block = match self.cache.get((seg.generation, id)) {
                Some(b) => b,
                None => {
                    let b = Arc::new(seg.read_block(e)?);
                    self.cache.insert((seg.generation, id), b.clone());
                    b
                }
            };
            out.push((block, true));
        }
        out.extend(frozen_block.into_iter().map(|b| (Arc::new(b), false)));
        out.extend(head_block.into_iter().map(|b| (Arc::new(b), false)));
        Ok(out)
    }

    fn aggregate_id(
        &self,
        id: u32,
        start: i64,
        period_ms: i64,
        n: usize,
        keep: bool,
    ) -> Result<Vec<SlotSummary>, MetricsError> {
        if period_ms <= 0 {
            return Err(MetricsError::InvalidQuery("period must be positive".into()));
        }
        let tier = tier_for(period_ms, start, keep);
        let end = start.saturating_add(period_ms.saturating_mul(n as i64));
        let mut slots = vec![SlotSummary::default(); n];
        for (b, sorted) in self.blocks(id, tier, start, end)? {
            let rows = if sorted {
                b.range(start, end)
            } else {
                0..b.rows()
            };
            match &*b {
                BlockData::Raw { ts, vals } => {
                    for i in rows {
                        // NaN and staleness markers (remote write) are PromQL's, not statistics'.
                        if ts[i] >= start && ts[i] < end && vals[i].is_finite() {
                            let slot = ((ts[i] - start) / period_ms) as usize;
                            slots[slot].add_value(vals[i], keep);
                        }
                    }
                }
                BlockData::Agg { ts, aggs } => {
                    for i in rows {
                        if ts[i] >= start && ts[i] < end {
                            let slot = ((ts[i] - start) / period_ms) as usize;
                            slots[slot].add_agg(&aggs[i]);
                        }
                    }
                }
            }
        }
        Ok(slots)
    }

    /// A non-percentile statistic per period, accumulated in compact (count, sum, min, max)
    /// cells: the query path of dashboards, kept lean.
    fn statistic_id(
        &self,
        id: u32,
        start: i64,
        period_ms: i64,
        n: usize,
        stat: Statistic,
    ) -> Result<Vec<Option<f64>>, MetricsError> {
        let tier = tier_for(period_ms, start, false);
        let end = start.saturating_add(period_ms.saturating_mul(n as i64));
        let empty = crate::statistic::Agg {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        };
        let mut cells = vec![empty; n];
        for (b, sorted) in self.blocks(id, tier, start, end)? {
            let rows = if sorted {
                b.range(start, end)
            } else {
                0..b.rows()
            };
            match &*b {
                BlockData::Raw { ts, vals } => {
                    for i in rows {
                        if ts[i] >= start && ts[i] < end && vals[i].is_finite() {
                            cells[((ts[i] - start) / period_ms) as usize].add(vals[i]);
                        }
                    }
                }
                BlockData::Agg { ts, aggs } => {
                    for i in rows {
                        if ts[i] >= start && ts[i] < end {
                            cells[((ts[i] - start) / period_ms) as usize].merge(&aggs[i]);
                        }
                    }
                }
            }
        }
        Ok(cells
            .iter()
            .map(|c| {
                (c.count > 0).then(|| match stat {
                    Statistic::SampleCount => c.count as f64,
                    Statistic::Average => c.sum / c.count as f64,
                    Statistic::Sum => c.sum,
                    Statistic::Minimum => c.min,
                    Statistic::Maximum => c.max,
                    Statistic::Percentile(_) => f64::NAN, // answered by percentile_id
                })
            })
            .collect())
    }

    /// Percentile `p` per period from raw samples, without a vector per period: count the
    /// samples of each period, scatter them into one flat array (a counting sort by period),
    /// then select the nearest-rank sample in place per period.
    fn percentile_id(
        &self,
        id: u32,
        start: i64,
        period_ms: i64,
        n: usize,
        p: f64,
    ) -> Result<Vec<Option<f64>>, MetricsError> {
        let end = start.saturating_add(period_ms.saturating_mul(n as i64));
        let blocks = self.blocks(id, Tier::Raw, start, end)?;
        let rows_of = |b: &BlockData, sorted: bool| {
            if sorted {
                b.range(start, end)
            } else {
                0..b.rows()
            }
        };
        let mut offsets = vec![0usize; n + 1];
        for (b, sorted) in &blocks {
            if let BlockData::Raw { ts, vals } = &**b {
                for i in rows_of(b, *sorted) {
                    if ts[i] >= start && ts[i] < end && vals[i].is_finite() {
                        offsets[((ts[i] - start) / period_ms) as usize + 1] += 1;
                    }
                }
            }
        }
        for k in 1..=n {
            offsets[k] += offsets[k - 1];
        }
        let mut flat = vec![0.0f64; offsets[n]];
        let mut fill = offsets.clone();
        for (b, sorted) in &blocks {
            if let BlockData::Raw { ts, vals } = &**b {
                for i in rows_of(b, *sorted) {
                    if ts[i] >= start && ts[i] < end && vals[i].is_finite() {
                        let slot = ((ts[i] - start) / period_ms) as usize;
                        flat[fill[slot]] = vals[i];
                        fill[slot] += 1;
                    }
                }
            }
        }
        Ok((0..n)
            .map(|k| {
                crate::statistic::nearest_rank_in_place(&mut flat[offsets[k]..offsets[k + 1]], p)
            })
            .collect())
    }

    pub fn stats(&self) -> StoreStats {
        let st = self.read();
        StoreStats {
            series: st.registry.len(),
            head_samples: st.head.samples,
            segments: st.segments.len(),
            segment_bytes: st.segments.iter().map(|s| s.size_bytes).sum(),
            persisted_seq: st.manifest.persisted_seq,
            ingested_seq: st.high_seq,
            cache_bytes: self.cache.bytes(),
            samples_ingested: self.samples_ingested.load(Ordering::Relaxed),
            emf_errors: self.emf_errors.load(Ordering::Relaxed),
            cardinality: st.registry.cardinality(),
            series_usage: st.registry.usage(),
        }
    }

    /// Counters of the cardinality guard, per namespace.
    pub fn cardinality(&self) -> Vec<CardinalityStats> {
        self.read().registry.cardinality()
    }

    /// How close the store-wide series cap is.
    pub fn series_usage(&self) -> SeriesUsage {
        self.read().registry.usage()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn clone_head(h: &Head) -> Head {
    Head {
        tiers: h.tiers.clone(),
        bytes: h.bytes,
        samples: h.samples,
        max_seq: h.max_seq,
        created: h.created,
    }
}

/// Appends `newer`'s rows to `into` (after a failed flush put the older head back).
fn merge_head(into: &mut Head, newer: Head) {
    for (i, tier) in newer.tiers.into_iter().enumerate() {
        for (id, b) in tier {
            into.tiers[i]
                .entry(id)
                .or_insert_with(|| BlockData::empty(Tier::ALL[i]))
                .extend(&b);
        }
    }
    into.bytes += newer.bytes;
    into.samples += newer.samples;
    into.max_seq = into.max_seq.max(newer.max_seq);
}

/// A partition that ended more than this long ago gets one file: late data is rare by then.
const CLOSED_GRACE_MS: i64 = crate::tier::HOUR_MS;
/// Size classes start here; smaller segments are all class 0.
const SIZE_CLASS_BASE: u64 = 64 << 10;

fn pick_compaction(
    segments: &[Arc<Segment>],
    now_ms: i64,
    fan_in: usize,
) -> Option<Vec<Arc<Segment>>> {
    let mut groups: BTreeMap<(Tier, i64), Vec<Arc<Segment>>> = BTreeMap::new();
    for s in segments {
        groups
            .entry((s.tier, s.partition_start))
            .or_default()
            .push(s.clone());
    }
    for ((tier, p), mut group) in groups {
        group.sort_by_key(|s| s.generation);
        let closed = p + tier.partition_ms() + CLOSED_GRACE_MS <= now_ms;
        if closed && group.len() > 1 {
            return Some(group);
        }
        let mut classes: BTreeMap<u32, Vec<Arc<Segment>>> = BTreeMap::new();
        for s in group {
            let ratio = (s.size_bytes / SIZE_CLASS_BASE).max(1);
            let class = ratio.ilog(fan_in as u64);
            classes.entry(class).or_default().push(s);
        }
        if let Some((_, members)) = classes.into_iter().find(|(_, m)| m.len() >= fan_in) {
            return Some(members);
        }
    }
    None
}

/// Reads the series files `m` lists into `registry` and opens the segments it lists, checking
/// each segment's header against the manifest.
pub(crate) fn load_committed(
    dir: &Path,
    m: &Manifest,
    registry: &mut Registry,
) -> Result<Vec<Arc<Segment>>, MetricsError> {
    for f in &m.series_files {
        for info in manifest::read_series_file(dir, f.generation)? {
            registry
                .restore(info)
                .map_err(|reason| MetricsError::Corrupt {
                    path: manifest::series_path(dir, f.generation),
                    reason,
                })?;
        }
    }
    let mut segments = Vec::with_capacity(m.segments.len());
    for s in &m.segments {
        let seg = Segment::open(
            &manifest::segment_path(dir, s.tier, s.generation),
            s.generation,
        )?;
        if seg.tier != s.tier || seg.partition_start != s.partition_start_ms {
            return Err(MetricsError::Corrupt {
                path: seg.path.clone(),
                reason: "segment header disagrees with the manifest".into(),
            });
        }
        segments.push(Arc::new(seg));
    }
    Ok(segments)
}

/// Removes what a crash may leave: temporary files and files the manifest does not list.
fn remove_orphans(dir: &Path, m: &Manifest) -> Result<(), MetricsError> {
    let mut keep: BTreeSet<PathBuf> = m
        .segments
        .iter()
        .map(|s| manifest::segment_path(dir, s.tier, s.generation))
        .collect();
    keep.extend(
        m.series_files
            .iter()
            .map(|f| manifest::series_path(dir, f.generation)),
    );
    for d in snapshot::store_subdirs(dir) {
        let entries = fs::read_dir(&d).map_err(|e| MetricsError::io(&d, e))?;
        for entry in entries {
            let path = entry.map_err(|e| MetricsError::io(&d, e))?.path();
            if !keep.contains(&path) {
                tracing::info!(path = %path.display(), "removing metric file not listed in the manifest (left by an interrupted flush or compaction)");
                let _ = fs::remove_file(&path);
            }
        }
    }
    let _ = fs::remove_file(durable::temp_path(&manifest::manifest_path(dir)));
    Ok(())
}
