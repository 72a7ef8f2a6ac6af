//! Fast non-cryptographic hashing (foldhash) for the agent's in-process maps: paths of held
//! cgroup files, rate keys and event shapes, looked up thousands of times per collection,
//! where SipHash's cost shows in the benchmark. Nothing hashed here crosses the process.

use std::hash::BuildHasher;

/// The hasher for maps with short or long byte-string keys.
pub type FastBuildHasher = foldhash::fast::RandomState;

/// A 64-bit hash of any hashable value (a tuple of string parts, say), the same for the same
/// value within one process.
pub fn hash_value<T: std::hash::Hash>(v: T) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6b69_6e73_6967_6874).hash_one(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_hash_equal_and_different_bytes_differ() {
        assert_eq!(hash_value("pod/1/cpu"), hash_value("pod/1/cpu"));
        assert_ne!(hash_value("pod/1/cpu"), hash_value("pod/2/cpu"));
        assert_ne!(hash_value(""), hash_value("\0"));
        // Parts are hashed apart: moving a boundary makes another key.
        assert_eq!(hash_value(("pod/1", "cpu")), hash_value(("pod/1", "cpu")));
        assert_ne!(hash_value(("pod/1", "cpu")), hash_value(("pod/", "1cpu")));
    }
}
