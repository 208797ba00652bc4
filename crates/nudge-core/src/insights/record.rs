//! What one engine outcome adds to the counters: events and the user seen (by hour), each
//! send or suppression, and every fact (starts, cancellations, conversions, assignments,
//! funnel steps, engagement), each at the hour it belongs to. The changes go to a [`Counts`]:
//! [`Deltas`](super::Deltas) for a store, which applies them in the same write as the state
//! that produced them, or a [`Tally`](super::Tally) that sums them straight away (`nudge
//! report`, where a map of changes per input was a tenth of a replay's time).

use std::sync::Arc;

use super::histogram::bucket;
use super::key::{blank, hour_of, shared, Field, Key, Scope};
use super::sketch::{observe, Observation};
use crate::engine::{Fact, FactKind, Outcome, Reason, Send};
use crate::event::engagement::Engagement;
use crate::rules::model::Channel;
use crate::time::Millis;

/// Where counter changes go.
pub trait Counts {
    /// `n` more of `key` at the hour of `at`.
    fn add(&mut self, key: Key, at: Millis, n: i64);
    /// `n` more events applied at the hour of `at` (the counter every input changes).
    fn events(&mut self, at: Millis, n: i64) {
        self.add(
            Key::new(Scope::Totals, blank(), blank(), blank(), Field::Events),
            at,
            n,
        );
    }
    /// Pending waits of a trigger on a channel changed by `n` (a gauge, not by hour).
    fn waiting(&mut self, trigger: &Arc<str>, channel: &str, n: i64);
    /// A user seen in `hour`.
    fn user(&mut self, hour: i64, o: Observation);
}

/// What `out` (for `user_id`, its input at `at`) adds.
pub fn record(counts: &mut impl Counts, user_id: &str, out: &Outcome, at: Millis) {
    if out.applied > 0 {
        counts.events(at, i64::from(out.applied));
        counts.user(hour_of(at), observe(user_id));
    }
    for s in out.sends() {
        send(counts, &Counted::of(s), false);
    }
    for f in &out.facts {
        fact(counts, &f.kind, f.at);
    }
}

/// What counting needs of a send.
#[derive(Debug, Clone)]
pub struct Counted {
    trigger: Arc<str>,
    variant: Arc<str>,
    channel: Channel,
    reason: Option<Reason>,
    at: Millis,
    /// Triggering event to send.
    latency: Millis,
}

impl Counted {
    pub fn of(s: &Send) -> Counted {
        Counted {
            trigger: s.trigger.clone(),
            variant: s.variant.clone(),
            channel: s.channel,
            reason: s.reason,
            at: s.at,
            latency: (s.at - s.context.origin).max(0),
        }
    }
}

/// A send's counters; with `delivered`, it counts as delivered too (a replay sends nothing:
/// it counts sends as the outbox and the inbox would deliver them).
fn send(counts: &mut impl Counts, s: &Counted, delivered: bool) {
    let key = |field| {
        Key::new(
            Scope::Trigger,
            s.trigger.clone(),
            s.variant.clone(),
            shared(s.channel.as_str()),
            field,
        )
    };
    match s.reason {
        Some(r) => counts.add(key(Field::Suppressed(shared(r.as_str()))), s.at, 1),
        None => {
            counts.add(key(Field::Sent), s.at, 1);
            counts.add(key(Field::Latency(bucket(s.latency))), s.at, 1);
            if delivered {
                counts.add(key(Field::Delivered), s.at, 1);
            }
        }
    }
}

/// What an outcome adds, taken apart from it, to be counted elsewhere (on a thread of its
/// own in a long replay), counting its sends as delivered.
#[derive(Debug)]
pub struct Countable {
    user: Observation,
    at: Millis,
    applied: u32,
    sends: Vec<Counted>,
    facts: Vec<Fact>,
}

impl Countable {
    /// Takes `out`'s facts; its decisions stay.
    pub fn take(user_id: &str, out: &mut Outcome, at: Millis) -> Countable {
        Countable {
            user: observe(user_id),
            at,
            applied: out.applied,
            sends: out.sends().map(Counted::of).collect(),
            facts: std::mem::take(&mut out.facts),
        }
    }

