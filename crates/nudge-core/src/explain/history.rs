//! The trigger's past for the user: its decisions as steps, and the waits still pending.

use super::setup::matcher_text;
use super::{Evidence, Pending, Step};
use crate::engine::conditions::matches;
use crate::engine::decision::DecisionId;
use crate::engine::{CancelReason, Decision};
use crate::rules::compiled::{COn, CTrigger};
use crate::state::Wait;
use crate::time::Millis;

/// Every decision the user got from the trigger, in order.
pub(super) fn steps(e: &Evidence<'_>, t: &CTrigger) -> Vec<Step> {
    // A `Wait` whose timer is already pending moves that timer: the engine's re-arm. It
    // reads as the pending wait cancelled by the new event, then the new wait.
    let mut armed: Vec<DecisionId> = Vec::new();
    let mut decisions: Vec<Step> = Vec::new();
    for (at, d) in e.decisions.iter() {
        match d {
            Decision::Wait { id, trigger, .. } if *trigger == t.id => {
                if armed.contains(id) {
                    let rearm = Decision::Cancel {
                        id: *id,
                        trigger: trigger.clone(),
                        reason: CancelReason::Rearm,
                    };
                    decisions.extend(step(e, t, *at, &rearm));
                } else {
                    armed.push(*id);
                }
            }
            Decision::Cancel { id, trigger, .. } if *trigger == t.id => armed.retain(|p| p != id),
            // A decided send means its wait fell due: later waits are new ones.
            Decision::Send(s) if s.trigger == t.id => armed.clear(),
            _ => {}
        }
        decisions.extend(step(e, t, *at, d));
    }
    decisions
}

/// The decision as a step of this trigger, if it is one.
fn step(e: &Evidence<'_>, t: &CTrigger, at: Millis, d: &Decision) -> Option<Step> {
    match d {
        Decision::Send(s) if s.trigger == t.id => Some(match s.reason {
            None => Step::Sent {
                at: s.at,
                message: s.message.to_string(),
                variant: s.variant.to_string(),
                experiment: s.experiment.as_deref().map(str::to_string),
            },
            Some(reason) => Step::Suppressed { at: s.at, reason },
        }),
        Decision::Wait {
            trigger,
            due,
            deferred,
            ..
        } if *trigger == t.id => Some(Step::Wait {
            at,
            due: *due,
            deferred: *deferred,
        }),
        Decision::Cancel {
            trigger, reason, ..
        } if *trigger == t.id => {
            let by = match reason {
                CancelReason::Event => e
                    .activities
                    .iter()
                    .rev()
                    .filter(|a| a.at == at)
                    .find(|a| {
                        t.cancel_on
                            .iter()
                            .any(|c| matches(&c.event, &a.name, &a.properties))
                    })
                    .map(|a| format!("`{}`", a.name)),
                CancelReason::Rearm => match &t.on {
                    COn::Event(m) => e
                        .activities
                        .iter()
                        .rev()
                        .filter(|a| a.at == at)
                        .find(|a| matches(m, &a.name, &a.properties))
                        .map(|a| format!("`{}`", a.name)),
                    _ => None,
                },
                CancelReason::Condition => None,
            };
            Some(Step::Cancelled {
                at,
                reason: *reason,
                by,
            })
        }
        _ => None,
    }
}

/// A wait in state, with what armed it.
pub(super) fn pending(e: &Evidence<'_>, t: &CTrigger, w: &Wait) -> Pending {
    let by = match &t.on {
        COn::Event(m) => e
            .activities
            .iter()
            .rev()
            .filter(|a| a.at == w.origin)
            .find(|a| matches(m, &a.name, &a.properties))
            .map(|a| format!("`{}`", a.name))
            .unwrap_or_else(|| matcher_text(m)),
        COn::SegmentEntered(s) => format!("entering segment {}", e.rules.segments[*s].id),
        COn::SegmentExited(s) => format!("leaving segment {}", e.rules.segments[*s].id),
    };
    Pending {
        due: w.due,
        armed_at: w.origin,
        by,
        deferred: w.deferred,
        properties: w
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    }
}
