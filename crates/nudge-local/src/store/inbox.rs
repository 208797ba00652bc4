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

    /// Keeps the first read time; `None` for an item the user never had or dismissed.
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
                     WHERE user_id = ?1 AND id = ?2 AND dismissed = 0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempDir;

    fn item(user: &str, id: u64, created_at: Millis) -> InboxItem {
        InboxItem {
            id: DecisionId(id),
            user_id: user.into(),
            trigger: "welcome".into(),
            variant: "default".into(),
            message: "hello".into(),
            title: Some("Hi".into()),
            body: "Welcome!".into(),
            url: None,
            created_at,
            read_at: None,
            expires_at: created_at + 1_000,
        }
    }

    fn ids(items: &[InboxItem]) -> Vec<u64> {
        items.iter().map(|i| i.id.0).collect()
    }

    #[tokio::test]
    async fn put_is_idempotent_and_list_is_newest_first() {
        let dir = TempDir::new("inbox-put");
        let store = dir.open();
        store.put(&item("u", 1, 10)).await.unwrap();
        store.put(&item("u", 2, 30)).await.unwrap();
        store.put(&item("u", u64::MAX, 20)).await.unwrap();
        let changed = InboxItem {
            body: "other".into(),
            ..item("u", 1, 10)
        };
        store.put(&changed).await.unwrap();

        let listed = store.list("u", 30).await.unwrap();

        assert_eq!(ids(&listed), [2, u64::MAX, 1]);
        assert_eq!(listed[2], item("u", 1, 10), "the first put stays");
    }

    #[tokio::test]
    async fn users_see_and_touch_only_their_own_items() {
        let dir = TempDir::new("inbox-users");
        let store = dir.open();
        store.put(&item("u", 1, 10)).await.unwrap();
        store.put(&item("v", 2, 10)).await.unwrap();

        assert!(store
            .mark_read("v", DecisionId(1), 50)
            .await
            .unwrap()
            .is_none());
        assert!(store.dismiss("v", DecisionId(1)).await.unwrap().is_none());
        assert!(store
            .mark_read("u", DecisionId(3), 50)
            .await
            .unwrap()
            .is_none());

        assert_eq!(ids(&store.list("u", 10).await.unwrap()), [1]);
        assert_eq!(ids(&store.list("v", 10).await.unwrap()), [2]);
        assert_eq!(store.list("u", 10).await.unwrap()[0].read_at, None);
    }

    #[tokio::test]
    async fn read_keeps_the_first_time_and_dismiss_hides_for_good() {
        let dir = TempDir::new("inbox-dismiss");
        let store = dir.open();
        store.put(&item("u", 1, 10)).await.unwrap();
        store.put(&item("u", 2, 10)).await.unwrap();

        let read = store.mark_read("u", DecisionId(1), 50).await.unwrap();
        assert_eq!(
            read.map(|i| (i.id, i.read_at)),
            Some((DecisionId(1), Some(50)))
        );
        let again = store.mark_read("u", DecisionId(1), 60).await.unwrap();
        assert_eq!(
            again.and_then(|i| i.read_at),
            Some(50),
            "the first read stays"
        );
        assert!(store.dismiss("u", DecisionId(2)).await.unwrap().is_some());
        assert!(store.dismiss("u", DecisionId(2)).await.unwrap().is_none());
        assert!(store
            .mark_read("u", DecisionId(2), 70)
            .await
            .unwrap()
            .is_none());
        store.put(&item("u", 2, 10)).await.unwrap();

        let listed = store.list("u", 100).await.unwrap();
        assert_eq!(ids(&listed), [1]);
        assert_eq!(listed[0].read_at, Some(50));
    }

    #[tokio::test]
    async fn expired_items_are_not_listed() {
        let dir = TempDir::new("inbox-expiry");
        let store = dir.open();
        store.put(&item("u", 1, 0)).await.unwrap();
        store.put(&item("u", 2, 500)).await.unwrap();

        assert_eq!(ids(&store.list("u", 1_000).await.unwrap()), [2, 1]);
        assert_eq!(ids(&store.list("u", 1_001).await.unwrap()), [2]);
        assert!(store.list("u", 1_501).await.unwrap().is_empty());
    }
}
