//! The tailer: discovers files, follows them through rotation and truncation, and hands out
//! lines with the offsets a consumer acknowledges later.
//!
//! Synchronous on purpose: one thread owns it, which keeps the state machine simple enough to
//! check against a model (tests/it/model.rs) and costs no async machinery per line.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::checkpoint::{Checkpointer, Entry, FileId, now_ms};
use crate::discover::{Confine, Found, Reported, Root, Walked, walk};
use crate::fingerprint::{HEAD_BYTES, Head, Inode, gzip_prefix, read_at_full};
use crate::wake::Waker;

/// What a path is, as the caller's layout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRole {
    /// A file being written now (`0.log`, `/var/log/syslog`).
    Live,
    /// A rotated copy of the live file `family` (`0.log.20240501-101500`, `syslog.1`,
    /// `0.log.20240501-101500.gz`). Read only when it holds lines never read (see module docs).
    Rotated { family: PathBuf },
}

/// Tells the tailer which files to follow. Knows names, so the tailer does not have to.
pub trait Layout: Send + Sync {
    /// `None` = not a log file of interest.
    fn classify(&self, path: &Path) -> Option<FileRole>;
}

#[derive(Debug, Clone)]
pub struct TailerOptions {
    pub roots: Vec<Root>,
    /// Directories every followed file must really be in, symlinks resolved (see
    /// [`crate::discover`]). Empty: the roots' own directories.
    pub allowed_dirs: Vec<PathBuf>,
    /// The filesystem root the symlinks under the roots were written for: absolute link
    /// targets resolve under it (`/rootfs` when the host's `/` is mounted there). `None`: `/`.
    pub symlink_root: Option<PathBuf>,
    /// On a first start (no checkpoint yet), read files that existed before it from their
    /// beginning rather than their end.
    pub read_from_head: bool,
    /// A line longer than this is handed out in pieces of at most this many bytes, so memory
    /// stays bounded whatever the input (a 50 MiB line with no newline).
    pub max_line_bytes: usize,
    /// How long a rotated or deleted file stays open after its last byte was read, in case its
    /// writer is still finishing.
    pub rotate_wait: Duration,
    /// Bytes read from one file per turn, so one busy file does not starve the others.
    pub read_chunk_bytes: usize,
    /// How long the checkpoint of a file that no longer exists is kept (a compressed copy may
    /// still appear and must be recognised).
    pub forget_after: Duration,
}

