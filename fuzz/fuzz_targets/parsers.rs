//! Every fuzz target of kinsight in one libFuzzer binary (one sanitizer build of the whole tree
//! instead of one per target): `KINSIGHT_FUZZ_TARGET` names the target, whose body is
//! `kinsight_fuzzing::targets::<name>::run` — the same function the corpus replay test calls.
#![no_main]

use std::sync::OnceLock;

static RUN: OnceLock<fn(&[u8])> = OnceLock::new();

fn target() -> fn(&[u8]) {
    let name = std::env::var("KINSIGHT_FUZZ_TARGET").unwrap_or_default();
    match kinsight_fuzzing::TARGETS.iter().find(|t| t.name == name) {
        Some(t) => t.run,
        None => {
            let names: Vec<&str> = kinsight_fuzzing::TARGETS.iter().map(|t| t.name).collect();
            eprintln!(
                "set KINSIGHT_FUZZ_TARGET to one of: {} (got {name:?})",
                names.join(", ")
            );
            std::process::exit(2);
        }
    }
}

libfuzzer_sys::fuzz_target!(init: { RUN.get_or_init(target); }, |data: &[u8]| {
    (RUN.get_or_init(target))(data)
});
