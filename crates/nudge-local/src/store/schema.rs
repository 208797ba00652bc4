//! The database file: connection settings and the schema, versioned in `PRAGMA user_version`
//! so that a later nudge can migrate it step by step.

use std::path::Path;
use std::time::Duration;

use nudge_service::ports::StoreError;
use rusqlite::{Connection, TransactionBehavior};

use super::error::{sqlite, SqliteFailure};

/// The schema version this code reads and writes, kept in `PRAGMA user_version`; a file with
/// a higher one is refused.
pub const SCHEMA_VERSION: i64 = 2;

/// How long a statement waits for another process holding the file before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Enough cached statements for every query of the store (the default of 16 would evict
/// some on every batch and re-prepare them).
const STATEMENT_CACHE: usize = 128;

/// Page cache of the connection, in KiB when negative (SQLite's convention): the default 2 MB
/// makes every save of a random user read index pages back from the OS once the file grows.
const CACHE_SIZE: i64 = -64 * 1024;

/// WAL size, in pages of 4 KiB, at which SQLite checkpoints inside a commit: 64 MiB, a bound
/// only. The checkpointer thread checkpoints well before under any load
/// (`writer::CHECKPOINT_EVERY`).
const AUTOCHECKPOINT_PAGES: i64 = 16 * 1024;

/// Size, in bytes, the WAL file is cut back to after a checkpoint if a burst made it larger.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Version 1: users with their applied messageIds, timers, delivery log, inbox, event queue.
const SCHEMA_V1: &str = "
CREATE TABLE users (
    user_id TEXT PRIMARY KEY NOT NULL,
    state   BLOB NOT NULL,
    version INTEGER NOT NULL,
    outbox  TEXT NOT NULL
);
CREATE TABLE applied_messages (
    user_id    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, message_id)
) WITHOUT ROWID;
CREATE INDEX applied_messages_expiry ON applied_messages (expires_at);
CREATE TABLE timers (
    user_id TEXT PRIMARY KEY NOT NULL,
    due     INTEGER,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (due) WHERE due IS NOT NULL;
CREATE TABLE deliveries (
    user_id    TEXT NOT NULL,
    id         INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    entry      TEXT NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX deliveries_recent ON deliveries (user_id, at);
CREATE INDEX deliveries_expiry ON deliveries (updated_at);
CREATE TABLE inbox (
    user_id    TEXT NOT NULL,
    id         INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    read_at    INTEGER,
    dismissed  INTEGER NOT NULL DEFAULT 0,
    item       TEXT NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX inbox_expiry ON inbox (expires_at);
CREATE TABLE queue (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL
);
";

/// Version 2: the report counters, pending waits per trigger and sketches of distinct users
/// per hour and day. A counter's key (scope, name, variant, part, field) is a slot of its
/// (scope, name); each hourly or daily row holds one (scope, name)'s slots as a vector, so a
/// month of a trigger is about thirty small rows, summed as vectors.
const SCHEMA_V2: &str = "
CREATE TABLE counter_slots (
    scope   TEXT NOT NULL,
    name    TEXT NOT NULL,
    slot    INTEGER NOT NULL,
    variant TEXT NOT NULL,
    part    TEXT NOT NULL,
    field   TEXT NOT NULL,
    PRIMARY KEY (scope, name, slot)
) WITHOUT ROWID;
CREATE UNIQUE INDEX counter_slots_key ON counter_slots (scope, name, variant, part, field);
CREATE TABLE counters (
    grain   INTEGER NOT NULL,
    bucket  INTEGER NOT NULL,
    scope   TEXT NOT NULL,
    name    TEXT NOT NULL,
    slots   BLOB NOT NULL,
    PRIMARY KEY (grain, bucket, scope, name)
) WITHOUT ROWID;
CREATE TABLE waiting (
    trigger TEXT NOT NULL,
    channel TEXT NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (trigger, channel)
) WITHOUT ROWID;
CREATE TABLE user_sketches (
    grain     INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    registers BLOB NOT NULL,
    PRIMARY KEY (grain, bucket)
) WITHOUT ROWID;
";

/// Opens (creating if needed) the database at `path` with WAL, `synchronous=NORMAL` and a
/// busy timeout, and brings its schema to [`SCHEMA_VERSION`].
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(sqlite("open SQLite database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite("set SQLite busy timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite("set SQLite journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteFailure::NotWal(mode).into_store_error("set SQLite journal mode"));
    }
    // In WAL mode NORMAL syncs only at checkpoints: a commit survives a process crash (it is
    // in the OS's page cache) but may be lost with power; FULL would fsync every commit.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite("set SQLite synchronous mode"))?;
    conn.pragma_update(None, "cache_size", CACHE_SIZE)
        .map_err(sqlite("set SQLite cache size"))?;
    conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)
        .map_err(sqlite("set SQLite WAL checkpoint size"))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(sqlite("set SQLite WAL size limit"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn)?;
    check_integrity(&conn)?;
    Ok(conn)
}

/// Checks the file's structure with SQLite's `quick_check` (every page readable, no damaged
/// b-tree, records well formed; not the slower full `integrity_check`), so a damaged file
/// stops the start instead of failing writes later. It reads the whole file once.
fn check_integrity(conn: &Connection) -> Result<(), StoreError> {
    const CONTEXT: &str = "check SQLite database";
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(sqlite(CONTEXT))?;
    let found = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sqlite(CONTEXT))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite(CONTEXT))?;
    if found.len() == 1 && found[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "SQLite's quick_check found damage: {}",
        found.join("; ")
    )))
}

/// A second connection to a database [`open`] opened, for the checkpointer thread.
pub(super) fn open_for_checkpoints(path: &Path) -> Result<Connection, StoreError> {
    const CONTEXT: &str = "open SQLite database for checkpoints";
    let conn = Connection::open(path).map_err(sqlite(CONTEXT))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(CONTEXT))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite(CONTEXT))?;
    Ok(conn)
}

/// Creates the schema in a new file, brings an older one up to date step by step, accepts
/// the current one, refuses a newer one.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    const CONTEXT: &str = "migrate SQLite schema";
    // IMMEDIATE: two processes opening a new file at once must not both create the tables.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite(CONTEXT))?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite(CONTEXT))?;
    match found {
        0 | 1 => {
            if found == 0 {
                tx.execute_batch(SCHEMA_V1).map_err(sqlite(CONTEXT))?;
            }
            tx.execute_batch(SCHEMA_V2).map_err(sqlite(CONTEXT))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sqlite(CONTEXT))?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(SqliteFailure::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            }
            .into_store_error(CONTEXT))
        }
    }
    tx.commit().map_err(sqlite(CONTEXT))
}
