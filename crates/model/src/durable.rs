//! Persisted state on local disk, written so that a crash or a power cut leaves the old or the
//! new version, never a mix and never nothing (issue 15, item 11). The one place where kinsight
//! spells out the order of a durable replacement; the store, the metric store, the alarm
//! service, the token file and the agent's spool all go through it.
//!
//! Replacing `dir/name` with new bytes:
//! 1. write them to `dir/.name.tmp` and fsync that file — the data is on disk before any
//!    name points at it (renaming first and fsyncing later, as `object_store`'s local backend
//!    does, can leave the new name on an empty or partial file after a power cut);
//! 2. rename it over `dir/name` — atomic: readers see the old or the new file;
//! 3. fsync `dir` — the rename itself survives a power cut.
//!
//! A directory created for persisted state is made durable the same way: each directory
//! [`create_dir_all`] creates is followed by an fsync of its parent, or a file written into it
//! could vanish with the directory entry after a power cut.
//!
//! The steps go through the [`Steps`] trait so that a test can check their order; [`Os`] is
//! the real file system.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A step that failed, with the path it was about.
#[derive(Debug, Error)]
#[error("{path}: {source}")]
pub struct DurableError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> DurableError + '_ {
    move |source| DurableError {
        path: path.to_path_buf(),
        source,
    }
}

