//! Cancelling waits by event (step 4 of the lifecycle): an event matching a trigger's
//! `cancel_on` entry cancels its pending waits; with `same`, only those whose triggering event
//! had equal values for those properties.

use serde_json::{Map, Value};

use super::conditions::{lookup, matches_id, value_key};
use super::decision::{CancelReason, Decision, Outcome};
use super::wait::timer_id;
use super::Engine;
use crate::rules::compiled::Reach;
use crate::state::UserState;
use crate::time::Millis;

impl Engine<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cancel_by_event(
        &self,
        state: &mut UserState,
        user_id: &str,
        event_id: Option<u32>,
        props: &Map<String, Value>,
        reach: Reach,
        at: Millis,
        out: &mut Outcome,
    ) {
        for ti in self.rules.cancels_reached(event_id, reach) {
            let t = &self.rules.triggers[ti];
            if !state.waits.iter().any(|w| w.trigger == t.stable_id) {
                continue;
            }
            for c in &t.cancel_on {
                if !matches_id(&c.event, event_id, props) {
                    continue;
                }
                let same: Vec<(String, Option<u32>)> = c
                    .same
                    .iter()
                    .map(|p| {
                        (
                            p.join("."),
                            lookup(props, p).filter(|v| !v.is_null()).map(value_key),
                        )
                    })
                    .collect();
                let mut i = 0;
                while i < state.waits.len() {
                    let w = &state.waits[i];
                    let hit = w.trigger == t.stable_id
                        && same.iter().all(|(path, key)| {
                            let captured = w
                                .props
                                .iter()
                                .find(|(k, _)| k == path)
                                .map(|(_, v)| v.to_json());
                            let captured = captured.filter(|v| !v.is_null()).map(|v| value_key(&v));
                            captured == *key
                        });
                    if hit {
                        let w = state.waits.remove(i);
                        out.decisions.push(Decision::Cancel {
                            id: timer_id(user_id, t, &w),
                            trigger: t.id.clone(),
                            reason: CancelReason::Event,
                        });
                        self.cancelled(state, ti, at, out);
                    } else {
                        i += 1;
                    }
                }
            }
        }
    }
}
