//! evaluate: the only writer of user state. For accepted events and fired timers it loads the
//! user's state, applies each messageId once, runs the engine, and stores the new state
//! together with the bus events it produced (the outbox) before publishing them, so a crash
//! anywhere loses no decision: the next delivery of the same input, or the user's next input,
//! publishes what was left unpublished.

use std::sync::Arc;
use std::time::Instant;

use nudge_core::engine::{Decision, Engine};
use nudge_core::event::Message;
use nudge_core::rules::CompiledRules;
use nudge_core::state::UserState;
use nudge_core::time::Millis;
use tracing::{debug, info, warn};

use crate::bus::{AcceptedEvent, BusEvent, DelayCancel, DelayRequest, MessageRequest, TimerFired};
use crate::error::{FirstFailure, HandlerError};
use crate::metrics::Metrics;
use crate::ports::{
    Bus, Clock, LoadRequest, SaveRequest, StoreError, StoredUser, UserStore, UserWrite,
};

/// How many times a lost optimistic-concurrency race is retried before giving the event back.
const MAX_ATTEMPTS: usize = 8;

/// What woke evaluate for one user.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Accepted messages of this user, in arrival order.
    Events(&'a [&'a AcceptedEvent]),
    /// The user's timer fell due at `due`.
    Timer { due: Millis },
}

/// What evaluating one user's input did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Evaluated {
    /// Messages applied (those not applied before).
    pub applied: usize,
    /// Messages skipped as already applied.
    pub duplicates: usize,
    /// Bus events published.
    pub published: usize,
    /// Whether state was written.
    pub wrote: bool,
}

/// The evaluate handler, over a store, a bus and a clock.
pub struct Evaluate<S, B, C> {
    pub rules: Arc<CompiledRules>,
    pub store: S,
    pub bus: B,
    pub clock: C,
    pub metrics: Arc<dyn Metrics>,
}

/// What evaluating one user's input decided, before anything is stored.
struct Decided<'a> {
    result: Evaluated,
    /// The write to make; `None` when nothing changed and nothing is owed.
    write: Option<Plan<'a>>,
}

/// A user's new state and the bus events it produced, to be stored together.
struct Plan<'a> {
    expected: Option<u64>,
    state: Vec<u8>,
    outbox: Vec<BusEvent>,
    applied: Vec<&'a str>,
    now: Millis,
}

impl Plan<'_> {
    fn write(&self) -> UserWrite<'_> {
        UserWrite {
            state: &self.state,
            outbox: &self.outbox,
            message_ids: &self.applied,
            now: self.now,
        }
    }
}

