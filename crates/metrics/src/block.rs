//! The columns of one series in one tier: timestamps plus either raw samples or rollup
//! aggregates. The same type holds the in-memory head and decoded segment blocks; its byte
//! encoding is documented in docs/formats/metrics.md.

use crate::statistic::Agg;
use crate::tier::Tier;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BlockData {
    /// One row per sample (an EMF value array gives several rows with one timestamp).
    Raw { ts: Vec<i64>, vals: Vec<f64> },
    /// One row per bucket start.
    Agg { ts: Vec<i64>, aggs: Vec<Agg> },
}

impl BlockData {
    pub fn empty(tier: Tier) -> BlockData {
        match tier {
            Tier::Raw => BlockData::Raw {
                ts: Vec::new(),
                vals: Vec::new(),
            },
            Tier::Minute | Tier::Hour => BlockData::Agg {
                ts: Vec::new(),
                aggs: Vec::new(),
            },
        }
    }

    pub fn ts(&self) -> &[i64] {
        match self {
            BlockData::Raw { ts, .. } | BlockData::Agg { ts, .. } => ts,
        }
    }

    pub fn rows(&self) -> usize {
        self.ts().len()
    }

    /// Rough in-memory size, for the block cache and the head's flush threshold.
    pub fn approx_bytes(&self) -> usize {
        match self {
            BlockData::Raw { ts, .. } => ts.len() * 16,
            BlockData::Agg { ts, .. } => ts.len() * 40,
        }
    }

    pub fn push_raw(&mut self, t: i64, v: f64) {
        if let BlockData::Raw { ts, vals } = self {
            ts.push(t);
            vals.push(v);
        }
    }

    /// Adds a sample to its bucket. Data mostly arrives in time order, so the bucket is
    /// almost always the last row; a few rows back are searched for late samples, and
    /// anything older gets its own row (merged later by [`BlockData::normalize`]).
    pub fn add_to_bucket(&mut self, bucket: i64, v: f64) {
        if let BlockData::Agg { ts, aggs } = self {
            let n = ts.len();
            for i in (n.saturating_sub(4)..n).rev() {
                if ts[i] == bucket {
                    aggs[i].add(v);
                    return;
                }
            }
            ts.push(bucket);
            aggs.push(Agg::of(v));
        }
    }

    /// Sorts rows by time (stable, so raw samples keep arrival order within a millisecond)
    /// and merges rollup rows of the same bucket.
    pub fn normalize(&mut self) {
        match self {
            BlockData::Raw { ts, vals } => {
                if ts.windows(2).all(|w| w[0] <= w[1]) {
                    return;
                }
                let mut rows: Vec<(i64, f64)> =
                    ts.iter().copied().zip(vals.iter().copied()).collect();
                rows.sort_by_key(|r| r.0);
                *ts = rows.iter().map(|r| r.0).collect();
                *vals = rows.iter().map(|r| r.1).collect();
            }
            BlockData::Agg { ts, aggs } => {
                if ts.windows(2).all(|w| w[0] < w[1]) {
                    return;
                }
                let mut rows: Vec<(i64, Agg)> =
                    ts.iter().copied().zip(aggs.iter().copied()).collect();
                rows.sort_by_key(|r| r.0);
                ts.clear();
                aggs.clear();
                for (t, a) in rows {
                    if ts.last() == Some(&t) {
                        if let Some(last) = aggs.last_mut() {
                            last.merge(&a);
                        }
                    } else {
                        ts.push(t);
                        aggs.push(a);
                    }
                }
            }
        }
    }

    /// Appends another block's rows (same kind); call [`BlockData::normalize`] after.
    pub fn extend(&mut self, other: &BlockData) {
        match (self, other) {
            (BlockData::Raw { ts, vals }, BlockData::Raw { ts: t2, vals: v2 }) => {
                ts.extend_from_slice(t2);
                vals.extend_from_slice(v2);
            }
            (BlockData::Agg { ts, aggs }, BlockData::Agg { ts: t2, aggs: a2 }) => {
                ts.extend_from_slice(t2);
                aggs.extend_from_slice(a2);
            }
            _ => {}
        }
    }

