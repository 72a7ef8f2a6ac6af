//! Walking the watched directories: what files exist now, followed through symlinks, with
//! symlink loops and unreadable directories reported once and skipped (issue [2/8], bad input).

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::fingerprint::Inode;

/// A directory to watch and how deep to look: depth 1 lists only the directory's own files,
/// depth 3 suits `/var/log/pods/<ns>_<pod>_<uid>/<container>/N.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub dir: PathBuf,
    pub max_depth: usize,
}

/// A regular file found by a walk (symlinks resolved; `meta` describes the target).
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub meta: Metadata,
}

/// Remembers which problems were already reported, so a broken directory is one log line, not
/// one per scan.
#[derive(Debug, Default)]
pub struct Reported {
    seen: HashSet<(PathBuf, &'static str)>,
}

impl Reported {
    fn once(&mut self, path: &Path, what: &'static str) -> bool {
        self.seen.insert((path.to_path_buf(), what))
    }
    /// Forget reports so a problem that comes back is reported again.
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// What a walk found: regular files, and the directories it listed (to watch them), each
/// with the inode its path named.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<Found>,
    pub dirs: Vec<(PathBuf, Inode)>,
}

/// Lists the regular files under `root` up to its depth.
pub fn walk(root: &Root, out: &mut Walked, reported: &mut Reported) {
    let mut ancestors = Vec::new();
    walk_dir(
        &root.dir,
        root.max_depth,
        &mut ancestors,
        out,
        reported,
        true,
    );
}

fn walk_dir(
    dir: &Path,
    depth_left: usize,
    ancestors: &mut Vec<Inode>,
    out: &mut Walked,
    reported: &mut Reported,
    is_root: bool,
) {
    if depth_left == 0 {
        return;
    }
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            if !(is_root && e.kind() == std::io::ErrorKind::NotFound) && reported.once(dir, "stat")
            {
                tracing::warn!(path = %dir.display(), error = %e, "cannot stat directory; skipped");
            }
            return;
        }
    };
    let inode = Inode::of(&meta);
    if ancestors.contains(&inode) {
        if reported.once(dir, "loop") {
            tracing::warn!(path = %dir.display(), "directory symlink loop; skipped");
        }
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            if reported.once(dir, "read_dir") {
                tracing::warn!(path = %dir.display(), error = %e, "cannot read directory; skipped");
            }
            return;
        }
    };
    ancestors.push(inode);
    out.dirs.push((dir.to_path_buf(), inode));
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        // Follows symlinks: /var/log/containers links and dockershim's links to
        // /var/lib/docker are followed to the file they name.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => out.files.push(Found { path, meta: m }),
            Ok(m) if m.is_dir() => walk_dir(&path, depth_left - 1, ancestors, out, reported, false),
            Ok(_) => {}
            Err(e) => {
                // ELOOP for a file symlink loop, ENOENT for a dangling link or a file that
                // vanished between listing and stat.
                if e.kind() != std::io::ErrorKind::NotFound && reported.once(&path, "stat") {
                    tracing::warn!(path = %path.display(), error = %e, "cannot stat file; skipped");
                }
            }
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
        walk(
            &Root {
                dir: base.to_path_buf(),
                max_depth: 10,
            },
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
            &mut shallow,
            &mut rep,
        );
        assert_eq!(shallow.files.len(), 1);
    }
}
