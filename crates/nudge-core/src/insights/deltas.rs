//! What one engine outcome adds to the counters: events and the user seen (by hour), each
//! send or suppression, and every fact (starts, cancellations, conversions, assignments,
//! funnel steps, engagement), each at the hour it belongs to. Stores apply a user's deltas in
//! the same write as the state that produced them, so each counts exactly once.

// Fx: keys are hashed on every event; SipHash showed in profiles of large replays.
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::histogram::bucket;
use super::key::{hour_of, Field, Key, Scope};
use super::sketch::{observe, Observation};
use crate::engine::{Decision, FactKind, Outcome};
use crate::event::engagement::Engagement;
use crate::time::Millis;

/// The stored form of [`Deltas`].
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    counts: Vec<([String; 5], i64, i64)>,
    waiting: Vec<(String, String, i64)>,
    users: Vec<(i64, u16, u8)>,
}

/// Counter changes, merged by key and hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deltas {
    /// (key, hour) -> change.
    pub counts: HashMap<(Key, i64), i64>,
    /// Pending waits per (trigger, channel): a gauge, not bucketed by hour.
    pub waiting: HashMap<(Arc<str>, Arc<str>), i64>,
    /// Users seen per hour (sketch register updates).
    pub users: Vec<(i64, Observation)>,
}

/// No changes at all.
static NONE: std::sync::LazyLock<Deltas> = std::sync::LazyLock::new(Deltas::default);

