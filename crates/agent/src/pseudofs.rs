//! Pseudo-files kept open between collections and re-read from offset 0 — used for cgroup
//! files. (Not for `/proc/<pid>/net/dev`: an open file there would pin the network namespace
//! of a process that may be gone.)
//!
//! A collection on a node of a few hundred containers reads thousands of small cgroup files.
//! Opening and closing each one every interval costs more than reading it (a path walk,
//! kernfs revalidation and permission checks per file), so the files stay open: the kernel
//! regenerates a seq_file's contents on every read at offset 0, which is what `pread` does.
//! A file not read during the last collection is closed by [`OpenFiles::sweep`]; one that
//! fails (its cgroup was removed: `ENODEV`) is dropped and opened again once, so a cgroup that
//! is re-created at the same path is picked up in the same read. At most half of the process's
//! open-file limit is held. The price is kernel memory: each open kernfs file keeps its
//! seq_file buffer (a page or more) until it is closed, charged to the agent's memory cgroup
//! (measured in docs/benchmarks.md). Files on an ordinary filesystem (test fixtures, a `host_root`
//! copy) keep a regular file's semantics — a removed file stays readable through an open
//! descriptor — so their directories are watched with inotify: a file removed, renamed or
//! created anew, or its whole directory removed, is closed at the next [`OpenFiles::sweep`] and
//! opened again when next read (a removal in the middle of a collection shows at the next one).
//! Where no watch can be had (inotify's per-user limits, or after its queue overflowed), every
//! read of a held file checks instead that the file still has a name.

use kinsight_model::hash::FastBuildHasher;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct OpenFiles {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed by the directory path's bytes (hashing a `Path` walks its components): a cgroup's
    /// files are looked up by name within their directory.
    dirs: HashMap<OsString, HeldDir, FastBuildHasher>,
    /// Files held in all directories.
    held: usize,
    /// Collections so far ([`OpenFiles::sweep`] calls).
    generation: u64,
    /// How many files may be held; refreshed from RLIMIT_NOFILE at every sweep.
    cap: usize,
    /// Watches on directories of ordinary files (created with the first such file).
    watcher: Option<Watcher>,
    /// Check ordinary files by link count only, as when no watch can be added (tests).
    no_watches: bool,
}

#[derive(Debug, Default)]
struct HeldDir {
    files: Vec<Held>,
    /// Ordinary files: the inotify watch on the directory, if one could be added (without
    /// one, every read checks its file's link count).
    watch: Option<i32>,
}

#[derive(Debug)]
struct Held {
    name: OsString,
    file: File,
    used: u64,
    /// Not on cgroupfs/procfs/sysfs: a removed file would still read (see the module docs).
    ordinary: bool,
}

impl OpenFiles {
    pub fn new() -> OpenFiles {
        let o = OpenFiles::default();
        o.sweep();
        o
    }

