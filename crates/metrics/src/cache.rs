//! A byte-bounded cache of decoded segment blocks, keyed by (segment generation, series).
//! Alarm evaluation re-reads the same recent blocks every minute; decoding them once per
//! segment instead of once per evaluation is what keeps 10,000 alarms cheap.

use crate::block::BlockData;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Key = (u64, u32);

pub(crate) struct BlockCache {
    budget_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, (Arc<BlockData>, u64)>,
    bytes: usize,
    tick: u64,
}

impl BlockCache {
    pub fn new(budget_bytes: usize) -> Self {
        BlockCache {
            budget_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, key: Key) -> Option<Arc<BlockData>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.tick += 1;
        let tick = g.tick;
        let entry = g.map.get_mut(&key)?;
        entry.1 = tick;
        Some(entry.0.clone())
    }

    pub fn insert(&self, key: Key, block: Arc<BlockData>) {
        let size = block.approx_bytes();
        if size > self.budget_bytes / 4 {
            return; // one block must not flush the whole cache
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, _)) = g.map.insert(key, (block, tick)) {
            g.bytes -= old.approx_bytes();
        }
        g.bytes += size;
        if g.bytes > self.budget_bytes {
            // Evict the least recently used quarter in one pass rather than one entry per
            // insert: O(n log n) now and then instead of a linked list on every hit.
            let mut ticks: Vec<(u64, Key)> = g.map.iter().map(|(k, (_, t))| (*t, *k)).collect();
            ticks.sort_unstable();
            let target = self.budget_bytes * 3 / 4;
            for (_, k) in ticks {
                if g.bytes <= target {
                    break;
                }
                if let Some((b, _)) = g.map.remove(&k) {
                    g.bytes -= b.approx_bytes();
                }
            }
        }
    }

    /// Drops the blocks of segments that no longer exist.
    pub fn forget_generations(&self, gens: &[u64]) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut freed = 0;
        g.map.retain(|(generation, _), (b, _)| {
            let keep = !gens.contains(generation);
            if !keep {
                freed += b.approx_bytes();
            }
            keep
        });
        g.bytes -= freed;
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Tier;

    fn block(rows: usize) -> Arc<BlockData> {
        let mut b = BlockData::empty(Tier::Raw);
        for i in 0..rows {
            b.push_raw(i as i64, 1.0);
        }
        Arc::new(b)
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c = BlockCache::new(16 * 100);
        for i in 0..10 {
            c.insert((1, i), block(10)); // 160 bytes each
        }
        assert!(c.get((1, 0)).is_some());
        c.insert((1, 10), block(10));
        assert!(c.bytes() <= 16 * 100);
        assert!(c.get((1, 0)).is_some(), "recently used entry survives");
        assert!(c.get((1, 1)).is_none(), "oldest entry evicted");
        c.forget_generations(&[1]);
        assert_eq!(c.bytes(), 0);
    }
}
