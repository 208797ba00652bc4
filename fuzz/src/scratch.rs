//! A scratch folder for targets that need files (the journal, the SQLite store): one per
//! process, under the system's temporary folder, removed when the process exits normally
//! (after a crash it stays for a look; `scripts/fuzz.sh` runs with a temporary folder of its
//! own and removes it).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch folder, created empty on first use.
pub fn dir() -> &'static Path {
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nudge-fuzz-{}", std::process::id()));
        // A folder left by an earlier process of the same id.
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create the scratch folder {}: {e}", dir.display());
        }
        // SAFETY: registers a plain function with no arguments, as atexit wants.
        unsafe {
            libc::atexit(remove_at_exit);
        }
        dir
    })
}

extern "C" fn remove_at_exit() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
