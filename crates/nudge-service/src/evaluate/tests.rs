//! Tests of evaluate over an in-memory store and bus: batches decide what users alone do,
//! lost races, fired timers, leftover outboxes, timer requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use serde_json::json;

use super::decide::timer_request_owed;
use super::*;
use crate::bus::AcceptedEvents;
use crate::bus::DelayCancel;
use crate::metrics::NoMetrics;
use nudge_core::event::Message;
use nudge_core::insights::Deltas;
use nudge_core::state::UserState;

#[test]
fn only_a_wake_up_moving_later_keeps_the_timer() {
    assert!(timer_request_owed(None, Some(5), false));
    assert!(timer_request_owed(Some(5), None, false));
    assert!(timer_request_owed(Some(5), Some(4), false));
    assert!(!timer_request_owed(Some(5), Some(6), false));
    assert!(!timer_request_owed(Some(5), Some(5), false));
    assert!(!timer_request_owed(None, None, false));
    // A fired timer is gone: the next wake-up is always requested.
    assert!(timer_request_owed(Some(5), Some(5), true));
    assert!(timer_request_owed(Some(5), Some(9), true));
}

/// A user's stored record: state, version, outbox.
type Record = (Vec<u8>, u64, Vec<BusEvent>);

/// Users' stored records, in memory; a user in the second field loses their next save to
/// a concurrent writer, who stores the state given there under the next version.
#[derive(Default)]
struct MemStore(
    Mutex<HashMap<String, Record>>,
    Mutex<Vec<(String, Vec<u8>)>>,
    Counts,
);

/// Report counts kept with the state and applied after the save, as DynamoDB does: the
/// changes pending per user (with their version), the (user, version) already applied, the
/// totals, and whether applying fails.
#[derive(Default)]
struct Counts {
    pending: Mutex<HashMap<String, (u64, Deltas)>>,
    applied: Mutex<Vec<(String, u64)>>,
    totals: Mutex<Deltas>,
    fail: std::sync::atomic::AtomicBool,
}

impl UserStore for MemStore {
    async fn load(&self, user: &str, _: &[&str]) -> Result<Option<StoredUser>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(user)
            .map(|(state, version, outbox)| StoredUser {
                state: state.clone(),
                version: *version,
                outbox: outbox.clone(),
                applied: Vec::new(),
                counts: match self.2.pending.lock().unwrap().get(user) {
                    Some((v, d)) if v == version => d.clone(),
                    _ => Deltas::default(),
                },
            }))
    }
    async fn apply_counts(
        &self,
        user: &str,
        version: u64,
        counts: &Deltas,
    ) -> Result<(), StoreError> {
        if self.2.fail.load(Ordering::SeqCst) {
            return Err(StoreError::backend(
                "apply counts",
                true,
                std::io::Error::other("down"),
            ));
        }
        let mut applied = self.2.applied.lock().unwrap();
        if !applied.contains(&(user.to_string(), version)) {
            applied.push((user.to_string(), version));
            self.2.totals.lock().unwrap().merge(counts.clone());
        }
        let mut pending = self.2.pending.lock().unwrap();
        if pending.get(user).is_some_and(|(v, _)| *v == version) {
            pending.remove(user);
        }
        Ok(())
    }
    async fn save(
        &self,
        user: &str,
        expected: Option<u64>,
        w: UserWrite<'_>,
    ) -> Result<u64, StoreError> {
        let mut users = self.0.lock().unwrap();
        let mut races = self.1.lock().unwrap();
        if let Some(i) = races.iter().position(|(u, _)| u == user) {
            let (_, state) = races.remove(i);
            let theirs = users.get(user).map_or(1, |u| u.1 + 1);
            users.insert(user.into(), (state, theirs, Vec::new()));
            return Err(StoreError::Conflict(user.into()));
        }
        assert_eq!(users.get(user).map(|u| u.1), expected);
        let version = expected.unwrap_or(0) + 1;
        users.insert(user.into(), (w.state.to_vec(), version, w.outbox.to_vec()));
        self.2
            .pending
            .lock()
            .unwrap()
            .insert(user.into(), (version, w.counts.clone()));
        Ok(version)
    }
    async fn clear_outbox(&self, user: &str, version: u64) -> Result<(), StoreError> {
        if let Some(u) = self.0.lock().unwrap().get_mut(user) {
            if u.1 == version {
                u.2.clear();
            }
        }
        Ok(())
    }
    async fn erase_user(&self, user: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().remove(user);
        Ok(())
    }
}

