//! The checkpoint: the catalogue as of WAL sequence `seq` plus the manifest of segments. On
//! start the store loads it and replays the WAL records after `seq`. It is one JSON object
//! (`v1/checkpoint.json`) replaced atomically; layout in `docs/formats/catalogue.md`.

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
        let bad = |reason: String| StoreError::Format {
            path: path.to_string(),
            reason,
        };
        // Check the header fields first so that a future version gets a clear error, not a
        // field-by-field serde complaint.
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a checkpoint: {e}")))?;
        if head.format != CHECKPOINT_FORMAT {
            return Err(bad(format!("format {:?} is not a checkpoint", head.format)));
        }
        if head.version != CHECKPOINT_VERSION {
            return Err(bad(format!(
                "checkpoint version {} is not supported by this build (reads {CHECKPOINT_VERSION})",
                head.version
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| bad(format!("damaged checkpoint: {e}")))
    }
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
    }
}
