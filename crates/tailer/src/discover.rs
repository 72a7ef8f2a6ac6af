//! Walking the watched directories: what files exist now, followed through symlinks, with
//! symlink loops and unreadable directories reported once and skipped (issue [2/8], bad input).
//!
//! Symlinks are resolved here, not by the kernel, and only as far as the [`Confine`] allows
//! (issue 15, item 7): a link in a log directory — `/var/log` is writable by the `syslog`
//! group on Debian and Ubuntu, and a pod with a hostPath can write there too — must not turn
//! `/etc/shadow` into a log file. Every file and directory gets its *real* path: the links on
//! the way resolved as the host would resolve them (an absolute target starts again at
//! [`Confine::base`], the host's `/` as the agent sees it, e.g. `/rootfs`; `..` never climbs
//! above it), and a real path outside [`Confine::allowed`] is refused with one warning naming
//! the path. The kubelet's own links (`/var/log/containers/*.log` → `/var/log/pods/...`, and
//! cri-dockerd's `/var/log/pods/.../0.log` → `/var/lib/docker/containers/...`) stay inside and
//! keep working. The file is then opened by its real path with `O_NOFOLLOW`, and the opened
//! descriptor's path checked again ([`Confine::check_fd`]), so a link swapped in between
//! the walk and the open is caught too.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};

use crate::fingerprint::Inode;

/// A directory to watch and how deep to look: depth 1 lists only the directory's own files,
/// depth 3 suits `/var/log/pods/<ns>_<pod>_<uid>/<container>/N.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub dir: PathBuf,
    pub max_depth: usize,
}

/// A regular file found by a walk.
#[derive(Debug)]
pub struct Found {
    /// The path as listed under its root (what the caller's layout classifies).
    pub path: PathBuf,
    /// The same file with every symlink resolved (what is opened).
    pub real: PathBuf,
    /// Describes the file itself (at `real`), not a link to it.
    pub meta: Metadata,
}

/// How many symlinks one path may go through (the kernel's limit, `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Where files may really be: symlinks are followed only to places inside `allowed`.
#[derive(Debug, Clone, Default)]
pub struct Confine {
    /// The filesystem root symlinks were written for: absolute targets are resolved under it
    /// and `..` stops at it. `/` on the host; the host's `/` as mounted in a container.
    pub base: PathBuf,
    /// Real (resolved) directories every followed file must be in.
    pub allowed: Vec<PathBuf>,
}

impl Confine {
    /// `base` and every allowed directory resolved as they are now; allowed directories that
    /// do not exist are left out (nothing can be in them).
    pub fn new(base: &Path, allowed: &[PathBuf]) -> Confine {
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let allowed = allowed
            .iter()
            .filter_map(|d| resolve_path(&base, d).ok().map(|(real, _)| real))
            .collect();
        Confine { base, allowed }
    }

    pub fn allows(&self, real: &Path) -> bool {
        self.allowed.iter().any(|a| real.starts_with(a))
    }

    /// Opens a file by the real path a walk found, refusing a link in its last component
    /// (`O_NOFOLLOW`: it was not a link when resolved, so one now is a swap) and anything
    /// that is not a regular file (`O_NONBLOCK`: a FIFO swapped in must not block the open).
    pub fn open(real: &Path) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(real)
    }

    /// Where the kernel says an open file is (`/proc/self/fd/N`), checked against the allowed
    /// directories: a directory on the way swapped for a link between the walk and the open
    /// shows here. Returns that path, or an error saying why the file is refused.
    pub fn check_fd(&self, file: &File) -> Result<PathBuf, String> {
        let link = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let at = std::fs::read_link(&link).map_err(|e| {
            format!(
                "cannot tell where the opened file is ({}: {e})",
                link.display()
            )
        })?;
        // A file deleted since it was opened is shown as "<path> (deleted)".
        let at = match at.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            Some(s) => PathBuf::from(s),
            None => at,
        };
        if self.allows(&at) {
            Ok(at)
        } else {
            Err(format!(
                "the opened file is {}, outside the log directories",
                at.display()
            ))
        }
    }
}