impl Default for TailerOptions {
    fn default() -> Self {
        TailerOptions {
            roots: Vec::new(),
            allowed_dirs: Vec::new(),
            symlink_root: None,
            read_from_head: false,
            max_line_bytes: 256 * 1024,
            rotate_wait: Duration::from_secs(5),
            read_chunk_bytes: 64 * 1024,
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// What a consumer needs to know about the file a line came from.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub id: FileId,
    /// Where the file is now.
    pub path: Arc<Path>,
    /// The live path it belongs to (routing uses this, not `path`).
    pub family: Arc<Path>,
    pub compressed: bool,
}

/// One line, or one piece of a line longer than `max_line_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Without the trailing newline. Raw bytes: may be invalid UTF-8.
    pub bytes: &'a [u8],
    /// Offset of the first byte in the file's (uncompressed) content.
    pub start: u64,
    /// Offset just past this piece (past the newline when `last`).
    pub end: u64,
    /// This piece starts a line.
    pub first: bool,
    /// This piece ends a line (a newline followed, or the file ended for good).
    pub last: bool,
}

enum Source {
    Plain(File),
    Gzip(Box<flate2::read::MultiGzDecoder<io::BufReader<File>>>),
}

struct Tracked {
    info: FileInfo,
    inode: Inode,
    head: Head,
    source: Source,
    /// Bytes consumed from the source.
    offset: u64,
    /// The unfinished line (no newline yet), starting at `partial_start`.
    partial: Vec<u8>,
    partial_start: u64,
    /// A piece of the current line was already handed out.
    in_long_line: bool,
    /// At a live path as of the last scan.
    live: bool,
    eof_since: Option<Instant>,
    seen_scan: u64,
}

/// A file looked at and deliberately not followed (old rotations, finished files). Kept so a
/// scan does not reopen it; re-examined when its size or mtime changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ignored {
    size: u64,
    mtime_ns: i128,
    entry: Option<FileId>,
    seen_scan: u64,
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailerStats {
    pub files_opened: u64,
    pub files_closed: u64,
    pub truncations: u64,
    pub long_line_splits: u64,
    pub read_errors: u64,
    pub bytes_read: u64,
}

/// Follows the files of its roots. See the crate docs for the rules.
pub struct Tailer {
    opts: TailerOptions,
    layout: Arc<dyn Layout>,
    checkpoints: Arc<Checkpointer>,
    tracked: Vec<Tracked>,
    ignored: HashMap<Inode, Ignored>,
    /// Files finished in this run: id → offset read to. A compressed copy of one of them is
    /// not read again.
    finished: HashMap<FileId, u64>,
    /// Entries of files not found by the last scans, and since when.
    missing_since: HashMap<FileId, Instant>,
    closed: Vec<FileInfo>,
    scans: u64,
    /// The node's first start (ms since the epoch) while no scan has completed on it yet:
    /// files that existed before it are read from their end. `None` once one has.
    first_start_ms: Option<i64>,
    /// Where files may be, as of the last scan.
    confine: Confine,
    reported: Reported,
    buf: Vec<u8>,
    waker: Waker,
    watcher: Option<crate::watch::DirWatch>,
    /// `watch` was called: watch the directories every scan walks.
    watching: bool,
    last_scan: Option<Instant>,
    pub stats: TailerStats,
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Slack for comparisons of file times with wall-clock times the tailer took: the kernel
/// stamps files from a coarse clock, and some filesystems keep whole seconds.
const CLOCK_SLACK_MS: i64 = 2000;

/// When the file was created (ms since the epoch), if its filesystem records it.
fn birth_ms(meta: &std::fs::Metadata) -> Option<i64> {
    let t = meta.created().ok()?;
    Some(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    })
}

fn has_gzip_magic(file: &File) -> bool {
    let mut m = [0u8; 2];
    matches!(read_at_full(file, &mut m, 0), Ok(2)) && m == [0x1f, 0x8b]
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

impl Tailer {
    pub fn new(
        opts: TailerOptions,
        layout: Arc<dyn Layout>,
        checkpoints: Arc<Checkpointer>,
    ) -> Tailer {
        let first_start_ms = checkpoints.first_start_pending();
        let missing_since = HashMap::new();
        let max_line = opts.max_line_bytes.max(1);
        let chunk = opts.read_chunk_bytes.max(4096);
        Tailer {
            buf: Vec::with_capacity(max_line + chunk),
            opts: TailerOptions {
                max_line_bytes: max_line,
                read_chunk_bytes: chunk,
                ..opts
            },
            layout,
            checkpoints,
            tracked: Vec::new(),
            ignored: HashMap::new(),
            finished: HashMap::new(),
            missing_since,
            closed: Vec::new(),
            scans: 0,
            first_start_ms,
            confine: Confine::default(),
            reported: Reported::default(),
            waker: Waker::default(),
            watcher: None,
            watching: false,
            last_scan: None,
            stats: TailerStats::default(),
        }
    }

    pub fn checkpointer(&self) -> &Arc<Checkpointer> {
        &self.checkpoints
    }

    /// A handle that wakes [`Tailer::wait`] (used by the inotify watcher and for shutdown).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    pub fn open_files(&self) -> usize {
        self.tracked.len()
    }

    /// Files closed (or retired by a truncation) since the last call: their lines are all
    /// handed out, so a consumer can flush what it keeps per file.
    pub fn take_closed(&mut self) -> Vec<FileInfo> {
        std::mem::take(&mut self.closed)
    }

    /// Starts inotify watches on every directory of the roots that exist (each scan then
    /// watches what it walked: new directories, and roots that appeared). Discovery still
    /// works without them, through the periodic rescan.
    pub fn watch(&mut self) {
        self.watching = true;
        if self.watcher.is_none() {
            match crate::watch::DirWatch::new() {
                Ok(w) => self.watcher = Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify unavailable; discovery relies on periodic rescans");
                    return;
                }
            }
        }
        self.confine = self.confine();
        let mut walked = Walked::default();
        for root in &self.opts.roots {
            walk(root, &self.confine, &mut walked, &mut self.reported);
        }
        self.watch_dirs(&walked.dirs);
    }

