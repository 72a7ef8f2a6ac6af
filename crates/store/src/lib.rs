//! kinsight-store: the server's durable log storage.
//!
//! What it does:
//! * **Ingest** ([`Store::ingest`]): batches of [`LogEvent`]s (mixed groups and streams) are
//!   validated (names, sizes, per-event time bounds of the reference §6.2), written to a
//!   write-ahead log with group commit (one fsync for all batches waiting), and acknowledged
//!   only once fsynced. Batch ids make retries idempotent, also across restarts.
//! * **Storage**: acknowledged events sit in memory (readable at once, converted to arrow
//!   columns in the background) until they are flushed to Parquet segments (zstd) per log
//!   group and hour, sorted by stream and time, with statistics for pruning. JSON messages are
//!   flattened into typed columns (`kubernetes.pod_name`); the raw message stays in `@message`.
//!   Small segments are compacted; retention drops expired ones. Segments, checkpoints and
//!   dedup files go through `object_store`: a local directory or any S3-compatible store.
//! * **Catalogue**: groups, streams, retention, tags, stored bytes, first/last event time;
//!   caps on how many groups and streams may exist ([`cardinality`]).
//! * **Reads**: [`Store::scan`] hands the query engine the segments and in-memory batches of a
//!   group and time range; [`Store::read_events`] pages through a stream by time;
//!   [`Store::follow`] is a live feed.
//! * **Ingest hook**: [`IngestObserver`]s see every durable batch in sequence order, live and
//!   on WAL replay, and hold back WAL truncation until they report it persisted (issue #6).
//!
//! What it deliberately does not: parse or plan queries (that is `kinsight-query`), know HTTP
//! (`kinsight-server`) or extract metrics (`kinsight-metrics`). Several servers share one bucket
//! only as replicas ([`shared`]): one log in the object store, ordered by a PostgreSQL
//! catalogue, applied by all; without one, a server owns its data directory and prefix.
//!
//! On-disk formats: `docs/formats/wal.md`, `segments.md`, `catalogue.md`.

pub mod cardinality;
pub mod catalogue;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod error;
pub mod flatten;
pub mod ingest;
mod maintenance;
mod memtable;
pub mod observer;
pub mod paths;
pub mod read;
pub mod record;
pub mod schema;
pub mod segment;
pub mod shared;
mod state;
pub mod storage;
mod store;
pub mod wal;

pub use cardinality::{CardinalityLimits, CardinalityUsage, LimitKind, Usage};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::StoreConfig;
pub use error::StoreError;
pub use ingest::{IngestOutcome, IngestRequest, RejectReason, Rejection};
pub use kinsight_model::LogEvent;
pub use maintenance::FlushReport;
pub use observer::{DurableBatch, DurableSamples, IngestObserver};
pub use read::{
    Cursor, Direction, EventPage, EventQuery, GroupScan, MAX_PAGE_BYTES, StoredEvent, event_bytes,
};
pub use record::{BatchRecord, SamplesRecord, event_id, seq_of_event_id};
pub use segment::{CLUSTER_COLUMNS, SegmentMeta};
pub use shared::SharedConfig;
pub use storage::{ObjectStoreLocation, Storage};
pub use store::{GroupInfo, Page, Store, StoreStats, StreamInfo, StreamOrder};
