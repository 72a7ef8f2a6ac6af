//! Per-container line rate limit with drop counters (issue [2/8]): a token bucket holding one
//! second of lines. Dropped lines are counted, reported in the log every 10 s per container,
//! and their offsets still advance (dropping is a decision, not a failure).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    dropped_since_report: u64,
    dropped_total: u64,
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: HashMap<Arc<str>, Bucket>,
    last_report: Instant,
}

impl RateLimiter {
    /// `per_second` 0 = unlimited.
    pub fn new(per_second: u64) -> RateLimiter {
        RateLimiter {
            per_second: per_second as f64,
            buckets: HashMap::new(),
            last_report: Instant::now(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_second > 0.0
    }

    /// Whether one more line of `key` may pass at `now`.
    pub fn allow(&mut self, key: &Arc<str>, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        let rate = self.per_second;
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate,
            last: now,
            dropped_since_report: 0,
            dropped_total: 0,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            b.dropped_since_report += 1;
            b.dropped_total += 1;
            false
        }
    }

    /// Lines dropped so far for `key`.
    pub fn dropped(&self, key: &str) -> u64 {
        self.buckets.get(key).map(|b| b.dropped_total).unwrap_or(0)
    }

    /// Logs drops every 10 s and forgets idle buckets.
    pub fn report(&mut self, now: Instant) {
        if now.duration_since(self.last_report) < Duration::from_secs(10) {
            return;
        }
        self.last_report = now;
        for (k, b) in &mut self.buckets {
            if b.dropped_since_report > 0 {
                tracing::warn!(container = %k, dropped = b.dropped_since_report, total = b.dropped_total,
                    limit_per_second = self.per_second, "log lines dropped by the rate limit");
                b.dropped_since_report = 0;
            }
        }
        self.buckets
            .retain(|_, b| now.duration_since(b.last) < Duration::from_secs(600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_rate_and_counts_the_rest() {
        let mut r = RateLimiter::new(100);
        let k: Arc<str> = Arc::from("ns/pod/c");
        let other: Arc<str> = Arc::from("ns/pod/d");
        let t0 = Instant::now();
        let passed = (0..1000).filter(|_| r.allow(&k, t0)).count();
        assert_eq!(passed, 100);
        assert_eq!(r.dropped("ns/pod/c"), 900);
        assert!(r.allow(&other, t0), "buckets are per container");
        let later = t0 + Duration::from_millis(500);
        let passed = (0..1000).filter(|_| r.allow(&k, later)).count();
        assert_eq!(passed, 50);
        assert!(RateLimiter::new(0).allow(&k, t0));
    }
}
