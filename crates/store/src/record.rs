//! What one write-ahead-log record holds: a batch of accepted log events, or one catalogue
//! operation. Both are applied to the in-memory state in sequence-number order, live and on
//! replay, so the state after a restart is the state before the crash.
//!
//! The binary layout of a batch payload is documented in `docs/formats/wal.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kinsight_model::LogEvent;
use serde::{Deserialize, Serialize};

/// Maximum length of a batch id in bytes (the API rejects longer ones).
pub const MAX_BATCH_ID_BYTES: usize = 128;

/// Bits of an event id that hold the index of the event in its WAL record. A batch holds at
/// most 10,000 events (reference §6.2) < 2^14.
pub const EVENT_INDEX_BITS: u32 = 14;

/// The stable id of an event: `(seq << 14) | index`. Unique, increasing with the order in
/// which events became durable, and unchanged by flushes and compactions — the `@id` column.
pub fn event_id(seq: u64, index: usize) -> i64 {
    ((seq << EVENT_INDEX_BITS) | index as u64) as i64
}

/// The WAL sequence number an event id belongs to.
pub fn seq_of_event_id(id: i64) -> u64 {
    (id as u64) >> EVENT_INDEX_BITS
}

/// A batch of accepted events as it was made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// The client's id of the batch; a retried batch with the same id is stored once.
    pub batch_id: Option<String>,
    /// When the server received the batch (`@ingestionTime`).
    pub ingestion_time_ms: i64,
    /// How many events of the request were rejected (kept so a retry gets the same counts).
    pub rejected: u32,
    /// Only accepted events, in request order.
    pub events: Vec<LogEvent>,
}

/// A change to the catalogue. Applying an operation twice has the effect of applying it once,
/// because a replay after a crash may apply operations that a checkpoint already contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum CatalogueOp {
    CreateGroup {
        name: String,
        retention_days: Option<u32>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        created_ms: i64,
    },
    DeleteGroup {
        name: String,
    },
    PutRetention {
        name: String,
        retention_days: Option<u32>,
    },
    TagGroup {
        name: String,
        tags: BTreeMap<String, String>,
    },
    UntagGroup {
        name: String,
        keys: Vec<String>,
    },
    CreateStream {
        group: String,
        stream: String,
        created_ms: i64,
    },
    DeleteStream {
        group: String,
        stream: String,
        deleted_ms: i64,
    },
    /// Replicated servers only: every replica freezes its memtable here, so that the rows a
    /// maintenance leader flushes after writing this record are the same rows on every
    /// replica, and each drops them when the leader's checkpoint at this record is published.
    Freeze,
}

/// Metric samples (remote write, OTLP metrics — issue 17) made durable for the ingest
/// observers: the store neither reads nor indexes the payload, whose format belongs to the
/// metric store (`kinsight_metrics::samples`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplesRecord {
    /// When the server received the samples.
    pub ingestion_time_ms: i64,
    pub payload: Vec<u8>,
}

/// One WAL record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalEntry {
    Batch(Arc<BatchRecord>),
    Catalogue(CatalogueOp),
    Samples(Arc<SamplesRecord>),
}

pub const KIND_BATCH: u8 = 1;
pub const KIND_CATALOGUE: u8 = 2;
pub const KIND_SAMPLES: u8 = 3;

impl WalEntry {
    pub fn kind(&self) -> u8 {
        match self {
            WalEntry::Batch(_) => KIND_BATCH,
            WalEntry::Catalogue(_) => KIND_CATALOGUE,
            WalEntry::Samples(_) => KIND_SAMPLES,
        }
    }