    /// Reads the whole of `path` into `buf` (replacing its contents).
    pub fn read(&self, path: &Path, buf: &mut String) -> io::Result<()> {
        match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => self.read_in(dir, name, buf),
            _ => read_at_start(&File::open(path)?, buf),
        }
    }

    /// Reads the whole of file `name` of directory `dir` into `buf` (replacing its contents).
    pub fn read_in(
        &self,
        dir: &Path,
        name: impl AsRef<std::ffi::OsStr>,
        buf: &mut String,
    ) -> io::Result<()> {
        let name = name.as_ref();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let generation = inner.generation;
        if let Some(d) = inner.dirs.get_mut(dir.as_os_str()) {
            if let Some(i) = d.files.iter().position(|h| h.name == name) {
                let held = &mut d.files[i];
                held.used = generation;
                let removed = held.ordinary
                    && d.watch.is_none()
                    && held.file.metadata().is_ok_and(|m| m.nlink() == 0);
                if !removed && read_at_start(&d.files[i].file, buf).is_ok() {
                    return Ok(());
                }
                d.files.swap_remove(i);
                inner.held -= 1;
            }
        }
        let path = dir.join(name);
        let mut file = File::open(&path)?;
        if inner.held >= inner.cap {
            return read_at_start(&file, buf);
        }
        let ordinary = !on_pseudo_filesystem(&file);
        let Inner {
            dirs,
            held,
            watcher,
            no_watches,
            ..
        } = &mut *inner;
        let d = dirs.entry(dir.as_os_str().to_owned()).or_default();
        if ordinary && !*no_watches && d.watch.is_none() {
            if watcher.is_none() {
                *watcher = Watcher::new();
            }
            d.watch = watcher.as_mut().and_then(|w| w.add(dir));
            if d.watch.is_some() {
                // Opened before the watch existed: a replacement in between would go unseen.
                file = File::open(&path)?;
            }
        }
        read_at_start(&file, buf)?;
        *held += 1;
        d.files.push(Held {
            name: name.to_owned(),
            ordinary,
            file,
            used: generation,
        });
        Ok(())
    }

    /// Starts a collection: closes the files that were not read during the previous one, and
    /// those an inotify watch saw removed or replaced.
    pub fn sweep(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner {
            dirs,
            held,
            generation,
            cap,
            watcher,
            ..
        } = &mut *inner;
        if let Some(w) = watcher {
            let changes = w.changes();
            let mut unwatch = Vec::new();
            for (wd, name) in &changes.removed {
                for dir in w.dirs.get(wd).into_iter().flatten() {
                    if let Some(d) = dirs.get_mut(dir.as_os_str()) {
                        match name {
                            Some(n) => d.files.retain(|h| &h.name != n),
                            None => {
                                // The directory itself was removed or moved away: a watch
                                // follows a moved directory, so it is dropped too.
                                d.files.clear();
                                d.watch = None;
                                unwatch.push((*wd, dir.clone()));
                            }
                        }
                    }
                }
            }
            for (wd, dir) in unwatch {
                w.remove(wd, &dir);
            }
            for wd in changes.gone_watches {
                // The kernel dropped the watch: its directory is gone. (Watches removed here
                // have left `w.dirs` already.)
                for dir in w.dirs.remove(&wd).into_iter().flatten() {
                    if let Some(d) = dirs.get_mut(dir.as_os_str()) {
                        d.watch = None;
                        d.files.clear();
                    }
                }
            }
            if changes.overflowed {
                // Changes were lost: every watched directory's files are opened (and watched)
                // again when next read.
                for (key, d) in dirs.iter_mut() {
                    if let Some(wd) = d.watch.take() {
                        d.files.clear();
                        w.remove(wd, Path::new(key));
                    }
                }
            }
        }
        let previous = *generation;
        dirs.retain(|key, d| {
            d.files.retain(|h| h.used >= previous);
            let keep = !d.files.is_empty();
            if !keep {
                if let (Some(w), Some(wd)) = (watcher.as_mut(), d.watch) {
                    w.remove(wd, Path::new(key));
                }
            }
            keep
        });
        *held = dirs.values().map(|d| d.files.len()).sum();
        *generation += 1;
        *cap = open_file_limit() / 2;
    }

    /// Files held open now.
    pub fn held(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).held
    }
}

/// An inotify instance watching directories of held ordinary files.
#[derive(Debug)]
struct Watcher {
    fd: std::os::fd::OwnedFd,
    /// Watch descriptor → directories (paths that lead to one directory share its watch).
    dirs: HashMap<i32, Vec<std::path::PathBuf>>,
}

/// What a [`Watcher`] saw since it was last asked.
#[derive(Debug, Default)]
struct Changes {
    /// (watch, file name) of a file removed, renamed or created; no name: the directory itself.
    removed: Vec<(i32, Option<OsString>)>,
    /// Watches the kernel dropped (their directory is gone).
    gone_watches: Vec<i32>,
    overflowed: bool,
}

impl Watcher {
    fn new() -> Option<Watcher> {
        // SAFETY: inotify_init1 returns a new descriptor (or -1), which we then own.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        use std::os::fd::FromRawFd;
        Some(Watcher {
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            dirs: HashMap::new(),
        })
    }

