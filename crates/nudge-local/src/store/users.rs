//! User state: conditional writes on a version number, with the messageIds each write applied
//! remembered for [`MESSAGE_ID_RETENTION_MS`] so that a redelivered event is applied once.

use nudge_core::insights::Deltas;
use nudge_core::time::Millis;
use nudge_service::bus::BusEvent;
use nudge_service::ports::{
    save_through_many, Clock, LoadRequest, SaveRequest, StoreError, StoredUser, SystemClock,
    UserStore, UserWrite, MESSAGE_ID_RETENTION_MS,
};
use rusqlite::{params, Connection, OptionalExtension};

use super::counters;
use super::error::{corrupt_json, encode, sqlite};
use super::queue::{encode_events, insert_queue_rows};
use super::sql_values::{to_sql_int, version_from_sql};
use super::SqliteStore;

/// A user row as read by the writer thread; decoded by the caller so that JSON work stays
/// off the one thread every command waits for.
type RawUser = (Vec<u8>, i64, String);

/// A user's stored row and which of the asked messageIds it applied.
type Found = Option<(RawUser, Vec<String>)>;

impl UserStore for SqliteStore {
    const COUNTS_IN_SAVE: bool = true;

    /// Applied messageIds count until their expiry by the wall clock (the port's `load` takes
    /// no time; DynamoDB's TTL filter uses the wall clock too).
    async fn load(
        &self,
        user_id: &str,
        message_ids: &[&str],
    ) -> Result<Option<StoredUser>, StoreError> {
        let mut users = self
            .load_many(&[LoadRequest {
                user_id,
                message_ids,
            }])
            .await?;
        Ok(users.pop().flatten())
    }