    /// Encodes the payload (the bytes after the record header).
    pub fn encode_payload(&self) -> Vec<u8> {
        match self {
            WalEntry::Batch(b) => encode_batch(b),
            // Serialising an enum of strings, integers and maps cannot fail.
            WalEntry::Catalogue(op) => serde_json::to_vec(op).expect("catalogue op serialises"),
            WalEntry::Samples(s) => {
                let mut out = Vec::with_capacity(8 + s.payload.len());
                out.extend_from_slice(&s.ingestion_time_ms.to_le_bytes());
                out.extend_from_slice(&s.payload);
                out
            }
        }
    }

    pub fn decode_payload(kind: u8, payload: &[u8]) -> Result<WalEntry, String> {
        match kind {
            KIND_BATCH => decode_batch(payload).map(|b| WalEntry::Batch(Arc::new(b))),
            KIND_CATALOGUE => serde_json::from_slice(payload)
                .map(WalEntry::Catalogue)
                .map_err(|e| format!("catalogue operation: {e}")),
            KIND_SAMPLES => {
                let (t, rest) = payload
                    .split_first_chunk::<8>()
                    .ok_or_else(|| "samples record shorter than its header".to_string())?;
                Ok(WalEntry::Samples(Arc::new(SamplesRecord {
                    ingestion_time_ms: i64::from_le_bytes(*t),
                    payload: rest.to_vec(),
                })))
            }
            k => Err(format!("unknown record kind {k}")),
        }
    }
}

fn encode_batch(b: &BatchRecord) -> Vec<u8> {
    let msg_bytes: usize = b.events.iter().map(|e| e.message.len()).sum();
    let mut out = Vec::with_capacity(64 + msg_bytes + b.events.len() * 16);
    let id = b.batch_id.as_deref().unwrap_or("");
    // The API caps ids at MAX_BATCH_ID_BYTES; truncation here would only ever hide a bug.
    let id = &id.as_bytes()[..id.len().min(255)];
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&b.ingestion_time_ms.to_le_bytes());
    out.extend_from_slice(&b.rejected.to_le_bytes());

    // (group, stream) pairs are written once; events refer to them by index.
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut index_of: std::collections::HashMap<(&str, &str), u32> =
        std::collections::HashMap::new();
    let mut event_pairs = Vec::with_capacity(b.events.len());
    for e in &b.events {
        let key = (e.log_group_name.as_str(), e.log_stream_name.as_str());
        let idx = *index_of.entry(key).or_insert_with(|| {
            pairs.push(key);
            (pairs.len() - 1) as u32
        });
        event_pairs.push(idx);
    }
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (g, s) in &pairs {
        out.extend_from_slice(&(g.len() as u16).to_le_bytes());
        out.extend_from_slice(g.as_bytes());
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&(b.events.len() as u32).to_le_bytes());
    for (e, idx) in b.events.iter().zip(event_pairs) {
        out.extend_from_slice(&idx.to_le_bytes());
        out.extend_from_slice(&e.timestamp.to_le_bytes());
        out.extend_from_slice(&(e.message.len() as u32).to_le_bytes());
        out.extend_from_slice(e.message.as_bytes());
    }
    out
}

/// A bounds-checked reader over a payload: garbage yields an error, never a panic.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("payload truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or([0; 2]),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn str(&mut self, n: usize) -> Result<String, String> {
        let at = self.pos;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| format!("invalid UTF-8 at byte {at}"))
    }
}