/// Resolves `path` (absolute, or relative to `base`) under `base`; see [`resolve`].
pub fn resolve_path(base: &Path, path: &Path) -> io::Result<(PathBuf, Metadata)> {
    match path.strip_prefix(base) {
        Ok(rel) => resolve(base, base, rel),
        // Not under base: resolved from the real `/`, absolute targets still under base.
        Err(_) => resolve(base, Path::new("/"), path.strip_prefix("/").unwrap_or(path)),
    }
}

/// Resolves `rest`, relative to the real (already resolved) directory `dir`, following
/// symlinks the way the host would: an absolute target starts again at `base`, `..` does not
/// climb above `base`. Returns the real path and the metadata of what it names (never of a
/// link). Errors: the path does not exist (`NotFound`), too many links (`ELOOP`), or a
/// component that is not a directory.
pub fn resolve(base: &Path, dir: &Path, rest: &Path) -> io::Result<(PathBuf, Metadata)> {
    let mut out = dir.to_path_buf();
    // Components still to walk, the next one last.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, rest);
    let mut links = 0;
    let mut last: Option<Metadata> = None;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if out != base {
                out.pop();
            }
            last = None;
            continue;
        }
        let next = out.join(&c);
        let meta = std::fs::symlink_metadata(&next)?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = std::fs::read_link(&next)?;
            if target.is_absolute() {
                out = base.to_path_buf();
            }
            push_components(&mut todo, &target);
            last = None;
        } else {
            if !todo.is_empty() && !meta.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            out = next;
            last = Some(meta);
        }
    }
    let meta = match last {
        Some(m) => m,
        None => std::fs::symlink_metadata(&out)?,
    };
    Ok((out, meta))
}

/// Pushes `path`'s components onto the stack so that the first is popped first.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// Remembers which problems were already reported, so a broken directory is one log line, not
/// one per scan.
#[derive(Debug, Default)]
pub struct Reported {
    seen: HashSet<(PathBuf, &'static str)>,
}

impl Reported {
    pub(crate) fn once(&mut self, path: &Path, what: &'static str) -> bool {
        self.seen.insert((path.to_path_buf(), what))
    }
    /// Forget reports so a problem that comes back is reported again.
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// What a walk found: regular files, and the directories it listed (to watch them), each by
/// its real path, with the inode it named.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<Found>,
    pub dirs: Vec<(PathBuf, Inode)>,
}

/// Lists the regular files under `root` up to its depth, following symlinks only inside the
/// confine.
pub fn walk(root: &Root, confine: &Confine, out: &mut Walked, reported: &mut Reported) {
    if root.max_depth == 0 {
        return;
    }
    let (real, meta) = match resolve_path(&confine.base, &root.dir) {
        Ok(r) => r,
        // A missing root is not an error: /var/log/pods does not exist on a non-node host.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            if reported.once(&root.dir, "stat") {
                tracing::warn!(path = %root.dir.display(), error = %e, "cannot stat directory; skipped");
            }
            return;
        }
    };
    if !confine.allows(&real) {
        refuse(&root.dir, &real, reported);
        return;
    }
    if !meta.is_dir() {
        return;
    }
    let mut ancestors = Vec::new();
    walk_dir(
        &root.dir,
        &real,
        &meta,
        root.max_depth,
        &mut ancestors,
        confine,
        out,
        reported,
    );
}

