//! Checkpoints: for every file identity, the offset up to which the consumer has acknowledged
//! its lines. Persisted as versioned JSON, written atomically (temp file, fsync, rename) —
//! format in `docs/formats/checkpoints.md`.
//!
//! Offsets advance only through [`Checkpointer::ack`], which the consumer calls once its sink
//! has made the lines durable, so a kill -9 at any moment re-reads at most what was not yet
//! acknowledged (issue [2/8]).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::TailerError;
use crate::fingerprint::{Head, Inode};

/// The checkpoint file's name inside the state directory.
pub const CHECKPOINT_FILE: &str = "tailer-checkpoints.json";
/// The format version this code writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Identifies one file content (not one path, not one inode): a copytruncate or an inode reuse
/// gives the same inode a new id. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileId(pub u64);

/// "Every byte of `file` before `offset` has been dealt with": what a consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub file: FileId,
    pub offset: u64,
}

/// One persisted entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: FileId,
    pub dev: u64,
    pub ino: u64,
    pub head_len: u32,
    pub head_crc: u32,
    /// Last path the file was seen at (informational; identity does not depend on it).
    pub path: PathBuf,
    /// The live path this file belongs to (itself, or the file it was rotated from).
    pub family: PathBuf,
    /// Acknowledged offset into the (uncompressed) content.
    pub offset: u64,
}

