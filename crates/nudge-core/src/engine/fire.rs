//! Waits falling due (step 5 of the lifecycle): in time order, due segment wake-ups first,
//! then each due wait re-checked at fire time (`once` still unspent, `check` still true;
//! `exit` true records the send as suppressed with reason `exit_condition`) before the rest
//! go through the guards.

use super::conditions::{Ctx, Props};
use super::decision::{CancelReason, Decision, Outcome, Reason};
use super::once::{once_key, spent};
use super::wait::timer_id;
use super::{Candidate, Engine};
use crate::state::{UserState, Wait};
use crate::time::Millis;

impl Engine<'_> {
    pub(super) fn advance_into(
        &self,
        state: &mut UserState,
        user_id: &str,
        upto: Millis,
        out: &mut Outcome,
    ) {
        // Each round handles one instant; the bound keeps a pathological rule set finite.
        for _ in 0..10_000 {
            let Some(now) = self.next_wake(state).filter(|t| *t <= upto) else {
                return;
            };
            let mut due: Vec<Wait> = Vec::new();
            state.waits.retain(|w| {
                if w.due == now {
                    due.push(w.clone());
                    false
                } else {
                    true
                }
            });
            due.sort_by_key(|w| {
                (
                    self.rules
                        .trigger_by_id
                        .get(&w.trigger)
                        .copied()
                        .unwrap_or(usize::MAX),
                    w.origin,
                    w.occurrence,
                )
            });
            let mut candidates = Vec::new();
            // Segments first, so that conditions below read membership as of `now`. Waits
            // firing change no segment input; only a due segment wake re-evaluates them.
            self.refresh_segments(state, user_id, now, &mut candidates, out);
            if state.wake_at == Some(now) {
                state.wake_at = None;
                self.segment_transitions(state, user_id, now, None, &mut candidates, out);
            }
            for w in due {
                let Some(&ti) = self.rules.trigger_by_id.get(&w.trigger) else {
                    continue;
                };
                let t = &self.rules.triggers[ti];
                let id = timer_id(user_id, t, &w);
                let ctx = Ctx {
                    rules: self.rules,
                    state,
                    now,
                    props: Props::Captured(&w.props),
                };
                let fails_check = t.check.as_ref().is_some_and(|c| !ctx.holds(c));
                let exits = t.exit.as_ref().is_some_and(|c| ctx.holds(c));
                if spent(
                    t,
                    &state.triggers[ti],
                    state.sessions,
                    once_key(t, &w.props),
                ) || fails_check
                {
                    out.decisions.push(Decision::Cancel {
                        id,
                        trigger: t.id.clone(),
                        reason: CancelReason::Condition,
                    });
                    self.cancelled(state, ti, now, out);
                    continue;
                }
                let cand = Candidate {
                    trigger: ti,
                    key: w.key,
                    occurrence: w.occurrence,
                    origin: w.origin,
                    props: w.props,
                };
                if exits {
                    let send = self.make_send(state, user_id, &cand, now, out);
                    self.suppress(state, send, ti, &cand, Reason::ExitCondition, true, out);
                    continue;
                }
                candidates.push(cand);
            }
            self.resolve(state, user_id, candidates, now, out);
        }
    }
}
