//! `SqliteStore`: the embedded store of `nudge serve`. One SQLite file holds user state with
//! its applied messageIds, timers, the delivery log, inboxes and the durable local event
//! queue; it implements every storage port with the guarantees the DynamoDB adapter gives.
//!
//! One thread owns the only connection and runs every command, reads included, in group
//! commits (see `writer`). Reads go through that thread too: a point read costs a few
//! microseconds, less than handing it to another thread would, the thread sustains far more
//! than the server's load, and a read then always sees every write already acknowledged
//! (evaluate's load after its own save needs no care).
//!
//! Durability: a command's reply is sent only after its transaction committed. With WAL and
//! `synchronous=NORMAL` a committed transaction survives the process being killed (`kill -9`,
//! a panic, an OOM kill), since it is in the WAL file in the OS's page cache; it can be lost
//! only if the machine loses power or the OS crashes before the next checkpoint syncs it to
//! disk (the writer thread checkpoints about every half second while there are writes).

#[cfg(test)]
mod contract;
mod counters;
mod deliveries;
mod error;
mod inbox;
mod purge;
mod queue;
mod schema;
mod sql_values;
#[cfg(test)]
pub(crate) mod test_support;
mod timers;
mod users;
mod writer;

use std::path::Path;
use std::sync::Arc;

use nudge_service::ports::StoreError;

pub use schema::SCHEMA_VERSION;
pub use users::Queued;

/// The SQLite store; cheap to clone, usable from any number of tasks.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<writer::Writer>,
    /// The users whose inbox just changed (an item put, read or dismissed), for live views.
    inbox_changes: tokio::sync::broadcast::Sender<Arc<str>>,
}

/// Inbox changes a slow watcher may fall behind by before it is told it lagged (and reads the
/// inbox again rather than each change).
const INBOX_CHANGES_BUFFER: usize = 1024;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its schema if needed, and starts
    /// its writer thread (which stops, closing the file, when the last clone is dropped).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = schema::open(path)?;
        let checkpoints = schema::open_for_checkpoints(path)?;
        let writer = writer::Writer::start(conn, checkpoints)?;
        Ok(SqliteStore {
            writer: Arc::new(writer),
            inbox_changes: tokio::sync::broadcast::channel(INBOX_CHANGES_BUFFER).0,
        })
    }

    /// The ids of users whose inbox changes from now on (`Lagged` when the watcher fell
    /// behind: it should read the inboxes it shows again).
    pub fn inbox_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.inbox_changes.subscribe()
    }

    fn inbox_changed(&self, user_id: &str) {
        // No watcher is no error.
        let _ = self.inbox_changes.send(Arc::from(user_id));
    }
}

#[cfg(test)]
mod tests {
    use nudge_core::engine::decision::DecisionId;
    use nudge_core::rules::model::Channel;
    use nudge_service::bus::{BusEvent, DelayRequest};
    use nudge_service::ports::{
        Delivery, DeliveryStatus, DeliveryStore, InboxItem, InboxStore, TimerStore, UserStore,
        UserWrite,
    };

    use super::error::sqlite;
    use super::test_support::TempDir;
    use super::*;

    fn delay(user: &str) -> DelayRequest {
        DelayRequest {
            user_id: user.into(),
            due: 42,
            version: 1,
        }
    }

    fn delivery(at: nudge_core::time::Millis) -> Delivery {
        Delivery {
            id: DecisionId(9),
            user_id: "u".into(),
            trigger: "t".into(),
            channel: Channel::InApp,
            message: "m".into(),
            variant: "a".into(),
            experiment: None,
            status: DeliveryStatus::Suppressed,
            reason: Some("quiet_hours".into()),
            error: None,
            at,
            updated_at: at + 1,
            attempts: 0,
            subject: None,
        }
    }

    fn now() -> nudge_core::time::Millis {
        nudge_service::ports::Clock::now(&nudge_service::ports::SystemClock)
    }

    fn item() -> InboxItem {
        InboxItem {
            id: DecisionId(9),
            user_id: "u".into(),
            trigger: "t".into(),
            variant: "default".into(),
            message: "m".into(),
            title: None,
            body: "b".into(),
            url: Some("https://example.invalid/".into()),
            created_at: 1,
            read_at: None,
            expires_at: 100,
        }
    }

    #[tokio::test]
    async fn reopening_the_file_keeps_everything() {
        let dir = TempDir::new("reopen");
        let outbox = [BusEvent::DelayRequested(delay("u"))];
        // Within the retention, by the wall clock the log's reads measure it on.
        let at = now();
        {
            let store = dir.open();
            let write = UserWrite {
                state: b"state",
                outbox: &outbox,
                message_ids: &["m1"],
                now: nudge_service::ports::Clock::now(&nudge_service::ports::SystemClock),
                counts: nudge_core::insights::Deltas::none(),
            };
            store.save("u", None, write).await.unwrap();
            store.set(&delay("u")).await.unwrap();
            store.begin(&delivery(at)).await.unwrap();
            store.put(&item()).await.unwrap();
            store.mark_read("u", DecisionId(9), 5).await.unwrap();
        }

        let store = dir.open();

        let user = store.load("u", &["m1"]).await.unwrap().unwrap();
        assert_eq!((user.state.as_slice(), user.version), (&b"state"[..], 1));
        assert_eq!(
            (user.outbox.as_slice(), user.applied),
            (&outbox[..], vec!["m1".into()])
        );
        assert_eq!(store.next_due().await.unwrap(), Some(42));
        assert_eq!(store.recent("u", 5).await.unwrap(), [delivery(at)]);
        let listed = store.list("u", 50).await.unwrap();
        assert_eq!(
            listed,
            [InboxItem {
                read_at: Some(5),
                ..item()
            }]
        );
    }

    #[tokio::test]
    async fn the_file_is_in_wal_mode_with_the_schema_version() {
        let dir = TempDir::new("pragmas");
        let store = dir.open();

        let (mode, sync, version): (String, i64, i64) = store
            .writer
            .read("test", |conn| {
                let get = |pragma: &str| {
                    conn.pragma_query_value(None, pragma, |r| r.get::<_, rusqlite::types::Value>(0))
                };
                let mode = match get("journal_mode").map_err(sqlite("test"))? {
                    rusqlite::types::Value::Text(m) => m,
                    other => format!("{other:?}"),
                };
                let int = |v| match v {
                    rusqlite::types::Value::Integer(i) => i,
                    _ => -1,
                };
                let sync = int(get("synchronous").map_err(sqlite("test"))?);
                let version = int(get("user_version").map_err(sqlite("test"))?);
                Ok((mode, sync, version))
            })
            .await
            .unwrap();

        assert_eq!(mode, "wal");
        assert_eq!(sync, 1, "NORMAL");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn a_file_of_a_newer_schema_is_refused() {
        let dir = TempDir::new("newer");
        {
            let store = dir.open();
            store
                .writer
                .write("test", |conn| {
                    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                        .map_err(sqlite("test"))
                })
                .await
                .unwrap();
        }

        let opened = SqliteStore::open(&dir.db());

        assert!(matches!(
            opened,
            Err(StoreError::Backend {
                retryable: false,
                ..
            })
        ));
    }
}
