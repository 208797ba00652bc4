//! How SQLite failures become [`StoreError`]s: busy and locked, a full disk, I/O errors and
//! running out of memory pass (the same write succeeds later, and handlers wait for it),
//! data that does not read back is corrupt, everything else is a plain backend failure.

use std::sync::Arc;

use nudge_service::ports::StoreError;
use rusqlite::ErrorCode;

/// Failures of the store itself (not of one statement), carried as the source of a
/// [`StoreError::Backend`].
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum SqliteFailure {
    /// `BEGIN` of a group commit failed; nothing of the batch ran.
    #[error("cannot begin the transaction: {0}")]
    Begin(Arc<rusqlite::Error>),
    /// `COMMIT` of a group commit failed; nothing of the batch was stored.
    #[error("cannot commit the transaction: {0}")]
    Commit(Arc<rusqlite::Error>),
    /// A savepoint around one command could not be opened, released or rolled back.
    #[error("savepoint of a command failed: {0}")]
    Savepoint(Arc<rusqlite::Error>),
    /// SQLite rolled the whole transaction back after another command in it failed (disk
    /// full, I/O error); this command's write was lost with it.
    #[error("the transaction was rolled back by another write in the same commit")]
    RolledBack,
    /// A command run without a savepoint failed after it had changed rows; its half-done
    /// change could be undone only with the whole group commit, which was rolled back.
    #[error("a write in the same commit failed half-way; the commit was rolled back")]
    HalfWritten,
    /// The writer thread is gone (the store was closed, or the thread died).
    #[error("the SQLite writer thread has stopped")]
    WriterStopped,
    /// The file was written by a newer nudge.
    #[error("database schema version {found} is newer than this nudge supports ({supported})")]
    NewerSchema { found: i64, supported: i64 },
    /// SQLite refused write-ahead logging (e.g. an in-memory or read-only database).
    #[error("journal mode is `{0}`, not `wal`")]
    NotWal(String),
    /// A version or limit beyond what SQLite's 64-bit signed integers hold.
    #[error("{0} does not fit in a SQLite integer")]
    OutOfRange(u64),
}

impl SqliteFailure {
    /// Whether trying the whole operation again may succeed.
    pub(super) fn is_retryable(&self) -> bool {
        match self {
            SqliteFailure::Begin(e) | SqliteFailure::Commit(e) | SqliteFailure::Savepoint(e) => {
                is_transient(e)
            }
            // Only a sibling command broke the transaction; alone this one may well succeed.
            SqliteFailure::RolledBack | SqliteFailure::HalfWritten => true,
            SqliteFailure::WriterStopped
            | SqliteFailure::NewerSchema { .. }
            | SqliteFailure::NotWal(_)
            | SqliteFailure::OutOfRange(_) => false,
        }
    }

    /// This failure as the error of the operation `context`.
    pub(super) fn into_store_error(self, context: &'static str) -> StoreError {
        let retryable = self.is_retryable();
        StoreError::backend(context, retryable, self)
    }
}

/// Whether the error passes by itself: another connection holding the database, a full
/// disk (space is freed), an I/O error (`SQLITE_IOERR`, which is also how a write into a full
/// disk can fail) or memory running out. SQLite rolls back what failed, so the same write
/// can simply be made again.
fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
        )
    )
}

/// Maps a rusqlite error of the operation `context`: values that do not convert are corrupt
/// data, busy and locked are retryable, the rest is not.
pub(super) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(format!("{context}: {e}")),
        e => {
            let retryable = is_transient(&e);
            StoreError::backend(context, retryable, e)
        }
    }
}

/// Maps a JSON decode failure of stored data.
pub(super) fn corrupt_json(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Maps a JSON encode failure (plain data with string keys cannot fail; kept total anyway).
pub(super) fn encode(context: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::backend(context, false, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::os::raw::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn a_full_disk_and_io_errors_pass_and_are_retried() {
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_IOERR_WRITE,
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_NOMEM,
        ] {
            let commit = SqliteFailure::Commit(Arc::new(failure(code)));
            assert!(commit.is_retryable(), "commit failing with {code}");
            assert!(sqlite("save user")(failure(code)).is_retryable(), "{code}");
        }
    }

    #[test]
    fn a_corrupt_or_read_only_database_is_not_retried() {
        for code in [
            rusqlite::ffi::SQLITE_CORRUPT,
            rusqlite::ffi::SQLITE_NOTADB,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CONSTRAINT,
        ] {
            assert!(!SqliteFailure::Commit(Arc::new(failure(code))).is_retryable());
            assert!(!sqlite("save user")(failure(code)).is_retryable(), "{code}");
        }
    }
}