impl<S: UserStore, B: Bus, C: Clock> Evaluate<S, B, C> {
    /// Handles one bus event meant for evaluate (others are ignored). Every user in it is
    /// evaluated even if one fails; the first failure is returned (retryable ones first, so
    /// the bus delivers the event again; users already done skip it as duplicates).
    pub async fn handle(&self, event: &BusEvent) -> Result<(), HandlerError> {
        let started = Instant::now();
        let result = match event {
            BusEvent::EventsAccepted(batch) => {
                let mut users: Vec<(&str, Vec<&AcceptedEvent>)> = Vec::new();
                for e in &batch.events {
                    match users.iter_mut().find(|(u, _)| *u == e.user_id) {
                        Some((_, list)) => list.push(e),
                        None => users.push((&e.user_id, vec![e])),
                    }
                }
                let inputs: Vec<(&str, Input<'_>)> = users
                    .iter()
                    .map(|(user, events)| (*user, Input::Events(events)))
                    .collect();
                let mut first = FirstFailure::default();
                let mut applied = 0;
                let outcomes = match self.users(&inputs).await {
                    Ok(outcomes) => outcomes,
                    Err(e) => vec![Err(e)],
                };
                for (i, outcome) in outcomes.into_iter().enumerate() {
                    match outcome {
                        Ok(done) => applied += done.applied,
                        Err(e) => first.note(inputs.get(i).map_or("", |(u, _)| u), e),
                    }
                }
                self.metrics.events_evaluated(applied as u64);
                first.into_result()
            }
            BusEvent::TimerFired(t) => {
                self.timer_lateness(t);
                self.user(&t.user_id, Input::Timer { due: t.due })
                    .await
                    .map(|_| ())
            }
            BusEvent::TimersFired(fired) => {
                let inputs: Vec<(&str, Input<'_>)> = fired
                    .timers
                    .iter()
                    .map(|t| {
                        self.timer_lateness(t);
                        (t.user_id.as_str(), Input::Timer { due: t.due })
                    })
                    .collect();
                let mut first = FirstFailure::default();
                match self.users(&inputs).await {
                    Ok(outcomes) => {
                        for ((user, _), outcome) in inputs.iter().zip(outcomes) {
                            if let Err(e) = outcome {
                                first.note(user, e);
                            }
                        }
                    }
                    Err(e) => first.note("", e),
                }
                first.into_result()
            }
            _ => Ok(()),
        };
        self.metrics
            .handler_latency("evaluate", started.elapsed().as_secs_f64());
        result
    }

    fn timer_lateness(&self, t: &TimerFired) {
        let now = self.clock.now();
        self.metrics
            .timer_lateness((now - t.due).max(0) as f64 / 1000.0);
    }

    /// Evaluates several users' inputs (accepted messages, or fired timers) with one load and
    /// one save for all of them (where the store can), then one publish of everything they
    /// decided (a bus that bills per entry packs their timer changes into one). Users that
    /// lose a race for their state, or have events left unpublished by an earlier crash, go
    /// through [`Evaluate::user`] one by one. The outer error is a failure that stopped the
    /// whole batch (the bus delivers it again; users already done skip it as duplicates).
    pub async fn users(
        &self,
        users: &[(&str, Input<'_>)],
    ) -> Result<Vec<Result<Evaluated, HandlerError>>, HandlerError> {
        let ids: Vec<Vec<&str>> = users
            .iter()
            .map(|(_, input)| match input {
                Input::Events(events) => events.iter().map(|e| e.message_id.as_str()).collect(),
                Input::Timer { .. } => Vec::new(),
            })
            .collect();
        let requests: Vec<LoadRequest<'_>> = users
            .iter()
            .zip(&ids)
            .map(|((user_id, _), ids)| LoadRequest {
                user_id,
                message_ids: ids,
            })
            .collect();
        let loaded = self.store.load_many(&requests).await?;

        let mut results: Vec<Option<Result<Evaluated, HandlerError>>> =
            users.iter().map(|_| None).collect();
        // One by one: events left unpublished by an earlier crash, lost races.
        let mut one_by_one = Vec::new();
        let mut plans: Vec<(usize, Evaluated, Plan<'_>)> = Vec::new();
        for (i, ((user_id, input), stored)) in users.iter().zip(loaded).enumerate() {
            if stored.as_ref().is_some_and(|s| !s.outbox.is_empty()) {
                one_by_one.push(i);
                continue;
            }
            match self.decide(user_id, *input, &ids[i], stored) {
                Ok(Decided {
                    result,
                    write: Some(plan),
                }) => plans.push((i, result, plan)),
                Ok(Decided {
                    result,
                    write: None,
                }) => results[i] = Some(Ok(result)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }

        let saved = {
            let writes: Vec<SaveRequest<'_>> = plans
                .iter()
                .map(|(i, _, plan)| SaveRequest {
                    user_id: users[*i].0,
                    expected: plan.expected,
                    write: plan.write(),
                })
                .collect();
            self.store.save_many(&writes).await?
        };
        let mut outbox = Vec::new();
        let mut clear = Vec::new();
        for ((i, mut result, plan), saved) in plans.into_iter().zip(saved) {
            match saved {
                Ok(version) => {
                    result.wrote = true;
                    result.published = plan.outbox.len();
                    if !S::PUBLISHES_OUTBOX && !plan.outbox.is_empty() {
                        clear.push((users[i].0, version));
                        outbox.extend(plan.outbox);
                    }
                    results[i] = Some(Ok(result));
                }
                Err(StoreError::Conflict(_)) => one_by_one.push(i),
                Err(e) => results[i] = Some(Err(e.into())),
            }
        }
        if !outbox.is_empty() {
            // Stored with the states: if this fails, each user's next input publishes them.
            self.bus.publish(&outbox).await?;
            if let Err(e) = self.store.clear_outboxes(&clear).await {
                // Harmless: the next input publishes the events again and handlers dedupe.
                warn!(users = clear.len(), error = %e, "could not clear the outboxes");
            }
        }
        for i in one_by_one {
            let (user_id, input) = users[i];
            results[i] = Some(self.user(user_id, input).await);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Ok(Evaluated::default())))
            .collect())
    }

    /// Evaluates one user's input: load, apply, save with the outbox, publish.
    pub async fn user(&self, user_id: &str, input: Input<'_>) -> Result<Evaluated, HandlerError> {
        let ids: Vec<&str> = match input {
            Input::Events(events) => events.iter().map(|e| e.message_id.as_str()).collect(),
            Input::Timer { .. } => Vec::new(),
        };
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(user_id, input, &ids).await {
                Err(HandlerError::Store(StoreError::Conflict(_))) if attempt < MAX_ATTEMPTS => {
                    debug!(
                        user_id,
                        attempt, "lost a race for the user's state; retrying"
                    );
                    // Back off a little so two writers of one user stop colliding.
                    tokio::time::sleep(std::time::Duration::from_millis(
                        (attempt * attempt) as u64,
                    ))
                    .await;
                }
                other => return other,
            }
        }
        Err(HandlerError::Contended(user_id.to_string()))
    }

    async fn attempt<'a>(
        &self,
        user_id: &str,
        input: Input<'a>,
        ids: &[&'a str],
    ) -> Result<Evaluated, HandlerError> {
        let mut published = 0;
        let stored = match self.store.load(user_id, ids).await? {
            Some(s) if !s.outbox.is_empty() => {
                // A crash (or a failed publish) left these behind: they go out first.
                self.bus.publish(&s.outbox).await?;
                published = s.outbox.len();
                self.store.clear_outbox(user_id, s.version).await?;
                Some(StoredUser {
                    outbox: Vec::new(),
                    ..s
                })
            }
            other => other,
        };
        let Decided { mut result, write } = self.decide(user_id, input, ids, stored)?;
        result.published += published;
        let Some(plan) = write else {
            return Ok(result);
        };
        let new_version = self
            .store
            .save(user_id, plan.expected, plan.write())
            .await?;
        result.wrote = true;
        result.published += plan.outbox.len();
        if !S::PUBLISHES_OUTBOX && !plan.outbox.is_empty() {
            self.bus.publish(&plan.outbox).await?;
            if let Err(e) = self.store.clear_outbox(user_id, new_version).await {
                // Harmless: the next input publishes the events again and handlers dedupe.
                warn!(user_id, error = %e, "could not clear the outbox");
            }
        }
        Ok(result)
    }

    /// Runs the engine on one user's input over their stored state (whose outbox is empty):
    /// the new state and the bus events it produced, or nothing to write. No I/O.
    fn decide<'a>(
        &self,
        user_id: &str,
        input: Input<'a>,
        ids: &[&'a str],
        stored: Option<StoredUser>,
    ) -> Result<Decided<'a>, HandlerError> {
        let rules = &*self.rules;
        let engine = Engine::new(rules);
        let mut result = Evaluated::default();
        let (mut state, expected, applied_before) = match stored {
            Some(s) => {
                let state =
                    UserState::decode(&s.state, rules).map_err(|e| HandlerError::State {
                        user_id: user_id.to_string(),
                        reason: e.to_string(),
                    })?;
                (state, Some(s.version), s.applied)
            }
            None => (UserState::new(rules), None, Vec::new()),
        };
        let wake_before = engine.next_wake(&state);
        let before = expected.map(|_| state.encode(rules));
        let now = self.clock.now();

        let mut decisions: Vec<Decision> = Vec::new();
        let mut applied: Vec<&'a str> = Vec::new();
        match input {
            Input::Events(events) => {
                let mut fresh: Vec<(&AcceptedEvent, Message)> = Vec::with_capacity(events.len());
                for (e, id) in events.iter().zip(ids) {
                    if applied_before.iter().any(|a| a == id) || applied.contains(id) {
                        result.duplicates += 1;
                        continue;
                    }
                    let msg = Message::from_json(&e.message, None).map_err(|err| {
                        HandlerError::BadEvent {
                            user_id: user_id.to_string(),
                            message_id: e.message_id.clone(),
                            reason: err.to_string(),
                        }
                    })?;
                    applied.push(id);
                    fresh.push((e, msg));
                }
                if fresh.is_empty() {
                    return Ok(Decided {
                        result,
                        write: None,
                    });
                }
                // Apply in time order; messages sharing an instant are decided together.
                fresh.sort_by_key(|(e, _)| e.at);
                let mut i = 0;
                while i < fresh.len() {
                    let at = fresh[i].0.at;
                    let j = fresh[i..]
                        .iter()
                        .position(|(e, _)| e.at != at)
                        .map_or(fresh.len(), |k| i + k);
                    let group: Vec<&Message> = fresh[i..j].iter().map(|(_, m)| m).collect();
                    let outcome = engine.handle_all(&mut state, user_id, &group, at);
                    decisions.extend(outcome.decisions);
                    i = j;
                }
                result.applied = fresh.len();
            }
            Input::Timer { .. } => {
                let outcome = engine.advance(&mut state, user_id, now);
                decisions.extend(outcome.decisions);
            }
        }

        let encoded = state.encode(rules);
        let wake_after = engine.next_wake(&state);
        let timer_input = matches!(input, Input::Timer { .. });
        let unchanged = before.as_deref() == Some(encoded.as_slice())
            && decisions.is_empty()
            && applied.is_empty();
        if unchanged && !(timer_input && wake_after.is_some()) {
            // A stale or early timer: nothing changed and no wake-up is owed.
            return Ok(Decided {
                result,
                write: None,
            });
        }
        let version = expected.unwrap_or(0) + 1;
        let mut outbox: Vec<BusEvent> = Vec::new();
        for d in &decisions {
            if let Decision::Send(send) = d {
                self.metrics.trigger_fired(&send.trigger);
                info!(
                    decision_id = %send.id,
                    user_id,
                    trigger = %send.trigger,
                    channel = send.channel.as_str(),
                    reason = send.reason.map(|r| r.as_str()),
                    "send decided"
                );
                outbox.push(BusEvent::MessageRequested(MessageRequest {
                    send: (**send).clone(),
                }));
            }
        }
        if timer_request_owed(wake_before, wake_after, timer_input) {
            match wake_after {
                Some(due) => outbox.push(BusEvent::DelayRequested(DelayRequest {
                    user_id: user_id.to_string(),
                    due,
                    version,
                })),
                None if wake_before.is_some() => {
                    outbox.push(BusEvent::DelayCancelled(DelayCancel {
                        user_id: user_id.to_string(),
                        version,
                    }))
                }
                None => {}
            }
        }
        Ok(Decided {
            result,
            write: Some(Plan {
                expected,
                state: encoded,
                outbox,
                applied,
                now,
            }),
        })
    }
}

/// Whether evaluate must publish a timer request (or cancel) after moving a user from wake-up
/// `before` to wake-up `after`. The timer store keeps one timer per user, and it is never later
/// than the user's next wake-up:
/// - a fired timer is gone, so after a timer input the next wake-up is always requested;
/// - a wake-up that appears, disappears or moves earlier is requested (or cancelled);
/// - a wake-up that only moves later keeps the timer already set. It fires early, the engine
///   finds nothing due, and the later time is requested then. A rule that pushes a wait back on
///   every event (an idle nudge) so moves the timer about once per wait instead of once per
///   event: one timer write and bus entry saved per event.
fn timer_request_owed(before: Option<Millis>, after: Option<Millis>, timer_input: bool) -> bool {
    match (before, after) {
        _ if timer_input => true,
        (Some(before), Some(after)) => after < before,
        (before, after) => before != after,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::bus::AcceptedEvents;
    use crate::metrics::NoMetrics;

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
    );

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
                }))
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
            message: Message::from_json(&segment, None).unwrap().to_json(),
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
}
