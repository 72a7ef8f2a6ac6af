//! The checkpoint: the catalogue as of WAL sequence `seq` plus the manifest of segments. On
//! start the store loads it and replays the WAL records after `seq`. It is one JSON object
//! (`v1/checkpoint.json`) replaced atomically and durably; before each replacement the one it
//! replaces is kept as `v1/checkpoint.prev.json`, the store's fallback when the newest is
//! damaged (issue 15, item 11). Layout in `docs/formats/catalogue.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::error::{Result, StoreError};
use crate::schema::GroupFields;
use crate::segment::SegmentMeta;

pub const CHECKPOINT_FORMAT: &str = "kinsight-checkpoint";
pub const CHECKPOINT_VERSION: u32 = 1;

/// The segments of every group and the fields they hold. Changed by flushes, compactions,
/// retention and group deletion — not by WAL records alone — and saved with each checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub next_segment_id: u64,
    /// Segments by group id, oldest window first.
    pub segments: BTreeMap<u64, Vec<SegmentMeta>>,
    /// Discovered fields by group id: the union over segments and memory (grows only).
    pub fields: BTreeMap<u64, GroupFields>,
}

impl Manifest {
    pub fn group_bytes(&self, group_id: u64) -> u64 {
        self.segments
            .get(&group_id)
            .map_or(0, |s| s.iter().map(|m| m.size_bytes).sum())
    }

