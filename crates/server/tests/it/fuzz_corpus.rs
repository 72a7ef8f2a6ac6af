//! Replays the fuzzing corpora on stable (issue 15, "Fuzzing"): every file of
//! `fuzz/corpus/<target>/` — the seeds and every crash found so far, minimised — goes through
//! the same function the libFuzzer binary runs (`kinsight_fuzzing::TARGETS`), so CI covers them
//! without a nightly toolchain. A missing or empty corpus fails: a corpus that silently
//! vanished must not pass.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_replays_through_its_target() {
    let root = corpus_root();
    let mut failures = Vec::new();
    let mut replayed = 0;
    for t in kinsight_fuzzing::TARGETS {
        let dir = root.join(t.name);
        let inputs = files(&dir);
        assert!(
            !inputs.is_empty(),
            "the corpus of fuzz target {} ({}) is empty",
            t.name,
            dir.display()
        );
        for f in inputs {
            let data = std::fs::read(&f).unwrap();
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (t.run)(&data))) {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", f.display()));
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} corpus files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_belongs_to_a_target() {
    for entry in std::fs::read_dir(corpus_root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            kinsight_fuzzing::target(&name).is_some(),
            "fuzz/corpus/{name} has no target crates/fuzzing/src/targets/{name}.rs"
        );
    }
}
