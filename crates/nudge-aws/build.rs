//! Link settings for the Lambda binaries: the four functions use this file as their build
//! script too (`build = "../nudge-aws/build.rs"`), and nudge-aws's examples (the
//! hello-world the cold-start benchmark compares against) get the same.
//!
//! On Linux they are linked as position-dependent executables (`-no-pie`). A PIE's dynamic
//! loader applies every relative relocation at start (ingest: ~44,000) and each page of
//! relocated data it writes is a copy-on-write fault: about 210 of a cold start's 550 page
//! faults, 0.3-0.5 ms before the function can ask for its first event (BENCHMARKS.md). The
//! price is that the executable's own image sits at a fixed address (shared libraries,
//! stack and heap stay randomised), which is also how Go builds its Lambda binaries by
//! default. `NUDGE_LAMBDA_PIE=1` at build time keeps them position-independent.

fn main() {
    println!("cargo:rerun-if-env-changed=NUDGE_LAMBDA_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let keep_pie = std::env::var("NUDGE_LAMBDA_PIE").is_ok_and(|v| !v.is_empty() && v != "0");
    if !linux || keep_pie {
        return;
    }
    // Cargo refuses link arguments for a kind of target the package does not have.
    let package =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    if package.join("src/main.rs").exists() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if package.join("examples").is_dir() {
        println!("cargo:rustc-link-arg-examples=-no-pie");
    }
}