    fn add(&mut self, dir: &Path) -> Option<i32> {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mask = libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_CREATE
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF
            | libc::IN_ONLYDIR;
        // SAFETY: a NUL-terminated path and a descriptor we hold.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return None;
        }
        self.dirs.entry(wd).or_default().push(dir.to_path_buf());
        Some(wd)
    }

    /// `dir` no longer needs watch `wd`; the watch goes with the last path that used it.
    fn remove(&mut self, wd: i32, dir: &Path) {
        use std::os::fd::AsRawFd;
        let Some(paths) = self.dirs.get_mut(&wd) else {
            return;
        };
        paths.retain(|p| p != dir);
        if paths.is_empty() {
            self.dirs.remove(&wd);
            // SAFETY: removes a watch of the descriptor we hold (an unknown one is EINVAL).
            unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
        }
    }

    /// Drains the pending events.
    fn changes(&mut self) -> Changes {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let mut out = Changes::default();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reads into a buffer we own, at most its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break; // EAGAIN: nothing more
            }
            let mut at = 0usize;
            let head = std::mem::size_of::<libc::inotify_event>();
            while at + head <= n as usize {
                // SAFETY: the kernel wrote whole events; the header is read unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
                let name_bytes = &buf[at + head..(at + head + ev.len as usize).min(n as usize)];
                let name_len = name_bytes
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(name_bytes.len());
                let name = (name_len > 0)
                    .then(|| std::ffi::OsStr::from_bytes(&name_bytes[..name_len]).to_owned());
                if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                    out.overflowed = true;
                } else if ev.mask & libc::IN_IGNORED != 0 {
                    out.gone_watches.push(ev.wd);
                } else if ev.mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                    out.removed.push((ev.wd, None));
                } else if name.is_some() {
                    out.removed.push((ev.wd, name));
                }
                at += head + ev.len as usize;
            }
        }
        out
    }
}

/// Bytes asked for per `pread`.
const READ_CHUNK: usize = 4096;

/// `pread`s from offset 0 to the end. Plain reads: `read_to_string` would `statx` and `lseek`
/// first to size its buffer, two more system calls for files that report size 0.
///
/// A read that returns less than half of [`READ_CHUNK`] is taken as the end, which saves the
/// second `pread` (that would return 0) for nearly every file: a regular file reads short
/// only at its end, and a seq_file (cgroupfs, procfs) returns short of the buffer only at the
/// end of its records or when its next record does not fit in its page-sized kernel buffer —
/// which leaves more than half a page filled for records shorter than 2 KiB, as every file
/// read through here has (cgroup files, `net/dev`).
pub(crate) fn read_at_start(file: &File, buf: &mut String) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut bytes = std::mem::take(buf).into_bytes();
    bytes.clear();
    loop {
        bytes.reserve(READ_CHUNK);
        let len = bytes.len();
        // SAFETY: pread writes at most READ_CHUNK bytes into the reserved spare capacity
        // after `len`; only the bytes it reports written become part of the vector.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                bytes.as_mut_ptr().add(len).cast(),
                READ_CHUNK,
                len as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        // SAFETY: the kernel initialised these n bytes.
        unsafe { bytes.set_len(len + n) };
        if n < READ_CHUNK / 2 {
            break;
        }
    }
    *buf = String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(())
}

/// Whether the file is on cgroupfs (v1 or v2), procfs or sysfs, whose files report their
/// removal on read (`ENODEV`) instead of serving what they held.
fn on_pseudo_filesystem(file: &File) -> bool {
    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    use std::os::fd::AsRawFd;
    // SAFETY: fstatfs fills the struct we own, for a descriptor we hold.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between libc targets
    let t = st.f_type as i64;
    [
        CGROUP_SUPER_MAGIC,
        CGROUP2_SUPER_MAGIC,
        PROC_SUPER_MAGIC,
        SYSFS_MAGIC,
    ]
    .contains(&t)
}

/// The soft RLIMIT_NOFILE (1024 when it cannot be read).
fn open_file_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .min(1 << 20)
}

