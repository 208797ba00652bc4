//! Counters summed in memory over one period, for `nudge report` and tests: deltas outside
//! the period are dropped as they come, so memory stays bounded by the keys, not by the
//! length of the history replayed.

use std::sync::Arc;

use super::deltas::Deltas;
use super::key::{blank, hour_of, Field, Key, Scope};
use super::period::Period;
use super::record::{self, Counts};
use super::report::Sums;
use super::sketch::{Observation, Sketch};
use crate::engine::Outcome;
use crate::time::Millis;

/// Running sums over one period.
#[derive(Debug, Clone)]
pub struct Tally {
    period: Period,
    sums: Sums,
    /// Events applied in the period, kept apart from `sums` (no key to hash per input).
    events: i64,
    users: Sketch,
}

impl Tally {
    pub fn new(period: Period) -> Tally {
        Tally {
            period,
            sums: Sums::default(),
            events: 0,
            users: Sketch::default(),
        }
    }

    /// Adds changes a store would apply.
    pub fn apply(&mut self, d: Deltas) {
        for ((key, hour), n) in d.counts {
            self.add_in_hour(key, hour, n);
        }
        for ((trigger, channel), n) in d.waiting {
            self.waiting(&trigger, &channel, n);
        }
        for (hour, o) in d.users {
            self.user(hour, o);
        }
    }

    /// What `out` (for `user_id`, its input at `at`) adds, summed straight in; with
    /// `delivered`, its sends count as delivered too (a replay sends nothing).
    pub fn record(&mut self, user_id: &str, out: &Outcome, at: Millis, delivered: bool) {
        record::record(self, user_id, out, at);
        if delivered {
            record::assume_delivered(self, out);
        }
    }

    fn add_in_hour(&mut self, key: Key, hour: i64, n: i64) {
        if self.period.contains(hour) {
            *self.sums.counts.entry(key).or_default() += n;
        }
    }

    /// The sums so far.
    pub fn sums(&self) -> Sums {
        let mut s = self.sums.clone();
        if self.events != 0 {
            *s.counts
                .entry(Key::new(
                    Scope::Totals,
                    blank(),
                    blank(),
                    blank(),
                    Field::Events,
                ))
                .or_default() += self.events;
        }
        s.users = self.users.estimate();
        s
    }

    pub fn period(&self) -> Period {
        self.period
    }
}

impl Counts for Tally {
    fn add(&mut self, key: Key, at: Millis, n: i64) {
        if n != 0 {
            self.add_in_hour(key, hour_of(at), n);
        }
    }

    fn events(&mut self, at: Millis, n: i64) {
        if self.period.contains(hour_of(at)) {
            self.events += n;
        }
    }

    /// Waits pending now, whatever the period.
    fn waiting(&mut self, trigger: &Arc<str>, _channel: &str, n: i64) {
        match self.sums.waiting.get_mut(trigger) {
            Some(w) => *w += n,
            None => {
                self.sums.waiting.insert(trigger.clone(), n);
            }
        }
    }

    fn user(&mut self, hour: i64, o: Observation) {
        if self.period.contains(hour) {
            self.users.apply(o);
        }
    }
}