fn decode_batch(payload: &[u8]) -> Result<BatchRecord, String> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let id_len = c.u8()? as usize;
    let batch_id = if id_len == 0 {
        None
    } else {
        Some(c.str(id_len)?)
    };
    let ingestion_time_ms = c.i64()?;
    let rejected = c.u32()?;
    let n_pairs = c.u32()? as usize;
    // Each pair needs at least 4 bytes: a count beyond that is garbage, not an allocation.
    if n_pairs > payload.len() / 4 {
        return Err(format!("implausible pair count {n_pairs}"));
    }
    let mut pairs = Vec::with_capacity(n_pairs);
    for _ in 0..n_pairs {
        let gl = c.u16()? as usize;
        let g = c.str(gl)?;
        let sl = c.u16()? as usize;
        let s = c.str(sl)?;
        pairs.push((g, s));
    }
    let n_events = c.u32()? as usize;
    if n_events > payload.len() / 16 {
        return Err(format!("implausible event count {n_events}"));
    }
    let mut events = Vec::with_capacity(n_events);
    for _ in 0..n_events {
        let idx = c.u32()? as usize;
        let (g, s) = pairs
            .get(idx)
            .ok_or_else(|| format!("event refers to unknown stream #{idx}"))?;
        let timestamp = c.i64()?;
        let ml = c.u32()? as usize;
        let message = c.str(ml)?;
        events.push(LogEvent {
            log_group_name: g.clone(),
            log_stream_name: s.clone(),
            timestamp,
            message,
        });
    }
    if c.pos != payload.len() {
        return Err(format!(
            "{} trailing bytes after the last event",
            payload.len() - c.pos
        ));
    }
    Ok(BatchRecord {
        batch_id,
        ingestion_time_ms,
        rejected,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batch_round_trips() {
        let b = BatchRecord {
            batch_id: Some("agent-1:42".into()),
            ingestion_time_ms: 1_700_000_000_123,
            rejected: 2,
            events: vec![
                LogEvent::new("/k/c/application", "s1", 1, "héllo"),
                LogEvent::new("/k/c/host", "s2", 2, ""),
                LogEvent::new("/k/c/application", "s1", 3, "{\"a\":1}"),
            ],
        };
        let e = WalEntry::Batch(Arc::new(b));
        let p = e.encode_payload();
        assert_eq!(WalEntry::decode_payload(KIND_BATCH, &p).unwrap(), e);
    }

    #[test]
    fn catalogue_op_round_trips_as_json() {
        let op = WalEntry::Catalogue(CatalogueOp::PutRetention {
            name: "/g".into(),
            retention_days: Some(7),
        });
        let p = op.encode_payload();
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"op":"putRetention","name":"/g","retentionDays":7}"#
        );
        assert_eq!(WalEntry::decode_payload(KIND_CATALOGUE, &p).unwrap(), op);
    }

    #[test]
    fn samples_record_round_trips_and_short_ones_are_refused() {
        let e = WalEntry::Samples(Arc::new(SamplesRecord {
            ingestion_time_ms: 1_700_000_000_123,
            payload: vec![1, 2, 3],
        }));
        let p = e.encode_payload();
        assert_eq!(WalEntry::decode_payload(KIND_SAMPLES, &p).unwrap(), e);
        assert!(WalEntry::decode_payload(KIND_SAMPLES, &p[..7]).is_err());
    }

    #[test]
    fn event_ids_encode_seq_and_index() {
        let id = event_id(123_456, 9_999);
        assert_eq!(seq_of_event_id(id), 123_456);
        assert!(event_id(5, 0) > event_id(4, 9_999));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = WalEntry::decode_payload(KIND_BATCH, &bytes);
            let _ = WalEntry::decode_payload(KIND_CATALOGUE, &bytes);
            let _ = WalEntry::decode_payload(KIND_SAMPLES, &bytes);
        }

        #[test]
        fn any_batch_round_trips(
            events in proptest::collection::vec(("[a-c]{1,3}", "[x-z:]{1,3}", any::<i64>(), ".{0,40}"), 0..20),
            id in proptest::option::of("[a-z0-9-]{1,40}"),
        ) {
            let b = BatchRecord {
                batch_id: id,
                ingestion_time_ms: 7,
                rejected: 0,
                events: events.into_iter().map(|(g, s, t, m)| LogEvent::new(g, s, t, m)).collect(),
            };
            let e = WalEntry::Batch(Arc::new(b));
            prop_assert_eq!(WalEntry::decode_payload(KIND_BATCH, &e.encode_payload()).unwrap(), e);
        }
    }
}
