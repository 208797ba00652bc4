//! [`DeliveryStore`]: one entry per (user, decision id), begun once, finished in place,
//! listed newest first, kept for [`DELIVERY_RETENTION_MS`] after its last change.

use nudge_service::ports::{Delivery, DeliveryStatus, DeliveryStore, DELIVERY_RETENTION_MS};

use crate::samples::{delivery, now, DAY};
use crate::Backend;

fn ids(entries: &[Delivery]) -> Vec<u64> {
    entries.iter().map(|d| d.id.0).collect()
}

/// `begin` records an entry whose decision id the user has no entry of and returns `None`;
/// for one it has, it changes nothing and returns the entry as stored. The same decision id
/// under another user is another entry.
pub async fn begin_records_once_and_then_returns_the_existing_entry<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let first = delivery("u", u64::MAX, now() - 5_000);

    assert_eq!(store.begin(&first).await.unwrap(), None);
    let retry = Delivery {
        attempts: 9,
        ..first.clone()
    };
    assert_eq!(store.begin(&retry).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.begin(&delivery("v", u64::MAX, now())).await.unwrap(),
        None
    );
    let suppressed = Delivery {
        status: DeliveryStatus::Suppressed,
        reason: Some("quiet_hours".into()),
        ..delivery("u", 7, now())
    };
    assert_eq!(store.begin(&suppressed).await.unwrap(), None);
    assert_eq!(store.begin(&suppressed).await.unwrap(), Some(suppressed));
}

/// `finish` replaces the entry with its final form (a later `begin` returns that); `recent`
/// lists the user's entries newest first, up to the limit, no other user's.
pub async fn finish_replaces_the_entry_and_recent_lists_newest_first<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    for (id, at) in [(1, now - 9_000), (2, now - 1_000), (3, now - 7_000)] {
        store.begin(&delivery("u", id, at)).await.unwrap();
    }
    store.begin(&delivery("v", 4, now)).await.unwrap();
    let done = Delivery {
        status: DeliveryStatus::Sent,
        updated_at: now,
        attempts: 1,
        subject: Some("Hi".into()),
        ..delivery("u", 3, now - 7_000)
    };

    store.finish(&done).await.unwrap();

    let recent = store.recent("u", 10).await.unwrap();
    assert_eq!(ids(&recent), [2, 3, 1]);
    assert_eq!(recent[1], done);
    assert_eq!(ids(&store.recent("u", 2).await.unwrap()), [2, 3]);
    assert!(store.recent("u", 0).await.unwrap().is_empty());
    assert_eq!(ids(&store.recent("v", 10).await.unwrap()), [4]);
    assert!(store.recent("w", 10).await.unwrap().is_empty());
    assert_eq!(
        store.begin(&delivery("u", 3, now - 7_000)).await.unwrap(),
        Some(done)
    );
}

/// An entry last changed longer than [`DELIVERY_RETENTION_MS`] ago counts as absent, stored
/// or not: `recent` leaves it out, and beginning its decision again records it anew. The
/// retention runs from the last change, not the decision: an entry of a decision taken long
/// ago (an import of old events) is kept, so a redelivered request still finds it.
pub async fn entries_past_the_retention_count_as_absent<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    let old = Delivery {
        status: DeliveryStatus::Sent,
        ..delivery("u", 1, now - DELIVERY_RETENTION_MS - 2 * DAY)
    };
    store.finish(&old).await.unwrap();
    let kept = delivery("u", 2, now - DELIVERY_RETENTION_MS + DAY);
    store.begin(&kept).await.unwrap();
    let imported = Delivery {
        updated_at: now,
        ..delivery("u", 3, now - DELIVERY_RETENTION_MS - 10 * DAY)
    };
    assert_eq!(store.begin(&imported).await.unwrap(), None);

    assert_eq!(ids(&store.recent("u", 10).await.unwrap()), [2, 3]);
    assert_eq!(store.begin(&kept).await.unwrap(), Some(kept.clone()));
    assert_eq!(
        store.begin(&imported).await.unwrap(),
        Some(imported.clone())
    );
    let renewed = delivery("u", 1, now);
    assert_eq!(store.begin(&renewed).await.unwrap(), None);
    assert_eq!(ids(&store.recent("u", 10).await.unwrap()), [1, 2, 3]);
}

/// `take_over` replaces an entry left `Sending` only while it is the one seen: of several
/// handles taking over the same abandoned send at once, exactly one does; a finished entry,
/// or one changed since it was seen, is not taken.
pub async fn an_abandoned_send_is_taken_over_by_exactly_one<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    let abandoned = delivery("u", 5, now - 120_000);
    store.begin(&abandoned).await.unwrap();

    let takers: Vec<_> = (0..6).map(|_| b.another(&store)).collect();
    let attempts = takers.iter().enumerate().map(|(i, s)| {
        let mine = Delivery {
            updated_at: now + i as i64,
            ..abandoned.clone()
        };
        let seen = abandoned.clone();
        async move { (mine.clone(), s.take_over(&mine, &seen).await.unwrap()) }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|(_, won)| *won).collect();
    assert_eq!(winners.len(), 1, "exactly one takes the send over");
    assert_eq!(
        store.begin(&abandoned).await.unwrap(),
        Some(winners[0].0.clone()),
        "the entry is the winner's"
    );

    // Seen before the winner's change: not taken.
    assert!(!store.take_over(&abandoned, &abandoned).await.unwrap());
    // Finished: not taken, whatever was seen.
    let done = Delivery {
        status: DeliveryStatus::Sent,
        ..winners[0].0.clone()
    };
    store.finish(&done).await.unwrap();
    assert!(!store.take_over(&winners[0].0, &done).await.unwrap());
    assert!(!store.take_over(&winners[0].0, &winners[0].0).await.unwrap());
    assert_eq!(store.begin(&abandoned).await.unwrap(), Some(done));
}