impl Entry {
    pub fn inode(&self) -> Inode {
        Inode {
            dev: self.dev,
            ino: self.ino,
        }
    }
    pub fn head(&self) -> Head {
        Head {
            len: self.head_len,
            crc: self.head_crc,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    /// When this file was written (ms since the epoch).
    written_at_ms: i64,
    /// When the tailer last finished a directory scan; files rotated after it were possibly
    /// never seen while live and are read from their head on restart.
    last_scan_ms: i64,
    /// When the tailer first started with this state directory (ms since the epoch): files
    /// created after it are read from their head even on that first start. Absent in files
    /// written before it was recorded (and then not needed: they had completed a scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_start_ms: Option<i64>,
    next_id: u64,
    files: Vec<Entry>,
}

#[derive(Debug, Default)]
struct Book {
    next_id: u64,
    entries: BTreeMap<FileId, Entry>,
    last_scan_ms: i64,
    first_start_ms: Option<i64>,
    /// Bumped on every change; persisted state remembers which generation it wrote.
    generation: u64,
}

/// The shared checkpoint book: the tailer registers files, the consumer acknowledges offsets,
/// anyone persists. Thread-safe.
#[derive(Debug)]
pub struct Checkpointer {
    path: PathBuf,
    book: Mutex<Book>,
    /// Serialises writers and remembers the last generation written.
    written: Mutex<u64>,
    loaded: Option<LoadedState>,
    /// The first start, while no scan has completed since it (see [`Self::first_start_pending`]).
    first_start_pending: Option<i64>,
}

/// What the previous run left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedState {
    pub last_scan_ms: i64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Checkpointer {
    /// Opens (or starts) the checkpoint book in `state_dir`, creating the directory.
    ///
    /// On a first start (no checkpoint file) the time is recorded and the file written at
    /// once, before anything is read, so that a file created after this moment is read from
    /// its head even if the first scan comes later or the process dies before it (issue 15,
    /// item 15).
    ///
    /// A file that cannot be parsed is moved aside (`.corrupt-<ms>`) and reported in the log;
    /// the tailer then behaves as after a restart with unknown files (reads them from the head:
    /// duplicates rather than loss).
    pub fn open(state_dir: &Path) -> Result<Checkpointer, TailerError> {
        // Before anything else: a file whose creation the caller can observe after `open`
        // started is newer than this.
        let started_ms = now_ms();
        std::fs::create_dir_all(state_dir).map_err(|source| TailerError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(CHECKPOINT_FILE);
        let mut book = Book {
            next_id: 1,
            ..Book::default()
        };
        let mut loaded = None;
        match std::fs::read(&path) {
            Ok(bytes) => match parse(&bytes) {
                Ok(f) => {
                    book.next_id = f.next_id.max(1);
                    book.last_scan_ms = f.last_scan_ms;
                    book.first_start_ms = f.first_start_ms;
                    for e in f.files {
                        book.next_id = book.next_id.max(e.id.0 + 1);
                        book.entries.insert(e.id, e);
                    }
                    loaded = Some(LoadedState {
                        last_scan_ms: f.last_scan_ms,
                    });
                }
                Err(message) => {
                    let stamp = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    let aside = path.with_extension(format!("json.corrupt-{stamp}"));
                    tracing::error!(path = %path.display(), %message, aside = %aside.display(),
                        "checkpoint file unreadable; moved aside, unknown files will be read from their head");
                    let _ = std::fs::rename(&path, &aside);
                    loaded = Some(LoadedState { last_scan_ms: 0 });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                book.first_start_ms = Some(started_ms);
            }
            Err(source) => return Err(TailerError::Io { path, source }),
        }
        let first_start_pending = book.first_start_ms.filter(|_| book.last_scan_ms == 0);
        let c = Checkpointer {
            path,
            book: Mutex::new(book),
            written: Mutex::new(0),
            loaded,
            first_start_pending,
        };
        if loaded.is_none() {
            c.write_now()?;
        }
        Ok(c)
    }

    /// When this state directory was first used, if no scan has completed since: the first
    /// scan of a node reads files older than this from their end (unless `read_from_head`)
    /// and newer ones from their head. `None` after a scan, and for a book recovered from a
    /// corrupt file (every unknown file is then read from its head).
    pub fn first_start_pending(&self) -> Option<i64> {
        self.first_start_pending
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the previous run persisted; `None` on a first start.
    pub fn loaded(&self) -> Option<LoadedState> {
        self.loaded
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the consumer has durably handled everything before each position.
    /// Offsets only move forward; positions of forgotten files are ignored.
    pub fn ack(&self, positions: &[Position]) {
        let mut b = self.lock();
        let mut changed = false;
        for p in positions {
            if let Some(e) = b.entries.get_mut(&p.file)
                && p.offset > e.offset
            {
                e.offset = p.offset;
                changed = true;
            }
        }
        if changed {
            b.generation += 1;
        }
    }

    /// Writes the book if it changed since the last write. Returns whether it wrote.
    pub fn persist(&self) -> Result<bool, TailerError> {
        self.write(false)
    }

    fn write_now(&self) -> Result<bool, TailerError> {
        self.write(true)
    }

    fn write(&self, always: bool) -> Result<bool, TailerError> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let (generation, bytes) = {
            let b = self.lock();
            if !always && b.generation == *written && self.path.exists() {
                return Ok(false);
            }
            let f = FileFormat {
                version: CHECKPOINT_VERSION,
                written_at_ms: now_ms(),
                last_scan_ms: b.last_scan_ms,
                first_start_ms: b.first_start_ms,
                next_id: b.next_id,
                files: b.entries.values().cloned().collect(),
            };
            // Serialising plain structs into memory cannot fail.
            (
                b.generation,
                serde_json::to_vec(&f).expect("checkpoints serialise"),
            )
        };
        write_atomic(&self.path, &bytes)?;
        *written = generation;
        Ok(true)
    }

    /// A copy of every entry (for inspection and tests).
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.values().cloned().collect()
    }

    pub fn get(&self, id: FileId) -> Option<Entry> {
        self.lock().entries.get(&id).cloned()
    }

    pub(crate) fn entries_by_inode(&self) -> HashMap<Inode, Vec<Entry>> {
        let mut out: HashMap<Inode, Vec<Entry>> = HashMap::new();
        for e in self.lock().entries.values() {
            out.entry(e.inode()).or_default().push(e.clone());
        }
        out
    }

    pub(crate) fn register(
        &self,
        inode: Inode,
        head: Head,
        path: &Path,
        family: &Path,
        offset: u64,
    ) -> FileId {
        let mut b = self.lock();
        let id = FileId(b.next_id);
        b.next_id += 1;
        b.entries.insert(
            id,
            Entry {
                id,
                dev: inode.dev,
                ino: inode.ino,
                head_len: head.len,
                head_crc: head.crc,
                path: path.to_path_buf(),
                family: family.to_path_buf(),
                offset,
            },
        );
        b.generation += 1;
        id
    }

    pub(crate) fn update(&self, id: FileId, head: Option<Head>, path: Option<&Path>) {
        let mut b = self.lock();
        let Some(e) = b.entries.get_mut(&id) else {
            return;
        };
        let mut changed = false;
        if let Some(h) = head
            && h != e.head()
        {
            e.head_len = h.len;
            e.head_crc = h.crc;
            changed = true;
        }
        if let Some(p) = path
            && p != e.path
        {
            e.path = p.to_path_buf();
            changed = true;
        }
        if changed {
            b.generation += 1;
        }
    }

    pub(crate) fn forget(&self, id: FileId) {
        let mut b = self.lock();
        if b.entries.remove(&id).is_some() {
            b.generation += 1;
        }
    }

    pub(crate) fn set_last_scan(&self, ms: i64) {
        let mut b = self.lock();
        if b.last_scan_ms == 0 {
            // The first scan ever: worth writing (it ends the first start), even on a node
            // with no file to register.
            b.generation += 1;
        }
        b.last_scan_ms = ms;
        // Otherwise not a reason to write on its own: it travels with the next real change.
    }
}

fn parse(bytes: &[u8]) -> Result<FileFormat, String> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if v.version != CHECKPOINT_VERSION {
        return Err(format!(
            "checkpoint format version {} is not supported (this build reads {CHECKPOINT_VERSION})",
            v.version
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Replaces `path` with `bytes` atomically: write a temp file beside it, fsync it, rename it
/// over `path`. A crash at any point leaves either the old or the new content, never a mix.
///
/// The directory is not fsynced after the rename: that would double the cost of every
/// acknowledgement (measured 5 ms → 12 ms here), and losing the rename in a power cut only
/// brings back the previous checkpoint — lines read twice, never lost.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TailerError> {
    let io = |source| TailerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_move_forward_only_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpointer::open(dir.path()).unwrap();
        assert!(c.loaded().is_none());
        let id = c.register(
            Inode { dev: 1, ino: 2 },
            Head { len: 3, crc: 4 },
            Path::new("/a/0.log"),
            Path::new("/a/0.log"),
            0,
        );
        c.ack(&[Position {
            file: id,
            offset: 100,
        }]);
        c.ack(&[Position {
            file: id,
            offset: 50,
        }]);
        c.ack(&[Position {
            file: FileId(999),
            offset: 7,
        }]);
        assert!(c.persist().unwrap());
        assert!(!c.persist().unwrap(), "nothing changed, nothing written");
        let again = Checkpointer::open(dir.path()).unwrap();
        assert!(again.loaded().is_some());
        let e = again.get(id).unwrap();
        assert_eq!(e.offset, 100);
        assert_eq!(e.inode(), Inode { dev: 1, ino: 2 });
        // Ids are never reused after a reopen.
        let id2 = again.register(
            Inode { dev: 1, ino: 3 },
            Head::EMPTY,
            Path::new("/b"),
            Path::new("/b"),
            0,
        );
        assert!(id2 > id);
    }

    #[test]
    fn corrupt_or_future_files_are_moved_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"{not json").unwrap();
        let c = Checkpointer::open(dir.path()).unwrap();
        assert!(c.loaded().is_some());
        assert!(c.entries().is_empty());
        assert!(!dir.path().join(CHECKPOINT_FILE).exists());
        std::fs::write(
            dir.path().join(CHECKPOINT_FILE),
            br#"{"version": 99, "files": []}"#,
        )
        .unwrap();
        let c = Checkpointer::open(dir.path()).unwrap();
        assert!(c.entries().is_empty());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("corrupt")
            })
            .count();
        assert_eq!(aside, 2);
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("x.tmp").exists());
    }
}
