//! Immutable segment files: the blocks of many series for one tier and one time partition,
//! with an index at the end (layout in docs/formats/metrics.md). Written to a temporary
//! file, fsynced and renamed; read with positional reads of single blocks.

use crate::MetricsError;
use crate::block::BlockData;
use crate::tier::Tier;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const HEADER_MAGIC: &[u8; 4] = b"KMSG";
pub(crate) const FOOTER_MAGIC: &[u8; 4] = b"KMSE";
pub(crate) const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: u64 = 16;
const FOOTER_LEN: u64 = 24;
const ENTRY_LEN: usize = 44;
/// zstd level 3: decompression speed is what queries pay, and it barely depends on level.
const ZSTD_LEVEL: i32 = 3;

/// Per-thread state of the block reader, reused for every block: a query decodes thousands
/// of small blocks, and a fresh zstd context or buffer per block costs more than the block.
struct ReadScratch {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    compressed: Vec<u8>,
    raw: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<ReadScratch> = std::cell::RefCell::new(ReadScratch {
        zstd: zstd::bulk::Decompressor::new().ok(),
        compressed: Vec::new(),
        raw: Vec::new(),
    });
}

/// Where one series' block lives in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub series: u32,
    pub offset: u64,
    pub len: u32,
    pub raw_len: u32,
    pub rows: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    pub crc: u32,
}

impl IndexEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.series.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.min_ts.to_le_bytes());
        out.extend_from_slice(&self.max_ts.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }

    fn decode(b: &[u8]) -> IndexEntry {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        IndexEntry {
            series: u32_at(0),
            offset: u64_at(4),
            len: u32_at(12),
            raw_len: u32_at(16),
            rows: u32_at(20),
            min_ts: u64_at(24) as i64,
            max_ts: u64_at(32) as i64,
            crc: u32_at(40),
        }
    }
}

/// Streams blocks (in increasing series id order) into a new segment.
pub(crate) struct SegmentWriter {
    /// One compression context for the whole file: creating one per block costs more than
    /// compressing a small block.
    zstd: zstd::bulk::Compressor<'static>,
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    index: Vec<IndexEntry>,
}

impl SegmentWriter {
    pub fn create(path: &Path, tier: Tier, partition_start: i64) -> Result<Self, MetricsError> {
        let tmp = path.with_extension("tmp");
        let file = File::create(&tmp).map_err(|e| MetricsError::io(&tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(HEADER_MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.push(tier.code());
        header.push(0);
        header.extend_from_slice(&partition_start.to_le_bytes());
        out.write_all(&header)
            .map_err(|e| MetricsError::io(&tmp, e))?;
        Ok(SegmentWriter {
            zstd: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| MetricsError::io(&tmp, e))?,
            tmp,
            path: path.to_path_buf(),
            out,
            offset: HEADER_LEN,
            index: Vec::new(),
        })
    }

    /// Adds one series' normalized block; empty blocks are skipped.
    pub fn add(&mut self, series: u32, block: &BlockData) -> Result<(), MetricsError> {
        let ts = block.ts();
        let (Some(&min_ts), Some(&max_ts)) = (ts.first(), ts.last()) else {
            return Ok(());
        };
        debug_assert!(self.index.last().is_none_or(|e| e.series < series));
        let raw = block.encode();
        let compressed = self
            .zstd
            .compress(&raw)
            .map_err(|e| MetricsError::io(&self.tmp, e))?;
        self.out
            .write_all(&compressed)
            .map_err(|e| MetricsError::io(&self.tmp, e))?;
        self.index.push(IndexEntry {
            series,
            offset: self.offset,
            len: compressed.len() as u32,
            raw_len: raw.len() as u32,
            rows: ts.len() as u32,
            min_ts,
            max_ts,
            crc: crc32fast::hash(&compressed),
        });
        self.offset += compressed.len() as u64;
        Ok(())
    }

    /// Writes index and footer, fsyncs, renames into place, and opens the result.
    pub fn finish(mut self, generation: u64) -> Result<Segment, MetricsError> {
        let mut idx = Vec::with_capacity(self.index.len() * ENTRY_LEN);
        for e in &self.index {
            e.encode(&mut idx);
        }
        let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&idx).to_le_bytes());
        footer.extend_from_slice(FOOTER_MAGIC);
        footer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        footer.extend_from_slice(&[0, 0]);
        let tmp = self.tmp.clone();
        self.out
            .write_all(&idx)
            .and_then(|_| self.out.write_all(&footer))
            .map_err(|e| MetricsError::io(&tmp, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| MetricsError::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| MetricsError::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|e| MetricsError::io(&self.path, e))?;
        Segment::open(&self.path, generation)
    }
}

/// An open segment: its index in memory, its file open for positional reads (an open file
/// stays readable after compaction unlinks it, so running queries never see it vanish).
#[derive(Debug)]
pub(crate) struct Segment {
    pub generation: u64,
    pub tier: Tier,
    pub partition_start: i64,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    file: File,
    index: Vec<IndexEntry>,
}

impl Segment {
    pub fn open(path: &Path, generation: u64) -> Result<Segment, MetricsError> {
        let corrupt = |reason: String| MetricsError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| MetricsError::io(path, e))?;
        let size = file
            .metadata()
            .map_err(|e| MetricsError::io(path, e))?
            .len();
        if size < HEADER_LEN + FOOTER_LEN {
            return Err(corrupt(format!("{size} bytes is too short for a segment")));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| MetricsError::io(path, e))?;
        if &header[0..4] != HEADER_MAGIC {
            return Err(corrupt("bad header magic".into()));
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if version != FORMAT_VERSION {
            return Err(MetricsError::UnsupportedVersion {
                path: path.to_path_buf(),
                version: u64::from(version),
            });
        }
        let tier = Tier::from_code(header[6])
            .ok_or_else(|| corrupt(format!("unknown tier code {}", header[6])))?;
        let partition_start = i64::from_le_bytes(
            header[8..16]
                .try_into()
                .map_err(|_| corrupt("header".into()))?,
        );
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, size - FOOTER_LEN)
            .map_err(|e| MetricsError::io(path, e))?;
        if &footer[16..20] != FOOTER_MAGIC {
            return Err(corrupt("bad footer magic (truncated file?)".into()));
        }
        let index_offset = u64::from_le_bytes(
            footer[0..8]
                .try_into()
                .map_err(|_| corrupt("footer".into()))?,
        );
        let count = u32::from_le_bytes(
            footer[8..12]
                .try_into()
                .map_err(|_| corrupt("footer".into()))?,
        ) as u64;
        let crc = u32::from_le_bytes(
            footer[12..16]
                .try_into()
                .map_err(|_| corrupt("footer".into()))?,
        );
        let index_len = count * ENTRY_LEN as u64;
        if index_offset < HEADER_LEN || index_offset + index_len + FOOTER_LEN != size {
            return Err(corrupt(format!(
                "index of {count} entries at {index_offset} does not fit a {size}-byte file"
            )));
        }
        let mut idx = vec![0u8; index_len as usize];
        file.read_exact_at(&mut idx, index_offset)
            .map_err(|e| MetricsError::io(path, e))?;
        if crc32fast::hash(&idx) != crc {
            return Err(corrupt("index checksum mismatch".into()));
        }
        let index: Vec<IndexEntry> = idx
            .chunks_exact(ENTRY_LEN)
            .map(IndexEntry::decode)
            .collect();
        for w in index.windows(2) {
            if w[0].series >= w[1].series {
                return Err(corrupt("index not sorted by series".into()));
            }
        }
        for e in &index {
            if e.offset < HEADER_LEN || e.offset + u64::from(e.len) > index_offset {
                return Err(corrupt(format!(
                    "block of series {} points outside the data area",
                    e.series
                )));
            }
        }
        Ok(Segment {
            generation,
            tier,
            partition_start,
            path: path.to_path_buf(),
            size_bytes: size,
            min_ts: index.iter().map(|e| e.min_ts).min().unwrap_or(0),
            max_ts: index.iter().map(|e| e.max_ts).max().unwrap_or(0),
            file,
            index,
        })
    }