/// What was published, and in how many calls.
#[derive(Default)]
struct Recorded(Mutex<Vec<BusEvent>>, std::sync::atomic::AtomicUsize);

impl Bus for Recorded {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

struct At(AtomicI64);

impl Clock for At {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

fn saas() -> Evaluate<MemStore, Recorded, At> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas-onboarding");
    Evaluate {
        rules: Arc::new(crate::rules_dir::load(&dir).expect("example rules")),
        store: MemStore::default(),
        bus: Recorded::default(),
        clock: At(AtomicI64::new(0)),
        metrics: Arc::new(NoMetrics),
    }
}

fn accepted(n: usize, event: &str, at: Millis) -> AcceptedEvent {
    accepted_by("u1", n, event, at)
}

fn accepted_by(user: &str, n: usize, event: &str, at: Millis) -> AcceptedEvent {
    let segment = json!({
        "type": "track", "userId": user, "event": event, "messageId": format!("{user}-m{n}"),
        "timestamp": nudge_core::time::format_instant(at),
    });
    AcceptedEvent {
        user_id: user.into(),
        message_id: format!("{user}-m{n}"),
        at,
        received_at: at,
        message: Message::from_json(&segment, None).unwrap(),
    }
}

/// Onboarding traffic of four users, interleaved as one accepted batch.
fn mixed_batch(t0: Millis) -> Vec<AcceptedEvent> {
    let names = [
        "Signed Up",
        "Onboarding Step Viewed",
        "Login Failed",
        "Login Failed",
        "Login Failed",
        "Feature Used",
    ];
    let mut events = Vec::new();
    for (n, name) in names.iter().enumerate() {
        for user in ["a", "b", "c", "d"] {
            events.push(accepted_by(user, n, name, t0 + n as i64 * 1000));
        }
    }
    events
}

/// The published events and stored states, in an order that does not depend on how
/// users were batched.
fn outcome(e: &Evaluate<MemStore, Recorded, At>) -> (Vec<String>, Vec<(String, Record)>) {
    let mut published: Vec<String> = e
        .bus
        .0
        .lock()
        .unwrap()
        .iter()
        .map(BusEvent::to_detail)
        .collect();
    published.sort();
    let mut users: Vec<(String, Record)> = e
        .store
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(u, r)| (u.clone(), r.clone()))
        .collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    (published, users)
}

#[tokio::test]
async fn a_batch_of_users_decides_what_each_user_alone_decides() {
    let t0 = nudge_core::time::parse_instant("2026-03-02T09:00:00Z").unwrap();
    let events = mixed_batch(t0);
    let batched = saas();
    batched.clock.0.store(t0 + 10_000, Ordering::SeqCst);
    let alone = saas();
    alone.clock.0.store(t0 + 10_000, Ordering::SeqCst);

    batched
        .handle(&BusEvent::EventsAccepted(AcceptedEvents {
            events: events.clone(),
        }))
        .await
        .unwrap();
    for user in ["a", "b", "c", "d"] {
        let mine: Vec<&AcceptedEvent> = events.iter().filter(|e| e.user_id == user).collect();
        alone.user(user, Input::Events(&mine)).await.unwrap();
    }

    let (published, users) = outcome(&batched);
    assert!(
        published.iter().any(|p| p.contains("Message Requested")),
        "{published:?}"
    );
    assert_eq!(users.len(), 4);
    assert_eq!((published, users), outcome(&alone));
}

