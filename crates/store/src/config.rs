//! Store settings. Defaults suit one server on one machine; tests shrink the thresholds.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cardinality::CardinalityLimits;
use crate::clock::{Clock, SystemClock};
use crate::storage::ObjectStoreLocation;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Local directory: `wal/` and the lock file live here (always local disk).
    pub data_dir: PathBuf,
    /// Segments, checkpoint and dedup files. Default: `<data_dir>/objects`.
    pub object_store: ObjectStoreLocation,
    /// S3 settings applied over the `AWS_*` environment (keys as `object_store` names them:
    /// `aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, ...).
    pub s3_options: Vec<(String, String)>,
    pub clock: Arc<dyn Clock>,
    /// Length of a segment's time window.
    pub window_ms: i64,
    /// Flush memory to segments when unflushed messages reach this many bytes ...
    pub flush_bytes: usize,
    /// ... or when the oldest unflushed event arrived this long ago.
    pub flush_interval_ms: i64,
    /// Ingest waits (backpressure) while this many message bytes are not in segments yet ...
    pub max_unflushed_bytes: usize,
    /// ... for at most this long, then fails with `StoreError::Backpressure` (HTTP 503).
    pub backpressure_timeout_ms: u64,
    /// A WAL file is closed and a new one started beyond this size.
    pub wal_file_bytes: u64,
    /// Queue of batches waiting for the WAL thread.
    pub wal_queue: usize,
    /// How long batch ids are remembered for idempotent retries ...
    pub dedup_window_ms: i64,
    /// ... and at most how many.
    pub dedup_max_entries: usize,
    /// Segments smaller than this are merged with their window's other segments ...
    pub compaction_small_bytes: u64,
    /// ... as long as the merge reads at most this many message bytes into memory ...
    pub compaction_max_raw_bytes: u64,
    /// ... and, in a window still receiving events, once at least this many small segments
    /// piled up (a closed window merges any two).
    pub compaction_min_open_segments: usize,
    /// zstd level of flushed segments (fast) and of compacted ones (smaller).
    pub flush_zstd_level: i32,
    pub compaction_zstd_level: i32,
    /// Objects dropped from the manifest are deleted this much later, so a query that
    /// listed them before can still read them.
    pub gc_grace_ms: i64,
    /// Run the indexer, flusher, compactor and retention in background tasks. Tests that
    /// drive maintenance by hand turn this off.
    pub background: bool,
    /// Period of the indexer (JSON → columns of unflushed rows).
    pub index_interval_ms: u64,
    pub compaction_interval_ms: u64,
    pub retention_interval_ms: u64,
    /// Caps on the number of log groups and streams (issue 15, item 12).
    pub limits: CardinalityLimits,
    /// A replica of a replicated deployment (issue 16): the log lives in the object store,
    /// ordered by the PostgreSQL catalogue, instead of `wal/`. `None`: a single server.
    pub shared: Option<crate::shared::SharedConfig>,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        StoreConfig {
            object_store: ObjectStoreLocation::Local(data_dir.join("objects")),
            s3_options: Vec::new(),
            data_dir,
            clock: Arc::new(SystemClock),
            window_ms: 3_600_000,
            flush_bytes: 64 * 1024 * 1024,
            flush_interval_ms: 60_000,
            max_unflushed_bytes: 512 * 1024 * 1024,
            backpressure_timeout_ms: 20_000,
            wal_file_bytes: 64 * 1024 * 1024,
            wal_queue: 1024,
            dedup_window_ms: 6 * 3_600_000,
            dedup_max_entries: 1_000_000,
            compaction_small_bytes: 16 * 1024 * 1024,
            compaction_max_raw_bytes: 512 * 1024 * 1024,
            compaction_min_open_segments: 4,
            flush_zstd_level: 3,
            compaction_zstd_level: 9,
            gc_grace_ms: 15 * 60_000,
            background: true,
            index_interval_ms: 200,
            compaction_interval_ms: 30_000,
            retention_interval_ms: 300_000,
            limits: CardinalityLimits::default(),
            shared: None,
        }
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }
}
