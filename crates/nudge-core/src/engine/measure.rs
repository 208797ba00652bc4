//! What reports count, recorded as the engine goes: trigger starts and cancellations, pending
//! waits, experiment assignments, goal conversions of sends and of assigned users, and
//! engagement with messages. Each becomes a [`Fact`] of the outcome; the state keeps only the
//! open goal windows (bounded). Funnels are `funnels.rs`.
//!
//! A send converts once, when the first goal event within its window arrives; every goal
//! event in the window adds its value. An assigned user converts the same way from their
//! assignment (intention to treat: a user whose wait the goal cancelled still counts, in
//! their arm).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::conditions::{lookup, matches_id};
use super::decision::{Fact, FactKind, Outcome, Send};
use super::{experiment, Engine};
use crate::event::engagement::Engagement;
use crate::rules::compiled::CTrigger;
use crate::state::{
    at_secs, secs, Attribution, Enrollment, UserState, CONVERTED, MAX_ATTRIBUTIONS,
};
use crate::time::Millis;

/// Pending waits per trigger (stable id, count), to report how many changed.
pub(super) type WaitCounts = Vec<(u32, i64)>;

impl Engine<'_> {
    /// The user's arm of an experiment, assigned now if they have none (recorded, and their
    /// goal window opened when the experiment has a goal).
    pub(super) fn assign_arm(
        &self,
        state: &mut UserState,
        user_id: &str,
        ei: usize,
        at: Millis,
        out: &mut Outcome,
    ) -> u8 {
        let (v, new) = experiment::assign(self.rules, state, user_id, ei);
        if new {
            let exp = &self.rules.experiments[ei];
            out.facts.push(Fact {
                at,
                kind: FactKind::Assigned {
                    experiment: exp.id.clone(),
                    variant: experiment::arm_name(exp, v),
                },
            });
            if exp.goal.is_some() {
                state.enrollments.retain(|e| e.experiment != exp.stable_id);
                state
                    .enrollments
                    .push(Enrollment::new(exp.stable_id, v, at));
            }
        }
        v
    }

    /// The arm of the trigger's experiment the user is in, if any (never assigns).
    fn arm_label(&self, state: &UserState, t: &CTrigger) -> Option<Arc<str>> {
        let exp = &self.rules.experiments[t.experiment?];
        let (_, v) = state
            .assignments
            .iter()
            .find(|(id, _)| *id == exp.stable_id)?;
        Some(experiment::arm_name(exp, *v))
    }

    pub(super) fn started(&self, state: &UserState, ti: usize, at: Millis, out: &mut Outcome) {
        let t = &self.rules.triggers[ti];
        out.facts.push(Fact {
            at,
            kind: FactKind::Started {
                trigger: t.id.clone(),
                variant: self.arm_label(state, t),
                channel: t.channel,
            },
        });
    }

    pub(super) fn cancelled(&self, state: &UserState, ti: usize, at: Millis, out: &mut Outcome) {
        let t = &self.rules.triggers[ti];
        out.facts.push(Fact {
            at,
            kind: FactKind::Cancelled {
                trigger: t.id.clone(),
                variant: self.arm_label(state, t),
                channel: t.channel,
            },
        });
    }

    /// A send that went out opens its goal window, if its trigger has a goal.
    pub(super) fn opened_window(&self, state: &mut UserState, ti: usize, send: &Send) {
        let t = &self.rules.triggers[ti];
        if t.goal.is_none() {
            return;
        }
        let Some(variant) = t
            .variant_names
            .iter()
            .position(|v| *v == send.variant)
            .and_then(|i| u8::try_from(i).ok())
            .filter(|i| *i < CONVERTED)
        else {
            return;
        };
        self.close_windows(state, send.at);
        if state.attributions.len() >= MAX_ATTRIBUTIONS {
            state.attributions.remove(0);
        }
        state.attributions.push(Attribution {
            trigger: t.stable_id,
            variant,
            sent: secs(send.at),
        });
    }

    /// Forgets the goal windows that closed before `now` (and those of goals since removed).
    fn close_windows(&self, state: &mut UserState, now: Millis) {
        let r = self.rules;
        state.attributions.retain(|a| {
            let goal = r
                .trigger_by_id
                .get(&a.trigger)
                .and_then(|&ti| r.triggers[ti].goal);
            goal.is_some_and(|g| now <= at_secs(a.sent).saturating_add(g.within.0))
        });
        state.enrollments.retain(|e| {
            let goal = r
                .experiment_by_id
                .get(&e.experiment)
                .and_then(|&ei| r.experiments[ei].goal);
            goal.is_some_and(|g| now <= at_secs(e.since).saturating_add(g.within.0))
        });
    }

    /// An event that is a goal converts the open windows of sends and assignments judged on
    /// it.
    pub(super) fn goal_event(
        &self,
        state: &mut UserState,
        event_id: Option<u32>,
        props: &Map<String, Value>,
        at: Millis,
        out: &mut Outcome,
    ) {
        if state.attributions.is_empty() && state.enrollments.is_empty() {
            return;
        }
        let Some(entry) = event_id.and_then(|i| self.rules.event_entries.get(i as usize)) else {
            return;
        };
        self.close_windows(state, at);
        for &gi in &entry.goals {
            let goal = &self.rules.goals[gi];
            if !matches_id(&goal.event, event_id, props) {
                continue;
            }
            let value = goal
                .value
                .as_ref()
                .and_then(|p| lookup(props, p))
                .map_or(0, thousandths);
            for a in &mut state.attributions {
                let Some(&ti) = self.rules.trigger_by_id.get(&a.trigger) else {
                    continue;
                };
                let t = &self.rules.triggers[ti];
                let sent = at_secs(a.sent);
                if t.goal.is_none_or(|g| g.goal != gi) || at < sent {
                    continue;
                }
                let variant = t.variant_names.get(a.variant_index());
                out.facts.push(Fact {
                    at: sent,
                    kind: FactKind::Converted {
                        trigger: t.id.clone(),
                        variant: variant.cloned().unwrap_or_else(|| "".into()),
                        channel: t.channel,
                        first: !a.converted(),
                        value,
                    },
                });
                a.variant |= CONVERTED;
            }
            for e in &mut state.enrollments {
                let Some(&ei) = self.rules.experiment_by_id.get(&e.experiment) else {
                    continue;
                };
                let exp = &self.rules.experiments[ei];
                let since = at_secs(e.since);
                if exp.goal.is_none_or(|g| g.goal != gi) || at < since {
                    continue;
                }
                out.facts.push(Fact {
                    at: since,
                    kind: FactKind::ExperimentGoal {
                        experiment: exp.id.clone(),
                        variant: experiment::arm_name(exp, e.arm()),
                        first: !e.converted(),
                        value,
                        before: e.value,
                    },
                });
                e.variant |= CONVERTED;
                e.value = e.value.saturating_add(value);
            }
        }
    }

    /// One of nudge's engagement events, counted for the send it names.
    pub(super) fn engaged(
        &self,
        name: &str,
        props: &Map<String, Value>,
        at: Millis,
        out: &mut Outcome,
    ) {
        let Some(engagement) = Engagement::of(name) else {
            return;
        };
        let text = |k: &str| props.get(k).and_then(Value::as_str).map(Arc::<str>::from);
        // Without its trigger the event cannot be counted for one.
        let Some(trigger) = text("trigger") else {
            return;
        };
        out.facts.push(Fact {
            at,
            kind: FactKind::Engaged {
                engagement,
                trigger,
                variant: text("variant").unwrap_or_else(|| "".into()),
                channel: text("channel").unwrap_or_else(|| "".into()),
            },
        });
    }

    /// Pending waits per trigger now, when there are any.
    pub(super) fn wait_counts(&self, state: &UserState) -> WaitCounts {
        let mut counts: WaitCounts = Vec::new();
        for w in &state.waits {
            match counts.iter_mut().find(|(t, _)| *t == w.trigger) {
                Some((_, n)) => *n += 1,
                None => counts.push((w.trigger, 1)),
            }
        }
        counts
    }

    /// Records how the pending waits per trigger changed since `before`.
    pub(super) fn waits_changed(
        &self,
        before: WaitCounts,
        state: &UserState,
        at: Millis,
        out: &mut Outcome,
    ) {
        if before.is_empty() && state.waits.is_empty() {
            return;
        }
        let mut delta = before;
        for (_, n) in &mut delta {
            *n = -*n;
        }
        for w in &state.waits {
            match delta.iter_mut().find(|(t, _)| *t == w.trigger) {
                Some((_, n)) => *n += 1,
                None => delta.push((w.trigger, 1)),
            }
        }
        for (id, n) in delta {
            let Some(&ti) = self.rules.trigger_by_id.get(&id) else {
                continue;
            };
            if n != 0 {
                let t = &self.rules.triggers[ti];
                out.facts.push(Fact {
                    at,
                    kind: FactKind::Waiting {
                        trigger: t.id.clone(),
                        channel: t.channel,
                        delta: n,
                    },
                });
            }
        }
    }
}

/// A goal value in thousandths, so sums are exact; a number or a numeric string, else 0.
fn thousandths(v: &Value) -> i64 {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match x {
        Some(x) if x.is_finite() => {
            (x * 1000.0).round().clamp(i64::MIN as f64, i64::MAX as f64) as i64
        }
        _ => 0,
    }
}
