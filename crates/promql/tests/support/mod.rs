//! Test support: an in-memory Source.

#![allow(dead_code)]

use kinsight_promql::{Labels, STALE_NAN_BITS};

pub fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    )
}

/// The crate's in-memory source, under the name the tests use.
pub type MemSource = kinsight_promql::MemorySource;

/// The real Prometheus as an oracle (also included by the kinsight binary's tests).
pub mod prometheus;
