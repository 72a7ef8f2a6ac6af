//! Links the `kinsight` binary with packed relative relocations (`DT_RELR`, glibc ≥ 2.36,
//! binutils ≥ 2.38). The binary is large (the server's query engine is in it) and position-
//! independent: with classic `.rela.dyn` the loader reads ~6 MB of relocation entries at every
//! start, which stays in the agent's resident memory; packed, they take a few kilobytes
//! (issue [1/8] asks for an agent under 30 MiB RSS). Only the binary is affected, not tests.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KINSIGHT_NO_RELR");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu && std::env::var_os("KINSIGHT_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
