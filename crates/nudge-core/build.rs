//! Stamps the crate with a hash of its own source, so that a compiled rule set snapshot
//! (`rules::snapshot`) is read only by code built from the same source as the code that
//! wrote it: development builds share a version number, not a compiler of rules.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

fn main() {
    let src = Path::new("src");
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    collect(src, &mut files);
    files.sort();
    let mut h = DefaultHasher::new();
    for f in &files {
        h.write(f.to_string_lossy().as_bytes());
        // An unreadable file would fail the crate's own build anyway.
        h.write(&std::fs::read(f).unwrap_or_default());
    }
    println!("cargo:rustc-env=NUDGE_CORE_SOURCE_HASH={:016x}", h.finish());
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
