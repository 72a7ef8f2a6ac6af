//! kinsight-tailer: follows log files through rotation and truncation, without losing a line
//! and without reading one twice except after a crash (issue [2/8]).
//!
//! What it does:
//! * discovers files under configured roots by inotify (read on the tailer's own thread, so a
//!   busy file's repeated events merge in the kernel's queue) plus a periodic rescan; a caller-supplied [`Layout`] says which paths are live files and which are rotated
//!   copies of which live file;
//! * follows symlinks only to files whose real path stays inside the allowed directories,
//!   resolving absolute targets under a configurable root (the host's `/` seen from a
//!   container), and checks the opened descriptor's path again ([`discover`], issue 15);
//! * identifies files by a [`fingerprint`]: device, inode and a checksum of the first bytes, so
//!   renames (kubelet and logrotate rotation), copytruncate, inode reuse and compressed copies
//!   (`0.log.<stamp>.gz`) are told apart;
//! * reads a rotated or deleted file to its end before leaving it; reads lines with bounded
//!   memory (a line longer than the limit is handed out in pieces);
//! * keeps versioned [`checkpoint`]s written atomically under a state directory, advanced only
//!   when the consumer acknowledges offsets, so a kill -9 re-reads at most the unacknowledged
//!   tail.
//!
//! What it deliberately does not: know Kubernetes, parse line formats (CRI, Docker JSON), decode
//! UTF-8 or batch for a sink. Those belong to the agent's log pipeline.
//!
//! Rules for files without a checkpoint: the first start on a state directory is recorded in
//! it before anything is read; until a first scan has completed, a live file created before
//! that moment (by its birth time, 2 s of slack) is read from its end (or head with
//! `read_from_head`), one created after it from its head — a pod that starts with the agent
//! loses no line, even if it appears before or during the first scan. Any file appearing after
//! a scan is read from its head. A rotated file nobody has seen is read only if it may hold
//! lines never read: it appeared while the tailer ran, it was modified after the first start
//! (first scan), or (after a restart) it was modified after the last scan of the previous run.

pub mod checkpoint;
pub mod discover;
pub mod fingerprint;
mod tailer;
mod wake;
mod watch;

pub use checkpoint::{Checkpointer, Entry, FileId, Position, write_atomic};
pub use discover::Root;
pub use tailer::{FileInfo, FileRole, Layout, Line, Tailer, TailerOptions, TailerStats};
pub use wake::Waker;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TailerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