#[tokio::test]
async fn a_user_who_loses_a_race_in_a_batch_is_evaluated_again_alone() {
    let t0 = nudge_core::time::parse_instant("2026-03-02T09:00:00Z").unwrap();
    let events = mixed_batch(t0);
    let e = saas();
    e.clock.0.store(t0 + 10_000, Ordering::SeqCst);
    let fresh = UserState::new(&e.rules).encode(&e.rules);
    e.store.1.lock().unwrap().push(("b".into(), fresh));

    let refs: Vec<&AcceptedEvent> = events.iter().collect();
    let mut users: Vec<(&str, Vec<&AcceptedEvent>)> = Vec::new();
    for user in ["a", "b", "c", "d"] {
        users.push((
            user,
            refs.iter().copied().filter(|e| e.user_id == user).collect(),
        ));
    }
    let inputs: Vec<(&str, Input<'_>)> = users
        .iter()
        .map(|(user, events)| (*user, Input::Events(events)))
        .collect();
    let results = e.users(&inputs).await.unwrap();

    for r in &results {
        assert_eq!(r.as_ref().unwrap().applied, 6, "{results:?}");
    }
    // b's state was written by the winner of the race (version 1), then by the retry.
    assert_eq!(e.store.0.lock().unwrap()["b"].1, 2);
    let sends_to = |user: &str| {
        e.bus
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|ev| matches!(ev, BusEvent::MessageRequested(m) if m.send.user_id == user))
            .count()
    };
    assert_eq!(sends_to("b"), sends_to("a"));
    assert!(sends_to("a") > 0);
}

#[tokio::test]
async fn timers_fired_together_are_evaluated_together_and_published_in_one_call() {
    let t0 = nudge_core::time::parse_instant("2026-03-02T09:00:00Z").unwrap();
    let e = saas();
    e.clock.0.store(t0, Ordering::SeqCst);
    let users = ["a", "b", "c"];
    for user in users {
        let ev = accepted_by(user, 0, "Signed Up", t0);
        e.user(user, Input::Events(&[&ev])).await.unwrap();
    }
    let mut timers = Vec::new();
    for event in e.bus.0.lock().unwrap().drain(..) {
        if let BusEvent::DelayRequested(d) = event {
            timers.push(TimerFired {
                user_id: d.user_id,
                due: d.due,
                version: d.version,
            });
        }
    }
    assert_eq!(timers.len(), 3);
    let due = timers.iter().map(|t| t.due).max().unwrap_or(t0);
    e.clock.0.store(due, Ordering::SeqCst);
    e.bus.1.store(0, Ordering::SeqCst);

    e.handle(&BusEvent::TimersFired(crate::bus::FiredTimers { timers }))
        .await
        .unwrap();

    assert_eq!(
        e.bus.1.load(Ordering::SeqCst),
        1,
        "one publish for all three"
    );
    let published = e.bus.0.lock().unwrap();
    for user in users {
        assert!(
            published.iter().any(|p| p.user_id() == Some(user)),
            "{user}: {published:?}"
        );
        assert_eq!(
            e.store.0.lock().unwrap()[user].1,
            2,
            "{user} written once more"
        );
    }
}

#[tokio::test]
async fn events_a_crash_left_unpublished_go_out_before_the_batch_is_applied() {
    let t0 = nudge_core::time::parse_instant("2026-03-02T09:00:00Z").unwrap();
    let e = saas();
    e.clock.0.store(t0, Ordering::SeqCst);
    let left = BusEvent::DelayCancelled(DelayCancel {
        user_id: "a".into(),
        version: 1,
    });
    e.store.0.lock().unwrap().insert(
        "a".into(),
        (
            UserState::new(&e.rules).encode(&e.rules),
            1,
            vec![left.clone()],
        ),
    );

    let ev = accepted_by("a", 0, "Signed Up", t0);
    let results = e.users(&[("a", Input::Events(&[&ev]))]).await.unwrap();

    assert_eq!(results[0].as_ref().unwrap().applied, 1);
    assert_eq!(e.bus.0.lock().unwrap().first(), Some(&left));
    assert_eq!(e.store.0.lock().unwrap()["a"].1, 2);
}

/// Takes what was published since the last call: (timer requests, in-app sends).
fn drain(e: &Evaluate<MemStore, Recorded, At>) -> (Vec<Millis>, Vec<String>) {
    let mut timers = Vec::new();
    let mut sends = Vec::new();
    for event in e.bus.0.lock().unwrap().drain(..) {
        match event {
            BusEvent::DelayRequested(d) => timers.push(d.due),
            BusEvent::MessageRequested(m) => sends.push(m.send.trigger.to_string()),
            _ => {}
        }
    }
    (timers, sends)
}

