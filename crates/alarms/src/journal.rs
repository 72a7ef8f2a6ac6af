//! Durable alarm state: a snapshot (`alarms.json`) plus an append-only journal
//! (`alarms.journal.<generation>`) of the changes since. Every change is one JSON line,
//! fsynced before the call returns; when the journal outgrows the snapshot, a new snapshot is
//! written (temporary file, fsync, rename) and a new journal generation started — so creating
//! 10,000 alarms one by one costs 10,000 small appends, not 10,000 rewrites of a growing file.
//! Format: docs/formats/alarms.md.

use crate::AlarmError;
use crate::notify::Notification;
use crate::state::{StoredAlarm, StoredHistoryItem};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One change. Applying a change twice has the effect of applying it once, except history
/// items — which is why a journal generation is replayed only onto the snapshot that names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Op {
    /// The alarm's whole record (definition, state, series states) after the change.
    Put(Box<StoredAlarm>),
    Delete(String),
    History(StoredHistoryItem),
    /// Insert or replace a notification (by id).
    OutboxPut(Box<Notification>),
    OutboxRemove(u64),
    NextNotificationId(u64),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Line {
    pub ops: Vec<Op>,
}

pub(crate) struct Journal {
    dir: PathBuf,
    generation: u64,
    file: File,
    bytes: u64,
}

pub(crate) fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("alarms.journal.{generation}"))
}

impl Journal {
    /// Reads generation `generation` (all complete lines; a torn last line — a write the
    /// crash interrupted, never acknowledged — is dropped) and opens it for appending.
    pub fn open(dir: &Path, generation: u64) -> Result<(Journal, Vec<Vec<Op>>), AlarmError> {
        let path = journal_path(dir, generation);
        let mut batches = Vec::new();
        let mut good_len: u64 = 0;
        if let Ok(f) = File::open(&path) {
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            let mut lineno = 0;
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| AlarmError::io(&path, e))?;
                if n == 0 {
                    break;
                }
                lineno += 1;
                let complete = line.ends_with('\n');
                match serde_json::from_str::<Line>(line.trim_end()) {
                    Ok(l) if complete => {
                        batches.push(l.ops);
                        good_len += n as u64;
                    }
                    _ => {
                        // Only the last line may be damaged: anything after it is unknown.
                        let mut rest = String::new();
                        let more = reader
                            .read_line(&mut rest)
                            .map_err(|e| AlarmError::io(&path, e))?;
                        if more > 0 {
                            return Err(AlarmError::Corrupt {
                                path,
                                reason: format!("line {lineno} is not a journal entry"),
                            });
                        }
                        tracing::warn!(path = %path.display(), "dropping a torn last journal line (interrupted write)");
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| AlarmError::io(&path, e))?;
        // Cut a torn tail so the next append starts on a line boundary.
        file.set_len(good_len)
            .map_err(|e| AlarmError::io(&path, e))?;
        sync_dir(dir)?;
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                generation,
                file,
                bytes: good_len,
            },
            batches,
        ))
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one change set and fsyncs it.
    pub fn append(&mut self, ops: &[Op]) -> Result<(), AlarmError> {
        if ops.is_empty() {
            return Ok(());
        }
        let path = journal_path(&self.dir, self.generation);
        let mut bytes = serde_json::to_vec(&LineRef { ops }).map_err(|e| AlarmError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| AlarmError::io(&path, e))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Starts generation `generation + 1` after a snapshot that includes everything so far,
    /// and removes the old file.
    pub fn rotate(&mut self) -> Result<(), AlarmError> {
        let next = self.generation + 1;
        let path = journal_path(&self.dir, next);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| AlarmError::io(&path, e))?;
        sync_dir(&self.dir)?;
        let old = journal_path(&self.dir, self.generation);
        self.file = file;
        self.generation = next;
        self.bytes = 0;
        let _ = fs::remove_file(old);
        Ok(())
    }
}

#[derive(Serialize)]
pub(crate) struct LineRef<'a> {
    pub ops: &'a [Op],
}

/// Removes journal generations other than `keep` (left by a crash between a snapshot and the
/// deletion of the journal it absorbed).
pub(crate) fn remove_stale(dir: &Path, keep: u64) -> Result<(), AlarmError> {
    let entries = fs::read_dir(dir).map_err(|e| AlarmError::io(dir, e))?;
    for e in entries {
        let path = e.map_err(|e| AlarmError::io(dir, e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(g) = name.strip_prefix("alarms.journal.")
            && g.parse::<u64>().is_ok_and(|g| g != keep)
        {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), AlarmError> {
    Ok(kinsight_model::durable::sync_dir(dir)?)
}
