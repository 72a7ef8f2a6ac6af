//! Typed object-store paths: every key the store writes is built here, so the layout is
//! written once and documented in `docs/formats/segments.md` and `catalogue.md`.
//!
//! ```text
//! v1/checkpoint.json                                   the catalogue + segment manifest
//! v1/checkpoint.prev.json                              the checkpoint before it (fallback)
//! v1/segments/<group id>/<window start ms>/<segment id>.parquet
//! v1/dedup/<last seq, 20 digits>.bin                   batch ids of a checkpoint interval
//! v1/log/<replica>/<uuid>.log                          replicas: one group commit of the shared log
//! v1/checkpoints/<seq, 20 digits>-<uuid>.json          replicas: a published checkpoint
//! ```
//! Group ids (not names) appear in paths: names contain `/` and `#`, and a group deleted and
//! created again under the same name must not find the old group's segments.

use object_store::path::Path;

/// The top-level prefix of format version 1.
pub const ROOT: &str = "v1";

/// Key of the checkpoint document.
pub fn checkpoint() -> Path {
    Path::from(format!("{ROOT}/checkpoint.json"))
}

/// Key of the previous checkpoint, kept to fall back to when the newest is damaged.
pub fn previous_checkpoint() -> Path {
    Path::from(format!("{ROOT}/checkpoint.prev.json"))
}

/// Prefix under which all segments live.
pub fn segments_root() -> Path {
    Path::from(format!("{ROOT}/segments"))
}

/// Key of one segment.
pub fn segment(group_id: u64, window_start_ms: i64, segment_id: u64) -> Path {
    Path::from(format!(
        "{ROOT}/segments/{group_id}/{window_start_ms}/{segment_id:016x}.parquet"
    ))
}

/// Prefix of the dedup files.
pub fn dedup_root() -> Path {
    Path::from(format!("{ROOT}/dedup"))
}

/// Key of the dedup file covering WAL records up to `last_seq`.
pub fn dedup(last_seq: u64) -> Path {
    Path::from(format!("{ROOT}/dedup/{last_seq:020}.bin"))
}

/// Parses the last sequence number out of a dedup key.
pub fn parse_dedup(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    // `.<seq>.bin.tmp` is a write a crash interrupted, not a dedup file.
    name.strip_suffix(".bin")?.parse().ok()
}

/// Key of one log object of a replica (issue 16). Characters of the replica id outside
/// `[A-Za-z0-9._-]` become `_`.
pub fn log_object(replica: &str, unique: &str) -> Path {
    let safe: String = replica
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::from(format!("{ROOT}/log/{safe}/{unique}.log"))
}

/// Key of a checkpoint published by a replica (the catalogue says which is newest).
pub fn shared_checkpoint(seq: u64, unique: &str) -> Path {
    Path::from(format!("{ROOT}/checkpoints/{seq:020}-{unique}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        assert_eq!(
            segment(7, 1_700_000_000_000, 0x2a).as_ref(),
            "v1/segments/7/1700000000000/000000000000002a.parquet"
        );
        assert_eq!(checkpoint().as_ref(), "v1/checkpoint.json");
        assert_eq!(previous_checkpoint().as_ref(), "v1/checkpoint.prev.json");
        assert_eq!(parse_dedup(&dedup(12)), Some(12));
        assert_eq!(
            parse_dedup(&Path::from("v1/dedup/.00000000000000000012.bin.tmp")),
            None
        );
        assert_eq!(dedup(12).as_ref(), "v1/dedup/00000000000000000012.bin");
        assert_eq!(log_object("pod/a b", "u").as_ref(), "v1/log/pod_a_b/u.log");
        assert_eq!(
            shared_checkpoint(3, "u").as_ref(),
            "v1/checkpoints/00000000000000000003-u.json"
        );
    }
}
