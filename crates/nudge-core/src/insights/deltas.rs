//! What one engine outcome adds to the counters: events and the user seen (by hour), each
//! send or suppression, and every fact (starts, cancellations, conversions, assignments,
//! funnel steps, engagement), each at the hour it belongs to. Stores apply a user's deltas in
//! the same write as the state that produced them, so each counts exactly once.

// Fx: keys are hashed on every event; SipHash showed in profiles of large replays.
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::key::{hour_of, Key};
use super::record::{assume_delivered, record, Counts};
use super::sketch::Observation;
use crate::engine::Outcome;
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
        record(self, user_id, out, at);
    }

    /// Counts every send of `out` as delivered (a replay, which sends nothing, does this as
    /// the outbox and the inbox would deliver them).
    pub fn assume_delivered(&mut self, out: &Outcome) {
        assume_delivered(self, out);
    }
}

impl Counts for Deltas {
    fn add(&mut self, key: Key, at: Millis, n: i64) {
        if n != 0 {
            *self.counts.entry((key, hour_of(at))).or_default() += n;
        }
    }

    fn waiting(&mut self, trigger: &Arc<str>, channel: &str, n: i64) {
        *self
            .waiting
            .entry((trigger.clone(), channel.into()))
            .or_default() += n;
    }

    fn user(&mut self, hour: i64, o: Observation) {
        self.users.push((hour, o));
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::key::{Field, Scope};

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
        d.users.push((1, crate::insights::observe("u1")));
        assert_eq!(Deltas::decode(&d.encode()).unwrap(), d);
        assert!(Deltas::decode(&[0xff, 0xff]).is_err());
    }
}
