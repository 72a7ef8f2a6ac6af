//! inotify watches on the directories a scan walked, read on the tailer's own thread (see
//! [`crate::Waker`] for why). Every directory under a root, to the root's depth, is watched —
//! what the `notify` crate's recursive mode did, without its reader thread.
//!
//! Events only say "look again": data for a modified file, a rescan for anything else. Which
//! directories are watched is decided by each scan ([`DirWatch::sync`]): what the walk listed,
//! identified by path *and* inode, so a directory deleted and re-created at the same path, one
//! moved away, or one reached by two paths never leaves a stale watch behind — also when the
//! kernel's event queue overflowed and events were lost.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::Waker;
use crate::fingerprint::Inode;

pub(crate) struct DirWatch {
    inotify: Inotify,
    /// Watched directories: path → (watch, the inode the path named when it was added).
    /// Two paths to one directory share one watch descriptor.
    paths: HashMap<PathBuf, (WatchDescriptor, Inode)>,
    /// Directories whose watch failed, reported once each (forgotten once not listed).
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
            paths: HashMap::new(),
            failed: HashSet::new(),
            limit_reported: false,
            buf: vec![0; 16 * 1024],
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }

    /// Makes the watched set what a walk just listed: drops watches of paths no longer
    /// listed (or now naming another directory), adds the new ones. Returns whether a watch
    /// was added — then the caller scans once more, because whatever appeared in a new
    /// directory between the walk listing it and its watch starting raised no event.
    pub(crate) fn sync(&mut self, listed: &[(PathBuf, Inode)]) -> bool {
        let now: HashMap<&PathBuf, Inode> = listed.iter().map(|(p, i)| (p, *i)).collect();
        let stale: Vec<PathBuf> = self
            .paths
            .iter()
            .filter(|(p, (_, ino))| now.get(p) != Some(ino))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            if let Some((wd, _)) = self.paths.remove(&p)
                && !self.paths.values().any(|(w, _)| *w == wd)
            {
                // Fails harmlessly if the kernel already dropped it (directory removed).
                let _ = self.inotify.watches().remove(wd);
            }
        }
        self.failed.retain(|p| now.contains_key(p));
        let mut added = false;
        for (dir, ino) in listed {
            if self.paths.contains_key(dir) {
                continue;
            }
            match self.inotify.watches().add(dir, mask()) {
                Ok(wd) => {
                    self.paths.insert(dir.clone(), (wd, *ino));
                    added = true;
                }
                // Gone since the walk listed it: the next scan will not list it either.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    // The per-user watch limit: one line for the lot, not one per directory.
                    if !self.limit_reported {
                        self.limit_reported = true;
                        tracing::warn!(path = %dir.display(), "inotify watch limit reached (fs.inotify.max_user_watches); directories beyond it are followed through the periodic rescan");
                    }
                }
                Err(e) => {
                    if self.failed.insert(dir.clone()) {
                        tracing::warn!(path = %dir.display(), error = %e, "cannot watch directory; relying on rescans");
                    }
                }
            }
        }
        added
    }

    /// Directories watched now (for tests and stats).
    pub(crate) fn watched(&self) -> usize {
        self.paths.len()
    }

    /// Reads every queued event without blocking and turns them into wake flags: data for a
    /// modified file, rescan for anything that changes which files or directories exist (and
    /// for a queue overflow, when events were lost).
    pub(crate) fn drain(&mut self, waker: &Waker) {
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify events failed; rescanning");
                    waker.note_rescan();
                    return;
                }
            };
            let mut any = false;
            let (mut data, mut rescan) = (false, false);
            for ev in events {
                any = true;
                if ev.mask.contains(EventMask::MODIFY) {
                    data = true;
                } else if ev.mask.contains(EventMask::IGNORED) {
                    // Only news if we still count on that watch (its directory went away);
                    // watches we removed ourselves end with an IGNORED too.
                    rescan |= self.paths.values().any(|(w, _)| *w == ev.wd);
                } else {
                    rescan = true;
                }
            }
            if data {
                waker.note_data();
            }
            if rescan {
                waker.note_rescan();
            }
            if !any {
                return;
            }
        }
    }
}