/// The file-system operations of a durable write. [`Os`] performs them; tests record them.
pub trait Steps: std::fmt::Debug {
    /// Creates (or truncates) `path`, writes `bytes` and fsyncs the file.
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Makes `to` a second name of the (already durable) file `from`: a hard link, or a
    /// fsynced copy where the file system has none.
    fn link_synced(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of a directory: makes the creation, renaming or removal of its entries durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates one directory; an existing one is not an error.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    fn is_dir(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Os;

impl Steps for Os {
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    fn link_synced(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = fs::remove_file(to);
        match fs::hard_link(from, to) {
            Ok(()) => Ok(()),
            Err(_) => {
                let bytes = fs::read(from)?;
                self.write_synced(to, &bytes)
            }
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        match fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            other => other,
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// The temporary name beside `path` that a replacement is staged under: `.name.tmp`, hidden
/// and recognisable, so that readers of a directory can skip leftovers of a crash.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Whether `name` is a staged replacement (see [`temp_path`]) rather than a real file.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes`: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    write_atomic_with(&Os, path, bytes)
}

pub fn write_atomic_with(steps: &dyn Steps, path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    let tmp = temp_path(path);
    steps.write_synced(&tmp, bytes).map_err(at(&tmp))?;
    steps.rename(&tmp, path).map_err(at(path))?;
    let dir = parent_of(path);
    steps.sync_dir(dir).map_err(at(dir))
}

/// Replaces `to` with the content of the durable file `from` (a hard link where possible):
/// staged under the temporary name, renamed, directory fsynced. Both must be in one directory.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), DurableError> {
    copy_atomic_with(&Os, from, to)
}

pub fn copy_atomic_with(steps: &dyn Steps, from: &Path, to: &Path) -> Result<(), DurableError> {
    let tmp = temp_path(to);
    steps.link_synced(from, &tmp).map_err(at(&tmp))?;
    steps.rename(&tmp, to).map_err(at(to))?;
    let dir = parent_of(to);
    steps.sync_dir(dir).map_err(at(dir))
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each directory it creates.
pub fn create_dir_all(dir: &Path) -> Result<(), DurableError> {
    create_dir_all_with(&Os, dir)
}

pub fn create_dir_all_with(steps: &dyn Steps, dir: &Path) -> Result<(), DurableError> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while !steps.is_dir(cur) {
        missing.push(cur);
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        steps.create_dir(d).map_err(at(d))?;
        let parent = parent_of(d);
        steps.sync_dir(parent).map_err(at(parent))?;
    }
    Ok(())
}

/// fsync of a directory.
pub fn sync_dir(dir: &Path) -> Result<(), DurableError> {
    Os.sync_dir(dir).map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Op {
        WriteSynced(PathBuf),
        LinkSynced(PathBuf, PathBuf),
        Rename(PathBuf, PathBuf),
        SyncDir(PathBuf),
        CreateDir(PathBuf),
    }

    /// The real file system, recording each step; `crash_at` makes step N (0-based) and
    /// everything after it fail, as if the machine stopped there.
    #[derive(Debug)]
    struct Recorder {
        ops: RefCell<Vec<Op>>,
        crash_at: Option<usize>,
    }

    impl Recorder {
        fn new(crash_at: Option<usize>) -> Self {
            Recorder {
                ops: RefCell::new(Vec::new()),
                crash_at,
            }
        }

        fn step(&self, op: Op) -> io::Result<()> {
            let n = self.ops.borrow().len();
            if self.crash_at.is_some_and(|c| n >= c) {
                return Err(io::Error::other("crashed"));
            }
            self.ops.borrow_mut().push(op);
            Ok(())
        }
    }

    impl Steps for Recorder {
        fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            self.step(Op::WriteSynced(path.into()))?;
            Os.write_synced(path, bytes)
        }
        fn link_synced(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.step(Op::LinkSynced(from.into(), to.into()))?;
            Os.link_synced(from, to)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.step(Op::Rename(from.into(), to.into()))?;
            Os.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.step(Op::SyncDir(dir.into()))?;
            Os.sync_dir(dir)
        }
        fn create_dir(&self, dir: &Path) -> io::Result<()> {
            self.step(Op::CreateDir(dir.into()))?;
            Os.create_dir(dir)
        }
        fn is_dir(&self, path: &Path) -> bool {
            Os.is_dir(path)
        }
    }

    #[test]
    fn a_replacement_fsyncs_the_file_then_renames_then_fsyncs_the_directory() {
        let tmpdir = tempfile::tempdir().unwrap();
        let dir = tmpdir.path().to_path_buf();
        let path = dir.join("checkpoint.json");
        let rec = Recorder::new(None);
        write_atomic_with(&rec, &path, b"new").unwrap();
        let tmp = dir.join(".checkpoint.json.tmp");
        assert_eq!(
            rec.ops.into_inner(),
            vec![
                Op::WriteSynced(tmp.clone()),
                Op::Rename(tmp, path.clone()),
                Op::SyncDir(dir.clone()),
            ]
        );
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_crash_at_any_step_leaves_the_old_or_the_new_content() {
        let tmpdir = tempfile::tempdir().unwrap();
        let dir = tmpdir.path().to_path_buf();
        let path = dir.join("state.json");
        for crash_at in 0..3 {
            fs::write(&path, b"old").unwrap();
            let rec = Recorder::new(Some(crash_at));
            assert!(write_atomic_with(&rec, &path, b"new").is_err());
            // Before the rename the old content is in place; the rename is the switch.
            assert_eq!(
                fs::read(&path).unwrap(),
                if crash_at < 2 {
                    &b"old"[..]
                } else {
                    &b"new"[..]
                },
                "crash at step {crash_at}"
            );
        }
    }

    #[test]
    fn a_copy_is_staged_renamed_and_its_directory_fsynced() {
        let tmpdir = tempfile::tempdir().unwrap();
        let dir = tmpdir.path().to_path_buf();
        let (a, b) = (
            dir.join("checkpoint.json"),
            dir.join("checkpoint.prev.json"),
        );
        fs::write(&a, b"newest").unwrap();
        fs::write(&b, b"older").unwrap();
        let rec = Recorder::new(None);
        copy_atomic_with(&rec, &a, &b).unwrap();
        let tmp = dir.join(".checkpoint.prev.json.tmp");
        assert_eq!(
            rec.ops.into_inner(),
            vec![
                Op::LinkSynced(a.clone(), tmp.clone()),
                Op::Rename(tmp, b.clone()),
                Op::SyncDir(dir.clone()),
            ]
        );
        assert_eq!(fs::read(&b).unwrap(), b"newest");
        // Replacing the source later leaves the copy as it was.
        write_atomic(&a, b"newer").unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"newest");
    }

    #[test]
    fn each_created_directory_is_followed_by_an_fsync_of_its_parent() {
        let tmpdir = tempfile::tempdir().unwrap();
        let dir = tmpdir.path().to_path_buf();
        let deep = dir.join("v1/segments/3");
        fs::create_dir_all(dir.join("v1")).unwrap();
        let rec = Recorder::new(None);
        create_dir_all_with(&rec, &deep).unwrap();
        assert_eq!(
            rec.ops.into_inner(),
            vec![
                Op::CreateDir(dir.join("v1/segments")),
                Op::SyncDir(dir.join("v1")),
                Op::CreateDir(deep.clone()),
                Op::SyncDir(dir.join("v1/segments")),
            ]
        );
        assert!(deep.is_dir());
        // Nothing to do when it exists.
        let rec = Recorder::new(None);
        create_dir_all_with(&rec, &deep).unwrap();
        assert!(rec.ops.into_inner().is_empty());
    }

    #[test]
    fn temp_names_are_recognised() {
        let t = temp_path(Path::new("/d/v1/checkpoint.json"));
        assert_eq!(t, Path::new("/d/v1/.checkpoint.json.tmp"));
        assert!(is_temp_name(".checkpoint.json.tmp"));
        assert!(!is_temp_name("checkpoint.json"));
    }
}
