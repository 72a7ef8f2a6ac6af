//! The one error type of the store. Variants carry the context needed to act on them (path,
//! offset, group name, index of the offending event); the server maps each variant to an HTTP
//! status in exactly one place (`kinsight_server::error`).

use std::path::PathBuf;

use kinsight_model::names::NameError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// An event of a batch names a log group that breaks the reference's rules (§6.2).
    #[error("event {index}: {source}")]
    InvalidGroupName {
        index: usize,
        #[source]
        source: NameError,
    },
    /// An event of a batch names a log stream that breaks the reference's rules (§6.2).
    #[error("event {index}: {source}")]
    InvalidStreamName {
        index: usize,
        #[source]
        source: NameError,
    },
    /// A name given to a catalogue operation breaks the rules.
    #[error("{0}")]
    InvalidName(#[from] NameError),
    #[error("{0}")]
    InvalidParameter(String),
    /// The batch as a whole exceeds the reference's batch limits.
    #[error(
        "batch of {events} events and {bytes} bytes exceeds the limit of {max_events} events and {max_bytes} bytes"
    )]
    BatchTooLarge {
        events: usize,
        bytes: usize,
        max_events: usize,
        max_bytes: usize,
    },
    #[error("log group {0:?} does not exist")]
    GroupNotFound(String),
    #[error("log stream {stream:?} does not exist in log group {group:?}")]
    StreamNotFound { group: String, stream: String },
    #[error("log group {0:?} already exists")]
    GroupAlreadyExists(String),
    #[error("log stream {stream:?} already exists in log group {group:?}")]
    StreamAlreadyExists { group: String, stream: String },
    /// The device holding the write-ahead log is full: nothing of the batch was acknowledged.
    #[error("no space left for the write-ahead log in {path}: {source}")]
    DiskFull {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write-ahead log I/O on {path}: {source}")]
    WalIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record in a sealed WAL file failed its checksum: real corruption, not a torn tail.
    #[error("write-ahead log {path} is corrupt at offset {offset}: {reason}")]
    WalCorrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object store: {context}: {source}")]
    ObjectStore {
        context: String,
        #[source]
        source: object_store::Error,
    },
    #[error("invalid object store location {location:?}: {reason}")]
    ObjectStoreConfig { location: String, reason: String },
    #[error("parquet segment {path}: {source}")]
    Parquet {
        path: String,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("arrow: {context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    /// A persisted document (checkpoint, dedup file) could not be read.
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
    #[error("data directory {path} is in use by another kinsight server")]
    Locked { path: PathBuf },
    /// Too much is waiting to be flushed to segments (flushes are failing or too slow); nothing
    /// of the batch was stored and the caller should retry later.
    #[error("{unflushed_bytes} bytes are waiting to be flushed to the object store; retry later")]
    Backpressure { unflushed_bytes: usize },
    /// Creating a group or stream would pass one of the cardinality caps (issue 15, item 12).
    #[error(
        "cannot create {what}: {count} of {limit} allowed {} exist (the server's {}); delete unused ones or raise the limit",
        match kind { crate::cardinality::LimitKind::LogGroups => "log groups", crate::cardinality::LimitKind::LogStreams => "log streams", crate::cardinality::LimitKind::StreamsPerGroup => "log streams in the group" },
        kind.setting()
    )]
    LimitExceeded {
        kind: crate::cardinality::LimitKind,
        what: String,
        count: usize,
        limit: usize,
    },
    /// A replicated server cannot reach what acknowledgements depend on (the PostgreSQL
    /// catalogue or the object store) within a bounded wait: nothing was acknowledged.
    #[error("{0}; retry later")]
    Unavailable(String),
    /// Replicated servers: the record is in the shared log — it will be applied — but was not
    /// applied within the bounded wait. Retrying stores a batch with an id once; a record
    /// without one (metric samples) would be stored twice.
    #[error("{0}; retry later")]
    AppendedNotApplied(String),
    /// A record larger than the WAL takes (`wal::MAX_RECORD_BYTES`): refused before writing.
    #[error("a write of {bytes} bytes exceeds the write-ahead log's record limit of {max} bytes")]
    RecordTooLarge { bytes: usize, max: usize },
    /// The store is shutting down (or its writer thread died); the caller may retry later.
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl StoreError {
    pub(crate) fn object_store(context: impl Into<String>, source: object_store::Error) -> Self {
        StoreError::ObjectStore {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the error is an out-of-space condition (the server answers 507).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }
}

/// Classifies a WAL write error: ENOSPC and EDQUOT become [`StoreError::DiskFull`].
pub(crate) fn wal_io_error(path: PathBuf, source: std::io::Error) -> StoreError {
    let full = matches!(source.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
        || source.kind() == std::io::ErrorKind::StorageFull
        || source.kind() == std::io::ErrorKind::QuotaExceeded;
    if full {
        StoreError::DiskFull { path, source }
    } else {
        StoreError::WalIo { path, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