    /// Splits rows by the tier's time partition.
    pub fn split_by_partition(&self, tier: Tier) -> Vec<(i64, BlockData)> {
        let mut out: Vec<(i64, BlockData)> = Vec::new();
        // Partition → index in `out`: rows spread over many partitions stay linear.
        let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        let ts = self.ts();
        for i in 0..ts.len() {
            let p = tier.partition_of(ts[i]);
            let idx = *index.entry(p).or_insert_with(|| {
                out.push((p, BlockData::empty(tier)));
                out.len() - 1
            });
            let dst = &mut out[idx].1;
            match (self, dst) {
                (BlockData::Raw { vals, .. }, BlockData::Raw { ts: dt, vals: dv }) => {
                    dt.push(ts[i]);
                    dv.push(vals[i]);
                }
                (BlockData::Agg { aggs, .. }, BlockData::Agg { ts: dt, aggs: da }) => {
                    dt.push(ts[i]);
                    da.push(aggs[i]);
                }
                _ => {}
            }
        }
        out
    }

    /// Index range of rows with `start <= ts < end`, for a normalized block.
    pub fn range(&self, start: i64, end: i64) -> std::ops::Range<usize> {
        let ts = self.ts();
        let lo = ts.partition_point(|t| *t < start);
        let hi = ts.partition_point(|t| *t < end);
        lo..hi.max(lo)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.approx_bytes() + 8);
        let ts = self.ts();
        out.extend_from_slice(&(ts.len() as u32).to_le_bytes());
        if let Some(first) = ts.first() {
            out.extend_from_slice(&first.to_le_bytes());
            for w in ts.windows(2) {
                put_varint(&mut out, zigzag(w[1].wrapping_sub(w[0])));
            }
        }
        match self {
            BlockData::Raw { vals, .. } => put_f64_planes(&mut out, vals.iter().copied()),
            BlockData::Agg { aggs, .. } => {
                for a in aggs {
                    put_varint(&mut out, a.count);
                }
                put_f64_planes(&mut out, aggs.iter().map(|a| a.sum));
                put_f64_planes(&mut out, aggs.iter().map(|a| a.min));
                put_f64_planes(&mut out, aggs.iter().map(|a| a.max));
            }
        }
        out
    }

    pub fn decode(tier: Tier, bytes: &[u8]) -> Result<BlockData, String> {
        let mut r = Reader { b: bytes, pos: 0 };
        let rows = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| "short")?) as usize;
        // Each row needs at least one byte per column; refuse absurd counts before allocating.
        if rows > bytes.len() {
            return Err(format!("block claims {rows} rows in {} bytes", bytes.len()));
        }
        let mut ts = Vec::with_capacity(rows);
        if rows > 0 {
            let mut t = i64::from_le_bytes(r.take(8)?.try_into().map_err(|_| "short")?);
            ts.push(t);
            for _ in 1..rows {
                t = t.wrapping_add(unzigzag(r.varint()?));
                ts.push(t);
            }
        }
        let block = match tier {
            Tier::Raw => BlockData::Raw {
                ts,
                vals: r.f64_planes(rows)?,
            },
            Tier::Minute | Tier::Hour => {
                // Decode straight into the rows: no per-column temporaries.
                let mut aggs = vec![
                    Agg {
                        count: 0,
                        sum: 0.0,
                        min: 0.0,
                        max: 0.0,
                    };
                    rows
                ];
                for a in aggs.iter_mut() {
                    a.count = r.varint()?;
                }
                r.f64_planes_into(rows, &mut aggs, |a, v| a.sum = v)?;
                r.f64_planes_into(rows, &mut aggs, |a, v| a.min = v)?;
                r.f64_planes_into(rows, &mut aggs, |a, v| a.max = v)?;
                BlockData::Agg { ts, aggs }
            }
        };
        if r.pos != bytes.len() {
            return Err(format!("{} trailing bytes in block", bytes.len() - r.pos));
        }
        Ok(block)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Floats are written as 8 byte planes (all first bytes, then all second bytes, …): values
/// of one metric share sign, exponent and leading mantissa bytes, which zstd then compresses
/// far better than interleaved doubles.
fn put_f64_planes(out: &mut Vec<u8>, vals: impl Iterator<Item = f64>) {
    let bits: Vec<u64> = vals.map(f64::to_bits).collect();
    for plane in 0..8u32 {
        out.extend(bits.iter().map(|b| (b >> (8 * plane)) as u8));
    }
}