impl Deltas {
    /// No changes, for a write that counts nothing.
    pub fn none() -> &'static Deltas {
        &NONE
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.waiting.is_empty() && self.users.is_empty()
    }

    fn add(&mut self, key: Key, at: Millis, n: i64) {
        if n != 0 {
            *self.counts.entry((key, hour_of(at))).or_default() += n;
        }
    }

    /// Adds another batch's changes.
    pub fn merge(&mut self, other: Deltas) {
        for (k, n) in other.counts {
            *self.counts.entry(k).or_default() += n;
        }
        for (k, n) in other.waiting {
            *self.waiting.entry(k).or_default() += n;
        }
        self.users.extend(other.users);
    }

    /// Drops changes that net to zero and repeated user observations.
    pub fn compact(&mut self) {
        self.counts.retain(|_, n| *n != 0);
        self.waiting.retain(|_, n| *n != 0);
        self.users.sort_unstable();
        self.users.dedup();
    }

    /// The changes as bytes, for a store that keeps them with the state until it applies
    /// them (DynamoDB).
    pub fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            counts: self
                .counts
                .iter()
                .map(|((k, hour), n)| (k.parts(), *hour, *n))
                .collect(),
            waiting: self
                .waiting
                .iter()
                .map(|((t, c), n)| (t.to_string(), c.to_string(), *n))
                .collect(),
            users: self
                .users
                .iter()
                .map(|(hour, o)| (*hour, o.index, o.rank))
                .collect(),
        };
        // Plain data into a Vec cannot fail to serialize.
        postcard::to_allocvec(&stored).unwrap_or_default()
    }

    /// Changes stored by [`Deltas::encode`]; keys this build does not know are left out.
    pub fn decode(bytes: &[u8]) -> Result<Deltas, postcard::Error> {
        let stored: Stored = postcard::from_bytes(bytes)?;
        let mut d = Deltas::default();
        for ([scope, name, variant, part, field], hour, n) in stored.counts {
            if let Some(k) = Key::from_parts(&scope, &name, &variant, &part, &field) {
                *d.counts.entry((k, hour)).or_default() += n;
            }
        }
        for (t, c, n) in stored.waiting {
            *d.waiting.entry((t.into(), c.into())).or_default() += n;
        }
        d.users = stored
            .users
            .into_iter()
            .map(|(hour, index, rank)| (hour, Observation { index, rank }))
            .collect();
        Ok(d)
    }

    /// What `out` (for `user_id`, its input at `at`) adds.
    pub fn record(&mut self, user_id: &str, out: &Outcome, at: Millis) {
        if out.applied > 0 {
            let totals = Key::new(Scope::Totals, "", "", "", Field::Events);
            self.add(totals, at, i64::from(out.applied));
            self.users.push((hour_of(at), observe(user_id)));
        }
        for d in &out.decisions {
            let Decision::Send(s) = d else { continue };
            let key = |field| {
                Key::new(
                    Scope::Trigger,
                    s.trigger.clone(),
                    s.variant.clone(),
                    s.channel.as_str(),
                    field,
                )
            };
            match s.reason {
                Some(r) => self.add(key(Field::Suppressed(r.as_str().into())), s.at, 1),
                None => {
                    self.add(key(Field::Sent), s.at, 1);
                    let latency = (s.at - s.context.origin).max(0);
                    self.add(key(Field::Latency(bucket(latency))), s.at, 1);
                }
            }
        }
        for f in &out.facts {
            self.fact(&f.kind, f.at);
        }
    }

    /// Counts every send of `out` as delivered (a replay, which sends nothing, does this as
    /// the outbox and the inbox would deliver them).
    pub fn assume_delivered(&mut self, out: &Outcome) {
        for s in out.sends().filter(|s| s.reason.is_none()) {
            let key = Key::new(
                Scope::Trigger,
                s.trigger.clone(),
                s.variant.clone(),
                s.channel.as_str(),
                Field::Delivered,
            );
            self.add(key, s.at, 1);
        }
    }

    fn fact(&mut self, kind: &FactKind, at: Millis) {
        let trigger = |t: &Arc<str>, v: Option<&Arc<str>>, ch: &str, field| {
            Key::new(
                Scope::Trigger,
                t.clone(),
                v.cloned().unwrap_or_else(|| "".into()),
                ch,
                field,
            )
        };
        match kind {
            FactKind::Started {
                trigger: t,
                variant,
                channel,
            } => self.add(
                trigger(t, variant.as_ref(), channel.as_str(), Field::Started),
                at,
                1,
            ),
            FactKind::Cancelled {
                trigger: t,
                variant,
                channel,
            } => self.add(
                trigger(t, variant.as_ref(), channel.as_str(), Field::Cancelled),
                at,
                1,
            ),
            FactKind::Waiting {
                trigger: t,
                channel,
                delta,
            } => {
                *self
                    .waiting
                    .entry((t.clone(), channel.as_str().into()))
                    .or_default() += delta;
            }
            FactKind::Converted {
                trigger: t,
                variant,
                channel,
                first,
                value,
            } => {
                if *first {
                    self.add(
                        trigger(t, Some(variant), channel.as_str(), Field::Converted),
                        at,
                        1,
                    );
                }
                self.add(
                    trigger(t, Some(variant), channel.as_str(), Field::Value),
                    at,
                    *value,
                );
            }
            FactKind::Assigned {
                experiment,
                variant,
            } => self.add(
                Key::new(
                    Scope::Experiment,
                    experiment.clone(),
                    variant.clone(),
                    "",
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
                        "",
                        field,
                    )
                };
                if *first {
                    self.add(key(Field::Converted), at, 1);
                }
                self.add(key(Field::Value), at, *value);
                if *value != 0 {
                    self.add(key(Field::ValueSquares), at, square_delta(*before, *value));
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
                        breakdown.clone().unwrap_or_else(|| "".into()),
                        step.to_string(),
                        field,
                    )
                };
                self.add(key(Field::Users), at, 1);
                if let Some(after) = after {
                    self.add(key(Field::FromPrevious(bucket(*after))), at, 1);
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
                self.add(trigger(t, Some(variant), channel, field), at, 1);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_their_stored_form() {
        let mut d = Deltas::default();
        d.add(
            Key::new(Scope::Trigger, "t", "a", "email", Field::Sent),
            3_600_000,
            2,
        );
        d.add(Key::new(Scope::Totals, "", "", "", Field::Events), 0, 5);
        d.waiting.insert(("t".into(), "email".into()), -1);
        d.users.push((1, observe("u1")));
        assert_eq!(Deltas::decode(&d.encode()).unwrap(), d);
        assert!(Deltas::decode(&[0xff, 0xff]).is_err());
    }
}
