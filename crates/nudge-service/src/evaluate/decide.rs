//! What evaluate decides for one user, with no I/O: the stored state decoded, each new
//! message applied in time order (those sharing an instant together), or due waits fired; the
//! new state and the bus events it owes (sends, and a timer request or cancel when the next
//! wake-up moved).

use nudge_core::engine::{Decision, Engine, Fact, FactKind};
use nudge_core::event::Message;
use nudge_core::insights::Deltas;
use nudge_core::state::UserState;
use nudge_core::time::Millis;
use tracing::info;

use super::{Decided, Evaluate, Evaluated, Input, Plan};
use crate::bus::{AcceptedEvent, BusEvent, DelayCancel, DelayRequest, MessageRequest};
use crate::error::HandlerError;
use crate::ports::{Bus, Clock, StoredUser, UserStore};

impl<S: UserStore, B: Bus, C: Clock> Evaluate<S, B, C> {
    /// Runs the engine on one user's input over their stored state (whose outbox is empty):
    /// the new state and the bus events it produced, or nothing to write. No I/O.
    pub(super) fn decide<'a>(
        &self,
        user_id: &str,
        input: Input<'a>,
        ids: &'a [&'a str],
        stored: Option<StoredUser>,
    ) -> Result<Decided<'a>, HandlerError> {
        let rules = &*self.rules;
        let engine = Engine::new(rules);
        let mut result = Evaluated::default();
        let (mut state, expected, applied_before) = match stored {
            Some(s) => {
                let state =
                    UserState::decode(&s.state, rules).map_err(|source| HandlerError::State {
                        user_id: user_id.to_string(),
                        source,
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
        let mut counts = Deltas::default();
        match input {
            Input::Events(events) => {
                let mut fresh: Vec<&AcceptedEvent> = Vec::with_capacity(events.len());
                for (e, id) in events.iter().zip(ids) {
                    if applied_before.iter().any(|a| a == id) || applied.contains(id) {
                        result.duplicates += 1;
                        continue;
                    }
                    applied.push(id);
                    fresh.push(e);
                }
                if fresh.is_empty() {
                    return Ok(Decided {
                        result,
                        write: None,
                    });
                }
                // Apply in time order; messages sharing an instant are decided together.
                fresh.sort_by_key(|e| e.at);
                let mut i = 0;
                while i < fresh.len() {
                    let at = fresh[i].at;
                    let j = fresh[i..]
                        .iter()
                        .position(|e| e.at != at)
                        .map_or(fresh.len(), |k| i + k);
                    let group: Vec<&Message> = fresh[i..j].iter().map(|e| &e.message).collect();
                    let outcome = engine.handle_all(&mut state, user_id, &group, at);
                    counts.record(user_id, &outcome, at);
                    self.observe(&outcome.facts);
                    decisions.extend(outcome.decisions);
                    i = j;
                }
                // nudge's own engagement events (deliveries, clicks) were never accepted by
                // ingest: the metric compares product events evaluated with those accepted.
                result.applied = fresh.iter().filter(|e| !e.message.is_engagement()).count();
            }
            Input::Timer { .. } => {
                let outcome = engine.advance(&mut state, user_id, now);
                counts.record(user_id, &outcome, now);
                self.observe(&outcome.facts);
                decisions.extend(outcome.decisions);
            }
        }

        let encoded = state.encode(rules);
        let wake_after = engine.next_wake(&state);
        let timer_input = matches!(input, Input::Timer { .. });
        let unchanged = before.as_deref() == Some(encoded.as_slice())
            && decisions.is_empty()
            && applied.is_empty()
            && counts.is_empty();
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
                self.metrics.trigger_fired(&send.trigger, &send.variant);
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
                counts,
            }),
        })
    }
}

impl<S: UserStore, B: Bus, C: Clock> Evaluate<S, B, C> {
    /// Conversions and engagement as metrics (the reports count everything else).
    fn observe(&self, facts: &[Fact]) {
        for f in facts {
            match &f.kind {
                FactKind::Converted {
                    trigger,
                    variant,
                    first: true,
                    ..
                } => self.metrics.trigger_converted(trigger, variant),
                FactKind::Engaged {
                    engagement,
                    trigger,
                    variant,
                    ..
                } => self
                    .metrics
                    .message_engaged(trigger, variant, engagement.as_str()),
                _ => {}
            }
        }
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
pub(super) fn timer_request_owed(
    before: Option<Millis>,
    after: Option<Millis>,
    timer_input: bool,
) -> bool {
    match (before, after) {
        _ if timer_input => true,
        (Some(before), Some(after)) => after < before,
        (before, after) => before != after,
    }
}