thread_local! {
    /// Reused per thread by the plane decoder: a query decodes thousands of blocks.
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| format!("block truncated at byte {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first().ok_or("short")?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }

    /// Like [`Reader::f64_planes`], writing each value through `set` (scratch reused).
    fn f64_planes_into<T>(
        &mut self,
        rows: usize,
        out: &mut [T],
        set: impl Fn(&mut T, f64),
    ) -> Result<(), String> {
        let len = rows.checked_mul(8).ok_or("row count overflows")?;
        let planes = self.take(len)?;
        SCRATCH.with(|cell| {
            let mut bits = cell.borrow_mut();
            bits.clear();
            bits.resize(rows, 0);
            if rows > 0 {
                for (p, plane) in planes.chunks_exact(rows).enumerate() {
                    let shift = 8 * p as u32;
                    for (b, byte) in bits.iter_mut().zip(plane) {
                        *b |= u64::from(*byte) << shift;
                    }
                }
            }
            for (o, b) in out.iter_mut().zip(bits.iter()) {
                set(o, f64::from_bits(*b));
            }
        });
        Ok(())
    }

    fn f64_planes(&mut self, rows: usize) -> Result<Vec<f64>, String> {
        let len = rows.checked_mul(8).ok_or("row count overflows")?;
        let planes = self.take(len)?;
        // Plane by plane, sequentially: the compiler vectorises these loops; a per-value
        // gather across planes is several times slower on the query path.
        let mut bits = vec![0u64; rows];
        if rows > 0 {
            for (p, plane) in planes.chunks_exact(rows).enumerate() {
                let shift = 8 * p as u32;
                for (b, byte) in bits.iter_mut().zip(plane) {
                    *b |= u64::from(*byte) << shift;
                }
            }
        }
        Ok(bits.into_iter().map(f64::from_bits).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn raw_round_trips(rows in proptest::collection::vec((any::<i64>(), any::<f64>()), 0..200)) {
            let b = BlockData::Raw { ts: rows.iter().map(|r| r.0).collect(), vals: rows.iter().map(|r| r.1).collect() };
            let back = BlockData::decode(Tier::Raw, &b.encode()).unwrap();
            // Compare bit patterns so NaN payloads count too.
            let (BlockData::Raw { ts: t1, vals: v1 }, BlockData::Raw { ts: t2, vals: v2 }) = (&b, &back) else { panic!() };
            prop_assert_eq!(t1, t2);
            prop_assert_eq!(v1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), v2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }

        #[test]
        fn agg_round_trips(rows in proptest::collection::vec((-1_000_000_000_000i64..4_000_000_000_000, 1u64..u64::MAX, -1e300f64..1e300), 0..100)) {
            let b = BlockData::Agg {
                ts: rows.iter().map(|r| r.0).collect(),
                aggs: rows.iter().map(|r| Agg { count: r.1, sum: r.2, min: r.2 - 1.0, max: r.2 + 1.0 }).collect(),
            };
            prop_assert_eq!(BlockData::decode(Tier::Hour, &b.encode()).unwrap(), b);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = BlockData::decode(Tier::Raw, &bytes);
            let _ = BlockData::decode(Tier::Minute, &bytes);
        }
    }

    #[test]
    fn normalize_merges_buckets_and_sorts() {
        let mut b = BlockData::empty(Tier::Minute);
        for (t, v) in [(120_000, 1.0), (60_000, 2.0), (120_000, 3.0), (0, 4.0)] {
            b.add_to_bucket(t, v);
        }
        // A late sample far back gets its own row until normalize.
        for i in 0..6 {
            b.add_to_bucket(180_000 + i * 60_000, 1.0);
        }
        b.add_to_bucket(60_000, 5.0);
        b.normalize();
        let BlockData::Agg { ts, aggs } = &b else {
            panic!()
        };
        assert_eq!(&ts[..3], &[0, 60_000, 120_000]);
        assert_eq!(
            aggs[1],
            Agg {
                count: 2,
                sum: 7.0,
                min: 2.0,
                max: 5.0
            }
        );
        assert_eq!(
            aggs[2],
            Agg {
                count: 2,
                sum: 4.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(b.range(60_000, 180_000), 1..3);
    }
}
