//! Timers: one row per user holding the due time and the version that set it. A cancel or a
//! claim keeps the row with `due` NULL as a tombstone of its version, so a request of an older
//! version arriving late cannot bring the timer back.

use nudge_core::time::Millis;
use nudge_service::bus::{BusEvent, DelayCancel, DelayRequest, TimerFired};
use nudge_service::ports::{StoreError, Timer, TimerStore};
use rusqlite::{params, Connection, OptionalExtension};

use super::error::sqlite;
use super::queue::{encode_events, insert_queue_rows};
use super::sql_values::{to_sql_int, version_from_sql};
use super::SqliteStore;

/// Sets a timer if the request's version is newer than the stored one.
const SET_IF_NEWER: &str = "
INSERT INTO timers (user_id, due, version) VALUES (?1, ?2, ?3)
ON CONFLICT (user_id) DO UPDATE SET due = excluded.due, version = excluded.version
WHERE excluded.version > timers.version";

/// Sets a timer if the request's version is at least the stored one (a restore of a claim).
const SET_IF_NOT_OLDER: &str = "
INSERT INTO timers (user_id, due, version) VALUES (?1, ?2, ?3)
ON CONFLICT (user_id) DO UPDATE SET due = excluded.due, version = excluded.version
WHERE excluded.version >= timers.version";

impl SqliteStore {
    /// The earliest due time of any pending timer (the timer loop sleeps until then).
    pub async fn next_due(&self) -> Result<Option<Millis>, StoreError> {
        const CONTEXT: &str = "next timer due";
        self.writer
            .read(CONTEXT, |conn| {
                conn.prepare_cached(
                    "SELECT due FROM timers WHERE due IS NOT NULL ORDER BY due LIMIT 1",
                )
                .map_err(sqlite(CONTEXT))?
                .query_row([], |r| r.get(0))
                .optional()
                .map_err(sqlite(CONTEXT))
            })
            .await
    }

    /// Writes `req` as the user's timer with `sql` (which decides which versions win).
    async fn put_timer(
        &self,
        context: &'static str,
        sql: &'static str,
        req: &DelayRequest,
    ) -> Result<(), StoreError> {
        let user = req.user_id.clone();
        let due = req.due;
        let version = to_sql_int(context, req.version)?;
        self.writer
            .write_checked(context, move |conn| {
                conn.prepare_cached(sql)
                    .map_err(sqlite(context))?
                    .execute(params![user, due, version])
                    .map_err(sqlite(context))?;
                Ok(())
            })
            .await
    }
}

/// Turns up to `limit` timers due by `now` into tombstones of their version and returns them,
/// earliest first.
fn claim_rows(
    conn: &Connection,
    context: &'static str,
    now: Millis,
    limit: usize,
) -> Result<Vec<TimerFired>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let due: Vec<(String, Millis, i64)> = conn
        .prepare_cached(
            "SELECT user_id, due, version FROM timers
             WHERE due IS NOT NULL AND due <= ?1
             ORDER BY due, user_id LIMIT ?2",
        )
        .map_err(sqlite(context))?
        .query_map(params![now, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sqlite(context))?
        .collect::<Result<_, _>>()
        .map_err(sqlite(context))?;
    let mut tombstone = conn
        .prepare_cached("UPDATE timers SET due = NULL WHERE user_id = ?1")
        .map_err(sqlite(context))?;
    for (user, _, _) in &due {
        tombstone.execute([user]).map_err(sqlite(context))?;
    }
    due.into_iter()
        .map(|(user_id, due, version)| {
            Ok(TimerFired {
                version: version_from_sql(&user_id, version)?,
                user_id,
                due,
            })
        })
        .collect()
}

impl SqliteStore {
    /// Claims up to `limit` timers due by `now` and queues a "Timer Fired" for each, in one
    /// transaction: a crash can lose neither the timer (claimed but never queued) nor fire it
    /// twice (queued but still pending). Returns the queued events with their sequence numbers.
    pub async fn fire_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(i64, BusEvent)>, StoreError> {
        const CONTEXT: &str = "fire due timers";
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.writer
            .write(CONTEXT, move |conn| {
                let events: Vec<BusEvent> = claim_rows(conn, CONTEXT, now, limit)?
                    .into_iter()
                    .map(BusEvent::TimerFired)
                    .collect();
                let seqs = insert_queue_rows(conn, CONTEXT, &encode_events(CONTEXT, &events)?)?;
                Ok(seqs.into_iter().zip(events).collect())
            })
            .await
    }
}

impl TimerStore for SqliteStore {
    /// Applies only a version newer than the stored one; the same version again is a no-op.
    async fn set(&self, req: &DelayRequest) -> Result<(), StoreError> {
        self.put_timer("set timer", SET_IF_NEWER, req).await
    }

