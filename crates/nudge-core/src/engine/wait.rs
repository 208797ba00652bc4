//! Waits (step 3 of the lifecycle): one pending wait per trigger and `same` key, with a
//! stable timer id so a re-arm moves one timer; sends held by quiet hours wait too (at most
//! [`MAX_HELD_PER_TRIGGER`] per trigger).

use serde_json::{Map, Value};

use super::conditions::{lookup, value_key};
use super::decision::{decision_id, Decision, DecisionId, Outcome};
use super::{Candidate, Engine};
use crate::rules::compiled::CTrigger;
use crate::state::{Scalar, UserState, Wait};
use crate::time::Millis;

impl Engine<'_> {
    /// A started trigger with a `wait` arms its wait (an experiment variant may set how long;
    /// a re-arm moves the pending one); without one, it becomes a send decided at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wait_or_decide(
        &self,
        state: &mut UserState,
        user_id: &str,
        ti: usize,
        key: u32,
        pending: Option<usize>,
        captured: Vec<(String, Scalar)>,
        occurrence: u64,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        let t = &self.rules.triggers[ti];
        // The user enters the experiment when the trigger starts (intention to treat).
        let arm = t
            .experiment
            .map(|ei| (ei, self.assign_arm(state, user_id, ei, at, out)));
        if pending.is_some() {
            // A re-arm: the pending wait ends, a new one starts.
            self.cancelled(state, ti, at, out);
        }
        self.started(state, ti, at, out);
        match t.wait {
            Some(wait) => {
                let wait = match arm {
                    Some((ei, v)) => self.rules.experiments[ei]
                        .variants
                        .get(usize::from(v))
                        .and_then(|v| v.wait)
                        .unwrap_or(wait),
                    None => wait,
                };
                let due = at.saturating_add(wait.0);
                let w = Wait {
                    trigger: t.stable_id,
                    key,
                    due,
                    origin: at,
                    occurrence,
                    props: captured,
                    deferred: false,
                };
                let id = timer_id(user_id, t, &w);
                // A re-arm moves the pending wait: the same timer, due later.
                match pending {
                    Some(i) => state.waits[i] = w,
                    None => state.waits.push(w),
                }
                out.decisions.push(Decision::Wait {
                    id,
                    trigger: t.id.clone(),
                    due,
                    deferred: false,
                });
            }
            None => candidates.push(Candidate {
                trigger: ti,
                key,
                occurrence,
                origin: at,
                props: captured,
            }),
        }
    }
}

/// A wait's timer id. Pending waits have one per (user, trigger, `same` key), so a re-arm
/// moves the same timer (one write for a scheduler, not a delete and a put); sends held by
/// quiet hours have their decision's id.
pub fn timer_id(user_id: &str, t: &CTrigger, w: &Wait) -> DecisionId {
    // Occurrences are 64-bit hashes; this tag keeps pending-wait ids apart from them.
    const PENDING: u64 = 0x7E5D_0000_0000_0000;
    if w.deferred {
        decision_id(user_id, &t.id, w.occurrence)
    } else {
        decision_id(user_id, &t.id, PENDING | u64::from(w.key))
    }
}

/// Most sends one trigger may have held by quiet hours at once; beyond it the send is
/// suppressed with reason `quiet_hours` (keeps state bounded when a trigger fires all night).
pub const MAX_HELD_PER_TRIGGER: usize = 2;

pub(super) fn held_sends(state: &UserState, t: &CTrigger) -> usize {
    state
        .waits
        .iter()
        .filter(|w| w.deferred && w.trigger == t.stable_id)
        .count()
}

/// The pending-wait key: the `same` properties' values (one wait per distinct value).
pub(super) fn wait_key(t: &CTrigger, props: &Map<String, Value>) -> u32 {
    let mut key: u32 = 0;
    for c in &t.cancel_on {
        for p in &c.same {
            let k = lookup(props, p).map(value_key).unwrap_or(0);
            key = key.rotate_left(5) ^ k;
        }
    }
    key
}
