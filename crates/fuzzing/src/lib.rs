//! kinsight-fuzzing: the bodies of kinsight's fuzz targets — one module per parser of outside
//! input, each a `pub fn run(data: &[u8])` that feeds the bytes to the parser and asserts what
//! must hold beyond "no crash" (a printed query or pattern parses back to itself, a body is
//! decoded or refused with a 4xx, decoded sizes stay under their cap, …).
//!
//! Two callers run the very same functions, so what CI replays cannot drift from what is
//! fuzzed:
//! - the libFuzzer binary `parsers` of the cargo-fuzz workspace `fuzz/` (nightly, sanitizers),
//!   which runs the target named by `KINSIGHT_FUZZ_TARGET` — `scripts/fuzz.sh` runs them all;
//! - the corpus replay test (`crates/server/tests/it/fuzz_corpus.rs`, stable), which feeds every
//!   file of `fuzz/corpus/<target>/` to its target and fails if a corpus is missing or empty.
//!
//! Adding a target is adding one file, `src/targets/<name>.rs` with its `run` (the build script
//! registers it in [`TARGETS`]), plus its seed corpus `fuzz/corpus/<name>/` (docs/security.md,
//! "Fuzzing").
//!
//! What it deliberately does not: hold parsing logic of its own, generate structured inputs
//! (targets take bytes and split them by a documented layout), or run anything with I/O.

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The file name of its module and of its corpus directory.
    pub name: &'static str,
    /// Runs one input; panics (or overflows its stack, or runs away) on a finding.
    pub run: fn(&[u8]),
}

/// One module per file of `src/targets/` and their [`TARGETS`] table, written by `build.rs`.
pub mod targets {
    include!(concat!(env!("OUT_DIR"), "/targets.rs"));
}

pub use targets::TARGETS;

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
