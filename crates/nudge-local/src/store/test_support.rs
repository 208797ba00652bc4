//! Test helpers: a uniquely named temporary folder per test, removed afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::SqliteStore;

/// A fresh folder under the system's temp dir, deleted on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder whose name starts with `name`.
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "nudge-store-{name}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The folder.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// The database file inside the folder.
    pub(crate) fn db(&self) -> PathBuf {
        self.0.join("nudge.db")
    }

    /// Opens (or reopens) the store in this folder.
    pub(crate) fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.db()).expect("open store")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