    /// Every object key the manifest references.
    pub fn paths(&self) -> std::collections::HashSet<String> {
        self.segments
            .values()
            .flatten()
            .map(|s| s.path.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub format: String,
    pub version: u32,
    /// Every WAL record with a sequence number up to this one is reflected.
    pub seq: u64,
    pub written_ms: i64,
    pub catalogue: Catalogue,
    pub manifest: Manifest,
}

impl Checkpoint {
    pub fn new(seq: u64, written_ms: i64, catalogue: Catalogue, manifest: Manifest) -> Self {
        Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            version: CHECKPOINT_VERSION,
            seq,
            written_ms,
            catalogue,
            manifest,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Maps with string/integer keys and plain structs always serialise.
        serde_json::to_vec(self).expect("checkpoint serialises")
    }

    pub fn decode(path: &str, bytes: &[u8]) -> Result<Self> {
        Self::decode_or_damaged(path, bytes)?.map_err(|reason| StoreError::Format {
            path: path.to_string(),
            reason,
        })
    }

    /// Decodes a stored checkpoint, telling damage (torn, garbled, not a checkpoint:
    /// `Ok(Err(reason))`, worth falling back from) from a version this build does not read
    /// (`Err`: falling back would hide a downgrade).
    pub fn decode_or_damaged(path: &str, bytes: &[u8]) -> Result<Result<Self, String>> {
        // Check the header fields first so that a future version gets a clear error, not a
        // field-by-field serde complaint.
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head = match serde_json::from_slice(bytes) {
            Ok(h) => h,
            Err(e) => return Ok(Err(format!("not a checkpoint: {e}"))),
        };
        if head.format != CHECKPOINT_FORMAT {
            return Ok(Err(format!("format {:?} is not a checkpoint", head.format)));
        }
        if head.version != CHECKPOINT_VERSION {
            return Err(StoreError::Format {
                path: path.to_string(),
                reason: format!(
                    "checkpoint version {} is not supported by this build (reads {CHECKPOINT_VERSION})",
                    head.version
                ),
            });
        }
        Ok(serde_json::from_slice::<Checkpoint>(bytes)
            .map(|mut c| {
                c.catalogue.recount();
                c
            })
            .map_err(|e| format!("damaged checkpoint: {e}")))
    }
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The checkpoint to start from.
    pub checkpoint: Checkpoint,
    /// `v1/checkpoint.json` holds `checkpoint` (false: it is damaged or missing, the store
    /// started from the previous one or from the whole WAL). The next checkpoint write copies
    /// it to the previous slot only when true, so a damaged newest never replaces a good
    /// previous one.
    pub newest_valid: bool,
    /// Sequence number of the usable checkpoint in the previous slot: WAL records after it
    /// must stay. `None`: there is none, every WAL record stays.
    pub previous_seq: Option<u64>,
    /// Segments the previous checkpoint lists and `checkpoint` does not (compaction inputs,
    /// expired segments): kept until a second checkpoint without them is durable.
    pub previous_only_paths: Vec<String>,
    /// Replicas: the catalogue version of `checkpoint`.
    pub version: Option<i64>,
}

/// Loads the newest checkpoint, or falls back to the previous one when the newest is damaged
/// (torn by a crash of the file system, garbled), or to an empty catalogue when there is no
/// previous one and the WAL still starts at record 1. Falling back is complete because WAL
/// files are deleted only through the previous checkpoint's sequence number and segments only
/// once neither checkpoint lists them (`maintenance.rs`); it is refused with an error when the
/// WAL no longer holds the records after the fallback.
pub(crate) async fn load(
    storage: &crate::storage::Storage,
    wal_dir: &std::path::Path,
    now_ms: i64,
) -> Result<Loaded> {
    let newest_path = crate::paths::checkpoint();
    let prev_path = crate::paths::previous_checkpoint();
    let newest = match storage.get_opt(&newest_path).await? {
        Some(b) => Some(Checkpoint::decode_or_damaged(newest_path.as_ref(), &b)?),
        None => None,
    };
    let prev = match storage.get_opt(&prev_path).await? {
        None => None,
        Some(b) => match Checkpoint::decode_or_damaged(prev_path.as_ref(), &b) {
            Ok(r) => Some(r),
            // The newest decides; a previous copy of another version is only useless.
            Err(e) if matches!(newest, Some(Ok(_))) => Some(Err(e.to_string())),
            Err(e) => return Err(e),
        },
    };
    match (newest, prev) {
        (Some(Ok(newest)), prev) => {
            let (previous_seq, previous_only_paths) = match prev {
                Some(Ok(p)) => {
                    let keep = newest.manifest.paths();
                    let only: Vec<String> = p
                        .manifest
                        .paths()
                        .into_iter()
                        .filter(|x| !keep.contains(x))
                        .collect();
                    (Some(p.seq), only)
                }
                Some(Err(reason)) => {
                    tracing::warn!(path = %prev_path, %reason, "the previous checkpoint is damaged; it is replaced at the next checkpoint");
                    (None, Vec::new())
                }
                None => (None, Vec::new()),
            };
            Ok(Loaded {
                checkpoint: newest,
                newest_valid: true,
                previous_seq,
                previous_only_paths,
                version: None,
            })
        }
        (None, None) => Ok(Loaded {
            checkpoint: Checkpoint::new(0, now_ms, Catalogue::default(), Manifest::default()),
            newest_valid: false,
            previous_seq: None,
            previous_only_paths: Vec::new(),
            version: None,
        }),
        (newest, prev) => {
            let why = match newest {
                Some(Err(reason)) => reason,
                _ => "it is missing".to_string(),
            };
            let first_wal_seq = crate::wal::list_files(wal_dir)?
                .first()
                .map(|f| f.first_seq);
            let from = match prev {
                Some(Ok(p)) => p,
                other => {
                    // No previous checkpoint: the WAL alone is complete only if it still
                    // starts at the first record ever written.
                    if first_wal_seq == Some(1) {
                        tracing::error!(path = %newest_path, reason = %why, "the checkpoint is damaged and there is no previous one; rebuilding from the whole write-ahead log");
                        return Ok(Loaded {
                            checkpoint: Checkpoint::new(
                                0,
                                now_ms,
                                Catalogue::default(),
                                Manifest::default(),
                            ),
                            newest_valid: false,
                            previous_seq: None,
                            previous_only_paths: Vec::new(),
                            version: None,
                        });
                    }
                    let prev_state = match other {
                        Some(Err(r)) => format!("the previous checkpoint is damaged too ({r})"),
                        _ => "there is no previous checkpoint".to_string(),
                    };
                    return Err(StoreError::Format {
                        path: newest_path.to_string(),
                        reason: format!(
                            "{why}; {prev_state}, and the write-ahead log no longer starts at record 1: cannot rebuild the catalogue"
                        ),
                    });
                }
            };
            if first_wal_seq.is_none_or(|f| f > from.seq + 1) {
                return Err(StoreError::Format {
                    path: newest_path.to_string(),
                    reason: format!(
                        "{why}; the previous checkpoint (record {}) cannot replace it because the write-ahead log starts at record {}",
                        from.seq,
                        first_wal_seq.map_or("(none)".to_string(), |s| s.to_string())
                    ),
                });
            }
            tracing::error!(path = %newest_path, reason = %why, fallback = %prev_path, fallback_seq = from.seq,
                "the newest checkpoint is unusable; starting from the previous one and replaying the write-ahead log after it");
            Ok(Loaded {
                previous_seq: Some(from.seq),
                checkpoint: from,
                newest_valid: false,
                previous_only_paths: Vec::new(),
                version: None,
            })
        }
    }
}

/// Replicas: loads the newest checkpoint the catalogue lists, or an older kept one when the
/// newest object is damaged (the log is truncated only through the oldest kept checkpoint, so
/// falling back loses nothing), or an empty state when none was published yet.
pub(crate) async fn load_shared(
    storage: &crate::storage::Storage,
    catalogue: &kinsight_catalogue::Catalogue,
    now_ms: i64,
) -> Result<Loaded> {
    let rows = catalogue
        .checkpoints(crate::shared::CHECKPOINTS_KEPT)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let path = object_store::path::Path::from(row.object_key.as_str());
        let decoded = match storage.get_opt(&path).await? {
            Some(b) => Checkpoint::decode_or_damaged(&row.object_key, &b)?,
            None => Err("it is missing".to_string()),
        };
        match decoded {
            Ok(checkpoint) => {
                if i > 0 {
                    tracing::error!(problems = ?problems, fallback = %row.object_key,
                        "the newest checkpoint is unusable; starting from an older one and the log after it");
                }
                return Ok(Loaded {
                    checkpoint,
                    newest_valid: i == 0,
                    previous_seq: None,
                    previous_only_paths: Vec::new(),
                    version: Some(row.version),
                });
            }
            Err(reason) => problems.push(format!("{}: {reason}", row.object_key)),
        }
    }
    if !problems.is_empty() {
        return Err(StoreError::Format {
            path: "checkpoints".into(),
            reason: format!("no usable checkpoint: {}", problems.join("; ")),
        });
    }
    Ok(Loaded {
        checkpoint: Checkpoint::new(0, now_ms, Catalogue::default(), Manifest::default()),
        newest_valid: false,
        previous_seq: None,
        previous_only_paths: Vec::new(),
        version: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let c = Checkpoint::new(7, 1, Catalogue::default(), Manifest::default());
        let b = c.encode();
        assert_eq!(Checkpoint::decode("p", &b).unwrap(), c);
        let other = String::from_utf8(b)
            .unwrap()
            .replace("\"version\":1", "\"version\":9");
        let err = Checkpoint::decode("p", other.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        assert!(Checkpoint::decode("p", b"{").is_err());
        // A torn copy is damage (worth a fallback), another version is not.
        let torn = &c.encode()[..20];
        assert!(Checkpoint::decode_or_damaged("p", torn).unwrap().is_err());
        assert!(Checkpoint::decode_or_damaged("p", other.as_bytes()).is_err());
    }
}
