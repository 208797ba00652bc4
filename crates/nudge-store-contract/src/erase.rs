//! [`UserStore::erase_user`] (GDPR): everything stored under the user goes, nothing of
//! anyone else.

use nudge_core::time::Millis;
use nudge_service::ports::{DeliveryStore, InboxStore, TimerStore, UserStore};

use crate::samples::{cancel, delay, delivery, inbox_item, now, write};
use crate::Backend;

/// State, applied messageIds, timer, delivery log (more entries than one backend call
/// deletes) and inbox of the user are gone; a new life starts without the old messageIds;
/// another user (whose id starts the same) keeps all of theirs. Erasing a user never
/// written is no error.
pub async fn erase_user_removes_everything_of_that_user_only<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    for user in ["alice", "alice2"] {
        store
            .save(user, None, write(b"state", &[], &["m1"]))
            .await
            .unwrap();
        store.set(&delay(user, now - 1, 1)).await.unwrap();
        for i in 0..30 {
            store
                .begin(&delivery(user, i, now - i as Millis))
                .await
                .unwrap();
        }
        for i in 0..3 {
            store.put(&inbox_item(user, 100 + i, now)).await.unwrap();
        }
    }
    store.cancel(&cancel("bob", 5)).await.unwrap();

    store.erase_user("alice").await.unwrap();
    store.erase_user("bob").await.unwrap();
    store.erase_user("nobody").await.unwrap();

    assert_eq!(store.load("alice", &["m1"]).await.unwrap(), None);
    assert_eq!(store.pending("alice").await.unwrap(), None);
    assert!(store.recent("alice", 100).await.unwrap().is_empty());
    assert!(store.list("alice", now).await.unwrap().is_empty());
    assert_eq!(
        store
            .save("alice", None, write(b"new", &[], &["m1"]))
            .await
            .unwrap(),
        1,
        "the old messageIds went with the state"
    );
    // The cancel's version went too: the user's timers start over.
    store.set(&delay("bob", now + 60_000, 1)).await.unwrap();
    assert!(store.pending("bob").await.unwrap().is_some());

    let kept = store.load("alice2", &["m1"]).await.unwrap().unwrap();
    assert_eq!(kept.applied, ["m1"]);
    assert_eq!(store.recent("alice2", 100).await.unwrap().len(), 30);
    assert_eq!(store.list("alice2", now).await.unwrap().len(), 3);
    let fired = store.claim_due(now, 10).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].user_id, "alice2");
}
