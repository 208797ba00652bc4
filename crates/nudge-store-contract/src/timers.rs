//! [`TimerStore`]: one timer per user, replaced only by newer versions; cancels and claims
//! leave their version behind; each due timer is claimed once however many sweep.

use std::collections::HashSet;

use futures_util::future::join_all;
use nudge_core::time::Millis;
use nudge_service::bus::TimerFired;
use nudge_service::ports::{Timer, TimerStore};

use crate::samples::{cancel, delay, now};
use crate::Backend;

fn timer(user_id: &str, due: Millis, version: u64) -> Option<Timer> {
    Some(Timer {
        user_id: user_id.into(),
        due,
        version,
    })
}

fn fired(user_id: &str, due: Millis, version: u64) -> TimerFired {
    TimerFired {
        user_id: user_id.into(),
        due,
        version,
    }
}

/// `set` applies only a version newer than every request or cancel applied before; the
/// same version again changes nothing (not even the due time).
pub async fn only_a_newer_version_replaces_a_timer<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let t = now() + 3_600_000;

    store.set(&delay("u", t + 100, 2)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), timer("u", t + 100, 2));
    store.set(&delay("u", t + 50, 1)).await.unwrap();
    store.set(&delay("u", t + 70, 2)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), timer("u", t + 100, 2));

    store.set(&delay("u", t + 300, 3)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), timer("u", t + 300, 3));
    store.set(&delay("u", t - 7_200_000, 4)).await.unwrap();
    assert_eq!(
        store.pending("u").await.unwrap(),
        timer("u", t - 7_200_000, 4),
        "moved earlier, into the past: pending until claimed"
    );
    assert_eq!(store.pending("other").await.unwrap(), None);
}

/// `cancel` removes the timer unless a newer request set it, and remembers its version: a
/// request of that version or older arriving later does not bring the timer back. Between
/// a request and a cancel of one version the cancel wins, whichever arrives first.
pub async fn a_cancel_removes_the_timer_unless_a_newer_request_set_it<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let t = now() + 3_600_000;
    store.set(&delay("u", t, 1)).await.unwrap();

    store.cancel(&cancel("u", 2)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), None);
    store.cancel(&cancel("u", 2)).await.unwrap();
    store.set(&delay("u", t, 1)).await.unwrap();
    store.set(&delay("u", t, 2)).await.unwrap();
    store.restore(&delay("u", t, 1)).await.unwrap();
    assert_eq!(
        store.pending("u").await.unwrap(),
        None,
        "late older request"
    );

    store.set(&delay("u", t + 400, 3)).await.unwrap();
    store.cancel(&cancel("u", 2)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), timer("u", t + 400, 3));

    // One version, both ways round.
    store.cancel(&cancel("u", 3)).await.unwrap();
    assert_eq!(
        store.pending("u").await.unwrap(),
        None,
        "request, then cancel"
    );
    store.cancel(&cancel("v", 5)).await.unwrap();
    store.set(&delay("v", t, 5)).await.unwrap();
    assert_eq!(
        store.pending("v").await.unwrap(),
        None,
        "cancel, then request"
    );

    store.set(&delay("u", t + 500, 4)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), timer("u", t + 500, 4));
}

/// However requests and cancels are reordered on the way, the newest version decides.
pub async fn out_of_order_arrival_ends_at_the_newest_version<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let t = now() + 3_600_000;

    // Produced as set v1, cancel v2, set v3; arriving backwards.
    store.set(&delay("a", t + 300, 3)).await.unwrap();
    store.cancel(&cancel("a", 2)).await.unwrap();
    store.set(&delay("a", t + 100, 1)).await.unwrap();
    // Produced as set v1, set v2, cancel v3; arriving as v2, v3, v1.
    store.set(&delay("b", t + 200, 2)).await.unwrap();
    store.cancel(&cancel("b", 3)).await.unwrap();
    store.set(&delay("b", t + 100, 1)).await.unwrap();
    // A cancel arriving before any request of the user.
    store.cancel(&cancel("c", 2)).await.unwrap();
    store.set(&delay("c", t + 100, 1)).await.unwrap();

    assert_eq!(store.pending("a").await.unwrap(), timer("a", t + 300, 3));
    assert_eq!(store.pending("b").await.unwrap(), None);
    assert_eq!(store.pending("c").await.unwrap(), None);
}

