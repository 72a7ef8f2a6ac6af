//! Registers every `src/targets/<name>.rs` as a fuzz target, so that adding a target is adding
//! one file: writes `$OUT_DIR/targets.rs` with one module and one [`Target`] entry per file.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a target directory shared by two
    // checkouts would otherwise run one checkout's compiled script on the other's path.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("src/targets");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    let mut out = String::new();
    for n in &names {
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "fuzz target file names are snake_case: {n}.rs"
        );
        let path = dir.join(format!("{n}.rs"));
        writeln!(
            out,
            "#[path = {:?}]\npub mod {n};",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("\n/// Every target, by name.\npub const TARGETS: &[crate::Target] = &[\n");
    for n in &names {
        writeln!(out, "    crate::Target {{ name: {n:?}, run: {n}::run }},").unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("targets.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
