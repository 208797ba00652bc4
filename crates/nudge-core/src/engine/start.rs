//! A trigger's start and its gating (steps 1 and 2 of the lifecycle in
//! docs/rule-language.md): an event matching `on` (or a segment entered or left) starts the
//! trigger unless `once` is spent or `if` fails; a `rearm` cancels the pending wait first.
//! What follows (a wait, or a send decided at once) is in `wait.rs`.

use serde_json::{Map, Value};

use super::conditions::{lookup, matches_id, value_key, Ctx, Props};
use super::decision::{CancelReason, Decision, Outcome};
use super::once::spent;
use super::wait::{timer_id, wait_key};
use super::{Candidate, Engine};
use crate::event::Message;
use crate::rules::compiled::{COn, Reach};
use crate::state::{Scalar, UserState};
use crate::time::Millis;

impl Engine<'_> {
    /// Starts every trigger whose `on` this event matches.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_triggers(
        &self,
        state: &mut UserState,
        user_id: &str,
        event_id: Option<u32>,
        msg: &Message,
        id_hash: u64,
        at: Millis,
        reach: Reach,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        for ti in self.rules.triggers_reached(event_id, reach) {
            let COn::Event(m) = &self.rules.triggers[ti].on else {
                continue;
            };
            if matches_id(m, event_id, &msg.properties) {
                self.arm(
                    state,
                    user_id,
                    ti,
                    &msg.properties,
                    id_hash,
                    at,
                    candidates,
                    out,
                );
            }
        }
    }

    /// A trigger's start: gate by once/`if` (a blocked `rearm` still ends the pending wait),
    /// then wait or become a candidate now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn arm(
        &self,
        state: &mut UserState,
        user_id: &str,
        ti: usize,
        props: &Map<String, Value>,
        occurrence: u64,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        let t = &self.rules.triggers[ti];
        let key = wait_key(t, props);
        // The pending wait of this trigger and key, if any (sends held by quiet hours are
        // not pending waits: they already fell due).
        let pending = match t.wait {
            Some(_) => state
                .waits
                .iter()
                .position(|w| w.trigger == t.stable_id && w.key == key && !w.deferred),
            None => None,
        };
        let once = t
            .once_path
            .as_ref()
            .map(|p| lookup(props, p).map_or_else(|| value_key(&Value::Null), value_key));
        let blocked = spent(t, &state.triggers[ti], state.sessions, once)
            || t.when.as_ref().is_some_and(|w| {
                let ctx = Ctx {
                    rules: self.rules,
                    state,
                    now: at,
                    props: Props::Event(props),
                };
                !ctx.holds(w)
            });
        if blocked {
            // A re-arming event that does not start the trigger still ends the pending wait.
            if let (true, Some(i)) = (t.rearm, pending) {
                let w = state.waits.swap_remove(i);
                self.cancelled(state, ti, at, out);
                out.decisions.push(Decision::Cancel {
                    id: timer_id(user_id, t, &w),
                    trigger: t.id.clone(),
                    reason: CancelReason::Rearm,
                });
            }
            return;
        }
        if pending.is_some() && !t.rearm {
            // Keep the first wait: a new triggering event does not restart it.
            return;
        }
        // Only now, with the trigger started, keep what rules and templates read later.
        let captured: Vec<(String, Scalar)> = t
            .captured
            .iter()
            .zip(&t.captured_paths)
            .filter_map(|(p, path)| lookup(props, path).map(|v| (p.clone(), Scalar::from_json(v))))
            .collect();
        self.wait_or_decide(
            state, user_id, ti, key, pending, captured, occurrence, at, candidates, out,
        );
    }
}
