//! Deleting what has expired: applied messageIds past their retention, delivery log entries
//! older than [`DELIVERY_RETENTION_MS`] and expired inbox items (the rows DynamoDB's TTL
//! would delete). Reads already ignore expired rows; purging only reclaims space.

use nudge_core::time::Millis;
use nudge_service::ports::{StoreError, DELIVERY_RETENTION_MS};
use rusqlite::params;

use super::error::sqlite;
use super::SqliteStore;

/// Most rows one call deletes per table, so that one purge never holds up the writer thread
/// (and every command queued behind it) for long.
pub const PURGE_BATCH: usize = 5_000;

impl SqliteStore {
    /// Deletes up to [`PURGE_BATCH`] expired rows of each table as of `now`; returns how many
    /// it deleted. Meant for a timer loop (say once a minute); a call returning
    /// `PURGE_BATCH` or more may have left some, which the next call takes.
    pub async fn purge_expired(&self, now: Millis) -> Result<usize, StoreError> {
        const CONTEXT: &str = "purge expired rows";
        let batch = PURGE_BATCH as i64;
        let deliveries_before = now.saturating_sub(DELIVERY_RETENTION_MS);
        self.writer
            .write(CONTEXT, move |conn| {
                let mut deleted = 0;
                for (sql, before) in [
                    (
                        "DELETE FROM applied_messages WHERE (user_id, message_id) IN (
                             SELECT user_id, message_id FROM applied_messages
                             WHERE expires_at <= ?1 LIMIT ?2)",
                        now,
                    ),
                    (
                        "DELETE FROM deliveries WHERE (user_id, id) IN (
                             SELECT user_id, id FROM deliveries
                             WHERE updated_at < ?1 LIMIT ?2)",
                        deliveries_before,
                    ),
                    (
                        "DELETE FROM inbox WHERE (user_id, id) IN (
                             SELECT user_id, id FROM inbox WHERE expires_at < ?1 LIMIT ?2)",
                        now,
                    ),
                ] {
                    deleted += conn
                        .prepare_cached(sql)
                        .map_err(sqlite(CONTEXT))?
                        .execute(params![before, batch])
                        .map_err(sqlite(CONTEXT))?;
                }
                Ok(deleted)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use nudge_core::engine::decision::DecisionId;
    use nudge_core::rules::model::Channel;
    use nudge_service::ports::{
        Delivery, DeliveryStatus, DeliveryStore, InboxItem, InboxStore, UserStore, UserWrite,
        MESSAGE_ID_RETENTION_MS,
    };

    use super::*;
    use crate::store::test_support::TempDir;

    fn delivery(id: u64, updated_at: Millis) -> Delivery {
        Delivery {
            id: DecisionId(id),
            user_id: "u".into(),
            trigger: "t".into(),
            channel: Channel::Webhook,
            message: "m".into(),
            variant: "a".into(),
            experiment: None,
            status: DeliveryStatus::Sent,
            reason: None,
            error: None,
            at: updated_at,
            updated_at,
            attempts: 1,
            subject: None,
        }
    }

    fn item(id: u64, expires_at: Millis) -> InboxItem {
        InboxItem {
            id: DecisionId(id),
            user_id: "u".into(),
            trigger: "t".into(),
            variant: "default".into(),
            message: "m".into(),
            title: None,
            body: "b".into(),
            url: None,
            created_at: 0,
            read_at: None,
            expires_at,
        }
    }

    #[tokio::test]
    async fn purge_deletes_only_expired_rows() {
        let dir = TempDir::new("purge");
        let store = dir.open();
        let now = 1_000 * DELIVERY_RETENTION_MS;
        let write = |at, ids: &'static [&'static str]| UserWrite {
            state: b"s",
            outbox: &[],
            message_ids: ids,
            now: at,
            counts: nudge_core::insights::Deltas::none(),
        };
        store
            .save("u", None, write(now - MESSAGE_ID_RETENTION_MS, &["old"]))
            .await
            .unwrap();
        store
            .save("u", Some(1), write(now, &["new"]))
            .await
            .unwrap();
        store
            .finish(&delivery(1, now - DELIVERY_RETENTION_MS - 1))
            .await
            .unwrap();
        store
            .finish(&delivery(2, now - DELIVERY_RETENTION_MS))
            .await
            .unwrap();
        store.put(&item(1, now - 1)).await.unwrap();
        store.put(&item(2, now)).await.unwrap();

        assert_eq!(store.purge_expired(now).await.unwrap(), 3);
        assert_eq!(store.purge_expired(now).await.unwrap(), 0);

        let ids = |d: Vec<Delivery>| d.iter().map(|d| d.id.0).collect::<Vec<_>>();
        assert_eq!(ids(store.recent("u", 10).await.unwrap()), [2]);
        assert_eq!(store.list("u", now).await.unwrap().len(), 1);
        let remaining: i64 = store
            .writer
            .read("test", |conn| {
                conn.query_row("SELECT COUNT(*) FROM applied_messages", [], |r| r.get(0))
                    .map_err(sqlite("test"))
            })
            .await
            .unwrap();
        assert_eq!(remaining, 1);
    }
}
