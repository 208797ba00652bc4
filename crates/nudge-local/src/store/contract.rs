//! The storage contract (`nudge-store-contract`) on SQLite: every check on a fresh database
//! file; another handle on it is a clone (the tasks of `nudge serve` share one store).

use std::sync::Mutex;

use nudge_store_contract::Backend;

use super::test_support::TempDir;
use super::SqliteStore;

/// Database files in temporary folders, removed when the test ends.
#[derive(Default)]
struct Sqlite {
    dirs: Mutex<Vec<TempDir>>,
}

impl Backend for Sqlite {
    type Store = SqliteStore;

    async fn fresh(&self) -> SqliteStore {
        let dir = TempDir::new("contract");
        let store = dir.open();
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir);
        store
    }

    fn another(&self, store: &SqliteStore) -> SqliteStore {
        store.clone()
    }
}

nudge_store_contract::storage_contract!(Sqlite::default());