    /// Where followed files may be, resolved as the directories are now (a directory that
    /// appears later, /var/log/pods on a fresh node, counts from the scan that sees it).
    fn confine(&self) -> Confine {
        let base = self.opts.symlink_root.as_deref().unwrap_or(Path::new("/"));
        let allowed: Vec<PathBuf> = if self.opts.allowed_dirs.is_empty() {
            self.opts.roots.iter().map(|r| r.dir.clone()).collect()
        } else {
            self.opts.allowed_dirs.clone()
        };
        Confine::new(base, &allowed)
    }

    fn watch_dirs(&mut self, dirs: &[(PathBuf, crate::fingerprint::Inode)]) {
        if let Some(w) = self.watcher.as_mut()
            && w.sync(dirs)
        {
            // What appeared in a new directory before its watch started raised no event:
            // one more scan finds it.
            self.waker.note_rescan();
        }
    }

    /// Directories under inotify watch now.
    pub fn watched_dirs(&self) -> usize {
        self.watcher.as_ref().map_or(0, |w| w.watched())
    }

    /// Takes the events inotify has queued (without waiting) into the wake flags.
    fn drain_events(&mut self) {
        if let Some(w) = self.watcher.as_mut() {
            w.drain(&self.waker);
        }
    }

    /// Sleeps until data or a directory change is signalled, or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) {
        let fd = self.watcher.as_ref().map(|w| w.fd());
        if self.waker.wait(timeout, fd) {
            self.drain_events();
        }
    }

    /// Scans when the watcher reported a directory change or `interval` has passed.
    pub fn scan_if_due(&mut self, interval: Duration) -> bool {
        // Events queued while the thread was busy: a directory change means a scan now.
        self.drain_events();
        let due =
            self.waker.take_rescan() || self.last_scan.is_none_or(|t| t.elapsed() >= interval);
        if due {
            self.scan();
        }
        due
    }

    /// Walks the roots and starts, updates or stops following files.
    pub fn scan(&mut self) {
        let started_ms = now_ms();
        self.scans += 1;
        let scan_no = self.scans;
        let initial = scan_no == 1;
        // Every open file's content is checked first (a copytruncate refilled past our offset
        // is caught here: the head changed), so copies made of it are matched to the right id.
        for idx in 0..self.tracked.len() {
            let t = &mut self.tracked[idx];
            if let Source::Plain(file) = &t.source {
                let mut head = [0u8; HEAD_BYTES];
                if let Ok(n) = read_at_full(file, &mut head, 0) {
                    if !t.head.is_prefix_of(&head[..n]) {
                        self.restart_truncated(idx);
                    } else if let Some(h) = t.head.upgrade(&head[..n]) {
                        t.head = h;
                        self.checkpoints.update(t.info.id, Some(h), None);
                    }
                }
            }
        }
        self.confine = self.confine();
        let mut walked = Walked::default();
        for root in &self.opts.roots {
            walk(root, &self.confine, &mut walked, &mut self.reported);
        }
        if self.watching {
            self.watch_dirs(&walked.dirs);
        }
        let found = walked.files;
        // One inode may be reachable by several paths (symlinks): prefer a live name.
        let mut by_inode: HashMap<Inode, (Found, FileRole)> = HashMap::new();
        for f in found {
            let Some(role) = self.layout.classify(&f.path) else {
                continue;
            };
            let inode = Inode::of(&f.meta);
            match by_inode.get(&inode) {
                Some((_, FileRole::Live)) => {}
                Some(_) if role != FileRole::Live => {}
                _ => {
                    by_inode.insert(inode, (f, role));
                }
            }
        }
        // Live files first, then rotated ones oldest first: compressed copies are matched
        // against entries whose originals are already attached.
        let mut items: Vec<(Inode, Found, FileRole)> =
            by_inode.into_iter().map(|(i, (f, r))| (i, f, r)).collect();
        items.sort_by_key(|(_, f, r)| (*r != FileRole::Live, mtime_ns(&f.meta), f.path.clone()));
        let by_inode_entries = self.checkpoints.entries_by_inode();
        let mut seen_entries: HashSet<FileId> = HashSet::new();
        for (inode, f, role) in items {
            self.consider(
                inode,
                &f,
                role,
                initial,
                scan_no,
                &by_inode_entries,
                &mut seen_entries,
            );
        }
        for t in &mut self.tracked {
            if t.seen_scan != scan_no {
                // Deleted, or moved out of sight: read to its end, then let it go.
                t.live = false;
            } else {
                seen_entries.insert(t.info.id);
            }
        }
        self.ignored.retain(|_, ig| ig.seen_scan == scan_no);
        for ig in self.ignored.values() {
            if let Some(id) = ig.entry {
                seen_entries.insert(id);
            }
        }
        // Entries of files that are gone are kept a while (a compressed copy may appear).
        let now = Instant::now();
        for e in self.checkpoints.entries() {
            if seen_entries.contains(&e.id) {
                self.missing_since.remove(&e.id);
            } else {
                let since = *self.missing_since.entry(e.id).or_insert(now);
                if now.duration_since(since) >= self.opts.forget_after {
                    self.checkpoints.forget(e.id);
                    self.missing_since.remove(&e.id);
                    self.finished.remove(&e.id);
                }
            }
        }
        self.checkpoints.set_last_scan(started_ms);
        // From now on every unknown file is new: read from its head.
        self.first_start_ms = None;
        if initial {
            // Make the starting positions durable now: a crash before the first ack must not
            // turn "read from the end" into "skip what was written meanwhile".
            if let Err(e) = self.checkpoints.persist() {
                tracing::error!(error = %e, "cannot write checkpoints");
            }
        }
        self.last_scan = Some(Instant::now());
    }

    /// Whether a rotated file nobody has seen before holds lines never read.
    fn unknown_rotated_is_new(&self, initial: bool, meta: &std::fs::Metadata) -> bool {
        if !initial {
            // Appeared while we were running without ever being live to us: it was created and
            // rotated between two scans.
            return true;
        }
        let mtime_ms = (mtime_ns(meta) / 1_000_000) as i64;
        if let Some(first) = self.first_start_ms {
            // First start on this node: old rotations predate us, unless everything is to be
            // read or it was written to after the first start.
            return self.opts.read_from_head || mtime_ms >= first - CLOCK_SLACK_MS;
        }
        match self.checkpoints.loaded() {
            None => self.opts.read_from_head,
            // Rotated after our last scan before the restart: possibly never seen.
            Some(s) => mtime_ms >= s.last_scan_ms - CLOCK_SLACK_MS,
        }
    }

    /// Whether an unknown live file found by the first scan of the node is read from its end:
    /// it existed before the node's first start (issue 15, item 15). A file created since —
    /// a pod that started with the agent, before or during the first scan — is read from its
    /// head. Without a birth time (a filesystem that does not record one) the file is taken
    /// as older: reading every busy file of a long-running node from its head would ship
    /// what the operator chose not to.
    fn predates_first_start(&self, meta: &std::fs::Metadata) -> bool {
        let Some(first) = self.first_start_ms else {
            return false;
        };
        !self.opts.read_from_head && birth_ms(meta).is_none_or(|b| b < first - CLOCK_SLACK_MS)
    }

    #[allow(clippy::too_many_arguments)]
    fn consider(
        &mut self,
        inode: Inode,
        f: &Found,
        role: FileRole,
        initial: bool,
        scan_no: u64,
        by_inode_entries: &HashMap<Inode, Vec<Entry>>,
        seen_entries: &mut HashSet<FileId>,
    ) {
        let live = role == FileRole::Live;
        let family: PathBuf = match &role {
            FileRole::Live => f.path.clone(),
            FileRole::Rotated { family } => family.clone(),
        };
        if let Some(t) = self.tracked.iter_mut().find(|t| t.inode == inode) {
            t.seen_scan = scan_no;
            t.live = live;
            if *t.info.path != *f.path {
                t.info.path = Arc::from(f.path.as_path());
                self.checkpoints.update(t.info.id, None, Some(&f.path));
            }
            return;
        }
        let size = f.meta.len();
        let mtime = mtime_ns(&f.meta);
        if let Some(ig) = self.ignored.get_mut(&inode)
            && ig.size == size
            && ig.mtime_ns == mtime
        {
            ig.seen_scan = scan_no;
            return;
        }
        // By its real path, never through a link (see `discover`): a link swapped in since the
        // walk fails with ELOOP and is looked at again by the next scan.
        let file = match Confine::open(&f.real) {
            Ok(file) => file,
            Err(e) => {
                if !matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ELOOP)) {
                    self.stats.read_errors += 1;
                    // Once, not every scan: a file the agent may not read (EACCES: another
                    // owner, no group read) stays that way until an operator changes it.
                    if self.reported.once(&f.path, "open") {
                        tracing::warn!(path = %f.path.display(), error = %e, "cannot open log file; skipped");
                    }
                }
                return;
            }
        };
        if let Err(why) = self.confine.check_fd(&file) {
            if self.reported.once(&f.path, "outside") {
                tracing::warn!(path = %f.path.display(), reason = %why, "log file refused");
            }
            return;
        }
        // The open file may not be the inode we stat'ed (replaced in between): go by the fd.
        let Ok(meta) = file.metadata() else { return };
        if !meta.is_file() {
            return;
        }
        let inode = Inode::of(&meta);
        // Rotated files are recognised as gzip by name or by content (a compressor's temp
        // file may carry another suffix until it is renamed).
        let gz = is_gzip(&f.path) || (!live && has_gzip_magic(&file));
        let prefix = if gz {
            gzip_prefix(&file, HEAD_BYTES)
        } else {
            let mut b = vec![0u8; HEAD_BYTES];
            read_at_full(&file, &mut b, 0).map(|n| {
                b.truncate(n);
                b
            })
        };
        let prefix = match prefix {
            Ok(p) => p,
            Err(e) => {
                self.stats.read_errors += 1;
                tracing::warn!(path = %f.path.display(), error = %e, "cannot read log file head; skipped");
                self.ignore(inode, &meta, None, scan_no);
                return;
            }
        };
        let head = Head::of_bytes(&prefix);

        // 1. The same inode with the same leading bytes: a file we know (renamed or not).
        if !gz
            && let Some(e) = by_inode_entries
                .get(&inode)
                // An entry recorded while its file was empty identifies nothing: with a reused
                // inode it would claim a copy of some other content.
                .and_then(|es| {
                    es.iter().find(|e| {
                        (e.head_len > 0 || prefix.is_empty()) && e.head().is_prefix_of(&prefix)
                    })
                })
        {
            {
                seen_entries.insert(e.id);
                let read_to = self.finished.get(&e.id).copied().unwrap_or(0).max(e.offset);
                if read_to > meta.len() {
                    // Shrunk while we were not looking: copytruncate. New content, new id.
                    self.stats.truncations += 1;
                    let id = self.checkpoints.register(inode, head, &f.path, &family, 0);
                    self.attach(
                        id,
                        inode,
                        head,
                        Source::Plain(file),
                        0,
                        &f.path,
                        &family,
                        live,
                        scan_no,
                    );
                } else if !live && self.finished.contains_key(&e.id) && read_to == meta.len() {
                    self.ignore(inode, &meta, Some(e.id), scan_no);
                } else {
                    let id = e.id;
                    self.checkpoints
                        .update(id, e.head().upgrade(&prefix), Some(&f.path));
                    let h = e.head().upgrade(&prefix).unwrap_or(e.head());
                    self.finished.remove(&id);
                    self.attach(
                        id,
                        inode,
                        h,
                        Source::Plain(file),
                        read_to,
                        &f.path,
                        &family,
                        live,
                        scan_no,
                    );
                }
                return;
            }
        }

        // 2. A rotated copy (gzip or copytruncate's copy) of content we know.
        if !live {
            let tracked_ids: HashSet<FileId> = self.tracked.iter().map(|t| t.info.id).collect();
            let candidate = self
                .checkpoints
                .entries()
                .into_iter()
                .filter(|e| e.family == family && e.head_len > 0 && e.head().is_prefix_of(&prefix))
                .max_by_key(|e| e.id);
            if let Some(e) = candidate {
                seen_entries.insert(e.id);
                if tracked_ids.contains(&e.id) {
                    // The original is still open and being read: decide once it is finished.
                    return;
                }
                let start = self.finished.get(&e.id).copied().unwrap_or(0).max(e.offset);
                if gz {
                    match open_gzip_at(file, start) {
                        Ok(Some(src)) => self.attach(
                            e.id,
                            inode,
                            e.head(),
                            src,
                            start,
                            &f.path,
                            &family,
                            false,
                            scan_no,
                        ),
                        Ok(None) => self.ignore(inode, &meta, Some(e.id), scan_no),
                        Err(err) => {
                            self.stats.read_errors += 1;
                            tracing::warn!(path = %f.path.display(), error = %err, "cannot read compressed log; skipped");
                            self.ignore(inode, &meta, Some(e.id), scan_no);
                        }
                    }
                } else if start < meta.len() {
                    self.attach(
                        e.id,
                        inode,
                        e.head(),
                        Source::Plain(file),
                        start,
                        &f.path,
                        &family,
                        false,
                        scan_no,
                    );
                } else {
                    self.ignore(inode, &meta, Some(e.id), scan_no);
                }
                return;
            }
        }

        // 3. Unknown content.
        let start = if live {
            if initial && self.predates_first_start(&meta) {
                meta.len()
            } else {
                0
            }
        } else if self.unknown_rotated_is_new(initial, &meta) {
            0
        } else {
            self.ignore(inode, &meta, None, scan_no);
            return;
        };
        if gz {
            match open_gzip_at(file, 0) {
                Ok(Some(src)) => {
                    let id = self.checkpoints.register(inode, head, &f.path, &family, 0);
                    self.attach(id, inode, head, src, 0, &f.path, &family, false, scan_no);
                }
                Ok(None) => self.ignore(inode, &meta, None, scan_no),
                Err(err) => {
                    self.stats.read_errors += 1;
                    tracing::warn!(path = %f.path.display(), error = %err, "cannot read compressed log; skipped");
                    self.ignore(inode, &meta, None, scan_no);
                }
            }
        } else {
            let id = self
                .checkpoints
                .register(inode, head, &f.path, &family, start);
            self.attach(
                id,
                inode,
                head,
                Source::Plain(file),
                start,
                &f.path,
                &family,
                live,
                scan_no,
            );
        }
    }

    fn ignore(
        &mut self,
        inode: Inode,
        meta: &std::fs::Metadata,
        entry: Option<FileId>,
        scan_no: u64,
    ) {
        self.ignored.insert(
            inode,
            Ignored {
                size: meta.len(),
                mtime_ns: mtime_ns(meta),
                entry,
                seen_scan: scan_no,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn attach(
        &mut self,
        id: FileId,
        inode: Inode,
        head: Head,
        source: Source,
        offset: u64,
        path: &Path,
        family: &Path,
        live: bool,
        scan_no: u64,
    ) {
        self.stats.files_opened += 1;
        let compressed = matches!(source, Source::Gzip(_));
        tracing::debug!(path = %path.display(), id = id.0, offset, "following file");
        self.tracked.push(Tracked {
            info: FileInfo {
                id,
                path: Arc::from(path),
                family: Arc::from(family),
                compressed,
            },
            inode,
            head,
            source,
            offset,
            partial: Vec::new(),
            partial_start: offset,
            in_long_line: false,
            live,
            eof_since: None,
            seen_scan: scan_no,
        });
    }

    /// The file at index `idx` was truncated in place: its old content is retired (its entry
    /// kept, so a copy made before the truncation is still recognised) and the inode is followed
    /// from offset 0 under a new id.
    fn restart_truncated(&mut self, idx: usize) {
        self.stats.truncations += 1;
        let t = &mut self.tracked[idx];
        let Source::Plain(file) = &t.source else {
            return;
        };
        let mut head = [0u8; HEAD_BYTES];
        let n = read_at_full(file, &mut head, 0).unwrap_or(0);
        let h = Head::of_bytes(&head[..n]);
        tracing::info!(path = %t.info.path.display(), at = t.offset, "file truncated; reading it from the start");
        self.finished.insert(t.info.id, t.offset);
        self.closed.push(t.info.clone());
        let id = self
            .checkpoints
            .register(t.inode, h, &t.info.path, &t.info.family, 0);
        t.info.id = id;
        t.head = h;
        t.offset = 0;
        t.partial.clear();
        t.partial_start = 0;
        t.in_long_line = false;
        t.eof_since = None;
    }

    /// Reads what is available, at most about `budget_bytes`, handing each line to `on_line`.
    /// Returns the bytes read (0 = nothing new anywhere).
    pub fn poll<F>(&mut self, budget_bytes: usize, mut on_line: F) -> usize
    where
        F: FnMut(&FileInfo, Line<'_>),
    {
        let mut total = 0;
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < self.tracked.len() {
                if total >= budget_bytes {
                    break;
                }
                match self.read_chunk(i, &mut buf, &mut on_line) {
                    Ok(0) => {
                        if self.at_eof(i, &mut on_line) {
                            continue; // closed: the next file moved into slot i
                        }
                    }
                    Ok(n) => {
                        total += n;
                        progressed = true;
                    }
                    Err(e) => {
                        self.stats.read_errors += 1;
                        let t = &self.tracked[i];
                        tracing::warn!(path = %t.info.path.display(), error = %e, "read failed; file closed");
                        self.close(i, &mut on_line);
                        continue;
                    }
                }
                i += 1;
            }
            if !progressed || total >= budget_bytes {
                break;
            }
        }
        self.buf = buf;
        self.stats.bytes_read += total as u64;
        total
    }

    fn read_chunk<F>(&mut self, i: usize, buf: &mut Vec<u8>, on_line: &mut F) -> io::Result<usize>
    where
        F: FnMut(&FileInfo, Line<'_>),
    {
        let max_line = self.opts.max_line_bytes;
        let chunk = self.opts.read_chunk_bytes;
        if !self.tracked[i].live
            && let Source::Plain(f) = &self.tracked[i].source
        {
            // A file out of sight of scans (deleted, moved away) gets its head checked before
            // each read: a truncation refilled past our offset would otherwise go unnoticed.
            // Live files are checked at every scan, which a copytruncate's new copy triggers.
            let mut head = [0u8; HEAD_BYTES];
            let n = read_at_full(f, &mut head, 0)?;
            if !self.tracked[i].head.is_prefix_of(&head[..n]) {
                self.restart_truncated(i);
            }
        }
        let t = &mut self.tracked[i];
        buf.clear();
        buf.extend_from_slice(&t.partial);
        let carried = buf.len();
        buf.resize(carried + chunk, 0);
        let n = match &mut t.source {
            Source::Plain(f) => read_at_full(f, &mut buf[carried..], t.offset)?,
            Source::Gzip(d) => read_full(d.as_mut(), &mut buf[carried..])?,
        };
        buf.truncate(carried + n);
        if n == 0 {
            return Ok(0);
        }
        let was_head = t.offset < HEAD_BYTES as u64;
        t.offset += n as u64;
        t.eof_since = None;
        let base = t.partial_start;
        let mut pos = 0usize;
        let mut search = carried;
        while let Some(k) = memchr::memchr(b'\n', &buf[search..]) {
            let nl = search + k;
            on_line(
                &t.info,
                Line {
                    bytes: &buf[pos..nl],
                    start: base + pos as u64,
                    end: base + nl as u64 + 1,
                    first: !t.in_long_line,
                    last: true,
                },
            );
            t.in_long_line = false;
            pos = nl + 1;
            search = pos;
        }
        while buf.len() - pos >= max_line {
            let cut = utf8_cut(&buf[pos..], max_line);
            on_line(
                &t.info,
                Line {
                    bytes: &buf[pos..pos + cut],
                    start: base + pos as u64,
                    end: base + (pos + cut) as u64,
                    first: !t.in_long_line,
                    last: false,
                },
            );
            self.stats.long_line_splits += 1;
            t.in_long_line = true;
            pos += cut;
        }
        t.partial.clear();
        t.partial.extend_from_slice(&buf[pos..]);
        if t.partial.capacity() > 2 * chunk && t.partial.len() < chunk {
            t.partial.shrink_to(chunk);
        }
        t.partial_start = base + pos as u64;
        if was_head
            && (t.head.len as usize) < HEAD_BYTES
            && let Source::Plain(f) = &t.source
        {
            let mut head = [0u8; HEAD_BYTES];
            if let Ok(k) = read_at_full(f, &mut head, 0)
                && let Some(h) = t.head.upgrade(&head[..k])
            {
                t.head = h;
                self.checkpoints.update(t.info.id, Some(h), None);
            }
        }
        Ok(n)
    }

    /// Handles a file with nothing more to read. Returns true when it was closed.
    fn at_eof<F>(&mut self, i: usize, on_line: &mut F) -> bool
    where
        F: FnMut(&FileInfo, Line<'_>),
    {
        let t = &mut self.tracked[i];
        let gz = matches!(t.source, Source::Gzip(_));
        if let Source::Plain(f) = &t.source
            && let Ok(meta) = f.metadata()
        {
            if meta.len() < t.offset {
                self.restart_truncated(i);
                return false;
            }
            if meta.nlink() == 0 {
                t.live = false;
            }
        }
        if gz || !t.live {
            let since = *t.eof_since.get_or_insert_with(Instant::now);
            if gz || since.elapsed() >= self.opts.rotate_wait {
                // Before letting go, make sure the content is still what we were reading: a
                // truncation refilled to the same size leaves no other trace.
                if let Source::Plain(f) = &t.source {
                    let mut head = [0u8; HEAD_BYTES];
                    if let Ok(n) = read_at_full(f, &mut head, 0)
                        && !t.head.is_prefix_of(&head[..n])
                    {
                        self.restart_truncated(i);
                        return false;
                    }
                }
                self.close(i, on_line);
                return true;
            }
        }
        false
    }

    fn close<F>(&mut self, i: usize, on_line: &mut F)
    where
        F: FnMut(&FileInfo, Line<'_>),
    {
        let t = self.tracked.swap_remove(i);
        if !t.partial.is_empty() {
            // The file will not grow any more: its unterminated last line is a line.
            on_line(
                &t.info,
                Line {
                    bytes: &t.partial,
                    start: t.partial_start,
                    end: t.offset,
                    first: !t.in_long_line,
                    last: true,
                },
            );
        }
        self.stats.files_closed += 1;
        self.finished.insert(t.info.id, t.offset);
        if let Source::Plain(f) = &t.source {
            if let Ok(meta) = f.metadata()
                && meta.nlink() > 0
            {
                self.ignore(t.inode, &meta, Some(t.info.id), self.scans);
            }
        } else if let Ok(meta) = std::fs::metadata(&*t.info.path) {
            self.ignore(t.inode, &meta, Some(t.info.id), self.scans);
        }
        tracing::debug!(path = %t.info.path.display(), id = t.info.id.0, offset = t.offset, "file finished");
        self.closed.push(t.info);
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Opens a gzip file positioned `skip` bytes into its content; `None` when it holds no more.
fn open_gzip_at(mut file: File, skip: u64) -> io::Result<Option<Source>> {
    use std::io::Seek;
    // The head was read through a clone sharing this cursor.
    file.seek(io::SeekFrom::Start(0))?;
    let mut dec = Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)));
    let copied = io::copy(&mut (&mut *dec).take(skip), &mut io::sink())?;
    if copied < skip {
        return Ok(None);
    }
    Ok(Some(Source::Gzip(dec)))
}

/// The largest cut ≤ `max` that does not split a UTF-8 character (falls back to `max` for
/// bytes that are not UTF-8 at all).
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    let mut cut = max;
    for _ in 0..3 {
        if cut == 0 || (bytes[cut] & 0xC0) != 0x80 {
            break;
        }
        cut -= 1;
    }
    if cut == 0 || (bytes[cut] & 0xC0) == 0x80 {
        max
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_cut_never_splits_a_character() {
        let s = "aé€😀".repeat(10);
        for max in 1..s.len() {
            let c = utf8_cut(s.as_bytes(), max);
            assert!(c <= max && c > 0);
            assert!(s.is_char_boundary(c), "max {max} cut {c}");
        }
        assert_eq!(utf8_cut(&[0x80; 10], 4), 4);
    }
}
