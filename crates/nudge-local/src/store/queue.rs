//! The durable local event queue of `nudge serve`'s in-process bus: an event is stored before
//! it is handled and deleted once handled, so a crash in between redelivers it at start-up.

use nudge_service::bus::BusEvent;
use nudge_service::ports::StoreError;
use rusqlite::{params, Connection};

use super::error::{corrupt_json, encode, sqlite};
use super::SqliteStore;

/// Encodes events for the queue (done before the writer thread, which only inserts).
pub(super) fn encode_events(
    context: &'static str,
    events: &[BusEvent],
) -> Result<Vec<String>, StoreError> {
    events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()
        .map_err(encode(context))
}

/// Inserts encoded events into the queue inside the caller's transaction; returns their
/// sequence numbers, in order.
pub(super) fn insert_queue_rows(
    conn: &Connection,
    context: &'static str,
    json: &[String],
) -> Result<Vec<i64>, StoreError> {
    let mut insert = conn
        .prepare_cached("INSERT INTO queue (event) VALUES (?1)")
        .map_err(sqlite(context))?;
    json.iter()
        .map(|event| {
            insert.execute([event]).map_err(sqlite(context))?;
            Ok(conn.last_insert_rowid())
        })
        .collect()
}

impl SqliteStore {
    /// Stores `events` in one transaction; returns their sequence numbers, in order.
    pub async fn enqueue(&self, events: &[BusEvent]) -> Result<Vec<i64>, StoreError> {
        const CONTEXT: &str = "enqueue events";
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let json = encode_events(CONTEXT, events)?;
        self.writer
            .write_checked(CONTEXT, move |conn| insert_queue_rows(conn, CONTEXT, &json))
            .await
    }

    /// Deletes handled events. Sequence numbers are never reused (AUTOINCREMENT), so a late
    /// or repeated ack cannot delete another event.
    pub async fn ack(&self, seqs: &[i64]) -> Result<(), StoreError> {
        const CONTEXT: &str = "ack events";
        if seqs.is_empty() {
            return Ok(());
        }
        let seqs = seqs.to_vec();
        self.writer
            .write_checked(CONTEXT, move |conn| {
                let mut delete = conn
                    .prepare_cached("DELETE FROM queue WHERE seq = ?1")
                    .map_err(sqlite(CONTEXT))?;
                for seq in seqs {
                    delete.execute(params![seq]).map_err(sqlite(CONTEXT))?;
                }
                Ok(())
            })
            .await
    }

    /// Up to `limit` events not acked yet, oldest first (redelivered at start-up).
    pub async fn unacked(&self, limit: usize) -> Result<Vec<(i64, BusEvent)>, StoreError> {
        self.unacked_after(0, limit).await
    }

    /// Up to `limit` events not acked yet with a sequence number above `after`, oldest first:
    /// pages through the queue while the events of earlier pages are still being handled.
    pub async fn unacked_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, BusEvent)>, StoreError> {
        const CONTEXT: &str = "read unacked events";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String)> = self
            .writer
            .read(CONTEXT, move |conn| {
                conn.prepare_cached(
                    "SELECT seq, event FROM queue WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(sqlite(CONTEXT))?
                .query_map([after, limit], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sqlite(CONTEXT))?
                .collect::<Result<_, _>>()
                .map_err(sqlite(CONTEXT))
            })
            .await?;
        rows.into_iter()
            .map(|(seq, json)| {
                let event = serde_json::from_str(&json)
                    .map_err(|e| corrupt_json(&format!("queued event {seq}"), e))?;
                Ok((seq, event))
            })
            .collect()
    }

    /// How many events are stored and not acked.
    pub async fn queue_len(&self) -> Result<usize, StoreError> {
        const CONTEXT: &str = "count queued events";
        let n: i64 = self
            .writer
            .read(CONTEXT, |conn| {
                conn.prepare_cached("SELECT COUNT(*) FROM queue")
                    .map_err(sqlite(CONTEXT))?
                    .query_row([], |r| r.get(0))
                    .map_err(sqlite(CONTEXT))
            })
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use nudge_service::bus::{DelayCancel, DelayRequest};

    use super::*;
    use crate::store::test_support::TempDir;

    fn events() -> Vec<BusEvent> {
        (1..=3)
            .map(|v| {
                BusEvent::DelayRequested(DelayRequest {
                    user_id: format!("u{v}"),
                    due: 1_000 * v as i64,
                    version: v,
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn unacked_events_survive_reopening_and_ack_deletes_them() {
        let dir = TempDir::new("queue-reopen");
        let seqs = {
            let store = dir.open();
            assert!(store.enqueue(&[]).await.unwrap().is_empty());
            let seqs = store.enqueue(&events()).await.unwrap();
            assert_eq!(seqs.len(), 3);
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            store.ack(&seqs[..1]).await.unwrap();
            seqs
        };

        let store = dir.open();
        let left = store.unacked(10).await.unwrap();
        assert_eq!(
            left,
            [
                (seqs[1], events()[1].clone()),
                (seqs[2], events()[2].clone())
            ]
        );
        assert_eq!(store.queue_len().await.unwrap(), 2);
        assert_eq!(store.unacked(1).await.unwrap().len(), 1);
        let page = store.unacked_after(seqs[1], 10).await.unwrap();
        assert_eq!(page, [(seqs[2], events()[2].clone())]);

        store.ack(&seqs).await.unwrap();
        assert!(store.unacked(10).await.unwrap().is_empty());
        let cancel = BusEvent::DelayCancelled(DelayCancel {
            user_id: "u".into(),
            version: 1,
        });
        let next = store.enqueue(std::slice::from_ref(&cancel)).await.unwrap();
        assert!(next[0] > seqs[2], "sequence numbers are not reused");
        assert_eq!(store.unacked(10).await.unwrap(), [(next[0], cancel)]);
    }

    #[tokio::test]
    async fn a_corrupt_queued_event_reads_as_corrupt_naming_its_seq() {
        let dir = TempDir::new("queue-corrupt");
        let store = dir.open();
        store
            .writer
            .write("test", |conn| {
                conn.execute("INSERT INTO queue (seq, event) VALUES (7, '{}')", [])
                    .map_err(sqlite("test"))
            })
            .await
            .unwrap();

        let got = store.unacked(10).await;

        assert!(
            matches!(&got, Err(StoreError::Corrupt(m)) if m.contains('7')),
            "{got:?}"
        );
    }
}
