//! [`InboxStore`]: per-user inboxes; nobody sees or changes another user's items, read times
//! stay the first, dismissed items stay gone, expired ones are no longer in the inbox.

use nudge_core::engine::decision::DecisionId;
use nudge_service::ports::{InboxItem, InboxStore};

use crate::samples::{inbox_item, now};
use crate::Backend;

fn ids(items: &[InboxItem]) -> Vec<u64> {
    items.iter().map(|i| i.id.0).collect()
}

/// `put` adds an item once (a redelivered put leaves the first as it is); `list` gives the
/// user's items newest first.
pub async fn put_is_idempotent_and_list_is_newest_first<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    store.put(&inbox_item("u", 1, now - 3_000)).await.unwrap();
    store.put(&inbox_item("u", 2, now - 1_000)).await.unwrap();
    store
        .put(&inbox_item("u", u64::MAX, now - 2_000))
        .await
        .unwrap();
    let changed = InboxItem {
        body: "other".into(),
        ..inbox_item("u", 1, now - 3_000)
    };
    store.put(&changed).await.unwrap();

    let listed = store.list("u", now).await.unwrap();

    assert_eq!(ids(&listed), [2, u64::MAX, 1]);
    assert_eq!(
        listed[2],
        inbox_item("u", 1, now - 3_000),
        "the first put stays"
    );
}

/// Items are the user's own: another user's ids, the same decision id in another user's
/// inbox included, are never listed, read or dismissed through this user.
pub async fn users_see_and_change_only_their_own_items<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    let alice = inbox_item("alice", 1, now - 2_000);
    let shared_alice = inbox_item("alice", 5, now - 1_000);
    let shared_bob = InboxItem {
        body: "Bob's".into(),
        ..inbox_item("bob", 5, now - 1_500)
    };
    for item in [&alice, &shared_alice, &shared_bob] {
        store.put(item).await.unwrap();
    }

    assert_eq!(ids(&store.list("alice", now).await.unwrap()), [5, 1]);
    assert_eq!(
        store.list("bob", now).await.unwrap(),
        std::slice::from_ref(&shared_bob)
    );
    assert!(store.list("carol", now).await.unwrap().is_empty());
    assert_eq!(
        store.mark_read("bob", DecisionId(1), now).await.unwrap(),
        None
    );
    assert_eq!(store.dismiss("bob", DecisionId(1)).await.unwrap(), None);
    assert_eq!(store.dismiss("carol", DecisionId(5)).await.unwrap(), None);
    assert_eq!(
        store.dismiss("bob", DecisionId(5)).await.unwrap(),
        Some(shared_bob)
    );

    assert_eq!(
        store.list("alice", now).await.unwrap(),
        [shared_alice, alice],
        "alice's items unread and undismissed"
    );
    assert!(store.list("bob", now).await.unwrap().is_empty());
}

/// `mark_read` returns the item and keeps the first read time; `dismiss` returns it once and
/// removes it for good (not listed, not readable, not brought back by a redelivered put).
pub async fn read_keeps_the_first_time_and_dismiss_hides_for_good<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    let first = inbox_item("u", 1, now - 2_000);
    let second = inbox_item("u", 2, now - 1_000);
    store.put(&first).await.unwrap();
    store.put(&second).await.unwrap();

    let read = store.mark_read("u", DecisionId(1), now).await.unwrap();
    assert_eq!(
        read,
        Some(InboxItem {
            read_at: Some(now),
            ..first.clone()
        })
    );
    let again = store.mark_read("u", DecisionId(1), now + 50).await.unwrap();
    assert_eq!(
        again.and_then(|i| i.read_at),
        Some(now),
        "the first read stays"
    );

    assert_eq!(
        store.dismiss("u", DecisionId(2)).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.dismiss("u", DecisionId(2)).await.unwrap(), None);
    assert_eq!(
        store.mark_read("u", DecisionId(2), now).await.unwrap(),
        None
    );
    assert_eq!(store.dismiss("u", DecisionId(99)).await.unwrap(), None);
    store.put(&second).await.unwrap();

    let listed = store.list("u", now).await.unwrap();
    assert_eq!(ids(&listed), [1]);
    assert_eq!(listed[0].read_at, Some(now));
}

/// An item is in the inbox up to and including its `expires_at`; after that it is neither
/// listed nor marked read.
pub async fn expired_items_are_neither_listed_nor_marked_read<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    let soon = InboxItem {
        expires_at: now + 1_500,
        ..inbox_item("u", 1, now - 1_000)
    };
    let later = InboxItem {
        expires_at: now + 60_000,
        ..inbox_item("u", 2, now - 2_000)
    };
    store.put(&soon).await.unwrap();
    store.put(&later).await.unwrap();

    assert_eq!(ids(&store.list("u", now).await.unwrap()), [1, 2]);
    assert_eq!(ids(&store.list("u", now + 1_500).await.unwrap()), [1, 2]);
    assert_eq!(ids(&store.list("u", now + 1_501).await.unwrap()), [2]);
    assert_eq!(
        store
            .mark_read("u", DecisionId(1), now + 1_501)
            .await
            .unwrap(),
        None
    );
    let read = store
        .mark_read("u", DecisionId(1), now + 1_500)
        .await
        .unwrap();
    assert_eq!(read.and_then(|i| i.read_at), Some(now + 1_500));
    assert!(store.list("u", now + 60_001).await.unwrap().is_empty());
}
