//! Batch ids seen recently, so a retried batch (same id) is stored once — also after a
//! restart. Live ids come from applying WAL records (so a replay restores them); at each
//! checkpoint the ids of the records it covers are written to one small dedup object, because
//! the WAL records that held them are then deleted. Byte layout: `docs/formats/catalogue.md`.

use std::collections::{HashMap, VecDeque};

use crate::error::{Result, StoreError};

pub(crate) const DEDUP_MAGIC: &[u8; 8] = b"KSDEDUP1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupEntry {
    pub seq: u64,
    pub ingestion_ms: i64,
    pub accepted: u32,
    pub rejected: u32,
}

#[derive(Debug)]
pub(crate) struct DedupIndex {
    map: HashMap<String, DedupEntry>,
    /// Insertion order, for expiry by age and count.
    order: VecDeque<(i64, String)>,
    /// Entries applied since the last dedup file, in seq order.
    unsaved: Vec<(String, DedupEntry)>,
    window_ms: i64,
    max_entries: usize,
}

impl DedupIndex {
    pub fn new(window_ms: i64, max_entries: usize) -> Self {
        DedupIndex {
            map: HashMap::new(),
            order: VecDeque::new(),
            unsaved: Vec::new(),
            window_ms,
            max_entries,
        }
    }

    pub fn get(&self, id: &str) -> Option<DedupEntry> {
        self.map.get(id).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Records an id (live or replayed). `unsaved`: it still has to go into a dedup file.
    pub fn insert(&mut self, id: &str, e: DedupEntry, now_ms: i64, unsaved: bool) {
        if e.ingestion_ms < now_ms - self.window_ms {
            return;
        }
        if self.map.insert(id.to_string(), e).is_none() {
            self.order.push_back((e.ingestion_ms, id.to_string()));
        }
        if unsaved {
            self.unsaved.push((id.to_string(), e));
        }
        self.expire(now_ms);
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some((t, _)) = self.order.front() {
            if *t >= now_ms - self.window_ms && self.order.len() <= self.max_entries {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.map.remove(&id);
            }
        }
    }

    /// Takes the unsaved entries with `seq <= through`.
    pub fn take_unsaved_through(&mut self, through: u64) -> Vec<(String, DedupEntry)> {
        let split = self.unsaved.partition_point(|(_, e)| e.seq <= through);
        self.unsaved.drain(..split).collect()
    }

    /// Puts entries back after a failed checkpoint.
    pub fn restore_unsaved(&mut self, mut entries: Vec<(String, DedupEntry)>) {
        entries.append(&mut self.unsaved);
        self.unsaved = entries;
    }
}

/// Encodes a dedup file: magic, version, count, entries, CRC of everything before it.
pub(crate) fn encode(entries: &[(String, DedupEntry)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 64);
    out.extend_from_slice(DEDUP_MAGIC);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, e) in entries {
        let id = &id.as_bytes()[..id.len().min(255)];
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.ingestion_ms.to_le_bytes());
        out.extend_from_slice(&e.accepted.to_le_bytes());
        out.extend_from_slice(&e.rejected.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(path: &str, buf: &[u8]) -> Result<Vec<(String, DedupEntry)>> {
    let bad = |reason: &str| StoreError::Format {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if buf.len() < 20 || &buf[..8] != DEDUP_MAGIC {
        return Err(bad("not a dedup file"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap_or_default()) {
        return Err(bad("checksum mismatch"));
    }
    let version = u32::from_le_bytes(body[8..12].try_into().unwrap_or_default());
    if version != 1 {
        return Err(bad(&format!("unknown version {version}")));
    }
    let count = u32::from_le_bytes(body[12..16].try_into().unwrap_or_default()) as usize;
    let mut pos = 16;
    let mut out = Vec::with_capacity(count.min(body.len() / 25));
    for _ in 0..count {
        let len = *body.get(pos).ok_or_else(|| bad("truncated"))? as usize;
        pos += 1;
        let end = pos + len + 24;
        let rec = body.get(pos..end).ok_or_else(|| bad("truncated"))?;
        let id = std::str::from_utf8(&rec[..len]).map_err(|_| bad("id is not UTF-8"))?;
        let f = &rec[len..];
        let u64_at = |o: usize| u64::from_le_bytes(f[o..o + 8].try_into().unwrap_or_default());
        let u32_at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap_or_default());
        out.push((
            id.to_string(),
            DedupEntry {
                seq: u64_at(0),
                ingestion_ms: u64_at(8) as i64,
                accepted: u32_at(16),
                rejected: u32_at(20),
            },
        ));
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: u64, t: i64) -> DedupEntry {
        DedupEntry {
            seq,
            ingestion_ms: t,
            accepted: 3,
            rejected: 1,
        }
    }

    #[test]
    fn file_round_trips_and_detects_damage() {
        let entries = vec![("a".to_string(), e(1, 10)), ("bb".to_string(), e(2, 20))];
        let mut buf = encode(&entries);
        assert_eq!(decode("x", &buf).unwrap(), entries);
        let n = buf.len();
        buf[n - 6] ^= 1;
        assert!(decode("x", &buf).is_err());
        assert!(decode("x", &buf[..10]).is_err());
    }

    #[test]
    fn expires_by_age_and_count() {
        let mut d = DedupIndex::new(100, 2);
        d.insert("a", e(1, 0), 50, true);
        d.insert("b", e(2, 60), 60, true);
        d.insert("c", e(3, 70), 70, true);
        assert!(d.get("a").is_none(), "count cap");
        d.insert("d", e(4, 200), 200, true);
        assert!(d.get("b").is_none() && d.get("c").is_none() && d.get("d").is_some());
        assert_eq!(d.take_unsaved_through(2).len(), 2);
        assert_eq!(d.take_unsaved_through(9).len(), 2);
    }
}
