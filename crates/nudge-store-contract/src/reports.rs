//! [`ReportStore`] with the counter changes of [`UserWrite`]: a saved write's changes count
//! exactly once (applied in the save, or by `apply_counts` however often it is called), a
//! lost write's never, and any period reads back the sums of its hours.

use nudge_core::insights::{observe, Deltas, Field, Key, Period, Scope, Sums};
use nudge_core::time::Millis;
use nudge_service::ports::{ReportStore, SaveRequest, UserStore, UserWrite};

use crate::samples::now;
use crate::Backend;

const HOUR: Millis = 3_600_000;

fn sent() -> Key {
    Key::new(Scope::Trigger, "t", "default", "email", Field::Sent)
}

fn sent_in(sums: &Sums) -> i64 {
    sums.counts.get(&sent()).copied().unwrap_or(0)
}

fn save<'a>(user_id: &'a str, expected: Option<u64>, counts: &'a Deltas) -> SaveRequest<'a> {
    SaveRequest {
        user_id,
        expected,
        write: UserWrite {
            state: b"s",
            outbox: &[],
            message_ids: &[],
            now: now(),
            counts,
        },
    }
}

/// What evaluate does after a save: a store that keeps the changes with the state holds
/// them until `apply_counts`, which counts them once however often it runs (a crash before
/// forgetting them, a redelivered event), then forgets them.
async fn apply_saved<S: UserStore>(store: &S, user_id: &str, version: u64, counts: &Deltas) {
    if S::COUNTS_IN_SAVE {
        return;
    }
    let kept = store.load(user_id, &[]).await.unwrap().unwrap();
    assert_eq!(&kept.counts, counts, "kept with the state until applied");
    store.apply_counts(user_id, version, counts).await.unwrap();
    store.apply_counts(user_id, version, counts).await.unwrap();
    let kept = store.load(user_id, &[]).await.unwrap().unwrap();
    assert!(
        kept.counts.is_empty(),
        "forgotten once applied: {:?}",
        kept.counts
    );
}

/// Changes in every hour of four days by two users, saved together: whole days and the
/// hours around them read back the same sums; distinct users and pending waits too.
pub async fn counts_count_once_and_any_period_reads_them_back<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let base = (now() / HOUR / 24 - 10) * 24;
    let (mut a, mut c) = (Deltas::default(), Deltas::default());
    for hour in base..base + 96 {
        let d = if hour % 2 == 0 { &mut a } else { &mut c };
        d.counts.insert((sent(), hour), 1);
    }
    a.users.push((base + 3, observe("a")));
    c.users.push((base + 50, observe("c")));
    a.waiting.insert(("t".into(), "email".into()), 2);

    let saved = store
        .save_many(&[save("a", None, &a), save("c", None, &c)])
        .await
        .unwrap();
    assert!(matches!(saved[..], [Ok(1), Ok(1)]), "{saved:?}");
    apply_saved(&store, "a", 1, &a).await;
    apply_saved(&store, "c", 1, &c).await;

    let read = |from: Millis, to: Millis| {
        let store = &store;
        async move {
            let period = Period::covering((base + from) * HOUR, (base + to) * HOUR);
            store.report_sums(period).await.unwrap()
        }
    };
    for (from, to) in [(0, 96), (22, 74), (25, 30), (0, 24), (23, 25), (95, 96)] {
        assert_eq!(
            sent_in(&read(from, to).await),
            to - from,
            "hours {from}..{to}"
        );
    }
    let all = read(0, 96).await;
    assert_eq!(all.users, 2);
    assert_eq!(read(0, 24).await.users, 1);
    assert_eq!(all.waiting.get("t"), Some(&2));
    assert_eq!(sent_in(&read(96, 120).await), 0);
}

/// A write that loses its race (stale version) adds nothing to the counters.
pub async fn a_lost_write_counts_nothing<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let hour = now() / HOUR;
    let mut first = Deltas::default();
    first.counts.insert((sent(), hour), 3);
    first.waiting.insert(("t".into(), "email".into()), 1);
    let version = store.save_many(&[save("u", None, &first)]).await.unwrap();
    assert!(matches!(version[..], [Ok(1)]), "{version:?}");
    apply_saved(&store, "u", 1, &first).await;

    let mut lost = Deltas::default();
    lost.counts.insert((sent(), hour), 100);
    lost.waiting.insert(("t".into(), "email".into()), 100);
    lost.users.push((hour, observe("someone-else")));
    let stale = store.save("u", None, save("u", None, &lost).write).await;
    assert!(stale.is_err(), "{stale:?}");
    let stale = store.save_many(&[save("u", Some(7), &lost)]).await.unwrap();
    assert!(stale[0].is_err(), "{stale:?}");

    let sums = store
        .report_sums(Period::covering((hour - 1) * HOUR, (hour + 1) * HOUR))
        .await
        .unwrap();
    assert_eq!(sent_in(&sums), 3);
    assert_eq!(sums.waiting.get("t"), Some(&1));
    assert_eq!(sums.users, 0);
}
