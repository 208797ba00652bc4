//! User state for evaluate in `nudge serve`: the SQLite store, with each write's outbox queued
//! on the local bus in the same transaction as the state (so evaluate neither publishes nor
//! clears it), then dispatched.

use nudge_service::bus::BusEvent;
use nudge_service::ports::{
    save_through_many, LoadRequest, SaveRequest, StoreError, StoredUser, UserStore, UserWrite,
};

use crate::bus::LocalBus;
use crate::store::SqliteStore;

/// [`UserStore`] over the SQLite store whose writes publish their outboxes on the local bus.
#[derive(Clone)]
pub struct EvaluateStore {
    pub store: SqliteStore,
    pub bus: LocalBus,
}

impl UserStore for EvaluateStore {
    const PUBLISHES_OUTBOX: bool = true;
    const COUNTS_IN_SAVE: bool = true;

    async fn load(
        &self,
        user_id: &str,
        message_ids: &[&str],
    ) -> Result<Option<StoredUser>, StoreError> {
        self.store.load(user_id, message_ids).await
    }

    async fn load_many(
        &self,
        users: &[LoadRequest<'_>],
    ) -> Result<Vec<Option<StoredUser>>, StoreError> {
        self.store.load_many(users).await
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
        // Places first: once stored, the events are dispatched at once. A write that loses
        // its race gives its places back.
        let mut events: Vec<&BusEvent> = Vec::new();
        for w in writes {
            events.extend(w.write.outbox);
        }
        let mut places = self.bus.places(&events).await?.into_iter();
        let saved = self.store.save_many_queuing(writes).await?;
        Ok(writes
            .iter()
            .zip(saved)
            .map(|(w, saved)| {
                let mine: Vec<_> = places.by_ref().take(w.write.outbox.len()).collect();
                saved.map(|(version, queued)| {
                    for ((seq, event), place) in queued.into_iter().zip(mine) {
                        self.bus.dispatch(seq, event, place);
                    }
                    version
                })
            })
            .collect())
    }

    /// Outboxes are never kept (they are queued with the state); one left by an earlier
    /// version of nudge in the file is cleared as usual once evaluate has published it.
    async fn clear_outbox(&self, user_id: &str, version: u64) -> Result<(), StoreError> {
        self.store.clear_outbox(user_id, version).await
    }

    async fn erase_user(&self, user_id: &str) -> Result<(), StoreError> {
        self.store.erase_user(user_id).await
    }
}

#[cfg(test)]
mod tests {
    use nudge_service::bus::{BusEvent, DelayCancel};
    use nudge_service::ports::{Clock, SystemClock};

    use super::*;
    use crate::journal::{Journal, Limits};
    use crate::store::test_support::TempDir;

    fn cancel(user: &str, version: u64) -> BusEvent {
        BusEvent::DelayCancelled(DelayCancel {
            user_id: user.into(),
            version,
        })
    }

    fn write<'a>(outbox: &'a [BusEvent], ids: &'a [&'a str]) -> UserWrite<'a> {
        UserWrite {
            state: b"state",
            outbox,
            message_ids: ids,
            now: SystemClock.now(),
            counts: nudge_core::insights::Deltas::none(),
        }
    }

    #[tokio::test]
    async fn a_write_queues_its_outbox_with_the_state_and_a_lost_race_queues_nothing() {
        let dir = TempDir::new("local-users");
        let store = dir.open();
        let journal = Journal::open(&dir.path().join("journal"), Limits::with_backlog(10)).unwrap();
        let (bus, mut rx) = LocalBus::with_places(store.clone(), journal, 3);
        let users = EvaluateStore {
            store: store.clone(),
            bus,
        };
        store.save("b", None, write(&[], &["b0"])).await.unwrap();
        let (a_out, b_out) = ([cancel("a", 1), cancel("a", 2)], [cancel("b", 9)]);

        let saved = users
            .save_many(&[
                SaveRequest {
                    user_id: "a",
                    expected: None,
                    write: write(&a_out, &["a1"]),
                },
                // Stale: b is at version 1.
                SaveRequest {
                    user_id: "b",
                    expected: None,
                    write: write(&b_out, &["b1"]),
                },
            ])
            .await
            .unwrap();

        assert!(matches!(saved[..], [Ok(1), Err(StoreError::Conflict(_))]));
        // a's events are stored and dispatched; b's are neither.
        let queued: Vec<BusEvent> = store
            .unacked(10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(queued, a_out);
        let mut dispatched = Vec::new();
        while let Ok(d) = rx.try_recv() {
            dispatched.push(d);
        }
        let events: Vec<&BusEvent> = dispatched.iter().map(|d| &d.event).collect();
        assert_eq!(events, a_out.iter().collect::<Vec<_>>());
        // The row keeps no outbox: nothing for evaluate to publish again.
        assert!(users
            .load("a", &[])
            .await
            .unwrap()
            .unwrap()
            .outbox
            .is_empty());
        // Of three places, a's two events hold two (until handled); b's went back.
        assert_eq!(users.bus.depth(), 2);
        let (c1, c2) = (cancel("c", 1), cancel("c", 2));
        let (one, two) = ([&c1], [&c1, &c2]);
        let free = tokio::select! {
            biased;
            p = users.bus.places(&one) => p.is_ok(),
            () = std::future::ready(()) => false,
        };
        assert!(free, "the place of b's lost write was not given back");
        let held = tokio::select! {
            biased;
            _ = users.bus.places(&two) => true,
            () = std::future::ready(()) => false,
        };
        assert!(!held, "more places than were given");
    }
}