    /// Applies over the same version too: between a request and a cancel of one version the
    /// cancel wins whichever arrives first (as `set` does not pass a cancel of its version),
    /// so the order they arrive in never decides.
    async fn cancel(&self, req: &DelayCancel) -> Result<(), StoreError> {
        const CONTEXT: &str = "cancel timer";
        let user = req.user_id.clone();
        let version = to_sql_int(CONTEXT, req.version)?;
        self.writer
            .write_checked(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO timers (user_id, due, version) VALUES (?1, NULL, ?2)
                     ON CONFLICT (user_id) DO UPDATE SET due = NULL, version = excluded.version
                     WHERE excluded.version >= timers.version",
                )
                .map_err(sqlite(CONTEXT))?
                .execute(params![user, version])
                .map_err(sqlite(CONTEXT))?;
                Ok(())
            })
            .await
    }

    async fn restore(&self, req: &DelayRequest) -> Result<(), StoreError> {
        self.put_timer("restore timer", SET_IF_NOT_OLDER, req).await
    }

    /// Claims run on the one writer thread, each in its own savepoint, so two sweeps never
    /// see the same timer: the first turns it into a tombstone before the second reads.
    async fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<TimerFired>, StoreError> {
        const CONTEXT: &str = "claim due timers";
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.writer
            .write(CONTEXT, move |conn| claim_rows(conn, CONTEXT, now, limit))
            .await
    }

    async fn pending(&self, user_id: &str) -> Result<Option<Timer>, StoreError> {
        const CONTEXT: &str = "read timer";
        let user = user_id.to_owned();
        let found: Option<(Millis, i64)> = self
            .writer
            .read(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "SELECT due, version FROM timers WHERE user_id = ?1 AND due IS NOT NULL",
                )
                .map_err(sqlite(CONTEXT))?
                .query_row([&user], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        found
            .map(|(due, version)| {
                Ok(Timer {
                    user_id: user_id.to_owned(),
                    due,
                    version: version_from_sql(user_id, version)?,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::store::test_support::TempDir;

    fn req(user: &str, due: Millis, version: u64) -> DelayRequest {
        DelayRequest {
            user_id: user.into(),
            due,
            version,
        }
    }

    fn cancel(user: &str, version: u64) -> DelayCancel {
        DelayCancel {
            user_id: user.into(),
            version,
        }
    }

    /// The port's behaviour is the storage contract's (`contract.rs`); `next_due` and
    /// `fire_due` are the timer loop's own.
    #[tokio::test]
    async fn next_due_is_the_earliest_live_timer() {
        let dir = TempDir::new("timers-next");
        let store = dir.open();
        assert_eq!(store.next_due().await.unwrap(), None);
        store.set(&req("cancelled", 5, 1)).await.unwrap();
        store.cancel(&cancel("cancelled", 2)).await.unwrap();
        store.set(&req("claimed", 7, 1)).await.unwrap();
        store.claim_due(7, 1).await.unwrap();
        store.set(&req("later", 300, 1)).await.unwrap();
        store.set(&req("moved", 400, 1)).await.unwrap();
        store.set(&req("moved", 20, 2)).await.unwrap();

        assert_eq!(store.next_due().await.unwrap(), Some(20));
        store.cancel(&cancel("moved", 2)).await.unwrap();
        assert_eq!(store.next_due().await.unwrap(), Some(300));
    }

    #[tokio::test]
    async fn firing_claims_and_queues_in_one_transaction_that_survives_reopening() {
        let dir = TempDir::new("timers-fire");
        {
            let store = dir.open();
            store.set(&req("early", 100, 3)).await.unwrap();
            store.set(&req("later", 200, 1)).await.unwrap();
            store.set(&req("future", 5_000, 2)).await.unwrap();

            // When the due timers are fired
            let fired = store.fire_due(1_000, 10).await.unwrap();

            // Then each due timer is a queued "Timer Fired", earliest first
            let users: Vec<_> = fired
                .iter()
                .map(|(_, e)| match e {
                    BusEvent::TimerFired(t) => (t.user_id.as_str(), t.due, t.version),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(users, [("early", 100, 3), ("later", 200, 1)]);
            // And no longer pending, so a second sweep fires nothing
            assert_eq!(store.pending("early").await.unwrap(), None);
            assert!(store.fire_due(1_000, 10).await.unwrap().is_empty());
            assert_eq!(store.next_due().await.unwrap(), Some(5_000));
        }
        // And after a restart (nothing acked) the events are still queued, the timers still
        // claimed: they are redelivered, not fired again
        let store = dir.open();
        let queued: Vec<_> = store
            .unacked(10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.user_id().map(str::to_owned))
            .collect();
        assert_eq!(
            queued,
            [Some("early".to_string()), Some("later".to_string())]
        );
        assert!(store.fire_due(1_000, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn concurrent_fires_queue_every_timer_exactly_once() {
        let dir = TempDir::new("timers-fire-race");
        let store = dir.open();
        const TIMERS: usize = 600;
        for i in 0..TIMERS {
            store
                .set(&req(&format!("u{i}"), (i % 13) as Millis, 1))
                .await
                .unwrap();
        }
        let firers: Vec<_> = (0..3)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    loop {
                        let batch = store.fire_due(1_000, 17).await.unwrap();
                        if batch.is_empty() {
                            return n;
                        }
                        n += batch.len();
                    }
                })
            })
            .collect();
        let mut fired = 0;
        for f in firers {
            fired += f.await.unwrap();
        }
        assert_eq!(fired, TIMERS);
        let queued = store.unacked(10 * TIMERS).await.unwrap();
        let users: HashSet<_> = queued.iter().filter_map(|(_, e)| e.user_id()).collect();
        assert_eq!((queued.len(), users.len()), (TIMERS, TIMERS));
    }
}
