//! Fast non-cryptographic hashing (foldhash) for the agent's in-process maps: paths of held
//! cgroup files, rate keys and event shapes, looked up thousands of times per collection,
//! where SipHash's cost shows in the benchmark. Nothing hashed here crosses the process.

use std::hash::BuildHasher;

/// The hasher for maps with short or long byte-string keys.
pub type FastBuildHasher = foldhash::fast::RandomState;

/// A 64-bit hash of `bytes`, the same for the same bytes within one process.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6b69_6e73_6967_6874).hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_hash_equal_and_different_bytes_differ() {
        assert_eq!(hash_bytes(b"pod/1/cpu"), hash_bytes(b"pod/1/cpu"));
        assert_ne!(hash_bytes(b"pod/1/cpu"), hash_bytes(b"pod/2/cpu"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
    }
}