fn refuse(path: &Path, real: &Path, reported: &mut Reported) {
    if reported.once(path, "outside") {
        tracing::warn!(path = %path.display(), leads_to = %real.display(),
            "symlink leads outside the log directories; not followed");
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_dir(
    dir: &Path,
    real: &Path,
    meta: &Metadata,
    depth_left: usize,
    ancestors: &mut Vec<Inode>,
    confine: &Confine,
    out: &mut Walked,
    reported: &mut Reported,
) {
    if depth_left == 0 {
        return;
    }
    let inode = Inode::of(meta);
    if ancestors.contains(&inode) {
        if reported.once(dir, "loop") {
            tracing::warn!(path = %dir.display(), "directory symlink loop; skipped");
        }
        return;
    }
    let entries = match std::fs::read_dir(real) {
        Ok(e) => e,
        Err(e) => {
            if reported.once(dir, "read_dir") {
                tracing::warn!(path = %dir.display(), error = %e, "cannot read directory; skipped");
            }
            return;
        }
    };
    ancestors.push(inode);
    out.dirs.push((real.to_path_buf(), inode));
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let path = dir.join(&name);
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let found = if is_link {
            // /var/log/containers links and cri-dockerd's links to /var/lib/docker are
            // followed to the file they name, if it is inside the confine.
            resolve(&confine.base, real, Path::new(&name))
        } else {
            entry.metadata().map(|m| (real.join(&name), m))
        };
        let (entry_real, m) = match found {
            Ok(f) => f,
            Err(e) => {
                // ELOOP for a symlink loop, ENOENT for a dangling link or a file that vanished
                // between listing and stat.
                if e.kind() != io::ErrorKind::NotFound && reported.once(&path, "stat") {
                    tracing::warn!(path = %path.display(), error = %e, "cannot stat file; skipped");
                }
                continue;
            }
        };
        if is_link && !confine.allows(&entry_real) {
            refuse(&path, &entry_real, reported);
            continue;
        }
        if m.is_file() {
            out.files.push(Found {
                path,
                real: entry_real,
                meta: m,
            });
        } else if m.is_dir() {
            walk_dir(
                &path,
                &entry_real,
                &m,
                depth_left - 1,
                ancestors,
                confine,
                out,
                reported,
            );
        }
    }
    ancestors.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_skips_loops_and_respects_depth() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path();
        std::fs::create_dir_all(base.join("a/b/c")).unwrap();
        std::fs::write(base.join("a/top.log"), "x").unwrap();
        std::fs::write(base.join("a/b/c/deep.log"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("a"), base.join("a/b/loop")).unwrap();
        std::os::unix::fs::symlink(base.join("self1"), base.join("self2")).unwrap();
        std::os::unix::fs::symlink(base.join("self2"), base.join("self1")).unwrap();
        std::os::unix::fs::symlink(base.join("a/top.log"), base.join("link.log")).unwrap();
        let mut out = Walked::default();
        let mut rep = Reported::default();
        let confine = Confine::new(Path::new("/"), &[base.to_path_buf()]);
        walk(
            &Root {
                dir: base.to_path_buf(),
                max_depth: 10,
            },
            &confine,
            &mut out,
            &mut rep,
        );
        let mut names: Vec<String> = out
            .files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names, vec!["a/b/c/deep.log", "a/top.log", "link.log"]);
        let mut dirs: Vec<String> = out
            .dirs
            .iter()
            .map(|(d, _)| d.strip_prefix(base).unwrap().to_string_lossy().into_owned())
            .collect();
        dirs.sort();
        // The looping link is not listed again.
        assert_eq!(dirs, vec!["", "a", "a/b", "a/b/c"]);
        assert!(rep.seen.iter().any(|(_, w)| *w == "loop"));
        assert!(
            rep.seen
                .iter()
                .any(|(p, w)| *w == "stat" && p.ends_with("self1"))
        );

        let mut shallow = Walked::default();
        walk(
            &Root {
                dir: base.join("a"),
                max_depth: 1,
            },
            &confine,
            &mut shallow,
            &mut rep,
        );
        assert_eq!(shallow.files.len(), 1);
        assert_eq!(shallow.dirs.len(), 1);
        assert_eq!(shallow.dirs[0].0, base.join("a"));
        // A missing root is not an error: /var/log/pods does not exist on a non-node host.
        walk(
            &Root {
                dir: base.join("missing"),
                max_depth: 3,
            },
            &confine,
            &mut shallow,
            &mut rep,
        );
        assert_eq!(shallow.files.len(), 1);
    }

    #[test]
    fn links_resolve_as_the_host_would_and_stay_inside_the_confine() {
        let d = tempfile::tempdir().unwrap();
        // A host's / as a container sees it: `host`, with its own /etc and /var/log.
        let host = d.path().join("host");
        let log = host.join("var/log");
        std::fs::create_dir_all(log.join("pods/ns_p_u/c")).unwrap();
        std::fs::create_dir_all(log.join("containers")).unwrap();
        std::fs::create_dir_all(host.join("etc")).unwrap();
        std::fs::write(log.join("pods/ns_p_u/c/0.log"), "pod line\n").unwrap();
        std::fs::write(host.join("etc/shadow"), "root:secret\n").unwrap();
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, log.join(at)).unwrap();
        };
        // The kubelet's link, absolute as on the host: it resolves under `host`.
        link("/var/log/pods/ns_p_u/c/0.log", "containers/p_ns_c-abc.log");
        // Planted links out of /var/log: absolute, relative, and `..` past the host's /.
        link("/etc/shadow", "syslog");
        link("../../etc/shadow", "messages");
        link("../../../../../../../../etc/shadow", "secure");
        // A directory link out, and one inside.
        link("/etc", "pods/ns_q_u");
        link("pods/ns_p_u", "alias");

        let confine = Confine::new(&host, std::slice::from_ref(&log));
        assert_eq!(confine.allowed, vec![std::fs::canonicalize(&log).unwrap()]);
        let (real, meta) =
            resolve_path(&confine.base, &log.join("containers/p_ns_c-abc.log")).unwrap();
        assert_eq!(
            real,
            std::fs::canonicalize(log.join("pods/ns_p_u/c/0.log")).unwrap()
        );
        assert!(meta.is_file());
        for name in ["syslog", "messages", "secure"] {
            let (real, _) = resolve_path(&confine.base, &log.join(name)).unwrap();
            assert_eq!(
                real,
                confine.base.join("etc/shadow"),
                "{name} stays under the host's /"
            );
            assert!(!confine.allows(&real));
        }

        let mut out = Walked::default();
        let mut rep = Reported::default();
        for (dir, max_depth) in [(log.clone(), 3), (log.join("pods"), 3)] {
            walk(&Root { dir, max_depth }, &confine, &mut out, &mut rep);
        }
        let mut names: Vec<String> = out
            .files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(&log)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "alias/c/0.log",
                "containers/p_ns_c-abc.log",
                "pods/ns_p_u/c/0.log"
            ],
            "nothing outside /var/log is listed"
        );
        assert!(out.files.iter().all(|f| confine.allows(&f.real)));
        let mut refused: Vec<String> = rep
            .seen
            .iter()
            .filter(|(_, w)| *w == "outside")
            .map(|(p, _)| p.strip_prefix(&log).unwrap().to_string_lossy().into_owned())
            .collect();
        refused.sort();
        assert_eq!(refused, ["messages", "pods/ns_q_u", "secure", "syslog"]);
        // A root that is itself a link out of the confine is refused as a whole.
        std::fs::create_dir_all(host.join("elsewhere")).unwrap();
        std::fs::write(host.join("elsewhere/0.log"), "x\n").unwrap();
        link("/elsewhere", "runtime");
        let mut out = Walked::default();
        walk(
            &Root {
                dir: log.join("runtime"),
                max_depth: 2,
            },
            &confine,
            &mut out,
            &mut rep,
        );
        assert!(out.files.is_empty() && out.dirs.is_empty());
    }

    #[test]
    fn an_opened_file_is_checked_where_the_kernel_says_it_is() {
        let d = tempfile::tempdir().unwrap();
        let inside = d.path().join("logs");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("a.log"), "a\n").unwrap();
        std::fs::write(d.path().join("outside"), "secret\n").unwrap();
        std::os::unix::fs::symlink(d.path().join("outside"), inside.join("b.log")).unwrap();
        let confine = Confine::new(Path::new("/"), std::slice::from_ref(&inside));
        let f = Confine::open(&inside.join("a.log")).unwrap();
        assert_eq!(confine.check_fd(&f).unwrap(), inside.join("a.log"));
        // A link where a real path was resolved: O_NOFOLLOW refuses to open it at all.
        let e = Confine::open(&inside.join("b.log")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        // Opened by another way (a directory swapped for a link): the descriptor tells.
        let f = File::open(inside.join("b.log")).unwrap();
        let e = confine.check_fd(&f).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        // Deleted after opening: still known by where it was.
        let f = Confine::open(&inside.join("a.log")).unwrap();
        std::fs::remove_file(inside.join("a.log")).unwrap();
        assert_eq!(confine.check_fd(&f).unwrap(), inside.join("a.log"));
    }
}
