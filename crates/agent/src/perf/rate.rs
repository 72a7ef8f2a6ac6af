//! Rates of cumulative counters between samples (reference §2.1): a value is produced only
//! when a previous sample exists, time moved forward by more than 50 µs and the counter did
//! not go backwards — otherwise the field is simply absent this cycle (first sample, counter
//! reset, restarted container).

use std::collections::HashMap;

/// Entries not refreshed for this long are forgotten (vanished containers and interfaces).
const TTL_NS: u64 = 10 * 60 * 1_000_000_000;

/// Keys are hashed once to 64 bits (foldhash): thousands of lookups per collection, and a
/// collision between two live keys of one node is vanishingly unlikely.
#[derive(Debug, Default)]
pub struct RateCache {
    prev: HashMap<u64, (u64, u64), std::hash::BuildHasherDefault<IdHasher>>,
    last_sweep_ns: u64,
}

/// The keys are already hashes.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl RateCache {
    /// Per-second rate of `value` under `key` at monotonic time `t_ns`.
    /// `key` names the counter: a string, or a tuple of parts (`(pod_key, "pgfault")`) so that
    /// callers need not format one string per counter.
    pub fn per_second<K: std::hash::Hash>(&mut self, key: K, value: u64, t_ns: u64) -> Option<f64> {
        let key = kinsight_model::hash::hash_value(key);
        let out = match self.prev.get(&key) {
            Some(&(v0, t0)) if t_ns > t0 && t_ns - t0 > 50_000 && value >= v0 => {
                Some((value - v0) as f64 * 1e9 / (t_ns - t0) as f64)
            }
            _ => None,
        };
        self.prev.insert(key, (value, t_ns));
        out
    }

    /// CPU rate in millicores from cumulative nanoseconds: ns of CPU per ns of wall × 1000.
    pub fn millicores<K: std::hash::Hash>(
        &mut self,
        key: K,
        cpu_ns: u64,
        t_ns: u64,
    ) -> Option<f64> {
        self.per_second(key, cpu_ns, t_ns)
            .map(|ns_per_s| ns_per_s / 1e9 * 1000.0)
    }

    /// Forgets entries older than the TTL; cheap to call every collection.
    pub fn sweep(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.last_sweep_ns) < 60_000_000_000 {
            return;
        }
        self.last_sweep_ns = now_ns;
        self.prev
            .retain(|_, (_, t)| now_ns.saturating_sub(*t) < TTL_NS);
    }

    pub fn len(&self) -> usize {
        self.prev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_and_reset_give_nothing() {
        let mut r = RateCache::default();
        assert_eq!(r.per_second("a", 100, 1_000_000_000), None);
        assert_eq!(r.per_second("a", 300, 3_000_000_000), Some(100.0));
        // Counter reset: nothing this cycle, next cycle rates from the new base.
        assert_eq!(r.per_second("a", 10, 4_000_000_000), None);
        assert_eq!(r.per_second("a", 20, 5_000_000_000), Some(10.0));
        // Time must move forward by more than 50 µs.
        assert_eq!(r.per_second("a", 30, 5_000_010_000), None);
    }

    #[test]
    fn millicores_from_nanoseconds() {
        let mut r = RateCache::default();
        r.millicores("c", 0, 0);
        // Half a CPU-second per wall second = 500 millicores.
        let m = r.millicores("c", 500_000_000, 1_000_000_000).unwrap();
        assert!((m - 500.0).abs() < 1e-9);
    }

    #[test]
    fn sweep_forgets_stale_entries() {
        let mut r = RateCache::default();
        r.per_second("old", 1, 1);
        r.per_second("new", 1, TTL_NS + 100_000_000_000);
        r.sweep(TTL_NS + 100_000_000_000);
        assert_eq!(r.len(), 1);
    }
}