/// Raises the soft open-file limit to the hard one (as the Go runtime does for the CloudWatch
/// agent), so that the files of a large node can be held open. Returns the new soft limit.
pub fn raise_open_file_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
    open_file_limit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn rereads_new_contents_drops_vanished_files_and_sweeps_unused_ones() {
        rereads_and_drops(OpenFiles::new());
    }

    #[test]
    fn without_a_watch_a_removed_directory_is_found_by_link_count() {
        let files = OpenFiles::default();
        files.inner.lock().unwrap().no_watches = true;
        files.sweep();
        rereads_and_drops(files);
    }

    fn rereads_and_drops(files: OpenFiles) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let cg = dir.path().join("cg");
        std::fs::create_dir(&cg).unwrap();
        let b = cg.join("b");
        let b2 = cg.join("b2");
        std::fs::write(&a, "1\n").unwrap();
        std::fs::write(&b, "x").unwrap();
        std::fs::write(&b2, "z").unwrap();
        let mut buf = String::new();
        files.read(&a, &mut buf).unwrap();
        assert_eq!(buf, "1\n");
        files.read(&b, &mut buf).unwrap();
        files.read(&b2, &mut buf).unwrap();
        assert_eq!(files.held(), 3);
        // Rewritten in place (as the kernel regenerates a seq_file): the held file sees it.
        std::fs::write(&a, "22222\n").unwrap();
        files.read(&a, &mut buf).unwrap();
        assert_eq!(buf, "22222\n");
        // A removed directory is gone at the next collection, even on a filesystem where the
        // held descriptors could still read its files (as a removed cgroup's files fail with
        // ENODEV): the first read in it finds its file unlinked, the others open again too.
        std::fs::remove_dir_all(&cg).unwrap();
        files.sweep();
        files.read(&a, &mut buf).unwrap();
        for f in [&b2, &b] {
            assert_eq!(
                files.read(f, &mut buf).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
        }
        assert_eq!(files.held(), 1);
        // Re-created, it is read anew.
        std::fs::create_dir(&cg).unwrap();
        std::fs::write(&b, "y").unwrap();
        files.read(&b, &mut buf).unwrap();
        assert_eq!(buf, "y");
        files.sweep();
        files.read(&b, &mut buf).unwrap();
        assert_eq!(buf, "y");
        assert_eq!(files.held(), 2);
        // Two sweeps without reading `b`: it is closed.
        files.sweep();
        files.read(&a, &mut buf).unwrap();
        files.sweep();
        assert_eq!(files.held(), 1);
        // Large files are read to the end.
        let big = "k 1\n".repeat(5000);
        std::fs::write(&a, &big).unwrap();
        files.read(&a, &mut buf).unwrap();
        assert_eq!(buf.len(), big.len());
    }

    #[test]
    fn a_removed_or_replaced_file_of_a_watched_directory_is_read_anew() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1").unwrap();
        std::fs::write(&b, "2").unwrap();
        let files = OpenFiles::new();
        let mut buf = String::new();
        files.read(&a, &mut buf).unwrap();
        files.read(&b, &mut buf).unwrap();
        // `a` replaced by a rename (a new file under the name), `b` removed: both noticed at
        // the next collection; the directory itself is still there.
        replace(&a, "11");
        std::fs::remove_file(&b).unwrap();
        files.sweep();
        files.read(&a, &mut buf).unwrap();
        assert_eq!(buf, "11");
        assert_eq!(
            files.read(&b, &mut buf).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(files.held(), 1);
        // Unchanged files stay held and are not opened again.
        files.sweep();
        files.read(&a, &mut buf).unwrap();
        assert_eq!((buf.as_str(), files.held()), ("11", 1));
    }

    /// Replaces `path` with a new file holding `text`, as an atomic writer does (write a
    /// temporary file, rename it over the name).
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// Held `a` and `b` of a fresh directory; `b` then replaced by a rename.
    fn held_pair_with_b_replaced(files: &OpenFiles) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "old").unwrap();
        let mut buf = String::new();
        files.read(&a, &mut buf).unwrap();
        files.read(&b, &mut buf).unwrap();
        replace(&b, "new");
        (dir, a, b)
    }

    #[test]
    fn without_a_watch_every_held_file_is_checked() {
        let files = OpenFiles::default();
        files.inner.lock().unwrap().no_watches = true;
        files.sweep();
        let (_dir, a, b) = held_pair_with_b_replaced(&files);
        let mut buf = String::new();
        files.sweep();
        files.read(&a, &mut buf).unwrap();
        files.read(&b, &mut buf).unwrap();
        assert_eq!(buf, "new");
    }

    #[test]
    fn changes_queued_before_an_overflow_are_not_lost() {
        let files = OpenFiles::new();
        let (dir, a, b) = held_pair_with_b_replaced(&files);
        // More events than the queue holds (max_queued_events, 16384 by default).
        let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384);
        for i in 0..limit / 2 + 10 {
            let p = dir.path().join(format!("x{i}"));
            std::fs::write(&p, "").unwrap();
            std::fs::remove_file(&p).unwrap();
        }
        let mut buf = String::new();
        files.sweep();
        files.read(&a, &mut buf).unwrap();
        files.read(&b, &mut buf).unwrap();
        assert_eq!(buf, "new");
        // Watched again afterwards.
        replace(&b, "newer");
        files.sweep();
        files.read(&b, &mut buf).unwrap();
        assert_eq!(buf, "newer");
    }

    #[test]
    fn two_paths_to_one_directory_share_its_watch() {
        let files = OpenFiles::new();
        let (dir, _a, b) = held_pair_with_b_replaced(&files);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let via_link = link.join("b");
        let mut buf = String::new();
        files.sweep();
        files.read(&via_link, &mut buf).unwrap();
        assert_eq!(buf, "new");
        // The first path is not read for two collections: its files and its use of the watch
        // go; the link's files are still watched.
        files.sweep();
        files.read(&via_link, &mut buf).unwrap();
        files.sweep();
        replace(&b, "newer");
        files.sweep();
        files.read(&via_link, &mut buf).unwrap();
        assert_eq!(buf, "newer");
    }

    #[test]
    fn files_are_read_whole_whatever_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = String::from("left over");
        for size in [0, 1, 2047, 2048, 2049, 4095, 4096, 4097, 8192, 10_000] {
            let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &text).unwrap();
            read_at_start(&File::open(&p).unwrap(), &mut buf).unwrap();
            assert_eq!(buf, text, "{size} bytes");
        }
        // Pseudo-files of many records, larger than a page (seq_file hands them out a page at
        // a time) and small ones.
        for p in [
            "/proc/kallsyms",
            "/proc/self/mountinfo",
            "/proc/self/net/dev",
            "/proc/self/limits",
            "/proc/self/status",
        ] {
            let Ok(expected) = std::fs::read_to_string(p) else {
                continue;
            };
            read_at_start(&File::open(p).unwrap(), &mut buf).unwrap();
            assert_eq!(buf, expected, "{p}");
        }
    }

    #[test]
    fn a_removed_real_cgroup_is_not_read_through_its_held_file() {
        let base = Path::new("/sys/fs/cgroup/memory");
        if !base.join("memory.stat").exists() {
            eprintln!("no cgroup v1 memory hierarchy here; skipped");
            return;
        }
        let dir = base.join(format!("kinsight-pseudofs-{}", std::process::id()));
        if std::fs::create_dir(&dir).is_err() {
            eprintln!("cannot create a cgroup here (not root?); skipped");
            return;
        }
        let files = OpenFiles::new();
        let mut buf = String::new();
        let file = dir.join("memory.usage_in_bytes");
        files.read(&file, &mut buf).unwrap();
        assert_eq!(files.held(), 1);
        std::fs::remove_dir(&dir).unwrap();
        let err = files.read(&file, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert_eq!(files.held(), 0);
    }

    #[test]
    fn real_cgroup_files_are_regenerated_on_every_read() {
        // cpuacct.usage of the root cgroup grows while this process burns CPU.
        let path = Path::new("/sys/fs/cgroup/cpuacct/cpuacct.usage");
        let path = if path.exists() {
            path
        } else {
            Path::new("/sys/fs/cgroup/cpu.stat")
        };
        if !path.exists() {
            eprintln!("no cgroup CPU accounting file here; skipped");
            return;
        }
        let files = OpenFiles::new();
        let mut first = String::new();
        files.read(path, &mut first).unwrap();
        let mut x = 0u64;
        let mut next = String::new();
        for i in 0..200 {
            for j in 0..200_000u64 {
                x = x.wrapping_mul(31).wrapping_add(j ^ i);
            }
            std::hint::black_box(x);
            files.read(path, &mut next).unwrap();
            if next != first {
                break;
            }
        }
        assert_eq!(files.held(), 1);
        assert_ne!(first, next, "a held cgroup file must show new counters");
    }
}