    /// Adds it to `counts`.
    pub fn record(&self, counts: &mut impl Counts) {
        if self.applied > 0 {
            counts.events(self.at, i64::from(self.applied));
            counts.user(hour_of(self.at), self.user);
        }
        for s in &self.sends {
            send(counts, s, true);
        }
        for f in &self.facts {
            fact(counts, &f.kind, f.at);
        }
    }
}

/// Counts every send of `out` as delivered (a replay, which sends nothing, does this as
/// the outbox and the inbox would deliver them).
pub fn assume_delivered(counts: &mut impl Counts, out: &Outcome) {
    for s in out.sends().filter(|s| s.reason.is_none()) {
        let key = Key::new(
            Scope::Trigger,
            s.trigger.clone(),
            s.variant.clone(),
            shared(s.channel.as_str()),
            Field::Delivered,
        );
        counts.add(key, s.at, 1);
    }
}

fn fact(counts: &mut impl Counts, kind: &FactKind, at: Millis) {
    let trigger = |t: &Arc<str>, v: Option<&Arc<str>>, ch: Arc<str>, field| {
        Key::new(
            Scope::Trigger,
            t.clone(),
            v.cloned().unwrap_or_else(blank),
            ch,
            field,
        )
    };
    match kind {
        FactKind::Started {
            trigger: t,
            variant,
            channel,
        } => counts.add(
            trigger(
                t,
                variant.as_ref(),
                shared(channel.as_str()),
                Field::Started,
            ),
            at,
            1,
        ),
        FactKind::Cancelled {
            trigger: t,
            variant,
            channel,
        } => counts.add(
            trigger(
                t,
                variant.as_ref(),
                shared(channel.as_str()),
                Field::Cancelled,
            ),
            at,
            1,
        ),
        FactKind::Waiting {
            trigger: t,
            channel,
            delta,
        } => {
            counts.waiting(t, channel.as_str(), *delta);
        }
        FactKind::Converted {
            trigger: t,
            variant,
            channel,
            first,
            value,
        } => {
            if *first {
                counts.add(
                    trigger(t, Some(variant), shared(channel.as_str()), Field::Converted),
                    at,
                    1,
                );
            }
            counts.add(
                trigger(t, Some(variant), shared(channel.as_str()), Field::Value),
                at,
                *value,
            );
        }
        FactKind::Assigned {
            experiment,
            variant,
        } => counts.add(
            Key::new(
                Scope::Experiment,
                experiment.clone(),
                variant.clone(),
                blank(),
                Field::Assigned,
            ),
            at,
            1,
        ),
        FactKind::ExperimentGoal {
            experiment,
            variant,
            first,
            value,
            before,
        } => {
            let key = |field| {
                Key::new(
                    Scope::Experiment,
                    experiment.clone(),
                    variant.clone(),
                    blank(),
                    field,
                )
            };
            if *first {
                counts.add(key(Field::Converted), at, 1);
            }
            counts.add(key(Field::Value), at, *value);
            if *value != 0 {
                counts.add(key(Field::ValueSquares), at, square_delta(*before, *value));
            }
        }
        FactKind::FunnelStep {
            funnel,
            step,
            breakdown,
            after,
        } => {
            let key = |field| {
                Key::new(
                    Scope::Funnel,
                    funnel.clone(),
                    breakdown.clone().unwrap_or_else(blank),
                    step.to_string(),
                    field,
                )
            };
            counts.add(key(Field::Users), at, 1);
            if let Some(after) = after {
                counts.add(key(Field::FromPrevious(bucket(*after))), at, 1);
            }
        }
        FactKind::Engaged {
            engagement,
            trigger: t,
            variant,
            channel,
        } => {
            let field = match engagement {
                Engagement::Delivered => Field::Delivered,
                Engagement::Failed => Field::Failed,
                Engagement::Opened => Field::Opened,
                Engagement::Clicked => Field::Clicked,
                Engagement::Dismissed => Field::Dismissed,
            };
            counts.add(trigger(t, Some(variant), channel.clone(), field), at, 1);
        }
    }
}

/// How the square of a user's value changes when `value` is added to `before` (both in
/// thousandths), in thousandths of the squared value: `((before + value)^2 - before^2) / 1000`.
fn square_delta(before: i64, value: i64) -> i64 {
    let (b, v) = (i128::from(before), i128::from(value));
    let delta = (2 * b * v + v * v) as f64 / 1000.0;
    delta.round().clamp(i64::MIN as f64, i64::MAX as f64) as i64
}