    async fn load_many(
        &self,
        users: &[LoadRequest<'_>],
    ) -> Result<Vec<Option<StoredUser>>, StoreError> {
        const CONTEXT: &str = "load user";
        let asked: Vec<(String, Vec<String>)> = users
            .iter()
            .map(|u| {
                let ids = u.message_ids.iter().map(|id| (*id).to_owned()).collect();
                (u.user_id.to_owned(), ids)
            })
            .collect();
        let now = SystemClock.now();
        let found: Vec<Found> = self
            .writer
            .read(CONTEXT, move |conn| {
                asked
                    .into_iter()
                    .map(|(user, ids)| load_row(conn, &user, ids, now).map_err(sqlite(CONTEXT)))
                    .collect()
            })
            .await?;
        users
            .iter()
            .zip(found)
            .map(|(u, found)| {
                let Some(((state, version, outbox), applied)) = found else {
                    return Ok(None);
                };
                Ok(Some(StoredUser {
                    state,
                    version: version_from_sql(u.user_id, version)?,
                    outbox: decode_outbox(u.user_id, &outbox)?,
                    applied,
                    // Applied in the save's transaction: none is ever pending.
                    counts: Deltas::default(),
                }))
            })
            .collect()
    }

    async fn save(
        &self,
        user_id: &str,
        expected: Option<u64>,
        write: UserWrite<'_>,
    ) -> Result<u64, StoreError> {
        save_through_many(self, user_id, expected, write).await
    }

    async fn save_many(
        &self,
        writes: &[SaveRequest<'_>],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let saved = self.save_rows(writes, false).await?;
        Ok(saved
            .into_iter()
            .map(|s| s.map(|(version, _)| version))
            .collect())
    }

    async fn clear_outbox(&self, user_id: &str, version: u64) -> Result<(), StoreError> {
        self.clear_outboxes(&[(user_id, version)]).await
    }

    async fn clear_outboxes(&self, users: &[(&str, u64)]) -> Result<(), StoreError> {
        const CONTEXT: &str = "clear outbox";
        let users = users
            .iter()
            .map(|(user, version)| Ok(((*user).to_owned(), to_sql_int(CONTEXT, *version)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.writer
            .write_checked(CONTEXT, move |conn| {
                let mut clear = conn
                    .prepare_cached(
                        "UPDATE users SET outbox = '[]' WHERE user_id = ?1 AND version = ?2",
                    )
                    .map_err(sqlite(CONTEXT))?;
                for (user, version) in users {
                    clear
                        .execute(params![user, version])
                        .map_err(sqlite(CONTEXT))?;
                }
                Ok(())
            })
            .await
    }

    /// Deletes the user's rows of every table in one savepoint of one commit. The event
    /// queue is not per user and is left alone (its entries are consumed within seconds).
    async fn erase_user(&self, user_id: &str) -> Result<(), StoreError> {
        const CONTEXT: &str = "erase user";
        let user = user_id.to_owned();
        self.writer
            .write(CONTEXT, move |conn| {
                for sql in [
                    "DELETE FROM users WHERE user_id = ?1",
                    "DELETE FROM applied_messages WHERE user_id = ?1",
                    "DELETE FROM timers WHERE user_id = ?1",
                    "DELETE FROM deliveries WHERE user_id = ?1",
                    "DELETE FROM inbox WHERE user_id = ?1",
                ] {
                    conn.prepare_cached(sql)
                        .map_err(sqlite(CONTEXT))?
                        .execute([&user])
                        .map_err(sqlite(CONTEXT))?;
                }
                Ok(())
            })
            .await
    }
}

/// One write of [`SqliteStore::save_many_queuing`] that went through: the new version and
/// the outbox's events with their queue sequence numbers.
pub type Queued = (u64, Vec<(i64, BusEvent)>);

impl SqliteStore {
    /// [`UserStore::save_many`] that queues each write's outbox in the same transaction
    /// instead of keeping it in the user's row: the events are stored exactly when the state
    /// that decided them is. For each write, its outcome and, if it went through, its queued
    /// events.
    pub async fn save_many_queuing(
        &self,
        writes: &[SaveRequest<'_>],
    ) -> Result<Vec<Result<Queued, StoreError>>, StoreError> {
        let saved = self.save_rows(writes, true).await?;
        Ok(saved
            .into_iter()
            .zip(writes)
            .map(|(saved, w)| {
                saved.map(|(version, seqs)| {
                    (
                        version,
                        seqs.into_iter()
                            .zip(w.write.outbox.iter().cloned())
                            .collect(),
                    )
                })
            })
            .collect())
    }

    /// Writes each user's row in one command; with `queue`, the outbox goes into the bus's
    /// queue instead of the row. Checked: each user's version and messageIds are checked
    /// before its first change, so a conflict leaves that user untouched (nothing queued) and
    /// the others go ahead; an SQLite failure fails the whole command. For each write, its
    /// new version and the queue sequence numbers of its outbox (none without `queue`).
    async fn save_rows(
        &self,
        writes: &[SaveRequest<'_>],
        queue: bool,
    ) -> Result<Vec<Result<(u64, Vec<i64>), StoreError>>, StoreError> {
        const CONTEXT: &str = "save user";
        let rows = writes
            .iter()
            .map(|w| {
                let events = if queue {
                    encode_events(CONTEXT, w.write.outbox)?
                } else {
                    Vec::new()
                };
                Ok((Row::new(CONTEXT, w, !queue)?, events))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.writer
            .write_checked(CONTEXT, move |conn| {
                // The counter changes of the writes that go through, applied with them.
                let mut counts = Deltas::default();
                let saved = rows
                    .into_iter()
                    .map(|(mut row, events)| {
                        let row_counts = std::mem::take(&mut row.counts);
                        match row.store(conn) {
                            Ok(version) => {
                                counts.merge(row_counts);
                                let seqs = match events.is_empty() {
                                    true => Vec::new(),
                                    false => insert_queue_rows(conn, CONTEXT, &events)?,
                                };
                                Ok(Ok((version, seqs)))
                            }
                            Err(StoreError::Conflict(user)) => Ok(Err(StoreError::Conflict(user))),
                            Err(e) => Err(e),
                        }
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                counters::apply(conn, &counts).map_err(sqlite(CONTEXT))?;
                Ok(saved)
            })
            .await
    }
}

/// Reads a user's row and which of `ids` it applied (on the writer thread).
fn load_row(
    conn: &Connection,
    user: &str,
    ids: Vec<String>,
    now: Millis,
) -> rusqlite::Result<Found> {
    let Some(raw) = conn
        .prepare_cached("SELECT state, version, outbox FROM users WHERE user_id = ?1")?
        .query_row([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
    else {
        // No state means no applied ids: save writes both, erase removes both.
        return Ok(None);
    };
    let mut applied = Vec::new();
    for id in ids {
        if is_applied(conn, user, &id, now)? {
            applied.push(id);
        }
    }
    Ok(Some((raw, applied)))
}

/// One user's write, encoded off the writer thread.
struct Row {
    user: String,
    expected: Option<i64>,
    new_version: u64,
    version: i64,
    state: Vec<u8>,
    outbox: String,
    ids: Vec<String>,
    now: Millis,
    counts: Deltas,
}

impl Row {
    /// The row of a write; its outbox kept in the row (`keep_outbox`) or left empty.
    fn new(
        context: &'static str,
        w: &SaveRequest<'_>,
        keep_outbox: bool,
    ) -> Result<Row, StoreError> {
        let new_version = match w.expected {
            None => 1,
            Some(v) => v.saturating_add(1),
        };
        Ok(Row {
            user: w.user_id.to_owned(),
            expected: w.expected.map(|v| to_sql_int(context, v)).transpose()?,
            new_version,
            version: to_sql_int(context, new_version)?,
            state: w.write.state.to_vec(),
            outbox: match keep_outbox {
                true => serde_json::to_string(w.write.outbox).map_err(encode(context))?,
                false => "[]".to_owned(),
            },
            ids: w
                .write
                .message_ids
                .iter()
                .map(|id| (*id).to_owned())
                .collect(),
            now: w.write.now,
            counts: w.write.counts.clone(),
        })
    }

    /// Checks the version and the messageIds, then writes; a conflict changes nothing.
    fn store(self, conn: &Connection) -> Result<u64, StoreError> {
        const CONTEXT: &str = "save user";
        let stored: Option<i64> = conn
            .prepare_cached("SELECT version FROM users WHERE user_id = ?1")
            .map_err(sqlite(CONTEXT))?
            .query_row([&self.user], |r| r.get(0))
            .optional()
            .map_err(sqlite(CONTEXT))?;
        if stored != self.expected {
            return Err(StoreError::Conflict(self.user));
        }
        for id in &self.ids {
            if is_applied(conn, &self.user, id, self.now).map_err(sqlite(CONTEXT))? {
                return Err(StoreError::Conflict(self.user));
            }
        }
        conn.prepare_cached(
            "INSERT INTO users (user_id, state, version, outbox) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE
             SET state = excluded.state, version = excluded.version,
                 outbox = excluded.outbox",
        )
        .map_err(sqlite(CONTEXT))?
        .execute(params![self.user, self.state, self.version, self.outbox])
        .map_err(sqlite(CONTEXT))?;
        let mut remember = conn
            .prepare_cached(
                // An expired row of the same id may linger until purged: renew it.
                "INSERT INTO applied_messages (user_id, message_id, expires_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, message_id) DO UPDATE
                 SET expires_at = excluded.expires_at",
            )
            .map_err(sqlite(CONTEXT))?;
        let expires_at = self.now.saturating_add(MESSAGE_ID_RETENTION_MS);
        for id in &self.ids {
            remember
                .execute(params![self.user, id, expires_at])
                .map_err(sqlite(CONTEXT))?;
        }
        Ok(self.new_version)
    }
}

/// Whether `message_id` was applied to `user_id` and is still remembered at `now`.
fn is_applied(
    conn: &Connection,
    user_id: &str,
    message_id: &str,
    now: Millis,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM applied_messages
         WHERE user_id = ?1 AND message_id = ?2 AND expires_at > ?3",
    )?
    .exists(params![user_id, message_id, now])
}

/// The stored outbox JSON as events.
fn decode_outbox(user_id: &str, json: &str) -> Result<Vec<BusEvent>, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt_json(&format!("outbox of user `{user_id}`"), e))
}

#[cfg(test)]
mod tests {
    use nudge_service::bus::DelayRequest;

    use super::*;
    use crate::store::test_support::TempDir;

    fn now() -> Millis {
        SystemClock.now()
    }

    fn write<'a>(state: &'a [u8], outbox: &'a [BusEvent], ids: &'a [&'a str]) -> UserWrite<'a> {
        UserWrite {
            state,
            outbox,
            message_ids: ids,
            now: now(),
            counts: nudge_core::insights::Deltas::none(),
        }
    }

    fn delay(user: &str, version: u64) -> BusEvent {
        BusEvent::DelayRequested(DelayRequest {
            user_id: user.into(),
            due: 1_000,
            version,
        })
    }

    /// The port's behaviour is the storage contract's (`contract.rs`); this is what only
    /// this store has.
    #[tokio::test]
    async fn erase_leaves_the_event_queue_alone() {
        let dir = TempDir::new("users-erase");
        let store = dir.open();
        store
            .save("gone", None, write(b"s", &[], &["m1"]))
            .await
            .unwrap();
        let queued = store.enqueue(&[delay("gone", 1)]).await.unwrap();

        store.erase_user("gone").await.unwrap();

        assert_eq!(store.load("gone", &["m1"]).await.unwrap(), None);
        let left = store.unacked(10).await.unwrap();
        assert_eq!(left.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), queued);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_concurrent_saves_of_different_users_all_succeed() {
        let dir = TempDir::new("users-group");
        let store = dir.open();

        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let user = format!("user-{i}");
                    let id = format!("m-{i}");
                    let state = i.to_string().into_bytes();
                    store
                        .save(&user, None, write(&state, &[delay(&user, 1)], &[&id]))
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 1);
        }

        for i in [0, 499, 999] {
            let got = store
                .load(&format!("user-{i}"), &[&format!("m-{i}")])
                .await
                .unwrap();
            let got = got.unwrap();
            assert_eq!(got.state, i.to_string().into_bytes());
            assert_eq!(got.applied.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_corrupt_outbox_reads_as_corrupt_not_a_panic() {
        let dir = TempDir::new("users-corrupt");
        let store = dir.open();
        store.save("u1", None, write(b"s", &[], &[])).await.unwrap();
        store.save("u2", None, write(b"s", &[], &[])).await.unwrap();
        store
            .writer
            .write("test", |conn| {
                conn.execute(
                    "UPDATE users SET outbox = 'not json' WHERE user_id = 'u1'",
                    [],
                )
                .map_err(sqlite("test"))?;
                conn.execute("UPDATE users SET version = 'x' WHERE user_id = 'u2'", [])
                    .map_err(sqlite("test"))?;
                Ok(())
            })
            .await
            .unwrap();

        let bad_outbox = store.load("u1", &[]).await;
        let bad_version = store.load("u2", &[]).await;

        assert!(
            matches!(bad_outbox, Err(StoreError::Corrupt(_))),
            "{bad_outbox:?}"
        );
        assert!(
            matches!(bad_version, Err(StoreError::Corrupt(_))),
            "{bad_version:?}"
        );
    }
}
