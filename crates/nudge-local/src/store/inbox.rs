//! In-app inboxes: one JSON item per (user, decision id); read time, dismissal and expiry as
//! columns. A dismissed item stays as a row until it expires, so that a redelivered put
//! cannot bring it back.

use nudge_core::engine::decision::DecisionId;
use nudge_core::time::Millis;
use nudge_service::ports::{InboxItem, InboxStore, StoreError};
use rusqlite::{params, OptionalExtension};

use super::error::{corrupt_json, encode, sqlite};
use super::sql_values::id_to_sql;
use super::SqliteStore;

impl InboxStore for SqliteStore {
    async fn put(&self, item: &InboxItem) -> Result<(), StoreError> {
        const CONTEXT: &str = "put inbox item";
        let json = serde_json::to_string(item).map_err(encode(CONTEXT))?;
        let user = item.user_id.clone();
        let owner = item.user_id.clone();
        let (id, created_at, expires_at, read_at) = (
            id_to_sql(item.id),
            item.created_at,
            item.expires_at,
            item.read_at,
        );
        self.writer
            .write(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO inbox (user_id, id, created_at, expires_at, read_at, item)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (user_id, id) DO NOTHING",
                )
                .map_err(sqlite(CONTEXT))?
                .execute(params![user, id, created_at, expires_at, read_at, json])
                .map_err(sqlite(CONTEXT))?;
                Ok(())
            })
            .await?;
        self.inbox_changed(&owner);
        Ok(())
    }

    /// Items are listed up to and including their `expires_at`.
    async fn list(&self, user_id: &str, now: Millis) -> Result<Vec<InboxItem>, StoreError> {
        const CONTEXT: &str = "list inbox";
        let user = user_id.to_owned();
        let rows: Vec<(String, Option<Millis>)> = self
            .writer
            .read(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "SELECT item, read_at FROM inbox
                     WHERE user_id = ?1 AND dismissed = 0 AND expires_at >= ?2
                     ORDER BY created_at DESC, id DESC",
                )
                .map_err(sqlite(CONTEXT))?
                .query_map(params![user, now], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sqlite(CONTEXT))?
                .collect::<Result<_, _>>()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        rows.into_iter()
            .map(|(json, read_at)| {
                let item: InboxItem = serde_json::from_str(&json)
                    .map_err(|e| corrupt_json(&format!("inbox item of user `{user_id}`"), e))?;
                // The column is the truth: mark_read does not rewrite the JSON.
                Ok(InboxItem { read_at, ..item })
            })
            .collect()
    }

    /// Keeps the first read time; `None` for an item the user never had, dismissed, or that
    /// expired (it is no longer in the inbox).
    async fn mark_read(
        &self,
        user_id: &str,
        id: DecisionId,
        now: Millis,
    ) -> Result<Option<InboxItem>, StoreError> {
        const CONTEXT: &str = "mark inbox item read";
        let user = user_id.to_owned();
        let id = id_to_sql(id);
        let row = self
            .writer
            .write(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "UPDATE inbox SET read_at = COALESCE(read_at, ?3)
                     WHERE user_id = ?1 AND id = ?2 AND dismissed = 0 AND expires_at >= ?3
                     RETURNING item, read_at",
                )
                .map_err(sqlite(CONTEXT))?
                .query_row(params![user, id, now], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        self.changed_item(user_id, row)
    }

    /// `None` for an item the user never had or already dismissed.
    async fn dismiss(
        &self,
        user_id: &str,
        id: DecisionId,
    ) -> Result<Option<InboxItem>, StoreError> {
        const CONTEXT: &str = "dismiss inbox item";
        let user = user_id.to_owned();
        let id = id_to_sql(id);
        let row = self
            .writer
            .write(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "UPDATE inbox SET dismissed = 1
                     WHERE user_id = ?1 AND id = ?2 AND dismissed = 0
                     RETURNING item, read_at",
                )
                .map_err(sqlite(CONTEXT))?
                .query_row(params![user, id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        self.changed_item(user_id, row)
    }
}

impl SqliteStore {
    /// The item an update returned (its JSON and the read time column), after telling the
    /// user's inbox stream it changed.
    fn changed_item(
        &self,
        user_id: &str,
        row: Option<(String, Option<Millis>)>,
    ) -> Result<Option<InboxItem>, StoreError> {
        let Some((json, read_at)) = row else {
            return Ok(None);
        };
        self.inbox_changed(user_id);
        let item: InboxItem = serde_json::from_str(&json)
            .map_err(|e| corrupt_json(&format!("inbox item of user `{user_id}`"), e))?;
        Ok(Some(InboxItem { read_at, ..item }))
    }
}
