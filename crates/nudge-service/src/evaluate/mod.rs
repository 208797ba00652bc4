//! evaluate: the only writer of user state. For accepted events and fired timers it loads the
//! user's state, applies each messageId once, runs the engine, and stores the new state
//! together with the bus events it produced (the outbox) before publishing them, so a crash
//! anywhere loses no decision: the next delivery of the same input, or the user's next input,
//! publishes what was left unpublished.

use std::sync::Arc;
use std::time::Instant;

use nudge_core::insights::Deltas;
use nudge_core::rules::CompiledRules;
use nudge_core::time::Millis;
use tracing::{debug, warn};

use crate::bus::{AcceptedEvent, BusEvent, TimerFired};
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
    /// Product messages applied (those not applied before; nudge's engagement events aside).
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
    counts: Deltas,
}

impl Plan<'_> {
    fn write(&self) -> UserWrite<'_> {
        UserWrite {
            state: &self.state,
            outbox: &self.outbox,
            message_ids: &self.applied,
            now: self.now,
            counts: &self.counts,
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
    /// lose a race for their state are evaluated again, in a smaller round, up to
    /// [`MAX_ATTEMPTS`] times. The outer error is a failure that stopped the whole batch (the
    /// bus delivers it again; users already done skip it as duplicates).
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
        let mut results: Vec<Option<Result<Evaluated, HandlerError>>> =
            users.iter().map(|_| None).collect();
        let mut round: Vec<usize> = (0..users.len()).collect();
        for attempt in 1..=MAX_ATTEMPTS {
            let lost = self.round(users, &ids, &round, &mut results).await?;
            if lost.is_empty() {
                break;
            }
            if attempt == MAX_ATTEMPTS {
                for i in lost {
                    results[i] = Some(Err(HandlerError::Contended(users[i].0.to_string())));
                }
                break;
            }
            debug!(
                users = lost.len(),
                attempt, "lost a race for users' state; evaluating them again"
            );
            // Back off a little so two writers of one user stop colliding.
            tokio::time::sleep(std::time::Duration::from_millis((attempt * attempt) as u64)).await;
            round = lost;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Ok(Evaluated::default())))
            .collect())
    }

    /// Evaluates one user's input: [`Evaluate::users`] for one.
    pub async fn user(&self, user_id: &str, input: Input<'_>) -> Result<Evaluated, HandlerError> {
        let mut results = self.users(&[(user_id, input)]).await?;
        results.pop().unwrap_or_else(|| Ok(Evaluated::default()))
    }

    /// One round over the users at indices `which`: load, publish what an earlier crash left
    /// unpublished, decide, save with the outboxes, publish them. Returns the users that lost
    /// a race for their state.
    async fn round<'a>(
        &self,
        users: &[(&str, Input<'a>)],
        ids: &'a [Vec<&'a str>],
        which: &[usize],
        results: &mut [Option<Result<Evaluated, HandlerError>>],
    ) -> Result<Vec<usize>, HandlerError> {
        let requests: Vec<LoadRequest<'_>> = which
            .iter()
            .map(|&i| LoadRequest {
                user_id: users[i].0,
                message_ids: &ids[i],
            })
            .collect();
        let loaded = self.store.load_many(&requests).await?;

        // A crash (or a failed publish) left these behind: they go out before anything new.
        let mut published = vec![0; which.len()];
        let mut leftover = Vec::new();
        let mut leftover_of = Vec::new();
        let loaded: Vec<Option<StoredUser>> = loaded
            .into_iter()
            .enumerate()
            .map(|(k, stored)| match stored {
                Some(s) if !s.outbox.is_empty() => {
                    published[k] = s.outbox.len();
                    leftover_of.push((users[which[k]].0, s.version));
                    leftover.extend(s.outbox);
                    Some(StoredUser {
                        outbox: Vec::new(),
                        ..s
                    })
                }
                other => other,
            })
            .collect();
        if !leftover.is_empty() {
            self.bus.publish(&leftover).await?;
            self.store.clear_outboxes(&leftover_of).await?;
        }
        // Counter changes a crash left unapplied: applied before a new save replaces them.
        let loaded: Vec<Option<StoredUser>> = {
            let mut out = Vec::with_capacity(loaded.len());
            for (k, stored) in loaded.into_iter().enumerate() {
                out.push(match stored {
                    Some(s) if !s.counts.is_empty() => {
                        let user = users[which[k]].0;
                        self.store.apply_counts(user, s.version, &s.counts).await?;
                        Some(StoredUser {
                            counts: Deltas::default(),
                            ..s
                        })
                    }
                    other => other,
                });
            }
            out
        };

        let mut plans: Vec<(usize, Evaluated, Plan<'a>)> = Vec::new();
        for ((k, &i), stored) in which.iter().enumerate().zip(loaded) {
            match self.decide(users[i].0, users[i].1, &ids[i], stored) {
                Ok(Decided { mut result, write }) => {
                    result.published += published[k];
                    match write {
                        Some(plan) => plans.push((i, result, plan)),
                        None => results[i] = Some(Ok(result)),
                    }
                }
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
        let mut lost = Vec::new();
        let mut outbox = Vec::new();
        let mut clear = Vec::new();
        for ((i, mut result, plan), saved) in plans.into_iter().zip(saved) {
            match saved {
                Ok(version) => {
                    result.wrote = true;
                    if !S::COUNTS_IN_SAVE && !plan.counts.is_empty() {
                        if let Err(e) = self
                            .store
                            .apply_counts(users[i].0, version, &plan.counts)
                            .await
                        {
                            // Kept with the state: the user's next input applies them.
                            warn!(user_id = users[i].0, error = %e, "could not apply report counts yet");
                        }
                    }
                    result.published += plan.outbox.len();
                    if !S::PUBLISHES_OUTBOX && !plan.outbox.is_empty() {
                        clear.push((users[i].0, version));
                        outbox.extend(plan.outbox);
                    }
                    results[i] = Some(Ok(result));
                }
                Err(StoreError::Conflict(_)) => lost.push(i),
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
        Ok(lost)
    }
}

mod decide;
#[cfg(test)]
mod tests;
