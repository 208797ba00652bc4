//! Measuring what the rules achieve: counters kept live as the engine decides (sends,
//! suppressions, conversions, funnel steps, experiment arms, engagement), per hour, and the
//! report built from them over any period.
//!
//! - `key.rs`: what a counter counts and its hour;
//! - `record.rs`: what one engine outcome adds to the counters;
//! - `deltas.rs`: those changes kept for a store, which applies them with the state that
//!   produced them, so every count is made exactly once;
//! - `histogram.rs`: latencies and step times as log-scaled buckets;
//! - `sketch.rs`: distinct users as a HyperLogLog sketch;
//! - `period.rs`: a report's whole hours, and its whole days for rollups;
//! - `tally.rs`: sums kept in memory over one period (`nudge report`);
//! - `report.rs`: the report's JSON shape, built from sums; `text.rs`: the same for people;
//! - `stats.rs`: experiment statistics (intervals, tests, the anytime-valid comparison).

pub mod deltas;
pub mod histogram;
pub mod key;
pub mod period;
pub mod record;
pub mod report;
pub mod sketch;
pub mod stats;
pub mod tally;
pub mod text;

pub use deltas::Deltas;
pub use key::{hour_of, Field, Key, Scope};
pub use period::Period;
pub use report::{Report, Sums};
pub use sketch::{observe, Observation, Sketch};
pub use tally::Tally;

#[cfg(test)]
mod tests;
