//! Counters summed in memory over one period, for `nudge report` and tests: deltas outside
//! the period are dropped as they come, so memory stays bounded by the keys, not by the
//! length of the history replayed.

use super::deltas::Deltas;
use super::period::Period;
use super::report::Sums;
use super::sketch::Sketch;

/// Running sums over one period.
#[derive(Debug, Clone)]
pub struct Tally {
    period: Period,
    sums: Sums,
    users: Sketch,
}

impl Tally {
    pub fn new(period: Period) -> Tally {
        Tally {
            period,
            sums: Sums::default(),
            users: Sketch::default(),
        }
    }

    pub fn apply(&mut self, d: Deltas) {
        for ((key, hour), n) in d.counts {
            if self.period.contains(hour) {
                *self.sums.counts.entry(key).or_default() += n;
            }
        }
        // Waits pending now, whatever the period.
        for ((trigger, _), n) in d.waiting {
            *self.sums.waiting.entry(trigger).or_default() += n;
        }
        for (hour, o) in d.users {
            if self.period.contains(hour) {
                self.users.apply(o);
            }
        }
    }

    /// The sums so far.
    pub fn sums(&self) -> Sums {
        let mut s = self.sums.clone();
        s.users = self.users.estimate();
        s
    }

    pub fn period(&self) -> Period {
        self.period
    }
}