/// `claim_due` claims timers due at or before `now`, earliest first, up to the limit; a
/// claimed timer is gone (not pending, not claimed again); cancelled and future timers are
/// left alone; an expired timer not yet claimed is still pending.
pub async fn claim_due_takes_due_timers_earliest_first_once<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    store.set(&delay("late", now - 10_000, 1)).await.unwrap();
    store.set(&delay("early", now - 30_000, 4)).await.unwrap();
    store.set(&delay("mid", now - 20_000, 1)).await.unwrap();
    store.set(&delay("on-time", now, 2)).await.unwrap();
    store
        .set(&delay("future", now + 3_600_000, 1))
        .await
        .unwrap();
    store
        .set(&delay("cancelled", now - 50_000, 1))
        .await
        .unwrap();
    store.cancel(&cancel("cancelled", 2)).await.unwrap();
    assert_eq!(
        store.pending("early").await.unwrap(),
        timer("early", now - 30_000, 4)
    );

    let first = store.claim_due(now, 2).await.unwrap();
    let second = store.claim_due(now, 10).await.unwrap();
    let third = store.claim_due(now, 10).await.unwrap();

    assert_eq!(
        first,
        [
            fired("early", now - 30_000, 4),
            fired("mid", now - 20_000, 1)
        ]
    );
    assert_eq!(
        second,
        [fired("late", now - 10_000, 1), fired("on-time", now, 2)]
    );
    assert!(third.is_empty(), "{third:?}");
    assert_eq!(store.pending("early").await.unwrap(), None);
    assert!(store.pending("future").await.unwrap().is_some());
    assert!(store.claim_due(now, 0).await.unwrap().is_empty());
}

/// The limit applies across all timers, wherever the store keeps them: the earliest come
/// first.
pub async fn claim_due_takes_the_earliest_across_many_up_to_the_limit<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    for i in 0..12 {
        store
            .set(&delay(&format!("user-{i}"), now - 1_000 * (i + 1), 1))
            .await
            .unwrap();
    }

    let fired = store.claim_due(now, 5).await.unwrap();

    let dues: Vec<Millis> = fired.iter().map(|f| f.due).collect();
    let earliest: Vec<Millis> = (8..=12).rev().map(|i| now - 1_000 * i).collect();
    assert_eq!(dues, earliest);
    assert_eq!(store.claim_due(now, 100).await.unwrap().len(), 7);
}

/// A claimed timer leaves its version behind: a redelivered request of it (or an older one)
/// does not re-arm it; `restore` of that version does (a "Timer Fired" that could not be
/// published), unless a newer request or cancel came meanwhile.
pub async fn a_claimed_timer_comes_back_only_by_restore<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    store.set(&delay("u", now - 10, 3)).await.unwrap();
    store.set(&delay("v", now - 10, 3)).await.unwrap();
    assert_eq!(store.claim_due(now, 10).await.unwrap().len(), 2);

    store.set(&delay("u", now - 10, 3)).await.unwrap();
    store.set(&delay("u", now - 20, 2)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), None);
    store.restore(&delay("u", now - 10, 2)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), None);
    store.restore(&delay("u", now - 10, 3)).await.unwrap();
    assert_eq!(store.pending("u").await.unwrap(), timer("u", now - 10, 3));
    assert_eq!(
        store.claim_due(now, 10).await.unwrap(),
        [fired("u", now - 10, 3)]
    );

    store.cancel(&cancel("v", 4)).await.unwrap();
    store.restore(&delay("v", now - 10, 3)).await.unwrap();
    assert_eq!(store.pending("v").await.unwrap(), None);
}

/// Two sweepers (each its own handle) claiming at once: every due timer is claimed by
/// exactly one of them, each sweeper's claims earliest first.
pub async fn concurrent_claimers_claim_each_timer_exactly_once<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let now = now();
    let mut expected = HashSet::new();
    for i in 0..40u64 {
        let user = format!("user-{i}");
        let due = now - 60_000 + (i % 13) as Millis * 1_000;
        store.set(&delay(&user, due, i + 1)).await.unwrap();
        expected.insert((user, due, i + 1));
    }
    for i in 0..4 {
        store
            .set(&delay(&format!("later-{i}"), now + 60_000, 1))
            .await
            .unwrap();
    }
    let sweepers = [b.another(&store), b.another(&store)];

    let claimed = join_all(sweepers.iter().map(|sweeper| async move {
        let mut mine = Vec::new();
        loop {
            let batch = sweeper.claim_due(now, 7).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            assert!(batch.windows(2).all(|w| w[0].due <= w[1].due), "{batch:?}");
            mine.extend(batch);
        }
    }))
    .await;

    let all: Vec<(String, Millis, u64)> = claimed
        .iter()
        .flatten()
        .map(|f| (f.user_id.clone(), f.due, f.version))
        .collect();
    assert_eq!(all.len(), expected.len(), "claimed twice: {all:?}");
    let distinct: HashSet<(String, Millis, u64)> = all.into_iter().collect();
    assert_eq!(distinct, expected);
    assert!(store.claim_due(now, 100).await.unwrap().is_empty());
    assert!(store.pending("later-0").await.unwrap().is_some());
}
