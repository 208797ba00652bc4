//! The delivery log: one JSON entry per (user, decision id), with the times it is sorted and
//! purged by as columns.

use nudge_service::ports::{Delivery, DeliveryStore, StoreError};
use rusqlite::{params, OptionalExtension};

use super::error::{corrupt_json, encode, sqlite};
use super::sql_values::id_to_sql;
use super::SqliteStore;

/// A stored delivery entry as a [`Delivery`].
fn decode(user_id: &str, json: &str) -> Result<Delivery, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| corrupt_json(&format!("delivery log entry of user `{user_id}`"), e))
}

impl DeliveryStore for SqliteStore {
    async fn begin(&self, d: &Delivery) -> Result<Option<Delivery>, StoreError> {
        const CONTEXT: &str = "begin delivery";
        let entry = serde_json::to_string(d).map_err(encode(CONTEXT))?;
        let (user, id, at, updated_at) = (d.user_id.clone(), id_to_sql(d.id), d.at, d.updated_at);
        let existing: Option<String> = self
            .writer
            .write_checked(CONTEXT, move |conn| {
                let existing = conn
                    .prepare_cached("SELECT entry FROM deliveries WHERE user_id = ?1 AND id = ?2")
                    .map_err(sqlite(CONTEXT))?
                    .query_row(params![user, id], |r| r.get(0))
                    .optional()
                    .map_err(sqlite(CONTEXT))?;
                if existing.is_none() {
                    conn.prepare_cached(
                        "INSERT INTO deliveries (user_id, id, at, updated_at, entry)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
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

    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        const CONTEXT: &str = "read delivery log";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let user = user_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<String> = self
            .writer
            .read(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "SELECT entry FROM deliveries WHERE user_id = ?1
                     ORDER BY at DESC, id DESC LIMIT ?2",
                )
                .map_err(sqlite(CONTEXT))?
                .query_map(params![user, limit], |r| r.get(0))
                .map_err(sqlite(CONTEXT))?
                .collect::<Result<_, _>>()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        rows.iter().map(|json| decode(user_id, json)).collect()
    }
}

#[cfg(test)]
mod tests {
    use nudge_core::engine::decision::DecisionId;
    use nudge_core::rules::model::Channel;
    use nudge_service::ports::DeliveryStatus;

    use super::*;
    use crate::store::test_support::TempDir;

    fn delivery(user: &str, id: u64, at: i64) -> Delivery {
        Delivery {
            id: DecisionId(id),
            user_id: user.into(),
            trigger: "welcome".into(),
            channel: Channel::Email,
            message: "hello".into(),
            variant: "a".into(),
            experiment: Some("exp".into()),
            status: DeliveryStatus::Sending,
            reason: None,
            error: None,
            at,
            updated_at: at,
            attempts: 0,
            subject: None,
        }
    }

    #[tokio::test]
    async fn begin_records_once_and_then_returns_the_existing_entry() {
        let dir = TempDir::new("deliveries-begin");
        let store = dir.open();
        let first = delivery("u", u64::MAX, 10);

        assert_eq!(store.begin(&first).await.unwrap(), None);
        let retry = Delivery {
            attempts: 9,
            ..first.clone()
        };
        assert_eq!(store.begin(&retry).await.unwrap(), Some(first.clone()));
        // Same decision id under another user is another entry.
        assert_eq!(
            store.begin(&delivery("v", u64::MAX, 10)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn finish_replaces_and_recent_lists_newest_first() {
        let dir = TempDir::new("deliveries-finish");
        let store = dir.open();
        for (id, at) in [(1, 10), (2, 30), (3, 20)] {
            store.begin(&delivery("u", id, at)).await.unwrap();
        }
        let done = Delivery {
            status: DeliveryStatus::Sent,
            updated_at: 40,
            attempts: 1,
            subject: Some("Hi".into()),
            ..delivery("u", 3, 20)
        };

        store.finish(&done).await.unwrap();

        let recent = store.recent("u", 10).await.unwrap();
        let ids: Vec<u64> = recent.iter().map(|d| d.id.0).collect();
        assert_eq!(ids, [2, 3, 1]);
        assert_eq!(recent[1], done);
        assert_eq!(store.recent("u", 1).await.unwrap().len(), 1);
        assert!(store.recent("v", 10).await.unwrap().is_empty());
        assert_eq!(
            store.begin(&delivery("u", 3, 20)).await.unwrap(),
            Some(done)
        );
    }
}
