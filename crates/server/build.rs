//! Makes a release build notice a new console build: `rust-embed` embeds `ui/dist` with
//! `include_bytes!`, which cargo tracks per file, but a file that appears (or a `ui/dist` that
//! did not exist at the last build) is not tracked. Nothing is downloaded or built here.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let ui = Path::new(&manifest).join("../../ui");
    let dist = ui.join("dist");
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else if ui.is_dir() {
        // Watching a path that does not exist would rerun this script (and rebuild the crate)
        // on every build: watch the folder `dist` will appear in instead.
        println!("cargo:rerun-if-changed={}", ui.display());
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
