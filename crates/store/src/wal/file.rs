//! WAL files on disk: naming, headers, framing, replay and truncation.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError, wal_io_error};
use crate::storage::fsync_dir;

use super::MAX_RECORD_BYTES;

/// First 8 bytes of every WAL file.
pub const FILE_MAGIC: &[u8; 8] = b"KSIGHTWL";
/// Format version written after the magic.
pub const FILE_VERSION: u32 = 1;
/// magic (8) + version (4) + reserved (4) + first seq (8).
pub const FILE_HEADER_BYTES: usize = 24;
/// length (4) + crc (4) + seq (8) + kind (1) + flags (1) + reserved (6).
pub const RECORD_HEADER_BYTES: usize = 24;

/// One WAL file and the first sequence number it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFileInfo {
    pub path: PathBuf,
    pub first_seq: u64,
}

pub(crate) fn file_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

/// The WAL files of `dir`, oldest first. Other files are ignored.
pub fn list_files(dir: &Path) -> Result<Vec<WalFileInfo>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        if let Ok(first_seq) = num.parse() {
            out.push(WalFileInfo {
                path: entry.path(),
                first_seq,
            });
        }
    }
    out.sort_by_key(|f| f.first_seq);
    Ok(out)
}

/// Creates a new WAL file with its header, durably (file and directory entry).
pub(crate) fn create_file(dir: &Path, first_seq: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(file_name(first_seq));
    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| wal_io_error(path.clone(), e))?;
    let mut h = [0u8; FILE_HEADER_BYTES];
    h[0..8].copy_from_slice(FILE_MAGIC);
    h[8..12].copy_from_slice(&FILE_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let res = f.write_all(&h).and_then(|_| f.sync_all());
    if let Err(e) = res {
        // Leave no half-written file behind: a later replay would take it for the last file.
        let _ = std::fs::remove_file(&path);
        return Err(wal_io_error(path, e));
    }
    fsync_dir(dir)?;
    Ok((f, path))
}

/// Appends the framing of one record to `out`. `payload_crc` is the CRC of the payload alone;
/// the stored CRC covers the header fields after it and then the payload.
pub(crate) fn encode_record_header(
    out: &mut Vec<u8>,
    seq: u64,
    kind: u8,
    payload_len: usize,
    payload_crc: &crc32fast::Hasher,
) {
    let mut fields = [0u8; 16];
    fields[0..8].copy_from_slice(&seq.to_le_bytes());
    fields[8] = kind;
    fields[9] = 0; // flags: no compression
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fields);
    crc.combine(payload_crc);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&fields);
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub files: usize,
    pub records: u64,
    /// Highest sequence number found (0 if none).
    pub last_seq: u64,
    /// Bytes cut off the tail of the last file (a write that never completed its fsync).
    pub torn_tail_bytes: u64,
}

/// Reads every record of every WAL file in order and calls `visit(seq, kind, payload)` for
/// those with `seq > skip_through`. A torn tail of the last file (short header, short payload
/// or bad CRC — a group commit cut by a crash, never acknowledged) is truncated away. Damage
/// anywhere else is corruption and an error naming the file and offset.
pub fn replay(
    dir: &Path,
    skip_through: u64,
    mut visit: impl FnMut(u64, u8, &[u8]) -> Result<()>,
) -> Result<ReplayStats> {
    let files = list_files(dir)?;
    let mut stats = ReplayStats::default();
    let n = files.len();
    for (i, info) in files.iter().enumerate() {
        let is_last = i + 1 == n;
        let mut buf = Vec::new();
        File::open(&info.path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| StoreError::io(&info.path, e))?;
        stats.files += 1;
        let corrupt = |offset: usize, reason: String| StoreError::WalCorrupt {
            path: info.path.clone(),
            offset: offset as u64,
            reason,
        };
        if buf.len() < FILE_HEADER_BYTES || &buf[0..8] != FILE_MAGIC {
            if is_last {
                // Created but its header never reached the disk: nothing in it was acked.
                std::fs::remove_file(&info.path).map_err(|e| StoreError::io(&info.path, e))?;
                stats.torn_tail_bytes += buf.len() as u64;
                continue;
            }
            return Err(corrupt(0, "missing or damaged file header".into()));
        }
        let version = u32::from_le_bytes(buf[8..12].try_into().unwrap_or_default());
        if version != FILE_VERSION {
            return Err(corrupt(
                8,
                format!("format version {version}, this build reads {FILE_VERSION}"),
            ));
        }
        let mut pos = FILE_HEADER_BYTES;
        let mut torn_at = None;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let problem = if rest.len() < RECORD_HEADER_BYTES {
                Some("short record header".to_string())
            } else {
                let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
                let stored_crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
                if len > MAX_RECORD_BYTES {
                    Some(format!("record length {len} is implausible"))
                } else if rest.len() < RECORD_HEADER_BYTES + len {
                    Some("short record payload".to_string())
                } else {
                    let body = &rest[8..RECORD_HEADER_BYTES + len];
                    if crc32fast::hash(body) != stored_crc {
                        Some("checksum mismatch".to_string())
                    } else {
                        let seq = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
                        let kind = rest[16];
                        if seq <= stats.last_seq {
                            return Err(corrupt(
                                pos,
                                format!("sequence {seq} after {}", stats.last_seq),
                            ));
                        }
                        stats.last_seq = seq;
                        stats.records += 1;
                        if seq > skip_through {
                            visit(
                                seq,
                                kind,
                                &rest[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len],
                            )?;
                        }
                        pos += RECORD_HEADER_BYTES + len;
                        None
                    }
                }
            };
            if let Some(reason) = problem {
                if !is_last {
                    return Err(corrupt(pos, reason));
                }
                torn_at = Some(pos);
                break;
            }
        }
        if let Some(at) = torn_at {
            tracing::warn!(
                path = %info.path.display(),
                offset = at,
                bytes = buf.len() - at,
                "truncating the unacknowledged torn tail of the write-ahead log"
            );
            let f = OpenOptions::new()
                .write(true)
                .open(&info.path)
                .map_err(|e| StoreError::io(&info.path, e))?;
            f.set_len(at as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| StoreError::io(&info.path, e))?;
            stats.torn_tail_bytes += (buf.len() - at) as u64;
        }
    }
    Ok(stats)
}

/// Deletes the WAL files all of whose records have `seq <= through`. The newest file is never
/// deleted (the writer may be appending to it). Returns how many files were removed.
pub fn remove_files_through(dir: &Path, through: u64) -> Result<usize> {
    let files = list_files(dir)?;
    let mut removed = 0;
    for pair in files.windows(2) {
        // Records of pair[0] are < pair[1].first_seq.
        if pair[1].first_seq.saturating_sub(1) <= through {
            std::fs::remove_file(&pair[0].path).map_err(|e| StoreError::io(&pair[0].path, e))?;
            removed += 1;
        } else {
            break;
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}