#[tokio::test]
async fn a_wait_pushed_back_by_every_event_moves_the_timer_once_per_wait() {
    let evaluate = saas();
    let e = &evaluate;
    let t0 = nudge_core::time::parse_instant("2026-03-02T09:00:00Z").unwrap();
    let at = |s: i64| t0 + s * 1000;
    let send = |n: usize, name: &str, t: Millis| {
        let ev = accepted(n, name, t);
        e.clock.0.store(t, Ordering::SeqCst);
        async move { e.user("u1", Input::Events(&[&ev])).await.unwrap() }
    };

    // Given a user in onboarding: the idle nudge waits 2 minutes after each event
    send(0, "Signed Up", at(0)).await;
    let (first, _) = drain(e);
    assert_eq!(first, [at(120)]);
    // When events keep coming every 30 s, each pushing the wait back
    for n in 1..=6 {
        send(n, "Feature Used", at(30 * n as i64)).await;
    }
    // Then the timer set at sign-up stays: no request per event
    assert_eq!(drain(e), (vec![], vec![]));

    // When it fires (early: the wait is now due 2 minutes after the last event)
    e.clock.0.store(at(120), Ordering::SeqCst);
    e.user("u1", Input::Timer { due: at(120) }).await.unwrap();
    // Then nothing is sent and the later time is requested
    assert_eq!(drain(e), (vec![at(180 + 120)], vec![]));

    // And when that fires, the nudge goes out once
    e.clock.0.store(at(300), Ordering::SeqCst);
    e.user("u1", Input::Timer { due: at(300) }).await.unwrap();
    let (_, sends) = drain(e);
    assert_eq!(sends, ["pause-nudge"]);
}

/// The totals the store applied, summed over every hour.
fn counted(e: &Evaluate<MemStore, Recorded, At>) -> nudge_core::insights::Sums {
    let mut t = nudge_core::insights::Tally::new(nudge_core::insights::Period::all());
    t.apply(e.store.2.totals.lock().unwrap().clone());
    t.sums()
}

fn events_counted(e: &Evaluate<MemStore, Recorded, At>) -> i64 {
    let key = nudge_core::insights::Key::new(
        nudge_core::insights::Scope::Totals,
        "",
        "",
        "",
        nudge_core::insights::Field::Events,
    );
    counted(e).counts.get(&key).copied().unwrap_or(0)
}

#[tokio::test]
async fn counts_are_applied_after_the_save_once_and_a_redelivery_adds_nothing() {
    let e = saas();
    let batch = BusEvent::EventsAccepted(AcceptedEvents {
        events: vec![
            accepted(1, "Signed Up", 1_000),
            accepted(2, "Login Failed", 2_000),
        ],
    });
    e.handle(&batch).await.unwrap();
    assert_eq!(events_counted(&e), 2);
    assert!(
        e.store.2.pending.lock().unwrap().is_empty(),
        "applied changes are forgotten"
    );
    // The bus delivers the same batch again: the messageIds are known, nothing is counted.
    e.handle(&batch).await.unwrap();
    assert_eq!(events_counted(&e), 2);
}

#[tokio::test]
async fn counts_a_failure_left_pending_are_applied_before_the_next_save() {
    let e = saas();
    e.store.2.fail.store(true, Ordering::SeqCst);
    let first = BusEvent::EventsAccepted(AcceptedEvents {
        events: vec![accepted(1, "Signed Up", 1_000)],
    });
    // Applying fails: the state is saved, its changes stay with it.
    e.handle(&first).await.unwrap();
    assert_eq!(events_counted(&e), 0);
    assert_eq!(e.store.2.pending.lock().unwrap()["u1"].0, 1);
    e.store.2.fail.store(false, Ordering::SeqCst);
    let next = BusEvent::EventsAccepted(AcceptedEvents {
        events: vec![accepted(2, "Login Failed", 2_000)],
    });
    e.handle(&next).await.unwrap();
    // Both versions' changes, each once.
    assert_eq!(events_counted(&e), 2);
    let applied = e.store.2.applied.lock().unwrap().clone();
    assert_eq!(applied, [("u1".to_string(), 1), ("u1".to_string(), 2)]);
}
