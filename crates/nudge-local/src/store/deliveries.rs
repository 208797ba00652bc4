//! The delivery log: one JSON entry per (user, decision id), with the times it is sorted and
//! purged by as columns. An entry last changed more than [`DELIVERY_RETENTION_MS`] ago (by
//! the wall clock, as DynamoDB's TTL) counts as absent until the purge deletes it.

use nudge_core::time::Millis;
use nudge_service::ports::{
    Clock, Delivery, DeliveryStore, StoreError, SystemClock, DELIVERY_RETENTION_MS,
};
use rusqlite::{params, OptionalExtension};

use super::error::{corrupt_json, encode, sqlite};
use super::sql_values::id_to_sql;
use super::SqliteStore;

/// A stored delivery entry as a [`Delivery`].
fn decode(user_id: &str, json: &str) -> Result<Delivery, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| corrupt_json(&format!("delivery log entry of user `{user_id}`"), e))
}

/// Entries last changed at or before this are past the retention at `now`.
fn retention_start(now: Millis) -> Millis {
    now.saturating_sub(DELIVERY_RETENTION_MS)
}

impl DeliveryStore for SqliteStore {
    /// An entry past the retention is replaced, as if absent.
    async fn begin(&self, d: &Delivery) -> Result<Option<Delivery>, StoreError> {
        const CONTEXT: &str = "begin delivery";
        let entry = serde_json::to_string(d).map_err(encode(CONTEXT))?;
        let (user, id, at, updated_at) = (d.user_id.clone(), id_to_sql(d.id), d.at, d.updated_at);
        let kept_after = retention_start(SystemClock.now());
        let existing: Option<String> = self
            .writer
            .write_checked(CONTEXT, move |conn| {
                let existing = conn
                    .prepare_cached(
                        "SELECT entry FROM deliveries
                         WHERE user_id = ?1 AND id = ?2 AND updated_at > ?3",
                    )
                    .map_err(sqlite(CONTEXT))?
                    .query_row(params![user, id, kept_after], |r| r.get(0))
                    .optional()
                    .map_err(sqlite(CONTEXT))?;
                if existing.is_none() {
                    conn.prepare_cached(
                        "INSERT INTO deliveries (user_id, id, at, updated_at, entry)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (user_id, id) DO UPDATE
                         SET at = excluded.at, updated_at = excluded.updated_at,
                             entry = excluded.entry",
                    )
                    .map_err(sqlite(CONTEXT))?
                    .execute(params![user, id, at, updated_at, entry])
                    .map_err(sqlite(CONTEXT))?;
                }
                Ok(existing)
            })
            .await?;
        existing.map(|json| decode(&d.user_id, &json)).transpose()
    }

    async fn finish(&self, d: &Delivery) -> Result<(), StoreError> {
        const CONTEXT: &str = "finish delivery";
        let entry = serde_json::to_string(d).map_err(encode(CONTEXT))?;
        let (user, id, at, updated_at) = (d.user_id.clone(), id_to_sql(d.id), d.at, d.updated_at);
        self.writer
            .write_checked(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO deliveries (user_id, id, at, updated_at, entry)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (user_id, id) DO UPDATE
                     SET at = excluded.at, updated_at = excluded.updated_at,
                         entry = excluded.entry",
                )
                .map_err(sqlite(CONTEXT))?
                .execute(params![user, id, at, updated_at, entry])
                .map_err(sqlite(CONTEXT))?;
                Ok(())
            })
            .await
    }

    async fn take_over(&self, d: &Delivery, seen: &Delivery) -> Result<bool, StoreError> {
        const CONTEXT: &str = "take over delivery";
        let entry = serde_json::to_string(d).map_err(encode(CONTEXT))?;
        let (user, id, at, updated_at) = (d.user_id.clone(), id_to_sql(d.id), d.at, d.updated_at);
        let seen_at = seen.updated_at;
        self.writer
            .write_checked(CONTEXT, move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE deliveries SET at = ?3, updated_at = ?4, entry = ?5
                         WHERE user_id = ?1 AND id = ?2 AND updated_at = ?6
                           AND json_extract(entry, '$.status') = 'sending'",
                    )
                    .map_err(sqlite(CONTEXT))?
                    .execute(params![user, id, at, updated_at, entry, seen_at])
                    .map_err(sqlite(CONTEXT))?;
                Ok(changed == 1)
            })
            .await
    }

    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        const CONTEXT: &str = "read delivery log";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let user = user_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let kept_after = retention_start(SystemClock.now());
        let rows: Vec<String> = self
            .writer
            .read(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "SELECT entry FROM deliveries WHERE user_id = ?1 AND updated_at > ?3
                     ORDER BY at DESC, id DESC LIMIT ?2",
                )
                .map_err(sqlite(CONTEXT))?
                .query_map(params![user, limit, kept_after], |r| r.get(0))
                .map_err(sqlite(CONTEXT))?
                .collect::<Result<_, _>>()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        rows.iter().map(|json| decode(user_id, json)).collect()
    }
}
