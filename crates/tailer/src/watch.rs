//! inotify watches on the directories a scan walked, read on the tailer's own thread (see
//! [`crate::Waker`] for why). Every directory under a root, to the root's depth, is watched —
//! what the `notify` crate's recursive mode did, without its reader thread.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::Waker;

pub(crate) struct DirWatch {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    watched: HashSet<PathBuf>,
    /// Directories whose watch failed, reported once each.
    failed: HashSet<PathBuf>,
    /// The watch limit was reached and reported.
    limit_reported: bool,
    buf: Vec<u8>,
}

fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

impl DirWatch {
    pub(crate) fn new() -> std::io::Result<DirWatch> {
        Ok(DirWatch {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            watched: HashSet::new(),
            failed: HashSet::new(),
            limit_reported: false,
            buf: vec![0; 16 * 1024],
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }

    /// Watches `dir` unless it already is.
    pub(crate) fn add(&mut self, dir: &Path) {
        if self.watched.contains(dir) {
            return;
        }
        match self.inotify.watches().add(dir, mask()) {
            Ok(wd) => {
                self.dirs.insert(wd, dir.to_path_buf());
                self.watched.insert(dir.to_path_buf());
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                // The per-user watch limit: one line for the lot, not one per pod directory.
                if !self.limit_reported {
                    self.limit_reported = true;
                    tracing::warn!(path = %dir.display(), "inotify watch limit reached (fs.inotify.max_user_watches); directories beyond it are followed through the periodic rescan");
                }
            }
            Err(e) => {
                if self.failed.insert(dir.to_path_buf()) {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot watch directory; relying on rescans");
                }
            }
        }
    }

    /// Removes the watches of `dir` and of every directory under it.
    fn forget_under(&mut self, dir: &Path) {
        let wds: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, d)| d.starts_with(dir))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in wds {
            if let Some(d) = self.dirs.remove(&wd) {
                self.watched.remove(&d);
            }
            // Fails harmlessly if the kernel already dropped it.
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Reads every queued event without blocking and turns them into wake flags: data for a
    /// modified file, rescan for anything that changes which files exist (and for a queue
    /// overflow, when events were lost).
    pub(crate) fn drain(&mut self, waker: &Waker) {
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify events failed; rescanning");
                    waker.wake_rescan();
                    return;
                }
            };
            let mut any = false;
            let mut gone: Vec<PathBuf> = Vec::new();
            for ev in events {
                any = true;
                if ev.mask.contains(EventMask::MOVE_SELF) {
                    // Moved away: the watch would follow it to its new name. Drop it; the
                    // next scan watches whatever is at the old path then.
                    if let Some(dir) = self.dirs.remove(&ev.wd) {
                        self.watched.remove(&dir);
                    }
                    let _ = self.inotify.watches().remove(ev.wd.clone());
                    waker.wake_rescan();
                } else if ev.mask.contains(EventMask::IGNORED) {
                    // The directory is gone (or moved): forget it, so that a directory of the
                    // same name created later is watched again by the next scan.
                    if let Some(dir) = self.dirs.remove(&ev.wd) {
                        self.watched.remove(&dir);
                    }
                    waker.wake_rescan();
                } else if ev.mask.contains(EventMask::ISDIR)
                    && ev
                        .mask
                        .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
                {
                    // A subdirectory went away. Its own DELETE_SELF may come much later (an
                    // open file inside pins it), so forget it and everything under it now: a
                    // directory re-created at the same path must be watched again.
                    if let (Some(parent), Some(name)) = (self.dirs.get(&ev.wd), ev.name) {
                        gone.push(parent.join(name));
                    }
                    waker.wake_rescan();
                } else if ev.mask.contains(EventMask::MODIFY) {
                    waker.wake_data();
                } else {
                    waker.wake_rescan();
                }
            }
            for dir in gone {
                self.forget_under(&dir);
            }
            if !any {
                return;
            }
        }
    }
}
