//! The write-ahead log: append-only files in `<data-dir>/wal/`, one group commit per fsync.
//!
//! A dedicated thread owns the active file. Callers hand it an encoded record and wait; the
//! thread takes every request that is waiting (up to [`MAX_GROUP_BYTES`]), assigns them
//! consecutive sequence numbers, writes them with one `write` and one `fdatasync`, and only
//! then hands them to the store to apply and acknowledge. Many concurrent batches therefore
//! share one fsync, and nothing is acknowledged before it is on disk (issue #4).
//!
//! Byte layout: `docs/formats/wal.md`.

mod file;
mod writer;

pub(crate) use file::encode_record_header;
pub use file::{
    FILE_HEADER_BYTES, FILE_MAGIC, FILE_VERSION, RECORD_HEADER_BYTES, ReplayStats, WalFileInfo,
    list_files, remove_files_through, replay,
};
pub(crate) use writer::{Append, Durable, OnDurable, WalWriter, queue};

/// Upper bound on the bytes written by one group commit.
pub const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;
/// A record's payload may not exceed this (a batch is at most ~32 MiB of JSON).
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;