    pub fn entry(&self, series: u32) -> Option<&IndexEntry> {
        self.index
            .binary_search_by_key(&series, |e| e.series)
            .ok()
            .map(|i| &self.index[i])
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.index
    }

    pub fn read_block(&self, e: &IndexEntry) -> Result<BlockData, MetricsError> {
        let corrupt = |reason: String| MetricsError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            let ReadScratch {
                zstd,
                compressed,
                raw,
            } = scratch;
            compressed.clear();
            compressed.resize(e.len as usize, 0);
            self.file
                .read_exact_at(compressed, e.offset)
                .map_err(|err| MetricsError::io(&self.path, err))?;
            if crc32fast::hash(compressed) != e.crc {
                return Err(corrupt(format!(
                    "checksum mismatch in the block of series {}",
                    e.series
                )));
            }
            raw.clear();
            raw.reserve(e.raw_len as usize);
            let res = match zstd {
                Some(d) => d.decompress_to_buffer(compressed.as_slice(), raw),
                None => zstd::bulk::decompress_to_buffer(compressed.as_slice(), raw),
            };
            res.map_err(|err| corrupt(format!("block of series {}: {err}", e.series)))?;
            if raw.len() != e.raw_len as usize {
                return Err(corrupt(format!(
                    "block of series {} decompressed to {} bytes, the index says {}",
                    e.series,
                    raw.len(),
                    e.raw_len
                )));
            }
            BlockData::decode(self.tier, raw)
                .map_err(|reason| corrupt(format!("block of series {}: {reason}", e.series)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statistic::Agg;

    #[test]
    fn write_then_read_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.kms");
        let mut w = SegmentWriter::create(&path, Tier::Minute, 0).unwrap();
        let b1 = BlockData::Agg {
            ts: vec![0, 60_000],
            aggs: vec![Agg::of(1.0), Agg::of(2.0)],
        };
        let b3 = BlockData::Agg {
            ts: vec![120_000],
            aggs: vec![Agg::of(3.0)],
        };
        w.add(1, &b1).unwrap();
        w.add(2, &BlockData::empty(Tier::Minute)).unwrap();
        w.add(3, &b3).unwrap();
        let seg = w.finish(7).unwrap();
        assert_eq!(seg.entries().len(), 2);
        assert_eq!((seg.min_ts, seg.max_ts), (0, 120_000));
        assert_eq!(seg.read_block(seg.entry(1).unwrap()).unwrap(), b1);
        assert_eq!(seg.read_block(seg.entry(3).unwrap()).unwrap(), b3);
        assert!(seg.entry(2).is_none());
        drop(seg);

        // Flip one byte inside the first block: reading it reports corruption, naming the file.
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN as usize + 1] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let seg = Segment::open(&path, 7).unwrap();
        let err = seg.read_block(seg.entry(1).unwrap()).unwrap_err();
        assert!(err.to_string().contains("s.kms"), "{err}");
        // Truncation is caught at open.
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            Segment::open(&path, 7),
            Err(MetricsError::Corrupt { .. })
        ));
    }
}
