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

use crate::bus::{AcceptedEvent, BusEvent, DelayCancel, DelayRequest, MessageRequest};
use crate::error::HandlerError;
use crate::metrics::Metrics;
use crate::ports::{Bus, Clock, StoreError, UserStore, UserWrite};

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
                let mut first: Option<HandlerError> = None;
                let mut applied = 0;
                for (user, events) in &users {
                    match self.user(user, Input::Events(events)).await {
                        Ok(done) => applied += done.applied,
                        Err(e) => {
                            warn!(user_id = %user, error = %e, retryable = e.is_retryable(), "evaluate failed");
                            let replace = match &first {
                                None => true,
                                Some(f) => !f.is_retryable() && e.is_retryable(),
                            };
                            if replace {
                                first = Some(e);
                            }
                        }
                    }
                }
                self.metrics.events_evaluated(applied as u64);
                first.map_or(Ok(()), Err)
            }
            BusEvent::TimerFired(t) => {
                let now = self.clock.now();
                self.metrics
                    .timer_lateness((now - t.due).max(0) as f64 / 1000.0);
                self.user(&t.user_id, Input::Timer { due: t.due })
                    .await
                    .map(|_| ())
            }
            _ => Ok(()),
        };
        self.metrics
            .handler_latency("evaluate", started.elapsed().as_secs_f64());
        result
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

    async fn attempt(
        &self,
        user_id: &str,
        input: Input<'_>,
        ids: &[&str],
    ) -> Result<Evaluated, HandlerError> {
        let rules = &*self.rules;
        let engine = Engine::new(rules);
        let stored = self.store.load(user_id, ids).await?;
        let mut result = Evaluated::default();
        let (mut state, expected, applied_before) = match stored {
            Some(s) => {
                if !s.outbox.is_empty() {
                    // A crash (or a failed publish) left these behind: they go out first.
                    self.bus.publish(&s.outbox).await?;
                    result.published += s.outbox.len();
                    self.store.clear_outbox(user_id, s.version).await?;
                }
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
        let mut applied_ids: Vec<&str> = Vec::new();
        match input {
            Input::Events(events) => {
                let mut fresh: Vec<(&AcceptedEvent, Message)> = Vec::with_capacity(events.len());
                for e in events {
                    let id = e.message_id.as_str();
                    if applied_before.iter().any(|a| a == id) || applied_ids.contains(&id) {
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
                    applied_ids.push(id);
                    fresh.push((e, msg));
                }
                if fresh.is_empty() {
                    return Ok(result);
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
            && applied_ids.is_empty();
        if unchanged && !(timer_input && wake_after.is_some()) {
            // A stale or early timer: nothing changed and no wake-up is owed.
            return Ok(result);
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
        let new_version = self
            .store
            .save(
                user_id,
                expected,
                UserWrite {
                    state: &encoded,
                    outbox: &outbox,
                    message_ids: &applied_ids,
                    now,
                },
            )
            .await?;
        result.wrote = true;
        if !outbox.is_empty() {
            self.bus.publish(&outbox).await?;
            result.published += outbox.len();
            if let Err(e) = self.store.clear_outbox(user_id, new_version).await {
                // Harmless: the next input publishes the events again and handlers dedupe.
                warn!(user_id, error = %e, "could not clear the outbox");
            }
        }
        Ok(result)
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
    use crate::metrics::NoMetrics;
    use crate::ports::StoredUser;

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

    /// Users' stored records, in memory.
    #[derive(Default)]
    struct MemStore(Mutex<HashMap<String, Record>>);

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

    #[derive(Default)]
    struct Recorded(Mutex<Vec<BusEvent>>);

    impl Bus for Recorded {
        async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
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
        let segment = json!({
            "type": "track", "userId": "u1", "event": event, "messageId": format!("m{n}"),
            "timestamp": nudge_core::time::format_instant(at),
        });
        AcceptedEvent {
            user_id: "u1".into(),
            message_id: format!("m{n}"),
            at,
            received_at: at,
            message: Message::from_json(&segment, None).unwrap().to_json(),
        }
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
