//! A report's period: whole UTC hours, `from` rounded down and `to` rounded up, since counters
//! are kept per hour.

use super::key::{hour_of, HOUR_MS};
use crate::time::Millis;

/// `[first, last)` hours or days since the epoch.
pub type Span = (i64, i64);

/// Hours `[from, to)` since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: i64,
    pub to: i64,
}

impl Period {
    /// The whole hours covering `[from, to)`.
    pub fn covering(from: Millis, to: Millis) -> Period {
        let to_hour = hour_of(to) + i64::from(to.rem_euclid(HOUR_MS) != 0);
        Period {
            from: hour_of(from),
            to: to_hour.max(hour_of(from)),
        }
    }

    /// Every hour there is.
    pub fn all() -> Period {
        Period {
            from: i64::MIN,
            to: i64::MAX,
        }
    }

    pub fn contains(&self, hour: i64) -> bool {
        self.from <= hour && hour < self.to
    }

    pub fn from_instant(&self) -> Millis {
        self.from.saturating_mul(HOUR_MS)
    }

    pub fn to_instant(&self) -> Millis {
        self.to.saturating_mul(HOUR_MS)
    }

    /// The whole days inside the period (days since the epoch, `[first, last)`), and the
    /// hours before and after them, so a store reads daily rollups where it can.
    pub fn split_days(&self) -> (Option<Span>, Vec<Span>) {
        let first_day = self.from.div_euclid(24) + i64::from(self.from.rem_euclid(24) != 0);
        let last_day = self.to.div_euclid(24);
        if first_day >= last_day {
            return (None, vec![(self.from, self.to)]);
        }
        let mut edges = Vec::new();
        if self.from < first_day * 24 {
            edges.push((self.from, first_day * 24));
        }
        if last_day * 24 < self.to {
            edges.push((last_day * 24, self.to));
        }
        (Some((first_day, last_day)), edges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_round_out_to_whole_hours_and_split_into_days_and_edges() {
        let p = Period::covering(HOUR_MS + 1, 3 * HOUR_MS);
        assert_eq!(p, Period { from: 1, to: 3 });
        let p = Period::covering(HOUR_MS, 2 * HOUR_MS + 1);
        assert_eq!(p, Period { from: 1, to: 3 });
        // 22:00 on day 0 to 02:00 on day 3: days 1 and 2 whole, two hours at each end.
        let p = Period { from: 22, to: 74 };
        assert_eq!(p.split_days(), (Some((1, 3)), vec![(22, 24), (72, 74)]));
        let inside_a_day = Period { from: 25, to: 30 };
        assert_eq!(inside_a_day.split_days(), (None, vec![(25, 30)]));
        let exact = Period { from: 24, to: 72 };
        assert_eq!(exact.split_days(), (Some((1, 3)), vec![]));
    }
}
