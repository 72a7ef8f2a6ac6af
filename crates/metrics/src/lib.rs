//! kinsight-metrics: the metric store behind kinsight's CloudWatch-style metrics.
//!
//! What it does:
//! - Takes EMF datapoints ([`kinsight_model::emf::Datapoint`], extracted from performance and
//!   application log events — reference §1.2) tagged with the server's WAL sequence number,
//!   and keeps every sample plus 1-minute and 1-hour rollups ([`tier`]) in a columnar,
//!   compressed, crash-safe store on local disk ([`MetricStore`]). Ingest is idempotent per
//!   sequence number, so WAL replay after a crash never double counts.
//! - Guards cardinality per namespace and for the whole store: past a limit, datapoints of new
//!   series are dropped, counted, and logged once ([`series`]).
//! - Answers ListMetrics-style listings and metric queries: `SampleCount`, `Average`, `Sum`,
//!   `Minimum`, `Maximum` and percentiles `pNN[.NN]` over periods of 1 s to 1 day, for one
//!   series or every series a dimension search matches, as time-aligned series ([`query`]).
//!   Numbers equal a Logs Insights `stats … by bin(period)` over the same events.
//!
//! What it deliberately does not: HTTP (the server wraps it), alarm logic (`kinsight-alarms`),
//! its own write-ahead log (the server's WAL is the source of truth until
//! [`MetricStore::persisted_seq`] says the data is in segment files), metric math, or
//! object storage — metric segments are small and live on the server's local disk. For a
//! replica that must start from another's state it hands out a consistent, pinned set of files
//! ([`MetricStore::snapshot`]) and rebuilds a store from such a set ([`restore_snapshot`]);
//! moving the bytes is the server's business.
//!
//! On-disk format: docs/formats/metrics.md.

mod block;
mod cache;
pub mod labels;
mod manifest;
pub mod otlp;
pub mod query;
pub mod remote_write;
pub mod samples;
mod segment;
pub mod series;
mod snapshot;
pub mod statistic;
mod store;
pub mod tier;
pub mod wire;

pub use query::{MetricQuery, QueryResult, SeriesValues};
pub use series::{
    CardinalityStats, DimensionMatcher, SeriesInfo, SeriesKey, SeriesSelector, SeriesUsage,
};
pub use snapshot::{
    MetricSnapshot, RestoreOutcome, SnapshotFile, restore_snapshot, snapshot_file_names,
};
pub use statistic::{SlotSummary, Statistic, nearest_rank};
pub use store::{IngestOutcome, MaintenanceReport, MetricStore, MetricStoreConfig, StoreStats};
pub use tier::{Retention, Tier};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt metric store file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: format version {version} is not supported by this kinsight")]
    UnsupportedVersion { path: PathBuf, version: u64 },
    #[error("invalid metric query: {0}")]
    InvalidQuery(String),
    /// [`restore_snapshot`]'s `fetch` failed for the snapshot file `name`.
    #[error("metric snapshot file {name}: {reason}")]
    SnapshotFetch { name: String, reason: String },
}

impl MetricsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        MetricsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
